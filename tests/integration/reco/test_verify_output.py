"""``farmtools verify-output DIR``: a good directory passes; missing, short and broken files fail."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from farmtools.cli import app
from farmtools.detector import WA105_3X1X1 as G
from farmtools.emulator.daq import RunPlan, emulate_run
from farmtools.emulator.settings import EmulatorSettings
from farmtools.reco.driver import raw_events, reconstruct_file, reconstruct_stream

runner = CliRunner()


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """raw/run9/run9-seq{0,1}.dat (2 events each) and out/run9/recotask_run9-seq{0,1}.root."""
    base = tmp_path_factory.mktemp("verify")
    raw = base / "raw" / "run9"
    out = base / "out" / "run9"
    out.mkdir(parents=True)
    files = emulate_run(raw, EmulatorSettings(seed=9), RunPlan(run=9, files=2, events_per_file=2))
    for f in files:
        reconstruct_file(f.path, out / f"recotask_run9-seq{f.seq}.root", G)
    return base / "raw", base / "out"


def _verify(out: Path, raw: Path, *options: str) -> tuple[int, str]:
    res = runner.invoke(app, ["verify-output", str(out), "--raw", str(raw), *options])
    return res.exit_code, res.output


def test_good_directory_passes(farm: tuple[Path, Path]) -> None:
    raw, out = farm
    code, text = _verify(out, raw)
    assert code == 0, text
    assert text.count("ok ") == 2 and "(2 entries, raw file 2 events)" in text
    assert "OK: 2 files checked" in text


def test_missing_short_and_unreadable_outputs_fail(farm: tuple[Path, Path], tmp_path: Path) -> None:
    raw_src, out_src = farm
    raw = tmp_path / "raw"
    out = tmp_path / "out"
    shutil.copytree(raw_src, raw)
    shutil.copytree(out_src, out)
    # a third raw file with no output at all
    emulate_run(raw / "run9", EmulatorSettings(seed=1), RunPlan(run=9, events_per_file=1))
    # seq1's output rewritten from its first event only: short
    short = out / "run9" / "recotask_run9-seq1.root"
    _n, events = raw_events(raw / "run9" / "run9-seq1.dat", G)
    reconstruct_stream(itertools.islice(events, 1), short, G)
    code, text = _verify(out, raw)
    assert code == 1, text
    assert "missing" in text and "run9-seq2.dat" in text
    assert f"short {short} (1 entries, raw file 2 events)" in text
    assert "FAILED: 3 files checked (1 missing, 1 ok, 1 short)" in text

    # seq0's output cut in half: it no longer opens
    broken = out / "run9" / "recotask_run9-seq0.root"
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    code, text = _verify(out, raw)
    assert code == 1
    assert f"unreadable {broken}" in text


def test_output_without_raw_file_is_unchecked(farm: tuple[Path, Path], tmp_path: Path) -> None:
    _raw, out = farm
    code, text = _verify(out, tmp_path / "nothing-here")
    assert code == 1
    assert text.count("unchecked ") == 2 and "no raw file to compare with" in text


def test_not_a_directory(tmp_path: Path) -> None:
    code, text = _verify(tmp_path / "absent", tmp_path)
    assert code == 1 and "not a directory" in text


def test_6x6x6_outputs_pair_with_their_event_files(tmp_path: Path) -> None:
    """``<run>_<seq>_<id>.dat`` pairs with ``recotask_<run>_<seq>_<id>.root`` (the name
    processing gives it), the two L2 builders' files of one sequence apart."""
    import numpy as np

    from farmtools.detector import geometry
    from tests.unit.reco import pddp_synth

    g = geometry("6x6x6-full:200")
    raw = tmp_path / "raw" / "run12"
    out = tmp_path / "out" / "run12"
    raw.mkdir(parents=True)
    out.mkdir(parents=True)
    empty = (np.full((g.n_channels, g.samples), 400, dtype=np.uint16), b"")
    for builder, n in (("a", 2), ("b", 1)):
        path = pddp_synth.write_file(raw / f"12_3_{builder}.dat", g, [empty] * n, run=12)
        reconstruct_file(path, out / f"recotask_12_3_{builder}.root", g)
    code, text = _verify(out.parent, raw.parent, "--detector", "6x6x6-full:200")
    assert code == 0, text
    assert "(2 entries, raw file 2 events)" in text
    assert "(1 entries, raw file 1 events)" in text
    assert "OK: 2 files checked (2 ok)" in text
    # builder b's output gone: its event file is missing an output, a's still pairs
    (out / "recotask_12_3_b.root").unlink()
    code, text = _verify(out.parent, raw.parent, "--detector", "6x6x6-full:200")
    assert code == 1
    assert f"missing {raw / '12_3_b.dat'}" in text
    assert "FAILED: 2 files checked (1 missing, 1 ok)" in text
