"""The emulator's realism switches: shaped noise, channel gain spread, dead and noisy channels,
bad cards, muons before the trigger and through the side walls."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from farmtools.detector import WA105_3X1X1 as G
from farmtools.emulator.event import EventGenerator
from farmtools.emulator.muons import extra_muons, mean_extra_tracks, muon_through_box
from farmtools.emulator.settings import EmulatorSettings
from farmtools.emulator.truth import truth_path

QUIET = EmulatorSettings(seed=4, coherent_noise_adc=0.0, baseline_drift_adc=0.0)


def _noise(settings: EmulatorSettings) -> np.ndarray:
    gen = EventGenerator(G, settings, np.random.default_rng(5))
    zero = np.zeros((G.n_channels, G.samples), dtype=np.float32)
    x = gen.digitise(zero).astype(np.float64)
    return x - x.mean(axis=1, keepdims=True)


def _lag1(x: np.ndarray) -> float:
    return float((x[:, 1:] * x[:, :-1]).mean() / (x * x).mean())


def test_noise_before_shaping_is_correlated_over_a_microsecond_with_the_same_rms() -> None:
    white = _noise(QUIET)
    shaped = _noise(dataclasses.replace(QUIET, shaped_noise_fraction=1.0))
    assert abs(_lag1(white)) < 0.02
    assert _lag1(shaped) > 0.8  # the shaper's ~1 us: neighbouring 0.4 us ticks move together
    assert shaped.std() == pytest.approx(white.std(), rel=0.05)
    half = _noise(dataclasses.replace(QUIET, shaped_noise_fraction=0.5))
    assert 0.3 < _lag1(half) < 0.6


def test_channel_gain_spread_scales_each_channels_signal() -> None:
    s = dataclasses.replace(QUIET, white_noise_adc=(0.0, 0.0), pedestal_spread_adc=0.0)
    charge = np.zeros((G.n_channels, G.samples), dtype=np.float32)
    charge[:, 300] = 20.0
    sums = []
    for spread in (0.0, 0.05):
        gen = EventGenerator(
            G, dataclasses.replace(s, channel_gain_spread=spread), np.random.default_rng(1)
        )
        adc = gen.digitise(gen.signal(charge)).astype(np.float64) - 400.0
        sums.append(adc.sum(axis=1) / np.where(np.arange(G.n_channels) < 320, 55.0, 67.0) / 20.0)
    assert np.std(sums[0]) < 0.002
    assert np.std(sums[1]) == pytest.approx(0.05, rel=0.15)
    # a property of the detector: the same channels for the same seed, in every generator
    gen_a = EventGenerator(
        G, dataclasses.replace(s, channel_gain_spread=0.05), np.random.default_rng(1)
    )
    gen_b = EventGenerator(
        G, dataclasses.replace(s, channel_gain_spread=0.05), np.random.default_rng(9)
    )
    assert gen_a.noise.defects is not None and gen_b.noise.defects is not None
    assert np.array_equal(gen_a.noise.defects.gain, gen_b.noise.defects.gain)


def test_dead_noisy_channels_and_a_bad_card() -> None:
    s = dataclasses.replace(
        QUIET,
        dead_channel_fraction=0.02,
        noisy_channel_fraction=0.02,
        noisy_factor=5.0,
        bad_cards=1,
    )
    gen = EventGenerator(G, s, np.random.default_rng(3))
    d = gen.noise.defects
    assert d is not None
    assert 10 < d.dead.sum() < 45 and 10 < d.noisy.sum() < 45
    assert d.bad.sum() == 64 and np.unique(G.view_to_daq[d.bad] // 64).size == 1
    charge = np.zeros((G.n_channels, G.samples), dtype=np.float32)
    charge[:, 300] = 30.0
    adc = gen.digitise(gen.signal(charge)).astype(np.float64)
    rms = adc[:, :250].std(axis=1)
    ok = ~(d.dead | d.noisy | d.bad)
    assert rms[d.dead].max() < 0.6 and rms[d.noisy].min() > 3 * np.median(rms[ok])
    assert (adc[d.bad] == adc[d.bad][:, :1]).all()  # a card without data: a constant
    peak = adc[:, 300:310].max(axis=1) - np.median(adc, axis=1)
    assert peak[d.dead].max() < 3 and peak[ok].min() > 100
    # the event stream is untouched: the same muons with and without the defects
    plain = EventGenerator(G, QUIET, np.random.default_rng(3))
    defective = EventGenerator(G, s, np.random.default_rng(3))
    for _ in range(4):
        (_, t1), (_, t2) = plain.next_event(), defective.next_event()
        assert [t.track for t in t1.tracks] == [t.track for t in t2.tracks]
        assert t2.bad_cards == 1 and t1.bad_cards == 0


def test_bad_cards_reach_the_event_header(tmp_path: Path) -> None:
    from farmtools.emulator.daq import RunPlan, emulate_run
    from farmtools.rawdata import RawFile

    s = dataclasses.replace(QUIET, bad_cards=2)
    (f,) = emulate_run(tmp_path, s, RunPlan(run=3, events_per_file=1))
    with RawFile.open(f.path, G) as raw:
        assert raw.event(0).header.bad_cards == 2


def test_muons_before_the_trigger_and_through_the_sides() -> None:
    rng = np.random.default_rng(7)
    tracks = [t for _ in range(400) for t in extra_muons(rng, G, 166.0, early=True, sides=True)]
    t0 = np.array([t.t0_us for t in tracks])
    entry_z = np.array([t.entry[2] for t in tracks])
    full_drift_us = G.full_drift_ticks * G.tick_us
    assert t0.min() < -0.8 * full_drift_us and (t0 < 0).mean() > 0.3
    assert (entry_z > 1.0).mean() > 0.1  # entered through a side wall, below the anode
    # every track lies inside the volume and goes downwards
    for t in tracks:
        for p in (t.entry, t.exit):
            assert 0 <= p[0] <= 100 and 0 <= p[1] <= 300 and 0 <= p[2] <= 100
        assert t.exit[2] >= t.entry[2]
    # through the CRP plane within the window: the seed's rate, 0.33 per event
    top_now = sum(1 for t in tracks if t.entry[2] < 1e-9 and t.t0_us >= 0) / 400
    assert top_now == pytest.approx(mean_extra_tracks(G, 166.0), rel=0.25)
    # a line that misses the box is no muon
    assert muon_through_box((-500.0, 10.0), np.array([0.0, 0.0, 1.0]), G, 0.0) is None


def test_early_and_side_muons_are_added_to_the_seeds_muons() -> None:
    """They come from streams of their own: with them on, a seed's muons and their charge are
    those it gives with them off (the fixed-seed tests keep their samples), others added."""
    off = EmulatorSettings(seed=1, early_muons=False, side_muons=False, stopping_fraction=0.5)
    on = dataclasses.replace(off, early_muons=True, side_muons=True)
    a = EventGenerator(G, off, np.random.default_rng(12))
    b = EventGenerator(G, on, np.random.default_rng(12))
    added = 0
    for _ in range(4):
        (_, ta), (_, tb) = a.tracks(), b.tracks()
        mine = [t for t in tb if not t.added]
        assert [(t.entry, t.exit, t.stops) for t in ta] == [
            (t.entry, t.exit, t.stops) for t in mine
        ]
        added += len(tb) - len(mine)
        qa = [t.charge for t in a.charge(ta)[1]]
        qb = [t.charge for t, track in zip(b.charge(tb)[1], tb, strict=True) if not track.added]
        assert qa == qb
    assert added > 0
    assert a.rng.random() == b.rng.random()


def test_realistic_switches_from_the_command_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from farmtools.cli import app
    from farmtools.emulator.settings import REALISTIC

    args = ["daq", "emulate", "--out", str(tmp_path), "--run", "4", "--events", "1"]
    res = CliRunner().invoke(app, [*args, "--seed", "3", "--realistic"])
    assert res.exit_code == 0, res.output
    truth = json.loads(truth_path(tmp_path / "run4-seq0.dat").read_text())
    for key, value in REALISTIC.items():
        assert truth["injected"][key] == value, key
