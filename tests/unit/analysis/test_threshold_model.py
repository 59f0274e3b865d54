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
