"""The 6x6x6 emulator: cosmic rate and counts, spills, tracks across CRPs, light and truth vs data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from farmtools import pddp_layout
from farmtools.detector import Geometry, geometry
from farmtools.emulator.beam import BeamSettings, Trigger, TriggerSchedule
from farmtools.emulator.box_muons import box_rate_hz
from farmtools.emulator.l1streams import L1Plan, daq_order, emulate_l1_run
from farmtools.emulator.muons import Track, sample_directions
from farmtools.emulator.pddp_event import PddpEventGenerator, crp_pieces, mean_cosmics
from farmtools.emulator.pddp_truth import load_physics_truth
from farmtools.emulator.settings import EmulatorSettings
from farmtools.emulator.signal import response_delay_ticks
from farmtools.evb.builder import BuilderSettings, L2Builder
from farmtools.rawdata.format import TriggerType
from farmtools.rawdata.pddp_format import unpack_lro
from farmtools.rawdata.pddp_reader import PDDPFile
from farmtools.rawdata.pddp_writer import make_fragment, write_pddp_file

SMALL = geometry("6x6x6:400")


@pytest.fixture(scope="module")
def gen() -> PddpEventGenerator:
    return PddpEventGenerator(SMALL, EmulatorSettings(seed=5), BeamSettings(), 5)


def test_box_rate_agrees_with_muons_drawn_through_a_wide_plane() -> None:
    """The closed-form rate on the box against the 3x1x1 way: cos^3 muons through a horizontal
    plane reaching far beyond the box, counting the lines that hit it (vectorised slab test)."""
    rng = np.random.default_rng(11)
    lx, ly, h = pddp_layout.VOLUME_CM
    margin = 3 * h  # zenith angles up to 72 degrees reach the box (the rest: < 1 % of the rate)
    n = 1_000_000
    d = sample_directions(rng, n)
    x = rng.uniform(-margin, lx + margin, n)
    y = rng.uniform(-margin, ly + margin, n)
    s_in = np.zeros(n)
    s_out = np.full(n, np.inf)
    for axis, (p, size) in enumerate(((x, lx), (y, ly), (np.zeros(n), h))):
        with np.errstate(divide="ignore", invalid="ignore"):
            a, b = (0.0 - p) / d[:, axis], (size - p) / d[:, axis]
        s_in = np.maximum(s_in, np.minimum(a, b))
        s_out = np.minimum(s_out, np.maximum(a, b))
    hits = int((s_out > s_in + 1e-6).sum())
    plane_m2 = (lx + 2 * margin) * (ly + 2 * margin) * 1e-4
    mc_rate = 166.0 * plane_m2 * hits / n
    assert box_rate_hz(pddp_layout.VOLUME_CM, 166.0) == pytest.approx(11952.0)
    assert mc_rate == pytest.approx(11952.0, rel=0.03)


def test_cosmic_counts_are_poisson_with_the_box_mean(gen: PddpEventGenerator) -> None:
    mu = mean_cosmics(SMALL, 166.0)
    assert mu == pytest.approx(11952.0 * (600.0 / 0.16056 + 400 * 0.4) * 1e-6)
    counts = []
    t0s = []
    for _ in range(300):
        parts = gen.particles(beam=False)
        assert parts[0][1].trigger and parts[0][1].t0_us == 0.0
        counts.append(len(parts) - 1)
        t0s += [tr.t0_us for _k, tr in parts[1:]]
        for _kind, tr in parts:  # every track lies in the volume
            assert all(0 <= c <= 600 for c in (*tr.entry, *tr.exit))
    c = np.array(counts)
    assert abs(c.mean() - mu) < 4 * math.sqrt(mu / c.size)
    assert 0.75 < c.var() / c.mean() < 1.3
    t = np.array(t0s)
    assert t.min() >= -gen.drift_us and t.max() < gen.window_us
    assert t.min() < -0.9 * gen.drift_us  # early muons: cut by the window's edges


def test_spills_beam_triggers_inside_cosmic_triggers_outside() -> None:
    s = BeamSettings(spill_s=0.5, spill_period_s=2.0, beam_rate_hz=100.0, cosmic_trigger_hz=5.0)
    sched = TriggerSchedule(s, np.random.default_rng(3))
    trigs = [sched.next() for _ in range(12_000)]
    times = np.array([t.time_s for t in trigs])
    assert np.all(np.diff(times) >= s.dead_time_s)
    for t in trigs:
        phase = t.time_s % s.spill_period_s
        assert t.beam == (phase < s.spill_s)
        assert t.spill == (math.floor(t.time_s / s.spill_period_s) if t.beam else None)
    total_s = times[-1]
    spills = total_s / s.spill_period_s
    beam_rate = sum(t.beam for t in trigs) / (spills * s.spill_s)
    cosmic_rate = sum(not t.beam for t in trigs) / (spills * (s.spill_period_s - s.spill_s))
    # a Poisson process with a dead time after each trigger: rate / (1 + rate * dead)
    assert beam_rate == pytest.approx(100.0 / 1.1, rel=0.05)
    assert cosmic_rate == pytest.approx(5.0 / 1.005, rel=0.1)


def test_track_pieces_follow_the_crp_boundaries() -> None:
    track = Track((100.0, 250.0, 10.0), (500.0, 380.0, 20.0), 0.0, True)
    pieces = crp_pieces(track)
    assert [c for c, _p in pieces] == [0, 2, 3]
    assert sum(p.length_cm for _c, p in pieces) == pytest.approx(track.length_cm)
    for crp, p in pieces:
        for x, y, _z in (p.entry, p.exit):
            assert 0 <= x <= 300 and 0 <= y <= 300
        ox, oy = pddp_layout.crp_origin_cm(crp)
        assert pddp_layout.crp_of(ox + p.entry[0] + 1e-6, oy + p.entry[1] + 1e-6) in (crp, 0)
    vertical = Track((350.0, 450.0, 0.0), (350.0, 450.0, 600.0), 5.0, False)
    ((crp, piece),) = crp_pieces(vertical, (100.0, 200.0))
    assert crp == 3 and piece.entry == (50.0, 150.0, 100.0) and piece.exit == (50.0, 150.0, 200.0)
    assert piece.t0_us == 5.0 and not piece.trigger


def _write_event(path: Path, geo: Geometry, adc: np.ndarray, lro: bytes, ttype: int) -> None:
    daq = daq_order(geo, adc)
    fc = geo.fragment_channels
    frags = [
        make_fragment(daq[k * fc : (k + 1) * fc], run=1, trigger_type=ttype, trigger_number=0,
                      time_ns=1, event_number=0, missing_cards=geo.missing_cards(k),
                      lro=lro if k == 0 else b"")
        for k in (0, 1)
    ]  # fmt: skip
    write_pddp_file(path, 1, [frags])


def test_a_track_crossing_crps_reads_back_through_the_pddp_reader(
    gen: PddpEventGenerator, tmp_path: Path
) -> None:
    """A shallow track from CRP 0 over CRP 2 into CRP 3: signal on the strips under it at the
    drift time of its depth, in those CRPs only, as the farm's reader hands it out."""
    track = Track((100.0, 250.0, 10.0), (500.0, 380.0, 20.0), 0.0, True)
    ev = gen.event(Trigger(0.0, False, None), [("cosmic", track)])
    assert ev.truth["particles"][0]["crps"] == [0, 2, 3]
    assert ev.trigger_type == int(TriggerType.PMT)
    full = geometry("6x6x6-full:400")  # every card read: no strip of the track is lost
    _write_event(tmp_path / "1_0_a.dat", full, ev.adc, ev.lro, ev.trigger_type)
    with PDDPFile(tmp_path / "1_0_a.dat", full) as f:
        adc = f.event(0).adc.astype(np.float64)
    adc -= np.median(adc, axis=1, keepdims=True)
    v = SMALL.drift_velocity_cm_per_tick
    delay = response_delay_ticks(SMALL)
    seen = set()
    for crp, piece in crp_pieces(track):
        seen.add(crp)
        for s in np.linspace(0.05, 0.95, 7):
            p = np.asarray(piece.entry) + s * (np.asarray(piece.exit) - np.asarray(piece.entry))
            tick = p[2] / v + delay
            for view, coord in ((0, p[0]), (1, p[1])):
                ch = 1920 * crp + 960 * view + int(coord // SMALL.pitch_cm)
                row = adc[ch]
                assert row.max() > 30, (crp, view, ch)
                assert abs(int(row.argmax()) - tick) < 6, (crp, view, ch)
    for crp in set(range(4)) - seen:
        assert adc[1920 * crp : 1920 * (crp + 1)].max() < 30


def test_truth_matches_the_built_files_headers_light_and_charge(tmp_path: Path) -> None:
    """Through the L2 builder and the reader: trigger types and times of the spills, one flash
    per particle at its t0 in the LRO, the dark counts, and the charge each view collected."""
    geo = geometry("6x6x6-full:300")
    beam = BeamSettings(spill_s=0.02, spill_period_s=0.05, beam_rate_hz=300.0,
                        cosmic_trigger_hz=300.0, beam_pileup=1.0, dark_rate_hz=2000.0)  # fmt: skip
    # noise and pedestal spread off, so that the charge sums are exact up to rounding
    settings = EmulatorSettings(seed=9, muon_flux_per_m2_s=30.0, pedestal_spread_adc=0.0,
                                white_noise_adc=(0.0, 0.0), coherent_noise_adc=0.0,
                                baseline_drift_adc=0.0)  # fmt: skip
    plan = L1Plan(run=12, events=8, fragments_per_file=5)
    l1_truth = emulate_l1_run(tmp_path / "l1", geo, plan, settings, seed=9, beam=beam)
    assert l1_truth["physics_truth"] == ["12_0_physics.json", "12_1_physics.json"]
    truth = load_physics_truth(tmp_path / "l1", 12)
    assert sorted(truth) == list(range(8))
    assert {ev["trigger"] for ev in truth.values()} == {"BEAM", "COSMIC"}
    bs = BuilderSettings(in_dir=tmp_path / "l1", out_dir=tmp_path / "l2",
                         setaside_dir=tmp_path / "aside", geometry=geo, builder_id="a",
                         builders=("a",), roll_bytes=100 * 2 * geo.fragment_bytes)  # fmt: skip
    L2Builder(bs).drain()
    (path,) = sorted((tmp_path / "l2").iterdir())
    n_flashes = n_charged = 0
    with PDDPFile(path, geo) as f:
        start_ns = None
        for ev in f:
            head = ev.fragments[0]
            t = truth[head.trigger_number]
            start_ns = (
                start_ns if start_ns is not None else head.time_ns - round(t["run_time_s"] * 1e9)
            )
            assert head.time_ns == t["time_ns"]
            assert head.time_ns - start_ns == pytest.approx(t["run_time_s"] * 1e9, abs=2)
            beam_trigger = t["trigger"] == "BEAM"
            assert head.trigger_type == int(TriggerType.BEAM if beam_trigger else TriggerType.PMT)
            assert (t["spill"] is not None) == beam_trigger
            kinds = [p["kind"] for p in t["particles"]]
            assert kinds[0] == ("beam" if beam_trigger else "cosmic")
            pulses = unpack_lro(ev.lro[0])
            assert ev.lro[1] == b""
            lo, hi = t["sidecar"]["constants"]["lro_window_ns"]
            assert all(lo <= p.time_ns < hi for p in pulses)
            assert [p.time_ns for p in pulses] == sorted(p.time_ns for p in pulses)
            by_time: dict[int, list[float]] = {}
            for p in pulses:
                by_time.setdefault(p.time_ns, []).append(p.charge_pe)
            flash_times = set()
            for part in t["particles"]:
                t_ns = part["t0_ns"]
                assert t_ns == round(part["t0_us"] * 1000)
                if part["flash_pe"] > 0:
                    flash_times.add(t_ns)
                    n_flashes += 1
                    assert sum(by_time[t_ns]) == pytest.approx(part["flash_pe"], abs=0.01)
                    assert len(by_time[t_ns]) >= 3  # a flash is seen by several PMTs at once
            dark = sum(len(q) for tn, q in by_time.items() if tn not in flash_times)
            assert dark == t["dark_counts"]
            # charge: what the truth says each view collected, in ADC*ticks
            adc = ev.adc.astype(np.float64) - settings.pedestal_adc
            for view, c_view in ((0, 55.0), (1, 67.0)):
                rows = np.concatenate([np.arange(960) + 1920 * c + 960 * view for c in range(4)])
                want = sum(p["collected_fc"][view] for p in t["particles"]) * c_view
                got = adc[rows].sum()
                assert got == pytest.approx(want, rel=0.03), (head.trigger_number, view)
                n_charged += want > 0
    assert n_flashes >= 8 and n_charged >= 8


def test_command_line_options_reach_the_truth(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from farmtools.cli import app

    cfg = tmp_path / "farm.toml"
    cfg.write_text(f'[farm]\nhome = "{tmp_path / "farm"}"\ndetector = "6x6x6:40"\n')
    args = ["daq", "emulate", "--run", "4", "--files", "2", "--events", "2", "--seed", "3",
            "--config", str(cfg), "--spill-s", "1", "--spill-period-s", "3", "--beam-rate-hz",
            "50", "--cosmic-flux", "20", "--dark-rate-hz", "10", "--gain", "12",
            "--gain-spread", "0.1", "--lifetime-ms", "4"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "physics truth: 4_0_physics.json, 4_1_physics.json" in res.output
    l1 = tmp_path / "farm/evb/l1"
    assert sorted(p.name for p in l1.glob("*_physics.json")) == [
        "4_0_physics.json",
        "4_1_physics.json",
    ]
    truth = load_physics_truth(l1, 4)
    assert sorted(truth) == [0, 1, 2, 3]
    inj = truth[0]["sidecar"]["injected"]
    assert (inj["spill_s"], inj["spill_period_s"], inj["beam_rate_hz"]) == (1.0, 3.0, 50.0)
    assert (inj["muon_flux_per_m2_s"], inj["dark_rate_hz"], inj["lifetime_ms"]) == (20.0, 10.0, 4.0)
    gains = np.array(inj["lem_gains"])
    assert gains.shape == (4, 36) and 0.03 < gains.std() / 12.0 < 0.2
    assert truth[0]["sidecar"]["constants"]["mean_cosmics"] == pytest.approx(
        mean_cosmics(geometry("6x6x6:40"), 20.0), rel=1e-4
    )
    bad = CliRunner().invoke(app, [*args[:-8], "--spill-s", "5", "--spill-period-s", "3"])
    assert bad.exit_code == 2 and "spill_s" in bad.output
    # a gain map per CRP, as --gain-map gives the 3x1x1's
    maps = {str(c): {str(lem): 10.0 + c + lem / 10 for lem in range(1, 37)} for c in range(4)}
    (tmp_path / "gains.json").write_text(json.dumps(maps))
    run5 = ["--run", "5", *args[4:], "--gain-map", str(tmp_path / "gains.json")]
    res = CliRunner().invoke(app, ["daq", "emulate", *run5])
    assert res.exit_code == 0, res.output
    got = load_physics_truth(l1, 5)[0]["sidecar"]["injected"]["lem_gains"]
    assert got == [[10.0 + c + lem / 10 for lem in range(1, 37)] for c in range(4)]
    del maps["2"]["17"]
    (tmp_path / "gains.json").write_text(json.dumps(maps))
    bad = CliRunner().invoke(app, ["daq", "emulate", "--run", "6", *run5[2:]])
    assert bad.exit_code == 2 and "CRP 2: gain map lacks LEMs [17]" in bad.output


def test_threads_per_event_give_the_same_events(gen: PddpEventGenerator) -> None:
    one = PddpEventGenerator(SMALL, EmulatorSettings(seed=21), BeamSettings(), 21)
    two = PddpEventGenerator(SMALL, EmulatorSettings(seed=21), BeamSettings(), 21, workers=2)
    for beam in (False, True):
        a, b = one.event(Trigger(0.0, beam, None)), two.event(Trigger(0.0, beam, None))
        assert np.array_equal(a.adc, b.adc) and a.lro == b.lro and a.truth == b.truth
        assert any(p["collected_fc"][0] > 0 for p in a.truth["particles"])


def test_each_crp_has_its_own_dead_channels() -> None:
    settings = EmulatorSettings(seed=8, dead_channel_fraction=0.02)
    g = PddpEventGenerator(SMALL, settings, BeamSettings(), 8)
    dead = [gen.noise.defects.dead for gen in g.gens if gen.noise.defects is not None]
    assert len(dead) == 4 and all(d.sum() > 10 for d in dead)
    assert not np.array_equal(dead[0], dead[1])


def test_beam_particles_enter_through_the_beam_window(gen: PddpEventGenerator) -> None:
    n_beam = []
    for _ in range(200):
        parts = gen.particles(beam=True)
        beams = [t for kind, t in parts if kind == "beam"]
        assert beams[0] is parts[0][1] and beams[0].trigger and beams[0].t0_us == 0.0
        assert not any(t.trigger for t in beams[1:])
        for t in beams:
            x, y, z = t.entry
            assert y == 0.0 and abs(x - 150.0) < 20 and abs(z - 200.0) < 20
            assert [c for c, _p in crp_pieces(t)][:2] == [0, 2]
        n_beam.append(len(beams))
    # the triggering particle plus Poisson(beam_pileup = 0.3) more
    assert 1.3 - 0.15 < np.mean(n_beam) < 1.3 + 0.15
