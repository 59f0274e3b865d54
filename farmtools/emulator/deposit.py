"""From a muon track to charge on the strips: energy loss, recombination, drift, gain, projection.

The chain for each 0.5 mm step of a :class:`~farmtools.emulator.muons.Track` (spec section 4):

1. **Energy loss** ``dE``: a Landau distribution with the physical width and most probable value
   of a 4 GeV muon in liquid argon for the step length (PDG "Passage of particles through
   matter": ``xi = K/2 Z/A rho dx``, ``Delta_p = xi [ln(2 m c^2 beta^2 gamma^2 / I) +
   ln(xi / I) + j - beta^2 - delta]``), truncated at the large-loss end where the mean of the
   truncated distribution equals 2.1 MeV/cm.  Because the Landau shape is stable under
   convolution this gives the right most probable value for any sum of steps (about 1.70 MeV/cm
   for a 3.125 mm strip pitch, 1.52 MeV/cm for a single step).
2. **Recombination** (Birks, spec): ``R = 0.8 / (1 + 0.0486 (dE/dx) / (1.39 E))`` with the drift
   field ``E`` of the geometry; ``electrons = dE / W * R``.  By default (``recombination="mip"``)
   ``dE/dx`` is the mean MIP value 2.1 MeV/cm, so R = 0.698 at 0.5 kV/cm for every step and the
   mean charge is the spec's 9.95 fC/cm; with ``"local"`` each step's own dE/dx is used (the
   Landau tail then recombines more: about 9.4 fC/cm on average).
3. **Drift**: the step at depth ``z`` arrives at the anode after ``t_drift = z / v_drift``
   (velocity from the geometry) and at tick ``(t0 + t_drift) / tick``; tick 0 is the trigger.
   Attenuation ``exp(-t_drift / tau)``.  Diffusion: Gaussian with ``sigma_L = sqrt(2 D_L t)``
   along the drift (converted to ticks) and ``sigma_T = sqrt(2 D_T t)`` across.
4. **Amplification**: the effective gain ``G`` of the LEM under the step's ``(x, y)``
   (``Geometry.lem_number``); view 0 collects ``0.5 (1 - A) G Q`` and view 1 ``0.5 (1 + A) G Q``.
5. **Projection**: view 0 strip ``floor(x / pitch)``, view 1 strip ``floor(y / pitch)``; the
   diffused charge is shared between neighbouring strips and ticks by the Gaussian integrals.

The result is the charge in fC per view-order channel and tick (before shaping); charge that
arrives after the readout window is lost, as in the detector.

Pure functions over numpy, numba for the spreading loop; may import :mod:`farmtools.detector`
and :mod:`farmtools.emulator.muons`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np
import numpy.typing as npt

from farmtools.detector import ELECTRON_CHARGE_FC, MIP_DEDX_MEV_PER_CM, W_ION_EV, Geometry
from farmtools.emulator.muons import Track

#: Step length along the track (cm) [choice].
STEP_CM = 0.05
#: Total energy of the emulated muons (GeV): the cosmic mean, minimum ionising [doc].
MUON_ENERGY_GEV = 4.0

# Liquid argon and the muon (PDG).
_K_HALF = 0.307075 / 2.0  # MeV cm2 / mol
_Z_OVER_A = 18.0 / 39.948
_RHO = 1.396  # g / cm3
_I_EV = 188.0
_ME_EV = 0.51099895e6
_MMU_GEV = 0.1056583755
_J = 0.200
# Sternheimer density-effect parameters of liquid argon.
_STERN = {"a": 0.1956, "k": 3.0, "x0": 0.2, "x1": 3.0, "cbar": 5.2146}
# Mode of the standard Landau density phi(lambda) and scipy's parameterisation of it:
# lambda = (pi/2) x + ln(pi/2), so the mode of scipy.stats.landau is at x = -0.42931.
_LAMBDA_MODE = -0.22278
_SCIPY_MODE = (_LAMBDA_MODE - math.log(math.pi / 2)) / (math.pi / 2)


def _density_effect(beta_gamma: float) -> float:
    x = math.log10(beta_gamma)
    s = _STERN
    if x >= s["x1"]:
        return 2 * math.log(10) * x - s["cbar"]
    if x >= s["x0"]:
        return 2 * math.log(10) * x - s["cbar"] + s["a"] * (s["x1"] - x) ** s["k"]
    return 0.0


def landau_parameters(step_cm: float, energy_gev: float = MUON_ENERGY_GEV) -> tuple[float, float]:
    """(xi, Delta_p) in MeV of the Landau energy-loss distribution over ``step_cm`` of argon."""
    p = math.sqrt(energy_gev**2 - _MMU_GEV**2)
    bg = p / _MMU_GEV
    beta2 = bg**2 / (1 + bg**2)
    xi = _K_HALF * _Z_OVER_A * _RHO * step_cm / beta2
    xi_ev = xi * 1e6
    delta_p = xi * (
        math.log(2 * _ME_EV * bg**2 / _I_EV)
        + math.log(xi_ev / _I_EV)
        + _J
        - beta2
        - _density_effect(bg)
    )
    return xi, delta_p


@dataclass(frozen=True)
class LandauLoss:
    """Sampler of the energy loss per step: truncated physical Landau with the set mean dE/dx.

    Sampling is by inverse CDF through a precomputed quantile table (linear interpolation in
    probability), so it is fast and exact up to the table resolution; ``mean_dedx`` of the
    table is the requested mean by construction (see :func:`landau_loss`).
    """

    step_cm: float
    xi: float
    delta_p: float
    #: Cut-off of the scipy-standard Landau variable.
    x_cut: float
    #: Probabilities and quantiles (MeV per step) of the truncated distribution.
    u_grid: npt.NDArray[np.float64]
    de_grid: npt.NDArray[np.float64]

    @property
    def mean_dedx(self) -> float:
        """Mean dE/dx (MeV/cm) of the tabulated distribution (trapezoid rule in probability)."""
        return float(np.trapezoid(self.de_grid, self.u_grid) / self.u_grid[-1] / self.step_cm)

    @property
    def mpv_dedx(self) -> float:
        return self.delta_p / self.step_cm

    @property
    def max_de_mev(self) -> float:
        return float(self.de_grid[-1])

    def sample(self, rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
        """``n`` energy losses (MeV) of steps of ``step_cm``."""
        u = rng.random(n) * self.u_grid[-1]
        return np.interp(u, self.u_grid, self.de_grid)


def _table(xi: float, delta_p: float, x_cut: float, n: int = 4097) -> tuple[np.ndarray, np.ndarray]:
    from scipy.stats import landau

    f_cut = float(landau.cdf(x_cut))
    u = np.concatenate([[1e-12], np.linspace(0.0, f_cut, n)[1:]])
    # Denser in the tail: quantiles spaced evenly in log(1 - u / f_cut) near the cut.
    tail = f_cut - np.geomspace(1e-3 * f_cut, 1e-9, 512) * f_cut
    u = np.unique(np.concatenate([u, tail, [f_cut]]))
    x = landau.ppf(u)
    x[-1] = x_cut
    de = delta_p + xi * (math.pi / 2) * (x - _SCIPY_MODE)
    return u, np.maximum(de, 0.0)


@lru_cache(maxsize=8)
def landau_loss(step_cm: float = STEP_CM, mean_dedx: float = MIP_DEDX_MEV_PER_CM) -> LandauLoss:
    """The truncated Landau whose mean dE/dx is ``mean_dedx``: the cut is found by bisection."""
    xi, delta_p = landau_parameters(step_cm)
    lo, hi = 1.0, 1e6
    for _ in range(40):
        mid = math.sqrt(lo * hi)
        u, de = _table(xi, delta_p, mid)
        mean = np.trapezoid(de, u) / u[-1] / step_cm
        if mean < mean_dedx:
            lo = mid
        else:
            hi = mid
    u, de = _table(xi, delta_p, math.sqrt(lo * hi))
    return LandauLoss(step_cm, xi, delta_p, math.sqrt(lo * hi), u, de)


def recombination(
    dedx_mev_per_cm: npt.NDArray[np.float64], field_kv_per_cm: float
) -> npt.NDArray[np.float64]:
    """Birks recombination (spec section 4), 0.698 for 2.1 MeV/cm at 0.5 kV/cm."""
    return 0.8 / (1.0 + 0.0486 * dedx_mev_per_cm / (field_kv_per_cm * 1.39))


@dataclass(frozen=True)
class DriftParams:
    """What the drift does to charge: lifetime, diffusion (spec values by default)."""

    lifetime_us: float = 7000.0
    diffusion_l_cm2_s: float = 4.0
    diffusion_t_cm2_s: float = 13.0


@dataclass
class Steps:
    """Per-step quantities of one track, all arrays of the same length."""

    xyz: npt.NDArray[np.float64]  # (n, 3) step midpoints, cm
    length_cm: npt.NDArray[np.float64]
    de_mev: npt.NDArray[np.float64]
    #: Charge leaving the step after recombination (fC), before attenuation and gain.
    q_fc: npt.NDArray[np.float64]


def steps_of(
    track: Track,
    rng: np.random.Generator,
    field_kv_per_cm: float,
    step_cm: float = STEP_CM,
    local_recombination: bool = False,
) -> Steps:
    """Cut ``track`` into steps of ``step_cm`` (the last one shorter) and ionise them."""
    length = track.length_cm
    n_full = int(length // step_cm)
    lengths = np.full(n_full, step_cm)
    rest = length - n_full * step_cm
    if rest > 1e-9:
        lengths = np.append(lengths, rest)
    s_mid = np.cumsum(lengths) - 0.5 * lengths
    entry = np.asarray(track.entry)
    direction = np.asarray(track.direction)
    xyz = entry[None, :] + s_mid[:, None] * direction[None, :]
    loss = landau_loss(step_cm)
    # A short last step has its loss scaled (its Landau would be different; negligible).
    de = loss.sample(rng, len(lengths)) * (lengths / step_cm)
    if local_recombination:
        dedx = np.divide(de, lengths, out=np.zeros_like(de), where=lengths > 0)
        r = recombination(dedx, field_kv_per_cm)
    else:
        r = recombination(np.full_like(de, loss.mean_dedx), field_kv_per_cm)
    q = de * 1e6 / W_ION_EV * r * ELECTRON_CHARGE_FC
    return Steps(xyz=xyz, length_cm=lengths, de_mev=de, q_fc=q)


def lem_gains(
    xyz: npt.NDArray[np.float64], geometry: Geometry, gains: dict[int, float]
) -> npt.NDArray[np.float64]:
    """Gain of the LEM under each point (vectorised :meth:`Geometry.lem_number`)."""
    nx, ny = geometry.lem_grid
    ix = np.clip((xyz[:, 0] // geometry.lem_size_cm).astype(np.int64), 0, nx - 1)
    iy = np.clip((xyz[:, 1] // geometry.lem_size_cm).astype(np.int64), 0, ny - 1)
    table = np.array([gains.get(lem, 0.0) for lem in range(1, nx * ny + 1)])
    return table[ix + nx * iy]


@dataclass
class TrackCharge:
    """Truth of one track's charge: what was deposited and what reached each view (fC)."""

    energy_mev: float
    ionised_fc: float
    collected_fc: tuple[float, float]


