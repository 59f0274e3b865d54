"""From charge on the strips to 12-bit ADC samples: shaping, ADC scale, pedestals, noise, clipping.

* **Shaping** is a unit-area semi-Gaussian ``h(t) ~ t^2 exp(-t / tau)`` sampled at the ticks
  and normalised to sum 1, with its peak ``2 tau`` at ``peaking_us`` (1 us); charge arriving in
  tick ``k`` starts its response in tick ``k``, peaks 1 us later and has its centre of gravity
  ``3 tau`` = 1.5 us later.  So ``sum(ADC * ticks) = adc_per_fc[view] * Q`` exactly for a
  deposit whose response fits in the window (55 and 67 ADC*tick/fC for views 0 and 1).
* **Pedestal** per channel: ``pedestal_adc`` plus a fixed Gaussian spread per channel.
* **White noise** per channel and sample, RMS drawn per channel in ``white_noise_adc``.
* **Coherent noise**: one waveform per group of 32 *DAQ* channels (``daq // 32``, a card half),
  added to each channel of the group; channels of different groups are uncorrelated.
* **Baseline drift**: a slow sine per channel (period of milliseconds, random phase per event).
* Rounding to the nearest integer and clipping to ``0..4095``.

Realism switches (:class:`EmulatorSettings`, all off by default, docs/emulator.md): a fraction
of the noise generated before the shaping (the bank itself is then partly filtered by the
shaping kernel, so every slice is correlated over ~1 us), a per-channel electronics gain
spread, dead and noisy channels, and bad cards (64 DAQ channels at a constant).  The defective
channels are drawn from the settings' seed alone (:func:`detector_defects`): a property of the
detector, the same in every file, and never a draw from the event stream, so switching them on
leaves the muons of a seed unchanged.

Speed: 2.1 M Gaussian numbers per event would dominate; instead the noise is read from a bank
of 2^21 standard-normal float32 values drawn once per generator, each channel and each group
reading a contiguous slice at a fresh random offset with a random sign every event.  Slices of
different channels come from independent offsets, so the per-sample statistics (mean 0, RMS 1,
no correlation between channels) are those of fresh Gaussians (tested in
tests/unit/emulator/test_signal.py).

May import :mod:`farmtools.detector` and the emulator's settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from farmtools.detector import Geometry
from farmtools.emulator.settings import EmulatorSettings

NOISE_BANK_SIZE = 1 << 21


def shaping_kernel(
    geometry: Geometry, peaking_us: float = 1.0, length_ticks: int = 40
) -> npt.NDArray[np.float64]:
    """Unit-area response sampled at tick starts ``t = k * tick`` (k = 0..length-1), sum 1."""
    tau_ticks = peaking_us / geometry.tick_us / 2.0
    t = np.arange(length_ticks, dtype=np.float64) + 0.5
    h = t**2 * np.exp(-t / tau_ticks)
    return h / h.sum()


def response_delay_ticks(geometry: Geometry, peaking_us: float = 1.0) -> float:
    """Mean delay (ticks) of a hit's charge-weighted sample index after the charge's arrival time.

    Charge arriving at time ``t`` (in ticks, fractional) is binned into sample ``floor(t)`` and
    spread by the kernel; on average the centroid index is ``t + response_delay_ticks`` (2.74
    ticks = 1.10 us for 1 us peaking).  The reconstruction subtracts it to place hits in z.
    """
    k = shaping_kernel(geometry, peaking_us)
    return float((k * np.arange(k.size)).sum()) - 0.5


@numba.njit(cache=True)
def shape(charge: np.ndarray, kernel: np.ndarray, adc_per_fc: np.ndarray, out: np.ndarray) -> None:
    """``out[ch] += adc_per_fc[ch] * (charge[ch] (*) kernel)``, visiting only non-zero charge bins.

    The response of charge near the end of the window is cut at the last sample.
    """
    for c in range(charge.shape[0]):
        _shape_row(charge, kernel, adc_per_fc, out, c)


@numba.njit(cache=True, nogil=True)
def shape_rows(
    charge: np.ndarray,
    kernel: np.ndarray,
    adc_per_fc: np.ndarray,
    out: np.ndarray,
    rows: np.ndarray,
) -> None:
    """:func:`shape` for the listed channels only (the ones a track touched)."""
    for c in rows:
        _shape_row(charge, kernel, adc_per_fc, out, c)


@numba.njit(cache=True)
def _shape_row(
    charge: np.ndarray, kernel: np.ndarray, adc_per_fc: np.ndarray, out: np.ndarray, c: int
) -> None:
    n_s = charge.shape[1]
    nk = kernel.shape[0]
    scale = adc_per_fc[c]
    for k in range(n_s):
        q = charge[c, k]
        if q != 0.0:
            a = q * scale
            stop = min(nk, n_s - k)
            for j in range(stop):
                out[c, k + j] += a * kernel[j]


@numba.njit(cache=True, fastmath=True, nogil=True)
def digitise(
    signal: np.ndarray,
    pedestal: np.ndarray,
    white_sigma: np.ndarray,
    group: np.ndarray,
    coherent: np.ndarray,
    drift_amp: np.ndarray,
    drift_omega: np.ndarray,
    drift_phase: np.ndarray,
    bank: np.ndarray,
    offsets: np.ndarray,
    signs: np.ndarray,
    adc_max: int,
    out: np.ndarray,
) -> None:
    """Add pedestal, noise and drift to ``signal`` (ADC) and write clipped uint16 to ``out``."""
    n_ch, n_s = signal.shape
    top = np.float32(adc_max)
    zero = np.float32(0.0)
    baseline = np.empty(n_s, np.float32)
    for c in range(n_ch):
        amp = drift_amp[c]
        w = drift_omega[c]
        ph = drift_phase[c]
        p = pedestal[c] + 0.5  # + 0.5: the uint16 conversion below truncates, so this rounds
        # The drift is slow: evaluate the sine every 16 ticks and interpolate linearly.
        for k0 in range(0, n_s, 16):
            k1 = min(k0 + 16, n_s)
            d0 = amp * math.sin(w * k0 + ph)
            d1 = amp * math.sin(w * k1 + ph)
            slope = (d1 - d0) / (k1 - k0)
            for k in range(k0, k1):
                baseline[k] = np.float32(p + d0 + slope * (k - k0))
        sgn = np.float32(signs[c] * white_sigma[c])
        noise = bank[offsets[c] : offsets[c] + n_s]
        coh = coherent[group[c]]
        sig = signal[c]
        row = out[c]
        # A simple loop over contiguous float32 rows that numba can vectorise.
        for k in range(n_s):
            v = baseline[k] + sig[k] + sgn * noise[k] + coh[k]
            row[k] = np.uint16(min(max(v, zero), top))


#: Channels of one DAQ card (two coherent-noise groups of 32).
CARD_CHANNELS = 64
#: White noise (ADC) of a dead channel: the ADC's own, without a preamplifier.
DEAD_NOISE_ADC = 0.2


@dataclass
class Defects:
    """Per view-order channel: electronics gain factor, dead, noisy, on a bad card."""

    gain: npt.NDArray[np.float32]
    dead: npt.NDArray[np.bool_]
    noisy: npt.NDArray[np.bool_]
    bad: npt.NDArray[np.bool_]
    bad_cards: int

    @property
    def any(self) -> bool:
        return bool(self.dead.any() or self.noisy.any() or self.bad.any() or np.any(self.gain != 1))


def detector_defects(
    geometry: Geometry, settings: EmulatorSettings, rng: np.random.Generator
) -> Defects:
    """The detector's defective channels and gain spread (see the module doc).

    Drawn from ``default_rng([seed, 0xDEF])`` when the settings have a seed (``rng``, the
    generator's, only without one and only when a switch is on).
    """
    n = geometry.n_channels
    on = (
        settings.channel_gain_spread > 0
        or settings.dead_channel_fraction > 0
        or settings.noisy_channel_fraction > 0
        or settings.bad_cards > 0
    )
    if not on:
        no = np.zeros(n, dtype=np.bool_)
        return Defects(np.ones(n, dtype=np.float32), no, no.copy(), no.copy(), 0)
    r = (
        np.random.default_rng([settings.seed, 0xDEF])
        if settings.seed is not None
        else np.random.default_rng(int(rng.integers(1 << 62)))
    )
    gain = (1.0 + settings.channel_gain_spread * r.standard_normal(n)).astype(np.float32)
    u = r.random(n)
    dead = u < settings.dead_channel_fraction
    noisy = (u >= settings.dead_channel_fraction) & (
        u < settings.dead_channel_fraction + settings.noisy_channel_fraction
    )
    cards = r.choice(n // CARD_CHANNELS, settings.bad_cards, replace=False)
    bad = np.isin(geometry.view_to_daq // CARD_CHANNELS, cards)
    return Defects(gain, dead & ~bad, noisy & ~bad, bad, int(settings.bad_cards))


def shaped_bank(
    bank: npt.NDArray[np.float32], kernel: npt.NDArray[np.float64], fraction: float
) -> npt.NDArray[np.float32]:
    """The noise bank with ``fraction`` of its variance passed through the shaping ``kernel``
    (renormalised to unit RMS): noise born before the shaper, correlated like the signal."""
    if fraction <= 0:
        return bank
    filtered = np.convolve(bank.astype(np.float64), kernel, mode="same")
    filtered /= filtered.std()
    rolled = np.roll(bank, bank.size // 2)  # independent of the white part at every sample
    mixed = math.sqrt(1.0 - fraction) * rolled + math.sqrt(fraction) * filtered
    return mixed.astype(np.float32)


@dataclass
class NoiseModel:
    """The fixed per-channel properties of the electronics and the noise bank of one generator."""

    pedestal: npt.NDArray[np.float32]
    white_sigma: npt.NDArray[np.float32]
    #: Coherent-noise group of each view-order channel: its DAQ channel // 32 (dead channels
    #: and bad cards: the extra, silent group ``n_groups - 1`` when there are defects).
    group: npt.NDArray[np.int64]
    n_groups: int
    bank: npt.NDArray[np.float32]
    defects: Defects | None = None

    @classmethod
    def build(
        cls, geometry: Geometry, settings: EmulatorSettings, rng: np.random.Generator
    ) -> NoiseModel:
        n = geometry.n_channels
        pedestal = (
            settings.pedestal_adc + settings.pedestal_spread_adc * rng.standard_normal(n)
        ).astype(np.float32)
        lo, hi = settings.white_noise_adc
        white = rng.uniform(lo, hi, n).astype(np.float32)
        group = (geometry.view_to_daq // geometry.coherent_group).astype(np.int64)
        n_groups = int(group.max()) + 1
        bank = rng.standard_normal(NOISE_BANK_SIZE, dtype=np.float32)
        if settings.shaped_noise_fraction > 0:
            kernel = shaping_kernel(geometry, settings.peaking_us)
            bank = shaped_bank(bank, kernel, settings.shaped_noise_fraction)
        defects = detector_defects(geometry, settings, rng)
        if not defects.any:
            return cls(pedestal, white, group, n_groups, bank)
        white[defects.noisy] *= np.float32(settings.noisy_factor)
        white[defects.dead | defects.bad] = np.float32(DEAD_NOISE_ADC)
        group[defects.dead | defects.bad] = n_groups  # a group whose coherent noise is 0
        return cls(pedestal, white, group, n_groups + 1, bank, defects)

    def digitise(
        self,
        signal: npt.NDArray[np.float32],
        geometry: Geometry,
        settings: EmulatorSettings,
        rng: np.random.Generator,
        out: npt.NDArray[np.uint16] | None = None,
    ) -> npt.NDArray[np.uint16]:
        """One event's ADC samples (view order) for the shaped ``signal`` in ADC (into ``out``,
        a C-contiguous (channels, samples) array, when given: no new 154 MB per 6x6x6 event)."""
        n, s = signal.shape
        span = NOISE_BANK_SIZE - s
        offsets = rng.integers(0, span, n)
        signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), n)
        # the silent group of dead channels and bad cards takes no draw: the event stream (and
        # so the next events' muons) is the same with the defects switched on
        n_real = self.n_groups - (1 if self.defects is not None else 0)
        g_off = rng.integers(0, span, n_real)
        g_sign = rng.choice(np.array([-1.0, 1.0]), n_real) * settings.coherent_noise_adc
        coherent = np.zeros((self.n_groups, s), dtype=np.float32)
        for g in range(n_real):
            coherent[g] = g_sign[g] * self.bank[g_off[g] : g_off[g] + s]
        d = self.defects
        if d is not None:
            signal = signal * d.gain[:, None]
            signal[d.dead | d.bad] = 0.0
        p_lo, p_hi = settings.baseline_drift_period_ms
        period_ticks = rng.uniform(p_lo, p_hi, n) * 1e3 / geometry.tick_us
        omega = np.asarray(2.0 * math.pi / period_ticks, dtype=np.float64)
        phase = np.asarray(rng.uniform(0.0, 2.0 * math.pi, n), dtype=np.float64)
        amp = np.full(n, settings.baseline_drift_adc, dtype=np.float64)
        if out is None:
            out = np.empty((n, s), dtype=np.uint16)
        digitise(
            signal,
            self.pedestal,
            self.white_sigma,
            self.group,
            coherent,
            amp,
            omega,
            phase,
            self.bank,
            offsets,
            signs.astype(np.float32),
            geometry.adc_max,
            out,
        )
        if d is not None and d.bad.any():
            out[d.bad] = np.round(self.pedestal[d.bad])[:, None].astype(np.uint16)
        return out
