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

Beyond the straight line (:class:`TrackPhysics`, switches of the settings; docs/emulator.md):

* **Multiple scattering**: the steps wander around the straight line by a Gaussian random walk
  of the direction in two transverse planes, with the Highland width ``theta0`` of the whole
  track (PDG: 13.6 MeV / (beta c p) sqrt(L/X0) (1 + 0.038 ln(L/X0)), X0 = 14 cm): about
  10 mrad and 0.6 cm of lateral RMS at the end of 1 m for 4 GeV.  The truth's entry and exit
  stay those of the straight line.
* **Delta rays**: knock-on electrons with a kinetic energy above the step table's cut (the
  energy a single 0.5 mm step can lose, ~2.6 MeV: below it they are part of the step's Landau
  loss) are separate short tracks: Poisson in number along the track (``xi/L (1/T_cut -
  1/T_max)``, ~2 per metre), energy from ``1/T^2``, angle from the two-body kinematics
  (``cos theta = sqrt(T (T_max + 2 m) / (T_max (T + 2 m)))``), straight, with the electron's
  CSDA range (``0.530 T - 0.106`` g/cm2) and a uniform dE/dx, cut at one radiation length (the
  rest of a very energetic one leaves as bremsstrahlung, not emulated).  They add ~0.3 MeV/cm
  to the mean, almost all in rare large losses that the analyses' truncated means drop.
* **Stopping muons** (:attr:`Track.stops`): the exit is where the muon stops; the loss rises
  towards it as the muon's mean dE/dx at residual range ``r``: ``8.0 r^-0.37`` MeV/cm where
  that exceeds the MIP value (the Bragg rise of the last ~35 cm), and the recombination
  follows that dE/dx.  No Michel electron.

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


#: Radiation length of liquid argon (cm) [PDG].
X0_LAR_CM = 14.0
_ME_MEV = _ME_EV * 1e-6
#: Mean dE/dx of a muon at residual range r (cm): A r^B MeV/cm (fit to the CSDA tables for
#: muons in argon), used where it exceeds the MIP value, i.e. over the last ~35 cm.
BRAGG_A, BRAGG_B = 8.0, -0.37


@dataclass(frozen=True)
class TrackPhysics:
    """What the emulator adds to a straight Landau-losing line (module doc); all off: the line."""

    delta_rays: bool = False
    multiple_scattering: bool = False
    #: The stream these extras draw from; None: the track's own.  The event generator gives
    #: them one of their own, so that switching them on leaves every other draw (muons, losses,
    #: noise) of a seed as it was.
    rng: np.random.Generator | None = None


def highland_theta0(length_cm: float, energy_gev: float = MUON_ENERGY_GEV) -> float:
    """RMS plane scattering angle (rad) of a muon of ``energy_gev`` over ``length_cm`` of LAr."""
    if length_cm <= 0:
        return 0.0
    p_mev = 1e3 * math.sqrt(energy_gev**2 - _MMU_GEV**2)
    beta = p_mev / (1e3 * energy_gev)
    x = length_cm / X0_LAR_CM
    return 13.6 / (beta * p_mev) * math.sqrt(x) * max(1.0 + 0.038 * math.log(x), 0.0)


def _transverse_basis(direction: npt.NDArray[np.float64]) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to ``direction`` and to each other."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(direction[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(direction, helper)
    u /= np.linalg.norm(u)
    return u, np.cross(direction, u)


def scatter_offsets(
    direction: npt.NDArray[np.float64],
    lengths: npt.NDArray[np.float64],
    rng: np.random.Generator,
    energy_gev: float = MUON_ENERGY_GEV,
) -> npt.NDArray[np.float64]:
    """Per step, the (n, 3) displacement from the straight line by multiple scattering.

    The direction random-walks in two transverse planes with a variance per step proportional
    to its length, summing to the Highland ``theta0`` of the whole track; the displacement is
    the integral of the angle over the path (step midpoints).
    """
    total = float(lengths.sum())
    theta0 = highland_theta0(total, energy_gev)
    if theta0 <= 0.0 or lengths.size == 0:
        return np.zeros((lengths.size, 3))
    sigma = theta0 * np.sqrt(lengths / total)
    u, v = _transverse_basis(direction)
    out = np.zeros((lengths.size, 3))
    for axis in (u, v):
        angle = np.cumsum(rng.normal(0.0, 1.0, lengths.size) * sigma)
        # Angle after each step; the midpoint of step i moved by the angles before it.
        before = np.concatenate([[0.0], angle[:-1]])
        offset = np.cumsum(before * lengths) - before * lengths + 0.5 * before * lengths
        out += offset[:, None] * axis[None, :]
    return out


def delta_ray_max_mev(energy_gev: float = MUON_ENERGY_GEV) -> float:
    """Largest kinetic energy a muon of ``energy_gev`` gives an electron (MeV, PDG)."""
    gamma = energy_gev / _MMU_GEV
    bg2 = gamma**2 - 1.0
    r = _ME_MEV / (_MMU_GEV * 1e3)
    return 2 * _ME_MEV * bg2 / (1 + 2 * gamma * r + r * r)


