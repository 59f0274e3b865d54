"""A time t0 for each 3D track from the flashes, and its tag: beam, cosmic or unmatched.

The charge readout gives a track's drift times from the trigger, not its depth: a cosmic that
crossed 2 ms before the trigger looks as deep as one 2 ms later looks shallow.  Its t0 is the
time of the flash it made.  Two constraints pick the flash:

* **drift extent**: the track's charge arrives between t0 (at the anode) and t0 + the full drift
  time (from the cathode), so t0 must lie in ``[t_last - drift, t_first]`` (``tolerance_us``
  either side for the pulse shape): a track spanning most of the drift leaves a narrow window;
* **position**: the light a track gives each PMT falls as cos(alpha) exp(-d/L) / d^2 (d from
  the track's points, put at their depth for that t0, to the PMT facing up, alpha the angle to
  its axis, L the attenuation length); with its scale fitted to the flash's PE, the Poisson
  deviance of the flash's pattern per degree of freedom (about 1 for the right flash, several
  for a wrong one: tested) is the match quality, and the candidate with the lowest is taken.
  Above ``max_deviance`` the track is unmatched.

A track matched to a flash within ``beam_time_us`` of the trigger that passes within
``beam_radius_cm`` of the beam line is *beam*; every other matched track is *cosmic*.

Pure numpy; may import :mod:`farmtools.detector`, :mod:`farmtools.pddp_layout` (PMTs, beam) and
:mod:`.crpjoin`, :mod:`.flashes`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from farmtools import pddp_layout
from farmtools.detector import Geometry
from farmtools.reco.crpjoin import Segment
from farmtools.reco.flashes import Flashes

TAG_UNMATCHED = 0
TAG_COSMIC = 1
TAG_BEAM = 2


@dataclass(frozen=True)
class MatchParams:
    """Knobs of the flash-track matching and of the beam tag [choice: docs/reco.md]."""

    tolerance_us: float = 10.0
    max_deviance: float = 4.0
    attenuation_cm: float = 1000.0
    points_per_segment: int = 8
    beam_time_us: float = 2.0
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


def _points(segs: list[Segment], n: int) -> npt.NDArray[np.float64]:
    """(m, 4) x, y, tick, weight (cm of track) of points spread along the segments."""
    rows = []
    f = (np.arange(n) + 0.5) / n
    for s in segs:
        a = np.array([*s.start[:2], s.tick_min])
        b = np.array([*s.end[:2], s.tick_max])
        p = a[None, :] + f[:, None] * (b - a)[None, :]
        w = np.full((n, 1), s.length_cm / n)
        rows.append(np.hstack([p, w]))
    return np.vstack(rows)


def predicted_light(
    points: npt.NDArray[np.float64],
    t0_us: float,
    geometry: Geometry,
    attenuation_cm: float = MatchParams.attenuation_cm,
) -> npt.NDArray[np.float64]:
    """Normalised PE per PMT of a track whose points (x, y, tick, weight) crossed at ``t0_us``."""
    pmts = pddp_layout.pmt_positions_cm()
    v = geometry.drift_velocity_mm_per_us * 0.1
    z = np.clip((points[:, 2] * geometry.tick_us - t0_us) * v, 0.0, geometry.drift_length_cm)
    xyz = np.column_stack([points[:, 0], points[:, 1], z])
    delta = pmts[None, :, :] - xyz[:, None, :]
    d2 = np.maximum((delta**2).sum(axis=2), 1.0)
    cos_a = np.clip(delta[:, :, 2] / np.sqrt(d2), 0.0, None)
    light = (points[:, 3:4] * cos_a * np.exp(-np.sqrt(d2) / attenuation_cm) / d2).sum(axis=0)
    total = light.sum()
    return light / total if total > 0 else light


def deviance(predicted: npt.NDArray[np.float64], observed: npt.NDArray[np.float64]) -> float:
    """Poisson deviance per degree of freedom of ``observed`` PE against ``predicted`` scaled to them."""
    mu = observed.sum() * predicted + 1e-9
    logs = np.where(observed > 0, observed * np.log(np.maximum(observed, 1e-9) / mu), 0.0)
    return float(2.0 * np.sum(mu - observed + logs) / max(observed.size - 1, 1))


def _beam_distance(segs: list[Segment], params: MatchParams) -> float:
    """Closest approach (cm) of the track's segment ends and middles to the beam line."""
    entry = np.asarray(params.beam_entry_cm)
    d = np.asarray(params.beam_direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    pts = np.array([p for s in segs for p in (s.start, s.end)])
    rel = pts - entry
    perp = rel - (rel @ d)[:, None] * d[None, :]
    return float(np.linalg.norm(perp, axis=1).min())


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
        pts = _points(segs, params.points_per_segment)
        best, best_q = -1, np.inf
        for f in cand:
            pred = predicted_light(pts, float(flashes.time_us[f]), geometry, params.attenuation_cm)
            q = deviance(pred, flashes.pmt_pe[f])
            if q < best_q:
                best, best_q = int(f), q
        out.quality[k] = best_q
        if best_q > params.max_deviance:
            continue
        out.flash[k] = best
        out.t0_us[k] = flashes.time_us[best]
        beam = abs(out.t0_us[k]) <= params.beam_time_us and (
            _beam_distance(segs, params) <= params.beam_radius_cm
        )
        out.tag[k] = TAG_BEAM if beam else TAG_COSMIC
    return out
