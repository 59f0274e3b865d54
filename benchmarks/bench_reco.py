"""Reconstruction of a full 335-event raw file (1 GiB uncompressed, and a compressed one).

Emulates the two files once (fixed seeds, kept in ``--dir`` for the next run), warms the numba
cache on a one-event file, then reconstructs each file in a single-threaded child process (one
numba thread; ``--core N`` pins it with ``sched_setaffinity``) and prints

  * wall seconds, CPU seconds (user + system of the child: the figure that does not depend on
    what else the machine runs), events/s, the share of time of each step, and the child's
    peak RSS;
  * the ratio against the seed's figures (issue 5: ~240 s uncompressed, ~540 s compressed) and
    against a baseline run in the same child: decoding the file with the reader alone
    (``RawFile.validate``, the reference decoder), i.e. what the reconstruction costs on top of
    merely reading its input.

Targets (issue 5): <= 20 s uncompressed, <= 30 s compressed, peak RSS <= 1 GB.

    .venv/bin/python benchmarks/bench_reco.py [--dir /tmp/farmtools-bench-reco] [--events 335]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEED_SECONDS = {"uncompressed": 240.0, "compressed": 540.0}
TARGET_SECONDS = {"uncompressed": 20.0, "compressed": 30.0}
TARGET_RSS_MB = 1000.0

CHILD = r"""
import json, os, sys, time
if int(sys.argv[3]) >= 0:
    os.sched_setaffinity(0, {int(sys.argv[3])})
from farmtools.detector import WA105_3X1X1 as G
from farmtools.rawdata import RawFile
from farmtools.reco.driver import reconstruct_file
raw, out, baseline = sys.argv[1], sys.argv[2], sys.argv[4] == "1"
c0 = time.process_time(); t0 = time.perf_counter()
stats = reconstruct_file(raw, out, G)
wall = time.perf_counter() - t0; cpu = time.process_time() - c0
base_wall = base_cpu = None
if baseline:
    c1 = time.process_time(); t1 = time.perf_counter()
    with RawFile.open(raw, G) as f:
        f.validate()
    base_wall = time.perf_counter() - t1; base_cpu = time.process_time() - c1
print(json.dumps({"events": stats.n_events, "hits": stats.n_hits, "tracks": stats.n_tracks,
                  "wall": wall, "cpu": cpu, "timing": stats.timing,
                  "base_wall": base_wall, "base_cpu": base_cpu}))
