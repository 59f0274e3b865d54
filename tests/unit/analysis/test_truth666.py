"""The t0 matching of a whole emulated 6x6x6 event, checked against the emulator's truth."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from farmtools.analysis.cosmics import CosmicSelection, select_cosmics
from farmtools.analysis.truth666 import T0Figures, associate
from farmtools.detector import geometry
from farmtools.emulator.beam import BeamSettings, Trigger
from farmtools.emulator.pddp_event import PddpEventGenerator
from farmtools.emulator.settings import EmulatorSettings
from farmtools.reco.multicrp import reconstruct_detector_event

#: 1500 samples (600 us): the charge of the top ~100 cm at t0 = 0, a second of emulation.
G = geometry("6x6x6-full").with_samples(1500)


def test_selected_cosmics_of_an_emulated_event_get_their_true_t0() -> None:
    # 60 /m2/s: ~30 cosmics with t0 over the whole -3.7..0.6 ms, a third of them in the window
    settings = EmulatorSettings(seed=15, lifetime_ms=3.0, muon_flux_per_m2_s=60.0)
    gen = PddpEventGenerator(G, settings, BeamSettings(), seed=15)
    figures = T0Figures()
    loose = CosmicSelection(min_length_cm=40.0, min_drift_cm=20.0)
    with ThreadPoolExecutor(2) as pool:
        for k in range(2):
            ev = gen.event(Trigger(float(k), True, 0))
            reco = reconstruct_detector_event(ev.adc, G, [ev.lro], pool=pool)
            trk = {key: np.asarray(v) for key, v in reco.tracks.items()}
            trk["event"] = np.zeros(trk["view"].size, dtype=np.int32)
            particles = ev.truth["particles"]
            figures.add(trk, particles, G, select_cosmics(trk, G, loose), k)
            assoc = associate(trk, particles, G)
            # the association is by position: each particle is at most a few 3D tracks
            assert len(assoc) >= 0.5 * figures.found["cosmic"]
    text = "\n".join(figures.lines())
    assert figures.selected >= 6, text
    assert figures.selected_right >= 0.95 * figures.selected, text
    assert figures.timed_right >= 0.9 * figures.timed, text
    assert figures.tagged_cosmic >= 10 and figures.tagged_cosmic_right == figures.tagged_cosmic, (
        text
    )
    assert figures.found["cosmic"] >= 0.7 * figures.visible["cosmic"], text
    assert "target >= 95 %: met" in text


def test_a_track_with_the_wrong_t0_is_counted_wrong() -> None:
    settings = EmulatorSettings(seed=16, lifetime_ms=3.0, muon_flux_per_m2_s=40.0)
    gen = PddpEventGenerator(G, settings, BeamSettings(), seed=16)
    ev = gen.event(Trigger(0.0, False, None))
    reco = reconstruct_detector_event(ev.adc, G, [ev.lro])
    trk = {key: np.asarray(v) for key, v in reco.tracks.items()}
    timed = trk["tag"] > 0
    right = T0Figures()
    right.add(trk, ev.truth["particles"], G, timed)
    assert right.selected >= 3 and right.selected_right >= 0.9 * right.selected
    # the same tracks, each t0 moved by 5 us: the positions still say whose track it is
    trk["t0_us"] = trk["t0_us"] + 5.0
    wrong = T0Figures()
    wrong.add(trk, ev.truth["particles"], G, timed)
    assert wrong.selected == right.selected and wrong.selected_right == 0
