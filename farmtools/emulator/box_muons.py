"""Cosmic muons through a whole box (top and side faces) at the surface rate, with its exact mean.

The 6x6x6 is as tall as it is wide, so many cosmic muons enter through its side walls; the
3x1x1 generator (:mod:`farmtools.emulator.muons`) draws them from an extended anode plane and
keeps those that hit, which gives no closed form for their number.  Here the muons are drawn
straight on the box, so the Poisson mean per event is known exactly (the tests check it):

* intensity per solid angle ``I(theta) = I0 cos^2(theta)``; the flux through a horizontal
  surface, ``F = integral I cos(theta) dOmega = I0 pi / 2``, is the spec's 166 per m2 per s;
* the rate on a convex body is ``integral I(Omega) A_proj(Omega) dOmega`` with the projected
  area ``A_proj = Lx Ly |d_z| + Ly H |d_x| + Lx H |d_y|`` for the unit direction ``d``; with
  ``E[cos] = 3/4`` and ``E[sin |cos phi|] = (3 pi / 16) (2 / pi)`` under ``cos^2`` this is
  ``R = F (Lx Ly + (Lx + Ly) H / 2)``: 11,952 Hz for the 6 x 6 x 6 m3 volume at 166 m^-2 s^-1;
* sampling: ``cos(theta) = U^(1/3)`` (density ``cos^2``), accepted with probability
  ``A_proj / A_max``; then the entry face is drawn in proportion to its projected area and the
  entry point uniformly on it.

Pure numpy; may import :mod:`farmtools.emulator.muons` (for :class:`Track`) only.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from farmtools.emulator.muons import Track

Box = tuple[float, float, float]  # (Lx, Ly, H) in cm; the box is [0, Lx] x [0, Ly] x [0, H]


def box_rate_hz(box_cm: Box, flux_per_m2_s: float) -> float:
    """Muons per second crossing the box (see the module doc)."""
    lx, ly, h = (v * 1e-2 for v in box_cm)
    return flux_per_m2_s * (lx * ly + 0.5 * (lx + ly) * h)


def segment_in_box(
    point: tuple[float, float, float], direction: tuple[float, float, float], box_cm: Box
) -> tuple[tuple[float, float, float], tuple[float, float, float]] | None:
    """(entry, exit) of the whole line through ``point`` along ``direction`` in the box, or None."""
    s_in, s_out = -math.inf, math.inf
    for axis in range(3):
        d = direction[axis]
        hi = box_cm[axis]
        if abs(d) < 1e-12:
            if not 0.0 <= point[axis] <= hi:
                return None
            continue
        a, b = (0.0 - point[axis]) / d, (hi - point[axis]) / d
        s_in, s_out = max(s_in, min(a, b)), min(s_out, max(a, b))
    if not s_out > s_in + 1e-6:
        return None

    def at(s: float) -> tuple[float, float, float]:
        return (
            float(min(max(point[0] + s * direction[0], 0.0), box_cm[0])),
            float(min(max(point[1] + s * direction[1], 0.0), box_cm[1])),
            float(min(max(point[2] + s * direction[2], 0.0), box_cm[2])),
        )

    return at(s_in), at(s_out)


def _directions(rng: np.random.Generator, n: int, box_cm: Box) -> npt.NDArray[np.float64]:
    """``n`` downward unit vectors, density cos^2 x projected area of the box."""
    lx, ly, h = box_cm
    weights = np.array([ly * h, lx * h, lx * ly])
    a_max = float(np.sqrt((weights**2).sum()))
    out: list[npt.NDArray[np.float64]] = []
    got = 0
    while got < n:
        m = max(2 * (n - got), 16)
        cos_t = rng.random(m) ** (1.0 / 3.0)
        sin_t = np.sqrt(np.clip(1.0 - cos_t**2, 0.0, None))
        phi = rng.uniform(0.0, 2.0 * math.pi, m)
        d = np.stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t], axis=1)
        keep = rng.random(m) * a_max < np.abs(d) @ weights
        out.append(d[keep])
        got += int(keep.sum())
    return np.concatenate(out)[:n]


def muons_through_box(
    rng: np.random.Generator, box_cm: Box, n: int, t0_us: npt.NDArray[np.float64], trigger: bool
) -> list[Track]:
    """``n`` cosmic muons crossing the box, with the given t0 (us) each."""
    if n == 0:
        return []
    lx, ly, h = box_cm
    dirs = _directions(rng, n, box_cm)
    areas = np.abs(dirs) * np.array([ly * h, lx * h, lx * ly])
    u = rng.random(n) * areas.sum(axis=1)
    face = (u >= areas[:, 0]).astype(np.int64) + (u >= areas[:, 0] + areas[:, 1])
    uv = rng.random((n, 2))
    tracks = []
    for i in range(n):
        d = dirs[i]
        if face[i] == 2:  # top
            p = (float(uv[i, 0]) * lx, float(uv[i, 1]) * ly, 0.0)
        elif face[i] == 0:  # x wall the muon faces
            p = (0.0 if d[0] > 0 else lx, float(uv[i, 0]) * ly, float(uv[i, 1]) * h)
        else:  # y wall
            p = (float(uv[i, 0]) * lx, 0.0 if d[1] > 0 else ly, float(uv[i, 1]) * h)
        seg = segment_in_box(p, (float(d[0]), float(d[1]), float(d[2])), box_cm)
        if seg is None:  # grazing a corner: count it as a zero-length track at its entry
            seg = (p, p)
        tracks.append(Track(entry=seg[0], exit=seg[1], t0_us=float(t0_us[i]), trigger=trigger))
    return tracks
