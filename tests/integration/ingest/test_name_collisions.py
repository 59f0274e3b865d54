"""Two files, one raw name: ``run01-seq2.dat`` and ``run1-seq2.dat`` are both run 1, seq 2.

The first registered keeps the name; the other is recorded as ignored under its own path, with
the reason and an alarm, and left alone: never copied over the first, never counted as it.
"""

from __future__ import annotations

import os
from pathlib import Path

from farmtools.bookkeeping.states import Event, FileState
from farmtools.ingest.service import KIND_COLLISION
from tests.integration.ingest.conftest import Farm, snapshot, wait_for


def _collision_alarms(farm: Farm) -> list[tuple[str | None, str]]:
    return [(a.file, a.message) for a in farm.bk.alarms() if a.kind == KIND_COLLISION]


def test_leading_zeros_collide_second_is_ignored_with_alarm(farm: Farm) -> None:
    farm.start_watch()
    first = farm.raw("run1-seq2.dat", 1, fill=1)
    farm.wait_state("run1-seq2.dat", "stored")
    second = farm.raw("run01-seq2.dat", 1, fill=2)  # other bytes, same normalised name
    before = snapshot(second)
    farm.wait_state("run01-seq2.dat", "ignored")
    # the alarm follows the ignored record (two transactions: register_file takes no alarm)
    wait_for(lambda: _collision_alarms(farm), what="the collision alarm")
    rec = farm.bk.get("run01-seq2.dat")
    assert rec is not None and rec.run is None and rec.source_path == str(second)
    story = farm.bk.story("run01-seq2.dat")
    ignored = [e for e in story if e.event == Event.IGNORED]
    reason = (ignored[0].details or {})["reason"]
    assert "run1-seq2.dat" in reason and str(first) in reason and str(second) in reason
    assert _collision_alarms(farm) == [("run01-seq2.dat", reason)]
    assert Event.ALARM in [e.event for e in story]
    # left alone, and the first file's record and copy are untouched
    assert snapshot(second) == before
    stored = farm.cfg.path(farm.cfg.storage.input) / "run1"
    assert sorted(p.name for p in stored.iterdir()) == ["run1-seq2.dat"]
    assert (stored / "run1-seq2.dat").read_bytes() == first.read_bytes()
    main = farm.bk.get("run1-seq2.dat")
    assert main is not None and main.source_path == str(first)
    assert farm.events("run1-seq2.dat").count(Event.COPY_STARTED) == 1
    # another close-write of it changes nothing (one record, one alarm)
    with open(second, "ab"):
        pass
    farm.raw("run1-seq3.dat", 1)
    farm.wait_state("run1-seq3.dat", "stored")
    assert len(_collision_alarms(farm)) == 1


def test_same_name_in_a_subdirectory_while_the_first_waits(farm: Farm) -> None:
    """Both present before any copy (reconciliation after downtime): one is ingested."""
    farm.raw("run3-seq0.dat", 3, fill=1)
    farm.raw("run3-seq0.dat", 3, sub="run3", fill=2)
    svc = farm.service()
    assert svc.reconcile() == 1
    rec = farm.bk.get("run3-seq0.dat")
    assert rec is not None and rec.state == FileState.STORED
    # the other one is under its own path; "./" when that path is the raw name itself
    top = str(farm.daq / "run3-seq0.dat")
    other = "run3/run3-seq0.dat" if rec.source_path == top else "./run3-seq0.dat"
    ignored = farm.bk.get(other)
    assert ignored is not None and ignored.state == FileState.IGNORED, farm.bk.files()
    assert ignored.source_path != rec.source_path
    stored = farm.cfg.path(farm.cfg.storage.input) / "run3" / "run3-seq0.dat"
    assert stored.read_bytes() == Path(rec.source_path).read_bytes()
    assert [f for f, _ in _collision_alarms(farm)] == [other]
    assert svc.reconcile() == 0 and len(_collision_alarms(farm)) == 1  # idempotent


def test_a_stored_file_moved_within_the_daq_directory_is_no_collision(farm: Farm) -> None:
    farm.start_watch()
    src = farm.raw("run4-seq0.dat", 4)
    farm.wait_state("run4-seq0.dat", "stored")
    (farm.daq / "run4").mkdir()
    os.rename(src, farm.daq / "run4" / "run4-seq0.dat")  # the same bytes, a new path
    farm.raw("run4-seq1.dat", 4)  # after the move in the event order
    farm.wait_state("run4-seq1.dat", "stored")
    assert _collision_alarms(farm) == []
    assert farm.bk.get("run4/run4-seq0.dat") is None
    assert farm.state("run4-seq0.dat") == "stored"