def deposit_track(
    charge: npt.NDArray[np.float32],
    track: Track,
    rng: np.random.Generator,
    geometry: Geometry,
    drift: DriftParams,
    gains: dict[int, float],
    asymmetry: float,
    local_recombination: bool = False,
    touched: npt.NDArray[np.bool_] | None = None,
) -> TrackCharge:
    """Add the charge of ``track`` to ``charge`` (fC, shape (n_channels, samples), view order).

    ``touched`` (optional, one flag per channel) is set for every channel that got charge.
    """
    steps = steps_of(
        track, rng, geometry.drift_field_kv_per_cm, local_recombination=local_recombination
    )
    v_cm_per_us = geometry.drift_velocity_mm_per_us * 0.1
    t_drift_us = steps.xyz[:, 2] / v_cm_per_us
    q = steps.q_fc * np.exp(-t_drift_us / drift.lifetime_us)
    q = q * lem_gains(steps.xyz, geometry, gains)
    t_s = t_drift_us * 1e-6
    sigma_t_cm = np.sqrt(2.0 * drift.diffusion_t_cm2_s * t_s)
    sigma_l_ticks = np.sqrt(2.0 * drift.diffusion_l_cm2_s * t_s) / (v_cm_per_us * geometry.tick_us)
    tick = (track.t0_us + t_drift_us) / geometry.tick_us
    shares = np.array([0.5 * (1.0 - asymmetry), 0.5 * (1.0 + asymmetry)])
    collected = _spread(
        charge,
        steps.xyz[:, 0].copy(),
        steps.xyz[:, 1].copy(),
        tick,
        q,
        sigma_t_cm,
        sigma_l_ticks,
        shares,
        geometry.pitch_cm,
        geometry.channels_per_view[0],
        geometry.channels_per_view[1],
        touched if touched is not None else np.zeros(charge.shape[0], dtype=np.bool_),
    )
    return TrackCharge(
        energy_mev=float(steps.de_mev.sum()),
        ionised_fc=float(steps.q_fc.sum()),
        collected_fc=(float(collected[0]), float(collected[1])),
    )


