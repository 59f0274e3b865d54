"""The reconstruction of a 6x6x6 file: tracks per CRP, joined across CRPs, timed by their flash."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import uproot

from farmtools.analysis.cosmics import CosmicSelection, cosmic_subsample
from farmtools.analysis.hits import read_reco_file
from farmtools.detector import geometry
from farmtools.emulator.muons import Track
from farmtools.emulator.settings import EmulatorSettings
from farmtools.reco import driver
from farmtools.reco.driver import reconstruct_file
from farmtools.reco.t0match import TAG_COSMIC
from tests.unit.reco import pddp_synth

#: 1500 ticks: 600 us, charge from the top ~100 cm of the drift at t0 = 0.
G = geometry("6x6x6-full").with_samples(1500)


def test_reco_of_a_6x6x6_file_joins_crps_and_times_tracks(tmp_path: Path) -> None:
    muons = [
        # from CRP 0 into CRP 1 across x = 300, arriving from 20 to 300 us
        Track((200.0, 120.0, 0.0), (420.0, 180.0, 45.0), 20.0, False),
        # crossed 250 us before the trigger: its charge from below 40 cm is in the window
        Track((100.0, 450.0, 40.0), (160.0, 520.0, 110.0), -250.0, False),
        # in CRP 3, 150 us after the trigger
        Track((450.0, 350.0, 5.0), (520.0, 500.0, 60.0), 150.0, False),
    ]
    rng = np.random.default_rng(2)
    adc = pddp_synth.event_adc(G, muons, EmulatorSettings(seed=1), seed=4)
    lro = pddp_synth.light(G, muons, rng)
    # twice: the second is read by the prefetching reader, and must come out the same
    raw = pddp_synth.write_file(tmp_path / "7_0_a.dat", G, [(adc, lro), (adc, lro)])
    out = tmp_path / "reco.root"
    stats = reconstruct_file(raw, out, G, threads=2)
    assert stats.n_events == 2 and stats.threads == 2 and "t0" in stats.timing
    with uproot.open(out) as f:
        ev = f["events"].arrays(library="np")
        both = f["tracks"].arrays(library="np")
        hits = f["hits"].arrays(["event", "crp", "track", "drift_us", "tick"], library="np")
        assert f["rms"].values().size == G.n_channels
    assert list(ev["n_flashes"]) == [3, 3]
    trk = {k: v[both["event"] == 0] for k, v in both.items()}
    again = {k: v[both["event"] == 1] for k, v in both.items()}
    for k in trk:
        if k not in ("event", "trigger_number", "trigger_time"):
            assert np.array_equal(trk[k], again[k], equal_nan=True), k
    hits = {k: v[hits["event"] == 0] for k, v in hits.items()}
    matched = trk["track3d"] >= 0
    # the crossing muon: view-matched in CRP 0 and CRP 1, one 3D track
    joined = {int(t) for t in trk["track3d"][matched & (trk["crp"] == 0)]} & {
        int(t) for t in trk["track3d"][matched & (trk["crp"] == 1)]
    }
    assert len(joined) == 1
    assert len(set(trk["track3d"][matched])) == 3
    for muon, crp in zip(muons, (0, 2, 3), strict=True):
        mine = matched & (trk["crp"] == crp)
        assert mine.sum() == 2, crp
        assert np.allclose(trk["t0_us"][mine], muon.t0_us, atol=1.0)
        assert np.all(trk["tag"][mine] == TAG_COSMIC)
        assert np.all(trk["drift_min_cm"][mine] > -3.0)
        assert np.all(trk["drift_max_cm"][mine] < muon.exit[2] + 3.0)
    # hits of a timed track: drift time from the flash, not from the trigger
    ids = trk["id"][matched & (trk["crp"] == 2)]
    h = np.isin(hits["track"], ids)
    assert np.allclose(hits["drift_us"][h], hits["tick"][h] * G.tick_us + 250.0, atol=0.01)
    assert set(np.unique(hits["crp"][h])) == {2}
    # the analyses' view of the file: the selected cosmics only (none of these is 150 cm deep)
    assert read_reco_file(out)["event"].size == 0
    with uproot.open(out) as f:
        h = f["hits"].arrays(["event", "track", "lem", "crp"], library="np")
        t = f["tracks"].arrays(library="np")
    loose = CosmicSelection(min_length_cm=20.0, min_drift_cm=20.0)
    sub_hits, sub_tracks = cosmic_subsample(h, t, G, loose)
    assert set(np.unique(sub_hits["crp"])) == {0, 1, 2, 3}
    assert sub_tracks["crossing"].sum() == 16  # 2 events x 4 segments x 2 views, timed
    anode = G.anode_geometry()
    assert anode.n_lems == 144
    for crp in range(4):
        lems = sub_hits["lem"][(sub_hits["crp"] == crp) & (sub_hits["lem"] > 0)]
        ix, iy = (lems - 1) % 12, (lems - 1) // 12
        assert np.all(ix // 6 == crp % 2) and np.all(iy // 6 == crp // 2)


def test_threads_change_nothing_and_a_failed_event_leaves_no_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # three different events: on 2 threads each event's joining, t0 and write run beside the
    # next event's CRPs while the readers refill their buffers, so a mix-up would show
    muons = [
        Track((200.0, 120.0, 0.0), (420.0, 180.0, 45.0), 20.0, False),
        Track((100.0, 450.0, 40.0), (160.0, 520.0, 110.0), -250.0, False),
        Track((450.0, 350.0, 5.0), (520.0, 500.0, 60.0), 150.0, False),
    ]
    rng = np.random.default_rng(5)
    events = [
        (
            pddp_synth.event_adc(G, muons[k:], EmulatorSettings(seed=1), seed=10 + k),
            pddp_synth.light(G, muons[k:], rng),
        )
        for k in range(3)
    ]
    raw = pddp_synth.write_file(tmp_path / "8_0_a.dat", G, events)
    trees = []
    for threads in (1, 2):
        out = tmp_path / f"reco{threads}.root"
        assert reconstruct_file(raw, out, G, threads=threads).n_events == 3
        with uproot.open(out) as f:
            trees.append({k: f[k].arrays(library="np") for k in ("events", "hits", "tracks")})
    one, two = trees
    assert [int((one["tracks"]["event"] == e).sum()) for e in range(3)] != [0, 0, 0]
    assert list(one["events"]["n_flashes"]) == [3, 2, 1]
    for tree, columns in one.items():
        for name, values in columns.items():
            assert np.array_equal(values, two[tree][name], equal_nan=True), (tree, name)

    calls: list[int] = []
    real = driver.finish_detector_event

    def fails_on_the_second(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("t0 step failed")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(driver, "finish_detector_event", fails_on_the_second)
    out = tmp_path / "failed.root"
    with pytest.raises(RuntimeError, match="t0 step failed"):
        reconstruct_file(raw, out, G, threads=2)
    assert not out.exists() and not (tmp_path / "failed.root.part").exists()
