"""Fit the purity's threshold-loss constants (``purity.THRESHOLD_LOSS`` = (c, p)) to saved hits.

The hit finder keeps ``1 - c (rms / a)^p t`` of a hit's charge (:func:`farmtools.analysis.purity.
threshold_correction`).  Given the hits of emulated samples whose lifetime is known
(``bench_closure_grid.py --hits DIR``: one ``.npz`` per sample, named ``<cell>_s<seed>``),
this scans (c, p), runs the purity fit with each on every sample (no bootstrap: the central
value does not depend on it), and prints per cell the mean bias of k in % with the mean pull,
and the sum over cells of n x (mean pull)^2, the figure minimised.  Calibrate on one set of
seeds (``--seeds 500``), check on the others (``--seeds 501,502``): the check is what
docs/analysis.md quotes.

    .venv/bin/python benchmarks/fit_threshold_loss.py DIR --seeds 500 --c 2.2e-3,2.6e-3,3e-3 --p 1.2,1.3,1.4
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from farmtools.analysis.hits import Columns
from farmtools.analysis.purity import THRESHOLD_LOSS, purity


def load(directory: Path, seeds: set[int] | None) -> dict[str, list[tuple[float, Columns]]]:
    """Samples per cell: (true k, hits)."""
    cells: dict[str, list[tuple[float, Columns]]] = {}
    for f in sorted(directory.glob("*_s*.npz")):
        cell, seed = f.stem.rsplit("_s", 1)
        if seeds is not None and int(seed) not in seeds:
            continue
        with np.load(f) as z:
            hits = {k[2:]: z[k] for k in z.files if k.startswith("c_")}
            cells.setdefault(cell, []).append((float(z["truth_k"]), hits))
    return cells


def evaluate(
    cells: dict[str, list[tuple[float, Columns]]], loss: tuple[float, float]
) -> tuple[float, list[str]]:
    """(sum over cells of n x mean pull^2, one 'cell: bias % (pull)' per cell)."""
    total, out = 0.0, []
    for cell, samples in sorted(cells.items()):
        bias, pulls = [], []
        for k_true, hits in samples:
            r = purity(hits, bootstrap=0, threshold_loss=loss).combined
            bias.append(r.k_per_us / k_true - 1.0)
            pulls.append((r.k_per_us - k_true) / r.k_error)
        n = len(pulls)
        total += n * float(np.mean(pulls)) ** 2
        out.append(f"{cell}: {100 * np.mean(bias):+.1f} % ({np.mean(pulls):+.2f}, n {n})")
    return total, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("directory", type=Path)
    ap.add_argument("--seeds", help="comma-separated seeds to use (default: all)")
    ap.add_argument("--c", default=str(THRESHOLD_LOSS[0]), help="values of c (/us)")
    ap.add_argument("--p", default=str(THRESHOLD_LOSS[1]), help="values of p")
    args = ap.parse_args()
    seeds = {int(s) for s in args.seeds.split(",")} if args.seeds else None
    cells = load(args.directory, seeds)
    if not cells:
        raise SystemExit(f"{args.directory}: no saved samples (bench_closure_grid --hits)")
    best = (math.inf, (0.0, 0.0))
    for p in (float(x) for x in args.p.split(",")):
        for c in (float(x) for x in args.c.split(",")):
            score, lines = evaluate(cells, (c, p))
            print(f"c {c:.3g} p {p:g}: sum n pull^2 {score:6.1f} | " + "; ".join(lines), flush=True)
            best = min(best, (score, (c, p)))
    print(f"best c {best[1][0]:.3g} p {best[1][1]:g} (sum n pull^2 {best[0]:.1f})")


if __name__ == "__main__":
    main()
