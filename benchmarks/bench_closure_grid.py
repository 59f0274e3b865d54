"""Closure grid: the real chain over the detector's range, several independent samples per cell.

Cells: lifetime (1, 3, 7, 15, 30 ms) x gain (uniform 3, 20, 40, and a map 5-40 with a dead LEM)
x noise (x1, x3 the emulator's white and coherent noise) x compressed or not.  Each sample of a
cell emulates raw files (``emulate_run``), reconstructs them (``reconstruct_file``), reads the
ROOT files and runs the purity and gain analyses (the bench's ``--events`` per sample; the
samples of one index share their muons across cells, different indices are independent).

Printed per cell: the bias in k = 1/tau (mean of k - k_true over the samples, with its error
RMS/sqrt(n)), in % of k_true, the mean quoted k error, the pull mean and RMS, the mean and
worst gain deviation over the live LEMs, the mean asymmetry deviation, and the verdict of
honest criteria (see :func:`judge`): the pulls everywhere, the 15 % precision only where the
statistics allow it.

    .venv/bin/python benchmarks/bench_closure_grid.py --quick
    .venv/bin/python benchmarks/bench_closure_grid.py --events 400 --samples 4
    .venv/bin/python benchmarks/bench_closure_grid.py --taus 3 --gains 3,20 --noise 1 --compress no
    .venv/bin/python benchmarks/bench_closure_grid.py --taus 7 --gains 3,20 --emulator default

``--hits DIR`` keeps each sample's hits there (``<cell>_s<seed>.npz``, see :func:`cell_name`) and
reads a sample back instead of running it again when its file is there with the same number of
events: a long grid is resumable (kill it, start it again with the same DIR), and the analyses
always run on the current code (a changed purity correction needs no new reconstruction).
``--cached-only`` prints the table from DIR without running anything.

``--emulator baseline`` (the default: every realism switch off, the model the table of
docs/analysis.md was measured on), ``default`` (the emulator's defaults: delta rays, multiple
scattering, stopping and side-entering muons, defective channels) or ``realistic``.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from farmtools.analysis.gain import gain
from farmtools.analysis.hits import Columns, read_hits
from farmtools.analysis.purity import purity
from farmtools.emulator.settings import BASELINE, REALISTIC, EmulatorSettings

#: The map cell: gains 5-40 over the 12 LEMs, LEM 6 dead (gain 0).
MAP_DEAD: dict[int, float] = {
    lem: (0.0 if lem == 6 else 5.0 + 35.0 * (lem - 1) / 11) for lem in range(1, 13)
}
ASYMMETRY = 0.1


#: ``--emulator``: the realism switches of each choice (docs/emulator.md).
EMULATORS: dict[str, dict[str, object]] = {
    "baseline": BASELINE,
    "default": {},
    "realistic": REALISTIC,
}


def settings_of(
    tau_ms: float, gain_name: str, noise: float, seed: int, emulator: str = "baseline"
) -> EmulatorSettings:
    base = EmulatorSettings()
    kw: dict[str, Any] = dict(
        EMULATORS[emulator],
        lifetime_ms=tau_ms,
        asymmetry=ASYMMETRY,
        seed=seed,
        white_noise_adc=(base.white_noise_adc[0] * noise, base.white_noise_adc[1] * noise),
        coherent_noise_adc=base.coherent_noise_adc * noise,
    )
    if gain_name == "map":
        kw["gain_map"] = MAP_DEAD
    else:
        kw["gain"] = float(gain_name)
    return EmulatorSettings(**kw)


#: The purity variants compared on the same reconstructed samples: the plain fit, the default
#: (the threshold-loss correction, :data:`farmtools.analysis.purity.THRESHOLD_LOSS`) and the
#: threshold model fitted with k.
FITS: dict[str, dict[str, Any]] = {
    "plain": {"threshold_loss": (0.0, 0.0)},
    "corr": {},
    "thr": {"threshold_model": True, "threshold_loss": (0.0, 0.0)},
}


def cell_name(tau_ms: float, gain_name: str, noise: float, compress: bool) -> str:
    """A cell's name in the hits directory: ``tau7_g3_n3`` (uncompressed), ``tau7_g3_n3_z``."""
    return f"tau{tau_ms:g}_g{gain_name}_n{noise:g}" + ("_z" if compress else "")


