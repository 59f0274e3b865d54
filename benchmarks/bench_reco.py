"""Reconstruction of full 335-event raw files (1 GiB uncompressed, and a compressed one).

Emulates the two files once (fixed seeds, kept in ``--dir`` for the next run:
:func:`farmtools.challenge.recocost.full_files`), warms the numba cache on a one-event file,
then reconstructs each file in a single-threaded child process (one numba thread; ``--core N``
pins it with ``sched_setaffinity``), warm (it reconstructs the one-event file first, as the
farm's node worker is warm; the start-up is measured apart) and prints

  * wall seconds, CPU seconds (user + system of the child: the figure that does not depend on
    what else the machine runs), events/s per core, CPU seconds of each step (read, signal:
    pedestal + coherent noise + hits fused, tracks, matching, write), and the peak RSS;
  * beside them, from the same child: the reader alone, every event's ADC array as the
    reconstruction reads it (reused buffers, DAQ order: unpack-only or Huffman-decode-only,
    the reader's physical ceiling, events/s per core), and ``RawFile.validate``; the ratio
    against the seed's figures;
  * the same file on ``--threads`` threads (wall time, the cores kept busy, and whether the
    output is identical); the events are read and decoded on those threads too;
  * events/s per core of both files beside the reader's ceilings, on one line;
  * the start-up: a 1-event job's CPU beyond its event, and a further file's in a job given
    five (``farmtools reco A B C ... -o ...``).

Targets: issue 5, <= 20 s uncompressed, <= 30 s compressed, peak RSS <= 1 GB; issue 22,
uncompressed <= 3 s CPU, compressed <= 1.3 x uncompressed, <= 0.2 s per file beyond its events.

    .venv/bin/python benchmarks/bench_reco.py [--dir /tmp/farmtools-bench-reco] [--events 335]
        [--threads N] [--core C]
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
raw, out, baseline, threads = sys.argv[1], sys.argv[2], sys.argv[4] == "1", int(sys.argv[5])
# a warm process, as the node worker's (numba's first calls: the start-up, measured apart)
c0 = time.process_time()
reconstruct_file(sys.argv[6], out + ".warm.root", G, threads=threads)
first = time.process_time() - c0
c0 = time.process_time(); t0 = time.perf_counter()
stats = reconstruct_file(raw, out, G, threads=threads)
wall = time.perf_counter() - t0; cpu = time.process_time() - c0
base_wall = base_cpu = read_wall = read_cpu = None
if baseline:
    c1 = time.process_time(); t1 = time.perf_counter()
    with RawFile.open(raw, G) as f:
        f.validate()
    base_wall = time.perf_counter() - t1; base_cpu = time.process_time() - c1
    # the reader's ceiling: every event's ADC array, as the reconstruction gets it (reused
    # buffers, DAQ order: the 12-bit unpack, or the Huffman decode, and the read itself)
    import numpy as np
    from farmtools.rawdata.reader import ReadBuffers
    c1 = time.process_time(); t1 = time.perf_counter()
    with RawFile.open(raw, G) as f:
        adc, bufs = np.empty((G.n_channels, G.samples), np.uint16), ReadBuffers(G)
        for i in range(f.n_events):
            f.read_adc(i, adc, bufs, threads=1, daq_order=True)
    read_wall = time.perf_counter() - t1; read_cpu = time.process_time() - c1
    # the signal step against its reference in the same process: the three separate steps
    from farmtools.reco import signal
    steps = fused = 0.0
    with RawFile.open(raw, G) as f:
        for i in range(min(40, f.n_events)):
            adc = f.event(i).adc
            c1 = time.process_time()
            ped, rms_raw = signal.pedestal_and_rms(adc)
            wf, rms = signal.subtract_noise(adc, G, ped, rms_raw)
            signal.find_hits(wf, rms)
            c2 = time.process_time()
            signal.process_signal(adc, G)
            steps += c2 - c1; fused += time.process_time() - c2
    signal_ratio = [steps / (i + 1), fused / (i + 1)]
print(json.dumps({"first": first, "events": stats.n_events, "hits": stats.n_hits, "tracks": stats.n_tracks,
                  "wall": wall, "cpu": cpu, "timing": stats.timing,
                  "base_wall": base_wall, "base_cpu": base_cpu,
                  "read_wall": read_wall, "read_cpu": read_cpu,
                  "signal": signal_ratio if baseline else None}))
"""


def run_child(
    raw: Path, out: Path, core: int, baseline: bool, threads: int = 1, warm: Path | None = None
) -> tuple[dict, float]:
    """Run the reconstruction in a child pinned to ``core``: (its JSON result, its peak RSS MB).

    The child first reconstructs ``warm`` (a 1-event file; default ``raw`` itself), so that
    the figures are a warm process's, as the farm's node worker runs jobs; the CPU of that
    first file (numba's first calls, mostly) is in the result as ``first``.
    """
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    flag = "1" if baseline else "0"
    args = [str(raw), str(out), str(core), flag, str(threads), str(warm or raw)]
    with tempfile.TemporaryFile("w+") as result:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, *args],
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


