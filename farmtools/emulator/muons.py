"""Cosmic muons: straight tracks through the drift volume, with the trigger that selects them.

Coordinates (the same everywhere in farmtools; see docs/emulator.md):

* ``x`` 0..100 cm along the 1 m side, measured by the view-0 strips (strip ``floor(x / pitch)``);
* ``y`` 0..300 cm along the 3 m side, measured by the view-1 strips;
* ``z`` the drift distance below the anode, 0 at the anode (CRP, top) to 100 cm at the cathode.

Muons come down (``dz > 0``).  The intensity per solid angle is ``I(theta) ~ cos^2(theta)``
(zenith ``theta``), azimuth uniform; through a horizontal surface the rate picks up one more
``cos(theta)`` (projected area), so the zenith of muons crossing the CRP plane has the density
``dN/dcos(theta) ~ cos^3(theta)``: sampled as ``cos(theta) = U**(1/4)``.

Trigger: every event has one triggering muon crossing the CRP area (``x``, ``y`` uniform over
it at ``z = 0``) with ``t0 = 0`` (tick 0 is the trigger time).  A fraction ``crt_fraction`` of
events is a CRT-like trigger, which fires only on muons that leave through the cathode (the
anode-cathode crossers the purity analysis needs); the others are PMT triggers on any muon
crossing the CRP area (about 1/3 of those cross to the cathode too, the rest leave through a
side wall).  Extra muons fall in the readout window: a Poisson number with mean
``flux x CRP area x window`` (0.33 for the 3x1x1), ``t0`` uniform in the window, crossing the
CRP area the same way.  Muons entering through the side walls and before the trigger, and
muons stopping in the volume (:func:`maybe_stopping`; not CRT triggers, whose muon reaches
the CRT below the cathode) are switches of the settings.

Pure functions over numpy; may import :mod:`farmtools.detector` only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from farmtools.detector import Geometry


@dataclass(frozen=True)
class Track:
    """A straight muon segment inside the drift volume (cm, us)."""

    entry: tuple[float, float, float]
    exit: tuple[float, float, float]
    #: Time the muon crossed the detector, relative to the trigger (us).
    t0_us: float
    #: True for the muon that fired the trigger (t0 = 0).
    trigger: bool
    #: The muon stops at ``exit`` (inside the volume) instead of leaving through a wall.
    stops: bool = False
    #: A stopping muon's path length had it not stopped (cm): its losses are drawn for that
    #: whole path, the part beyond the stop thrown away, so that the event stream advances as
    #: without the switch and the later muons of a seed stay the same (0: not stopping).
    unstopped_length_cm: float = 0.0
    #: An early or side-entering muon beyond the seed's simple model (:func:`extra_muons`):
    #: its draws (stopping, losses, delta rays, scattering) come from a stream of its own.
    added: bool = False

    @property
    def length_cm(self) -> float:
        return math.dist(self.entry, self.exit)

    @property
    def direction(self) -> tuple[float, float, float]:
        n = self.length_cm or 1.0
        return (
            (self.exit[0] - self.entry[0]) / n,
            (self.exit[1] - self.entry[1]) / n,
            (self.exit[2] - self.entry[2]) / n,
        )

    @property
    def cos_zenith(self) -> float:
        return self.direction[2]

    def crosses_anode_cathode(self, geometry: Geometry) -> bool:
        """Enters at the anode and leaves through the cathode: the purity analysis' tracks."""
        return self.entry[2] <= 1e-9 and self.exit[2] >= geometry.drift_length_cm - 1e-6