@numba.njit(cache=True)
def _gauss_fraction(lo: float, hi: float, mu: float, sigma: float) -> float:
    if sigma <= 1e-9:
        return 1.0 if lo <= mu < hi else 0.0
    s = sigma * math.sqrt(2.0)
    return 0.5 * (math.erf((hi - mu) / s) - math.erf((lo - mu) / s))


@numba.njit(cache=True, nogil=True)
def _spread(
    charge: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    tick: np.ndarray,
    q: np.ndarray,
    sigma_t_cm: np.ndarray,
    sigma_l_ticks: np.ndarray,
    shares: np.ndarray,
    pitch: float,
    n0: int,
    n1: int,
    touched: np.ndarray,
) -> np.ndarray:
    """Share each step's charge between strips (transverse) and ticks (longitudinal)."""
    n_samples = charge.shape[1]
    collected = np.zeros(2)
    tfrac = np.zeros(64)
    for i in range(q.shape[0]):
        if q[i] <= 0.0:
            continue
        # Ticks: bins [k, k+1) of the arrival time.
        sl = sigma_l_ticks[i]
        k_lo = math.floor(tick[i] - 4.0 * sl)
        k_hi = math.floor(tick[i] + 4.0 * sl) + 1
        if k_hi - k_lo > 64:
            k_lo = math.floor(tick[i]) - 31
            k_hi = k_lo + 64
        nt = k_hi - k_lo
        tsum = 0.0
        for j in range(nt):
            k = k_lo + j
            f = _gauss_fraction(float(k), float(k + 1), tick[i], sl)
            if k < 0 or k >= n_samples:
                f = 0.0
            tfrac[j] = f
            tsum += f
        if tsum <= 0.0:
            continue
        st = sigma_t_cm[i]
        for view in range(2):
            pos = x[i] if view == 0 else y[i]
            n_strips = n0 if view == 0 else n1
            offset = 0 if view == 0 else n0
            qv = q[i] * shares[view]
            s_lo = math.floor((pos - 4.0 * st) / pitch)
            s_hi = math.floor((pos + 4.0 * st) / pitch) + 1
            for s in range(max(s_lo, 0), min(s_hi, n_strips)):
                fs = _gauss_fraction(s * pitch, (s + 1) * pitch, pos, st)
                if fs <= 0.0:
                    continue
                qs = qv * fs
                touched[offset + s] = True
                for j in range(nt):
                    if tfrac[j] > 0.0:
                        charge[offset + s, k_lo + j] += qs * tfrac[j]
                        collected[view] += qs * tfrac[j]
    return collected
