"""Electron lifetime from anode-cathode crossing tracks (spec section 6, "purity").

Selection: hits of matched tracks flagged as crossing from anode to cathode (so t0 is known),
3D length above 50 cm, not on the first or last strip of the track (partly crossed strips),
with a finite positive dQ/ds.  Their dQ/ds is binned in drift time (66 us, as Qscan), each bin
summarised by a truncated mean or an MPV (:mod:`.estimators`), and ``A exp(-t / tau)`` is
fitted per view and jointly (one tau, one A per view), after equalising the LEM gains (see
:func:`purity`).  The fit is in ``k = 1/tau``, which is
linear near pure argon where tau runs to infinity; a lifetime beyond :data:`INFINITE_US` is
reported as that dummy, as the seed's summary did.

Pure functions over the hit columns of :mod:`.hits`; may import numpy and
:mod:`.estimators`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from farmtools.analysis.estimators import mpv, truncated_mean
from farmtools.analysis.hits import Columns

Estimator = Literal["tm", "mpv"]

#: The seed's dummy for an infinite lifetime (us).
INFINITE_US = 100000.0
#: Drift-time bin width of Qscan's purity analysis (us).
BIN_US = 66.0
#: Shortest crossing track used (cm).
MIN_LENGTH_CM = 50.0
#: Drift times used (us): the nine full 66 us bins below the full drift (623 us in the 3x1x1);
#: the partial last bin, at the cathode, sat 3-7 % low in reconstructed data.
MAX_DRIFT_US = 594.0
#: Truncation of the per-bin mean: the lowest 0 % and the highest 5 %.  Not the gain's 5 %/25 %:
#: transverse diffusion shares charge between neighbouring strips, which narrows the dQ/ds
#: distribution at long drift, so a heavily truncated mean rises with drift time and inflates
#: tau.  Measured through the reconstruction at tau = 3 ms, 200 events: 5 %/25 % gave
#: +7.8 % (4.8 standard errors), 0 %/5 % +2.3 % (1.1).
TRUNCATION: tuple[float, float] = (0.0, 0.05)
#: Fewest hits a drift-time bin needs to enter the fit.
MIN_BIN_HITS = 30


@dataclass
class Lifetime:
    """A lifetime in us with its fit error; ``tau_us`` is INFINITE_US when k <= 1/INFINITE_US."""

    tau_us: float
    error_us: float
    k_per_us: float
    k_error: float
    chi2_ndof: float = math.nan

    @classmethod
    def from_k(cls, k: float, k_err: float, chi2_ndof: float = math.nan) -> Lifetime:
        if not math.isfinite(k) or k <= 1.0 / INFINITE_US:
            return cls(INFINITE_US, INFINITE_US, k, k_err, chi2_ndof)
        return cls(1.0 / k, k_err / (k * k), k, k_err, chi2_ndof)


@dataclass
class PurityResult:
    """Lifetime per view and combined, with the binned points that were fitted."""

    views: list[Lifetime]
    combined: Lifetime
    estimator: str
    n_tracks: int
    n_hits: int
    #: Per view: drift time (us), dQ/ds (fC/cm), error, hits, for each bin used.
    points: list[dict[str, list[float]]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def select_crossing(
    hits: Columns, min_length_cm: float = MIN_LENGTH_CM, max_drift_us: float | None = None
) -> npt.NDArray[np.bool_]:
    """Mask of the hits the purity analysis uses (see the module doc)."""
    dqds = hits["dqds"]
    sel = (
        (hits["track"] >= 0)
        & hits["trk_crossing"].astype(bool)
        & hits["trk_matched"].astype(bool)
        & (hits["trk_length3d"] > min_length_cm)
        & ~hits["edge"].astype(bool)
        & np.isfinite(dqds)
        & (dqds > 0)
        & (hits["drift_us"] >= 0)
    )
    if max_drift_us is not None:
        sel &= hits["drift_us"] <= max_drift_us
    return sel


def binned_points(
    drift_us: npt.NDArray[np.floating[Any]],
    dqds: npt.NDArray[np.floating[Any]],
    estimator: Estimator = "tm",
    bin_us: float = BIN_US,
    min_hits: int = MIN_BIN_HITS,
) -> dict[str, list[float]]:
    """Per drift-time bin: mean drift time, dQ/ds estimate and error, number of hits."""
    pts: dict[str, list[float]] = {"t_us": [], "value": [], "error": [], "n": []}
    if drift_us.size == 0:
        return pts
    edges = np.arange(0.0, float(drift_us.max()) + bin_us, bin_us)
    idx = np.digitize(drift_us, edges) - 1
    for b in range(edges.size - 1):
        m = idx == b
        n = int(m.sum())
        if n < min_hits:
            continue
        value, err = truncated_mean(dqds[m], *TRUNCATION) if estimator == "tm" else mpv(dqds[m])
        if not (math.isfinite(value) and math.isfinite(err) and err > 0):
            continue
        pts["t_us"].append(float(drift_us[m].mean()))
        pts["value"].append(value)
        pts["error"].append(err)
        pts["n"].append(float(n))
    return pts


def fit_exponential(points: list[dict[str, list[float]]]) -> tuple[float, float, float]:
    """Joint fit of ``A_v exp(-k t)`` to the points of each view: (k per us, its error, chi2/ndof).

    A weighted linear least-squares fit of ``log y = log A_v - k t`` with errors ``e / y``: exact
    for this model up to the tiny non-linearity of the log at errors of a few per mille, with no
    starting values and no convergence to check (an iminuit fit in ``k`` stopped early at
    k ~ 1e-4 in the first tests).
    """
    sets = [
        (np.asarray(p["t_us"]), np.asarray(p["value"]), np.asarray(p["error"]))
        for p in points
        if len(p["t_us"]) >= 2
    ]
    if not sets:
        return math.nan, math.nan, math.nan
    n_par = 1 + len(sets)
    rows = []
    rhs = []
    weights = []
    for i, (t, y, e) in enumerate(sets):
        for tj, yj, ej in zip(t, y, e, strict=True):
            row = np.zeros(n_par)
            row[0] = -tj
            row[1 + i] = 1.0
            rows.append(row)
            rhs.append(math.log(yj))
            weights.append((yj / ej) ** 2)
    a = np.asarray(rows)
    b = np.asarray(rhs)
    w = np.asarray(weights)
    normal = a.T @ (a * w[:, None])
    cov = np.linalg.inv(normal)
    params = cov @ (a.T @ (w * b))
    chi2 = float(np.sum(w * (b - a @ params) ** 2))
    ndof = a.shape[0] - n_par
    return (
        float(params[0]),
        float(math.sqrt(cov[0, 0])),
        chi2 / ndof if ndof > 0 else math.nan,
    )


def _fit_views(
    drift: npt.NDArray[np.float64],
    dqds: npt.NDArray[np.float64],
    view: npt.NDArray[Any],
    estimator: Estimator,
    bin_us: float,
) -> tuple[list[Lifetime], Lifetime, list[dict[str, list[float]]]]:
    points = []
    views = []
    for v in (0, 1):
        m = view == v
        pts = binned_points(drift[m], dqds[m], estimator, bin_us)
        points.append(pts)
        views.append(Lifetime.from_k(*fit_exponential([pts])))
    return views, Lifetime.from_k(*fit_exponential(points)), points


def lem_factors(
    dqds: npt.NDArray[np.float64],
    drift: npt.NDArray[np.float64],
    cell: npt.NDArray[np.int64],
    k_per_us: float,
) -> npt.NDArray[np.float64]:
    """Per hit: the truncated mean of its (LEM, view) cell over the global one, lifetime-corrected.

    Dividing by it equalises the LEM gains (and the two views) for the purity fit.  Cells with
    fewer than MIN_BIN_HITS hits get 1.
    """
    k = k_per_us if math.isfinite(k_per_us) and k_per_us > 0 else 0.0
    corrected = dqds * np.exp(drift * k)
    overall, _ = truncated_mean(corrected)
    factors = np.ones(dqds.size)
    for c in np.unique(cell):
        m = cell == c
        if int(m.sum()) >= MIN_BIN_HITS:
            factors[m] = truncated_mean(corrected[m])[0] / overall
    return factors


#: Track resamplings for the errors (see :func:`purity`); about 10 ms each per 10^5 hits.
BOOTSTRAP = 30


def _bootstrap_k(
    keys: npt.NDArray[np.int64],
    drift: npt.NDArray[np.float64],
    dqds: npt.NDArray[np.float64],
    view: npt.NDArray[Any],
    estimator: Estimator,
    bin_us: float,
    n: int,
    seed: int = 20181003,
) -> npt.NDArray[np.float64]:
    """k of (view 0, view 1, combined) for ``n`` resamplings of the tracks, shape (n, 3)."""
    order = np.argsort(keys, kind="stable")
    _, starts, counts = np.unique(keys[order], return_index=True, return_counts=True)
    rng = np.random.default_rng(seed)
    out = np.full((n, 3), np.nan)
    for r in range(n):
        pick = rng.integers(0, starts.size, starts.size)
        c = counts[pick]
        offsets = np.repeat(starts[pick] - np.cumsum(c) + c, c)
        idx = order[offsets + np.arange(int(c.sum()))]
        vs, comb, _ = _fit_views(drift[idx], dqds[idx], view[idx], estimator, bin_us)
        out[r] = (vs[0].k_per_us, vs[1].k_per_us, comb.k_per_us)
    return out


def _with_error(lt: Lifetime, ks: npt.NDArray[np.float64]) -> Lifetime:
    ks = ks[np.isfinite(ks)]
    if ks.size < 5 or not math.isfinite(lt.k_per_us):
        return lt
    k_err = max(lt.k_error, float(np.std(ks, ddof=1)))
    return Lifetime.from_k(lt.k_per_us, k_err, lt.chi2_ndof)


def purity(
    hits: Columns,
    estimator: Estimator = "tm",
    bin_us: float = BIN_US,
    min_length_cm: float = MIN_LENGTH_CM,
    max_drift_us: float | None = MAX_DRIFT_US,
    equalise: int = 2,
    bootstrap: int = BOOTSTRAP,
) -> PurityResult:
    """Electron lifetime per view and combined from the hits of one or more reconstructed files.

    A crossing track runs over several LEM cells, and which cells it crosses depends on its
    drift time (a track starting near a wall must head inwards to reach the cathode), so a
    non-uniform gain map would tilt dQ/ds against drift time: a map 1.5 x from one end to the
    other biased tau by +12 % at 3 ms on emulated hits.  So the fit is repeated ``equalise``
    times with each hit divided by the relative gain of its (LEM, view) cell, measured with
    the previous lifetime (the LEM gain analysis without its absolute scale).

    Errors: the fit's error assumes independent bins, but the hits of one track share its
    angle (its path length per strip, hence its dQ/ds scale) and spread over all bins; on
    emulated hits the fitted tau scattered 1.36 times its fit error (30 samples of 500 events).
    So with ``bootstrap`` > 0 the tracks are resampled that many times and each error is the
    larger of the fit's and the bootstrap's.
    """
    sel = select_crossing(hits, min_length_cm, max_drift_us)
    drift = hits["drift_us"][sel].astype(np.float64)
    dqds = hits["dqds"][sel].astype(np.float64)
    view = hits["view"][sel]
    cell = hits["lem"][sel].astype(np.int64) * 2 + view.astype(np.int64)
    views, combined, points = _fit_views(drift, dqds, view, estimator, bin_us)
    dqds_eq = dqds
    for _ in range(equalise):
        if not math.isfinite(combined.k_per_us):
            break
        dqds_eq = dqds / lem_factors(dqds, drift, cell, combined.k_per_us)
        views, combined, points = _fit_views(drift, dqds_eq, view, estimator, bin_us)
    keys = (
        hits.get("file", np.zeros(sel.size))[sel].astype(np.int64) << 32
        | hits["event"][sel].astype(np.int64) << 16
        | (hits["track"][sel].astype(np.int64) & 0xFFFF)
    )
    if bootstrap > 0 and math.isfinite(combined.k_per_us):
        ks = _bootstrap_k(keys, drift, dqds_eq, view, estimator, bin_us, bootstrap)
        views = [_with_error(v, ks[:, i]) for i, v in enumerate(views)]
        combined = _with_error(combined, ks[:, 2])
    return PurityResult(
        views=views,
        combined=combined,
        estimator=estimator,
        n_tracks=int(np.unique(keys).size),
        n_hits=int(sel.sum()),
        points=points,
    )
