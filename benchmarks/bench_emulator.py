"""How fast the DAQ emulator makes uncompressed 3x1x1 events, against plainly writing the bytes.

Writes one real 335-event uncompressed file (1,072,226,134 bytes, checked) with
:func:`farmtools.emulator.emulate_run` on one core, then, in the same process, the same number of
bytes with a plain ``f.write`` of a preallocated buffer (the baseline: what the disk and page
cache allow at all).  Prints events/s of both, their ratio, and the event generation alone.
Both files are deleted afterwards.

    .venv/bin/python benchmarks/bench_emulator.py [--events 335] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from farmtools.detector import WA105_3X1X1 as G
from farmtools.emulator.daq import RunPlan, emulate_run
from farmtools.emulator.event import EventGenerator
from farmtools.emulator.settings import EmulatorSettings
from farmtools.rawdata.format import uncompressed_file_size

EXPECTED_335 = 1_072_226_134


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=335)
    ap.add_argument("--dir", default=None, help="where to write the files (default: a temp dir)")
    args = ap.parse_args()
    n = args.events
    settings = EmulatorSettings(seed=1)

    # Warm up numba and the Landau table outside the timings.
    gen = EventGenerator(G, settings, np.random.default_rng(0))
    gen.next_event()

    t0 = time.perf_counter()
    for _ in range(min(n, 50)):
        gen.next_event()
    gen_rate = min(n, 50) / (time.perf_counter() - t0)

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        files = emulate_run(out, settings, RunPlan(run=1, files=1, events_per_file=n), geometry=G)
        emu_s = time.perf_counter() - t0
        size = files[0].size
        files[0].path.unlink()

        buf = (
            np.random.default_rng(1)
            .integers(0, 256, G.payload_bytes + 35, dtype=np.uint8)
            .tobytes()
        )
        base = out / "baseline.bin"
        t0 = time.perf_counter()
        with base.open("wb") as f:
            f.write(b"\0" * 5)
            for _ in range(n):
                f.write(buf)
            f.write(b"\0" * 4)
            f.flush()
        base_s = time.perf_counter() - t0
        base_size = base.stat().st_size
        base.unlink()

    emu_rate = n / emu_s
    base_rate = n / base_s
    print(f"events per file          : {n}")
    expected = uncompressed_file_size(n, G.payload_bytes)
    print(f"emulated file size       : {size:,} bytes (expected {expected:,})")
    if n == 335:
        verdict = "OK" if size == EXPECTED_335 else "WRONG"
        print(f"335-event size check     : {verdict} ({EXPECTED_335:,} expected)")
    print(f"event generation alone   : {gen_rate:8.1f} events/s")
    print(f"emulate_run (write file) : {emu_rate:8.1f} events/s  ({size / emu_s / 1e6:.0f} MB/s)")
    base_mbps = base_size / base_s / 1e6
    print(f"baseline plain f.write   : {base_rate:8.1f} events/s  ({base_mbps:.0f} MB/s)")
    print(f"ratio emulator/baseline  : {emu_rate / base_rate:.3f}")
    met = "met" if emu_rate >= 20 else "NOT met"
    print(f"target >= 20 events/s    : {met} (one core, pid {os.getpid()})")


if __name__ == "__main__":
    main()