"""


def emulate(directory: Path, run: int, events: int, compress: bool) -> Path:
    from farmtools.emulator.daq import RunPlan, emulate_run
    from farmtools.emulator.settings import EmulatorSettings

    path = directory / f"run{run}-seq0.dat"
    if path.exists():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    (info,) = emulate_run(
        directory,
        EmulatorSettings(seed=run),
        RunPlan(run=run, events_per_file=events, compress=compress),
    )
    print(
        f"  emulated {info.path} ({info.size / 2**20:.0f} MiB) in {time.perf_counter() - t:.0f} s"
    )
    return info.path


def run_child(raw: Path, out: Path, core: int, baseline: bool) -> tuple[dict, float]:
    """Run the reconstruction in a child pinned to ``core``: (its JSON result, its peak RSS MB)."""
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryFile("w+") as result:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(raw), str(out), str(core), "1" if baseline else "0"],
            stdout=result,
            env=env,
        )
        _pid, status, usage = os.wait4(proc.pid, 0)  # reaped here, so its own rusage
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"reconstruction of {raw} failed (exit {proc.returncode})")
        result.seek(0)
        lines = result.read().strip().splitlines()
    return json.loads(lines[-1]), usage.ru_maxrss / 1024.0


def _angle_diff(a: float, b: float) -> float:
    d = abs(math.degrees(math.atan(a)) - math.degrees(math.atan(b))) % 180.0
    return min(d, 180.0 - d)


def closure(raw: Path, root: Path) -> str:
    """How the reconstruction compares with the emulator's truth sidecar (one line)."""
    import numpy as np
    import uproot

    from farmtools.detector import WA105_3X1X1 as G
    from farmtools.emulator.truth import read_truth

    truth = read_truth(raw)
    if truth is None:
        return "no truth sidecar"
    with uproot.open(root) as f:
        tr = f["tracks"].arrays(library="np")
        hi = f["hits"].arrays(library="np")
    n = found = flag_bad = 0
    qrel: list[float] = []
    angles: list[float] = []
    for ev in truth["events"]:
        i = ev["index"]
        for t in ev["tracks"]:
            z_max = max(t["entry_cm"][2], t["exit_cm"][2])
            end = t["t0_us"] / G.tick_us + z_max / G.drift_velocity_cm_per_tick
            if t["t0_us"] < 0 or end > G.samples - 20 or t["length_cm"] < 20:
                continue  # not wholly inside the readout window, or short
            n += 1
            d = np.subtract(t["exit_cm"], t["entry_cm"])
            ok = True
            for v in (0, 1):
                slope = d[2] / d[v] if d[v] else math.inf
                cand = np.flatnonzero((tr["event"] == i) & (tr["view"] == v))
                if not cand.size:
                    ok = False
                    break
                diffs = [_angle_diff(float(tr["slope"][c]), slope) for c in cand]
                k = int(cand[int(np.argmin(diffs))])
                a = _angle_diff(tr["slope"][k], slope)
                angles.append(a)
                if a > 1.0:
                    ok = False
                    break
                q = hi["charge"][(hi["event"] == i) & (hi["track"] == tr["id"][k])].sum()
                qrel.append(q / t["collected_fc"][v] - 1.0)
                flag_bad += bool(tr["crossing"][k]) != bool(t["anode_cathode"])
            found += ok
    q = np.abs(np.array(qrel))
    return (
        f"{found}/{n} true tracks (inside the window, > 20 cm) found in both views within 1 deg "
        f"({100 * found / max(n, 1):.1f} %); angle residual median {np.median(angles):.3f} deg; "
        f"track charge vs truth |rel| 68 % < {np.quantile(q, 0.68):.4f}, "
        f"95 % < {np.quantile(q, 0.95):.4f}; anode-cathode flag wrong in {flag_bad} views"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()) / "farmtools-bench-reco"
    )
    ap.add_argument("--events", type=int, default=335)
    ap.add_argument(
        "--core",
        type=int,
        default=-1,
        help="pin the child to this CPU (default: not pinned; it is single-threaded either way,"
        " and on a shared machine pinning makes it wait for that one core)",
    )
    ap.add_argument("--no-baseline", action="store_true", help="skip the reader-only baseline")
    ap.add_argument("--clean", action="store_true", help="delete the emulated files afterwards")
    args = ap.parse_args()

    free = shutil.disk_usage(args.dir.parent if not args.dir.exists() else args.dir).free
    need = 2.2 * args.events / 335 * 2**30
    if free < need:
        raise SystemExit(
            f"need {need / 2**30:.1f} GiB free for the files, {free / 2**30:.1f} GiB left"
        )
    where = f"pinned to cpu {args.core}" if args.core >= 0 else "single-threaded, not pinned"
    print(f"bench_reco: {args.events}-event files in {args.dir}, one core ({where})")
    files = {
        "uncompressed": emulate(args.dir / "u", 335_001, args.events, compress=False),
        "compressed": emulate(args.dir / "c", 335_002, args.events, compress=True),
    }
    warm = emulate(args.dir / "warm", 335_003, 1, compress=True)
    run_child(warm, args.dir / "warm.root", args.core, baseline=False)  # numba cache

    for kind, raw in files.items():
        res, rss_mb = run_child(raw, args.dir / f"{kind}.root", args.core, not args.no_baseline)
        n, wall, cpu = res["events"], res["wall"], res["cpu"]
        timing = res["timing"]
        total = sum(timing.values()) or 1.0
        shares = "  ".join(
            f"{k} {100 * v / total:.0f}%" for k, v in sorted(timing.items(), key=lambda kv: -kv[1])
        )
        size_mb = raw.stat().st_size / 1e6
        print(
            f"\n{kind}: {raw.name}, {size_mb:.0f} MB, {n} events, {res['hits']} hits, "
            f"{res['tracks']} tracks"
        )
        print(
            f"  wall {wall:.1f} s, cpu {cpu:.1f} s, {n / wall:.1f} events/s (wall), "
            f"{n / cpu:.1f} events/s (cpu), peak RSS {rss_mb:.0f} MB"
        )
        print(f"  time shares: {shares}")
        seed = SEED_SECONDS[kind] * n / 335
        print(
            f"  ratio vs the seed ({seed:.0f} s): {seed / wall:.1f}x faster (wall), "
            f"{seed / cpu:.1f}x (cpu)"
        )
        if res["base_wall"] is not None:
            print(
                f"  baseline in the same process, reader only (RawFile.validate): "
                f"wall {res['base_wall']:.1f} s, cpu {res['base_cpu']:.1f} s; "
                f"reco/reader ratio {cpu / res['base_cpu']:.2f} (cpu)"
            )
        print(f"  closure: {closure(raw, args.dir / f'{kind}.root')}")
        target = TARGET_SECONDS[kind] * n / 335
        ok_t = cpu <= target
        ok_m = rss_mb <= TARGET_RSS_MB
        print(
            f"  target <= {target:.0f} s: {'met' if ok_t else 'MISSED'} (cpu), "
            f"{'met' if wall <= target else 'missed'} (wall); "
            f"RSS <= {TARGET_RSS_MB:.0f} MB: {'met' if ok_m else 'MISSED'}"
        )
    if args.clean:
        shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
