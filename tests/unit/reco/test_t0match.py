"""Flashes in the LRO, segments joined across CRPs, and the t0 and tag each track gets."""

from __future__ import annotations

import numpy as np

from farmtools import pddp_layout
from farmtools.detector import geometry
from farmtools.emulator.muons import Track
from farmtools.rawdata.pddp_format import LroPulse, pack_lro
from farmtools.reco import crpjoin, t0match
from farmtools.reco.crpjoin import Segment
from farmtools.reco.flashes import FlashParams, find_flashes, lro_pulses
from tests.unit.reco import pddp_synth

G = geometry("6x6x6-full")


def test_flashes_are_coincidences_of_many_pmts_and_dark_counts_are_not() -> None:
    rng = np.random.default_rng(3)
    pulses = [LroPulse(p, 250_000 + p, 10.0) for p in range(12)]  # 120 PE at 250 us
    pulses += [LroPulse(p, -1_000_000 + 5 * p, 3.0) for p in (4, 5, 6, 7)]  # 12 PE: too small
    pulses += [LroPulse(int(rng.integers(36)), int(t), 1.0) for t in rng.uniform(-4e6, 4e6, 300)]
    found = find_flashes(lro_pulses([pack_lro(pulses), b""]), 36)
    assert found.n == 1
    assert abs(found.time_us[0] - 250.0055) < 0.01
    assert found.pe[0] >= 120 and found.pmt_pe[0, :12].sum() >= 120
    looser = find_flashes(lro_pulses([pack_lro(pulses)]), 36, FlashParams(min_pe=10.0))
    assert np.any(np.abs(looser.time_us + 1000.0) < 0.1)


def _columns(
    lines: list[tuple[int, tuple[float, float, float], tuple[float, float, float]]],
) -> dict[str, np.ndarray]:
    """Track columns of view-matched pairs: (crp, local start, local end) in cm, z from the trigger."""
    vz = G.drift_velocity_cm_per_tick
    cols: dict[str, list[float]] = {
        k: [] for k in ("view", "partner", "crp", "u0", "z0", "du", "dz", "tick_min", "tick_max")
    }
    for crp, a, b in lines:
        k = len(cols["view"])
        for view in (0, 1):
            du, dz = b[view] - a[view], b[2] - a[2]
            n = float(np.hypot(du, dz))
            for key, value in (
                ("view", view),
                ("partner", k + 1 - view),
                ("crp", crp),
                ("u0", a[view]),
                ("z0", a[2]),
                ("du", du / n),
                ("dz", dz / n),
                ("tick_min", a[2] / vz),
                ("tick_max", b[2] / vz),
            ):
                cols[key].append(value)
    return {k: np.asarray(v) for k, v in cols.items()}


def test_segments_crossing_a_crp_boundary_are_joined() -> None:
    # one muon from CRP 0 into CRP 1 at x = 300 (local x 300 -> 0), z 100 -> 160 -> 250
    # a parallel one 40 cm away in y that stops at the boundary, and one in CRP 2
    cols = _columns(
        [
            (0, (240.0, 100.0, 100.0), (300.0, 130.0, 160.0)),
            (1, (0.0, 130.0, 160.0), (90.0, 175.0, 250.0)),
            (0, (240.0, 140.0, 100.0), (300.0, 170.0, 160.0)),
            (2, (10.0, 10.0, 300.0), (50.0, 90.0, 400.0)),
        ]
    )
    segs = crpjoin.segments(cols, G)
    assert [s.crp for s in segs] == [0, 1, 0, 2]
    assert np.allclose(segs[1].start[:2], (300.0, 130.0), atol=0.01)
    assert np.allclose(segs[3].end[:2], (50.0, 390.0), atol=0.01)
    labels = crpjoin.join(segs)
    assert labels[0] == labels[1]
    assert len({labels[0], labels[2], labels[3]}) == 3


def _segment(track: Track, crp: int = 0) -> Segment:
    """The segment the reconstruction would see of ``track``: z as drift time from the trigger."""
    vz = G.drift_velocity_cm_per_tick
    v = G.drift_velocity_mm_per_us * 0.1
    t_a = (track.t0_us + track.entry[2] / v) / G.tick_us
    t_b = (track.t0_us + track.exit[2] / v) / G.tick_us
    a = (track.entry[0], track.entry[1], t_a * vz)
    b = (track.exit[0], track.exit[1], t_b * vz)
    if t_b < t_a:
        a, b, t_a, t_b = b, a, t_b, t_a
    return Segment(0, 1, crp, a, b, t_a, t_b)


def test_each_track_gets_the_flash_it_made_and_the_beam_its_tag() -> None:
    rng = np.random.default_rng(11)
    beam = Track((150.0, 0.0, 200.0), (200.0, 280.0, 250.0), 0.0, True)
    cosmics = [
        Track((100.0, 100.0, 0.0), (150.0, 120.0, 600.0), -1200.0, False),  # anode-cathode
        Track((450.0, 500.0, 300.0), (480.0, 420.0, 560.0), 800.0, False),
        Track((520.0, 80.0, 50.0), (540.0, 60.0, 400.0), 850.0, False),  # close in time
        Track((300.0, 300.0, 100.0), (320.0, 330.0, 300.0), 1.0, False),  # at the trigger
    ]
    tracks = [beam, *cosmics]
    found = find_flashes(lro_pulses([pddp_synth.light(G, tracks, rng)]), pddp_layout.N_PMTS)
    assert found.n == len(tracks)
    timed = t0match.match_tracks([[_segment(t)] for t in tracks], found, G)
    assert np.allclose(timed.t0_us, [t.t0_us for t in tracks], atol=0.01)
    assert list(timed.tag) == [t0match.TAG_BEAM] + [t0match.TAG_COSMIC] * 4
    assert np.all(timed.quality < 2.0)
    # without its flash a track is unmatched, never given another one that does not fit
    alone = find_flashes(lro_pulses([pddp_synth.light(G, cosmics[1:2], rng)]), pddp_layout.N_PMTS)
    timed = t0match.match_tracks([[_segment(cosmics[2])]], alone, G)
    assert timed.flash[0] == -1 and timed.tag[0] == t0match.TAG_UNMATCHED


def test_the_batched_light_prediction_is_the_emulators_model() -> None:
    from farmtools.emulator.box_muons import segment_in_box
    from farmtools.emulator.light import expected_pe

    v = G.drift_velocity_mm_per_us * 0.1
    centre = np.array([250.0, 320.0, 400.0])  # z from the trigger: depth + t0 v
    direction = np.array([0.3, -0.2, 0.9])
    direction /= np.linalg.norm(direction)
    t0s = np.array([-500.0, 0.0, 900.0])
    batch = t0match.predicted_light(centre, direction, t0s, G, steps=400)
    for t0, got in zip(t0s, batch, strict=True):
        point = (centre[0], centre[1], centre[2] - t0 * v)
        seg = segment_in_box(
            point, (direction[0], direction[1], direction[2]), pddp_layout.VOLUME_CM
        )
        assert seg is not None
        want = expected_pe(
            Track(seg[0], seg[1], t0, False), pddp_layout.pmt_positions_cm(), 1000.0, 1000.0
        )
        assert np.allclose(got, want, rtol=0.02)
        assert want.sum() > 10
