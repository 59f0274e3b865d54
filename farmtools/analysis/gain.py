"""LEM gain: per-LEM dQ/ds per view, effective gain and view asymmetry (spec section 6, "gain").

Selection: hits of matched tracks whose t0 is known (anode-cathode crossers, whose t0 the
reconstruction measures, or tracks starting at the anode at the trigger time, ``t0 <=``
:data:`T0_TOLERANCE_TICKS`), not on a track's first or last strip, with a finite positive dQ/ds.
Each hit's dQ/ds is multiplied by ``exp(t_drift / tau)`` with the purity result and assigned to
its 50 x 50 cm2 cell (the reconstruction's ``lem`` column, continuous numbering).  Per LEM and
view, with at least :data:`MIN_HITS` hits: a truncated mean (5 %, 25 %) and an MPV.

What is reported per LEM:

* the seed's numbers: ``gain_mean_seed = (TM0 + TM1) / 10 fC/cm``, ``gain_mpv_seed = (MPV0 +
  MPV1) / 7.75 fC/cm`` and ``asymmetry_seed = (MPV1 - MPV0) / (MPV1 + MPV0)``;
* calibrated numbers, which the closure tests hold to the injected truth: a view collects
  ``0.5 (1 -+ A) G`` of the charge, so ``G = TM0 / r0 + TM1 / r1`` and ``A = (M1/m1 - M0/m0) /
  (M1/m1 + M0/m0)``, with ``r_v`` and ``m_v`` the truncated mean and MPV that a gain-1 detector
  gives in view ``v`` (both views' charge, :data:`MIP_TM_REF` / :data:`MIP_MPV_REF`).  They
  differ from the seed's 10 and 7.75 fC/cm because the truncated mean is not the mean and the
  path length under a strip varies with the track angle; they were measured through the
  reconstruction on emulated data (docs/analysis.md) and can be overridden.

Pure functions over the hit columns of :mod:`.hits`; may import numpy and :mod:`.estimators`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from farmtools.analysis.estimators import mpv, truncated_mean
from farmtools.analysis.hits import Columns
from farmtools.analysis.purity import THRESHOLD_LOSS, threshold_correction, track_keys
from farmtools.detector import (
    MIP_DQDS_MEAN_FC_PER_CM,
    MIP_DQDS_MPV_FC_PER_CM,
    WA105_3X1X1,
    Geometry,
    to_old,
)

#: Fewest hits per LEM and view (spec section 6).
MIN_HITS = 10
#: Tracks whose first hit is at most this many ticks after the trigger have t0 = trigger.
T0_TOLERANCE_TICKS = 30.0
#: Truncated mean (5 %, 25 %) of the dQ/ds of a gain-1 detector, both views' charge, per view
#: (fC/cm), through the reconstruction: measured on 5,000 emulated events (uniform gain 20,
#: A = 0, lifetimes 3 ms, 7 ms and infinite, seeds 11-13, none of the tests' seeds), each
#: view's lifetime-corrected truncated mean over its share G/2; 420,000 and 555,000 hits,
#: statistical error 0.002.  Higher than on truth-level hits (:data:`TRUTH_TM_REF`) by 1.5 %
#: because transverse diffusion, absent there, shares charge between neighbouring strips and
#: narrows the distribution the truncation acts on.
MIP_TM_REF: tuple[float, float] = (9.10, 9.01)
#: The same for :func:`farmtools.analysis.estimators.mpv` (fC/cm), error 0.003 (+2.1 % over
#: the truth-level :data:`TRUTH_MPV_REF`, same reason).
MIP_MPV_REF: tuple[float, float] = (8.90, 8.80)
#: The 6x6x6's: its 3.7 ms of drift (6 times the 3x1x1's) diffuses each strip's charge more
#: onto its neighbours, which narrows the per-strip distribution further and raises its
#: truncated mean and MPV: with MIP_TM_REF / MIP_MPV_REF the gains of 2 x ~16 emulated beam
#: events through the chain (``benchmarks/bench_closure666.py``, seeds 667 at tau 3 ms and 669
#: at 7 ms, G 20 +- 10 %, the cosmic selection of :mod:`.cosmics`) came out +1.7 and +2.0 %
#: (TM), +2.5 and +2.7 % (MPV) high on average over the 144 LEMs, per-LEM scatter 1.4 %; these
#: are the 3x1x1's times 1.019 and 1.026 (checked on seed 668, docs/analysis.md).
MIP_TM_REF_6X6X6: tuple[float, float] = (round(9.10 * 1.019, 3), round(9.01 * 1.019, 3))
MIP_MPV_REF_6X6X6: tuple[float, float] = (round(8.90 * 1.026, 3), round(8.80 * 1.026, 3))
#: The references for hits made straight from the emulator's physics without diffusion
#: (:func:`farmtools.analysis.closure.truth_hits`): 3,000 events of trigger muons, 250,000 and
#: 325,000 hits, statistical error 0.003-0.004.
TRUTH_TM_REF: tuple[float, float] = (8.96, 8.87)
TRUTH_MPV_REF: tuple[float, float] = (8.71, 8.62)


@dataclass
class LemGain:
    """One LEM: per-view statistics and the gains and asymmetries derived from them."""

    lem: int
    lem_old: int
    ix: int
    iy: int
    n_hits: list[int]
    #: Truncated mean of the lifetime-corrected dQ/ds per view (fC/cm), and its error.
    dqds: list[float]
    dqds_err: list[float]
    dqds_mpv: list[float]
    dqds_mpv_err: list[float]
    gain: float = math.nan
    gain_err: float = math.nan
    gain_mpv: float = math.nan
    gain_mpv_err: float = math.nan
    asymmetry: float = math.nan
    asymmetry_err: float = math.nan
    gain_mean_seed: float = math.nan
    gain_mpv_seed: float = math.nan
    asymmetry_seed: float = math.nan


@dataclass
class GainResult:
    """Every LEM's result, with what the analysis was given."""

    lems: list[LemGain]
    tau_us: float
    n_hits: int
    n_tracks: int
    tm_ref: tuple[float, float]
    mpv_ref: tuple[float, float]
    params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def by_lem(self) -> dict[int, LemGain]:
        return {r.lem: r for r in self.lems}


