"""Processing: verified -> submitted latency, the manager's CPU per 1000 jobs, a burst of files.

``latency``: the manager runs as a daemon (``Manager.run`` in a thread); files are stored one
by one (every ``--gap`` s, as ingest verifies them) and the delay between each file's
``verified`` and ``submitted`` story events is measured; p50/p99 are printed for the local
backend and for a real one-node Slurm (started from tests/servers/slurm.py, stopped by PID).
Baseline, computed on the same arrival times in the same process: the seed's cron cadence, a
``processing.sh`` tick every 60 s (the wait until the next tick, over 60 phases of the tick
against the arrivals; mean 30 s).

``burst``: ``--files`` files are stored at once on the local backend with ``--slots`` slots;
the run ends when every file is reconstructed; it checks that every job ran exactly once, that
every slot was used (peak concurrency from the jobs' start/end times), that no file is lost,
and prints the manager thread's CPU time per 1000 jobs against the jobs' own CPU time.

    .venv/bin/python benchmarks/bench_processing.py latency [--files 100] [--gap 0.1] [--no-slurm]
    .venv/bin/python benchmarks/bench_processing.py burst [--files 500] [--slots 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from farmtools.bookkeeping import Bookkeeping, FileState
from farmtools.processing.jobs import JobStore
from farmtools.processing.manager import Manager
from tests.processing_farm import make_cfg, state_of, store

CRON_S = 60.0


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def _latency(backend: str, files: int, gap: float, env: dict[str, str] | None) -> None:
    import os

    if env:
        os.environ.update(env)
    with tempfile.TemporaryDirectory(prefix="bench-proc-") as tmp:
        cfg = make_cfg(Path(tmp), batch={"backend": backend, "slots": 2})
        bk = Bookkeeping.from_config(cfg)
        manager = Manager(cfg, bk=bk)
        stop = threading.Event()
        t = threading.Thread(target=manager.run, args=(stop,))
        t.start()
        names = []
        try:
            for i in range(files):
                names.append(store(bk, cfg, 100, i, events=2, payload=1000))
                time.sleep(gap)
            # let every job finish (and write its logs) before the directory goes away
            deadline = time.monotonic() + 300
            while bk.counts_by_state().get("reconstructed", 0) < files:
                if time.monotonic() > deadline:
                    raise SystemExit(f"jobs not done after 300 s: {bk.counts_by_state()}")
                time.sleep(0.2)
        finally:
            stop.set()
            t.join()
        lat, cron = [], []
        for n in names:
            ev = bk.events_between(n, "verified", "submitted")
            verified = ev["verified"].timestamp()
            lat.append(ev["submitted"].timestamp() - verified)
            # wait until the next cron tick, for each of 60 phases of the crontab vs the run
            cron += [CRON_S - ((verified + phase) % CRON_S) for phase in range(60)]
        p50, p99 = _pct(lat, 0.5), _pct(lat, 0.99)
        c50, c99 = _pct(cron, 0.5), _pct(cron, 0.99)
        print(
            f"[{backend}] verified->submitted over {files} files: p50 {p50 * 1000:.0f} ms, "
            f"p99 {p99 * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms "
            f"(target p99 <= 1000 ms: {'met' if p99 <= 1.0 else 'NOT met'})"
        )
        print(
            f"[{backend}] baseline cron tick every {CRON_S:.0f} s on the same arrivals: "
            f"mean {statistics.mean(cron):.1f} s, p50 {c50:.1f} s, p99 {c99:.1f} s; "
            f"ratio cron/daemon: p50 x{c50 / p50:.0f}, p99 x{c99 / p99:.0f}"
        )


def latency(args: argparse.Namespace) -> None:
    _latency("local", args.files, args.gap, None)
    if args.no_slurm:
        return
    from tests.servers.slurm import start_cluster

    root = Path(tempfile.mkdtemp(prefix="bench-slurm-"))
    cluster = start_cluster(root)
    try:
        _latency("slurm", args.files, args.gap, cluster.env)
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def burst(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as tmp:
        cfg = make_cfg(
            Path(tmp),
            batch={"backend": "local", "slots": args.slots},
            processing={"poll_s": 0.5, "claim_s": 0.2},
        )
        bk = Bookkeeping.from_config(cfg)
        names = [store(bk, cfg, 200, i, events=2, payload=1000) for i in range(args.files)]
        manager = Manager(cfg, bk=bk)
        stop = threading.Event()
        cpu: dict[str, float] = {}

        def run() -> None:
            t0 = time.thread_time()
            manager.run(stop)
            cpu["manager"] = time.thread_time() - t0

        start = time.monotonic()
        t = threading.Thread(target=run)
        t.start()
        try:
            while True:
                counts = bk.counts_by_state()
                if counts.get("reconstructed", 0) + counts.get("failed", 0) >= args.files:
                    break
                time.sleep(0.5)
        finally:
            stop.set()
            t.join()
        wall = time.monotonic() - start
        jobs = JobStore(bk).list(limit=10 * args.files)
        ran: dict[str, int] = {}
        for j in jobs:
            ran[j.file] = ran.get(j.file, 0) + 1
        states = {state_of(bk, n) for n in names}
        spans: list[tuple[Any, int]] = []
        for j in jobs:
            if j.started and j.ended:
                spans += [(j.started, 1), (j.ended, -1)]
        running = peak = 0
        for _, d in sorted(spans, key=lambda x: (x[0], x[1])):
            running += d
            peak = max(peak, running)
        job_cpu = sum(j.cpu_s or 0.0 for j in jobs)
        per_1000 = cpu["manager"] / len(jobs) * 1000
        print(
            f"burst of {args.files} files, {args.slots} slots: all reconstructed "
            f"{states == {FileState.RECONSTRUCTED}}, jobs {len(jobs)} "
            f"(each file once: {set(ran.values()) == {1}}), lost "
            f"{args.files - sum(1 for n in names if state_of(bk, n) == FileState.RECONSTRUCTED)}"
            f", peak concurrency {peak}/{args.slots}, wall {wall:.1f} s "
            f"({args.files / wall:.1f} jobs/s)"
        )
        print(
            f"manager CPU: {cpu['manager']:.2f} s for {len(jobs)} jobs = {per_1000:.1f} s per "
            f"1000 jobs; the jobs' own CPU {job_cpu:.1f} s; ratio manager/jobs "
            f"{cpu['manager'] / job_cpu:.3f}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--files", type=int, default=100)
    lat.add_argument("--gap", type=float, default=0.1)
    lat.add_argument("--no-slurm", action="store_true")
    b = sub.add_parser("burst")
    b.add_argument("--files", type=int, default=500)
    b.add_argument("--slots", type=int, default=2)
    args = p.parse_args()
    latency(args) if args.what == "latency" else burst(args)


if __name__ == "__main__":
    main()
