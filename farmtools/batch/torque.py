"""The TORQUE/PBS backend (the seed's batch system): ``qsub``, ``qstat -f``, ``qdel``.

Owns the qsub command line and the parser of ``qstat -f`` full output (:func:`parse_qstat_full`),
including ``exit_status``, ``resources_used.*``, ``exec_host``, ``session_id`` and the times.
TORQUE's exit_status conventions: >= 0 is the script's exit code, 256 + N means killed by signal
N, negative values are TORQUE's own JOB_EXEC_* codes (-10 over the memory limit, -11 over the
walltime, others: the node or mom failed).  A job killed by SIGTERM/SIGKILL that used all its
walltime (or memory) is reported as TIMEOUT (OUT_OF_MEMORY), as older TORQUE versions did not
have the negative codes.

Tested through Slurm's TORQUE wrappers (``slurm-wlm-torque``), which print no ``exit_status``:
then the accounting carries ``exit_code=None`` and the manager falls back on the status file the
job script writes.  The parts the wrappers cannot show are tested on recorded-format samples.

Imports the standard library and :mod:`farmtools.batch.base` / ``commands``.
"""

from __future__ import annotations

import re
import signal as _signal
from collections.abc import Iterable, Mapping
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

#: an attribute line: exactly four spaces, ``name[.resource] = value``
_KEY = re.compile(r"^ {4}([A-Za-z_][\w.]*) = (.*)$")
#: the same in the layout of Slurm's qstat wrapper: a tab instead of the four spaces
_TAB_KEY = re.compile(r"^\t([A-Za-z_][\w.]*) = (.*)$")
_JOB = re.compile(r"^Job Id:\s*(\S+)")

JOB_EXEC_OVERLIMIT_MEM = -10
JOB_EXEC_OVERLIMIT_WT = -11


def parse_qstat_full(text: str) -> dict[str, dict[str, str]]:
    """``qstat -f`` output -> {job id: {attribute: value}}; wrapped values are joined.

    TORQUE prints each attribute as ``    name = value`` (four spaces) and wraps a value longer
    than its line width onto continuation lines that start with a tab, cutting after a comma or
    in the middle of a word; the pieces are joined without adding anything.  A continuation is
    recognised by its tab only, so a wrapped piece that happens to contain `` = `` (a
    ``submit_args`` or ``Variable_List`` value) is never taken for an attribute.

    Slurm's ``qstat`` wrapper (``slurm-wlm-torque``) prints ``Job Id:\t<id>`` and indents its
    attributes with a tab, and never wraps: a block whose first attribute line starts with a
    tab is read in that layout (every tab line is an attribute).
    """
    jobs: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    last = ""
    tab_layout: bool | None = None  # None until the block's first attribute line
    for line in text.splitlines():
        m = _JOB.match(line)
        if m:
            current = jobs.setdefault(m.group(1), {})
            last, tab_layout = "", None
            continue
        if current is None or not line.strip():
            continue
        if tab_layout is None:
            tab_layout = line.startswith("\t")
        if line.startswith("\t") and not tab_layout:
            if last:
                current[last] += line[1:]  # continuation of a long value
            continue
        k = (_TAB_KEY if tab_layout else _KEY).match(line)
        if k:
            last = k.group(1)
            current[last] = k.group(2).rstrip()
    return jobs


def _kb(text: str | None) -> int | None:
    if not text:
        return None
    m = re.fullmatch(r"(\d+)\s*([kmgt]?)b?", text.strip().lower())
    if m is None:
        return None
    factor = {"": 1 / 1024, "k": 1, "m": 1024, "g": 1024**2, "t": 1024**3}[m.group(2)]
    return round(int(m.group(1)) * factor)


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text.strip(), "%a %b %d %H:%M:%S %Y").astimezone()
    except ValueError:
        return None


def short_id(job_id: str) -> str:
    """``322`` of ``322.wa105cpu0003.cern.ch``: qstat may print either form."""
    return job_id.split(".", 1)[0]


