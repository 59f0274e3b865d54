"""Measure the hit finder's threshold loss per hit: one run reconstructed at a low gain and at G = 20.

A cross-check of the loss's shape (the per-hit charge ratio against drift time); the purity's
constants ``purity.THRESHOLD_LOSS`` = (c, p) are fitted on the grid's samples by
``benchmarks/fit_threshold_loss.py`` (docs/analysis.md).

The same emulated events (same muons, same noise: one seed) are reconstructed at a low gain and
at G = 20; every hit of a crossing track found in both is compared.  Everything but the hit
finder's threshold cancels in the ratio of their G-normalised charges, which falls with drift
time as ``c (1 - beta rms t (1/a_low - 1/a_20))`` (``a`` the track's median amplitude, ``rms``
the channel's noise).  Printed: the ratio per drift-time bin, the fitted ``beta`` with its
error, the median noise, and the corrected purity k of both runs (they agree when the constant
is right).  The first version of the correction set ``beta = b0 + b1 rms`` through the betas
at noise x1 and x3; the power law that replaced it is fitted with ``fit_threshold_loss.py``.
The emulator runs with every realism switch off (``settings.BASELINE``), as for the grid.

    .venv/bin/python benchmarks/calibrate_threshold_loss.py [--gain 3] [--noise 1] [--events 400]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from farmtools.analysis.hits import Columns, read_hits
from farmtools.analysis.purity import purity, select_crossing, track_keys, track_median
from farmtools.emulator.settings import BASELINE, EmulatorSettings


def reconstructed(gain: float, noise: float, events: int, seed: int, d: Path) -> Columns:
    from farmtools.detector import WA105_3X1X1
    from farmtools.emulator.daq import RunPlan, emulate_run
    from farmtools.reco.driver import reconstruct_file

    s = EmulatorSettings(
        **BASELINE,  # type: ignore[arg-type]
        lifetime_ms=7.0,
        gain=gain,
        asymmetry=0.1,
        seed=seed,
        white_noise_adc=(1.0 * noise, 2.0 * noise),
        coherent_noise_adc=1.0 * noise,
    )
    out = d / f"g{gain:g}"
    out.mkdir()
    files = -(-events // 335)
    outs = []
    for f in emulate_run(out, s, RunPlan(run=1, files=files, events_per_file=-(-events // files))):
        outs.append(out / f"reco{f.seq}.root")
        reconstruct_file(f.path, outs[-1], WA105_3X1X1)
    return read_hits(outs)


def per_hit(h: Columns) -> dict[str, Any]:
    sel = select_crossing(h, max_drift_us=594.0)
    keys = track_keys(h)[sel]
    key = (
        (h["file"][sel].astype(np.int64) << 40)
        | (h["event"][sel].astype(np.int64) << 12)
        | (h["view"][sel].astype(np.int64) << 11)
        | h["channel"][sel].astype(np.int64)
    )
    cols = {
        "key": key,
        "q": h["charge"][sel].astype(np.float64),
        "t": h["drift_us"][sel].astype(np.float64),
        "a": track_median(keys, h["amplitude"][sel].astype(np.float64)),
        "rms": h["noise_rms"][sel].astype(np.float64),
    }
    _, first = np.unique(key, return_index=True)
    return {k: v[first] for k, v in cols.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gain", type=float, default=3.0, help="the low gain")
    ap.add_argument("--noise", type=float, default=1.0, help="noise scale factor")
    ap.add_argument("--events", type=int, default=400)
    ap.add_argument("--seed", type=int, default=600)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        low = reconstructed(args.gain, args.noise, args.events, args.seed, Path(tmp))
        high = reconstructed(20.0, args.noise, args.events, args.seed, Path(tmp))
    a, b = per_hit(low), per_hit(high)
    _, ia, ib = np.intersect1d(a["key"], b["key"], return_indices=True)
    r = (a["q"][ia] / args.gain) / (b["q"][ib] / 20.0)
    x = a["rms"][ia] * a["t"][ia] * (1.0 / a["a"][ia] - 1.0 / b["a"][ib])
    t = a["t"][ia]
    ok = np.isfinite(r) & (r > 0.5) & (r < 1.5)
    r, x, t = r[ok], x[ok], t[ok]
    print(f"{r.size} hits matched; median noise {np.median(a['rms'][ia]):.2f} ADC")
    for lo in range(0, 594, 66):
        m = (t >= lo) & (t < lo + 66)
        err = r[m].std() / np.sqrt(max(int(m.sum()), 1))
        print(f"  t {lo:3d}-{lo + 66:3d} us: ratio {r[m].mean():.4f} +- {err:.4f}")
    design = np.vstack([np.ones_like(x), -x]).T
    coef, *_ = np.linalg.lstsq(design, r, rcond=None)
    cov = np.linalg.inv(design.T @ design) * float(np.var(r - design @ coef))
    print(f"beta = {coef[1] / coef[0]:.3e} +- {np.sqrt(cov[1, 1]) / coef[0]:.1e} /us")
    for name, h in (("low gain", low), ("G = 20", high)):
        c = purity(h).combined
        print(f"  corrected k, {name}: {1e6 * c.k_per_us:.1f} +- {1e6 * c.k_error:.1f} e-6/us")


if __name__ == "__main__":
    main()
