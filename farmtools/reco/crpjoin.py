"""3D segments of the view-matched tracks of each CRP, joined across CRP boundaries.

Every CRP is reconstructed as a 3x1x1 CRP is (:func:`farmtools.reco.event.reconstruct_event`):
its 2D tracks per view, the two views paired.  A pair is a 3D segment: view 0's line gives
x(z), view 1's y(z), over the pair's drift-time range, placed on the anode plane by the CRP's
corner (:func:`farmtools.pddp_layout.crp_origin_cm`).  A muon that crosses from one CRP
to the next leaves a segment in each, meeting at the boundary with the same direction: two
segments of different CRPs whose ends are within ``join_cm`` and whose directions agree
(``min_cos``) are one track.  ``z`` here is the drift time from the trigger times the drift
velocity: the same clock for every CRP, so joining needs no t0.

Pure numpy over the track columns of :mod:`.event`; may import :mod:`farmtools.detector` and
:mod:`farmtools.pddp_layout`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from farmtools import pddp_layout
from farmtools.detector import Geometry


@dataclass(frozen=True)
class JoinParams:
    """How close (cm) and how parallel two segments' ends must be to be one track."""

    join_cm: float = 8.0
    min_cos: float = 0.97


@dataclass(frozen=True)
class Segment:
    """A view-matched pair of one CRP in detector coordinates (cm; ticks from the trigger)."""

    track0: int
    track1: int
    crp: int
    #: (x, y, z) at the first and the last tick; z = tick * drift velocity (from the trigger).
    start: tuple[float, float, float]
    end: tuple[float, float, float]
    tick_min: float
    tick_max: float

    @property
    def direction(self) -> npt.NDArray[np.float64]:
        d = np.subtract(self.end, self.start)
        n = float(np.linalg.norm(d))
        return d / n if n > 0 else d

    @property
    def length_cm(self) -> float:
        return float(np.linalg.norm(np.subtract(self.end, self.start)))


def _u_at(tracks: dict[str, npt.NDArray[Any]], k: int, z: float) -> float:
    dz = float(tracks["dz"][k])
    if dz == 0.0:
        return float("nan")
    return float(tracks["u0"][k] + (z - tracks["z0"][k]) * tracks["du"][k] / dz)


def segments(tracks: dict[str, npt.NDArray[Any]], geometry: Geometry) -> list[Segment]:
    """The 3D segments of the matched pairs (view 0 track, view 1 track) of every CRP.

    ``tracks``: the event's track columns with event-unique ``id`` = row and ``partner``; pairs
    whose lines give no position (a track flat in z in one view) are left out.
    """
    vz = geometry.drift_velocity_cm_per_tick
    ex, ey = geometry.extent_cm
    out: list[Segment] = []
    for k0 in np.flatnonzero((tracks["view"] == 0) & (tracks["partner"] >= 0)):
        k1 = int(tracks["partner"][k0])
        crp = int(tracks["crp"][k0])
        x0, y0 = pddp_layout.crp_origin_cm(crp) if geometry.n_crps > 1 else (0.0, 0.0)
        lo = float(min(tracks["tick_min"][k0], tracks["tick_min"][k1]))
        hi = float(max(tracks["tick_max"][k0], tracks["tick_max"][k1]))
        ends = []
        for tick in (lo, hi):
            z = tick * vz
            x = _u_at(tracks, int(k0), z)
            y = _u_at(tracks, k1, z)
            ends.append((x0 + min(max(x, 0.0), ex), y0 + min(max(y, 0.0), ey), z))
        if not all(np.isfinite(ends[0] + ends[1])):
            continue
        out.append(Segment(int(k0), k1, crp, ends[0], ends[1], lo, hi))
    return out


def join(segs: list[Segment], params: JoinParams = JoinParams()) -> npt.NDArray[np.intp]:
    """Track number (0..) of each segment: segments of different CRPs meeting end to end share one."""
    n = len(segs)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if n > 1:  # every pair at once: ~100-200 segments per 6x6x6 event
        ends = np.array([[s.start, s.end] for s in segs])  # (n, 2, 3)
        dirs = np.array([s.direction for s in segs])
        crp = np.array([s.crp for s in segs])
        gap = np.linalg.norm(ends[:, None, :, None, :] - ends[None, :, None, :, :], axis=4)
        close = gap.reshape(n, n, 4).min(axis=2) <= params.join_cm
        parallel = np.abs(dirs @ dirs.T) >= params.min_cos
        pairs = np.argwhere(np.triu(close & parallel & (crp[:, None] != crp[None, :]), k=1))
        for i, j in pairs:
            a, b = find(int(i)), find(int(j))
            parent[max(a, b)] = min(a, b)
    roots = [find(i) for i in range(n)]
    _, labels = np.unique(roots, return_inverse=True)
    return labels.astype(np.intp)
