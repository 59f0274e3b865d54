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
#: Fewest hits a (LEM, view) cell needs for its own gain factor (:func:`lem_factors`).
MIN_BIN_HITS = 30
#: Fewest samples (segments of :data:`SEGMENT_STRIPS` strips, i.e. 60 strips of track) a
#: drift-time bin needs to enter the fit.  It was 30 segments (120 strips): a dozen events'
#: eight or nine crossers gave 19-35 per bin and view, so whether a lifetime was measured at
#: all hung on one muon more or less (the 12-event challenge measured none once a stopping muon
#: had changed its sample); the bins' errors and the bootstrap over muons hold at 15.
MIN_BIN_SAMPLES = 15


#: :attr:`Lifetime.status` values: a lifetime was measured; the fit found no attenuation
#: (k <= 1/INFINITE_US: the seed's "infinite", a lower limit on tau); no fit at all.
MEASURED, INFINITE, NO_MEASUREMENT = "measured", "infinite", "none"


@dataclass
class Lifetime:
    """A lifetime from the fit of k = 1/tau (per us) and its error, the fit's Gaussian parameter.

    ``tau_us``/``error_us`` are the seed's view of it: ``1/k`` and ``k_err/k^2``, and the dummy
    INFINITE_US for both when k <= 1/INFINITE_US or when nothing was measured (the seed's
    summary line needs four numbers).  That symmetric error misleads once it passes ~10 %
    (1/k stretches upward fluctuations), so :meth:`to_json` and :meth:`describe` report k with
    its error, the asymmetric 68 % interval of tau, and :attr:`status`.
    """

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

    @classmethod
    def from_tau(cls, tau_us: float, error_us: float) -> Lifetime:
        """A lifetime read from the seed's text, where only tau and a symmetric error exist.

        The dummy INFINITE_US (or a non-positive error) cannot be told from "no measurement",
        so it becomes one: k stays NaN.
        """
        if not (0 < tau_us < INFINITE_US and error_us > 0):
            return cls(tau_us, error_us, math.nan, math.nan)
        return cls(tau_us, error_us, 1.0 / tau_us, error_us / (tau_us * tau_us))

    def k_pair(self) -> tuple[float, float]:
        """(k, its error); from tau and its error when only those were given (seed text)."""
        k, e = self.k_per_us, self.k_error
        if not (math.isfinite(k) and math.isfinite(e)) and 0 < self.tau_us < INFINITE_US:
            return 1.0 / self.tau_us, self.error_us / self.tau_us**2
        return k, e

    @property
    def status(self) -> str:
        """MEASURED, INFINITE or NO_MEASUREMENT (no finite k with a positive finite error)."""
        k, e = self.k_pair()
        if not (math.isfinite(k) and math.isfinite(e) and e > 0):
            return NO_MEASUREMENT
        return MEASURED if k > 1.0 / INFINITE_US else INFINITE

    def interval_us(self) -> tuple[float, float]:
        """The 68 % interval of tau, ``1/(k + k_err)`` to ``1/(k - k_err)`` (inf when k - k_err <= 0);
        NaNs without a measurement."""
        if self.status == NO_MEASUREMENT:
            return math.nan, math.nan
        k, e = self.k_pair()
        hi_k, lo_k = k + e, k - e
        return (1.0 / hi_k if hi_k > 0 else math.inf), (1.0 / lo_k if lo_k > 0 else math.inf)

    def to_json(self) -> dict[str, Any]:
        """The JSON block: k first, tau with its asymmetric interval, the status (NaN -> None
        when written, see :func:`farmtools.analysis.summary.strict`)."""
        status = self.status
        lo, hi = self.interval_us()
        measured = status == MEASURED
        k, e = self.k_pair()
        return {
            "status": status,
            "k_per_us": k,
            "k_error": e,
            "tau_us": None if status == NO_MEASUREMENT else self.tau_us,
            "error_us": self.error_us if measured else None,
            "tau_err_low_us": self.tau_us - lo if measured else None,
            "tau_err_high_us": hi - self.tau_us if measured else None,
            "tau_min_us": lo,
            "tau_max_us": hi,
            "chi2_ndof": self.chi2_ndof,
        }

    def describe(self) -> str:
        """One line for people: ``tau = 7000 +540 -470 us (k = 142.9 +- 10.2 e-6/us)``."""
        status = self.status
        if status == NO_MEASUREMENT:
            return "no measurement"
        k_val, k_err = self.k_pair()
        k = f"k = {1e6 * k_val:.1f} +- {1e6 * k_err:.1f} e-6/us"
        lo, hi = self.interval_us()
        if status == INFINITE:
            return f"no attenuation seen, tau > {lo:.0f} us (68 %) ({k})"
        up = "+inf" if math.isinf(hi) else f"+{hi - self.tau_us:.0f}"
        return f"tau = {self.tau_us:.0f} {up} -{self.tau_us - lo:.0f} us ({k})"


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
    #: Median noise over pulse height of the selected hits (:func:`noise_to_signal`).
    noise_to_signal: float = math.nan
    #: Systematic error on k (per us) to quote beside the statistical one: the threshold-loss
    #: correction's residual at this noise-to-signal (:func:`threshold_systematic`); 0 when
    #: the correction is off (the plain fit's bias is then not covered: run with it on).
    k_systematic: float = math.nan
    #: Why ``k_systematic`` is what it is: ``"calibrated"`` (the 3x1x1's constants, the closure
    #: grid's table), ``"not calibrated"`` (other constants, e.g. the 6x6x6's: the table does not
    #: apply to them and nothing else was measured: NaN, never the 3x1x1's figure),
    #: ``"correction off"``, or ``"noise unknown"`` (no noise column).
    systematic: str = "noise unknown"

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["views"] = [v.to_json() for v in self.views]
        doc["combined"] = self.combined.to_json()
        return doc


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


