"""Electron lifetime from anode-cathode crossing tracks (spec section 6, "purity").

Selection: hits of matched tracks flagged as crossing from anode to cathode (so t0 is known),
3D length above 50 cm, not on the first or last strip of the track (partly crossed strips) nor
on the strip next to them, with a finite positive dQ/ds.  Consecutive hits of a track are summed
in segments of :data:`SEGMENT_STRIPS` strips (see below), the segments' dQ/ds is binned in
drift time (66 us, as Qscan), each bin summarised by a truncated mean or an MPV
(:mod:`.estimators`), and ``A exp(-t / tau)`` is fitted per view and jointly (one tau, one A per
view), after equalising the LEM gains (see :func:`purity`).  The fit is in ``k = 1/tau``, which
is linear near pure argon where tau runs to infinity; a lifetime beyond :data:`INFINITE_US` is
reported as that dummy, as the seed's summary did.

Why segments: transverse diffusion (sigma_T = sqrt(2 D_T t), 1.3 mm = 0.4 pitch at the
cathode) shares each strip's charge with its neighbours, more the longer the drift.  The charge
is conserved, so the *mean* dQ/ds does not change, but the per-strip distribution narrows
(Landau fluctuations of neighbouring strips average out), and every truncated mean or MPV of it
rises with drift time: a tilt that the exponential fit reads as a longer lifetime.  Measured on
emulated events with and without diffusion (same muons, 1,500 events, per-strip true charge):
the per-strip truncated mean (0 %, 5 %) tilted by dk = -17e-6 /us (+5 % on tau at 3 ms, +12 %
at 7 ms), the seed's (5 %, 25 %) by -34e-6.  Summing N strips makes the charge exchanged at the
segment boundaries a fraction ~1/N of the segment's: with 4 strips the tilt of the (0 %, 5 %)
truncated mean drops to -2e-6 (+0.6 % at 3 ms, +1.4 % at 7 ms) for the same statistical
error as the per-strip plain mean.  The strips next to a partly crossed end strip are left out
for the same reason: near the cathode they lose diffused charge to it and it gives little
back (their dQ/ds sat 6 % low in the last 33 us bin).

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
#: Truncation of the per-bin mean of the segments: the lowest 0 % and the highest 5 %.  Light,
#: because any truncation feels the narrowing by diffusion (see the module doc); the high cut
#: keeps a segment with a large energy loss (a delta ray in real data) from dominating a bin.
TRUNCATION: tuple[float, float] = (0.0, 0.05)
#: Consecutive strips of a track summed into one dQ/ds sample (see the module doc).
SEGMENT_STRIPS = 4
#: Strips at each end of a track left out: the partly crossed end strip and its neighbour.
END_STRIPS = 2
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


def track_keys(hits: Columns) -> npt.NDArray[np.int64]:
    """One integer per (file, event, track, view) of each hit: what a track's hits share."""
    return (
        hits.get("file", np.zeros(hits["view"].size))[:].astype(np.int64) << 40
        | hits["event"].astype(np.int64) << 18
        | (hits["track"].astype(np.int64) & 0xFFFF) << 1
        | hits["view"].astype(np.int64) & 1
    )


