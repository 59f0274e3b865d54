"""The Slurm backend: ``sbatch --parsable``, ``squeue``, ``sacct -P``, ``scancel``.

Owns the Slurm command lines and the parsing of their output.  Exit code, CPU time and MaxRSS
come only from ``sacct`` (slurmdbd): the job's own line carries state, exit code and times,
the ``.batch`` step carries MaxRSS.  ``sacct`` may lag a moment behind the end of a job (the
record travels slurmctld -> slurmdbd asynchronously): :meth:`SlurmBatch.accounting` returns None
until the line shows a final state, and the manager asks again at its next poll.  When the
lag outlasts the manager's grace, :meth:`SlurmBatch.final_record` asks ``scontrol show job``,
which keeps a finished job's state and exit code for ``MinJobAge`` seconds (300 by default):
a job the controller saw COMPLETED is then taken as completed (without CPU and MaxRSS, which
only slurmdbd has) instead of being declared lost and resubmitted.

Imports the standard library and :mod:`farmtools.batch.base` / ``commands``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from farmtools.batch.base import (
    BatchUnavailable,
    Ending,
    JobAccounting,
    JobSpec,
    JobStatus,
    hms,
    parse_duration,
)
from farmtools.batch.commands import CommandLineBatch

SACCT_FIELDS = "JobID,JobName,State,ExitCode,Elapsed,TotalCPU,MaxRSS,NodeList,Submit,Start,End"

#: squeue %T states that mean "still waiting"
_PENDING = {
    "PENDING",
    "CONFIGURING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "SUSPENDED",
    "RESV_DEL_HOLD",
    "SPECIAL_EXIT",
}
#: sacct states and how they end; anything else is not final yet
_FINAL = {
    "COMPLETED": Ending.COMPLETED,
    "FAILED": Ending.COMPLETED,
    "TIMEOUT": Ending.TIMEOUT,
    "OUT_OF_MEMORY": Ending.OUT_OF_MEMORY,
    "NODE_FAIL": Ending.NODE_FAIL,
    "BOOT_FAIL": Ending.NODE_FAIL,
    "CANCELLED": Ending.CANCELLED,
    "PREEMPTED": Ending.SIGNALLED,
    "DEADLINE": Ending.TIMEOUT,
}


def parse_size_kb(text: str) -> int | None:
    """kB of a Slurm size (``94644K``, ``1.5M``, ``2G``, bare bytes); None when empty."""
    text = text.strip()
    if not text:
        return None
    unit = text[-1].upper()
    factors = {"K": 1.0, "M": 1024.0, "G": 1024.0**2, "T": 1024.0**3}
    if unit in factors:
        return round(float(text[:-1]) * factors[unit])
    return round(float(text) / 1024)


def _time(text: str) -> datetime | None:
    """Slurm prints the cluster's local time without a zone; ``Unknown``/``None`` = not known."""
    if not text or text in ("Unknown", "None"):
        return None
    return datetime.fromisoformat(text).astimezone()


def _ending(state_text: str, exit_text: str) -> tuple[Ending, int | None, int | None] | None:
    """(ending, exit code, signal) of a Slurm state and ``code:signal``; None if not final."""
    ending = _FINAL.get(state_text.split()[0] if state_text else "")  # "CANCELLED by 0"
    if ending is None:
        return None
    code_s, _, sig_s = exit_text.partition(":")
    code, sig = int(code_s or 0), int(sig_s or 0)
    if ending is Ending.COMPLETED and sig:
        ending = Ending.SIGNALLED
    return ending, None if sig else code, sig or None


def parse_scontrol_job(text: str, job_id: str) -> JobAccounting | None:
    """A finished job from ``scontrol show job -o <id>`` output; None while it is not final."""
    for line in text.splitlines():
        fields = dict(re.findall(r"(?:^|\s)([A-Za-z][\w:/]*)=(\S*)", line))
        if fields.get("JobId") != job_id:
            continue
        state = fields.get("JobState", "")
        exit_text = fields.get("ExitCode", "0:0")
        final = _ending(state, exit_text)
        if final is None:
            return None
        ending, code, sig = final
        run_time = fields.get("RunTime")
        return JobAccounting(
            ending=ending,
            exit_code=code,
            signal=sig,
            submitted=_time(fields.get("SubmitTime", "")),
            started=_time(fields.get("StartTime", "")),
            ended=_time(fields.get("EndTime", "")),
            walltime_s=parse_duration(run_time) if run_time else None,
            node=fields.get("NodeList") or fields.get("BatchHost") or None,
            raw_state=f"{state} {exit_text} (scontrol: no sacct record yet)",
        )
    return None


