"""How long the emulator takes for one full 6x6x6 event (beam + ~92 cosmics), per step.

Baseline, in the same process: 3x1x1 events of :class:`EventGenerator` (1280 x 1667 samples, one
muon and its 0.3 extra), as time per sample; the 6x6x6 event (7680 x 10,000 samples, 36 times
the samples) is printed against it, so that a loaded machine shows in both.  Steps of the 6x6x6
event: the particles and their light, the four CRPs (deposit, shaping, noise, digitising; with
1 and with ``--workers`` threads), the DAQ order and the 12-bit packing of the two fragments.
Nothing is written to disk; peak memory is printed (about 1.5 GB: four CRPs' float32 charge and
signal buffers, 614 MB, plus the event's samples).

    .venv/bin/python benchmarks/bench_emulator_6x6x6.py [--events 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from farmtools.detector import WA105_3X1X1, geometry
from farmtools.emulator.beam import BeamSettings, Trigger
from farmtools.emulator.event import EventGenerator
from farmtools.emulator.l1streams import daq_order
from farmtools.emulator.pddp_event import PddpEventGenerator
from farmtools.emulator.settings import EmulatorSettings
from farmtools.rawdata.pddp_writer import encode_cro


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    settings = EmulatorSettings(seed=1)

    base = EventGenerator(WA105_3X1X1, settings, np.random.default_rng(0))
    base.next_event()
    t = time.perf_counter()
    for _ in range(20):
        base.next_event()
    base_s = (time.perf_counter() - t) / 20
    base_ns = base_s / (WA105_3X1X1.n_channels * WA105_3X1X1.samples) * 1e9
    print(f"baseline 3x1x1 event: {base_s * 1e3:.0f} ms ({base_ns:.1f} ns per sample)")

    g = geometry("6x6x6")
    per_sample = g.n_channels * g.samples
    for workers in (1, args.workers):
        gen = PddpEventGenerator(g, settings, BeamSettings(), 1, workers=workers)
        gen.event(Trigger(0.0, True, 0))  # warm up
        totals = np.zeros(4)
        n_part = 0
        for i in range(args.events):
            t0 = time.perf_counter()
            parts = gen.particles(beam=i % 2 == 0)
            t1 = time.perf_counter()
            ev = gen.event(Trigger(0.0, i % 2 == 0, 0), parts)
            t2 = time.perf_counter()
            daq = daq_order(g, ev.adc)
            t3 = time.perf_counter()
            fc = g.fragment_channels
            cro = [encode_cro(daq[k * fc : (k + 1) * fc], False) for k in (0, 1)]
            t4 = time.perf_counter()
            assert sum(len(c) for c in cro) == g.payload_bytes
            totals += (t1 - t0, t2 - t1, t3 - t2, t4 - t3)
            n_part += len(parts)
        per = totals / args.events
        event_s = per.sum()
        ratio = event_s / per_sample * 1e9 / base_ns
        print(
            f"6x6x6 event, {workers} thread(s): {event_s:.2f} s "
            f"(particles {per[0]:.3f}, CRPs + light {per[1]:.2f}, DAQ order {per[2]:.2f}, "
            f"packing {per[3]:.2f}), {n_part / args.events:.0f} particles per event; "
            f"{ratio:.2f} x the 3x1x1's time per sample"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory: {peak:.0f} MB")


if __name__ == "__main__":
    main()