def strips_from_end(hits: Columns, keys: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Per hit: how many strips it is from the nearer end (first or last strip) of its track."""
    ch = hits["channel"].astype(np.int64)
    if ch.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    counts = np.diff(np.r_[starts, k.size])
    lo = np.repeat(np.minimum.reduceat(ch[order], starts), counts)
    hi = np.repeat(np.maximum.reduceat(ch[order], starts), counts)
    out = np.empty(ch.size, dtype=np.int64)
    out[order] = np.minimum(ch[order] - lo, hi - ch[order])
    return out


def select_crossing(
    hits: Columns,
    min_length_cm: float = MIN_LENGTH_CM,
    max_drift_us: float | None = None,
    end_strips: int = END_STRIPS,
) -> npt.NDArray[np.bool_]:
    """Mask of the hits the purity analysis uses (see the module doc).

    ``end_strips`` strips at each end of a track are left out (1: only the reco's ``edge``).
    """
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
    if end_strips > 1:
        sel &= strips_from_end(hits, track_keys(hits)) >= end_strips
    return sel


def segments(
    keys: npt.NDArray[np.int64],
    channel: npt.NDArray[Any],
    drift_us: npt.NDArray[np.float64],
    dqds: npt.NDArray[np.float64],
    ds: npt.NDArray[np.float64],
    n_strips: int = SEGMENT_STRIPS,
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Sum consecutive hits of each track (``keys``) in runs of ``n_strips``.

    Returns, per segment, the index of its first hit in the inputs, its drift time (the
    charge-weighted mean of its hits') and its dQ/ds (charge over path length,
    ``sum dqds*ds / sum ds``).  Hits are taken in strip order; the incomplete run at the end of
    each track is dropped, so every sample has the same number of strips.
    """
    if n_strips <= 1 or keys.size == 0:
        return np.arange(keys.size), drift_us, dqds
    order = np.lexsort((channel, keys))
    k = keys[order]
    new_track = np.r_[True, k[1:] != k[:-1]]
    starts = np.flatnonzero(new_track)
    pos = np.arange(k.size) - np.repeat(starts, np.diff(np.r_[starts, k.size]))
    seg = np.cumsum(new_track | (pos % n_strips == 0)) - 1
    full = np.bincount(seg)[seg] == n_strips
    idx = order[full]
    seg = np.unique(seg[full], return_inverse=True)[1]
    q = np.bincount(seg, weights=dqds[idx] * ds[idx])
    t = np.bincount(seg, weights=dqds[idx] * ds[idx] * drift_us[idx]) / q
    length = np.bincount(seg, weights=ds[idx])
    first = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
    return idx[first], t, q / length


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


#: Muon resamplings for the errors (see :func:`purity`); about 10 ms each per 10^5 hits.
BOOTSTRAP = 30


def muon_keys(hits: Columns) -> npt.NDArray[np.int64]:
    """One integer per muon of each hit: its (file, event, track) with the track id of a
    matched pair taken as the lower of the two views' ids, so both views share the key."""
    track = hits["track"].astype(np.int64)
    partner = hits["trk_partner"].astype(np.int64) if "trk_partner" in hits else track
    muon = np.where(partner >= 0, np.minimum(track, partner), track)
    return (
        hits.get("file", np.zeros(track.size)).astype(np.int64) << 40
        | hits["event"].astype(np.int64) << 18
        | (muon & 0xFFFF)
    )


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
    """k of (view 0, view 1, combined) for ``n`` resamplings of the muons, shape (n, 3)."""
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
    segment_strips: int = SEGMENT_STRIPS,
    end_strips: int = END_STRIPS,
) -> PurityResult:
    """Electron lifetime per view and combined from the hits of one or more reconstructed files.

    The hits are summed in segments of ``segment_strips`` strips before binning (1: per hit;
    the module doc says why).

    A crossing track runs over several LEM cells, and which cells it crosses depends on its
    drift time (a track starting near a wall must head inwards to reach the cathode), so a
    non-uniform gain map would tilt dQ/ds against drift time: a map 1.5 x from one end to the
    other biased tau by +12 % at 3 ms on emulated hits.  So the fit is repeated ``equalise``
    times with each hit divided by the relative gain of its (LEM, view) cell, measured with
    the previous lifetime (the LEM gain analysis without its absolute scale).

    Errors: the fit's error assumes independent samples, but the samples of one muon are not:
    its angle sets its path length per strip in both views, and the two views share each
    step's charge (the LEM splits it), so the views' dQ/ds fluctuate together.  With
    ``bootstrap`` > 0 the muons (both views together) are resampled that many times and each
    error is the larger of the fit's and the bootstrap's.
    """
    sel = select_crossing(hits, min_length_cm, max_drift_us, end_strips)
    drift = hits["drift_us"][sel].astype(np.float64)
    dqds = hits["dqds"][sel].astype(np.float64)
    ds = hits["ds"][sel].astype(np.float64)
    view = hits["view"][sel]
    channel = hits["channel"][sel]
    cell = hits["lem"][sel].astype(np.int64) * 2 + view.astype(np.int64)
    tkeys = track_keys(hits)[sel]
    mkeys = muon_keys(hits)[sel]

    def fit(
        values: npt.NDArray[np.float64],
    ) -> tuple[list[Lifetime], Lifetime, list[dict[str, list[float]]], tuple[Any, ...]]:
        first, t_seg, q_seg = segments(tkeys, channel, drift, values, ds, segment_strips)
        vs, comb, pts = _fit_views(t_seg, q_seg, view[first], estimator, bin_us)
        return vs, comb, pts, (first, t_seg, q_seg)

    views, combined, points, seg = fit(dqds)
    for _ in range(equalise):
        if not math.isfinite(combined.k_per_us):
            break
        views, combined, points, seg = fit(dqds / lem_factors(dqds, drift, cell, combined.k_per_us))
    first, t_seg, q_seg = seg
    if bootstrap > 0 and math.isfinite(combined.k_per_us):
        ks = _bootstrap_k(mkeys[first], t_seg, q_seg, view[first], estimator, bin_us, bootstrap)
        views = [_with_error(v, ks[:, i]) for i, v in enumerate(views)]
        combined = _with_error(combined, ks[:, 2])
    return PurityResult(
        views=views,
        combined=combined,
        estimator=estimator,
        n_tracks=int(np.unique(mkeys).size),
        n_hits=int(sel.sum()),
        points=points,
    )
