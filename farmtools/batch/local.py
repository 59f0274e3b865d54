"""The local batch backend: a pool of N slots on this machine, the embedded default.

Owns the pool's directory (``batch.local_dir``, default ``<home>/processing/localbatch``)::

    next_id             the last job id handed out (recovered from ``jobs/`` if unreadable)
    slots               the number of slots (written by the manager at its start)
    lock                flock(2) serialising the scheduler between manager and supervisors
    jobs/<id>/spec.json       what to run (written at submission)
    jobs/<id>/started.json    written by the job's supervisor when the script starts
    jobs/<id>/accounting.json written by the supervisor when it ends (exit code, rusage...)
    jobs/<id>/cancel          a cancel request for a job that has left the queue
    jobs/<id>/supervisor.pid  the supervisor's pid (= the session of its job), before the start
    jobs/<id>/orphan          its supervisor died while the job ran on (adopted by the pool)
    keys/<key>          symlink to <id>: the job submitted under that idempotency key
    queue/<id>          empty marker: pending
    run/<id>            empty marker: holds its slots (as many as the cores its spec asks for)

Each job runs under its own detached supervisor (:mod:`farmtools.batch.supervisor`), so jobs keep
running, and finish with their accounting written, while the manager is stopped or restarted;
when a job ends its supervisor starts the next pending ones, so the pool drains even with no
manager at all.  A supervisor that died without writing accounting (machine reboot, kill -9)
is reported as a node failure, unless its job runs on: then the job is an orphan, adopted (see
:meth:`LocalPool._reap_dead`), keeps its slot and is collected when its session has ended.

Every state file is written atomically (:mod:`farmtools.batch.statefile`): a kill of the manager
or of a supervisor at any instruction leaves either the old file or the new one.

Imports the standard library, :mod:`farmtools.batch.base`, ``statefile`` and the supervisor's file
names only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
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
from farmtools.batch.jobdir import CANCEL_FILE, SUPERVISOR_FILE
from farmtools.batch.jobenv import job_environment
from farmtools.batch.statefile import write_atomic, write_json_atomic

log = logging.getLogger("farmtools.batch")

#: how long a slot may be held by a job whose supervisor has not written ``started.json`` yet
#: before the job counts as lost (a supervisor starts in well under a second, even loaded)
START_GRACE_S = 120.0


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie does not (a killed supervisor waits to be reaped by init)."""
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def session_alive(sid: int, created: float | None) -> bool:
    """Whether a process of the job's session ``sid`` still runs (zombies do not count).

    The job's script leads its own session (and process group) ``sid``.  ``created`` is the
    leader's start time recorded by the supervisor: a leader with another start time is a new
    process that was given the same pid, not the job.
    """
    import psutil

    try:
        os.killpg(sid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        leader = psutil.Process(sid)
        if created is None or abs(leader.create_time() - created) < 0.01:
            if leader.status() != psutil.STATUS_ZOMBIE:
                return True
        elif leader.status() != psutil.STATUS_ZOMBIE:
            return False  # the pid was reused for a new group of someone else's
    except psutil.NoSuchProcess:
        pass
    # the leader ended but members of its group may still run (a program the script started)
    for proc in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(proc.pid) == sid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
    return False


def session_running(sid: int) -> bool:
    """Whether a live (not zombie) process is in session ``sid`` (a scan of the process table;
    only asked for a job whose supervisor died before it wrote ``started.json``)."""
    import psutil

    for proc in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getsid(proc.pid) == sid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
    return False


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class LocalPool:
    """The pool directory and its scheduler (shared by the backend and the supervisors)."""

    def __init__(self, root: Path, slots: int | None = None) -> None:
        self.root = root
        for sub in ("jobs", "queue", "run", "keys"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        if slots is not None:
            write_atomic(root / "slots", str(slots))
            self.slots = slots
        else:
            self.slots = self._read_slots()

    def _read_slots(self) -> int:
        """The manager's slot count; 1 (never more jobs than a pool can have) if unreadable."""
        path = self.root / "slots"
        try:
            return int(path.read_text())
        except FileNotFoundError:
            return 1
        except (OSError, ValueError) as exc:
            log.warning(
                "%s is unreadable (%s): the pool runs 1 job at a time until the "
                "manager rewrites it",
                path,
                exc,
            )
            return 1

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with open(self.root / "lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _highest_job(self) -> int:
        """The highest job number under ``jobs/`` (0 for an empty pool)."""
        return max((int(n) for n in os.listdir(self.root / "jobs") if n.isdigit()), default=0)

    def _next_id(self) -> str:
        """A job id never used before (caller holds the lock).

        ``next_id`` is the fast path; when it is missing or unreadable, or names a directory that
        already exists (an old copy of the file), the highest job directory says where to go on,
        and a log line says so: a damaged counter must never cost a file one of its tries.
        """
        path = self.root / "next_id"
        try:
            n = int(path.read_text()) + 1
        except FileNotFoundError:
            n = self._highest_job() + 1
        except (OSError, ValueError) as exc:
            n = self._highest_job() + 1
            log.warning("%s is unreadable (%s): job ids go on from %d", path, exc, n)
        if (self.root / "jobs" / str(n)).exists():
            m = self._highest_job() + 1
            log.warning("%s is behind the job directories: job ids go on from %d", path, m)
            n = m
        write_atomic(path, str(n))
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
                "cores": spec.cores,
                "workdir": str(spec.workdir),
                "key": spec.key,
                "submitted": datetime.now(UTC).isoformat(),
            }
            write_json_atomic(jobdir / "spec.json", data)
            if spec.key:  # from here on find() knows it (a symlink appears in one step)
                os.symlink(job_id, self.root / "keys" / spec.key)
            (self.root / "queue" / job_id).touch()
            self._schedule()
        return job_id

    def find(self, key: str) -> str | None:
        """The id of the job submitted under ``key``, or None (see :meth:`BatchSystem.find`).

        A submitter killed between the key's link and the queue marker left a job that is in
        no state at all (no marker, no accounting, never started): it is queued now, so that
        the job adopted by its key does run.
        """
        with self.locked():
            try:
                job_id = os.readlink(self.root / "keys" / key)
            except FileNotFoundError:
                return None
            jobdir = self.root / "jobs" / job_id
            limbo = not any(
                p.exists()
                for p in (
                    self.root / "queue" / job_id,
                    self.root / "run" / job_id,
                    jobdir / "accounting.json",
                    jobdir / "started.json",
                )
            )
            if limbo:
                log.warning("job %s was never queued (its submitter died): queued now", job_id)
                (self.root / "queue" / job_id).touch()
                self._schedule()
        return job_id

    def _schedule(self) -> None:
        """Start pending jobs, oldest first, while they fit in the free slots (caller holds
        the lock).  A job of N cores holds N slots; the oldest waiting job that does not fit
        stops the others behind it, so that a wide job is never starved by narrow ones."""
        held = sum(self.job_slots(j) for j in os.listdir(self.root / "run"))
        for job_id in sorted(os.listdir(self.root / "queue"), key=int):
            need = self.job_slots(job_id)
            if held + need > self.slots:
                return
            (self.root / "run" / job_id).touch()
            (self.root / "queue" / job_id).unlink()
            self._launch(job_id, need)
            held += need

    def job_slots(self, job_id: str) -> int:
        """Slots job ``job_id`` holds: the cores it asked for (``spec.json``), at most the
        pool's slots (so that it can ever start); 1 for a spec of an older version."""
        try:
            spec = json.loads((self.root / "jobs" / job_id / "spec.json").read_text())
            cores = int(spec.get("cores", 1))
        except (OSError, ValueError, TypeError, AttributeError):
            cores = 1
        return max(1, min(cores, self.slots))

    @property
    def slot_cpus(self) -> int:
        """Cores of one slot: this machine's CPUs shared among the slots (at least 1).

        Exported to each job as ``FARMTOOLS_JOB_CPUS`` (how many threads ``farmtools reco``
        uses), as Slurm exports ``SLURM_CPUS_PER_TASK``.
        """
        return max(1, (os.cpu_count() or 1) // max(1, self.slots))

    def _launch(self, job_id: str, slots: int = 1) -> None:
        """Start the supervisor of ``job_id`` without waiting for it (caller holds the lock).

        The job is told the cores of the ``slots`` it holds (``FARMTOOLS_JOB_CPUS``).

        Only the fork + exec is waited for (milliseconds), not the Python start-up of the
        supervisor (100-300 ms on a loaded machine): waited for with the pool lock held, it
        would delay every submission behind it.  The process started here forks the
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
                env=job_environment(FARMTOOLS_JOB_CPUS=str(self.slot_cpus * slots)),
            )
        except OSError as exc:
            acc = {
                "ended": datetime.now(UTC).isoformat(),
                "ending": "node_fail",
                "error": f"cannot start the supervisor: {exc}",
            }
            write_json_atomic(jobdir / "accounting.json", acc)
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
        """Slots held by supervisors that died without accounting become node failures.

        Once their job's session has ended too: while it runs on, the job keeps its slot.
        """
        for job_id in os.listdir(self.root / "run"):
            jobdir = self.root / "jobs" / job_id
            if (jobdir / "accounting.json").exists():
                with contextlib.suppress(FileNotFoundError):
                    (self.root / "run" / job_id).unlink()
                continue
            started = jobdir / "started.json"
            if started.exists():
                info = json.loads(started.read_text())
                if pid_alive(int(info["supervisor"])):
                    continue
                pgid = int(info["pid"])
                if self._orphan(job_id, jobdir, session_alive(pgid, info.get("pid_created")), pgid):
                    continue
                error = (
                    "supervisor disappeared; its job ran on and ended without it (no exit code here)"
                    if (jobdir / "orphan").exists()
                    else "supervisor disappeared"
                )
            elif (supervisor := _read_pid(jobdir / SUPERVISOR_FILE)) is not None and not pid_alive(
                supervisor
            ):
                # killed after it started the script, before it could say so: the script runs
                # in the supervisor's session, which tells whether it runs on
                if self._orphan(job_id, jobdir, session_running(supervisor), supervisor):
                    continue
                error = (
                    "supervisor disappeared before it recorded the start; its job ran on and "
                    "ended without it (no exit code here)"
                    if (jobdir / "orphan").exists()
                    else "supervisor disappeared before it started the job"
                )
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
            # a job cancelled after its supervisor died was stopped by cancel() itself
            ending = "cancelled" if (jobdir / CANCEL_FILE).exists() else "node_fail"
            acc = {"ended": datetime.now(UTC).isoformat(), "ending": ending, "error": error}
            write_json_atomic(jobdir / "accounting.json", acc)
            with contextlib.suppress(FileNotFoundError):
                (self.root / "run" / job_id).unlink()

    @staticmethod
    def _orphan(job_id: str, jobdir: Path, running: bool, group: int) -> bool:
        """Whether a job whose supervisor died runs on (and then mark it an orphan, once).

        Not a node failure while it runs (it may well succeed): the job stays running and keeps
        its slot, so the pool never runs more jobs than it has slots; the manager collects it
        when it has ended, from its status file.
        """
        if not running:
            return False
        orphan = jobdir / "orphan"
        if not orphan.exists():
            orphan.touch()
            log.warning(
                "job %s: its supervisor died, its job (group %s) runs on: adopted", job_id, group
            )
        return True

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
                write_json_atomic(jobdir / "accounting.json", acc)
                return
            if (jobdir / "spec.json").exists() and not (jobdir / "accounting.json").exists():
                (jobdir / CANCEL_FILE).touch()
        started = jobdir / "started.json"
        if started.exists() and not (jobdir / "accounting.json").exists():
            info = json.loads(started.read_text())
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(info["supervisor"]), 15)
            if not pid_alive(int(info["supervisor"])):  # an orphan: nobody else stops it
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(int(info["pid"]), 9)

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

    def find(self, spec: JobSpec) -> str | None:
        return self.pool.find(spec.key) if spec.key else None

    def states(self, ids: Iterable[str]) -> dict[str, JobStatus]:
        self.pool.schedule()
        return {i: self.pool.status(i) for i in ids}

    def accounting(self, job_id: str) -> JobAccounting | None:
        return self.pool.accounting(job_id)

    def cancel(self, job_id: str) -> None:
        self.pool.cancel(job_id)

    def available(self) -> bool:
        return self.pool.root.is_dir()
