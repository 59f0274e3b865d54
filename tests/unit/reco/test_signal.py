"""Pedestal, noise, coherent-noise removal and hit finding on synthetic waveforms."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from farmtools.detector import WA105_3X1X1 as G
from farmtools.emulator.daq import RunPlan, emulate_run
from farmtools.emulator.settings import EmulatorSettings
from farmtools.rawdata import RawFile
from farmtools.reco import signal
from farmtools.reco.signal import HIT_FIELDS, HitParams

COL = {name: i for i, name in enumerate(HIT_FIELDS)}


def _pulse(n: int, t0: float, area: float, sigma: float = 2.0) -> np.ndarray:
    """A Gaussian pulse of total area ``area`` (ADC*tick) centred at ``t0``."""
    t = np.arange(n)
    g = np.exp(-0.5 * ((t - t0) / sigma) ** 2)
    return area * g / g.sum()


def test_pedestal_and_rms_are_robust_to_a_pulse() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1.5, (4, 1667))
    ped_true = np.array([380.0, 400.0, 410.5, 395.25])
    wf = base + ped_true[:, None]
    wf[1] += _pulse(1667, 800, 5000, sigma=5)  # a big pulse must not move the median
    adc = np.clip(np.round(wf), 0, 4095).astype(np.uint16)
    ped, rms = signal.pedestal_and_rms(adc)
    assert np.allclose(ped, ped_true, atol=0.2)
    assert np.allclose(rms, 1.5, atol=0.15)


def test_pedestal_of_a_channel_a_track_covers_most_of_the_window() -> None:
    """A muon along a strip through most of the drift (issue 19's side muons): 75 % of the
    samples on its signal put the median 150 ADC high; the quiet samples' peak gives it."""
    rng = np.random.default_rng(3)
    wf = 405.0 + rng.normal(0, 1.5, (G.n_channels, G.samples))
    plateau = np.zeros(G.samples)
    plateau[300:1550] = 150.0 + 40.0 * rng.standard_gamma(2.0, 1250)  # Landau-like plateau
    wf[239] += np.convolve(plateau, np.ones(5) / 5, mode="same")
    wf[240] += 0.6 * plateau  # its neighbour: 75 % covered as well, lower
    adc = np.clip(np.round(wf), 0, 4095).astype(np.uint16)
    ped, rms = signal.pedestal_and_rms(adc)
    fused = signal.process_signal(adc, G)
    for c in (239, 240):
        assert np.median(adc[c]) > 480  # the plain median is on the signal
        assert abs(ped[c] - 405.0) < 1.0 and abs(fused.pedestal[c] - 405.0) < 1.0
        assert 1.2 < rms[c] < 2.5
    assert np.allclose(ped[:239], 405.0, atol=0.3)  # the others as before


def test_coherent_noise_is_removed_per_group_of_32() -> None:
    rng = np.random.default_rng(2)
    n_t = G.samples
    white = rng.normal(0, 1.0, (G.n_channels, n_t))
    groups = signal.daq_groups(G)
    assert groups.shape == (G.n_channels // 32, 32)
    assert np.array_equal(np.sort(groups.ravel()), np.arange(G.n_channels))
    coherent = rng.normal(0, 3.0, (groups.shape[0], n_t))
    wf = 400.0 + white
    for g, chans in enumerate(groups):
        wf[chans] += coherent[g]
    # a track-like pulse on a few channels of group 0 must survive the removal
    sig_ch = groups[0, :3]
    for c in sig_ch:
        wf[c] += _pulse(n_t, 500, 3000, sigma=3)
    adc = np.clip(np.round(wf), 0, 4095).astype(np.uint16)
    ped, rms_raw = signal.pedestal_and_rms(adc)
    assert np.median(rms_raw) > 2.5  # the coherent part dominates before
    out, rms = signal.subtract_noise(adc, G, ped, rms_raw)
    assert 0.9 < np.median(rms) < 1.2  # only the white noise is left
    for c in sig_ch:
        area = out[c, 480:520].sum()
        assert area == np.float32(area) and abs(area - 3000) < 100


def test_hits_charge_position_and_threshold() -> None:
    n_t = 1667
    rng = np.random.default_rng(3)
    wf = rng.normal(0, 1.0, (3, n_t)).astype(np.float32)
    wf[0] += _pulse(n_t, 300.0, 2000.0).astype(np.float32)
    wf[0] += _pulse(n_t, 900.0, 800.0).astype(np.float32)
    wf[2] += _pulse(n_t, 100.0, 10.0).astype(np.float32)  # below threshold: no hit
    rms = np.ones(3, dtype=np.float32)
    hits = signal.find_hits(wf, rms, HitParams())
    assert list(hits[:, COL["channel"]]) == [0, 0]
    assert np.allclose(hits[:, COL["tick"]], [300.0, 900.0], atol=0.3)
    assert np.allclose(hits[:, COL["adc_sum"]], [2000.0, 800.0], rtol=0.03)
    assert np.all(hits[:, COL["tick_end"]] - hits[:, COL["tick_start"]] + 1 >= 7)


def test_two_pulses_split_at_a_deep_minimum_and_charge_is_kept() -> None:
    n_t = 400
    wf = np.zeros((1, n_t), dtype=np.float32)
    wf[0] += _pulse(n_t, 100.0, 1000.0, sigma=3).astype(np.float32)
    wf[0] += _pulse(n_t, 125.0, 1500.0, sigma=3).astype(np.float32)
    hits = signal.find_hits(wf, np.ones(1, dtype=np.float32), HitParams())
    assert hits.shape[0] == 2
    assert np.allclose(hits[:, COL["adc_sum"]], [1000.0, 1500.0], rtol=0.03)
    # a dip that would leave a piece narrower than the minimum width does not split:
    # no charge is dropped with a too-narrow piece
    wf2 = np.zeros((1, n_t), dtype=np.float32)
    wf2[0, 100:140] = 50.0
    wf2[0, 103] = 20.0  # deep (30 RMS) but 4 ticks from the start
    hits2 = signal.find_hits(wf2, np.ones(1, dtype=np.float32), HitParams())
    assert hits2.shape[0] == 1
    assert hits2[0, COL["adc_sum"]] == wf2.sum()


def test_fused_signal_step_equals_the_three_steps_whatever_the_threads(tmp_path: Path) -> None:
    """process_signal (per group, in cache) against the reference chain, on emulated events.

    Bit for bit: pedestals, RMS after noise removal and every hit column, with and without a
    thread pool, for any cut of the groups into chunks, and from a DAQ-order array.
    """
    (info,) = emulate_run(
        tmp_path, EmulatorSettings(seed=11), RunPlan(run=3, events_per_file=2, compress=False)
    )
    with RawFile.open(info.path, G) as raw, ThreadPoolExecutor(2) as pool:
        for i in range(raw.n_events):
            adc = raw.event(i).adc
            ped, rms_raw = signal.pedestal_and_rms(adc)
            wf, rms = signal.subtract_noise(adc, G, ped, rms_raw)
            hits = signal.find_hits(wf, rms)
            assert hits.shape[0] > 50  # tracks, not only noise
            for kwargs in ({}, {"pool": pool, "chunks": 3}, {"pool": pool, "chunks": 40}):
                fused = signal.process_signal(adc, G, **kwargs)  # type: ignore[arg-type]
                assert np.array_equal(fused.pedestal, ped)
                assert np.array_equal(fused.rms, rms)
                assert np.array_equal(fused.hits, hits), kwargs
            # the reader's DAQ-order array (no gather into view order) gives the same result
            daq = signal.process_signal(adc[G.daq_to_view], G, daq_order=True)
            assert np.array_equal(daq.pedestal, ped) and np.array_equal(daq.rms, rms)
            assert np.array_equal(daq.hits, hits)


def test_block_skip_never_misses_a_sample_just_above_threshold() -> None:
    """A sample a float32 ulp above the float64 threshold is found wherever it sits in a block."""
    n_t = 100
    # 1.1 rounds *up* to float32: a mark against the rounded threshold would skip the
    # smallest float32 sample above it
    thr = 1.1
    above = np.float32(thr)
    assert float(above) > thr
    rms = np.ones(1, dtype=np.float32)
    params = HitParams(absolute_adc=thr, nsigma=100.0, min_width_ticks=1, max_extend_ticks=0)
    for pos in (0, 15, 16, 17, 95, 99):
        wf = np.zeros((1, n_t), dtype=np.float32)
        wf[0, pos] = above
        hits = signal.find_hits(wf, rms, params)
        assert hits.shape[0] == 1 and hits[0, COL["tick_peak"]] == pos


def test_fused_signal_step_equals_the_three_steps_on_synthetic_edge_cases() -> None:
    """Codes above 12 bits (counted in the last bin, as the reference does), pulses at both
    ends of the window, a channel without signal and one saturated: the same bit for bit."""
    geo = G.with_samples(203)  # not a whole number of 8-tick mark words
    rng = np.random.default_rng(7)
    adc = rng.normal(400.0, 1.5, (geo.n_channels, geo.samples))
    adc += rng.normal(0.0, 2.0, geo.samples)  # coherent noise, the same on every channel
    for c in range(0, geo.n_channels, 7):
        adc[c] += _pulse(geo.samples, float(rng.integers(0, geo.samples)), 900.0, 3.0)
    adc[5, :4] += 300.0  # a pulse cut by the start of the window
    adc[6, -3:] += 300.0  # and one by its end
    adc[9, 100] = 5000.0  # not a 12-bit code
    adc[11, : geo.samples * 3 // 4] = 5000.0  # most of a channel: its median in the last bin
    adc[10] = 4095.0
    codes = np.clip(np.rint(adc), 0, 65535).astype(np.uint16)
    ped, rms_raw = signal.pedestal_and_rms(codes)
    wf, rms = signal.subtract_noise(codes, geo, ped, rms_raw)
    hits = signal.find_hits(wf, rms)
    assert hits.shape[0] > 20
    fused = signal.process_signal(codes, geo)
    assert np.array_equal(fused.pedestal, ped)
    assert np.array_equal(fused.rms, rms)
    assert np.array_equal(fused.hits, hits)
