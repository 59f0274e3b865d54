"""The local batch backend: a pool of N slots on this machine, the embedded default.

Owns the pool's directory (``batch.local_dir``, default ``<home>/processing/localbatch``)::

    next_id             the last job id handed out
    lock                flock(2) serialising the scheduler between manager and supervisors
    jobs/<id>/spec.json       what to run (written at submission)
    jobs/<id>/started.json    written by the job's supervisor when the script starts
    jobs/<id>/accounting.json written by the supervisor when it ends (exit code, rusage...)
    jobs/<id>/cancel          a cancel request for a job that has left the queue
    queue/<id>          empty marker: pending
    run/<id>            empty marker: holds a slot

Each job runs under its own detached supervisor (:mod:`farmtools.batch.supervisor`), so jobs keep
running, and finish with their accounting written, while the manager is stopped or restarted;
when a job ends its supervisor starts the next pending ones, so the pool drains even with no
manager at all.  A supervisor that died without writing accounting (machine reboot, kill -9)
is reported as a node failure.

Imports the standard library, :mod:`farmtools.batch.base` and the supervisor's file names only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from farmtools.batch.base import BatchSystem, Ending, JobAccounting, JobSpec, JobStatus
from farmtools.batch.supervisor import CANCEL_FILE

#: how long a slot may be held by a job whose supervisor has not written ``started.json`` yet
#: before the job counts as lost (a supervisor starts in well under a second, even loaded)
START_GRACE_S = 120.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class LocalPool:
    """The pool directory and its scheduler (shared by the backend and the supervisors)."""

    def __init__(self, root: Path, slots: int | None = None) -> None:
        self.root = root
        for sub in ("jobs", "queue", "run"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        slots_file = root / "slots"
        if slots is not None:
            slots_file.write_text(str(slots))
        self.slots = int(slots_file.read_text()) if slots_file.exists() else 1

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with open(self.root / "lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _next_id(self) -> str:
        path = self.root / "next_id"
        n = int(path.read_text()) + 1 if path.exists() else 1
        path.write_text(str(n))
        return str(n)

    def add(self, spec: JobSpec) -> str:
        with self.locked():
            job_id = self._next_id()
            jobdir = self.root / "jobs" / job_id
            jobdir.mkdir()
            data: dict[str, Any] = {
                "id": job_id,
                "name": spec.name,
                "script": str(spec.script),
                "stdout": str(spec.stdout),
                "stderr": str(spec.stderr),
                "queue": spec.queue,
                "walltime_s": spec.walltime_s,
                "memory_mb": spec.memory_mb,
                "workdir": str(spec.workdir),
                "submitted": datetime.now(UTC).isoformat(),
            }
            (jobdir / "spec.json").write_text(json.dumps(data))
            (self.root / "queue" / job_id).touch()
            self._schedule()
        return job_id

    def _schedule(self) -> None:
        """Start pending jobs while slots are free (caller holds the lock)."""
        running = len(os.listdir(self.root / "run"))
        free = self.slots - running
        if free <= 0:
            return
        pending = sorted(os.listdir(self.root / "queue"), key=int)[:free]
        for job_id in pending:
            (self.root / "run" / job_id).touch()
            (self.root / "queue" / job_id).unlink()
            self._launch(job_id)

    @property
    def slot_cpus(self) -> int:
        """Cores of one slot: this machine's CPUs shared among the slots (at least 1).

        Exported to each job as ``FARMTOOLS_JOB_CPUS`` (how many threads ``farmtools reco``
        uses), as Slurm exports ``SLURM_CPUS_PER_TASK``.
        """
        return max(1, (os.cpu_count() or 1) // max(1, self.slots))

    def _launch(self, job_id: str) -> None:
        """Start the supervisor of ``job_id`` without waiting for it (caller holds the lock).

        Only the fork + exec is waited for (milliseconds), not the Python start-up of the
        supervisor (100-300 ms on a loaded machine), which used to happen with the pool lock
        held and so delayed every submission behind it.  The process started here forks the
        real supervisor into a new session and exits (:func:`farmtools.batch.supervisor.main`);
        a thread reaps it, so no zombie is left and the job is never a child of the manager.
        The slot is already held (``run/<id>``) and the queue marker gone, so the job can
        neither start twice nor be counted twice; if even the fork fails, the job ends at once
        as a node failure (the manager's retry rules apply) and its slot is freed.
        """
        jobdir = self.root / "jobs" / job_id
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "farmtools.batch.supervisor", str(jobdir)],
                stdin=subprocess.DEVNULL,
                close_fds=True,
                start_new_session=True,  # Ctrl-C / SIGHUP of the manager's group miss it
                env={**os.environ, "FARMTOOLS_JOB_CPUS": str(self.slot_cpus)},
            )
        except OSError as exc:
            acc = {
                "ended": datetime.now(UTC).isoformat(),
                "ending": "node_fail",
                "error": f"cannot start the supervisor: {exc}",
            }
            (jobdir / "accounting.json").write_text(json.dumps(acc))
            with contextlib.suppress(FileNotFoundError):
                (self.root / "run" / job_id).unlink()
            return
        threading.Thread(target=proc.wait, name=f"reap-supervisor-{job_id}", daemon=True).start()

    def schedule(self) -> None:
        with self.locked():
            self._reap_dead()
            self._schedule()

    def job_done(self, job_id: str) -> None:
        """Free the slot of ``job_id`` and start what waits (called by its supervisor)."""
        with self.locked():
            with contextlib.suppress(FileNotFoundError):
                (self.root / "run" / job_id).unlink()
            self._schedule()

    def _reap_dead(self) -> None:
        """Slots held by supervisors that died without accounting become node failures."""
        for job_id in os.listdir(self.root / "run"):
            jobdir = self.root / "jobs" / job_id
            if (jobdir / "accounting.json").exists():
                with contextlib.suppress(FileNotFoundError):
                    (self.root / "run" / job_id).unlink()
                continue
            started = jobdir / "started.json"
            if started.exists():
                info = json.loads(started.read_text())
                if _pid_alive(int(info["supervisor"])):
                    continue
                error = "supervisor disappeared"
            else:
                # Its supervisor is starting right now, or died before it could say so
                # (a reboot, a kill -9 in the first second): after the grace the slot would
                # otherwise be held for ever.
                try:
                    held_s = time.time() - (self.root / "run" / job_id).stat().st_mtime
                except FileNotFoundError:
                    continue
                if held_s < START_GRACE_S:
                    continue
                error = f"supervisor never started the job ({held_s:.0f} s after its launch)"
            acc = {"ended": datetime.now(UTC).isoformat(), "ending": "node_fail", "error": error}
            (jobdir / "accounting.json").write_text(json.dumps(acc))
            with contextlib.suppress(FileNotFoundError):
                (self.root / "run" / job_id).unlink()

    def status(self, job_id: str) -> JobStatus:
        jobdir = self.root / "jobs" / job_id
        if not (jobdir / "spec.json").exists():
            return JobStatus.UNKNOWN
        if (jobdir / "accounting.json").exists():
            return JobStatus.FINISHED
        if (self.root / "queue" / job_id).exists():
            return JobStatus.PENDING
        return JobStatus.RUNNING

    def cancel(self, job_id: str) -> None:
        """Cancel a pending job at once; ask a dispatched one's supervisor to stop it.

        The request file is what the supervisor obeys (it may not have said who it is yet); the
        SIGTERM only makes a running job stop without waiting for the next tick.
        """
        jobdir = self.root / "jobs" / job_id
        with self.locked():
            marker = self.root / "queue" / job_id
            if marker.exists():
                marker.unlink()
                acc = {"ended": datetime.now(UTC).isoformat(), "ending": "cancelled"}
                (jobdir / "accounting.json").write_text(json.dumps(acc))
                return
            if (jobdir / "spec.json").exists() and not (jobdir / "accounting.json").exists():
                (jobdir / CANCEL_FILE).touch()
        started = jobdir / "started.json"
        if started.exists() and not (jobdir / "accounting.json").exists():
            info = json.loads(started.read_text())
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(info["supervisor"]), 15)

    def accounting(self, job_id: str) -> JobAccounting | None:
        jobdir = self.root / "jobs" / job_id
        try:
            acc = json.loads((jobdir / "accounting.json").read_text())
        except FileNotFoundError:
            return None
        spec = json.loads((jobdir / "spec.json").read_text())
        started: dict[str, Any] = {}
        with contextlib.suppress(FileNotFoundError):
            started = json.loads((jobdir / "started.json").read_text())
        return JobAccounting(
            ending=Ending(acc["ending"]),
            exit_code=acc.get("exit_code"),
            signal=acc.get("signal"),
            submitted=_time(spec.get("submitted")),
            started=_time(started.get("started")),
            ended=_time(acc.get("ended")),
            cpu_s=acc.get("cpu_s"),
            max_rss_kb=acc.get("max_rss_kb"),
            walltime_s=acc.get("walltime_s"),
            node=started.get("node"),
            raw_state=acc["ending"],
            extra={"session": started.get("pid"), "error": acc.get("error")},
        )


class LocalBatch(BatchSystem):
    """:class:`BatchSystem` over a :class:`LocalPool` of ``slots`` parallel jobs."""

    name = "local"

    def __init__(self, root: Path, slots: int) -> None:
        self.pool = LocalPool(root, slots)

    def submit(self, spec: JobSpec) -> str:
        return self.pool.add(spec)

    def states(self, ids: Iterable[str]) -> dict[str, JobStatus]:
        self.pool.schedule()
        return {i: self.pool.status(i) for i in ids}

    def accounting(self, job_id: str) -> JobAccounting | None:
        return self.pool.accounting(job_id)

    def cancel(self, job_id: str) -> None:
        self.pool.cancel(job_id)

    def available(self) -> bool:
        return self.pool.root.is_dir()
