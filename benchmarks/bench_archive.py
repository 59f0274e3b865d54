"""Archive creation throughput against ``tar -b 2048 -cf`` of the same files, in the same run.

Writes a few GB of raw-like files (random bytes, raw-file names), then alternately archives
them with ``tar -b 2048 -cf`` (1 MiB records: tar at its best settings; its default 10 KiB
records made it look 1.47 x slower than it is; tar computes no checksum) and with
:func:`farmtools.archive.tarwriter.write_archive` (which also computes every member's
adler32, the archive's adler32 and the manifest), several rounds, and prints the best throughput of each and the ratio (target: >= 0.90).  Every output is fsynced
so both pay for the disk; the order alternates between rounds and the dirty pages of other
programs are flushed and the disk is left to settle (untimed, ``--settle`` s) before each run,
because the disk is shared and virtual: a run that follows another pays for its predecessor's
writes still draining below the guest otherwise.  Everything is
deleted at the end.

    .venv/bin/python benchmarks/bench_archive.py [--gb 3] [--rounds 2] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from farmtools.archive.tarwriter import Source, write_archive

FILE_BYTES = 500 * 10**6


def make_files(d: Path, total: int) -> list[Path]:
    block = os.urandom(16 << 20)
    out = []
    n = max(1, total // FILE_BYTES)
    for i in range(n):
        p = d / f"run{1012 + i // 3}-seq{i % 3}.dat"
        with open(p, "wb") as f:
            left = FILE_BYTES
            while left:
                k = min(left, len(block))
                f.write(block[:k])
                left -= k
        out.append(p)
    return out


def run_tar(files: list[Path], out: Path) -> float:
    t = time.perf_counter()
    subprocess.run(
        ["tar", "-b", "2048", "-cf", str(out), "-C", str(files[0].parent)]
        + [p.name for p in files],
        check=True,
    )
    fd = os.open(out, os.O_RDONLY)  # the same durability write_archive pays for: fsync
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - t


def run_ours(files: list[Path], outdir: Path, i: int) -> float:
    t = time.perf_counter()
    write_archive(outdir, f"bench_{i}", "bench", [Source(p) for p in files])  # fsyncs itself
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--gb", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--settle", type=float, default=10.0, help="untimed pause before each run")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-archive-", dir=args.dir))
    try:
        src = work / "src"
        src.mkdir()
        files = make_files(src, int(args.gb * 10**9))
        total = sum(p.stat().st_size for p in files)
        run_tar(files, work / "warm.tar")  # same page-cache state for both contenders
        (work / "warm.tar").unlink()
        tar_s, ours_s = [], []
        for i in range(args.rounds):
            for who in ("tar", "ours") if i % 2 == 0 else ("ours", "tar"):
                os.sync()  # untimed: start each run with no dirty pages waiting, and let the
                time.sleep(args.settle)  # virtual disk finish writing the previous run's data
                if who == "tar":
                    tar_s.append(run_tar(files, work / "t.tar"))
                    (work / "t.tar").unlink()
                else:
                    ours_s.append(run_ours(files, work / "ours", i))
                    for p in (work / "ours").iterdir():
                        p.unlink()
        tar_rate = total / min(tar_s) / 1e6
        our_rate = total / min(ours_s) / 1e6
        print(
            f"files: {len(files)} x {FILE_BYTES / 1e6:.0f} MB = {total / 1e9:.2f} GB, "
            f"best of {args.rounds} rounds"
        )
        print(
            f"tar -b 2048 -cf            : {tar_rate:8.1f} MB/s  (runs: "
            + ", ".join(f"{s:.2f} s" for s in tar_s)
            + ")"
        )
        print(
            f"farmtools write_archive    : {our_rate:8.1f} MB/s  (runs: "
            + ", ".join(f"{s:.2f} s" for s in ours_s)
            + ")"
        )
        print(f"ratio farmtools / tar      : {our_rate / tar_rate:8.2f}  (target >= 0.90)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