def sample_directions(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` unit vectors of muons crossing a horizontal plane (cos^3 zenith, see module doc)."""
    cos_t = rng.random(n) ** 0.25
    sin_t = np.sqrt(np.clip(1.0 - cos_t**2, 0.0, None))
    phi = rng.uniform(0.0, 2.0 * math.pi, n)
    return np.stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t], axis=1)


def track_through_volume(
    start_xy: tuple[float, float],
    direction: np.ndarray,
    geometry: Geometry,
    t0_us: float,
    trigger: bool,
) -> Track:
    """The segment from the anode point ``start_xy`` along ``direction`` to the first wall."""
    ex, ey = geometry.extent_cm
    lo = (0.0, 0.0, 0.0)
    hi = (ex, ey, geometry.drift_length_cm)
    start = (start_xy[0], start_xy[1], 0.0)
    s_max = math.inf
    for axis in range(3):
        d = float(direction[axis])
        if d > 0:
            s_max = min(s_max, (hi[axis] - start[axis]) / d)
        elif d < 0:
            s_max = min(s_max, (lo[axis] - start[axis]) / d)
    end = tuple(start[i] + s_max * float(direction[i]) for i in range(3))
    # Clamp rounding so that points stay inside the box.
    end_c = (min(max(end[0], 0.0), ex), min(max(end[1], 0.0), ey), min(max(end[2], 0.0), hi[2]))
    return Track(entry=start, exit=end_c, t0_us=t0_us, trigger=trigger)


def _muon_at_anode(
    rng: np.random.Generator, geometry: Geometry, t0_us: float, trigger: bool
) -> Track:
    ex, ey = geometry.extent_cm
    xy = (float(rng.uniform(0.0, ex)), float(rng.uniform(0.0, ey)))
    return track_through_volume(xy, sample_directions(rng, 1)[0], geometry, t0_us, trigger)


def trigger_muon(rng: np.random.Generator, geometry: Geometry, crt: bool) -> Track:
    """The muon that fired the trigger; a CRT trigger only accepts anode-cathode crossers."""
    while True:
        track = _muon_at_anode(rng, geometry, 0.0, True)
        if not crt or track.crosses_anode_cathode(geometry):
            return track


def maybe_stopping(track: Track, rng: np.random.Generator, fraction: float) -> Track:
    """``track``, or with probability ``fraction`` the same muon stopping inside the volume.

    Where: uniform along its path.  The cosmic spectrum is about flat in momentum below
    1 GeV/c and a slow muon's range grows about linearly with its kinetic energy, so the
    muons that stop within a path of ~1 m stop anywhere along it alike.  No draw at all when
    ``fraction`` is 0 (a seed then gives the same muons as without the switch).
    """
    if fraction <= 0.0 or rng.random() >= fraction:
        return track
    f = float(rng.random())
    exit_ = tuple(a + f * (b - a) for a, b in zip(track.entry, track.exit, strict=True))
    return replace(
        track,
        exit=exit_,  # type: ignore[arg-type]
        stops=True,
        unstopped_length_cm=track.length_cm,
    )


def readout_window_us(geometry: Geometry) -> float:
    return geometry.samples * geometry.tick_us


def mean_extra_tracks(geometry: Geometry, flux_per_m2_s: float) -> float:
    """Mean number of untriggered muons crossing the CRP during one readout window (0.33)."""
    ex, ey = geometry.extent_cm
    return flux_per_m2_s * (ex * ey * 1e-4) * readout_window_us(geometry) * 1e-6


def extra_muons(
    rng: np.random.Generator,
    geometry: Geometry,
    flux_per_m2_s: float,
    early: bool = False,
    sides: bool = False,
    more_rng: np.random.Generator | None = None,
) -> list[Track]:
    """Muons at random times in the readout window, beyond the triggering one.

    The seed's simple model first, from ``rng``: every extra muon entering through the CRP
    plane during the window.  ``early``: also muons that crossed before the trigger, t0 down to
    minus the full drift time (their charge from deep enough still drifts into the window).
    ``sides``: muons enter through the side walls too (:func:`muon_through_box`).  Those come
    from ``more_rng`` (default ``rng``): lines through the anode plane extended around the CRP
    over the longer time range, less the ones of the simple model's region (the CRP plane in
    the window, drawn above), so that with its own ``more_rng`` a seed keeps the same muons
    with the switches on or off, the others added.
    """
    window = readout_window_us(geometry)
    n = int(rng.poisson(mean_extra_tracks(geometry, flux_per_m2_s)))
    out = [_muon_at_anode(rng, geometry, float(rng.uniform(0.0, window)), False) for _ in range(n)]
    if not (early or sides):
        return out
    more = rng if more_rng is None else more_rng
    t_lo = -geometry.full_drift_ticks * geometry.tick_us if early else 0.0
    margin = SIDE_MARGIN_DRIFTS * geometry.drift_length_cm if sides else 0.0
    ex, ey = geometry.extent_cm
    area_scale = (ex + 2 * margin) * (ey + 2 * margin) / (ex * ey)
    mean = mean_extra_tracks(geometry, flux_per_m2_s) * area_scale * (window - t_lo) / window
    for _ in range(int(more.poisson(mean))):
        t0 = float(more.uniform(t_lo, window))
        xy = (float(more.uniform(-margin, ex + margin)), float(more.uniform(-margin, ey + margin)))
        if t0 >= 0.0 and 0.0 <= xy[0] <= ex and 0.0 <= xy[1] <= ey:
            continue  # the simple model's region: its muons are those drawn above
        track = muon_through_box(xy, sample_directions(more, 1)[0], geometry, t0)
        if track is not None:
            out.append(replace(track, added=True))
    return out


#: Half-width of the anode plane extension around the CRP, in drift lengths, from which
#: side-entering muons are drawn: zenith angles up to atan(3) = 72 deg reach the volume.
SIDE_MARGIN_DRIFTS = 3.0


def muon_through_box(
    start_xy: tuple[float, float], direction: np.ndarray, geometry: Geometry, t0_us: float
) -> Track | None:
    """The part inside the drift volume of the line through ``(x, y, 0)`` along ``direction``
    (downwards), or None when it misses the volume: a muon entering through the top or a side."""
    ex, ey = geometry.extent_cm
    lo = (0.0, 0.0, 0.0)
    hi = (ex, ey, geometry.drift_length_cm)
    p = (start_xy[0], start_xy[1], 0.0)
    s_in, s_out = 0.0, math.inf
    for axis in range(3):
        d = float(direction[axis])
        if d == 0.0:
            if not lo[axis] <= p[axis] <= hi[axis]:
                return None
            continue
        a = (lo[axis] - p[axis]) / d
        b = (hi[axis] - p[axis]) / d
        s_in = max(s_in, min(a, b))
        s_out = min(s_out, max(a, b))
    if not s_out > s_in + 1e-6:
        return None

    def point(s: float) -> tuple[float, float, float]:
        return tuple(  # type: ignore[return-value]
            min(max(p[i] + s * float(direction[i]), lo[i]), hi[i]) for i in range(3)
        )

    return Track(entry=point(s_in), exit=point(s_out), t0_us=t0_us, trigger=False)
