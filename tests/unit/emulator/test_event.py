"""Whole events: shape, reproducibility, trigger muon at t0 = 0, truth consistent with the ADC."""

from __future__ import annotations

import dataclasses

import numpy as np

from farmtools.detector import WA105_3X1X1 as G
from farmtools.emulator.event import EventGenerator
from farmtools.emulator.settings import EmulatorSettings


def test_events_are_reproducible_and_have_a_trigger_track() -> None:
    s = EmulatorSettings(seed=3)
    a = EventGenerator(G, s, np.random.default_rng(5))
    b = EventGenerator(G, s, np.random.default_rng(5))
    for _ in range(3):
        adc_a, truth_a = a.next_event()
        adc_b, truth_b = b.next_event()
        assert adc_a.shape == (1280, 1667) and adc_a.dtype == np.uint16
        assert np.array_equal(adc_a, adc_b)
        assert truth_a.to_json() == truth_b.to_json()
        trig = [t for t in truth_a.tracks if t.track.trigger]
        assert len(trig) == 1 and trig[0].track.t0_us == 0.0
    other, _ = EventGenerator(G, s, np.random.default_rng(6)).next_event()
    assert not np.array_equal(other, adc_a)


def test_crt_trigger_gives_anode_cathode_tracks_visible_in_the_adc() -> None:
    s = dataclasses.replace(
        EmulatorSettings(), crt_fraction=1.0, muon_flux_per_m2_s=0.0, baseline_drift_adc=0.0
    )
    gen = EventGenerator(G, s, np.random.default_rng(8))
    adc, truth = gen.next_event()
    assert truth.crt and len(truth.tracks) == 1
    t = truth.tracks[0]
    assert t.anode_cathode
    # The signal sits where the truth says: the view-0 strip at the anode entry, from tick 0 on,
    # and the strip at the cathode exit near tick 1557.
    x = adc.astype(np.float64) - gen.noise.pedestal[:, None]  # the generator's true pedestals
    s0 = int(t.track.entry[0] // G.pitch_cm)
    s1 = min(int(t.track.exit[0] // G.pitch_cm), 319)
    assert x[max(s0 - 1, 0) : s0 + 2, 0:15].max() > 30
    assert x[max(s1 - 1, 0) : s1 + 2, 1545:1570].max() > 30
    # Charge in ADC*tick of view 0 matches the collected truth.
    assert abs(x[:320].sum() / 55.0 - t.charge.collected_fc[0]) < 0.03 * t.charge.collected_fc[0]


def test_fast_path_equals_the_step_by_step_api() -> None:
    """next_event() (reused buffers, touched rows only) gives what the public steps give."""
    s = EmulatorSettings(seed=1)
    fast = EventGenerator(G, s, np.random.default_rng(12))
    slow = EventGenerator(G, s, np.random.default_rng(12))
    for _ in range(3):
        adc_fast, truth_fast = fast.next_event()
        crt, tracks = slow.tracks()
        adc_slow, truth_slow = slow.event_from_tracks(crt, tracks)
        assert np.array_equal(adc_fast, adc_slow)
        assert truth_fast.to_json() == truth_slow.to_json()
