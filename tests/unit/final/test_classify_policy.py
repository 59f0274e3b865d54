"""The cheap event classes and the filter policy's decisions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from farmtools.detector import geometry
from farmtools.final.classify import Classifier, EventClass, Thresholds, scan_packed, scan_samples
from farmtools.final.policy import Action, Decision, Policy, PolicyError, count
from farmtools.rawdata.format import TriggerType
from farmtools.rawdata.packing import pack12
from farmtools.rawdata.pddp_reader import PDDPFile
from farmtools.rawdata.pddp_writer import make_fragment, write_pddp_file
from tests.unit.final.synth import GEO, daq_adc, event, lro, write_run

KINDS = ["beam", "cosmic", "empty", "noisy", "corrupt", "incomplete"]
CLASSES = ["beam", "cosmic", "empty", "noisy", "noisy", "incomplete"]


def _classes(path: Path, th: Thresholds | None = None) -> list[str]:
    c = Classifier(GEO, th)
    with PDDPFile(path, GEO) as f:
        return [str(c.classify(f, i).klass) for i in range(f.n_events)]


def test_each_kind_of_event_gets_its_class(tmp_path: Path) -> None:
    path = write_run(tmp_path / "5_0_a.dat", KINDS)
    assert _classes(path) == CLASSES
    c = Classifier(GEO)
    with PDDPFile(path, GEO) as f:
        beam = c.classify(f, 0)
        assert beam.hit_channels == (40, 0, 0, 40) and beam.flash_pe == 400.0
        assert beam.trigger == 0 and beam.size == f.entries[0].size
        assert "corrupt LRO" in c.classify(f, 4).reason


def test_the_thresholds_decide(tmp_path: Path) -> None:
    path = write_run(tmp_path / "5_0_a.dat", KINDS)
    # charge below the hit cut and light below the flash cut: beam and cosmic look empty
    blind = Thresholds(hit_adc=500.0, flash_min_pe=10_000.0)
    assert _classes(path, blind)[:3] == ["empty", "empty", "empty"]
    # noise above the cut everywhere: the quiet events turn noisy
    assert _classes(path, Thresholds(noisy_rms_adc=0.5))[:3] == ["noisy"] * 3


def test_compressed_events_are_classified_alike(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    built = [event(k, i, rng, compress=True) for i, k in enumerate(KINDS)]
    path = tmp_path / "5_0_a.dat"
    write_pddp_file(path, 5, [f for f, _ in built], incomplete=[i for _, i in built])
    assert _classes(path) == CLASSES


@pytest.mark.parametrize("samples", [64, 63])
def test_the_packed_scan_equals_numpy_on_decoded_samples(samples: int) -> None:
    rng = np.random.default_rng(samples)
    adc = rng.integers(0, 4096, (37, samples), dtype=np.uint16)
    got = scan_packed(pack12(adc).tobytes(), 37, samples)
    a = adc.astype(np.float64)
    numpy = np.stack([a.mean(axis=1), a.std(axis=1), a.max(axis=1)], axis=1)
    np.testing.assert_allclose(got, numpy, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(scan_samples(adc), numpy, rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize("samples", [64, 63])
def test_classes_do_not_depend_on_the_pieces_the_scan_reads(tmp_path: Path, samples: int) -> None:
    """The CRO segment is read and scanned in pieces of a few channels: same figures as in one."""
    geo = geometry(f"6x6x6:{samples}")
    rng = np.random.default_rng(samples)
    fc = geo.fragment_channels
    events = []
    for t, crps in enumerate([(0, 3), (1,), ()]):
        adc = daq_adc(geo, rng, crps)
        events.append(
            [
                make_fragment(
                    adc[k * fc : (k + 1) * fc],
                    run=5,
                    trigger_type=int(TriggerType.BEAM),
                    trigger_number=t,
                    time_ns=t,
                    event_number=t,
                    missing_cards=geo.missing_cards(k),
                    lro=lro(rng, flash=bool(crps)) if k == 0 else b"",
                )
                for k in range(geo.l1_builders)
            ]
        )
    path = tmp_path / "5_0_a.dat"
    write_pddp_file(path, 5, events)
    with PDDPFile(path, geo) as f:
        whole = [Classifier(geo).classify(f, i) for i in range(f.n_events)]
        pieces = [Classifier(geo, piece_bytes=700).classify(f, i) for i in range(f.n_events)]
    assert [e.hit_channels for e in whole] == [(40, 0, 0, 40), (0, 40, 0, 0), (0, 0, 0, 0)]
    assert pieces == whole


def test_policy_actions_and_prescale_in_trigger_order() -> None:
    assert Action.parse("cosmic", "prescale:3").n == 3
    assert str(Action.parse("beam", " KEEP ")) == "keep"
    for bad in ("prescale:0", "prescale:x", "maybe"):
        with pytest.raises(PolicyError, match=r"final\.empty"):
            Action.parse("empty", bad)
    pol = Policy("t", {k: Action(1) for k in EventClass} | {EventClass.COSMIC: Action(3)})
    classes = [EventClass.COSMIC] * 7 + [EventClass.BEAM]
    got = pol.decide(classes)
    assert got == [Decision.KEPT, *[Decision.PRESCALED_OUT] * 2, Decision.KEPT,
                   *[Decision.PRESCALED_OUT] * 2, Decision.KEPT, Decision.KEPT]  # fmt: skip
    table = count(classes, got)
    assert table["cosmic"] == {"kept": 3, "prescaled_out": 4, "dropped": 0}
    assert table["empty"] == {"kept": 0, "prescaled_out": 0, "dropped": 0}
