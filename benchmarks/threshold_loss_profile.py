"""The threshold loss per drift-time bin on saved hits: measured against the same muons at a high gain.

Takes the hits ``bench_closure_grid.py --hits DIR`` kept (one ``.npz`` per sample, named
``<cell>_s<seed>``): a low-gain cell and a reference cell of the same lifetime whose loss is
negligible (G 20 or 40 at noise x1: rms/a 0.002-0.004), sample by sample (one seed = the same
muons).  Per 66 us bin of the purity's selection it prints, normalised to the first bin:

- ``meas``: the ratio of the two cells' gain-normalised truncated mean dQ/ds (what the hit finder
  lost at the low gain beyond what it lost at the reference, as a function of drift time);
- ``model``: the mean factor :func:`farmtools.analysis.purity.threshold_correction` divides by
  (track median amplitude carried down the drift with the true attenuation);
- ``corr``: ``meas`` after the correction (flat when the correction is right);
- ``amp``: the median of each hit's amplitude over the pulse height the correction assumes for
  it (1 everywhere if the pulse height were only attenuated: the rest is diffusion).

Issue 19's question for the 1 ms, G 3, noise x3 cell (docs/analysis.md, "the closure grid"):
whether the correction should take the local pulse height.

    .venv/bin/python benchmarks/threshold_loss_profile.py DIR tau1_g20_n1:20 tau1_g3_n3:3
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import numpy.typing as npt

from farmtools.analysis.estimators import truncated_mean
from farmtools.analysis.hits import Columns
from farmtools.analysis.purity import (
    BIN_US,
    END_STRIPS,
    MAX_DRIFT_US,
    MIN_LENGTH_CM,
    THRESHOLD_LOSS,
    select_crossing,
    threshold_correction,
    track_keys,
    track_median,
)

BINS = int(MAX_DRIFT_US // BIN_US)


def profiles(hits: Columns, gain: float, k_true: float) -> dict[str, npt.NDArray[np.float64]]:
    """Per drift bin: truncated mean of dQ/ds / gain raw (``q``) and corrected (``qc``), the
    correction's mean factor (``f``) and the median amplitude over the assumed one (``amp``)."""
    sel = select_crossing(hits, MIN_LENGTH_CM, MAX_DRIFT_US, END_STRIPS)
    keys = track_keys(hits)[sel]
    t = hits["drift_us"][sel].astype(np.float64)
    q = hits["dqds"][sel].astype(np.float64) / gain
    f = threshold_correction(hits, sel, keys, THRESHOLD_LOSS, k_true)
    a = hits["amplitude"][sel].astype(np.float64)
    assumed = track_median(keys, a) * np.exp(-k_true * (t - track_median(keys, t)))
    b = np.minimum((t // BIN_US).astype(int), BINS - 1)
    out: dict[str, list[float]] = {"q": [], "qc": [], "f": [], "amp": []}
    for i in range(BINS):
        m = b == i
        out["q"].append(truncated_mean(q[m])[0])
        out["qc"].append(truncated_mean((q / f)[m])[0])
        out["f"].append(float(np.mean(f[m])))
        out["amp"].append(float(np.median(a[m] / np.maximum(assumed[m], 1.0))))
    return {k: np.array(v) for k, v in out.items()}


def main() -> None:
    from fit_threshold_loss import load  # beside this script (on sys.path)

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("directory", type=Path)
    ap.add_argument("reference", help="CELL:GAIN of the reference (no loss), e.g. tau1_g20_n1:20")
    ap.add_argument("cells", nargs="+", help="CELL:GAIN of the low-gain cells")
    args = ap.parse_args()
    cells = load(args.directory, None)
    ref_name, ref_gain = args.reference.split(":")
    print(f"drift bins of {BIN_US:g} us from 0; each row normalised to its first bin")
    for spec in args.cells:
        name, gain = spec.split(":")
        for (k_true, ref), (_, low) in zip(cells[ref_name], cells[name], strict=False):
            r = profiles(ref, float(ref_gain), k_true)
            lo = profiles(low, float(gain), k_true)
            rows = {
                "meas": lo["q"] / r["q"],
                "model": lo["f"],
                "corr": lo["qc"] / r["q"],
                "amp": lo["amp"],
            }
            for label, v in rows.items():
                print(f"{name:>12} {label:>5} " + " ".join(f"{x:.3f}" for x in v / v[0]))


if __name__ == "__main__":
    main()