def warm_cache(path: Path) -> None:
    """Read ``path`` through once, so that the child reads it from the page cache as every
    run does (on a machine short of memory it is evicted between runs: the read step then
    measures the disk)."""
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(8 << 20)
        while f.readinto(buf):
            pass


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
    from farmtools.challenge import recocost

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
    ap.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="also reconstruct each file on this many threads (default: the CPUs here; 1: skip)",
    )
    ap.add_argument("--no-baseline", action="store_true", help="skip the reader-only baseline")
    ap.add_argument("--clean", action="store_true", help="delete the emulated files afterwards")
    args = ap.parse_args()

    free = shutil.disk_usage(args.dir.parent if not args.dir.exists() else args.dir).free
    need = 2.2 * args.events / 335 * 2**30
    if free < need and not (args.dir / "u").exists():
        raise SystemExit(
            f"need {need / 2**30:.1f} GiB free for the files, {free / 2**30:.1f} GiB left"
        )
    where = f"pinned to cpu {args.core}" if args.core >= 0 else "single-threaded, not pinned"
    print(f"bench_reco: {args.events}-event files in {args.dir}, one core ({where})")
    print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: compare CPU times")
    full_u, full_c, warm = recocost.full_files(args.dir, args.events)
    files = {"uncompressed": full_u, "compressed": full_c}
    run_child(warm, args.dir / "warm.root", args.core, baseline=False, warm=warm)  # numba cache

    cpu_of: dict[str, float] = {}
    ceiling: dict[str, float] = {}
    events_of: dict[str, int] = {}
    for kind, raw in files.items():
        warm_cache(raw)
        res, rss_mb = run_child(
            raw, args.dir / f"{kind}.root", args.core, not args.no_baseline, warm=warm
        )
        n, wall, cpu = res["events"], res["wall"], res["cpu"]
        cpu_of[kind] = cpu
        events_of[kind] = n
        timing = res["timing"]
        total = sum(timing.values()) or 1.0
        steps = "  ".join(
            f"{k} {v:.2f} s ({100 * v / total:.0f}%)"
            for k, v in sorted(timing.items(), key=lambda kv: -kv[1])
        )
        size_mb = raw.stat().st_size / 1e6
        print(
            f"\n{kind}: {raw.name}, {size_mb:.0f} MB, {n} events, {res['hits']} hits, "
            f"{res['tracks']} tracks"
        )
        print(
            f"  wall {wall:.1f} s, cpu {cpu:.2f} s, {n / wall:.1f} events/s (wall), "
            f"{n / cpu:.1f} events/s per core (cpu), {1000 * cpu / n:.1f} ms cpu/event, "
            f"peak RSS {rss_mb:.0f} MB"
        )
        print(
            f"  cpu per step: {steps}; (the process's first file, 1 event, before: "
            f"{res['first']:.2f} s cpu, numba's first calls: the start-up, below)"
        )
        seed = SEED_SECONDS[kind] * n / 335
        print(
            f"  ratio vs the seed ({seed:.0f} s): {seed / wall:.1f}x faster (wall), "
            f"{seed / cpu:.1f}x (cpu)"
        )
        if res["base_wall"] is not None:
            ceiling[kind] = n / res["read_cpu"]
            print(
                f"  reader alone in the same process: every event's ADC array as the "
                f"reconstruction reads it ({'Huffman decode' if kind == 'compressed' else 'unpack'}"
                f"-only, the reader's ceiling) cpu {res['read_cpu']:.2f} s = "
                f"{ceiling[kind]:.0f} events/s per core, beside {n / cpu:.1f} reconstructed; "
                f"RawFile.validate (new array per event) cpu {res['base_cpu']:.2f} s; "
                f"reco/ceiling ratio {cpu / res['read_cpu']:.1f} (cpu)"
            )
        if res["signal"] is not None:
            steps_ms, fused_ms = (1000 * v for v in res["signal"])
            print(
                f"  signal step, same process, 40 events: fused {fused_ms:.1f} ms cpu/event vs "
                f"the three separate steps (reference) {steps_ms:.1f} ms: "
                f"x{steps_ms / fused_ms:.2f} faster"
            )
        if args.threads > 1:
            warm_cache(raw)
            par, _rss = run_child(
                raw, args.dir / f"{kind}-j.root", -1, False, args.threads, warm=warm
            )
            same = recocost.same_output(args.dir / f"{kind}.root", args.dir / f"{kind}-j.root")
            print(
                f"  on {args.threads} threads (read and decode on the threads too): wall "
                f"{par['wall']:.1f} s, cpu {par['cpu']:.2f} s ({par['cpu'] / par['wall']:.2f} "
                f"cores busy), {n / par['wall']:.1f} events/s (wall; x{wall / par['wall']:.2f}), "
                f"output {'identical' if same else 'DIFFERENT'} to one thread's"
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
    print(
        f"\ncompressed / uncompressed cpu: {cpu_of['compressed'] / cpu_of['uncompressed']:.2f}"
        f" (issue 22 target <= 1.3); uncompressed <= 3 s cpu: "
        f"{'met' if cpu_of['uncompressed'] * 335 / args.events <= 3.0 else 'MISSED'}"
    )
    rates = ", ".join(f"{k} {events_of[k] / cpu_of[k]:.1f}" for k in files)
    ceilings = ", ".join(f"{k} {v:.0f}" for k, v in ceiling.items())
    print(
        f"events/s per core on full files (issue 22): {rates}; the reader alone (ceiling): "
        f"{ceilings or 'not measured (--no-baseline)'}"
    )
    work = args.dir / "jobs"
    one = recocost.run_reco([warm], work / "one")
    five = recocost.run_reco([warm] * 5, work / "five")
    per_event = cpu_of["compressed"] / args.events
    print(
        f"start-up: a 1-event job {one.cpu_s:.2f} s cpu ({one.wall_s:.1f} s wall), "
        f"{one.cpu_s - per_event:.2f} s beyond its event; in a job given 5 such files each "
        f"further file {(five.cpu_s - one.cpu_s) / 4 - per_event:.3f} s beyond its event "
        f"(target <= 0.2 s)"
    )
    if args.clean:
        shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
