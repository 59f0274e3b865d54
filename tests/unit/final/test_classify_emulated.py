"""The cheap classes on the emulator's physics (docs/protodune-dp.md): the thresholds' defaults
must tell a beam event, a cosmic-triggered event and an event without particles apart."""

from __future__ import annotations

from pathlib import Path

from farmtools.detector import geometry
from farmtools.emulator.beam import BeamSettings, Trigger
from farmtools.emulator.l1streams import daq_order
from farmtools.emulator.muons import Track
from farmtools.emulator.pddp_event import PddpEventGenerator
from farmtools.emulator.settings import EmulatorSettings
from farmtools.final.classify import Classifier
from farmtools.rawdata.pddp_reader import PDDPFile
from farmtools.rawdata.pddp_writer import make_fragment, write_pddp_file

G = geometry("6x6x6:200")


def test_emulated_beam_cosmic_and_empty_events(tmp_path: Path) -> None:
    # no overlapping cosmics: each event holds its triggering particle only, or nothing
    gen = PddpEventGenerator(G, EmulatorSettings(seed=5, muon_flux_per_m2_s=0.0), BeamSettings(), 5)
    fc = G.fragment_channels
    events = []
    nothing: list[tuple[str, Track]] = []
    cases: list[tuple[bool, list[tuple[str, Track]] | None]] = [
        (True, None),
        (False, None),
        (False, nothing),
    ]
    for k, (beam, particles) in enumerate(cases):
        e = gen.event(Trigger(0.0, beam, 0 if beam else None), particles)
        daq = daq_order(G, e.adc)
        events.append(
            [
                make_fragment(
                    daq[j * fc : (j + 1) * fc],
                    run=1,
                    trigger_type=e.trigger_type,
                    trigger_number=k,
                    time_ns=1,
                    event_number=k,
                    missing_cards=G.missing_cards(j),
                    lro=e.lro if j == 0 else b"",
                )
                for j in (0, 1)
            ]
        )
    path = tmp_path / "1_0_a.dat"
    write_pddp_file(path, 1, events)
    c = Classifier(G)
    with PDDPFile(path, G) as f:
        got = [c.classify(f, i) for i in range(3)]
    assert [str(r.klass) for r in got] == ["beam", "cosmic", "empty"], [r.reason for r in got]
    assert got[0].flash_pe > 100 and got[1].flash_pe > 100 and got[2].flash_pe == 0
    assert sum(got[2].hit_channels) == 0
