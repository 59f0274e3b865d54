"""The one interface every batch backend implements, and the values that cross it.

Owns :class:`BatchSystem`, :class:`JobSpec`, :class:`JobStatus`, :class:`JobAccounting`,
:class:`Ending` and the two errors a backend may raise.  Imports only the standard library:
backends, the processing manager and the CLI all build on this module, so it must stay light.

Why one narrow interface: the manager must not care whether a job runs on this machine, on
Slurm, on the seed's TORQUE or on HTCondor.  It submits a rendered script, polls states, and
asks for the final accounting once a job has left the queue; everything backend-specific
(command lines, output formats, state names) stays in the backend's module.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any


class BatchUnavailable(Exception):
    """The batch system cannot be reached (controller down, command missing, timeout).

    Transient by nature: the manager keeps the submission and tries again later.
    """


class SubmissionRefused(Exception):
    """The batch system answered and refused the job (bad queue, limits, malformed script)."""


class JobStatus(enum.StrEnum):
    """Where a job is, as far as the batch system says right now."""

    PENDING = "pending"
    RUNNING = "running"
    #: left the queue; ask :meth:`BatchSystem.accounting` how it ended
    FINISHED = "finished"
    #: the batch system does not know the id (yet or any more)
    UNKNOWN = "unknown"


class Ending(enum.StrEnum):
    """How a finished job ended, in backend-independent words."""

    COMPLETED = "completed"  # the script returned; see exit_code (0 = success)
    SIGNALLED = "signalled"  # killed by a signal nobody asked for (see ``signal``)
    OUT_OF_MEMORY = "out_of_memory"
    TIMEOUT = "timeout"  # walltime exceeded
    NODE_FAIL = "node_fail"  # the worker or the job's supervisor died
    CANCELLED = "cancelled"  # somebody cancelled it


@dataclass(frozen=True)
class JobSpec:
    """What to run and with which resources; paths are absolute and already exist (but logs)."""

    name: str  # reco_run<N>-seq<M>
    script: Path  # the rendered, archived job script
    stdout: Path
    stderr: Path
    queue: str = "prod"
    walltime_s: int = 3600
    memory_mb: int = 1500
    #: cores the job asks for (Slurm ``--cpus-per-task``, TORQUE ``ppn``, HTCondor
    #: ``request_cpus``, slots of the local pool); the reconstruction runs that many threads
    cores: int = 1
    workdir: Path = Path("/")
    #: the idempotency key of this submission (see :meth:`BatchSystem.find`); "" = none
    key: str = ""

    @property
    def batch_name(self) -> str:
        """The name the batch system knows the job by: ``<name>.<key>`` (``name`` without key).

        The key in the name is what lets a manager killed between handing the job over and
        recording its batch id find it again (``squeue --name``, ``qstat``'s ``Job_Name``).
        """
        return f"{self.name}.{self.key}" if self.key else self.name


@dataclass(frozen=True)
class JobAccounting:
    """The final record of a job, filled from what the backend knows (None = not known)."""

    ending: Ending
    exit_code: int | None = None
    signal: int | None = None
    submitted: datetime | None = None
    started: datetime | None = None
    ended: datetime | None = None
    cpu_s: float | None = None
    max_rss_kb: int | None = None
    mem_kb: int | None = None  # TORQUE's resources_used.mem (kept for the seed's job log)
    vmem_kb: int | None = None
    walltime_s: float | None = None
    node: str | None = None
    raw_state: str = ""  # the backend's own words, for the story
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("submitted", "started", "ended"):
            if d[k] is not None:
                d[k] = d[k].isoformat()
        return d


class BatchSystem(abc.ABC):
    """A batch system: submit scripts, poll states, read accounting, cancel.

    Implementations must be safe to re-create at any time: a new manager process builds a new
    backend object and must be able to follow jobs submitted by the previous one, by id alone.
    """

    #: short name stored in the ``jobs`` table (local, slurm, torque, htcondor)
    name: str = ""
    #: how long a submission may still reach the batch system after its submitter died (a
    #: client command such as ``sbatch`` outlives a SIGKILLed manager for up to its timeout):
    #: a key :meth:`find` does not know is resubmitted only when its intent is older than this
    settle_s: float = 0.0

    @abc.abstractmethod
    def submit(self, spec: JobSpec) -> str:
        """Submit ``spec``; returns the batch job id.

        Raises :class:`BatchUnavailable` (try later) or :class:`SubmissionRefused` (the
        batch system said no).
        """

    @abc.abstractmethod
    def find(self, spec: JobSpec) -> str | None:
        """The batch id of the job submitted for ``spec.key`` (pending, running or ended), or None.

        The reconciliation of exactly-once submission: the manager records the key before it
        calls :meth:`submit`; if it dies before recording the batch id, the next manager asks
        here and adopts the job instead of submitting it again.  None means the batch system
        never got it (or has forgotten it, which :attr:`settle_s` and the key's age bound).
        Raises :class:`BatchUnavailable`.
        """

    @abc.abstractmethod
    def states(self, ids: Iterable[str]) -> dict[str, JobStatus]:
        """Current status of each id; raises :class:`BatchUnavailable`."""

    @abc.abstractmethod
    def accounting(self, job_id: str) -> JobAccounting | None:
        """Final accounting of a finished job, or None while the batch system has none yet."""

    def final_record(self, job_id: str) -> JobAccounting | None:
        """What the controller itself still remembers of a finished job, or None.

        The fallback when :meth:`accounting` stays empty for longer than the manager's grace
        (slurmdbd lagging behind slurmctld): state, exit code, times and node, usually without
        CPU time or memory.  It lets the manager tell a job that completed from one that was
        lost, so a completed job is not resubmitted because the accounting database is slow.
        Backends whose accounting is immediate keep this default.
        """
        return None

    @abc.abstractmethod
    def cancel(self, job_id: str) -> None:
        """Ask the batch system to stop the job (pending or running)."""

    @abc.abstractmethod
    def available(self) -> bool:
        """True when the batch system answers right now (health check, cheap)."""


def hms(seconds: float | int | None) -> str:
    """``HH:MM:SS`` (hours may exceed 24), the way TORQUE and the seed's logs print durations."""
    if seconds is None:
        return "--:--:--"
    s = round(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def parse_duration(text: str) -> float:
    """Seconds of ``[D-]HH:MM:SS[.fff]``, ``MM:SS.fff`` or plain seconds (Slurm, TORQUE, config).

    >>> parse_duration("1-02:03:04"), parse_duration("05:10"), parse_duration("00:00:01.5")
    (93784.0, 310.0, 1.5)
    """
    text = text.strip()
    days = 0
    if "-" in text:
        d, text = text.split("-", 1)
        days = int(d)
    parts = [float(p) for p in text.split(":")]
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + p
    return days * 86400 + seconds
