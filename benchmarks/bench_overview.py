"""The overview page's data (``GET /api/overview``) with a year of runs in the bookkeeping.

Builds a SQLite bookkeeping (real schema and indexes) holding a year of one-hour runs: 8,760
rows in ``runs`` and the check results the monitor's checker leaves for each of them in
``dqm_checks`` (every checked item of every run, plus the farm-wide window), a few pinned
reference runs; then serves the monitor as in production (uvicorn, its checker loop running)
and asks for the overview of the newest run and of random older ones, over HTTP.  Prints p50/p95
against two baselines measured in the same process: a plain query of the runs table (the newest
50 runs) on the same engine, and ``GET /healthz`` through the same HTTP stack.

    .venv/bin/python benchmarks/bench_overview.py [--dir DIR] [--days 365] [--requests 400]

Target: p95 <= 100 ms (issue 18).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: The items the built-in checks judge per run (task, item) and their verdicts' shape.
PER_RUN = [
    ("purity", "vs_time"),
    ("purity", "vs_run"),
    ("lem_gain", "map"),
    ("asymmetry", "per_lem"),
    ("pedestals", "pedestal"),
    ("pedestals", "noise"),
]
WINDOW = [("dataflow", "latency"), ("dataflow", "jobs"), ("dataflow", "stuck")]
STATES = ["good"] * 90 + ["warning"] * 6 + ["error"] * 3 + ["too_few"]


def build(home: Path, days: float) -> int:
    """The bookkeeping of ``days`` of one-hour runs with their stored checks; the newest run."""
    from sqlalchemy import insert

    from farmtools.bookkeeping import Bookkeeping
    from farmtools.bookkeeping.schema import dqm_checks, runs
    from tests.integration.monitor.farmdata import make_config

    shutil.rmtree(home, ignore_errors=True)
    cfg = make_config(home)
    bk = Bookkeeping.from_config(cfg)
    n_runs = int(days * 24)
    t0 = datetime.now(UTC) - timedelta(days=days)
    rnd = random.Random(18)
    with bk.engine.begin() as conn:
        conn.execute(
            insert(runs),
            [
                {"run": r, "first_seen": t0 + timedelta(hours=r), "comment": ""}
                for r in range(1, n_runs + 1)
            ],
        )
        rows = []
        for r in range(1, n_runs + 1):
            for task, item in PER_RUN:
                state = rnd.choice(STATES)
                rows.append(
                    {
                        "task": task,
                        "item": item,
                        "scope": "run",
                        "run": r,
                        "state": state,
                        "reason": f"run {r}: {state} (a reason of typical length, 60 characters)",
                        "reference": 1000,
                        "details": {"channels": list(range(64)) if state == "error" else []},
                        "time": t0 + timedelta(hours=r, minutes=59),
                    }
                )
        for task, item in WINDOW:
            rows.append(
                {
                    "task": task,
                    "item": item,
                    "scope": "window",
                    "run": None,
                    "state": "good",
                    "reason": "fine",
                    "reference": None,
                    "details": {},
                    "time": datetime.now(UTC),
                }
            )
        conn.execute(insert(dqm_checks), rows)
    bk.close()
    return n_runs


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dir", type=Path, default=Path("/tmp/farmtools-bench-overview"))
    ap.add_argument("--days", type=float, default=365.0)
    ap.add_argument("--requests", type=int, default=400, help="requests per measured endpoint")
    args = ap.parse_args()
    home = args.dir / "farm"
    t = time.perf_counter()
    n_runs = build(home, args.days)
    print(
        f"built {n_runs:,} runs and {n_runs * len(PER_RUN):,} stored checks in "
        f"{time.perf_counter() - t:.1f} s"
    )

    import httpx2
    from sqlalchemy import select

    from farmtools.bookkeeping import Bookkeeping
    from farmtools.bookkeeping.schema import runs
    from farmtools.monitor.server import MonitorServer
    from tests.integration.monitor.farmdata import make_config

    cfg = make_config(home)
    bk = Bookkeeping(cfg.database_url)
    srv = MonitorServer(cfg, host="127.0.0.1", port=0, bk=bk).start()
    srv.monitor.references.pin("*", 1000)
    srv.monitor.references.pin("lem_gain/map", 1200)
    client = httpx2.Client(base_url=srv.url, timeout=60)
    rnd = random.Random(7)

    def timed(fn) -> float:  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1000

    def plain_runs_query() -> None:
        with bk.engine.connect() as conn:
            conn.execute(select(runs).order_by(runs.c.run.desc()).limit(50)).all()

    first = client.get("/api/overview").json()
    assert first["run"] >= n_runs and first["tasks"], first
    for _ in range(20):  # warm up
        client.get("/api/overview")
    base_sql = [timed(plain_runs_query) for _ in range(args.requests)]
    base_http = [timed(lambda: client.get("/healthz")) for _ in range(args.requests)]
    latest = [timed(lambda: client.get("/api/overview?run=latest")) for _ in range(args.requests)]
    older = [
        timed(lambda: client.get(f"/api/overview?run={rnd.randint(1, n_runs - 1)}"))
        for _ in range(args.requests)
    ]
    b_sql = float(np.percentile(base_sql, 95))
    b_http = float(np.percentile(base_http, 95))
    print(f"\n{'request':<44} {'p50 ms':>8} {'p95 ms':>8}")
    for name, v in (
        ("GET /api/overview (newest run)", latest),
        ("GET /api/overview?run=N (random older run)", older),
        ("baseline: newest 50 rows of runs (SQL)", base_sql),
        ("baseline: GET /healthz", base_http),
    ):
        print(f"{name:<44} {statistics.median(v):8.2f} {np.percentile(v, 95):8.2f}")
    p95 = float(np.percentile(latest + older, 95))
    print(
        f"\noverview data over HTTP (uvicorn, checker loop running), {n_runs:,} runs: "
        f"p95 = {p95:.1f} ms (target <= 100 ms)"
    )
    print(f"  ratio to the plain runs query p95 ({b_sql:.2f} ms): {p95 / b_sql:.1f}x")
    print(f"  ratio to GET /healthz p95 ({b_http:.2f} ms): {p95 / b_http:.1f}x")
    client.close()
    srv.stop()
    bk.close()
    shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
