"""The purity fit's threshold model: a loss growing with drift time and falling with amplitude."""

from __future__ import annotations

import numpy as np
import pytest

from farmtools.analysis.purity import (
    binned_points,
    fit_exponential,
    threshold_points,
    track_median,
)


def _samples(beta: float, k: float, n: int = 60000, seed: int = 1) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 594, n)
    amp = np.repeat(rng.uniform(15, 120, n // 20), 20)  # one amplitude per "track" of 20
    q = 10 * np.exp(-k * t) * (1 - beta * t / amp) * rng.normal(1, 0.05, n)
    return t, q, amp


def test_fit_recovers_k_under_a_threshold_loss_that_biases_the_plain_fit() -> None:
    k_true = 1 / 7000
    t, q, amp = _samples(beta=0.002, k=k_true)
    pts = threshold_points(t, q, amp, "tm", 66.0)
    assert len(pts) == 3 and all("loss" in p for p in pts)
    k, k_err, chi2 = fit_exponential(pts)
    assert abs(k - k_true) < 3 * k_err, (k, k_err)
    assert chi2 < 3
    # the plain fit of the same samples reads the loss as attenuation
    k_plain, k_plain_err, _ = fit_exponential([binned_points(t, q, "tm", 66.0)])
    assert k_plain - k_true > 10 * k_plain_err


def test_without_loss_the_model_is_unbiased_but_costs_precision() -> None:
    k_true = 1 / 3000
    t, q, amp = _samples(beta=0.0, k=k_true, seed=2)
    k, k_err, _ = fit_exponential(threshold_points(t, q, amp, "tm", 66.0))
    k_plain, k_plain_err, _ = fit_exponential([binned_points(t, q, "tm", 66.0)])
    assert abs(k - k_true) < 3 * k_err and abs(k_plain - k_true) < 3 * k_plain_err
    assert k_err > k_plain_err


def test_track_median_is_per_track() -> None:
    keys = np.array([3, 1, 3, 1, 3, 2], dtype=np.int64)
    values = np.array([5.0, 1.0, 1.0, 3.0, 2.0, 7.0])
    assert track_median(keys, values).tolist() == pytest.approx([2.0, 2.0, 2.0, 2.0, 2.0, 7.0])


def test_threshold_correction_undoes_a_loss_of_the_calibrated_form() -> None:
    """Truth-level hits with the loss the correction assumes (``loss * rms * t / a``, a 4x
    exaggerated noise so that it shows on few events): the plain fit reads it as a shorter
    lifetime, the corrected one does not; without the columns nothing is corrected."""
    from farmtools.analysis.closure import truth_hits
    from farmtools.analysis.purity import purity
    from farmtools.emulator.settings import EmulatorSettings

    s = EmulatorSettings(lifetime_ms=7.0, gain=3.0, seed=1, crt_fraction=1.0)
    hits = truth_hits(s, 300, seed=11)
    loss = (1e-3, 2e-4)
    hits["noise_rms"] = np.full(hits["view"].size, 6.0, dtype=np.float32)
    keys = hits["event"].astype(np.int64) * 2 + hits["view"]
    amp = track_median(keys, hits["amplitude"].astype(np.float64))
    t = hits["drift_us"].astype(np.float64)
    amp = amp * np.exp(-(t - track_median(keys, t)) / 7000.0)  # the pulses attenuate too
    kept = 1.0 - (loss[0] + loss[1] * 6.0) * 6.0 * t / amp
    lossy = dict(hits, dqds=(hits["dqds"] * kept).astype(np.float32))
    k_true = 1 / 7000.0
    clean = purity(hits, bootstrap=0, threshold_loss=(0.0, 0.0)).combined
    plain = purity(lossy, bootstrap=0, threshold_loss=(0.0, 0.0)).combined
    fixed = purity(lossy, bootstrap=0, threshold_loss=loss).combined
    assert plain.k_per_us - clean.k_per_us > 5 * plain.k_error  # the loss, read as attenuation
    assert fixed.k_per_us == pytest.approx(clean.k_per_us, abs=0.3 * fixed.k_error)
    assert abs(fixed.k_per_us - k_true) < 3 * fixed.k_error
    without = {k: v for k, v in lossy.items() if k != "noise_rms"}
    assert purity(without, bootstrap=0, threshold_loss=loss).combined.k_per_us == plain.k_per_us
