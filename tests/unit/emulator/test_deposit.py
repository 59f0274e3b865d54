"""Energy loss, recombination, attenuation, diffusion, gain and view split, with numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from farmtools.detector import WA105_3X1X1 as G
from farmtools.emulator.deposit import (
    DriftParams,
    deposit_track,
    landau_loss,
    landau_parameters,
    recombination,
)
from farmtools.emulator.muons import Track

NO_DRIFT_LOSS = DriftParams(lifetime_us=math.inf, diffusion_l_cm2_s=0.0, diffusion_t_cm2_s=0.0)


def uniform_gains(g: float) -> dict[int, float]:
    return dict.fromkeys(range(1, G.n_lems + 1), g)


def empty() -> np.ndarray:
    return np.zeros((G.n_channels, G.samples), dtype=np.float32)


def test_mean_dedx_is_2_1_mev_per_cm() -> None:
    loss = landau_loss()
    assert loss.mean_dedx == pytest.approx(2.1, rel=1e-6)
    de = loss.sample(np.random.default_rng(1), 1_000_000) / loss.step_cm
    # Sampling error of the mean of a heavy-tailed but truncated distribution.
    assert abs(de.mean() - 2.1) < 5 * de.std() / math.sqrt(de.size)
    # A Landau: the most probable loss is well below the mean, with a long tail above.
    hist, edges = np.histogram(de, bins=400, range=(0, 8))
    mode = edges[np.argmax(hist)]
    assert 1.3 < mode < 1.7 and np.median(de) < 2.0 and np.percentile(de, 99) > 4.0


def test_landau_mpv_for_a_strip_pitch() -> None:
    """The PDG most probable dE/dx of a 4 GeV muon over 3 mm of argon is about 1.7 MeV/cm."""
    _xi, delta_p = landau_parameters(G.pitch_cm)
    assert delta_p / G.pitch_cm == pytest.approx(1.70, abs=0.03)


def test_recombination_at_nominal_field() -> None:
    assert float(recombination(np.array(2.1), 0.5)) == pytest.approx(0.698, abs=5e-4)
    # Stronger field, less recombination.
    assert float(recombination(np.array(2.1), 0.75)) > 0.72


def _horizontal_x_track(y: float, z: float = 0.0) -> Track:
    return Track(entry=(0.0, y, z), exit=(100.0, y, z), t0_us=0.0, trigger=True)


@pytest.mark.parametrize("asymmetry", [0.0, 0.2])
def test_mip_charge_per_strip_is_1_56_g(asymmetry: float) -> None:
    """A MIP crossing one strip per view: ~1.56*G fC (A = 0), split 0.5(1-A) / 0.5(1+A)."""
    gain = 20.0
    rng = np.random.default_rng(7)
    per_strip: list[np.ndarray] = []
    view1 = []
    for i in range(6):
        q = empty()
        y = (100 + 3 * i + 0.5) * G.pitch_cm  # the middle of one view-1 strip
        truth = deposit_track(
            q, _horizontal_x_track(y), rng, G, NO_DRIFT_LOSS, uniform_gains(gain), asymmetry
        )
        per_strip.append(q[:320].sum(axis=1))
        view1.append(q[320:].sum())
        assert truth.collected_fc[0] == pytest.approx(q[:320].sum(), rel=1e-4)
        # View 1 sees the whole track on its one strip.
        assert np.count_nonzero(q[320:].sum(axis=1)) == 1
    strips = np.concatenate(per_strip)
    # Both views: 9.95 fC/cm x 3.125 mm x G; each view 1.56*G fC (31 fC at G = 20) when A = 0.
    expected_total = 2.1 * 0.698 / 23.6e-6 * 1.602176634e-4 * G.pitch_cm * gain
    assert expected_total / 2 == pytest.approx(1.56 * gain, rel=0.01)
    assert strips.mean() == pytest.approx(0.5 * (1 - asymmetry) * expected_total, rel=0.04)
    track_total = 100.0 / G.pitch_cm * expected_total
    assert np.mean(view1) == pytest.approx(0.5 * (1 + asymmetry) * track_total, rel=0.04)


def test_attenuation_over_full_drift_is_8_5_percent() -> None:
    """Same steps (same random stream), lifetime 7 ms against pure argon: ratio exp(-t/tau)."""
    vertical = Track(entry=(50.1, 150.1, 0.0), exit=(50.1, 150.1, 100.0), t0_us=0.0, trigger=True)
    charges = []
    for tau in (7000.0, math.inf):
        q = empty()
        deposit_track(
            q,
            vertical,
            np.random.default_rng(9),
            G,
            DriftParams(lifetime_us=tau, diffusion_l_cm2_s=0.0, diffusion_t_cm2_s=0.0),
            uniform_gains(1.0),
            0.0,
        )
        charges.append(q[:320].sum(axis=0))
    with_loss, pure = charges
    full = int(G.full_drift_ticks)  # 1557: charge from just above the cathode
    ratio = with_loss[full - 3 : full].sum() / pure[full - 3 : full].sum()
    assert 1 - ratio == pytest.approx(1 - math.exp(-623.0 / 7000.0), abs=0.002)
    assert 1 - ratio == pytest.approx(0.085, abs=0.003)
    # Near the anode there is no loss.
    assert with_loss[:3].sum() / pure[:3].sum() == pytest.approx(1.0, abs=1e-3)
    # The track spans the full drift: charge arrives from tick 0 to tick 1557.
    nz = np.flatnonzero(pure)
    assert nz[0] == 0 and abs(nz[-1] - G.full_drift_ticks) < 1.5


def test_transverse_diffusion_at_full_drift() -> None:
    """A point deposit at the cathode spreads with sigma_T = sqrt(2 D_T t) ~ 1.27 mm."""
    track = Track(entry=(50.0, 150.0, 99.9), exit=(50.0, 150.0, 100.0), t0_us=0.0, trigger=True)
    q = empty()
    deposit_track(
        q,
        track,
        np.random.default_rng(2),
        G,
        DriftParams(math.inf, 4.0, 13.0),
        uniform_gains(1.0),
        0.0,
    )
    prof = q[:320].sum(axis=1).astype(np.float64)
    centres = (np.arange(320) + 0.5) * G.pitch_cm
    mean = (prof * centres).sum() / prof.sum()
    var = (prof * (centres - mean) ** 2).sum() / prof.sum()
    sigma_expected = math.sqrt(2 * 13.0 * 100.0 / 0.16056 * 1e-6)
    assert sigma_expected == pytest.approx(0.127, abs=0.002)
    # Binning into 3.125 mm strips adds pitch^2/12 (Sheppard).
    assert math.sqrt(var - G.pitch_cm**2 / 12) == pytest.approx(sigma_expected, rel=0.1)
    assert mean == pytest.approx(50.0, abs=0.01)


def test_gain_per_lem_follows_the_map() -> None:
    """A track along y at x = 25 cm crosses LEMs 1, 3, ..., 11; each cell gets its own gain."""
    gains = {lem: float(lem) for lem in range(1, 13)}
    track = Track(entry=(25.1, 0.0, 0.0), exit=(25.1, 300.0, 0.0), t0_us=0.0, trigger=True)
    q_map, q_one = empty(), empty()
    deposit_track(q_map, track, np.random.default_rng(4), G, NO_DRIFT_LOSS, gains, 0.0)
    deposit_track(q_one, track, np.random.default_rng(4), G, NO_DRIFT_LOSS, uniform_gains(1.0), 0.0)
    s_map = q_map[320:].sum(axis=1)
    s_one = q_one[320:].sum(axis=1)
    for iy in range(6):
        lem = G.lem_number(25.1, iy * 50 + 25)
        assert lem == 1 + 2 * iy
        cell = slice(iy * 160 + 1, (iy + 1) * 160 - 1)  # strips well inside the cell
        assert s_map[cell].sum() / s_one[cell].sum() == pytest.approx(gains[lem], rel=1e-4)


def test_local_recombination_lowers_the_mean_charge() -> None:
    """Birks with each step's dE/dx: high-loss steps recombine more, so the mean charge drops."""
    track = _horizontal_x_track(150.1)
    totals = []
    for local in (False, True):
        q = empty()
        deposit_track(
            q,
            track,
            np.random.default_rng(8),
            G,
            NO_DRIFT_LOSS,
            uniform_gains(1.0),
            0.0,
            local_recombination=local,
        )
        totals.append(q.sum() / 100.0)  # fC/cm, both views
    mip, local = totals
    assert mip == pytest.approx(9.95, rel=0.05)
    assert 0.9 < local / mip < 0.97