def chain_hits(s: EmulatorSettings, events: int, compress: bool) -> Columns:
    """One sample through the real chain: emulated raw files, ``reconstruct_file``, ROOT, hits."""
    from farmtools.detector import WA105_3X1X1
    from farmtools.emulator.daq import RunPlan, emulate_run
    from farmtools.reco.driver import reconstruct_file

    files = -(-events // 335)
    with tempfile.TemporaryDirectory() as d:
        plan = RunPlan(run=1, files=files, events_per_file=-(-events // files), compress=compress)
        outs = []
        for f in emulate_run(Path(d), s, plan):
            out = Path(d) / f"reco{f.seq}.root"
            reconstruct_file(f.path, out, WA105_3X1X1)
            outs.append(out)
        return read_hits(outs)


def cached_hits(
    s: EmulatorSettings, events: int, compress: bool, save: Path | None, run: bool = True
) -> Columns | None:
    """The sample's hits: read from ``save`` when it holds this sample (same number of events),
    else through :func:`chain_hits` and kept there (``.npz``: columns prefixed ``c_``, the true
    k as ``truth_k``, ``events``, the chain's CPU seconds as ``cpu_s``; written under a temporary
    name then renamed, so a killed run leaves no half file) for a restart and for
    ``benchmarks/fit_threshold_loss.py``.  None when ``run`` is off and nothing is kept."""
    if save is not None and save.exists():
        with np.load(save) as z:
            if "events" in z.files and int(z["events"]) == events:
                return {k[2:]: z[k] for k in z.files if k.startswith("c_")}
    if not run:
        return None
    cpu = time.process_time()
    hits = chain_hits(s, events, compress)
    if save is not None:
        save.parent.mkdir(parents=True, exist_ok=True)
        columns = {"c_" + k: np.asarray(v) for k, v in hits.items()}
        columns["truth_k"] = np.array(1e-3 / s.lifetime_ms)
        columns["events"] = np.array(events)
        columns["cpu_s"] = np.array(time.process_time() - cpu)
        tmp = save.with_name(f"{save.name}.{os.getpid()}.part")  # two queues may meet
        with tmp.open("wb") as fh:
            np.savez(fh, **columns)  # type: ignore[arg-type]
        tmp.replace(save)
    return hits


def one_sample(
    s: EmulatorSettings,
    events: int,
    compress: bool,
    fits: list[str],
    save: Path | None = None,
    run: bool = True,
) -> list[dict[str, Any]] | None:
    """One sample: per purity variant (:data:`FITS`) k and its error, gain and asymmetry
    deviations (hits from :func:`cached_hits`; None when not run and not kept)."""
    hits = cached_hits(s, events, compress, save, run)
    if hits is None:
        return None
    results = []
    for name in fits:
        p = purity(hits, **FITS[name])
        g = gain(hits, p.combined.tau_us)
        live = [r for r in g.lems if s.gain_of_lem(r.lem) > 0 and math.isfinite(r.gain)]
        results.append(
            {
                "k": p.combined.k_per_us,
                "k_err": p.combined.k_error,
                "k_syst": p.k_systematic,
                "nts": p.noise_to_signal,
                "gain_dev": [r.gain / s.gain_of_lem(r.lem) - 1 for r in live],
                "asym_dev": [r.asymmetry - s.asymmetry for r in live if math.isfinite(r.asymmetry)],
                "dead_empty": all(
                    not math.isfinite(r.gain) for r in g.lems if s.gain_of_lem(r.lem) == 0
                ),
            }
        )
    return results


def judge(k_true: float, res: list[dict[str, Any]]) -> tuple[str, dict[str, float]]:
    """The cell's figures and verdict.

    Criteria: the mean pull in k within 2 of its own error (1/sqrt(n)): no bias beyond what
    the samples resolve; the pull RMS within 0.5-1.6 (errors honest; with few samples a loose
    band); the 15 % criterion on k only where the mean quoted error is below 7.5 % of k (two
    standard errors fit in it), else "stat" (out of reach, not a failure); live LEM gains
    within 5 % on average and asymmetry within 0.02.  A mean pull beyond 2/sqrt(n) whose bias
    is within 2 x (the mean error / sqrt(n) combined with the systematic error the analysis
    quotes, ``k_systematic``) is "ok (syst)": a residual the output declares, not a failure;
    the pull RMS of such a cell is then taken with the systematic error added to each sample's.
    """
    ks = np.array([r["k"] for r in res])
    errs = np.array([r["k_err"] for r in res])
    ok = np.isfinite(ks) & np.isfinite(errs) & (errs > 0)
    if not ok.any():
        return "FAIL (no measurement)", {}
    ks, errs = ks[ok], errs[ok]
    n = ks.size
    pulls = (ks - k_true) / errs
    systs = np.array([r.get("k_syst", math.nan) for r in res])[ok]
    syst = float(np.mean(np.nan_to_num(systs)))
    g = np.concatenate([r["gain_dev"] for r in res]) if res else np.zeros(0)
    a = np.concatenate([r["asym_dev"] for r in res]) if res else np.zeros(0)
    fig = {
        "n": float(n),
        "bias": float(np.mean(ks - k_true)),
        "bias_err": float(np.std(ks, ddof=1) / math.sqrt(n)) if n > 1 else float(errs[0]),
        "err": float(np.mean(errs)),
        "syst": syst,
        "nts": float(np.nanmean([r.get("nts", math.nan) for r in res])),
        "pull_mean": float(np.mean(pulls)),
        "pull_rms": float(np.sqrt(np.mean(pulls**2))),
        "g_mean": float(np.mean(g)) if g.size else math.nan,
        "g_max": float(np.max(np.abs(g))) if g.size else math.nan,
        "a_mean": float(np.mean(a)) if a.size else math.nan,
    }
    fails, within_syst = [], False
    if abs(fig["pull_mean"]) > 2.0 / math.sqrt(n):
        within_syst = abs(fig["bias"]) <= 2.0 * math.hypot(fig["err"] / math.sqrt(n), syst)
        if not within_syst:
            fails.append("bias")
    # a declared residual: the errors' honesty judged with the systematic error included
    total = np.hypot(errs, np.nan_to_num(systs)) if within_syst else errs
    if n >= 3 and not 0.5 <= float(np.sqrt(np.mean(((ks - k_true) / total) ** 2))) <= 1.6:
        fails.append("pull RMS")
    precision = "stat"
    if fig["err"] < 0.075 * k_true:
        precision = "15%"
        if abs(fig["bias"]) > 0.15 * k_true:
            fails.append("15%")
    if g.size and abs(fig["g_mean"]) > 0.05:
        fails.append("gain")
    if a.size and abs(fig["a_mean"]) > 0.02:
        fails.append("asym")
    if not all(r["dead_empty"] for r in res):
        fails.append("dead LEM has a gain")
    verdict = "FAIL " + ",".join(fails) if fails else "ok (syst)" if within_syst else "ok"
    return verdict + f" [{precision}]", fig


def print_cell(cell: str, k_true: float, res: list[dict[str, Any]], markdown: str = "") -> None:
    """One line of the table; ``markdown``: a docs/analysis.md row instead, that cell name."""
    verdict, f = judge(k_true, res)
    if not f:
        print(f"{markdown or cell} | {verdict}", flush=True)
        return
    if markdown:
        print(
            f"| {markdown} | {int(f['n'])} | {1e6 * f['bias']:+.1f} +- {1e6 * f['bias_err']:.1f} | "
            f"{100 * f['bias'] / k_true:+.1f} | {100 * f['err'] / k_true:.1f} | "
            f"{100 * f['syst'] / k_true:.1f} | {f['nts']:.3f} | "
            f"{f['pull_mean']:+.2f} / {f['pull_rms']:.2f} | "
            f"{100 * f['g_mean']:+.2f} / {100 * f['g_max']:.2f} % | {f['a_mean']:+.3f} | {verdict} |",
            flush=True,
        )
        return
    print(
        f"{cell} {int(f['n']):>2} | "
        f"{1e6 * f['bias']:+7.1f} +- {1e6 * f['bias_err']:5.1f} "
        f"{100 * f['bias'] / k_true:+6.1f} {100 * f['err'] / k_true:5.1f} "
        f"{100 * f['syst'] / k_true:5.1f} {f['nts']:5.3f} | "
        f"{f['pull_mean']:+5.2f} {f['pull_rms']:4.2f} | "
        f"{100 * f['g_mean']:+7.2f} {100 * f['g_max']:5.2f} | "
        f"{f['a_mean']:+6.3f} | {verdict}",
        flush=True,
    )


def same_hits(a: Path, b: Path) -> bool:
    """Whether two kept samples hold the same hits, column by column (NaN equal to NaN)."""
    with np.load(a) as x, np.load(b) as y:
        cols = [k for k in x.files if k.startswith("c_")]
        return set(cols) == {k for k in y.files if k.startswith("c_")} and all(
            np.array_equal(x[k], y[k], equal_nan=x[k].dtype.kind == "f") for k in cols
        )


def same_as_uncompressed(
    directory: Path, tau: float, gain_name: str, noise: float, seeds: range
) -> str:
    """' (hits = uncompressed, n seeds)' when every kept compressed sample of the cell has
    the same hits, column by column, as the uncompressed sample of its seed (the compression
    is lossless, so the reconstruction must not see it); ' (hits DIFFER ...)' otherwise; ''
    when no pair is kept."""
    same = differ = 0
    for seed in seeds:
        z = directory / f"{cell_name(tau, gain_name, noise, True)}_s{seed}.npz"
        u = directory / f"{cell_name(tau, gain_name, noise, False)}_s{seed}.npz"
        if not (z.exists() and u.exists()):
            continue
        equal = same_hits(z, u)
        same, differ = same + equal, differ + (not equal)
    if differ:
        return f" (hits DIFFER from uncompressed in {differ} of {same + differ} seeds)"
    return f" (hits = uncompressed, {same} seeds)" if same else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 samples x 100 events, 4 cells")
    ap.add_argument("--taus", default="1,3,7,15,30", help="lifetimes (ms)")
    ap.add_argument("--gains", default="3,20,40,map", help="uniform gains, 'map' = 5-40 + dead")
    ap.add_argument("--noise", default="1,3", help="noise scale factors")
    ap.add_argument("--compress", default="no,yes", help="no, yes or both")
    ap.add_argument("--events", type=int, default=400, help="events per sample")
    ap.add_argument("--samples", type=int, default=3, help="independent samples per cell")
    ap.add_argument(
        "--emulator",
        choices=sorted(EMULATORS),
        default="baseline",
        help="realism switches: all off (the grid's figures), the defaults, or --realistic's",
    )
    ap.add_argument(
        "--hits",
        "--save-hits",
        type=Path,
        help="keep each sample's hits in this directory and reuse them on a restart",
    )
    ap.add_argument("--cached-only", action="store_true", help="only the samples kept in --hits")
    ap.add_argument("--first-seed", type=int, default=500, help="seed of the first sample")
    ap.add_argument("--markdown", action="store_true", help="rows of docs/analysis.md's table")
    ap.add_argument(
        "--fits",
        default="plain,corr",
        help="purity variants on the same samples: plain, corr (default analysis), thr",
    )
    args = ap.parse_args()
    if args.quick:
        args.taus, args.gains, args.noise, args.compress = "7", "3,20", "1", "no"
        args.events, args.samples = 100, 2
    t_start = time.perf_counter()
    analysed: dict[Path, list[dict[str, Any]]] = {}  # per kept sample, for its compressed twin
    print(
        f"{'fit':>5} {'tau':>4} {'gain':>4} {'noise':>5} {'comp':>4} {'n':>2} | {'k bias e-6/us':>15} "
        f"{'%':>6} {'err%':>5} {'syst%':>5} {'n/s':>5} | {'pull':>5} {'rms':>4} | {'G mean%':>7} {'max%':>5} | "
        f"{'A dev':>6} | verdict"
    )
    for tau in (float(t) for t in args.taus.split(",")):
        k_true = 1e-3 / tau
        for gname in args.gains.split(","):
            for noise in (float(x) for x in args.noise.split(",")):
                for comp in args.compress.split(","):
                    fits = args.fits.split(",")
                    name = cell_name(tau, gname, noise, comp == "yes")
                    seeds = range(args.first_seed, args.first_seed + args.samples)
                    runs: list[list[dict[str, Any]] | None] = []
                    for seed in seeds:
                        path = args.hits / f"{name}_s{seed}.npz" if args.hits else None
                        twin = path.with_name(path.name.replace("_z_s", "_s")) if path else None
                        if path and twin in analysed and path.exists() and same_hits(path, twin):
                            runs.append(analysed[twin])  # the same hits: the same figures
                            continue
                        runs.append(
                            one_sample(
                                settings_of(tau, gname, noise, seed, args.emulator),
                                args.events,
                                comp == "yes",
                                fits,
                                path,
                                run=not args.cached_only,
                            )
                        )
                        if path and runs[-1] is not None:
                            analysed[path] = runs[-1]
                    samples = [r for r in runs if r is not None]
                    if not samples:
                        continue
                    label = (
                        f"{tau:g} ms, "
                        + ("map 5-40 + dead LEM" if gname == "map" else f"G {gname}")
                        + f", x{noise:g}"
                        + (", compressed" if comp == "yes" else "")
                    )
                    if comp == "yes" and args.hits:
                        label += same_as_uncompressed(args.hits, tau, gname, noise, seeds)
                    for j, name in enumerate(fits):
                        cell = f"{name:>5} {tau:>4g} {gname:>4} {noise:>5g} {comp:>4}"
                        md = f"{label} | {name}" if args.markdown else ""
                        print_cell(cell, k_true, [r[j] for r in samples], md)
    print(f"total {time.perf_counter() - t_start:.0f} s (loaded machine: compare within a run)")


if __name__ == "__main__":
    main()
