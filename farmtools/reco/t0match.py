"""A time t0 for each 3D track from the flashes, and its tag: beam, cosmic or unmatched.

The charge readout gives a track's drift times from the trigger, not its depth: a cosmic that
crossed 2 ms before the trigger looks as deep as one 2 ms later looks shallow.  Its t0 is the
time of the flash it made.  Two constraints pick the flash:

* **drift extent**: the track's charge arrives between t0 (at the anode) and t0 + the full drift
  time (from the cathode), so t0 must lie in ``[t_last - drift, t_first]`` (``tolerance_us``
  either side for the pulse shape): a track spanning most of the drift leaves a narrow window;
* **light**: for each candidate t0 the track is placed at its absolute depth and, as a straight
  line, extended through the whole volume (the part outside the readout window gave light
  too); the photo-electrons it gives each PMT are the emulator's model of the detector
  (:func:`farmtools.emulator.light.expected_pe`: yield, solid angle, cos(alpha),
  attenuation).  The Poisson deviance per PMT of the flash against that prediction (its scale
  let free within ``scale_range`` for the model's uncertainty) is the match quality: about 1
  for the right flash, several for a wrong one (a wrong t0 puts the track at the wrong depth,
  so its light is too much or too little and falls on other PMTs).  The candidate with the
  lowest is taken; above ``max_deviance`` the track is unmatched.

A matched track that runs along the beam (``beam_min_cos``) and whose horizontal projection
stays within ``beam_radius_cm`` of the beam line's is *beam*, whatever its time (the beam's
pile-up comes at any time of the window) and its depth (a pile-up particle's flash may be
taken for another's: they lie on one line); every other matched track is *cosmic*: cosmics come
from above, and the few that run along the beam line are the impurity the benchmark measures.

Pure numpy; may import :mod:`farmtools.detector`, :mod:`farmtools.pddp_layout` (PMTs, beam) and
:mod:`.crpjoin`, :mod:`.flashes`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from farmtools import pddp_layout
from farmtools.detector import Geometry
from farmtools.reco.crpjoin import Segment
from farmtools.reco.flashes import Flashes

TAG_UNMATCHED = 0
TAG_COSMIC = 1
TAG_BEAM = 2

#: The PMTs' positions (cm), as the light kernel takes them.
_PMTS = np.ascontiguousarray(pddp_layout.pmt_positions_cm(), dtype=np.float64)


@dataclass(frozen=True)
class MatchParams:
    """Knobs of the flash-track matching and of the beam tag [choice: docs/reco.md]."""

    tolerance_us: float = 10.0
    max_deviance: float = 4.0
    #: The detector's light model (the emulator's defaults: BeamSettings).
    light_yield_per_cm: float = 1000.0
    attenuation_cm: float = 1000.0
    scale_range: tuple[float, float] = (0.7, 1.4)
    #: Beam particles ran within 3.6 deg of the beam direction (cos >= 0.998, 67 of them, 1 deg
    #: divergence plus the reconstruction's angle), while 4 of ~2700 cosmics of 64 emulated
    #: events had cos 0.954-0.993 near the beam line (tagged beam at 0.95): 0.996 (5 deg).
    beam_min_cos: float = 0.996
    #: Where the beam enters (cm) and its direction (:mod:`farmtools.pddp_layout`).
    beam_entry_cm: tuple[float, float, float] = pddp_layout.BEAM_WINDOW_CM
    beam_direction: tuple[float, float, float] = pddp_layout.beam_direction()
    beam_radius_cm: float = 50.0


@dataclass
class TrackT0:
    """Per 3D track: its flash (-1 none), t0 from the trigger (us), quality and tag."""

    flash: npt.NDArray[np.intp]
    t0_us: npt.NDArray[np.float64]
    quality: npt.NDArray[np.float64]
    tag: npt.NDArray[np.int8]


def _line(segs: list[Segment]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(centre, unit direction) of the straight line through the segments' ends (z from the trigger)."""
    pts = np.array([p for s in segs for p in (s.start, s.end)], dtype=np.float64)
    centre = pts.mean(axis=0)
    _, _, vt = np.linalg.svd(pts - centre, full_matrices=False)
    return centre, vt[0]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _light_sum(
    start: npt.NDArray[np.float64],
    d: npt.NDArray[np.float64],
    s_in: npt.NDArray[np.float64],
    length: npt.NDArray[np.float64],
    pmts: npt.NDArray[np.float64],
    steps: int,
    attenuation_cm: float,
) -> npt.NDArray[np.float64]:
    """``sum over the steps of cos(alpha) / (4 pi r^2) * exp(-r / L)`` per (candidate, PMT).

    The inner loop of :func:`predicted_light`: one pass without the ``(m, steps, pmts, 3)``
    temporaries numpy needs (0.2 s of the 6x6x6 event's serial t0 step), GIL released.
    """
    m = start.shape[0]
    n_pmts = pmts.shape[0]
    out = np.zeros((m, n_pmts))
    for i in range(m):
        for k in range(steps):
            s = s_in[i] + (k + 0.5) / steps * length[i]
            px = start[i, 0] + s * d[0]
            py = start[i, 1] + s * d[1]
            pz = start[i, 2] + s * d[2]
            for p in range(n_pmts):
                dx = pmts[p, 0] - px
                dy = pmts[p, 1] - py
                dz = pmts[p, 2] - pz
                r = math.sqrt(dx * dx + dy * dy + dz * dz)
                cos_a = max(dz / r, 0.0)
                out[i, p] += cos_a / (4 * math.pi * r * r) * math.exp(-r / attenuation_cm)
    return out


