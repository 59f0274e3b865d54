"""Put a test's file or job into a state the way the stages would: along its declared machine.

The bookkeeping refuses a move that :data:`farmtools.bookkeeping.states.FILE_MACHINE` (or
:data:`farmtools.processing.jobs.JOB_MACHINE`) does not allow, so a test that needs a
``reconstructed`` file walks it there (detected, copying, stored, queued, submitted, running,
reconstructed), one allowed move and one story event at a time.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from farmtools.bookkeeping import Bookkeeping, Event, FileState
from farmtools.bookkeeping.schema import now
from farmtools.bookkeeping.states import FILE_MACHINE
from farmtools.processing.jobs import JOB_MACHINE, JobStore
from farmtools.statemachine import StateMachine
from farmtools.storage.checksum import adler32_hex


def path_to(machine: StateMachine, start: str, goal: str) -> list[str]:
    """The states after ``start`` on a shortest allowed path to ``goal`` (empty when equal)."""
    prev: dict[str, str] = {}
    todo, seen = deque([str(start)]), {str(start)}
    while todo:
        s = todo.popleft()
        if s == str(goal):
            steps = []
            while s != str(start):
                steps.append(s)
                s = prev[s]
            return steps[::-1]
        for a, b in sorted(machine.moves):
            if a == s and b not in seen:
                seen.add(b)
                prev[b] = s
                todo.append(b)
    raise AssertionError(f"the {machine.name} machine has no path from {start} to {goal}")


def walk(
    bk: Bookkeeping,
    name: str,
    goal: FileState | str,
    event: str,
    details: Mapping[str, Any] | None = None,
    *,
    fields: Mapping[str, Any] | None = None,
    alarm: tuple[str, str, str] | None = None,
) -> None:
    """Move ``name`` to ``goal`` by allowed moves; the last gets ``event``, ``details``, ``fields`` and ``alarm``, the
    ones before it the story event ``walked`` (a test's shortcut, said as such)."""
    rec = bk.get(name)
    assert rec is not None, f"{name} is not in the bookkeeping"
    state = str(rec.state)
    steps = path_to(FILE_MACHINE, state, str(goal))
    for i, nxt in enumerate(steps):
        last = i == len(steps) - 1
        step_event = event if last else "walked"
        moved = bk.transition(
            name,
            state,
            nxt,
            step_event,
            details if last else None,
            fields=fields if last else None,
            alarm=alarm if last else None,
        )
        assert moved, f"{name}: {state} -> {nxt} refused"
        state = nxt


def walk_job(jobs: JobStore, job_id: int, goal: str, **values: Any) -> None:
    """Move job ``job_id`` to ``goal`` by allowed moves; ``values`` are written with the last."""
    job = jobs.get(job_id)
    assert job is not None, f"no job {job_id}"
    state = str(job.state)
    for nxt in path_to(JOB_MACHINE, state, goal):
        last = nxt == goal
        assert jobs.set_state(job_id, [state], nxt, **(values if last else {})), (
            f"job {job_id}: {state} -> {nxt} refused"
        )
        state = nxt


def stored(bk: Bookkeeping, path: Path, run: int, seq: int = 0) -> None:
    """Record the raw file ``path`` as ingest leaves it: on the farm storage at ``path``, its
    adler32 verified (walked to ``stored``)."""
    data = path.read_bytes()
    bk.register_file(
        path.name, source_path=path.name, run=run, seq=seq, size=len(data), daq_write_time=now()
    )
    walk(
        bk,
        path.name,
        FileState.STORED,
        Event.VERIFIED,
        fields={"adler32": adler32_hex(zlib.adler32(data)), "storage_path": str(path)},
    )
