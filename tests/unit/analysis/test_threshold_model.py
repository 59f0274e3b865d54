"""The purity fit's threshold model: a loss growing with drift time and falling with amplitude."""

from __future__ import annotations

import math

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
    """Truth-level hits with the loss the correction assumes (``c (rms / a)^p t``, a 4x
    exaggerated noise so that it shows on few events): the plain fit reads it as a shorter
    lifetime, the corrected one does not; without the columns nothing is corrected."""
    from farmtools.analysis.closure import truth_hits
    from farmtools.analysis.purity import purity
    from farmtools.emulator.settings import EmulatorSettings

    s = EmulatorSettings(lifetime_ms=7.0, gain=3.0, seed=1, crt_fraction=1.0)
    hits = truth_hits(s, 300, seed=11)
    loss = (3e-3, 1.3)
    hits["noise_rms"] = np.full(hits["view"].size, 6.0, dtype=np.float32)
    keys = hits["event"].astype(np.int64) * 2 + hits["view"]
    amp = track_median(keys, hits["amplitude"].astype(np.float64))
    t = hits["drift_us"].astype(np.float64)
    amp = amp * np.exp(-(t - track_median(keys, t)) / 7000.0)  # the pulses attenuate too
    kept = 1.0 - loss[0] * (6.0 / amp) ** loss[1] * t
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


def test_the_systematic_error_grows_with_the_noise_over_the_pulse_height() -> None:
    """The output quotes the correction's residual by noise-to-signal band; none when the
    correction is off or the hits carry no noise."""
    from farmtools.analysis.closure import truth_hits
    from farmtools.analysis.purity import (
        THRESHOLD_LOSS_6X6X6,
        THRESHOLD_SYSTEMATIC,
        purity,
        threshold_systematic,
    )
    from farmtools.emulator.settings import EmulatorSettings

    errs = [threshold_systematic(x) for x in (0.001, 0.03, 0.07, 0.5)]
    assert errs == sorted(errs) and errs[0] > 0
    assert errs[-1] == THRESHOLD_SYSTEMATIC[-1][1]
    # At short lifetimes the relative part takes over (1 ms: k = 1e-3 /us).
    assert threshold_systematic(0.07, 1e-3) == pytest.approx(THRESHOLD_SYSTEMATIC[1][2] * 1e-3)
    assert math.isnan(threshold_systematic(math.nan))
    hits = truth_hits(EmulatorSettings(lifetime_ms=7.0, gain=3.0, seed=1), 100, seed=3)
    assert math.isnan(purity(hits, bootstrap=0).k_systematic)  # no noise column: unknown
    for rms in (1.5, 4.5):
        hits["noise_rms"] = np.full(hits["view"].size, rms, dtype=np.float32)
        res = purity(hits, bootstrap=0)
        assert res.k_systematic == threshold_systematic(res.noise_to_signal, res.combined.k_per_us)
        assert res.to_json()["k_systematic"] == res.k_systematic
    assert res.noise_to_signal > 0.02  # 4.5 ADC on a G = 3 pulse
    assert res.systematic == "calibrated"
    off = purity(hits, bootstrap=0, threshold_loss=(0.0, 0.0))
    assert math.isnan(off.k_systematic) and off.systematic == "correction off"
    # the 6x6x6's constants have no systematic table: none quoted, and said so
    pddp = purity(hits, bootstrap=0, threshold_loss=THRESHOLD_LOSS_6X6X6)
    assert math.isnan(pddp.k_systematic) and pddp.systematic == "not calibrated"
    assert pddp.to_json()["systematic"] == "not calibrated"


def test_each_detector_gets_the_threshold_loss_calibrated_on_its_drift() -> None:
    from farmtools.analysis.gain import MIP_MPV_REF, MIP_TM_REF
    from farmtools.analysis.pipeline import gain_refs, threshold_loss
    from farmtools.analysis.purity import THRESHOLD_LOSS, THRESHOLD_LOSS_6X6X6
    from farmtools.detector import geometry

    assert threshold_loss(geometry("3x1x1")) == THRESHOLD_LOSS
    assert threshold_loss(geometry("6x6x6-full")) == THRESHOLD_LOSS_6X6X6
    # the 6x6x6's is smaller: the 3x1x1's over-corrected its 3.7 ms by +4 % on tau
    assert 0 < THRESHOLD_LOSS_6X6X6[0] < THRESHOLD_LOSS[0]
    # and its gain references: the 3x1x1's raised by the 6x6x6's longer diffusion
    assert gain_refs(geometry("3x1x1")) == (MIP_TM_REF, MIP_MPV_REF)
    tm, mp = gain_refs(geometry("6x6x6-full"))
    assert all(
        1.0 < a / b < 1.05 for a, b in zip((*tm, *mp), (*MIP_TM_REF, *MIP_MPV_REF), strict=True)
    )


def _muons(n: int, wrong: int, shift_us: float, tau_us: float = 3000.0) -> dict[str, np.ndarray]:
    """Hits of ``n`` muons crossing 0..3600 us of drift, the last ``wrong`` with their drift
    times shifted by ``shift_us`` (timed by another particle's flash)."""
    rng = np.random.default_rng(7)
    per = 240
    t = np.tile(np.linspace(10.0, 3590.0, per), n)
    muon = np.repeat(np.arange(n), per)
    q = 10.0 * np.exp(-t / tau_us) * rng.gamma(20.0, 1 / 20.0, t.size)
    drift = np.where(muon >= n - wrong, t + shift_us, t)
    return {
        "event": muon.astype(np.int32),
        "track": np.zeros(t.size, dtype=np.int16),
        "view": (np.arange(t.size) % 2).astype(np.int8),
        "channel": np.tile(np.arange(per) // 2, n).astype(np.int16),
        "drift_us": drift.astype(np.float32),
        "dqds": q.astype(np.float32),
        "ds": np.full(t.size, 0.4, dtype=np.float32),
        "edge": np.zeros(t.size, dtype=bool),
        "lem": np.ones(t.size, dtype=np.int8),
        "trk_crossing": np.ones(t.size, dtype=bool),
        "trk_matched": np.ones(t.size, dtype=bool),
        "trk_length3d": np.full(t.size, 300.0, dtype=np.float32),
    }


def test_muons_with_a_wrong_t0_are_left_out_by_their_charge() -> None:
    from farmtools.analysis.purity import MAX_MUON_OFFSET, muon_offsets, purity

    kw = {"max_drift_us": 3696.0, "threshold_loss": (0.0, 0.0), "bootstrap": 0}
    hits = _muons(200, 8, 1200.0)
    plain = purity(hits, **kw).combined  # type: ignore[arg-type]
    cut = purity(hits, max_muon_offset=MAX_MUON_OFFSET, **kw).combined  # type: ignore[arg-type]
    clean = purity(_muons(192, 0, 0.0), **kw).combined  # type: ignore[arg-type]
    assert plain.tau_us > 1.008 * clean.tau_us  # 4 % of the muons 1.2 ms off: tau too long
    assert abs(cut.tau_us / clean.tau_us - 1) < 0.005
    offsets = muon_offsets(hits, 1 / 3000.0)
    assert np.all(offsets[hits["event"] >= 192] > 0.3)
    assert np.all(np.abs(offsets[hits["event"] < 192]) < 0.1)
