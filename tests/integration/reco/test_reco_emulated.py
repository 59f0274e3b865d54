"""``farmtools reco`` on emulated files, checked against the emulator's truth sidecar.

One small run (8 events, fixed seed) is emulated and reconstructed once per module; the tests
compare what the reconstruction found (track count, angles in both views, the anode-cathode
flag, charges, 3D lengths, dQ/ds) with the true tracks, then break files on purpose.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uproot
from typer.testing import CliRunner

from farmtools.cli import app
from farmtools.detector import WA105_3X1X1 as G
from farmtools.emulator.daq import RunPlan, emulate_run
from farmtools.emulator.settings import EmulatorSettings
from farmtools.emulator.truth import truth_path
from farmtools.job.exitcodes import EX_DATAERR, EX_NOINPUT
from farmtools.rawdata import RawFile
from farmtools.rawdata.format import EVENT_HEADER_SIZE, RUN_HEADER_SIZE
from farmtools.reco.output import EVENT_COLUMNS, TREES

runner = CliRunner()
N_EVENTS = 8


def _reco(raw: Path, out: Path) -> Any:
    return runner.invoke(app, ["reco", str(raw), "-o", str(out), "--detector", "3x1x1"])


@pytest.fixture(scope="module")
def reconstructed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    d = tmp_path_factory.mktemp("reco")
    (info,) = emulate_run(
        d, EmulatorSettings(seed=3, crt_fraction=0.5), RunPlan(run=7, events_per_file=N_EVENTS)
    )
    out = d / "recotask_run7-seq0.root"
    res = _reco(info.path, out)
    assert res.exit_code == 0, res.output
    truth = json.loads(truth_path(info.path).read_text())
    return info.path, out, truth


def _inside_window(t: dict[str, Any]) -> bool:
    """The whole track drifts to the anode inside the 1667-tick readout window."""
    z_max = max(t["entry_cm"][2], t["exit_cm"][2])
    return t["t0_us"] >= 0 and t["t0_us"] / G.tick_us + z_max / G.drift_velocity_cm_per_tick < (
        G.samples - 20
    )


def _true_slopes(t: dict[str, Any]) -> tuple[float, float]:
    """dz/du of the true track in view 0 (u = x) and view 1 (u = y)."""
    d = np.subtract(t["exit_cm"], t["entry_cm"])
    return (
        d[2] / d[0] if d[0] else math.inf,
        d[2] / d[1] if d[1] else math.inf,
    )


def _angle(slope: float) -> float:
    """Angle of a dz/du slope in degrees, in (-90, 90]; comparisons are done modulo 180."""
    return math.degrees(math.atan(slope))


def _angle_diff(a: float, b: float) -> float:
    d = abs(_angle(a) - _angle(b)) % 180.0
    return min(d, 180.0 - d)


def test_output_has_every_event_and_opens_in_uproot(
    reconstructed: tuple[Path, Path, dict[str, Any]],
) -> None:
    raw, out, truth = reconstructed
    assert not list(out.parent.glob("*.part"))
    with uproot.open(out) as f:
        for tree in TREES:
            assert tree in f
        ev = f["events"].arrays(library="np")
        assert f["events"].num_entries == N_EVENTS == RawFile.open(raw, G).n_events
        assert set(EVENT_COLUMNS) <= set(ev)
        assert list(ev["trigger_number"]) == [e["trigger_number"] for e in truth["events"]]
        assert list(ev["seconds"]) == [e["seconds"] for e in truth["events"]]
        hits = f["hits"].arrays(library="np")
        assert hits["event"].size == ev["n_hits"].sum()
        assert np.array_equal(hits["trigger_number"], ev["trigger_number"][hits["event"]])
        assert np.array_equal(hits["trigger_time"], ev["trigger_time"][hits["event"]])
        assert f["tracks"].num_entries == ev["n_tracks"].sum()
        ped = f["pedestal"].to_numpy()[0]
        rms = f["rms"].to_numpy()[0]
        # titled with units; a mean per channel has no sqrt(content) error
        assert "fC/cm" in f["hits"].title and "ticks" in f["tracks"].title and f["events"].title
        assert f["pedestal"].title.endswith("(ADC)") and "(ADC)" in f["rms"].title
        assert not f["pedestal"].errors().any()
    assert ped.size == rms.size == G.n_channels
    # the emulator's pedestal is 400 +- 5 ADC, its white noise 1-2 ADC
    assert np.all(np.abs(ped - 400) < 25)
    assert np.all(rms > 0.5) and 0.9 < np.median(rms) < 2.2 and np.quantile(rms, 0.99) < 3


def test_tracks_agree_with_truth(reconstructed: tuple[Path, Path, dict[str, Any]]) -> None:
    _raw, out, truth = reconstructed
    with uproot.open(out) as f:
        tracks = f["tracks"].arrays(library="np")
        hits = f["hits"].arrays(library="np")
    checked = 0
    used: set[tuple[int, int]] = set()
    for ev in truth["events"]:
        i = ev["index"]
        clear = [t for t in ev["tracks"] if _inside_window(t) and t["length_cm"] > 20]
        for t in clear:
            slopes = _true_slopes(t)
            partners = []
            for view in (0, 1):
                cand = np.flatnonzero((tracks["event"] == i) & (tracks["view"] == view))
                assert cand.size, f"event {i}: no track in view {view}"
                k = int(min(cand, key=lambda c: _angle_diff(tracks["slope"][c], slopes[view])))
                assert (i, k) not in used
                used.add((i, k))
                partners.append(k)
                assert _angle_diff(float(tracks["slope"][k]), slopes[view]) < 1.0, (i, view)
                mine = (hits["event"] == i) & (hits["track"] == tracks["id"][k])
                charge = float(hits["charge"][mine].sum())
                # where two tracks cross in a view, the hits at the crossing go to one of them
                rel = 0.05 if len(ev["tracks"]) == 1 else 0.10
                assert charge == pytest.approx(t["collected_fc"][view], rel=rel), (i, view)
                assert bool(tracks["crossing"][k]) == bool(t["anode_cathode"]), (i, view)
                assert float(tracks["length3d"][k]) == pytest.approx(t["length_cm"], rel=0.05)
                # dQ/ds: charge per 3D centimetre; a truncated mean of the non-edge hits is
                # within 10 % of the true mean charge per cm of the muon in this view (its
                # delta rays are other tracks, and the truncation drops where they start; a
                # stopping muon's Bragg rise raises its mean, not what a MIP's hits show)
                dq = np.sort(hits["dqds"][mine & ~hits["edge"]])
                tm = dq[: int(0.8 * dq.size)].mean()
                muon = t["collected_fc"][view] - t.get("delta_collected_fc", [0.0, 0.0])[view]
                if not t.get("stops"):
                    assert tm == pytest.approx(muon / t["length_cm"], rel=0.15)
                assert np.all(np.isfinite(hits["ds"][mine]) & (hits["ds"][mine] >= G.pitch_cm))
            k0, k1 = partners
            assert tracks["partner"][k0] == tracks["id"][k1]
            assert tracks["partner"][k1] == tracks["id"][k0]
            checked += 1
    assert checked >= N_EVENTS - 2  # most events have a clear triggering track
    # few tracks beyond the true ones (a window-crossing track may be found in pieces)
    n_true = sum(len(ev["tracks"]) for ev in truth["events"])
    assert tracks["id"].size <= 2 * n_true + 2


def test_hits_carry_what_the_analyses_need(
    reconstructed: tuple[Path, Path, dict[str, Any]],
) -> None:
    _raw, out, _truth = reconstructed
    with uproot.open(out) as f:
        hits = f["hits"].arrays(library="np")
    on_track = hits["track"] >= 0
    assert on_track.sum() > 0.8 * hits["view"].size * 0.5
    matched = on_track & np.isfinite(hits["x"])
    assert np.all((hits["x"][matched] > -1) & (hits["x"][matched] < 101))
    assert np.all((hits["y"][matched] > -1) & (hits["y"][matched] < 301))
    assert np.all((hits["lem"][matched] >= 1) & (hits["lem"][matched] <= 12))
    assert np.all(hits["drift_us"][matched] >= -1)
    assert np.all(hits["channel"][hits["view"] == 0] < 320)
    assert np.all(hits["channel"][hits["view"] == 1] < 960)


def test_opens_in_root_itself(reconstructed: tuple[Path, Path, dict[str, Any]]) -> None:
    """PyPI ``root`` (ROOT 6.40) reads the file: trees, entries, a branch value, a histogram."""
    pytest.importorskip("ROOT", reason="PyPI root (ROOT 6.40) is not installed")
    _raw, out, _truth = reconstructed
    with uproot.open(out) as f:
        n_hits = f["hits"].num_entries
        first_charge = float(f["hits"]["charge"].array(library="np")[0])
    script = (
        "import sys, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "import ROOT\n"
        "f = ROOT.TFile.Open(sys.argv[1])\n"
        "assert f and not f.IsZombie()\n"
        "t = f.Get('hits'); t.GetEntry(0)\n"
        "print(f.Get('events').GetEntries(), t.GetEntries(), f.Get('tracks').GetEntries(),"
        " f.Get('pedestal').GetNbinsX(), t.charge)\n"
        "print(f.Get('rms').GetTitle())\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", script, str(out)], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    fields = res.stdout.splitlines()[0].split()
    assert res.stdout.splitlines()[1].startswith("noise RMS per channel")
    assert int(fields[0]) == N_EVENTS and int(fields[1]) == n_hits and int(fields[3]) == 1280
    assert float(fields[4]) == pytest.approx(first_charge, rel=1e-6)


def test_trigger_type_and_dq_flag_above_127_are_stored_unsigned(tmp_path: Path) -> None:
    """Both are bytes of the event header (0-255); ``raw inspect`` takes them as valid."""
    (info,) = emulate_run(
        tmp_path, EmulatorSettings(seed=5), RunPlan(run=9, events_per_file=2, compress=True)
    )
    with RawFile.open(info.path, G) as f:
        offsets = f.event_offsets
        dq = [h.dq_flag for h in f.headers]
    with info.path.open("r+b") as fh:
        fh.seek(offsets[0] + 2)  # trigger type: after the 2-byte magic
        fh.write(bytes([200]))
        fh.seek(offsets[1] + 26)  # dq flag: magic, type, 3 pad, trigger number, s, ns
        fh.write(bytes([dq[1] | 0x80]))
    with RawFile.open(info.path, G) as f:
        assert [f.headers[0].trigger_type, f.headers[1].dq_flag] == [200, dq[1] | 0x80]
    out = tmp_path / "out.root"
    res = _reco(info.path, out)
    assert res.exit_code == 0, res.output
    with uproot.open(out) as f:
        ev = f["events"].arrays(["trigger_type", "dq_flag", "compressed"], library="np")
    assert ev["trigger_type"][0] == 200 and ev["dq_flag"][1] == dq[1] | 0x80
    assert ev["dq_flag"][0] == dq[0] and ev["compressed"].all()


# --- bad input -------------------------------------------------------------------------------
def test_truncated_file_exits_65_naming_file_event_offset(
    reconstructed: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    raw, _out, _truth = reconstructed
    bad = tmp_path / "run7-seq0.dat"
    cut = RUN_HEADER_SIZE + 2 * (EVENT_HEADER_SIZE + G.payload_bytes) + 1000
    with raw.open("rb") as src:
        bad.write_bytes(src.read(cut))
    out = tmp_path / "out.root"
    res = _reco(bad, out)
    assert res.exit_code == EX_DATAERR, res.output
    assert "corrupt input" in res.output and str(bad) in res.output
    assert "event 2" in res.output and "byte offset" in res.output
    assert not out.exists() and not list(tmp_path.glob("*.part"))


def test_bad_magic_exits_65(
    reconstructed: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    raw, _out, _truth = reconstructed
    bad = tmp_path / "run7-seq0.dat"
    shutil.copy(raw, bad)
    offset = RUN_HEADER_SIZE + EVENT_HEADER_SIZE + G.payload_bytes  # event 1
    with bad.open("r+b") as f:
        f.seek(offset)
        f.write(b"\x00\x00")
    res = _reco(bad, tmp_path / "out.root")
    assert res.exit_code == EX_DATAERR
    assert "bad event magic" in res.output and f"byte offset {offset}" in res.output


def test_corrupt_compressed_payload_midway_exits_65_and_leaves_no_output(
    tmp_path: Path,
) -> None:
    (info,) = emulate_run(
        tmp_path, EmulatorSettings(seed=5), RunPlan(run=8, events_per_file=2, compress=True)
    )
    with RawFile.open(info.path, G) as f:
        start = f.event_offsets[1] + EVENT_HEADER_SIZE
        size = f.headers[1].payload_size
    with info.path.open("r+b") as fh:  # garbage in the middle of event 1's bit stream
        fh.seek(start + size // 2)
        fh.write(b"\xff" * 64)
    out = tmp_path / "out.root"
    res = _reco(info.path, out)
    assert res.exit_code == EX_DATAERR, res.output
    assert "event 1" in res.output and "compressed" in res.output
    assert not out.exists() and not list(tmp_path.glob("*.part"))


def test_missing_input_exits_66(tmp_path: Path) -> None:
    res = _reco(tmp_path / "run1-seq0.dat", tmp_path / "out.root")
    assert res.exit_code == EX_NOINPUT
    assert "run1-seq0.dat" in res.output


def test_a_job_given_its_detector_does_not_load_the_configuration_model(tmp_path: Path) -> None:
    # the command line's error handling imported farmtools.config (pydantic, ~0.1-0.2 s of
    # every job's start-up) even when the job names its detector and reads no configuration
    code = (
        "import sys\n"
        "from farmtools.cli import app\n"
        "try:\n"
        f"    app(['reco', {str(tmp_path / 'run1-seq0.dat')!r}, '-o', 'x.root', '--detector',"
        " '3x1x1'])\n"
        "except SystemExit as exc:\n"
        "    print(exc.code, 'farmtools.config' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [str(EX_NOINPUT), "False"], done.stderr


def test_compressed_and_uncompressed_copies_give_the_same_reconstruction(tmp_path: Path) -> None:
    """Same seed, both payload encodings: same samples, so the same hits and tracks."""
    outs = []
    for compress in (False, True):
        d = tmp_path / ("c" if compress else "u")
        (info,) = emulate_run(
            d, EmulatorSettings(seed=11), RunPlan(run=3, events_per_file=2, compress=compress)
        )
        out = d / "out.root"
        res = _reco(info.path, out)
        assert res.exit_code == 0, res.output
        with uproot.open(out) as f:
            outs.append(
                (f["hits"].arrays(library="np"), f["events"].arrays(library="np")["compressed"])
            )
    (hits_u, comp_u), (hits_c, comp_c) = outs
    assert not comp_u.any() and comp_c.all()
    assert hits_u["charge"].size > 0
    for key in ("channel", "view", "tick", "charge", "track", "dqds"):
        assert np.array_equal(hits_u[key], hits_c[key], equal_nan=True), key


def test_one_job_several_files_each_classified_on_its_own(
    reconstructed: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    """A missing file between two good ones: both good outputs written, one status line each."""
    raw, reference, _truth = reconstructed
    outs = [tmp_path / f"out{i}.root" for i in range(3)]
    status = tmp_path / "status.jsonl"
    args = ["reco", str(raw), str(tmp_path / "run7-seq9.dat"), str(raw), "--detector", "3x1x1"]
    for out in outs:
        args += ["-o", str(out)]
    res = runner.invoke(app, [*args, "--status", str(status)])
    assert res.exit_code == EX_NOINPUT, res.output
    lines = [json.loads(line) for line in status.read_text().splitlines()]
    assert [r["exit"] for r in lines] == [0, EX_NOINPUT, 0]
    assert [r["events"] for r in lines] == [N_EVENTS, 0, N_EVENTS]
    assert "run7-seq9.dat" in lines[1]["error"] and lines[0]["error"] is None
    assert not outs[1].exists()
    with uproot.open(reference) as ref, uproot.open(outs[2]) as again:
        a = ref["hits"].arrays(library="np")
        b = again["hits"].arrays(library="np")
        assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)
    res = runner.invoke(app, ["reco", str(raw), "-o", str(outs[0]), "-o", str(outs[1])])
    assert res.exit_code == 2, res.output  # a usage error: nothing reconstructed
