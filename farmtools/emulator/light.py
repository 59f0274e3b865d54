"""The 6x6x6 light readout: one flash per particle at its t0, seen by the 36 PMTs, plus dark counts.

Per particle (beam or cosmic, every one of the event), the scintillation of its track in the
volume reaches PMT ``p`` (:func:`farmtools.pddp_layout.pmt_positions_cm`, facing up under the
cathode) with the expected number of photo-electrons

    mu_p = Y * sum over the track's pieces ds of  A cos(alpha) / (4 pi r^2) * exp(-r / L)

(``Y`` = ``light_yield_per_cm``, ``A`` the 8-inch photocathode, ``r`` the distance, ``alpha``
the angle to the PMT's axis, ``L`` the attenuation length); the PMT records ``n ~ Poisson(mu)``
photo-electrons as one pulse at exactly the particle's t0 (to the ns) when ``n >= 1``, of
charge ``N(n, 0.3 sqrt(n))``.  Dark counts: per PMT a Poisson number (``dark_rate_hz`` x the
LRO window) of single pulses of charge ``N(1, 0.3)`` (at least 0.3) at uniform times.  The LRO
window is ``[-full drift time, +readout window)`` around the trigger: every t0 a particle can
have and still leave charge in the window.  Pulses are written sorted by time, flags 0 (the
DAQ cannot tell a dark count from light).  [choice, docs/protodune-dp.md]

May import :mod:`farmtools.pddp_layout`, :mod:`farmtools.rawdata.pddp_format` and the muons.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from farmtools import pddp_layout
from farmtools.emulator.muons import Track
from farmtools.rawdata.pddp_format import LroPulse

#: Photocathode area of an 8-inch PMT (cm2).
PMT_AREA_CM2 = math.pi * 10.2**2
#: Single photo-electron charge resolution (relative).
SPE_SIGMA = 0.3
#: Length of the pieces a track is cut into for the light sum (cm).
LIGHT_STEP_CM = 10.0


def expected_pe(
    track: Track,
    pmts: npt.NDArray[np.float64],
    yield_per_cm: float,
    attenuation_cm: float,
) -> npt.NDArray[np.float64]:
    """Expected photo-electrons on each PMT from ``track`` (see the module doc)."""
    length = track.length_cm
    if length <= 0:
        return np.zeros(len(pmts))
    n = max(1, math.ceil(length / LIGHT_STEP_CM))
    ds = length / n
    s = (np.arange(n) + 0.5) * ds
    e = np.asarray(track.entry)
    d = np.asarray(track.direction)
    pts = e[None, :] + s[:, None] * d[None, :]  # (n, 3)
    delta = pmts[None, :, :] - pts[:, None, :]  # (n, pmts, 3)
    r = np.sqrt((delta**2).sum(axis=2))
    cos_a = np.clip(delta[:, :, 2] / r, 0.0, None)  # the PMTs face up (+z is down to them)
    w = PMT_AREA_CM2 * cos_a / (4 * math.pi * r**2) * np.exp(-r / attenuation_cm)
    return yield_per_cm * ds * w.sum(axis=0)


def flash_pulses(
    rng: np.random.Generator, mu: npt.NDArray[np.float64], t0_us: float
) -> list[LroPulse]:
    """One pulse per PMT that sees at least one photo-electron, at ``t0_us`` to the ns."""
    n = rng.poisson(mu)
    t_ns = round(t0_us * 1000.0)
    out = []
    for p in np.flatnonzero(n >= 1):
        q = float(n[p]) + SPE_SIGMA * math.sqrt(float(n[p])) * float(rng.standard_normal())
        out.append(LroPulse(int(p), t_ns, max(q, SPE_SIGMA)))
    return out


def dark_pulses(
    rng: np.random.Generator, n_pmts: int, rate_hz: float, window_ns: tuple[int, int]
) -> list[LroPulse]:
    """Dark counts of every PMT over the LRO window."""
    lo, hi = window_ns
    counts = rng.poisson(rate_hz * (hi - lo) * 1e-9, n_pmts)
    out = []
    for p in range(n_pmts):
        times = rng.integers(lo, hi, counts[p])
        q = np.maximum(1.0 + SPE_SIGMA * rng.standard_normal(counts[p]), SPE_SIGMA)
        out += [LroPulse(p, int(t), float(c)) for t, c in zip(times, q, strict=True)]
    return out


def lro_window_ns(full_drift_us: float, window_us: float) -> tuple[int, int]:
    """The LRO window around the trigger (ns): ``[-full drift, +readout window)``."""
    return (-math.ceil(full_drift_us * 1000.0), math.ceil(window_us * 1000.0))


def pmt_positions() -> npt.NDArray[np.float64]:
    return pddp_layout.pmt_positions_cm()