def predicted_light(
    centre: npt.NDArray[np.float64],
    direction: npt.NDArray[np.float64],
    t0_us: npt.ArrayLike,
    geometry: Geometry,
    params: MatchParams = MatchParams(),
    steps: int = 32,
) -> npt.NDArray[np.float64]:
    """Expected PE per PMT, ``(len(t0_us), n_pmts)``, of the whole straight track through the
    volume crossed at each ``t0_us``: the emulator's model
    (:func:`farmtools.emulator.light.expected_pe`, equal to it within the step size: tested),
    for all candidate times at once."""
    from farmtools.emulator.light import PMT_AREA_CM2

    t0 = np.atleast_1d(np.asarray(t0_us, dtype=np.float64))
    v = geometry.drift_velocity_mm_per_us * 0.1
    start = np.repeat(np.asarray(centre, dtype=np.float64)[None, :], t0.size, axis=0)
    start[:, 2] -= t0 * v
    hi = np.asarray(pddp_layout.VOLUME_CM)
    d = np.where(np.abs(direction) < 1e-12, 1e-12, direction).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (0.0 - start) / d
        b = (hi - start) / d
    s_in = np.minimum(a, b).max(axis=1)
    s_out = np.maximum(a, b).min(axis=1)
    length = np.clip(s_out - s_in, 0.0, None)
    w = _light_sum(start, d, s_in, length, _PMTS, steps, float(params.attenuation_cm))
    return params.light_yield_per_cm * PMT_AREA_CM2 * (length / steps)[:, None] * w


def deviance(
    predicted: npt.NDArray[np.float64],
    observed: npt.NDArray[np.float64],
    scale_range: tuple[float, float] = (1.0, 1.0),
) -> npt.NDArray[np.float64]:
    """Poisson deviance per PMT of ``observed`` PE against ``predicted`` (each row, or one
    pattern), the prediction's scale fitted to the observed total within ``scale_range``."""
    pred = np.atleast_2d(predicted)
    obs = np.atleast_2d(observed)
    total = pred.sum(axis=1, keepdims=True)
    scale = np.clip(obs.sum(axis=1, keepdims=True) / np.maximum(total, 1e-12), *scale_range)
    mu = scale * pred + 1e-3
    logs = np.where(obs > 0, obs * np.log(np.maximum(obs, 1e-9) / mu), 0.0)
    return 2.0 * np.sum(mu - obs + logs, axis=1) / max(obs.shape[1], 1)


def beam_like(
    segs: list[Segment], params: MatchParams, axis: npt.NDArray[np.float64] | None = None
) -> bool:
    """Whether the track runs along the beam line (direction in 3D, position seen from above);
    ``axis``: the track's direction if known (:func:`_line`), so it is not fitted twice."""
    d = np.asarray(params.beam_direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    if axis is None:
        _centre, axis = _line(segs)
    if abs(float(axis @ d)) < params.beam_min_cos:
        return False
    pts = np.array([p[:2] for s in segs for p in (s.start, s.end)], dtype=np.float64)
    d2 = d[:2] / np.linalg.norm(d[:2])
    rel = pts - np.asarray(params.beam_entry_cm[:2])
    perp = rel[:, 0] * d2[1] - rel[:, 1] * d2[0]
    return float(np.abs(perp).max()) <= params.beam_radius_cm


def match_tracks(
    tracks: list[list[Segment]],
    flashes: Flashes,
    geometry: Geometry,
    params: MatchParams = MatchParams(),
) -> TrackT0:
    """t0, flash, quality and tag of each 3D track (a list of its segments, times from the trigger)."""
    n = len(tracks)
    out = TrackT0(
        np.full(n, -1, dtype=np.intp),
        np.full(n, np.nan),
        np.full(n, np.nan),
        np.zeros(n, dtype=np.int8),
    )
    if flashes.n == 0:
        return out
    drift_us = geometry.full_drift_ticks * geometry.tick_us
    tol = params.tolerance_us
    for k, segs in enumerate(tracks):
        first = min(s.tick_min for s in segs) * geometry.tick_us
        last = max(s.tick_max for s in segs) * geometry.tick_us
        cand = np.flatnonzero(
            (flashes.time_us <= first + tol) & (flashes.time_us >= last - drift_us - tol)
        )
        if cand.size == 0:
            continue
        centre, direction = _line(segs)
        preds = predicted_light(centre, direction, flashes.time_us[cand], geometry, params)
        devs = deviance(preds, flashes.pmt_pe[cand], params.scale_range)
        best_q = float(devs.min())
        best = int(cand[int(np.argmin(devs))])
        out.quality[k] = best_q
        if best_q > params.max_deviance:
            continue
        out.flash[k] = best
        out.t0_us[k] = flashes.time_us[best]
        beam = beam_like(segs, params, direction)
        out.tag[k] = TAG_BEAM if beam else TAG_COSMIC
    return out
