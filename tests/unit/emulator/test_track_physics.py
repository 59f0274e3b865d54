"""The track physics beyond the straight Landau line: multiple scattering, delta rays as separate
short tracks, stopping muons (each a switch of the settings)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from farmtools.detector import WA105_3X1X1 as G
from farmtools.emulator.deposit import (
    DriftParams,
    TrackPhysics,
    delta_ray_max_mev,
    delta_ray_steps,
    deposit_track,
    highland_theta0,
    landau_loss,
    landau_parameters,
    scatter_offsets,
    steps_of,
)
from farmtools.emulator.event import EventGenerator
from farmtools.emulator.muons import Track, maybe_stopping
from farmtools.emulator.settings import EmulatorSettings

NO_DRIFT_LOSS = DriftParams(lifetime_us=math.inf, diffusion_l_cm2_s=0.0, diffusion_t_cm2_s=0.0)
VERTICAL = Track(entry=(50.1, 150.1, 0.0), exit=(50.1, 150.1, 100.0), t0_us=0.0, trigger=True)
BOX = (*G.extent_cm, G.drift_length_cm)


def test_multiple_scattering_follows_highland() -> None:
    """PDG: 13.6 MeV/p sqrt(L/X0)(1 + 0.038 ln(L/X0)) is ~10 mrad over 1 m at 4 GeV, and the
    lateral RMS at the end of the path is theta0 L / sqrt(3) in each transverse plane."""
    theta0 = highland_theta0(100.0)
    assert theta0 == pytest.approx(13.6 / 4000 * math.sqrt(100 / 14) * 1.0747, rel=0.01)
    rng = np.random.default_rng(2)
    lengths = np.full(2000, 0.05)
    ends = np.array(
        [scatter_offsets(np.array([0.0, 0.0, 1.0]), lengths, rng)[-1] for _ in range(600)]
    )
    assert np.abs(ends[:, 2]).max() < 1e-12  # transverse only
    rms = ends[:, :2].std(axis=0)
    expected = theta0 * 100.0 / math.sqrt(3)
    assert rms == pytest.approx([expected, expected], rel=0.12)
    assert np.abs(ends[:, :2].mean(axis=0)).max() < 4 * expected / math.sqrt(600)


def test_scattered_steps_keep_the_charge_and_wander_by_millimetres() -> None:
    straight = steps_of(VERTICAL, np.random.default_rng(3), 0.5)
    bent = steps_of(VERTICAL, np.random.default_rng(3), 0.5, scatter_rng=np.random.default_rng(4))
    assert bent.xyz.shape == straight.xyz.shape
    off = np.linalg.norm(bent.xyz - straight.xyz, axis=1)
    assert 0.05 < off[-1] < 3.0 and off[0] < 1e-3  # grows along the track from the entry


def test_delta_rays_number() -> None:
    """dN/dT = xi/L / T^2: on 400 m of track the count above the cut matches the formula; the
    electrons start on the muon and leave it."""
    t_cut = landau_loss().max_de_mev
    t_max = delta_ray_max_mev()
    xi_per_cm, _ = landau_parameters(1.0)
    rng = np.random.default_rng(4)
    counts, far = 0, 0
    for _ in range(400):
        n, xyz, de, dedx = delta_ray_steps(VERTICAL, rng, BOX, t_cut)
        counts += n
        if n:
            far += int((np.hypot(xyz[:, 0] - 50.1, xyz[:, 1] - 150.1) > 1.0).any())
            assert de.min() > 0 and np.all(dedx > 1.0)
    expected = 400 * 100.0 * xi_per_cm * (1 / t_cut - 1 / t_max)
    assert abs(counts - expected) < 5 * math.sqrt(expected)
    assert far > 0.1 * counts  # some reach beyond a centimetre of the line


def test_deposit_with_delta_rays_adds_charge_and_counts_them() -> None:
    gains = dict.fromkeys(range(1, G.n_lems + 1), 20.0)
    plain = np.zeros((G.n_channels, G.samples), dtype=np.float32)
    with_d = np.zeros_like(plain)
    a = deposit_track(plain, VERTICAL, np.random.default_rng(6), G, NO_DRIFT_LOSS, gains, 0.0)
    totals = []
    for seed in range(20):
        with_d[:] = 0
        b = deposit_track(
            with_d,
            VERTICAL,
            np.random.default_rng(seed),
            G,
            NO_DRIFT_LOSS,
            gains,
            0.0,
            physics=TrackPhysics(delta_rays=True),
        )
        assert b.energy_mev >= b.delta_energy_mev >= 0
        assert sum(b.collected_fc) == pytest.approx(float(with_d.sum()), rel=1e-4)
        totals.append((b.delta_rays, b.delta_energy_mev))
    assert a.delta_rays == 0 and a.delta_energy_mev == 0.0
    n = sum(t[0] for t in totals)
    assert n > 20 and sum(t[1] for t in totals) / (20 * 100.0) == pytest.approx(0.33, rel=0.5)


def test_stopping_muon_ends_inside_with_a_bragg_rise() -> None:
    track = Track(entry=(10.0, 20.0, 0.0), exit=(60.0, 120.0, 100.0), t0_us=0.0, trigger=False)
    rng = np.random.default_rng(7)
    state = rng.bit_generator.state
    assert maybe_stopping(track, rng, 0.0) is track
    assert rng.bit_generator.state == state  # no draw when off: same muons as before
    stopped = maybe_stopping(track, rng, 1.0)
    assert stopped.stops and stopped.exit[2] < 100.0
    d = np.subtract(stopped.exit, stopped.entry)
    assert np.allclose(np.cross(d, np.subtract(track.exit, track.entry)), 0.0, atol=1e-9)
    assert not stopped.crosses_anode_cathode(G)
    long = dataclasses.replace(VERTICAL, stops=True)
    steps = steps_of(long, np.random.default_rng(8), 0.5)
    per_cm = steps.de_mev / steps.length_cm
    first, last = per_cm[:400].mean(), per_cm[-20:].mean()  # first 20 cm, last 1 cm
    assert first == pytest.approx(2.1, rel=0.1)
    assert last > 3 * first
    # More recombination where dE/dx is high: less charge per MeV at the end.
    q_per_mev = steps.q_fc / steps.de_mev
    assert q_per_mev[-20:].mean() < 0.8 * q_per_mev[:400].mean()


def test_crt_triggers_never_stop_and_others_may() -> None:
    s = EmulatorSettings(seed=1, stopping_fraction=1.0, crt_fraction=1.0)
    gen = EventGenerator(G, s, np.random.default_rng(9))
    for _ in range(5):
        _crt, tracks = gen.tracks()
        assert not tracks[0].stops and tracks[0].crosses_anode_cathode(G)
        assert all(t.stops for t in tracks[1:])
    gen = EventGenerator(G, dataclasses.replace(s, crt_fraction=0.0), np.random.default_rng(9))
    assert all(gen.tracks()[1][0].stops for _ in range(5))
    with pytest.raises(ValueError, match="stopping_fraction"):
        EmulatorSettings(stopping_fraction=1.5).check()


def test_the_track_physics_switches_leave_the_muons_of_a_seed_as_they_were() -> None:
    """Delta rays and scattering draw from a stream of their own: the same muons and the same
    event stream after them; stopping muons are the same muons, shortened, and the event
    stream after them is the same too (their losses are drawn for the whole path)."""
    off = EmulatorSettings(seed=1, crt_fraction=0.0, stopping_fraction=0.0)
    on = dataclasses.replace(off, delta_rays=True, multiple_scattering=True)
    a = EventGenerator(G, off, np.random.default_rng(12))
    b = EventGenerator(G, on, np.random.default_rng(12))
    deltas = 0
    for _ in range(4):
        (_, ta), (_, tb) = a.tracks(), b.tracks()
        assert [t.entry for t in ta] == [t.entry for t in tb]
        a.charge(ta)
        deltas += sum(t.charge.delta_rays for t in b.charge(tb)[1])
    assert deltas > 0
    assert a.rng.random() == b.rng.random()
    stopping = dataclasses.replace(off, stopping_fraction=1.0)
    c = EventGenerator(G, off, np.random.default_rng(13))
    d = EventGenerator(G, stopping, np.random.default_rng(13))
    for _ in range(3):
        (_, tc), (_, td) = c.tracks(), d.tracks()
        assert [t.entry for t in tc] == [t.entry for t in td] and all(t.stops for t in td)
        c.charge(tc)
        d.charge(td)
    assert c.rng.random() == d.rng.random()
