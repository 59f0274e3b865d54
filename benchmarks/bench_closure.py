"""Closure study: bias and resolution of the purity and gain analyses vs the number of events.

For each injected lifetime and each number of trigger muons, ``--reps`` independent samples of
hits are made from the emulator's physics (:func:`farmtools.analysis.closure.truth_hits`:
energy loss, recombination, attenuation, LEM gain map, view asymmetry; no waveforms), analysed,
and compared with the truth.  Printed per row: tau bias (mean of fitted/true - 1), resolution
(RMS of it), the mean fit error and the pull RMS (should be ~1), and over all LEMs the gain
bias and resolution and the asymmetry bias and resolution.  ``--reco 200,400`` adds rows
through the real chain for those numbers of events: ``--reco-reps`` independent runs each
(emulate raw files of at most 335 events, reconstruct them with ``reconstruct_file``, read the
ROOT files), the same figures over the runs.  Hit-level rows use the gain references of
truth-level hits, reco rows the default (reconstruction) references.

    .venv/bin/python benchmarks/bench_closure.py [--reps 6] [--events 250,500,1000,2000]
    .venv/bin/python benchmarks/bench_closure.py --events "" --reco 200,400,800 --reco-reps 4
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

from farmtools.analysis.closure import truth_hits
from farmtools.analysis.gain import MIP_MPV_REF, MIP_TM_REF, TRUTH_MPV_REF, TRUTH_TM_REF, gain
from farmtools.analysis.hits import Columns, read_hits
from farmtools.analysis.purity import purity
from farmtools.emulator.settings import EmulatorSettings

GAIN_MAP = {lem: 12.0 + 1.3 * lem + (2.0 if lem % 2 else 0.0) for lem in range(1, 13)}
ASYMMETRY = 0.1


def analyse(
    hits: Columns, s: EmulatorSettings, truth_level: bool = True
) -> tuple[float, float, list[float], list[float]]:
    """(tau/true - 1, error/true, per-LEM gain/true - 1, per-LEM asymmetry - true)."""
    tau = s.lifetime_ms * 1e3
    p = purity(hits)
    refs = (TRUTH_TM_REF, TRUTH_MPV_REF) if truth_level else (MIP_TM_REF, MIP_MPV_REF)
    g = gain(hits, p.combined.tau_us, tm_ref=refs[0], mpv_ref=refs[1])
    gains = [r.gain / s.gain_of_lem(r.lem) - 1 for r in g.lems]
    asym = [r.asymmetry - s.asymmetry for r in g.lems]
    return p.combined.tau_us / tau - 1, p.combined.error_us / tau, gains, asym


def row(label: str, n: int, results: list[tuple[float, float, list[float], list[float]]]) -> str:
    dt = np.array([r[0] for r in results])
    err = np.array([r[1] for r in results])
    g = np.concatenate([r[2] for r in results])
    a = np.concatenate([r[3] for r in results])
    pull = dt / err
    return (
        f"{label:>14} {n:>6} {len(results):>4} | {100 * dt.mean():+7.2f} {100 * dt.std():6.2f} "
        f"{100 * err.mean():6.2f} {np.sqrt(np.mean(pull**2)):5.2f} | "
        f"{100 * g.mean():+6.2f} {100 * g.std():5.2f} {100 * np.abs(g).max():5.2f} | "
        f"{a.mean():+7.4f} {a.std():6.4f}"
    )


def reco_results(n: int, s: EmulatorSettings) -> tuple[float, float, list[float], list[float]]:
    """One run of ``n`` events through the real chain (raw files, ``reconstruct_file``, ROOT)."""
    from farmtools.detector import WA105_3X1X1
    from farmtools.emulator.daq import RunPlan, emulate_run
    from farmtools.reco.driver import reconstruct_file

    files = -(-n // 335)
    with tempfile.TemporaryDirectory() as d:
        plan = RunPlan(run=1, files=files, events_per_file=-(-n // files))
        outs = []
        for f in emulate_run(Path(d), s, plan):
            out = Path(d) / f"reco{f.seq}.root"
            reconstruct_file(f.path, out, WA105_3X1X1)
            outs.append(out)
        return analyse(read_hits(outs), s, truth_level=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument("--events", default="250,500,1000,2000")
    ap.add_argument("--taus", default="3,7", help="lifetimes in ms")
    ap.add_argument("--reco", default="", help="events of the reco-level rows, e.g. 200,400")
    ap.add_argument("--reco-reps", type=int, default=3, help="runs per reco-level row")
    args = ap.parse_args()
    t_start = time.perf_counter()
    print(
        f"{'case':>14} {'events':>6} {'reps':>4} | {'tau bias%':>7} {'res%':>6} {'err%':>6} "
        f"{'pull':>5} | {'G bias%':>6} {'res%':>5} {'max%':>5} | {'A bias':>7} {'A res':>6}"
    )
    for tau in (float(t) for t in args.taus.split(",")):
        s = EmulatorSettings(lifetime_ms=tau, gain_map=GAIN_MAP, asymmetry=ASYMMETRY, seed=1)
        for n in (int(x) for x in args.events.split(",") if x):
            res = [analyse(truth_hits(s, n, seed=1000 * n + k), s) for k in range(args.reps)]
            print(row(f"hits tau={tau:g}ms", n, res), flush=True)
        for n in (int(x) for x in args.reco.split(",") if x):
            runs = [
                reco_results(n, dataclasses.replace(s, seed=100 + k)) for k in range(args.reco_reps)
            ]
            print(row(f"reco tau={tau:g}ms", n, runs), flush=True)
    print(f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