def select_gain(
    hits: Columns, t0_tolerance_ticks: float = T0_TOLERANCE_TICKS
) -> npt.NDArray[np.bool_]:
    """Mask of the hits the gain analysis uses (see the module doc)."""
    dqds = hits["dqds"]
    t0_known = hits["trk_crossing"].astype(bool) | (hits["trk_t0"] <= t0_tolerance_ticks)
    return (
        (hits["track"] >= 0)
        & hits["trk_matched"].astype(bool)
        & t0_known
        & ~hits["edge"].astype(bool)
        & np.isfinite(dqds)
        & (dqds > 0)
        & (hits["lem"] >= 1)
    )


def _ratio_err(a: float, ea: float, b: float, eb: float) -> float:
    return abs(a / b) * math.hypot(ea / a, eb / b) if a and b else math.nan


def lem_gain(
    lem: int,
    stats: list[tuple[int, float, float, float, float]],
    tm_ref: tuple[float, float],
    mpv_ref: tuple[float, float],
    geometry: Geometry = WA105_3X1X1,
) -> LemGain:
    """Combine per-view (n, TM, TM error, MPV, MPV error) of one LEM into its gains."""
    ix, iy = geometry.lem_cell(lem)
    r = LemGain(
        lem=lem,
        lem_old=to_old(lem, geometry),
        ix=ix,
        iy=iy,
        n_hits=[s[0] for s in stats],
        dqds=[s[1] for s in stats],
        dqds_err=[s[2] for s in stats],
        dqds_mpv=[s[3] for s in stats],
        dqds_mpv_err=[s[4] for s in stats],
    )
    (_, t0, et0, m0, em0), (_, t1, et1, m1, em1) = stats
    r.gain_mean_seed = (t0 + t1) / MIP_DQDS_MEAN_FC_PER_CM
    r.gain_mpv_seed = (m0 + m1) / MIP_DQDS_MPV_FC_PER_CM
    r.asymmetry_seed = (m1 - m0) / (m1 + m0)
    g0, g1 = t0 / tm_ref[0], t1 / tm_ref[1]
    r.gain = g0 + g1
    r.gain_err = math.hypot(et0 / tm_ref[0], et1 / tm_ref[1])
    h0, h1 = m0 / mpv_ref[0], m1 / mpv_ref[1]
    eh0, eh1 = em0 / mpv_ref[0], em1 / mpv_ref[1]
    r.gain_mpv = h0 + h1
    r.gain_mpv_err = math.hypot(eh0, eh1)
    s = h0 + h1
    r.asymmetry = (h1 - h0) / s
    # dA/dh0 = -2 h1 / s^2, dA/dh1 = 2 h0 / s^2
    r.asymmetry_err = 2.0 * math.hypot(h1 * eh0, h0 * eh1) / (s * s)
    return r


def gain(
    hits: Columns,
    tau_us: float,
    geometry: Geometry = WA105_3X1X1,
    tm_ref: tuple[float, float] = MIP_TM_REF,
    mpv_ref: tuple[float, float] = MIP_MPV_REF,
    min_hits: int = MIN_HITS,
    threshold_loss: tuple[float, float] = THRESHOLD_LOSS,
) -> GainResult:
    """Per-LEM gain and asymmetry from the hits of one or more reconstructed files.

    ``tau_us`` is the electron lifetime used for the correction (the purity result; ``inf`` or
    the INFINITE_US dummy mean no correction).  Each hit is also corrected for the charge the
    hit finder's threshold lost (``threshold_loss``, :func:`.purity.threshold_correction`): at
    G = 2-3 and three times the noise the gains came out 3-6 % low without it.
    """
    sel = select_gain(hits)
    k = 1.0 / tau_us if math.isfinite(tau_us) and tau_us > 0 else 0.0
    corrected = hits["dqds"].astype(np.float64) * np.exp(hits["drift_us"].astype(np.float64) * k)
    corrected[sel] /= threshold_correction(hits, sel, track_keys(hits)[sel], threshold_loss, k)
    lems = []
    for lem in range(1, geometry.n_lems + 1):
        in_lem = sel & (hits["lem"] == lem)
        stats: list[tuple[int, float, float, float, float]] = []
        for view in (0, 1):
            values = corrected[in_lem & (hits["view"] == view)]
            if values.size < min_hits:
                stats.append((int(values.size), math.nan, math.nan, math.nan, math.nan))
                continue
            tm, tm_err = truncated_mean(values)
            mp, mp_err = mpv(values)
            stats.append((int(values.size), tm, tm_err, mp, mp_err))
        lems.append(lem_gain(lem, stats, tm_ref, mpv_ref, geometry))
    tracks = {
        (int(f), int(e), int(t))
        for f, e, t in zip(
            hits.get("file", np.zeros(sel.size))[sel],
            hits["event"][sel],
            hits["track"][sel],
            strict=True,
        )
    }
    return GainResult(
        lems=lems,
        tau_us=float(tau_us),
        n_hits=int(sel.sum()),
        n_tracks=len(tracks),
        tm_ref=tm_ref,
        mpv_ref=mpv_ref,
        params={"min_hits": min_hits, "t0_tolerance_ticks": T0_TOLERANCE_TICKS},
    )