def track_median(
    keys: npt.NDArray[np.int64], values: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Per hit: the median of ``values`` over the hits of its track (``keys``)."""
    out = np.empty(values.size)
    if values.size == 0:
        return out
    order = np.lexsort((values, keys))
    k = keys[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    counts = np.diff(np.r_[starts, k.size])
    v = values[order]
    med = 0.5 * (v[starts + (counts - 1) // 2] + v[starts + counts // 2])
    out[order] = np.repeat(med, counts)
    return out


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
    min_hits: int = MIN_BIN_SAMPLES,
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

    Point sets with a ``loss`` list (the threshold model, :func:`threshold_points`) get one more
    shared parameter ``beta``: ``A_c exp(-k t - beta * loss)``.

    A weighted linear least-squares fit of ``log y = log A_v - k t`` with errors ``e / y``: exact
    for this model up to the tiny non-linearity of the log at errors of a few per mille, with no
    starting values and no convergence to check (an iminuit fit in ``k`` stopped early at
    k ~ 1e-4 in the first tests).
    """
    sets = [
        (
            np.asarray(p["t_us"]),
            np.asarray(p["value"]),
            np.asarray(p["error"]),
            np.asarray(p.get("loss", np.zeros(len(p["t_us"])))),
        )
        for p in points
        if len(p["t_us"]) >= 2
    ]
    if not sets:
        return math.nan, math.nan, math.nan
    threshold = any("loss" in p for p in points)
    n_par = 1 + len(sets) + (1 if threshold else 0)
    rows = []
    rhs = []
    weights = []
    for i, (t, y, e, u) in enumerate(sets):
        for tj, yj, ej, uj in zip(t, y, e, u, strict=True):
            row = np.zeros(n_par)
            row[0] = -tj
            row[1 + i] = 1.0
            if threshold:
                row[-1] = -uj
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


#: The hit finder's threshold loss: a hit keeps ``1 - c (rms / a)^p t`` of its charge, ``t``
#: its drift time (us), ``a`` the expected peak ADC of its track's pulses at that drift time,
#: ``rms`` its channel's noise (ADC); (c /us, p), see :func:`threshold_correction`.  A power
#: law in the noise-to-signal ratio because the loss grows faster than linearly when the
#: threshold nears the pulse height (the first-order ``beta rms t / a`` form, with beta growing
#: with the noise, left -7 % on k at noise x3 and G = 3 and 20, +11 % at G = 2).  Calibrated on
#: the closure grid's first sample (seed 500, 400 events, tau 7 ms, A = 0.1) of the cells
#: G = 2, 3, 20, 40 at noise x1 and x3 (rms/a from 0.004 to 0.11): the (c, p) minimising the
#: squared pulls of the corrected k against the truth (``benchmarks/fit_threshold_loss.py``),
#: and checked on the grid's other, independent samples (docs/analysis.md).  It belongs to the
#: hit finder's rule and the pulse shape, not to the gain: re-derive it when either changes.
THRESHOLD_LOSS: tuple[float, float] = (4.0e-3, 1.5)
#: The same for the 6x6x6's 6 m drift (3.7 ms; :func:`farmtools.analysis.pipeline.threshold_loss`
#: picks it), same power ``p``: the 3x1x1's ``c`` over-corrected there (+4 % on tau at 3 ms, -1.1 %
#: uncorrected).  ``c`` minimised the bias of the corrected tau on 24 emulated beam events through
#: the whole chain (seed 666, tau 3 ms, G 20 +- 10 %, ``benchmarks/bench_closure666.py``, the
#: cosmic selection of :mod:`.cosmics`; 0.97e-3, rounded) and was checked on 24 independent
#: ones (seed 667; docs/analysis.md).  One calibration point (tau, gain, noise): re-derive it
#: with the bench when the hit finder, the pulse shape or the 6x6x6's noise changes.
THRESHOLD_LOSS_6X6X6: tuple[float, float] = (1.0e-3, 1.5)
NO_THRESHOLD_LOSS: tuple[float, float] = (0.0, 0.0)


def threshold_correction(
    hits: Columns,
    sel: npt.NDArray[np.bool_],
    keys: npt.NDArray[np.int64],
    loss: tuple[float, float],
    k_per_us: float = 0.0,
) -> npt.NDArray[np.float64]:
    """Per selected hit: the factor its dQ/ds is divided by to undo the threshold loss.

    The hit finder loses the tails of a pulse that drop below its threshold; the tails widen
    with drift time (diffusion) and the threshold scales with the noise, so a hit keeps ``1 -
    c (rms / a)^p t`` of its charge (``loss = (c, p)``, :data:`THRESHOLD_LOSS`), ``a`` the
    pulse height.  ``a`` is the track's median amplitude in the view (a crossing track spans
    the whole drift, so this selects nothing by drift time), carried to the hit's drift time
    with the attenuation ``exp(-k (t - t_med))`` of the current lifetime estimate (at 1 ms the
    pulses at the cathode are 45 % lower than at the anode).  1 where the columns are missing
    (truth-level hits) or ``c`` is 0.  Clipped at 0.5 (a hit losing half its charge is mostly
    noise).
    """
    n = int(sel.sum())
    if not loss[0] or "noise_rms" not in hits or "amplitude" not in hits:
        return np.ones(n)
    t = hits["drift_us"][sel].astype(np.float64)
    amp = track_median(keys, hits["amplitude"][sel].astype(np.float64))
    if k_per_us > 0 and math.isfinite(k_per_us):
        amp = amp * np.exp(-k_per_us * (t - track_median(keys, t)))
    rms = hits["noise_rms"][sel].astype(np.float64)
    c, p = loss
    return np.clip(1.0 - c * (rms / np.maximum(amp, 1.0)) ** p * t, 0.5, 1.0)


#: The systematic error on k the threshold-loss correction leaves, by noise over pulse height
#: ``rms/a``: (upper edge of rms/a, absolute error per us, relative error), the larger of the
#: two applies.  From the closure grid's independent samples (docs/analysis.md, "Systematic
#: error of the lifetime at low gain"): the residual mean bias plus its error of the cells in
#: each band (G 2-40 at noise x1, G 20-40 at x3; G 3 at x3; G 2 at x3); the relative part
#: from tau 1 ms, where the residual of G 3 at x3 was +2.2 % of k.
THRESHOLD_SYSTEMATIC: tuple[tuple[float, float, float], ...] = (
    (0.05, 4e-6, 0.01),
    (0.09, 8e-6, 0.03),
    (math.inf, 12e-6, 0.04),
)


def threshold_systematic(nts: float, k_per_us: float = 0.0) -> float:
    """:data:`THRESHOLD_SYSTEMATIC` at noise-to-signal ``nts`` and lifetime ``k_per_us``
    (per us); NaN when ``nts`` is unknown."""
    if not math.isfinite(nts):
        return math.nan
    k = abs(k_per_us) if math.isfinite(k_per_us) else 0.0
    return next(max(err, rel * k) for edge, err, rel in THRESHOLD_SYSTEMATIC if nts <= edge)


def systematic_status(threshold_loss: tuple[float, float], nts: float) -> str:
    """What the purity result says of its systematic error (:attr:`PurityResult.systematic`).

    :data:`THRESHOLD_SYSTEMATIC` was measured on the 3x1x1's closure grid with the 3x1x1's
    constants; the 6x6x6's (:data:`THRESHOLD_LOSS_6X6X6`) were set on one calibration point
    and have no such table yet, so their fit quotes none rather than the 3x1x1's.
    """
    if not threshold_loss[0]:
        return "correction off"
    if threshold_loss != THRESHOLD_LOSS:
        return "not calibrated"
    return "calibrated" if math.isfinite(nts) else "noise unknown"


def noise_to_signal(
    hits: Columns, sel: npt.NDArray[np.bool_], keys: npt.NDArray[np.int64]
) -> float:
    """Median over the selected hits of ``rms / a`` (noise over the track's median pulse
    height): what the threshold loss and its residual systematic error depend on; NaN
    without the columns."""
    if not sel.any() or "noise_rms" not in hits or "amplitude" not in hits:
        return math.nan
    amp = track_median(keys, hits["amplitude"][sel].astype(np.float64))
    return float(np.median(hits["noise_rms"][sel] / np.maximum(amp, 1.0)))


#: Classes of track amplitude of the threshold model (:func:`threshold_points`).
THRESHOLD_CLASSES = 3


def threshold_points(
    drift: npt.NDArray[np.float64],
    dqds: npt.NDArray[np.float64],
    amplitude: npt.NDArray[np.float64],
    estimator: Estimator,
    bin_us: float,
    classes: int = THRESHOLD_CLASSES,
) -> list[dict[str, list[float]]]:
    """Binned points of one view split into ``classes`` of track amplitude, each with ``loss``.

    The threshold model: the hit finder loses the diffused tails of a pulse below its
    threshold, a fraction that grows with the pulse's width (diffusion: with drift time) and
    falls with its height, to first order ``beta * t / a`` with ``a`` the pulse amplitude
    (ADC).  ``a`` is the track's median hit amplitude in this view: a crossing track spans the
    whole drift, so the classes do not select on the attenuated charge of a drift-time bin.
    Each class gets its own normalisation in :func:`fit_exponential`; their different ``t / a``
    slopes separate ``beta`` from ``k``.
    """
    out: list[dict[str, list[float]]] = []
    if amplitude.size == 0:
        return out
    edges = np.quantile(amplitude, np.linspace(0.0, 1.0, classes + 1))
    for c in range(classes):
        lo, hi = edges[c], edges[c + 1]
        m = (amplitude >= lo) & ((amplitude < hi) if c < classes - 1 else (amplitude <= hi))
        pts = binned_points(drift[m], dqds[m], estimator, bin_us)
        inv_a = float(np.mean(1.0 / amplitude[m])) if m.any() else math.nan
        pts["loss"] = [t * inv_a for t in pts["t_us"]]
        out.append(pts)
    return out


def _fit_views(
    drift: npt.NDArray[np.float64],
    dqds: npt.NDArray[np.float64],
    view: npt.NDArray[Any],
    estimator: Estimator,
    bin_us: float,
    amplitude: npt.NDArray[np.float64] | None = None,
) -> tuple[list[Lifetime], Lifetime, list[dict[str, list[float]]]]:
    """Per view and joint fits; with ``amplitude`` (per sample, the track's) the threshold
    model's (:func:`threshold_points`); the points returned are the plain ones either way."""
    points = []
    views = []
    model: list[dict[str, list[float]]] = []
    for v in (0, 1):
        m = view == v
        pts = binned_points(drift[m], dqds[m], estimator, bin_us)
        points.append(pts)
        if amplitude is None:
            views.append(Lifetime.from_k(*fit_exponential([pts])))
            continue
        cls = threshold_points(drift[m], dqds[m], amplitude[m], estimator, bin_us)
        model.extend(cls)
        views.append(Lifetime.from_k(*fit_exponential(cls)))
    return (
        views,
        Lifetime.from_k(*fit_exponential(model if amplitude is not None else points)),
        points,
    )


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


#: Largest ``ln`` offset of a muon's corrected dQ/ds from the others' that the 6x6x6's purity
#: fit keeps (:func:`muon_offsets`).  A cosmic timed by another particle's flash has its drift
#: times shifted by the difference, and its charge looks exp(dt / tau) too high or too low:
#: dt = 750 us is 0.25 at tau 3 ms.  The right muons' offsets had an RMS of 0.09 (Landau, the
#: 10 % LEM gain spread, angles) on 48 emulated beam events (seed 668); the 2.6 % of selected
#: cosmics with a wrong t0 (most off by 800-2500 us) moved tau by +1.4 % there.
MAX_MUON_OFFSET = 0.25


def muon_offsets(hits: Columns, k_per_us: float) -> npt.NDArray[np.float64]:
    """Per hit: ``ln`` of its muon's median dQ/ds times ``exp(k t)`` over the median of all
    muons' (0 for hits with no finite positive dQ/ds or drift time)."""
    out = np.zeros(hits["view"].size)
    ok = (hits["track"] >= 0) & np.isfinite(hits["dqds"]) & (hits["dqds"] > 0)
    ok &= np.isfinite(hits["drift_us"])
    if not ok.any():
        return out
    corrected = hits["dqds"][ok].astype(np.float64) * np.exp(
        k_per_us * hits["drift_us"][ok].astype(np.float64)
    )
    keys = muon_keys(hits)[ok]
    med = track_median(keys, corrected)
    _, first = np.unique(keys, return_index=True)
    out[ok] = np.log(med / float(np.median(med[first])))
    return out


#: Muon resamplings for the errors (see :func:`purity`); about 5 ms each per 10^5 hits.  It was
#: 30, whose standard deviation is itself uncertain by 13 %: on one closure sample (400 events,
#: tau 3 ms) 30 gave 51.7 us on tau, below the fit's own 51.8, where 100 and 300 gave 64.6 and
#: 62.0 (2026-12-08; 200 cost 0.65 s of CPU there).
BOOTSTRAP = 200


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
    amplitude: npt.NDArray[np.float64] | None = None,
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
        amp = None if amplitude is None else amplitude[idx]
        vs, comb, _ = _fit_views(drift[idx], dqds[idx], view[idx], estimator, bin_us, amp)
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
    threshold_model: bool = False,
    threshold_loss: tuple[float, float] = THRESHOLD_LOSS,
    max_muon_offset: float | None = None,
) -> PurityResult:
    """Electron lifetime per view and combined from the hits of one or more reconstructed files.

    ``max_muon_offset`` (the 6x6x6's :data:`MAX_MUON_OFFSET`) leaves out the muons whose
    attenuation-corrected dQ/ds is off the others' by more than that (in ``ln``), at the
    lifetime of a first fit: their drift times are wrong (:func:`muon_offsets`).

    The hits are summed in segments of ``segment_strips`` strips before binning (1: per hit;
    the module doc says why).

    A crossing track runs over several LEM cells, and which cells it crosses depends on its
    drift time (a track starting near a wall must head inwards to reach the cathode), so a
    non-uniform gain map would tilt dQ/ds against drift time: a map 1.5 x from one end to the
    other biased tau by +12 % at 3 ms on emulated hits.  So the fit is repeated ``equalise``
    times with each hit divided by the relative gain of its (LEM, view) cell, measured with
    the previous lifetime (the LEM gain analysis without its absolute scale).

    ``threshold_model`` fits the hit finder's threshold loss along with k
    (:func:`threshold_points`; needs the hits' ``amplitude``): for low gains, where the charge
    per hit falls with drift time because diffused tails drop below the threshold.
    ``threshold_loss`` instead corrects each hit for that loss with a calibrated constant
    (:func:`threshold_correction`), at no cost in precision.

    Errors: the fit's error assumes independent samples, but the samples of one muon are not:
    its angle sets its path length per strip in both views, and the two views share each
    step's charge (the LEM splits it), so the views' dQ/ds fluctuate together.  With
    ``bootstrap`` > 0 the muons (both views together) are resampled that many times and each
    error is the larger of the fit's and the bootstrap's.
    """
    if max_muon_offset is not None:
        first = purity(
            hits, estimator, bin_us, min_length_cm, max_drift_us, equalise, 0,
            segment_strips, end_strips, threshold_model, threshold_loss,
        )  # fmt: skip
        if math.isfinite(first.combined.k_per_us):
            offsets = muon_offsets(hits, first.combined.k_per_us)
            hits = {k: v[~(np.abs(offsets) > max_muon_offset)] for k, v in hits.items()}
    sel = select_crossing(hits, min_length_cm, max_drift_us, end_strips)
    drift = hits["drift_us"][sel].astype(np.float64)
    dqds = hits["dqds"][sel].astype(np.float64)
    ds = hits["ds"][sel].astype(np.float64)
    view = hits["view"][sel]
    channel = hits["channel"][sel]
    cell = hits["lem"][sel].astype(np.int64) * 2 + view.astype(np.int64)
    tkeys = track_keys(hits)[sel]
    mkeys = muon_keys(hits)[sel]
    raw_dqds = dqds

    def corrected(k: float) -> npt.NDArray[np.float64]:
        return raw_dqds / threshold_correction(hits, sel, tkeys, threshold_loss, k)

    dqds = corrected(0.0)
    track_amp = (
        track_median(tkeys, hits["amplitude"][sel].astype(np.float64)) if threshold_model else None
    )

    def fit(
        values: npt.NDArray[np.float64],
    ) -> tuple[list[Lifetime], Lifetime, list[dict[str, list[float]]], tuple[Any, ...]]:
        first, t_seg, q_seg = segments(tkeys, channel, drift, values, ds, segment_strips)
        amp = None if track_amp is None else track_amp[first]
        vs, comb, pts = _fit_views(t_seg, q_seg, view[first], estimator, bin_us, amp)
        return vs, comb, pts, (first, t_seg, q_seg)

    views, combined, points, seg = fit(dqds)
    for _ in range(equalise):
        if not math.isfinite(combined.k_per_us):
            break
        dqds = corrected(combined.k_per_us)
        views, combined, points, seg = fit(dqds / lem_factors(dqds, drift, cell, combined.k_per_us))
    first, t_seg, q_seg = seg
    if bootstrap > 0 and math.isfinite(combined.k_per_us):
        amp = None if track_amp is None else track_amp[first]
        ks = _bootstrap_k(
            mkeys[first], t_seg, q_seg, view[first], estimator, bin_us, bootstrap, amplitude=amp
        )
        views = [_with_error(v, ks[:, i]) for i, v in enumerate(views)]
        combined = _with_error(combined, ks[:, 2])
    nts = noise_to_signal(hits, sel, tkeys)
    return PurityResult(
        views=views,
        combined=combined,
        estimator=estimator,
        n_tracks=int(np.unique(mkeys).size),
        n_hits=int(sel.sum()),
        points=points,
        noise_to_signal=nts,
        k_systematic=(
            threshold_systematic(nts, combined.k_per_us)
            if threshold_loss == THRESHOLD_LOSS
            else math.nan
        ),
        systematic=systematic_status(threshold_loss, nts),
    )
