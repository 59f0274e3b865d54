"""Electron lifetime from anode-cathode crossing tracks (spec section 6, "purity").

Selection: hits of matched tracks flagged as crossing from anode to cathode (so t0 is known),
3D length above 50 cm, not on the first or last strip of the track (partly crossed strips),
with a finite positive dQ/ds.  Their dQ/ds is binned in drift time (66 us, as Qscan), each bin
summarised by a truncated mean or a Landau x Gauss MPV, and ``A exp(-t / tau)`` is fitted per
view and jointly (one tau, one A per view) with iminuit.  The fit is in ``k = 1/tau``, which is
linear near pure argon where tau runs to infinity; a lifetime beyond :data:`INFINITE_US` is
reported as that dummy, as the seed's summary did.

Pure functions over the hit columns of :mod:`.hits`; may import numpy, iminuit and
:mod:`.estimators`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from farmtools.analysis.estimators import langau_mpv, truncated_mean

Columns = dict[str, npt.NDArray[np.generic]]
Estimator = Literal["tm", "mpv"]

#: The seed's dummy for an infinite lifetime (us).
INFINITE_US = 100000.0
#: Drift-time bin width of Qscan's purity analysis (us).
BIN_US = 66.0
#: Shortest crossing track used (cm).
MIN_LENGTH_CM = 50.0
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


def select_crossing(hits: Columns, min_length_cm: float = MIN_LENGTH_CM, max_drift_us: float | None = None) -> npt.NDArray[np.bool_]:
    """Mask of the hits the purity analysis uses (see the module doc)."""
    dqds = hits["dqds"]
    sel = (
        (hits["track"] >= 0)
        & hits["trk_crossing"].astype(bool)
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
        value, err = truncated_mean(dqds[m]) if estimator == "tm" else langau_mpv(dqds[m])
        if not (math.isfinite(value) and math.isfinite(err) and err > 0):
            continue
        pts["t_us"].append(float(drift_us[m].mean()))
        pts["value"].append(value)
        pts["error"].append(err)
        pts["n"].append(float(n))
    return pts


def fit_exponential(points: list[dict[str, list[float]]]) -> tuple[float, float, float]:
    """Joint least-squares fit of ``A_v exp(-k t)`` to the points of each view: (k, error, chi2/ndof)."""
    from iminuit import Minuit

    sets = [(np.asarray(p["t_us"]), np.asarray(p["value"]), np.asarray(p["error"])) for p in points if len(p["t_us"]) >= 2]
    if not sets:
        return math.nan, math.nan, math.nan

    def chi2(k: float, *amps: float) -> float:
        total = 0.0
        for (t, y, e), a in zip(sets, amps, strict=True):
            total += float(np.sum(((y - a * np.exp(-k * t)) / e) ** 2))
        return total

    names = ["k"] + [f"a{i}" for i in range(len(sets))]
    start = [1e-4] + [float(y[0]) for _, y, _ in sets]
    m = Minuit(chi2, *start, name=names)
    m.errordef = Minuit.LEAST_SQUARES
    m.migrad()
    m.hesse()
    ndof = sum(len(t) for t, _, _ in sets) - len(names)
    return float(m.values["k"]), float(m.errors["k"]), float(m.fval / ndof) if ndof > 0 else math.nan


def purity(
    hits: Columns,
    estimator: Estimator = "tm",
    bin_us: float = BIN_US,
    min_length_cm: float = MIN_LENGTH_CM,
    max_drift_us: float | None = None,
) -> PurityResult:
    """Electron lifetime per view and combined from the hits of one or more reconstructed files."""
    sel = select_crossing(hits, min_length_cm, max_drift_us)
    points = []
    views = []
    for view in (0, 1):
        m = sel & (hits["view"] == view)
        pts = binned_points(hits["drift_us"][m].astype(np.float64), hits["dqds"][m].astype(np.float64), estimator, bin_us)
        points.append(pts)
        k, k_err, chi2 = fit_exponential([pts])
        views.append(Lifetime.from_k(k, k_err, chi2))
    k, k_err, chi2 = fit_exponential(points)
    tracks = {(int(f), int(e), int(t)) for f, e, t in zip(
        hits.get("file", np.zeros(sel.size))[sel], hits["event"][sel], hits["track"][sel], strict=True)}
    return PurityResult(
        views=views,
        combined=Lifetime.from_k(k, k_err, chi2),
        estimator=estimator,
        n_tracks=len(tracks),
        n_hits=int(sel.sum()),
        points=points,
    )
