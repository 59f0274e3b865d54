"""What a reconstruction job costs, measured apart: per event on full-size files, and per job.

A job's time is ``per_job + events x per_event``.  Measured on a 10-event challenge job alone,
the start-up (imports, numba's first calls: ~0.5-1 s) is most of the job, and dividing by the
events made the per-event figure 3 x too high; the 6x6x6 sizing needs both, apart, and the
per-event one from full 335-event files.  Each measurement is one real ``farmtools reco``
process (the command a processing job runs), and its cost is the child's CPU time
(user + system, from ``wait4``): on a shared machine that is the figure that does not depend
on what else runs; the wall time is reported beside it.

* per event = (full file - 1-event file) / (events - 1), uncompressed and compressed;
* per job = 1-event file - per event (compressed: the 1-event file is compressed);
* per extra file in a job = (one job given ``k`` 1-event files - one given 1) / (k - 1), minus
  per event: what a file costs when a job reconstructs several (no start-up of its own);
* per job through the node worker = a 1-event job run by the light client (its CPU and the
  worker child's, :mod:`farmtools.job.recoserver`) - per event: what the farm pays per file
  with ``processing.reco_worker_socket`` set.

Used by ``benchmarks/bench_challenge.py costs``/``sizing``, ``benchmarks/bench_reco.py`` and
``benchmarks/bench_jobstart.py``; imports only the standard library.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class JobRun:
    """One job: its CPU (user + system; with a node worker, the client's and the worker
    child's together) and wall seconds, and the CPU its files took inside it (``--status``)."""

    cpu_s: float
    wall_s: float
    files_cpu_s: float = 0.0


def run_reco(
    raws: Sequence[Path],
    outdir: Path,
    threads: int = 1,
    extra_env: dict[str, str] | None = None,
    worker: Path | None = None,
) -> JobRun:
    """Run ``farmtools reco`` on ``raws`` (one job, outputs in ``outdir``); its costs.

    With ``worker`` (a node worker's socket, see :func:`node_worker`) the job is the light
    client a processing job runs then, and its CPU includes the worker child's.
    Raises RuntimeError naming the files if the job fails.
    """
    import json
    import time

    outdir.mkdir(parents=True, exist_ok=True)
    status, usage = outdir / "status.jsonl", outdir / "usage.json"
    for stale in (status, usage):
        stale.unlink(missing_ok=True)
    reco = [*map(str, raws), "-q", "--detector", "3x1x1", "--threads", str(threads)]
    reco += ["--status", str(status)]
    for i, raw in enumerate(raws):
        reco += ["-o", str(outdir / f"{i}-{Path(raw).stem}.root")]
    if worker is None:
        args = [sys.executable, "-m", "farmtools", "reco", *reco]
    else:
        client = ["-m", "farmtools.job.recoclient", "--socket", str(worker), "--usage", str(usage)]
        args = [sys.executable, *client, "--", *reco]
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", **(extra_env or {})}
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, wstatus, rusage = os.wait4(proc.pid, 0)  # reaped here: the child's own rusage
    wall = time.perf_counter() - t0
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    code = os.waitstatus_to_exitcode(wstatus)
    proc.returncode = code
    if code != 0:
        raise RuntimeError(f"farmtools reco {' '.join(map(str, raws))} failed ({code}): {stderr}")
    cpu = rusage.ru_utime + rusage.ru_stime
    if worker is not None:
        if not usage.exists():
            raise RuntimeError(f"no worker listens at {worker}: the job ran in-process")
        cpu += float(json.loads(usage.read_text())["cpu_s"])
    files = sum(json.loads(line)["cpu_seconds"] for line in status.read_text().splitlines())
    return JobRun(cpu_s=cpu, wall_s=wall, files_cpu_s=files)


@contextlib.contextmanager
def node_worker(socket_path: Path, warm: Path | None = None) -> Iterator[Path]:
    """A ``farmtools reco-worker`` process serving at ``socket_path`` (warmed up on ``warm``),
    stopped (SIGTERM) at the end; yields the socket."""
    import signal
    import time

    argv = [sys.executable, "-m", "farmtools", "reco-worker", "--socket", str(socket_path)]
    if warm is not None:
        argv += ["--warm", str(warm)]
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not socket_path.is_socket():
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"the reconstruction worker did not start: {err}")
            time.sleep(0.05)
        yield socket_path
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)


