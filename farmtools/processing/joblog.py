"""The seed's batch job log (one per job), written under ``all_logs/batch/run<N>/`` when a job ends.

Owns the exact field layout of seed-conventions.md: a label padded to 17 characters, ``": "``,
the value; times in the farm's local time; CPU and walltime as HH:MM:SS; memory in MB with two
decimals (``memory(MB)`` is the job's memory as the batch system reports it, TORQUE's
``resources_used.mem``, else the peak RSS; ``max memory(MB)`` is the virtual memory TORQUE
reports, else the peak RSS).  Operators read these files; the database holds the same figures.

Imports the standard library and :mod:`farmtools.batch.base`.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from farmtools.batch.base import JobAccounting, hms

LABELS = (
    "job submitted on",
    "job started on",
    "job ended on",
    "exit code",
    "CPU",
    "memory(MB)",
    "max memory(MB)",
    "walltime",
    "Job ID",
    "User ID",
    "Group ID",
    "Job Name",
    "Session ID",
    "Resources Used",
    "Queue Name",
)


def _t(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "unknown"


def _mb(kb: int | None) -> str:
    return f"{kb / 1024:.2f}" if kb is not None else "unknown"


def format_job_log(
    acc: JobAccounting,
    *,
    job_id: str,
    name: str,
    user: str,
    group: str,
    queue: str,
    exit_code: int | None,
) -> str:
    """The log text; ``exit_code`` is the manager's (from the batch system or the status file)."""
    mem = acc.mem_kb if acc.mem_kb is not None else acc.max_rss_kb
    vmem = acc.vmem_kb if acc.vmem_kb is not None else acc.max_rss_kb
    resources = acc.extra.get("resources_used") or (
        f"cput={hms(acc.cpu_s)},mem={mem if mem is not None else 0}kb,"
        f"vmem={vmem if vmem is not None else 0}kb,walltime={hms(acc.walltime_s)}"
    )
    code = (
        str(exit_code)
        if exit_code is not None
        else (f"signal {acc.signal}" if acc.signal else "unknown")
    )
    session = acc.extra.get("session")
    values = (
        _t(acc.submitted),
        _t(acc.started),
        _t(acc.ended),
        code,
        hms(acc.cpu_s),
        _mb(mem),
        _mb(vmem),
        hms(acc.walltime_s),
        job_id,
        user,
        group,
        name,
        str(session) if session is not None else "unknown",
        resources,
        queue,
    )
    return "".join(f"{label:<17}: {value}\n" for label, value in zip(LABELS, values, strict=True))


def write_job_log(path: Path, text: str) -> None:
    """Write atomically (a reader never sees half a log)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
