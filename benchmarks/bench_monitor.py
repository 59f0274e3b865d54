"""Page data API latency of the monitor with a year of data in the bookkeeping.

Builds (once, reused afterwards) a SQLite bookkeeping holding a year of running at one raw file
every 10 s: 3,153,600 files in 8,760 one-hour runs, two story events per file (written,
verified), one batch job per processed file, a few hundred files in flight and some stuck,
plus what the analyses leave in the summary directory after a year (one analysis per group of 4
files: 788,400 seed files in 8,760 run folders, in farmtools.analysis's own format; their JSON
twins with ``--json-twins``) and one reconstruction output folder per run (the
pedestal/noise ROOT file in the newest but one).  Then it asks every page data
endpoint (each plot item with the run selector on "latest" and a reference run, the run list,
the alarms, the status, /metrics) over HTTP from the monitor served as in production (uvicorn,
with its background loops: the summary scan every ``poll_s`` and the totals' full scans every
``totals_s``, both running while requests are measured), and prints p50/p95 per endpoint and
overall, against two baselines measured in the same process: a bare ``SELECT 1`` round trip on
the same engine and ``GET /healthz`` through the same HTTP stack.

    .venv/bin/python benchmarks/bench_monitor.py [--dir DIR] [--days 365] [--rebuild]
                                                 [--rounds 20] [--seconds 45]

Target: p95 <= 100 ms (issue 6).
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FILE_EVERY_S = 10
FILES_PER_RUN = 360  # one-hour runs
SIZE = 1_073_741_815  # a full 335-event file


def _ts(t: datetime) -> str:
    """The text SQLAlchemy's DateTime writes on SQLite (UTC, naive)."""
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")


def build(home: Path, days: float) -> None:
    from farmtools.bookkeeping import Bookkeeping
    from tests.integration.monitor.farmdata import make_config

    cfg = make_config(home)
    db = Path(cfg.database_url.removeprefix("sqlite:///"))
    if db.exists():
        db.unlink()
    Bookkeeping(cfg.database_url).close()  # the real schema, with its indexes
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    end = datetime.now(UTC).replace(tzinfo=None)
    n = int(days * 86400 / FILE_EVERY_S)
    start = end - timedelta(seconds=n * FILE_EVERY_S)
    rng = random.Random(6)
    t0 = time.perf_counter()
    n_runs = (n + FILES_PER_RUN - 1) // FILES_PER_RUN
    con.executemany(
        "INSERT INTO runs (run, first_seen, comment) VALUES (?, ?, '')",
        ((r + 1, _ts(start + timedelta(hours=r))) for r in range(n_runs)),
    )
    chunk = 200_000
    for lo in range(0, n, chunk):
        frows, erows, jrows = [], [], []
        for i in range(lo, min(n, lo + chunk)):
            run, seq = i // FILES_PER_RUN + 1, i % FILES_PER_RUN
            written = start + timedelta(seconds=i * FILE_EVERY_S)
            verified = written + timedelta(seconds=8 + rng.random() * 4)
            age = (end - written).total_seconds()
            if age < 300:
                state = ("detected", "copying", "stored", "queued", "running")[i % 5]
            elif age < 3600:
                state = "running" if i % 3 else "reconstructed"
            else:
                state = "failed" if rng.random() < 0.005 else "analysed"
            since = verified + timedelta(seconds=600)
            if age > 3600 and rng.random() < 3e-5:  # a few files stuck for hours
                state, since = "stored", verified
            since = min(since, end)
            name = f"run{run}-seq{seq}.dat"
            frows.append(
                (
                    i + 1,
                    name,
                    run,
                    seq,
                    SIZE,
                    "0a1b2c3d",
                    _ts(written),
                    f"/evb/{name}",
                    f"/storage/run{run}/{name}",
                    state,
                    _ts(since),
                    0,
                )
            )
            erows.append((i + 1, _ts(written), "written"))
            if state not in ("detected", "copying"):
                erows.append((i + 1, _ts(verified), "verified"))
            if state in ("analysed", "failed", "reconstructed", "running"):
                jstate = {"analysed": "done", "reconstructed": "done"}.get(state, state)
                jrows.append(
                    (
                        name,
                        1,
                        "slurm",
                        f"reco_{name[:-4]}",
                        "prod",
                        1500,
                        3600,
                        jstate,
                        _ts(verified),
                        _ts(verified),
                        "out_of_memory" if state == "failed" else None,
                    )
                )
        con.executemany(
            "INSERT INTO files (id, name, run, seq, size, adler32, daq_write_time, source_path, "
            "storage_path, state, state_since, tries) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            frows,
        )
        con.executemany(
            "INSERT INTO events (file_id, time, event, host, pid) VALUES (?, ?, ?, '', 0)", erows
        )
        con.executemany(
            "INSERT INTO jobs (file, try_number, backend, name, queue, memory_mb, walltime_s, state, "
            "created, due, failure) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            jrows,
        )
        con.commit()
        print(
            f"\r  {min(n, lo + chunk):>9,} / {n:,} files  {time.perf_counter() - t0:6.1f} s",
            end="",
            flush=True,
        )
    con.execute("ANALYZE")
    con.commit()
    con.close()
    print(
        f"\n  built in {time.perf_counter() - t0:.1f} s: {n:,} files, {n_runs:,} runs, {db.stat().st_size / 1e9:.2f} GB"
    )