def electron_range_cm(t_mev: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """CSDA range of electrons in LAr (cm): ``0.530 T - 0.106`` g/cm2 above 2.5 MeV (Katz and
    Penfold), ``0.412 T^(1.265 - 0.0954 ln T)`` below."""
    t = np.maximum(t_mev, 1e-3)
    low = 0.412 * t ** (1.265 - 0.0954 * np.log(t))
    return np.where(t > 2.5, 0.530 * t - 0.106, low) / _RHO


def _inside_length(p: np.ndarray, d: np.ndarray, hi: tuple[float, float, float]) -> float:
    """Distance from ``p`` (inside the box 0..hi) along unit ``d`` to the box's wall."""
    s = math.inf
    for axis in range(3):
        if d[axis] > 0:
            s = min(s, (hi[axis] - p[axis]) / d[axis])
        elif d[axis] < 0:
            s = min(s, -p[axis] / d[axis])
    return max(s, 0.0)


def delta_ray_steps(
    track: Track,
    rng: np.random.Generator,
    box: tuple[float, float, float],
    t_cut_mev: float,
    step_cm: float = STEP_CM,
) -> tuple[int, npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The knock-on electrons of ``track`` above ``t_cut_mev`` (module doc): their number, and
    the midpoints (n, 3), energy deposits (MeV) and dE/dx (MeV/cm) of their steps inside the
    box."""
    none = (0, np.zeros((0, 3)), np.zeros(0), np.zeros(0))
    t_max = delta_ray_max_mev()
    if t_max <= t_cut_mev or track.length_cm <= 0:
        return none
    xi_per_cm, _ = landau_parameters(1.0)
    mean = xi_per_cm * track.length_cm * (1.0 / t_cut_mev - 1.0 / t_max)
    n = int(rng.poisson(mean))
    if n == 0:
        return none
    s = rng.uniform(0.0, track.length_cm, n)
    t = 1.0 / (1.0 / t_cut_mev - rng.random(n) * (1.0 / t_cut_mev - 1.0 / t_max))
    cos_t = np.sqrt(t * (t_max + 2 * _ME_MEV) / (t_max * (t + 2 * _ME_MEV)))
    sin_t = np.sqrt(np.clip(1.0 - cos_t**2, 0.0, None))
    phi = rng.uniform(0.0, 2 * math.pi, n)
    d_mu = np.asarray(track.direction)
    u, v = _transverse_basis(d_mu)
    dirs = (
        cos_t[:, None] * d_mu[None, :]
        + (sin_t * np.cos(phi))[:, None] * u[None, :]
        + (sin_t * np.sin(phi))[:, None] * v[None, :]
    )
    rng_cm = electron_range_cm(t)
    length = np.minimum(rng_cm, X0_LAR_CM)
    # Beyond one radiation length the rest leaves as photons: deposit T * length / range.
    deposit = t * length / rng_cm
    starts = np.asarray(track.entry)[None, :] + s[:, None] * d_mu[None, :]
    xyz, de, dedx = [], [], []
    for i in range(n):
        inside = min(float(length[i]), _inside_length(starts[i], dirs[i], box))
        m = max(math.ceil(inside / step_cm), 1)
        mid = (np.arange(m) + 0.5) * (inside / m)
        xyz.append(starts[i][None, :] + mid[:, None] * dirs[i][None, :])
        de.append(np.full(m, deposit[i] / length[i] * inside / m))
        dedx.append(np.full(m, deposit[i] / length[i]))
    return n, np.concatenate(xyz), np.concatenate(de), np.concatenate(dedx)


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


def _step_lengths(length: float, step_cm: float) -> npt.NDArray[np.float64]:
    """Steps of ``step_cm`` along a path of ``length`` cm, the last one shorter."""
    n_full = int(length // step_cm)
    lengths = np.full(n_full, step_cm)
    rest = length - n_full * step_cm
    return np.append(lengths, rest) if rest > 1e-9 else lengths


def steps_of(
    track: Track,
    rng: np.random.Generator,
    field_kv_per_cm: float,
    step_cm: float = STEP_CM,
    local_recombination: bool = False,
    scatter_rng: np.random.Generator | None = None,
) -> Steps:
    """Cut ``track`` into steps of ``step_cm`` (the last one shorter) and ionise them.

    ``scatter_rng`` (if given) moves the steps off the straight line by multiple scattering
    (:func:`scatter_offsets`); a track that :attr:`~farmtools.emulator.muons.Track.stops` gets
    the Bragg rise of its loss.
    """
    length = track.length_cm
    lengths = _step_lengths(length, step_cm)
    s_mid = np.cumsum(lengths) - 0.5 * lengths
    entry = np.asarray(track.entry)
    direction = np.asarray(track.direction)
    xyz = entry[None, :] + s_mid[:, None] * direction[None, :]
    if scatter_rng is not None:
        xyz = xyz + scatter_offsets(direction, lengths, scatter_rng)
    loss = landau_loss(step_cm)
    # A short last step has its loss scaled (its Landau would be different; negligible).
    de = loss.sample(rng, len(lengths)) * (lengths / step_cm)
    if track.stops and track.unstopped_length_cm > length:
        # the draws of the path beyond the stop, discarded (Track.unstopped_length_cm)
        rng.random(_step_lengths(track.unstopped_length_cm, step_cm).size - lengths.size)
    mean_dedx = np.full_like(de, loss.mean_dedx)
    if track.stops:
        residual = np.maximum(length - s_mid, 1e-3)
        mean_dedx = np.maximum(BRAGG_A * residual**BRAGG_B, loss.mean_dedx)
        de = de * (mean_dedx / loss.mean_dedx)
    if local_recombination:
        dedx = np.divide(de, lengths, out=np.zeros_like(de), where=lengths > 0)
        r = recombination(dedx, field_kv_per_cm)
    else:
        r = recombination(mean_dedx, field_kv_per_cm)
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
    #: Delta rays emitted as separate tracks, and the energy they deposited (included in
    #: ``energy_mev``, ``ionised_fc`` and ``collected_fc``).
    delta_rays: int = 0
    delta_energy_mev: float = 0.0
    #: The part of ``collected_fc`` that came from the delta rays, per view.
    delta_collected_fc: tuple[float, float] = (0.0, 0.0)


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
    physics: TrackPhysics = TrackPhysics(),
) -> TrackCharge:
    """Add the charge of ``track`` to ``charge`` (fC, shape (n_channels, samples), view order).

    ``touched`` (optional, one flag per channel) is set for every channel that got charge.
    ``physics``: multiple scattering and delta rays (module doc); the default adds neither.
    """
    field = geometry.drift_field_kv_per_cm
    steps = steps_of(
        track,
        rng,
        field,
        local_recombination=local_recombination,
        scatter_rng=(physics.rng or rng) if physics.multiple_scattering else None,
    )
    ex, ey = geometry.extent_cm
    box = (ex, ey, geometry.drift_length_cm)
    xyz, q0, de_total = steps.xyz, steps.q_fc, float(steps.de_mev.sum())
    n_delta, de_delta, delta_collected = 0, 0.0, (0.0, 0.0)
    if physics.delta_rays:
        n_delta, d_xyz, d_de, d_dedx = delta_ray_steps(
            track, physics.rng or rng, box, landau_loss().max_de_mev
        )
        if n_delta:
            if not local_recombination:
                d_dedx = np.full_like(d_de, landau_loss().mean_dedx)
            d_q = d_de * 1e6 / W_ION_EV * recombination(d_dedx, field) * ELECTRON_CHARGE_FC
            xyz, q0 = np.concatenate([xyz, d_xyz]), np.concatenate([q0, d_q])
            de_delta = float(d_de.sum())
    # Scattered steps may poke out of the volume by a fraction of a mm: keep them inside.
    xyz = np.clip(xyz, 0.0, np.asarray(box))
    v_cm_per_us = geometry.drift_velocity_mm_per_us * 0.1
    t_drift_us = xyz[:, 2] / v_cm_per_us
    q = q0 * np.exp(-t_drift_us / drift.lifetime_us)
    q = q * lem_gains(xyz, geometry, gains)
    t_s = t_drift_us * 1e-6
    sigma_t_cm = np.sqrt(2.0 * drift.diffusion_t_cm2_s * t_s)
    sigma_l_ticks = np.sqrt(2.0 * drift.diffusion_l_cm2_s * t_s) / (v_cm_per_us * geometry.tick_us)
    tick = (track.t0_us + t_drift_us) / geometry.tick_us
    shares = np.array([0.5 * (1.0 - asymmetry), 0.5 * (1.0 + asymmetry)])
    touched = touched if touched is not None else np.zeros(charge.shape[0], dtype=np.bool_)
    collected = np.zeros(2)
    n_muon = steps.q_fc.size
    for part in (slice(0, n_muon), slice(n_muon, None)):  # the muon, then its delta rays
        if q[part].size == 0:
            continue
        got = _spread(
            charge,
            xyz[part, 0].copy(),
            xyz[part, 1].copy(),
            tick[part].copy(),
            q[part].copy(),
            sigma_t_cm[part].copy(),
            sigma_l_ticks[part].copy(),
            shares,
            geometry.pitch_cm,
            geometry.channels_per_view[0],
            geometry.channels_per_view[1],
            touched,
        )
        if part.start:
            delta_collected = (float(got[0]), float(got[1]))
        collected += got
    return TrackCharge(
        energy_mev=de_total + de_delta,
        ionised_fc=float(q0.sum()),
        collected_fc=(float(collected[0]), float(collected[1])),
        delta_rays=n_delta,
        delta_energy_mev=de_delta,
        delta_collected_fc=delta_collected,
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
