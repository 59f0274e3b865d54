"""The detached supervisor of one local batch job: ``python -m farmtools.batch.supervisor JOBDIR``.

Owns the life of one job of the local backend (:mod:`farmtools.batch.local`): it detaches from
the manager (fork + setsid, so the manager can exit or restart without killing the job), runs
the script in its own process group, enforces walltime and memory (the process tree's RSS, as
Slurm's jobacct_gather does), reaps the script with ``os.wait4`` for its rusage, writes
``accounting.json`` atomically, and finally starts the next pending jobs of the pool.

Imports the standard library, psutil, :mod:`farmtools.batch.statefile`, ``jobdir``, ``jobenv``,
:mod:`farmtools.faults` and :mod:`farmtools.batch.local` (for the pool's lock and scheduler) only;
``local`` does not import this module (it starts it as a program), so they form no circle.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from farmtools.batch.jobdir import CANCEL_FILE, SUPERVISOR_FILE
from farmtools.batch.jobenv import job_environment
from farmtools.batch.statefile import write_atomic, write_json_atomic
from farmtools.faults import fault_point

#: how often the supervisor looks at its job (walltime, memory, a cancel request)
TICK_S = 0.1


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _created(pid: int) -> float | None:
    """The start time of ``pid`` (psutil's), which tells the job from a later owner of its pid."""
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def _tree_rss_kb(pid: int) -> int:
    """RSS of ``pid`` and its descendants, kB (0 when gone)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total // 1024


def supervise(jobdir: Path) -> None:
    """Run the job of ``jobdir`` to its end and record its accounting."""
    spec = json.loads((jobdir / "spec.json").read_text())
    stop = {"cancel": False}

    def on_term(_sig: int, _frame: Any) -> None:
        stop["cancel"] = True

    signal.signal(signal.SIGTERM, on_term)
    cancel_file = jobdir / CANCEL_FILE
    if cancel_file.exists():  # cancelled on its way to a slot: the script never starts
        write_json_atomic(jobdir / "accounting.json", {"ended": _now(), "ending": "cancelled"})
        return
    with open(spec["stdout"], "ab") as out, open(spec["stderr"], "ab") as err:
        proc = subprocess.Popen(
            ["/bin/bash", spec["script"]],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=spec["workdir"],
            # a process group of its own (walltime and memory kills hit the whole tree) in the
            # supervisor's session: the session id is the supervisor's pid, written to
            # ``supervisor.pid`` before this, so a script whose supervisor is killed before
            # ``started.json`` is still found (LocalPool._reap_dead)
            process_group=0,
            env=job_environment(FARMTOOLS_JOB_ID=spec["id"], FARMTOOLS_JOB_NAME=spec["name"]),
        )
    started = time.monotonic()
    fault_point("supervisor-started")
    write_json_atomic(
        jobdir / "started.json",
        {
            "started": _now(),
            "supervisor": os.getpid(),
            "pid": proc.pid,
            "pid_created": _created(proc.pid),
            "node": socket.gethostname(),
        },
    )
    ending = ""
    peak_kb = 0
    limit_kb = int(spec["memory_mb"]) * 1024
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        if not ending:
            rss = _tree_rss_kb(proc.pid)
            peak_kb = max(peak_kb, rss)
            if stop["cancel"] or cancel_file.exists():
                ending = "cancelled"
            elif time.monotonic() - started > float(spec["walltime_s"]):
                ending = "timeout"
            elif rss > limit_kb:
                ending = "out_of_memory"
            if ending:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(TICK_S)
    code = os.waitstatus_to_exitcode(status)
    # ru_maxrss covers the script and every descendant it waited for; the polled peak
    # catches a tree killed before it was reaped
    max_rss_kb = max(int(rusage.ru_maxrss), peak_kb)
    if not ending and max_rss_kb > limit_kb:
        # A peak shorter than one tick escapes the poll but not the rusage.  The batch
        # system of the farm (a cgroup limit, TORQUE's mem) would have killed this job, so
        # the local pool must not call it a success: the same file would fail there.
        ending = "out_of_memory"
    acc: dict[str, Any] = {
        "ended": _now(),
        "exit_code": code if code >= 0 else None,
        "signal": -code if code < 0 else None,
        "cpu_s": rusage.ru_utime + rusage.ru_stime,
        "max_rss_kb": max_rss_kb,
        "walltime_s": time.monotonic() - started,
        "ending": ending or ("signalled" if code < 0 else "completed"),
    }
    write_json_atomic(jobdir / "accounting.json", acc)


def main() -> None:
    jobdir = Path(sys.argv[1])
    # Detach: the parent exits at once (the pool that started it reaps it in a thread, or init
    # does when that process is gone), the child gets a session of its own and is nobody's
    # child: it survives a restart of the manager and its CPU is never counted as the manager's.
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    write_atomic(jobdir / SUPERVISOR_FILE, str(os.getpid()))
    from farmtools.batch.local import LocalPool

    pool = LocalPool(jobdir.parent.parent)
    try:
        supervise(jobdir)
    except Exception as exc:
        # the job could not even start (script gone, log dir not writable...): record it
        write_json_atomic(
            jobdir / "accounting.json",
            {"ended": _now(), "ending": "node_fail", "error": f"{type(exc).__name__}: {exc}"},
        )
    finally:
        pool.job_done(jobdir.name)


if __name__ == "__main__":
    main()
