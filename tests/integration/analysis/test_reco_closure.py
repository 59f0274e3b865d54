"""Closure through the whole chain: emulator -> raw files -> reconstruction -> ROOT -> analyses.

Four raw files of 50 events (tau = 3 ms, a non-uniform LEM gain map, asymmetry 0.1) are
emulated and reconstructed once for the module (about 12 s on one core); the analyses must
find the injected values (issue 5: tau within 2 standard errors and 15 %, each LEM's gain
within 5 %, the asymmetry within 0.02).  The same files feed the command line and the pipeline
hook, whose summaries the monitor's reader must parse.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from farmtools.analysis.gain import gain
from farmtools.analysis.hits import read_hits
from farmtools.analysis.purity import purity
from farmtools.config import DatabaseSection, FarmConfig, FarmSection, ProcessingSection
from farmtools.detector import WA105_3X1X1

RUN = 4242
TAU_US = 3000.0
ASYMMETRY = 0.1
GAIN_MAP = {lem: 15.0 + 1.0 * lem + (2.0 if lem % 2 else 0.0) for lem in range(1, 13)}


@pytest.fixture(scope="module")
def reco_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from farmtools.emulator.daq import RunPlan, emulate_run
    from farmtools.emulator.settings import EmulatorSettings
    from farmtools.reco.driver import reconstruct_file

    home = tmp_path_factory.mktemp("farm")
    raw_dir = home / "raw"
    out_dir = home / "storage" / "output" / f"run{RUN}"
    out_dir.mkdir(parents=True)
    settings = EmulatorSettings(
        lifetime_ms=TAU_US / 1000, gain_map=GAIN_MAP, asymmetry=ASYMMETRY, seed=3
    )
    files = emulate_run(raw_dir, settings, RunPlan(run=RUN, files=4, events_per_file=50))
    outs = []
    for f in files:
        out = out_dir / f"recotask_run{RUN}-seq{f.seq}.root"
        reconstruct_file(f.path, out, WA105_3X1X1)
        outs.append(out)
    return outs


def test_analyses_recover_the_injected_truth_from_reconstructed_files(
    reco_files: list[Path],
) -> None:
    hits = read_hits(reco_files)
    p = purity(hits)
    c = p.combined
    assert abs(c.tau_us - TAU_US) < 2 * c.error_us, f"tau {c.tau_us:.0f} +- {c.error_us:.0f}"
    assert abs(c.tau_us / TAU_US - 1) < 0.15
    assert p.n_tracks >= 100
    g = gain(hits, c.tau_us)
    for r in g.lems:
        assert abs(r.gain / GAIN_MAP[r.lem] - 1) < 0.05, f"LEM {r.lem}: gain {r.gain:.2f}"
        assert abs(r.asymmetry - ASYMMETRY) < 0.02, f"LEM {r.lem}: A {r.asymmetry:.3f}"
    # Relative gains are independent of the calibration constants: the map's shape closes.
    measured = np.array([r.gain for r in g.lems])
    truth = np.array([GAIN_MAP[r.lem] for r in g.lems])
    ratio = measured / truth
    assert ratio.std() / ratio.mean() < 0.02


def test_command_line_writes_the_seed_summary_json_and_root(
    reco_files: list[Path], tmp_path: Path
) -> None:
    import uproot

    from farmtools.cli import app
    from farmtools.monitor.summary import read_json_summary, read_seed_summary

    runner = CliRunner()
    files = [str(f) for f in reco_files]
    pur = tmp_path / f"purity_run{RUN}.txt"
    res = runner.invoke(app, ["analyse", "purity", *files, "-o", str(pur)])
    assert res.exit_code == 0, res.output
    lines = pur.read_text().splitlines()
    assert len(lines) == 2 and len(lines[0].split()) == 2 and len(lines[1].split()) == 4
    assert read_seed_summary(pur).lems == {}

    full = tmp_path / f"analysis_run{RUN}.txt"
    lem_root = tmp_path / "lems.root"
    res = runner.invoke(
        app,
        ["analyse", "gain", *files, "--purity", str(pur), "-o", str(full), "--root", str(lem_root)],
    )
    assert res.exit_code == 0, res.output
    seed = read_seed_summary(full)
    js = read_json_summary(full.with_suffix(".json"))
    assert seed.run == js.run == RUN
    assert sorted(seed.lems) == list(range(1, 13))
    assert seed.lifetime_us == pytest.approx(js.lifetime_us, abs=0.06)
    doc = json.loads(full.with_suffix(".json").read_text())
    for lem in doc["lems"]:
        n = lem["lem"]
        assert seed.lems[n].dqds == pytest.approx(tuple(lem["dqds"]), abs=6e-5)
        assert js.lems[n].gain == pytest.approx(lem["gain"])
        assert abs(lem["gain"] / GAIN_MAP[n] - 1) < 0.05
    with uproot.open(lem_root) as f:
        values, xe, ye = f["gain"].to_numpy()
    assert values.shape == (2, 6) and xe[-1] == 100.0 and ye[-1] == 300.0
    for lem in doc["lems"]:
        assert values[lem["ix"], lem["iy"]] == pytest.approx(lem["gain"])

    # Bad input: exit code 2 and the file named.
    bad = tmp_path / "bad.root"
    bad.write_bytes(b"not a root file")
    res = runner.invoke(app, ["analyse", "purity", str(bad)])
    assert res.exit_code == 2 and "bad.root" in res.output


def test_pipeline_analyses_a_complete_group_once(reco_files: list[Path], tmp_path: Path) -> None:
    from farmtools.analysis.pipeline import run_ready_analyses
    from farmtools.bookkeeping.db import Bookkeeping
    from farmtools.bookkeeping.states import Event, FileState
    from farmtools.monitor.summary import read_json_summary, read_seed_summary

    cfg = FarmConfig(
        farm=FarmSection(home=tmp_path),
        database=DatabaseSection(url=f"sqlite:///{tmp_path / 'bk.sqlite'}"),
        processing=ProcessingSection(program="reco"),
        base_dir=tmp_path,
    )
    bk = Bookkeeping(cfg.database_url)
    try:
        names = []
        for seq, out in enumerate([*reco_files, reco_files[0]]):
            name = f"run{RUN}-seq{seq}.dat"
            bk.register_file(
                name, source_path=f"/daq/{name}", run=RUN, seq=seq, size=1, daq_write_time=None
            )
            names.append(name)
            if seq < 3:
                bk.transition(
                    name,
                    FileState.DETECTED,
                    FileState.RECONSTRUCTED,
                    Event.RECONSTRUCTED,
                    {"output": str(out)},
                )
        assert run_ready_analyses(cfg, bk) == []  # 3 < group size 4
        check_only = cfg.model_copy(update={"processing": ProcessingSection(program="check")})
        # The 4th file's output is found by the farm layout (no 'output' in its story).
        layout = cfg.path(cfg.storage.output) / f"run{RUN}" / f"recotask_run{RUN}-seq3.root"
        layout.parent.mkdir(parents=True)
        layout.write_bytes(reco_files[3].read_bytes())
        bk.transition(names[3], FileState.DETECTED, FileState.RECONSTRUCTED, Event.RECONSTRUCTED)
        assert run_ready_analyses(check_only, bk) == []  # program=check: no ROOT output to use
        assert bk.get(names[3]).state is FileState.RECONSTRUCTED
        written = run_ready_analyses(cfg, bk)
        assert [p.name for p in written] == [f"analysis_run{RUN}_seq0-3.txt"]
        assert written[0].parent == cfg.path(cfg.analysis.summary_dir) / f"run{RUN}"
        assert written[0].with_suffix(".root").exists()
        for name in names[:4]:
            assert bk.get(name).state is FileState.ANALYSED
            story = [e for e in bk.story(name) if e.event == Event.ANALYSED]
            assert story and abs(story[0].details["lifetime_combined_us"] / TAU_US - 1) < 0.15
        assert bk.get(names[4]).state is FileState.DETECTED
        assert run_ready_analyses(cfg, bk) == []  # nothing left to do

        # What the monitor reads from the summary directory.
        seed = read_seed_summary(written[0])
        twin = read_json_summary(written[0].with_suffix(".json"))
        assert seed.run == twin.run == RUN
        assert len(seed.lems) == len(twin.lems) == 12

        # A group with an unreadable output: that file fails with an alarm, nothing crashes.
        broken = tmp_path / "broken.root"
        broken.write_bytes(b"\0" * 100)
        for seq in range(10, 14):
            name = f"run{RUN}-seq{seq}.dat"
            bk.register_file(
                name, source_path=f"/daq/{name}", run=RUN, seq=seq, size=1, daq_write_time=None
            )
            out = broken if seq == 10 else reco_files[seq - 10]
            bk.transition(
                name,
                FileState.DETECTED,
                FileState.RECONSTRUCTED,
                Event.RECONSTRUCTED,
                {"output": str(out)},
            )
        assert run_ready_analyses(cfg, bk) == []
        assert bk.get(f"run{RUN}-seq10.dat").state is FileState.FAILED
        assert any(a.source == "analysis" for a in bk.alarms())
        assert bk.get(f"run{RUN}-seq11.dat").state is FileState.RECONSTRUCTED
    finally:
        bk.close()
