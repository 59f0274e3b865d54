"""What ``farmtools status`` costs with months of data in the bookkeeping, part by part.

Builds (once, reused) the monitor benchmark's bookkeeping (benchmarks/bench_monitor.py: a raw
file every 10 s in one-hour runs, a few hundred in flight, some stuck and failed) for ``--days``
days, then times :func:`farmtools.monitor.attention.collect` and each of its parts, the median of
``--rounds``, against a bare ``SELECT 1`` round trip on the same engine (baseline, same process:
the machine may be loaded).  Every part is bounded by an index; beside them, the run ledger's
own ``incomplete_runs``, which reads every file of every run (what the status avoids).

    .venv/bin/python benchmarks/bench_status.py [--dir DIR] [--days 30] [--rebuild] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _median_ms(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dir", type=Path, default=Path("/tmp/farmtools-bench-status"))
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    from bench_monitor import FILE_EVERY_S, build  # beside this script (on sys.path)

    from farmtools.bookkeeping import Bookkeeping
    from farmtools.bookkeeping.ledger import incomplete_runs
    from farmtools.monitor import attention
    from farmtools.monitor.queries import FarmQueries
    from tests.integration.monitor.farmdata import make_config

    home = args.dir / "farm"
    cfg = make_config(home)
    db = Path(cfg.database_url.removeprefix("sqlite:///"))
    if args.rebuild or not db.exists():
        print(f"building a bookkeeping of {args.days:g} days (a file every {FILE_EVERY_S} s)")
        build(home, args.days)
    bk = Bookkeeping(cfg.database_url)
    q = FarmQueries(bk.engine)
    m = cfg.monitor
    parts: dict[str, Callable[[], object]] = {
        "baseline SELECT 1": q.ping,
        "open alarms": bk.alarms,
        "failed files": lambda: q.failed_files(20),
        "stuck files": lambda: q.stuck_files(m.stuck_after_s, 20),
        "incomplete runs (candidates)": lambda: attention.incomplete_runs(
            bk, q, m.stuck_after_s, m.runs_shown
        ),
        "ledger.incomplete_runs (all)": lambda: incomplete_runs(bk, stuck_after_s=m.stuck_after_s),
        "heartbeats": bk.heartbeats,
        "incoming rate": lambda: attention.incoming_rate(q, m.rate_window_s),
        "jobs by state": q.active_jobs,
        "farmtools status (collect)": lambda: attention.collect(cfg, bk),
    }
    n_files = sum(bk.counts_by_state().values())
    print(f"{n_files:,} files ({args.days:g} days); median of {args.rounds} rounds")
    base = _median_ms(q.ping, max(args.rounds, 50))
    for name, fn in parts.items():
        ms = base if name.startswith("baseline") else _median_ms(fn, args.rounds)
        print(f"  {name:<28} {ms:10.2f} ms   {ms / base:10.0f} x baseline")
    bk.close()


if __name__ == "__main__":
    main()
