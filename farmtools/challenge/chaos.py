"""Fault injection for ``farmtools challenge run --chaos``: what is done, when, and how to undo it.

Four kinds of fault, each recorded as a :class:`Fault` that the report names:

``kill``
    SIGKILL of a daemon (ingest watcher, processing manager, monitor) at a random moment, then a
    restart after a short while (:func:`~.inject.kill`, through :class:`~.daemons.Daemon`).
``storage_outage``
    The farm storage refuses writes for a while.  On the embedded default (a local directory)
    the input directory is bind-mounted read-only on itself (``mount --bind`` then
    ``remount,ro``): every write gets EROFS, as from a storage server that went read-only, while
    the files already there stay readable for the running jobs.  Needs root and a kernel that
    lets this process mount; where it cannot be done the fault is recorded as *not injected*
    with the reason, never faked.
``batch_pause``
    The local batch pool stops: its slot count is set to 0 (nothing new starts) and the running
    jobs' process groups get SIGSTOP; at the end SIGCONT, the slots come back and the pending
    jobs start.  Only for the local backend (a Slurm or TORQUE server is not ours to stop).
``corrupt_file``
    A raw file that can never be read is dropped among the good ones in the DAQ directory, under
    a valid name: ``truncated`` (the first half of a good file) or ``garbage`` (random bytes).
    The report expects it quarantined or failed with a reason, and never reconstructed.

:func:`plan_faults` draws a schedule from a seed (reproducible); :mod:`.inject` carries it
out.  Imports the standard library and :mod:`farmtools.batch.statefile` (and psutil and
:mod:`farmtools.batch.local` lazily).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from farmtools.batch.statefile import write_atomic

KINDS = ("kill", "storage_outage", "batch_pause", "corrupt_file")


@dataclass
class Fault:
    """One fault: planned (``at_s`` from the start), then what was actually done."""

    at_s: float
    kind: str
    target: str
    duration_s: float = 0.0
    injected: bool = False
    details: str = ""
    done_at_s: float | None = None
    ended_at_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def plan_faults(
    seed: int,
    horizon_s: float,
    daemons: list[str],
    *,
    kills: int = 3,
    corrupt: int = 2,
    outage_s: float = 6.0,
    pause_s: float = 6.0,
    storage: bool = True,
    batch: bool = True,
) -> list[Fault]:
    """A reproducible schedule of faults spread over the first ``horizon_s`` seconds.

    Every daemon is killed at least once when ``kills >= len(daemons)``; the storage outage and
    the batch pause do not overlap each other (the report can then tell their effects apart);
    corrupt files alternate between truncated and garbage.
    """
    rng = random.Random(seed)
    horizon = max(horizon_s, 4.0)
    faults: list[Fault] = []
    targets = list(daemons)
    rng.shuffle(targets)
    for i in range(kills):
        target = targets[i % len(targets)] if targets else ""
        if target:
            faults.append(Fault(round(rng.uniform(0.1, 0.9) * horizon, 2), "kill", target))
    if storage:
        faults.append(
            Fault(round(rng.uniform(0.15, 0.35) * horizon, 2), "storage_outage", "input", outage_s)
        )
    if batch:
        faults.append(
            Fault(round(rng.uniform(0.55, 0.75) * horizon, 2), "batch_pause", "local", pause_s)
        )
    for i in range(corrupt):
        kind = "truncated" if i % 2 == 0 else "garbage"
        faults.append(Fault(round(rng.uniform(0.2, 0.8) * horizon, 2), "corrupt_file", kind))
    return sorted(faults, key=lambda f: f.at_s)


# --- the storage outage ----------------------------------------------------------------------
#: How long one mount command may take, and how often the whole read-only sequence is tried.
#: A challenge must not hang on a stuck mount, and one refusal should not cost it its outage;
#: every failed attempt is named in the fault's details, so that an outage not injected says
#: why.
MOUNT_TIMEOUT_S = 20.0
MOUNT_ATTEMPTS = 3


def is_mount_point(path: Path) -> bool:
    """Whether something is mounted on ``path``, as the kernel's mount table says (psutil).

    :func:`os.path.ismount` cannot tell: a bind mount of a directory on itself stays on the
    same device, so it looks like a plain directory there.
    """
    import psutil

    target = os.path.realpath(path)
    return any(p.mountpoint == target for p in psutil.disk_partitions(all=True))


def _mount(*args: str) -> str | None:
    """Run ``mount``/``umount`` with a time limit: None if it worked, else what went wrong."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=MOUNT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"`{' '.join(args[:-1])}` took more than {MOUNT_TIMEOUT_S:g} s"
    if done.returncode != 0:
        return f"`{' '.join(args[:-1])}` exit {done.returncode}: {done.stderr.strip()}"
    return None


def start_outage(outage: StorageOutage, f: Fault) -> bool:
    """Start ``outage`` as fault ``f``: its details say how, or why it could not be injected."""
    try:
        f.details = outage.start()
    except RuntimeError as exc:
        f.details = f"not injected: {exc}"
        return False
    f.injected = True
    return True


