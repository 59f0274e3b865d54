"""Carrying out the chaos schedule: one injector per kind of fault, found in :data:`INJECTORS`.

:func:`~.chaos.plan_faults` draws the schedule; :func:`run_faults` (the challenge's chaos thread)
waits for each fault's time and hands it to its kind's injector, which does the damage, waits
out its duration, undoes it and notes in the :class:`~.chaos.Fault` what was actually done.
An injector gets the challenge's moving parts as a :class:`FaultContext` (plain references,
no challenge object), so that a new kind of fault is one function and one line of the table.

Imports :mod:`.chaos` and :mod:`.daemons` (and the configuration's type).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farmtools.challenge.chaos import (
    BatchPause,
    Fault,
    StorageOutage,
    drop_corrupt,
    start_outage,
)
from farmtools.challenge.daemons import Daemon

if TYPE_CHECKING:
    from farmtools.config import FarmConfig


@dataclass
class FaultContext:
    """What the injectors act on and where they leave their traces (shared with the challenge)."""

    cfg: FarmConfig
    stop: threading.Event
    elapsed: Callable[[], float]
    #: the challenge's daemons, and the lock under which they are killed and restarted
    daemons: dict[str, Daemon]
    lock: threading.Lock
    #: the farm storage's input directory and the marker of its read-only mount
    input_dir: Path
    outage_marker: Path
    #: the DAQ directory, the files the emulator wrote so far (a list it appends to), the
    #: corrupt files dropped (name -> kind) and the faults carried out so far
    watch_dir: Path
    written: list[Any]
    bad_files: dict[str, str]
    done: list[Fault]
    run_number: int
    files: int
    seed: int


Injector = Callable[[FaultContext, Fault, random.Random, int], None]


def kill(ctx: FaultContext, f: Fault, rng: random.Random, _k: int) -> None:
    """SIGKILL a daemon, and restart it after a random pause (as systemd would)."""
    d = ctx.daemons.get(f.target)
    if d is None or not d.alive:
        f.details = f"{f.target} is not running here: nothing to kill"
        return
    with ctx.lock:
        pid = d.pid
        d.kill()
    pause = round(rng.uniform(0.5, 3.0), 2)
    f.injected = True
    f.duration_s = pause
    if ctx.stop.wait(pause):
        f.details = f"SIGKILL pid {pid}; not restarted: the challenge was stopping"
        return
    with ctx.lock:
        d.start()
    f.details = f"SIGKILL pid {pid}; restarted after {pause} s as pid {d.pid}"


def storage_outage(ctx: FaultContext, f: Fault, _rng: random.Random, _k: int) -> None:
    """The local farm storage read-only for the fault's duration."""
    if ctx.cfg.storage.backend != "local":
        f.details = "storage is XRootD: not this challenge's to stop"
        return
    outage = StorageOutage(ctx.input_dir, ctx.outage_marker)
    if not start_outage(outage, f):
        return
    f.extra["read_only_at_s"] = round(ctx.elapsed(), 2)
    try:
        ctx.stop.wait(f.duration_s)
    finally:
        if (why := outage.end()) is not None:
            f.details += f"; NOT undone: {why}"
        f.extra["writable_at_s"] = round(ctx.elapsed(), 2)


def batch_pause(ctx: FaultContext, f: Fault, _rng: random.Random, _k: int) -> None:
    """The local batch pool stopped (its running jobs too) for the fault's duration."""
    if ctx.cfg.batch.backend != "local":
        f.details = f"batch is {ctx.cfg.batch.backend}: not this challenge's to stop"
        return
    pool = BatchPause(ctx.cfg.path(ctx.cfg.batch.local_dir))
    for _ in range(50):  # up to 10 s for a running job, so that there is one to stop
        if pool.running_groups():
            break
        if ctx.stop.wait(0.2):
            return
    try:
        f.details = pool.start()
    except RuntimeError as exc:
        f.details = f"not injected: {exc}"
        return
    f.injected = True
    # the effect, for the report: which running jobs were stopped, and when exactly
    # (done_at_s is when the fault was taken up: it may wait for a running job)
    f.extra.update(stopped_jobs=list(pool.stopped_jobs), paused_at_s=round(ctx.elapsed(), 2))
    try:
        ctx.stop.wait(f.duration_s)
    finally:
        pool.end()
        f.extra["resumed_at_s"] = round(ctx.elapsed(), 2)


def corrupt_file(ctx: FaultContext, f: Fault, _rng: random.Random, k: int) -> None:
    """An unreadable raw file under a valid name (numbered after the run's good files)."""
    seq = ctx.files + sum(1 for x in ctx.done if x.kind == "corrupt_file")
    name = f"run{ctx.run_number}-seq{seq}.dat"
    while f.target == "truncated" and not ctx.written:
        if ctx.stop.wait(0.2):  # a truncated copy needs a good file first
            return
    good = ctx.written[0].path if ctx.written else None
    what = drop_corrupt(ctx.watch_dir / name, f.target, good, seed=k)
    ctx.bad_files[name] = f.target
    f.injected = True
    f.target = f"{name} ({f.target})"
    f.details = what


#: Fault kind -> its injector (every kind :func:`~.chaos.plan_faults` draws).
INJECTORS: dict[str, Injector] = {
    "kill": kill,
    "storage_outage": storage_outage,
    "batch_pause": batch_pause,
    "corrupt_file": corrupt_file,
}


def inject(ctx: FaultContext, f: Fault, k: int) -> None:
    """Carry out fault number ``k``; a failure to inject is noted in the fault, never raised."""
    rng = random.Random(ctx.seed * 1000 + k)
    f.done_at_s = round(ctx.elapsed(), 2)
    try:
        INJECTORS[f.kind](ctx, f, rng, k)
    except Exception as exc:
        f.details = f"injection failed: {type(exc).__name__}: {exc}"
    finally:
        f.ended_at_s = round(ctx.elapsed(), 2)


def run_faults(ctx: FaultContext, faults: list[Fault]) -> None:
    """Each fault at its time, one after the other, until the schedule ends or ``stop``."""
    for k, fault in enumerate(faults):
        if ctx.stop.wait(max(0.0, fault.at_s - ctx.elapsed())):
            break
        inject(ctx, fault, k)
        ctx.done.append(fault)
