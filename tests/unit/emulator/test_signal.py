"""Shaping, ADC scale, pedestals and the noise model (white, coherent per 32 DAQ channels)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from farmtools.detector import WA105_3X1X1 as G
from farmtools.emulator.event import EventGenerator
from farmtools.emulator.settings import BASELINE, EmulatorSettings
from farmtools.emulator.signal import NoiseModel, shaping_kernel


def test_kernel_has_unit_area_and_peaks_near_1_us() -> None:
    k = shaping_kernel(G, 1.0)
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    assert abs(np.argmax(k) * G.tick_us + 0.5 * G.tick_us - 1.0) <= G.tick_us
    assert (k >= 0).all() and k[-1] < 1e-5 * k.max()


def test_charge_sum_of_isolated_deposit_is_adc_per_fc_times_q() -> None:
    """sum(ADC * ticks) = C_view * Q for an isolated deposit, in each view."""
    gen = EventGenerator(G, EmulatorSettings(seed=1), np.random.default_rng(1))
    charge = np.zeros((G.n_channels, G.samples), dtype=np.float32)
    charge[17, 500] = 31.0  # fC on a view-0 strip
    charge[900, 800] = 12.5  # fC on a view-1 strip
    sig = gen.signal(charge)
    assert sig[17].sum() == pytest.approx(55.0 * 31.0, rel=1e-5)
    assert sig[900].sum() == pytest.approx(67.0 * 12.5, rel=1e-5)
    assert np.count_nonzero(sig.sum(axis=1)) == 2
    # Response starts at the arrival tick and peaks about 1 us (2.5 ticks) later.
    assert sig[17, :500].sum() == 0 and 501 <= int(np.argmax(sig[17])) <= 503

    # Digitised without noise: pedestal-subtracted sum equals the same, up to rounding.
    quiet = dataclasses.replace(
        EmulatorSettings(),
        white_noise_adc=(0.0, 0.0),
        coherent_noise_adc=0.0,
        baseline_drift_adc=0.0,
        pedestal_spread_adc=0.0,
    )
    gen_q = EventGenerator(G, quiet, np.random.default_rng(1))
    adc = gen_q.digitise(gen_q.signal(charge)).astype(np.float64) - 400.0
    assert adc[17].sum() == pytest.approx(55.0 * 31.0, abs=0.5 * 40)  # <= 0.5 ADC per kernel tick
    assert np.abs(adc[5]).max() == 0


def _noise_only(settings: EmulatorSettings, n_events: int = 3) -> np.ndarray:
    gen = EventGenerator(G, settings, np.random.default_rng(21))
    zero = np.zeros((G.n_channels, G.samples), dtype=np.float32)
    return np.stack([gen.digitise(zero).astype(np.float64) for _ in range(n_events)])


def test_noise_rms_pedestal_and_coherence() -> None:
    settings = dataclasses.replace(
        EmulatorSettings(),
        baseline_drift_adc=0.0,
        white_noise_adc=(1.5, 1.5),
        coherent_noise_adc=1.0,
    )
    ev = _noise_only(settings)
    ped = ev.mean(axis=2)
    assert ped.mean() == pytest.approx(400.0, abs=1.0)
    # Pedestal spread between channels ~5 ADC, fixed from event to event.
    assert ped[0].std() == pytest.approx(5.0, rel=0.15)
    assert np.abs(ped[0] - ped[1]).max() < 0.5
    x = ev - ped[:, :, None]
    rms = x.std(axis=2)
    # Quadrature sum of white 1.5 and coherent 1.0, plus rounding (1/12).
    assert rms.mean() == pytest.approx(np.sqrt(1.5**2 + 1.0**2 + 1 / 12), rel=0.03)
    # Correlation within a 32-channel DAQ group vs between groups.
    group = G.view_to_daq // 32
    c = np.corrcoef(x[0])
    same = group[:, None] == group[None, :]
    off_diag = ~np.eye(G.n_channels, dtype=bool)
    within = c[same & off_diag].mean()
    between = c[~same].mean()
    assert within == pytest.approx(1.0 / (1.5**2 + 1.0 + 1 / 12), abs=0.03)  # ~0.30
    assert abs(between) < 0.01
    # No coherent noise: no correlation anywhere (the noise bank's slices are independent).
    quiet = _noise_only(dataclasses.replace(settings, coherent_noise_adc=0.0), 1)[0]
    c0 = np.corrcoef(quiet - quiet.mean(axis=1, keepdims=True))
    assert abs(c0[same & off_diag].mean()) < 0.01
    # White noise is Gaussian: kurtosis of a Gaussian is 3.
    z = (quiet - quiet.mean(axis=1, keepdims=True)) / quiet.std(axis=1, keepdims=True)
    assert (z**4).mean() == pytest.approx(3.0, abs=0.1)


def test_noise_rms_range_and_baseline_drift() -> None:
    settings = dataclasses.replace(
        EmulatorSettings(), coherent_noise_adc=0.0, baseline_drift_adc=0.0
    )
    white = _noise_only(settings, 1)[0]
    rms = white.std(axis=1)
    assert rms.min() > 0.95 and rms.max() < 2.1  # white noise 1-2 ADC per channel
    drifting = _noise_only(dataclasses.replace(settings, baseline_drift_adc=3.0), 1)[0]
    # A slow drift moves the first and last 100 ticks' means apart; white noise alone does not.
    d_white = np.abs(white[:, :100].mean(axis=1) - white[:, -100:].mean(axis=1)).mean()
    d_drift = np.abs(drifting[:, :100].mean(axis=1) - drifting[:, -100:].mean(axis=1)).mean()
    assert d_drift > 3 * d_white


def test_clipping_to_12_bits() -> None:
    gen = EventGenerator(G, EmulatorSettings(), np.random.default_rng(2))
    sig = np.zeros((G.n_channels, G.samples), dtype=np.float32)
    sig[3, 10:20] = 10_000.0
    sig[4, 10:20] = -10_000.0
    adc = gen.digitise(sig)
    assert adc.dtype == np.uint16 and adc.max() == 4095 and adc.min() == 0
    assert (adc[3, 10:20] == 4095).all() and (adc[4, 10:20] == 0).all()


def test_noise_model_groups_are_daq_card_halves() -> None:
    # Without defects: a defect model adds a group of its own for the dead channels.
    nm = NoiseModel.build(G, EmulatorSettings(**BASELINE), np.random.default_rng(0))  # type: ignore[arg-type]
    assert nm.n_groups == 40
    counts = np.bincount(nm.group)
    assert (counts == 32).all()
