"""Helpers of the processing tests: a farm configuration in a temp dir, raw files, stored files
and their bookkeeping records.

Raw files are written byte by byte with the 311 layout of farmtools.rawdata.format (few, small
events: the job program reads and checks the framing, the physics does not matter here).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farmtools.bookkeeping import Bookkeeping, Event, FileRecord, FileState
from farmtools.config import FarmConfig
from farmtools.rawdata.format import FOOTER, FOOTER_MAGIC, RUN_HEADER, EventHeader
from tests.eventually import eventually
from tests.states import walk

if TYPE_CHECKING:
    from farmtools.batch.base import BatchSystem, JobStatus
    from farmtools.processing.manager import Manager


def make_cfg(home: Path, **sections: dict[str, Any]) -> FarmConfig:
    """A farm below ``home`` (local storage, SQLite), with ``sections`` overriding keys."""
    data: dict[str, Any] = {
        "farm": {"home": str(home)},
        "batch": {"backend": "local", "slots": 2},
        # program=check: the raw files of these tests are framing only (reco would refuse them)
        "processing": {
            "cooloff_s": 0.0,
            "poll_s": 0.1,
            "claim_s": 0.05,
            "max_tries": 3,
            "program": "check",
        },
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return FarmConfig.model_validate({**data, "base_dir": home})


def write_raw(
    path: Path, run: int, events: int = 3, payload: int = 1000, corrupt: bool = False
) -> Path:
    """A well-framed raw file (``corrupt``: the footer's event count is wrong)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(RUN_HEADER.pack(run, 0))
        for i in range(events):
            f.write(EventHeader(0, i, 1_700_000_000 + i, 0, 0, i, payload).pack())
            f.write(struct.pack("B", i % 256) * payload)
        f.write(FOOTER.pack(FOOTER_MAGIC, events + (1 if corrupt else 0)))
    return path


def store(bk: Bookkeeping, cfg: FarmConfig, run: int, seq: int, **raw: Any) -> str:
    """Write run<N>-seq<M>.dat on the farm storage and record it as ingest does (verified)."""
    name = f"run{run}-seq{seq}.dat"
    path = write_raw(cfg.path(cfg.storage.input) / f"run{run}" / name, run, **raw)
    bk.register_file(
        name,
        source_path=f"/evb/{name}",
        run=run,
        seq=seq,
        size=path.stat().st_size,
        daq_write_time=datetime.now(UTC),
    )
    walk(bk, name, FileState.STORED, Event.VERIFIED, fields={"storage_path": str(path)})
    return name


def record_of(bk: Bookkeeping, name: str) -> FileRecord:
    """``name``'s bookkeeping record; the test fails if the file is not registered."""
    rec = bk.get(name)
    assert rec is not None, f"{name} is not in the bookkeeping"
    return rec


def state_of(bk: Bookkeeping, name: str) -> FileState:
    """The state of ``name``, which must be registered."""
    return record_of(bk, name).state


def drive(
    manager: Manager,
    done: Callable[[], object],
    timeout: float = 90.0,
    what: str = "the files' expected states",
) -> None:
    """Run manager passes until ``done()`` holds; fail naming ``what`` and the files per state."""
    eventually(
        done,
        timeout,
        what,
        step=manager.run_once,
        details=lambda: f"files per state: {manager.bk.counts_by_state()}",
    )


def wait_job(batch: BatchSystem, job: str, status: JobStatus, timeout: float = 60.0) -> None:
    """Until the batch system reports ``job`` in ``status``; fails with the last status seen."""
    eventually(
        lambda: batch.states([job])[job],
        timeout,
        f"job {job} {status}",
        until=lambda seen: seen is status,
        interval=0.2,
    )