def accounting_from_attrs(attrs: Mapping[str, str]) -> JobAccounting | None:
    """Accounting of one finished job (``job_state`` C or E... ), None while it is not."""
    if attrs.get("job_state") != "C":
        return None
    used_wall = attrs.get("resources_used.walltime")
    req_wall = attrs.get("Resource_List.walltime")
    mem = _kb(attrs.get("resources_used.mem"))
    req_mem = _kb(attrs.get("Resource_List.mem"))
    status_text = attrs.get("exit_status")
    code: int | None = None
    sig: int | None = None
    if status_text is None:
        ending = Ending.COMPLETED  # the wrappers: exit code unknown here
    else:
        status = int(status_text)
        if status == JOB_EXEC_OVERLIMIT_WT:
            ending = Ending.TIMEOUT
        elif status == JOB_EXEC_OVERLIMIT_MEM:
            ending = Ending.OUT_OF_MEMORY
        elif status < 0:
            ending = Ending.NODE_FAIL
        elif status >= 256:
            sig = status - 256
            ending = Ending.SIGNALLED
            if sig in (_signal.SIGTERM, _signal.SIGKILL):
                if used_wall and req_wall and parse_duration(used_wall) >= parse_duration(req_wall):
                    ending = Ending.TIMEOUT
                elif mem and req_mem and mem >= req_mem:
                    ending = Ending.OUT_OF_MEMORY
        else:
            code = status
            ending = Ending.COMPLETED
    host = attrs.get("exec_host")
    session = attrs.get("session_id")
    return JobAccounting(
        ending=ending,
        exit_code=code,
        signal=sig,
        submitted=_time(attrs.get("qtime")),
        started=_time(attrs.get("start_time")),
        ended=_time(attrs.get("comp_time") or attrs.get("mtime")),
        cpu_s=parse_duration(attrs["resources_used.cput"])
        if "resources_used.cput" in attrs
        else None,
        max_rss_kb=mem,
        mem_kb=mem,
        vmem_kb=_kb(attrs.get("resources_used.vmem")),
        walltime_s=parse_duration(used_wall) if used_wall else None,
        node=host.split("/")[0].split("+")[0] if host else None,
        raw_state=f"C exit_status={status_text}",
        extra={
            "session": int(session) if session and session.isdigit() else None,
            "resources_used": ",".join(
                f"{k.split('.', 1)[1]}={v}"
                for k, v in attrs.items()
                if k.startswith("resources_used.")
            ),
            "user": attrs.get("euser"),
            "group": attrs.get("egroup"),
            "queue": attrs.get("queue"),
        },
    )


def qsub_command(spec: JobSpec) -> list[str]:
    """The ``qsub`` argv that submits ``spec`` (arguments, not a shell line).

    -o/-e on the command line: Slurm's wrappers ignore #PBS -o/-e in the script.  No working
    directory option (TORQUE's -d is -wd in the wrappers): scripts use absolute paths.  The
    cores as ``nodes=1:ppn=N`` (TORQUE exports PBS_NUM_PPN; Slurm's wrapper makes N tasks,
    so the job script also exports FARMTOOLS_THREADS).
    """
    return [
        "qsub",
        "-N",
        spec.batch_name,
        "-q",
        spec.queue,
        "-l",
        f"walltime={hms(spec.walltime_s)},mem={spec.memory_mb}mb,nodes=1:ppn={spec.cores}",
        "-o",
        str(spec.stdout),
        "-e",
        str(spec.stderr),
        str(spec.script),
    ]


class TorqueBatch(CommandLineBatch):
    """TORQUE/PBS through qsub/qstat/qdel (``env`` selects the server, e.g. ``PBS_DEFAULT``)."""

    name = "torque"

    def submit(self, spec: JobSpec) -> str:
        return self._run(*qsub_command(spec), refuse=True).strip()

    def _full(self) -> dict[str, dict[str, str]]:
        jobs = parse_qstat_full(self._run("qstat", "-f"))
        return {short_id(k): v for k, v in jobs.items()}

    def find(self, spec: JobSpec) -> str | None:
        """The job whose ``Job_Name`` carries ``spec``'s key, among those ``qstat`` still lists
        (completed ones for ``keep_completed``; MinJobAge with Slurm's wrappers)."""
        if not spec.key:
            return None
        for job_id, attrs in self._full().items():
            if attrs.get("Job_Name") == spec.batch_name:
                return job_id
        return None

    def states(self, ids: Iterable[str]) -> dict[str, JobStatus]:
        jobs = self._full()
        result: dict[str, JobStatus] = {}
        for i in ids:
            attrs = jobs.get(short_id(i))
            state = attrs.get("job_state") if attrs else None
            if state is None or state in ("C", "E"):
                result[i] = JobStatus.FINISHED
            elif state == "R":
                result[i] = JobStatus.RUNNING
            else:  # Q, H, W, T, S
                result[i] = JobStatus.PENDING
        return result

    def accounting(self, job_id: str) -> JobAccounting | None:
        attrs = self._full().get(short_id(job_id))
        if attrs is None:
            # gone from the server (keep_completed elapsed): nothing more to learn
            return JobAccounting(ending=Ending.COMPLETED, raw_state="unknown to qstat")
        return accounting_from_attrs(attrs)

    def cancel(self, job_id: str) -> None:
        self._run("qdel", job_id)

    def available(self) -> bool:
        try:
            self._run("qstat")
        except BatchUnavailable:
            return False
        return True