@dataclass(frozen=True)
class RecoCosts:
    """Seconds of CPU: per 3x1x1 event (uncompressed, compressed), per job (its own process,
    and through the node's reconstruction worker), per extra file in a job given several."""

    per_event_s: float
    per_event_compressed_s: float
    per_job_s: float
    per_extra_file_s: float
    events: int
    per_job_worker_s: float | None = None

    def simulate_args(self, worker: bool = True) -> str:
        """The ``farmtools challenge simulate`` options that size the 6x6x6 with these costs:
        the per-job cost through the node worker when measured and ``worker``, else the
        job's own process's."""
        job = self.per_job_worker_s if worker and self.per_job_worker_s is not None else None
        return (
            f"--reco-s-per-event {self.per_event_s:.4f} "
            f"--reco-s-per-event-compressed {self.per_event_compressed_s:.4f} "
            f"--job-s {self.per_job_s if job is None else job:.2f}"
        )


def least_of(n: int, job: Callable[[], JobRun]) -> JobRun:
    """The least CPU of ``n`` runs of ``job``: on a shared machine a short job's CPU time
    varies by 2 x, and the least is the one least disturbed."""
    return min((job() for _ in range(n)), key=lambda r: r.cpu_s)


def measure(
    full: Path,
    full_compressed: Path,
    one_event: Path,
    events: int,
    work: Path,
    files: int = 5,
    worker: bool = True,
) -> RecoCosts:
    """Measure :class:`RecoCosts`: ``full``/``full_compressed`` hold ``events`` events each,
    ``one_event`` (compressed) one; ``files`` copies of it make the several-files job; with
    ``worker``, 1-event jobs through a node worker (started here) too."""
    run_reco([one_event], work / "one")  # warms the numba cache and the page cache
    one = least_of(3, lambda: run_reco([one_event], work / "one"))
    u = run_reco([full], work / "u")
    c = run_reco([full_compressed], work / "c")
    per_event = (u.cpu_s - one.cpu_s) / (events - 1)
    per_event_c = (c.cpu_s - one.cpu_s) / (events - 1)
    several = run_reco([one_event] * files, work / "several")
    per_extra = (several.cpu_s - one.cpu_s) / (files - 1) - per_event_c
    per_job_worker = None
    if worker:
        with node_worker(work / "worker.sock", warm=one_event) as sock:
            via = least_of(3, lambda: run_reco([one_event], work / "via", worker=sock))
        per_job_worker = via.cpu_s - per_event_c
    return RecoCosts(
        per_event_s=per_event,
        per_event_compressed_s=per_event_c,
        per_job_s=one.cpu_s - per_event_c,
        per_extra_file_s=per_extra,
        events=events,
        per_job_worker_s=per_job_worker,
    )


def full_files(directory: Path, events: int = 335) -> tuple[Path, Path, Path]:
    """(uncompressed, compressed, 1-event compressed) emulated files under ``directory``.

    Fixed seeds and names, made once and kept for the next run (a full file is 1 GiB
    uncompressed and takes a minute to emulate): ``u/run335001-seq0.dat``,
    ``c/run335002-seq0.dat``, ``warm/run335003-seq0.dat``; bench_reco.py uses the same.
    """
    from farmtools.emulator.daq import RunPlan, emulate_run
    from farmtools.emulator.settings import EmulatorSettings

    def one(sub: str, run: int, n: int, compress: bool) -> Path:
        path = directory / sub / f"run{run}-seq0.dat"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            plan = RunPlan(run=run, events_per_file=n, compress=compress)
            (info,) = emulate_run(path.parent, EmulatorSettings(seed=run), plan)
            path = info.path
        return path

    return (
        one("u", 335_001, events, False),
        one("c", 335_002, events, True),
        one("warm", 335_003, 1, True),
    )


def same_output(a: Path, b: Path) -> bool:
    """Whether two reconstruction outputs hold the same trees and histograms (not bytes: a
    ROOT file carries its creation time)."""
    import numpy as np
    import uproot

    with uproot.open(a) as fa, uproot.open(b) as fb:
        keys = sorted(fa.keys())
        if keys != sorted(fb.keys()):
            return False
        for key in keys:
            x, y = fa[key], fb[key]
            if hasattr(x, "arrays"):
                xa, ya = x.arrays(library="np"), y.arrays(library="np")
                if any(not np.array_equal(xa[c], ya[c], equal_nan=True) for c in xa):
                    return False
            elif not np.array_equal(x.values(), y.values(), equal_nan=True):
                return False
    return True
