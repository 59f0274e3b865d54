"""Which LEM map a group of files is analysed with: the files' own detector (their names say it)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from farmtools.analysis.pipeline import group_geometry
from farmtools.bookkeeping.db import FileRecord
from farmtools.bookkeeping.states import FileState
from farmtools.config import FarmConfig, FarmSection


def _record(name: str) -> FileRecord:
    t = datetime.now(UTC)
    return FileRecord(
        1, name, 7, 0, 1, "00000001", t, f"/d/{name}", None, FileState.RECONSTRUCTED, t, 0,
        None, None, None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("detector", "name", "lems"),
    [
        ("3x1x1", "run7-seq0.dat", 12),
        ("6x6x6:100", "run7-seq0.dat", 12),  # a 6x6x6 farm's 3x1x1 files (the mock farm's evb)
        ("6x6x6:100", "7_0_a.dat", 144),
        ("3x1x1", "7_0_a.dat", 144),
    ],
)
def test_the_files_names_choose_the_lem_map(
    tmp_path: Path, detector: str, name: str, lems: int
) -> None:
    cfg = FarmConfig(farm=FarmSection(home=tmp_path, detector=detector), base_dir=tmp_path)
    assert group_geometry(cfg, [_record(name)]).n_lems == lems
