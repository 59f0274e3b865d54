"""Processing claims 3x1x1 files only: a 6x6x6 event file stays stored (its reconstruction is issue 15)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from farmtools.bookkeeping import Bookkeeping, Event, FileState
from farmtools.processing.jobs import JobStore
from farmtools.processing.manager import Manager, PassSummary
from tests.processing_farm import make_cfg, state_of, store
from tests.states import walk


def test_claim_takes_the_311_file_and_leaves_the_6x6x6_file_stored(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path / "farm")
    bk = Bookkeeping.from_config(cfg)
    name = "12_0_a.dat"
    bk.register_file(
        name, source_path=f"/evb/{name}", run=12, seq=0, size=10, daq_write_time=datetime.now(UTC)
    )
    walk(bk, name, FileState.STORED, Event.VERIFIED)
    raw = store(bk, cfg, 12, 1)
    manager = Manager(cfg, bk=bk)
    summary = PassSummary()
    manager.claim(summary)
    assert summary.claimed == 1
    assert state_of(bk, raw) == FileState.QUEUED
    assert state_of(bk, name) == FileState.STORED
    assert JobStore(bk).of_file(name) == []
