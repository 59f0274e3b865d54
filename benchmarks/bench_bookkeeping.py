"""``farmtools story`` lookup time on a bookkeeping database of 1,000,000 files.

Fills a SQLite database (the embedded default; ``--url`` for another) through the real schema
with ``--files`` stored raw files, each with the story ingest writes (written, detected,
copy_started, copy_ended, verified: 5 events, so 5 M events for 1 M files), then times what the
command does after start-up (``Bookkeeping.get`` + ``Bookkeeping.story``) for ``--lookups``
random files, and the claim of the next file to process (``claim stored -> queued``).
Baseline, in the same run: the seed's way to find a file's transfer, ``grep`` of its name in
the ``alltransfer.log`` exported from the same database (1 line per file).
Target (issue 3): story <= 10 ms on 1 M files.

    .venv/bin/python benchmarks/bench_bookkeeping.py [--files 1000000] [--lookups 300] [--dir DIR]
"""

from __future__ import annotations

import argparse
import gc
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert

from farmtools.bookkeeping import Bookkeeping, Event, FileState
from farmtools.bookkeeping.schema import events, files, runs
from farmtools.bookkeeping.textlogs import export

SEQ_PER_RUN = 1000
BATCH = 20000


def fill(bk: Bookkeeping, n: int) -> None:
    t0 = datetime(2016, 10, 27, 11, 0, tzinfo=UTC)
    with bk.engine.begin() as conn:
        conn.execute(
            insert(runs),
            [{"run": r, "first_seen": t0, "comment": ""} for r in range(1, n // SEQ_PER_RUN + 2)],
        )
    for start in range(0, n, BATCH):
        frows, erows = [], []
        for i in range(start, min(n, start + BATCH)):
            run, seq = i // SEQ_PER_RUN + 1, i % SEQ_PER_RUN
            name = f"run{run}-seq{seq}.dat"
            t = t0 + timedelta(seconds=i)
            frows.append(
                {
                    "id": i + 1,
                    "name": name,
                    "run": run,
                    "seq": seq,
                    "size": 1 << 30,
                    "adler32": f"{i:08x}",
                    "daq_write_time": t,
                    "source_path": f"/evb/data/{name}",
                    "storage_path": f"/home/prod/storage/input/run{run}/{name}",
                    "state": str(FileState.STORED),
                    "state_since": t,
                    "tries": 1,
                }
            )
            for k, ev in enumerate(
                (
                    Event.WRITTEN,
                    Event.DETECTED,
                    Event.COPY_STARTED,
                    Event.COPY_ENDED,
                    Event.VERIFIED,
                )
            ):
                erows.append(
                    {
                        "file_id": i + 1,
                        "time": t + timedelta(milliseconds=k),
                        "event": ev,
                        "details": {"k": k},
                        "host": "evb",
                        "pid": 1,
                    }
                )
        with bk.engine.begin() as conn:
            conn.execute(insert(files), frows)
            conn.execute(insert(events), erows)
        print(f"\r  filled {min(n, start + BATCH):,} files", end="", flush=True)
    print()


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--lookups", type=int, default=300)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument(
        "--url", default=None, help="SQLAlchemy URL of an EMPTY database (default: SQLite)"
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ft-bench-bk-", dir=args.dir))
    try:
        url = args.url or f"sqlite:///{work / 'bookkeeping.sqlite'}"
        bk = Bookkeeping(url)
        t = time.perf_counter()
        fill(bk, args.files)
        print(
            f"  {args.files:,} files, {5 * args.files:,} events in {time.perf_counter() - t:.0f} s"
        )
        t = time.perf_counter()
        export(bk, work / "public")
        print(f"  alltransfer.log exported in {time.perf_counter() - t:.1f} s")
        log = work / "public" / "alltransfer.log"
        # Look up as the command does: a fresh Bookkeeping (the filling one and its millions of
        # Python objects are gone, so no garbage-collector pass over them lands in a lookup),
        # its connection opened and the schema checked by one untimed lookup.
        bk.close()
        del bk
        gc.collect()
        bk = Bookkeeping(url)
        bk.get("run1-seq0.dat")

        rng = random.Random(1)
        picks = [rng.randrange(args.files) for _ in range(args.lookups)]
        names = [f"run{i // SEQ_PER_RUN + 1}-seq{i % SEQ_PER_RUN}.dat" for i in picks]
        ours, grep = [], []
        for name in names:
            t = time.perf_counter()
            rec = bk.get(name)
            story = bk.story(name)
            ours.append(time.perf_counter() - t)
            assert rec is not None and len(story) == 5
            t = time.perf_counter()
            out = subprocess.run(
                ["grep", "-F", f"/{name}", str(log)], capture_output=True, check=True
            )
            grep.append(time.perf_counter() - t)
            assert out.stdout.count(b"\n") == 1
        claims = []
        for _ in range(50):
            t = time.perf_counter()
            (_got,) = bk.claim(
                FileState.STORED, FileState.QUEUED, worker="bench", event=Event.QUEUED
            )
            claims.append(time.perf_counter() - t)
        bk.close()

        print(
            f"\nbookkeeping of {args.files:,} files ({url.split(':', 1)[0]}), {args.lookups} lookups"
        )
        for label, v in (
            ("story (get + story)", ours),
            ("grep alltransfer.log", grep),
            ("claim 1 file", claims),
        ):
            print(
                f"  {label:<22} p50 {1e3 * statistics.median(v):7.2f} ms"
                f"  p99 {1e3 * pct(v, 0.99):7.2f} ms  max {1e3 * max(v):7.2f} ms"
            )
        ratio = statistics.median(ours) / statistics.median(grep)
        print(f"  ratio story / grep (p50)  {ratio:.3f}")
        print(f"  target: story <= 10 ms -> p99 {1e3 * pct(ours, 0.99):.2f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