def build_summaries(home: Path, days: float, twins: bool) -> None:
    """What ``farmtools analyse`` leaves after a year: one analysis per group of 4 files, its
    seed file and JSON twin in ``<summary_dir>/run<N>/``, in the analysis's own formats (its
    ``seed_text`` and ``summary_json``; the JSON without indentation, to write it faster)."""
    import json
    import math

    from farmtools.analysis.gain import MIP_MPV_REF, MIP_TM_REF, GainResult, lem_gain
    from farmtools.analysis.pipeline import summary_path
    from farmtools.analysis.purity import Lifetime
    from farmtools.analysis.summary import seed_text, summary_json
    from tests.integration.monitor.farmdata import make_config

    cfg = make_config(home)
    n = int(days * 86400 / FILE_EVERY_S)
    end = datetime.now(UTC)
    start = end - timedelta(seconds=n * FILE_EVERY_S)
    rng = random.Random(7)
    t0 = time.perf_counter()
    written = 0
    gain: GainResult | None = None
    for i in range(0, n - 3, 4):
        run, seq = i // FILES_PER_RUN + 1, i % FILES_PER_RUN
        if gain is None or seq == 0:
            g = 20.0 + 2.0 * math.sin(run / 50.0)
            stats = [(60, 0.45 * g * 8.9, 0.5, 0.45 * g * 8.7, 0.5)]
            stats.append((60, 0.55 * g * 8.9, 0.5, 0.55 * g * 8.7, 0.5))
            lems = [lem_gain(k, stats, MIP_TM_REF, MIP_MPV_REF) for k in range(1, 13)]
            gain = GainResult(lems, 6000.0, 1400, 40, MIP_TM_REF, MIP_MPV_REF)
            lem_json = summary_json(end, run, [], None, [Lifetime(1, 1, 0, 0)] * 2, gain)
        tau = (6000.0 + 1000.0 * math.sin(run / 200.0)) * (1 + 0.04 * rng.gauss(0, 1))
        views = [
            Lifetime(tau, 250.0, 0, 0),
            Lifetime(tau * (1 + 0.04 * rng.gauss(0, 1)), 260, 0, 0),
        ]
        when = start + timedelta(seconds=(i + 4) * FILE_EVERY_S + 300)
        txt = summary_path(cfg, run, [seq, seq + 3])
        if seq == 0:
            txt.parent.mkdir(parents=True, exist_ok=True)
        mtime = when.timestamp()
        if twins:
            doc = dict(lem_json)
            doc.update(
                time=when.isoformat(),
                files=[f"run{run}-seq{s}.dat" for s in range(seq, seq + 4)],
                lifetime_us=[views[0].tau_us, views[1].tau_us],
                lifetime_err_us=[views[0].error_us, views[1].error_us],
            )
            js = txt.with_suffix(".json")
            js.write_text(json.dumps(doc) + "\n")
            os.utime(js, (mtime, mtime))
        txt.write_text(seed_text(when, views, gain))
        os.utime(txt, (mtime, mtime))
        written += 1
        if written % 20_000 == 0:
            print(
                f"\r  {written:>9,} analyses  {time.perf_counter() - t0:6.1f} s", end="", flush=True
            )
    (cfg.path(cfg.analysis.summary_dir) / ".complete").write_text(f"{written}\n")
    files = written * (2 if twins else 1)
    print(f"\n  {written:,} analyses ({files:,} files) in {time.perf_counter() - t0:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dir", type=Path, default=Path("/tmp/farmtools-bench-monitor"))
    ap.add_argument("--days", type=float, default=365.0)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument(
        "--json-twins",
        action="store_true",
        help="also write each summary's JSON twin (doubles the ~15 min and 3 GB of a year)",
    )
    ap.add_argument("--rounds", type=int, default=20, help="at least this many rounds")
    ap.add_argument(
        "--seconds", type=float, default=45.0, help="and at least this long (a totals pass)"
    )
    args = ap.parse_args()
    home = args.dir / "farm"
    from tests.integration.monitor.farmdata import make_config

    cfg = make_config(home)
    db = Path(cfg.database_url.removeprefix("sqlite:///"))
    if args.rebuild or not db.exists():
        print(
            f"building a bookkeeping of {args.days:g} days (a file every {FILE_EVERY_S} s) in {home}"
        )
        build(home, args.days)

    summary = cfg.path(cfg.analysis.summary_dir)
    if not (summary / ".complete").exists():
        import shutil

        shutil.rmtree(summary, ignore_errors=True)
        print(f"writing the analyses' summaries of {args.days:g} days in {summary}")
        build_summaries(home, args.days, args.json_twins)
    out = cfg.path(cfg.storage.output)
    if not (out / "run1").is_dir():  # a reco output folder per run, the ROOT file in the newest
        from tests.integration.monitor.farmdata import write_reco

        n_runs = int(args.days * 86400 / FILE_EVERY_S + FILES_PER_RUN - 1) // FILES_PER_RUN
        for r in range(1, n_runs + 1):
            (out / f"run{r}").mkdir(parents=True, exist_ok=True)
        write_reco(home, n_runs - 1)  # the newest run is still being reconstructed: empty

    import httpx2

    from farmtools.bookkeeping import Bookkeeping
    from farmtools.monitor.server import MonitorServer

    bk = Bookkeeping(cfg.database_url)
    srv = MonitorServer(cfg, host="127.0.0.1", port=0, bk=bk)
    monitor = srv.monitor
    t = time.perf_counter()
    srv.start()  # as served: uvicorn, the checker loop (summary scan) and the totals thread
    print(
        f"start (the first look at the summaries, uvicorn listening): "
        f"{time.perf_counter() - t:.2f} s; {len(monitor.results.results()):,} results in the "
        f"window, the latest of {len(monitor.results.runs()):,} runs"
    )
    from farmtools.monitor.store import OLDER_EVERY

    looks = []
    for _ in range(OLDER_EVERY):
        t = time.perf_counter()
        monitor.results.refresh(force=True)
        looks.append((time.perf_counter() - t) * 1000)
    print(
        f"later looks at the summary directory (every poll_s = {cfg.monitor.poll_s:g} s, in the "
        f"background): {min(looks):.0f} ms, {max(looks):.0f} ms every {OLDER_EVERY}th "
        "(older run folders' mtimes)"
    )
    totals = monitor.totals
    assert totals is not None
    while totals.snapshot.taken is None:
        time.sleep(0.1)
    snap = totals.snapshot
    print(
        f"totals (background full scans, every monitor.totals_s = {cfg.monitor.totals_s:g} s): "
        f"{snap.seconds:.2f} s, {sum(snap.files_by_state.values()):,} files"
    )
    client = httpx2.Client(base_url=srv.url, timeout=60)
    runs = client.get("/api/runs").json()
    ref = runs[len(runs) // 2]
    paths = [
        f"/api/plot/{t['name']}/{i['id']}?run=latest&ref={ref}"
        for t in client.get("/api/tree").json()
        for i in t["items"]
    ]
    paths += ["/api/runs", "/api/alarms", "/api/status", "/api/tree", "/metrics"]
    for p in paths:  # warm up (and check every answer is good)
        resp = client.get(p)
        assert resp.status_code == 200, (p, resp.text)

    def timed(fn) -> float:  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1000

    assert monitor.queries is not None
    base_sql = [timed(monitor.queries.ping) for _ in range(200)]
    base_http = [timed(lambda: client.get("/healthz")) for _ in range(200)]
    per: dict[str, list[float]] = {p: [] for p in paths}
    t_end = time.monotonic() + args.seconds
    rounds = 0
    while rounds < args.rounds or time.monotonic() < t_end:
        for p in paths:
            per[p].append(timed(lambda p=p: client.get(p)))
        rounds += 1
    every = [x for v in per.values() for x in v]
    print(f"\n{'endpoint':<60} {'p50 ms':>8} {'p95 ms':>8}")
    for p, v in sorted(per.items(), key=lambda kv: -np.percentile(kv[1], 95)):
        print(f"{p.split('?')[0]:<60} {statistics.median(v):8.2f} {np.percentile(v, 95):8.2f}")
    p95 = float(np.percentile(every, 95))
    b_sql = float(np.percentile(base_sql, 95))
    b_http = float(np.percentile(base_http, 95))
    print(
        f"\npage data API over HTTP (uvicorn, background loops running), {len(every)} requests "
        f"({rounds} rounds of {len(paths)} endpoints in {args.seconds:g}+ s), "
        f"{sum(snap.files_by_state.values()):,} files in the database:"
    )
    print(
        f"  p95 = {p95:.1f} ms (target <= 100 ms), p50 = {statistics.median(every):.1f} ms, "
        f"max = {max(every):.1f} ms"
    )
    print(f"  baseline SELECT 1 round trip p95 = {b_sql:.3f} ms  -> ratio {p95 / b_sql:.0f}x")
    print(f"  baseline GET /healthz p95 = {b_http:.2f} ms  -> ratio {p95 / b_http:.1f}x")
    client.close()
    srv.stop()
    bk.close()


if __name__ == "__main__":
    main()