class StorageOutage:
    """The local storage directory made read-only for a while (see the module docstring)."""

    def __init__(self, directory: Path, marker: Path) -> None:
        self.directory = directory
        #: Written before the mount and removed after the unmount, so that a challenge killed
        #: with -9 in between is cleaned up by the next one, and only then: the directory may
        #: be a mount point of its own (a real disk), which must never be unmounted.
        self.marker = marker
        self.mounted = marker.exists() and marker.read_text().strip() == str(directory)

    @classmethod
    def leftover(cls, directory: Path, marker: Path) -> str | None:
        """Undo an outage that an earlier, killed challenge left in place; None if none was."""
        outage = cls(directory, marker)
        if not outage.mounted:
            return None
        if not is_mount_point(directory):  # unmounted by hand since: only the marker remains
            marker.unlink(missing_ok=True)
            outage.mounted = False
            return None
        if (why := outage.end()) is not None:
            return f"{directory}: a killed challenge's read-only mount could NOT be removed: {why}"
        return f"{directory}: read-only bind mount of a killed challenge removed"

    def start(self) -> str:
        """Make writes fail; returns how. Raises RuntimeError naming why it cannot be done.

        The sequence is tried up to :data:`MOUNT_ATTEMPTS` times; the error names every failed
        attempt, and a partial attempt is always undone before the next one.
        """
        if os.geteuid() != 0:
            raise RuntimeError("needs root to bind-mount the storage read-only")
        if shutil.which("mount") is None:
            raise RuntimeError("no mount command")
        self.directory.mkdir(parents=True, exist_ok=True)
        failures: list[str] = []
        for attempt in range(1, MOUNT_ATTEMPTS + 1):
            try:
                return self._read_only()
            except RuntimeError as exc:
                failures.append(f"attempt {attempt}: {exc}")
                self.end()
            if attempt < MOUNT_ATTEMPTS:
                time.sleep(0.5 * attempt)
        raise RuntimeError("; ".join(failures))

    def _read_only(self) -> str:
        d = str(self.directory)
        self.marker.parent.mkdir(parents=True, exist_ok=True)
        self.marker.write_text(d + "\n")
        self.mounted = True
        if (why := _mount("mount", "--bind", d, d)) is not None:
            self.mounted = False
            self.marker.unlink(missing_ok=True)
            raise RuntimeError(f"bind mount refused: {why}")
        if (why := _mount("mount", "-o", "remount,bind,ro", d)) is not None:
            raise RuntimeError(f"remount read-only refused: {why}")
        probe = self.directory / ".chaos-probe"
        try:
            probe.touch()
        except OSError as exc:
            return f"{d} bind-mounted read-only (writes get {exc.strerror})"
        probe.unlink()
        raise RuntimeError("the read-only mount still accepted a write")

    def end(self) -> str | None:
        """Undo :meth:`start` (lazy unmount: a process inside the directory does not block it).

        Returns None when the storage is writable again, else why not: then ``mounted`` stays
        True, so that a later call tries again (the next challenge's start does as well).
        """
        why = None
        for attempt in range(MOUNT_ATTEMPTS):
            if not self.mounted:
                return None
            if (why := _mount("umount", "-l", str(self.directory))) is None:
                self.mounted = False
                self.marker.unlink(missing_ok=True)
                return None
            time.sleep(0.5 * (attempt + 1))
        return why


# --- the batch pause ---------------------------------------------------------------------------
class BatchPause:
    """The local batch pool stopped for a while (see the module docstring)."""

    def __init__(self, pool_dir: Path) -> None:
        self.pool_dir = pool_dir
        self.slots: str | None = None
        self.stopped: list[int] = []
        #: batch ids of the jobs whose process groups were stopped (the report's evidence)
        self.stopped_jobs: list[str] = []

    def running_jobs(self) -> dict[str, int]:
        """Batch id -> process group of the jobs running now (their supervisor wrote
        ``started.json``)."""
        jobs: dict[str, int] = {}
        for marker in (self.pool_dir / "run").glob("*"):
            started = self.pool_dir / "jobs" / marker.name / "started.json"
            with contextlib.suppress(OSError, ValueError, KeyError):
                jobs[marker.name] = int(json.loads(started.read_text())["pid"])
        return jobs

    def running_groups(self) -> list[int]:
        """Process groups of the jobs running now."""
        return list(self.running_jobs().values())

    def start(self) -> str:
        slots_file = self.pool_dir / "slots"
        if not slots_file.exists():
            raise RuntimeError(f"{self.pool_dir} is not a local batch pool (no slots file)")
        self.slots = slots_file.read_text().strip()
        write_atomic(slots_file, "0")  # a state file of the pool: never half-written
        for job_id, pgid in self.running_jobs().items():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGSTOP)
                self.stopped.append(pgid)
                self.stopped_jobs.append(job_id)
        return (
            f"local pool {self.pool_dir}: slots {self.slots} -> 0, "
            f"{len(self.stopped)} running job(s) SIGSTOPped"
        )

    def end(self) -> None:
        if self.slots is None:
            return
        from farmtools.batch.local import LocalPool

        write_atomic(self.pool_dir / "slots", self.slots)
        for pgid in self.stopped:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGCONT)
        self.stopped = []
        self.slots = None
        LocalPool(self.pool_dir).schedule()


# --- corrupt files ---------------------------------------------------------------------------
def drop_corrupt(path: Path, kind: str, good: Path | None, seed: int) -> str:
    """Write a raw file that cannot be read under the valid name ``path``; returns what it is."""
    rng = random.Random(seed)
    tmp = path.with_name(f".{path.name}.chaos")
    if kind == "truncated" and good is not None and good.exists():
        data = good.read_bytes()
        cut = len(data) // 2
        tmp.write_bytes(data[:cut])
        what = f"first {cut} of {len(data)} bytes of {good.name}"
    else:
        n = 200_000
        tmp.write_bytes(rng.randbytes(n))
        what = f"{n} random bytes"
    os.replace(tmp, path)  # appears complete (IN_MOVED_TO), as a DAQ that renames would do
    return what