def parse_sacct(text: str, job_id: str) -> JobAccounting | None:
    """Accounting of ``job_id`` from ``sacct -P -n -o SACCT_FIELDS`` output, None if not final."""
    main: list[str] | None = None
    max_rss: int | None = None
    for line in text.splitlines():
        cols = line.split("|")
        if len(cols) < 11:
            continue
        if cols[0] == job_id:
            main = cols
        elif cols[0].startswith(job_id + "."):
            rss = parse_size_kb(cols[6])
            if rss is not None:
                max_rss = max(rss, max_rss or 0)
    if main is None:
        return None
    _, _name, state_text, exit_text, elapsed, total_cpu, _rss, node = main[:8]
    final = _ending(state_text, exit_text)
    if final is None:
        return None
    ending, code, sig = final
    return JobAccounting(
        ending=ending,
        exit_code=code,
        signal=sig,
        submitted=_time(main[8]),
        started=_time(main[9]),
        ended=_time(main[10]),
        cpu_s=parse_duration(total_cpu) if total_cpu else None,
        max_rss_kb=max_rss,
        walltime_s=parse_duration(elapsed) if elapsed else None,
        node=node or None,
        raw_state=f"{state_text} {exit_text}",
    )


def sbatch_command(spec: JobSpec) -> list[str]:
    """The ``sbatch`` argv that submits ``spec`` (arguments, not a shell line)."""
    return [
        "sbatch",
        "--parsable",
        f"--job-name={spec.batch_name}",
        f"--partition={spec.queue}",
        f"--time={hms(spec.walltime_s)}",
        f"--mem={spec.memory_mb}M",
        f"--cpus-per-task={spec.cores}",  # Slurm exports it as SLURM_CPUS_PER_TASK
        f"--output={spec.stdout}",
        f"--error={spec.stderr}",
        f"--chdir={spec.workdir}",
        str(spec.script),
    ]


class SlurmBatch(CommandLineBatch):
    """Slurm through its command-line clients (``SLURM_CONF`` etc. from ``env`` or the process)."""

    name = "slurm"

    def submit(self, spec: JobSpec) -> str:
        out = self._run(*sbatch_command(spec), refuse=True)
        return out.strip().split(";")[0]

    def find(self, spec: JobSpec) -> str | None:
        """The job named by ``spec``'s key: ``squeue`` (any state the controller still holds),
        then ``sacct`` (the last week; skipped on a cluster without accounting storage)."""
        if not spec.key:
            return None
        out = self._run("squeue", "-h", "-t", "all", "-n", spec.batch_name, "-o", "%i")
        try:
            out += self._run(
                "sacct", "-n", "-X", "-P", "-S", "now-7days", "--name", spec.batch_name,
                "-o", "JobID",
            )  # fmt: skip
        except BatchUnavailable as exc:
            if "accounting storage is disabled" not in str(exc).lower():
                raise
        ids = [line.strip() for line in out.splitlines() if line.strip()]
        return ids[0] if ids else None

    def states(self, ids: Iterable[str]) -> dict[str, JobStatus]:
        wanted = list(ids)
        if not wanted:
            return {}
        # all jobs, not ``-j``: squeue fails for an id it has already forgotten
        out = self._run("squeue", "-h", "-o", "%i|%T")
        seen: dict[str, JobStatus] = {}
        for line in out.splitlines():
            job, _, state = line.strip().partition("|")
            if job in wanted:
                seen[job] = (
                    JobStatus.PENDING
                    if state in _PENDING
                    else (
                        JobStatus.RUNNING
                        if state in ("RUNNING", "COMPLETING", "STAGE_OUT")
                        else JobStatus.FINISHED
                    )
                )
        # not in squeue any more: finished (sacct tells how)
        return {i: seen.get(i, JobStatus.FINISHED) for i in wanted}

    def accounting(self, job_id: str) -> JobAccounting | None:
        try:
            out = self._run("sacct", "-P", "-n", "-j", job_id, "-o", SACCT_FIELDS)
        except BatchUnavailable as exc:
            if "accounting storage is disabled" not in str(exc).lower():
                raise
            # A cluster without slurmdbd (the mock farm's, a small one's): the controller's own
            # record is all there is (exit code, times, node; no CPU or memory), kept for
            # MinJobAge seconds after the job's end.  Not an outage: nothing to wait for.
            return self.final_record(job_id)
        return parse_sacct(out, job_id)

    def final_record(self, job_id: str) -> JobAccounting | None:
        """The controller's record (``scontrol show job``) while sacct has none; see module doc."""
        try:
            out = self._run("scontrol", "show", "job", "-o", job_id)
        except BatchUnavailable as exc:
            if "invalid job id" in str(exc).lower():
                return None  # older than MinJobAge: the controller forgot it
            raise
        return parse_scontrol_job(out, job_id)

    def cancel(self, job_id: str) -> None:
        self._run("scancel", job_id)

    def available(self) -> bool:
        try:
            self._run("squeue", "-h", "-o", "%i")
        except Exception:
            return False
        return True
