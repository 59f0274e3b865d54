"""Running a batch system's command-line tools, with its failures told apart.

Owns :func:`run_tool`: the one place where ``sbatch``, ``squeue``, ``qsub``... are executed (as
argument lists, never through a shell) and where "the tool is missing / the controller does not
answer" (:class:`~farmtools.batch.base.BatchUnavailable`, transient) is told apart from "the
batch system answered no" (:class:`~farmtools.batch.base.SubmissionRefused`).  Imports the
standard library and :mod:`farmtools.batch.base`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence

from farmtools.batch.base import BatchSystem, BatchUnavailable, SubmissionRefused
from farmtools.batch.jobenv import job_environment

#: stderr phrases of Slurm and TORQUE clients that mean "the server cannot be reached"
UNREACHABLE = (
    "unable to contact slurm controller",
    "socket timed out",
    "connection refused",
    "communication connection failure",
    "slurm_load_jobs error: unable to contact",
    "zero bytes were transmitted",
    "cannot connect to server",
    "pbs_server is not running",
    "could not connect to",
    "slurmdbd: connection refused",
    "problem talking to the database",
    "invalid user for slurmdbd",
)


def run_tool(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    refuse: bool = False,
) -> str:
    """stdout of ``args``; BatchUnavailable or (with ``refuse``) SubmissionRefused on failure.

    The tool runs with ``env`` (default: this process's) without secrets
    (:mod:`farmtools.batch.jobenv`): ``sbatch`` hands its environment to the job it submits.
    """
    try:
        proc = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=job_environment(env),
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise BatchUnavailable(f"{args[0]}: command not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise BatchUnavailable(f"{args[0]}: no answer after {timeout:.0f} s") from exc
    if proc.returncode != 0:
        message = f"{' '.join(args[:1])} exited {proc.returncode}: {proc.stderr.strip()[:500]}"
        low = proc.stderr.lower()
        if refuse and not any(p in low for p in UNREACHABLE):
            raise SubmissionRefused(message)
        raise BatchUnavailable(message)
    return proc.stdout


class CommandLineBatch(BatchSystem):
    """A batch system driven through its command-line clients (Slurm, TORQUE/PBS).

    ``env`` selects the server (``SLURM_CONF``, ``PBS_DEFAULT``...) without touching the
    process's own environment, so one manager can drive a test cluster beside a real one.
    """

    def __init__(self, env: Mapping[str, str] | None = None, timeout: float = 30.0) -> None:
        self.env = env
        self.timeout = timeout
        # a submission command started by a manager killed meanwhile may still land this late
        self.settle_s = timeout + 5.0

    def _run(self, *args: str, refuse: bool = False) -> str:
        return run_tool(args, env=self.env, timeout=self.timeout, refuse=refuse)
