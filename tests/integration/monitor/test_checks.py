"""The data-quality checks on runs broken on purpose: each fault gives the right state and alarm.

A real SQLite bookkeeping, summary files and reco ROOT files of known content (a lifetime drop,
a LEM gain drop, a noisy card, failed jobs), and one run through the real emulator and
reconstruction (a dead DAQ card: a block of channels); a clean run raises no alarm.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from farmtools.bookkeeping import Bookkeeping, Event, FileState
from farmtools.cli import app
from farmtools.monitor.app import Monitor
from farmtools.monitor.checks import State
from tests.integration.monitor.farmdata import (
    fail_attempts,
    make_config,
    write_reco,
    write_summary,
)
from tests.states import walk

NOW = datetime.now(UTC).replace(microsecond=0)


def _cells(m: Monitor, run: int | None = None) -> dict[str, dict[str, Any]]:
    ov = m.overview(run)
    return {f"{c['task']}/{c['item']}": c for t in ov["tasks"] for c in t["cells"]}


def _open(bk: Bookkeeping) -> set[str]:
    return {a.kind for a in bk.alarms()}


def _fresh(tmp_path: Path, **monitor: Any) -> tuple[Monitor, Bookkeeping, Path]:
    cfg = make_config(tmp_path / "farm", **monitor)
    bk = Bookkeeping.from_config(cfg)
    return Monitor(cfg, bk), bk, cfg.path(cfg.analysis.summary_dir)


def _check(m: Monitor) -> set[str]:
    m.results.refresh(force=True)
    return {b.kind for b in m.checker.check()}


def test_faults_of_known_content_each_raise_their_state_and_alarm(tmp_path: Path) -> None:
    m, bk, summaries = _fresh(tmp_path)
    home = m.cfg.home
    # run 1, clean: the reference of everything
    write_summary(summaries, 1, NOW - timedelta(hours=3), (7000.0, 6900.0))
    write_reco(home, 1, dead=[], noisy=[])
    assert _check(m) == set()
    cells = _cells(m)
    assert m.overview()["run"] == 1
    assert {c["state"] for c in cells.values()} <= {"good", "none", "too_few"}
    assert cells["purity/vs_time"]["state"] == "good"
    assert cells["pedestals/noise"]["state"] == "good"
    assert _open(bk) == set()
    m.references.pin("*", 1)  # as `farmtools monitor reference '*' 1` does

    # run 2: the lifetime dropped below the limit
    write_summary(summaries, 2, NOW - timedelta(hours=2), (1500.0, 6800.0))
    write_reco(home, 2, dead=[], noisy=[])
    assert _check(m) == {"lifetime_low:view0"}  # one alarm for one fault (the check covers it)
    cells = _cells(m)
    assert cells["purity/vs_time"]["state"] == "error"
    assert "view 0 = 1500 us, below 2000 us" in cells["purity/vs_time"]["reason"]
    assert m.overview()["worst"] == "error"
    assert cells["purity/vs_time"]["reference"] == 1

    # run 3: the lifetime is back (its alarm cleared), LEM 5's gain fell by 40%
    write_summary(summaries, 3, NOW - timedelta(hours=1), (7000.0, 6900.0), gains={5: (60.0, 60.0)})
    write_reco(home, 3, dead=[], noisy=[])
    assert _check(m) == {"check:lem_gain/map"}
    cells = _cells(m)
    assert cells["purity/vs_time"]["state"] == "good"
    assert cells["lem_gain/map"]["state"] == "error"
    assert "LEM 5 12.0 (-40% vs run 1)" in cells["lem_gain/map"]["reason"]
    assert _open(bk) == {"check:lem_gain/map"}

    # run 4 starts: reconstructed, not analysed yet: too few to judge, the alarm stays open
    write_reco(home, 4, dead=[], noisy=[])
    assert _check(m) == set()
    assert _cells(m)["lem_gain/map"]["state"] == "too_few"
    assert _open(bk) == {"check:lem_gain/map"}

    # run 4 analysed: gains back; a noisy card (64 channels in a row)
    write_summary(summaries, 4, NOW, (7000.0, 6900.0))
    write_reco(home, 4, seq=1, dead=[], noisy=list(range(64, 128)))
    assert _check(m) == {"bad_channels"}
    cells = _cells(m)
    assert cells["lem_gain/map"]["state"] == "good"
    noise = cells["pedestals/noise"]
    assert noise["state"] == "error" and "64 noisy (view 0: 64-127) new" in noise["reason"]
    assert noise["details"]["noisy"] == list(range(64, 128))
    assert _open(bk) == {"bad_channels"}

    # stored per run: run 2 keeps its verdict; a run nobody knows is not judged (nor stored)
    assert m.checks.run_state(2)[0] is State.ERROR
    assert _cells(m, 77)["purity/vs_time"]["reason"] == "not judged yet"
    assert m.checks.for_run(77) == []
    # a known run whose verdicts are gone (a database restored, say) is judged again on demand
    from sqlalchemy import delete

    from farmtools.bookkeeping.schema import dqm_checks

    with bk.engine.begin() as conn:
        conn.execute(delete(dqm_checks).where(dqm_checks.c.run == 3))
    assert _cells(m, 3)["lem_gain/map"]["state"] == "error"
    assert m.checks.run_state(3)[0] is State.ERROR
    assert m.checks.run_state(3)[1] == ["lem_gain/map: " + _cells(m, 3)["lem_gain/map"]["reason"]]
    # /metrics: the cell states of the newest run, and the worst
    from prometheus_client.parser import text_string_to_metric_families
    from starlette.testclient import TestClient

    from farmtools.monitor.app import build_app

    with TestClient(build_app(m)) as c:
        text = c.get("/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }
    key = (("item", "noise"), ("scope", "run"), ("task", "pedestals"))
    assert samples[("farmtools_check_state", key)] == int(State.ERROR)
    key = (("item", "map"), ("scope", "run"), ("task", "lem_gain"))
    assert samples[("farmtools_check_state", key)] == int(State.GOOD)
    assert samples[("farmtools_check_worst", ())] == int(State.ERROR)
    assert samples[("farmtools_check_run", ())] == 4
    bk.close()


def test_failed_files_not_attempts_and_a_clean_farm_is_green(tmp_path: Path) -> None:
    m, bk, summaries = _fresh(tmp_path, failed_files_max=3)
    write_summary(summaries, 7, NOW, (7000.0, 6900.0))
    # written 5 min before they are stored: now, not NOW (the module's import time, which in a
    # whole-suite run lies many minutes back and would make the latency check warn)
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    for seq in range(6):
        name = f"run7-seq{seq}.dat"
        bk.register_file(
            name, source_path=f"/evb/{name}", run=7, seq=seq, size=10, daq_write_time=t0
        )
        bk.transition(name, FileState.DETECTED, FileState.COPYING, Event.COPY_STARTED)
        bk.transition(name, FileState.COPYING, FileState.STORED, Event.VERIFIED)
    assert _check(m) == set()
    cells = _cells(m)
    assert cells["dataflow/jobs"]["state"] == "good"
    assert cells["dataflow/latency"]["state"] == "good"
    assert cells["dataflow/stuck"]["state"] == "good"
    assert _open(bk) == set()

    # one file failed after 7 attempts: ONE failed file, a warning, no alarm
    fail_attempts(bk, "run7-seq0.dat", range(1, 8), "exit")
    walk(bk, "run7-seq0.dat", FileState.FAILED, Event.ERROR)
    assert _check(m) == set()
    jobs_cell = _cells(m)["dataflow/jobs"]
    assert jobs_cell["state"] == "warning"
    assert "1 failed files in the newest 500 (7 failed attempts)" in jobs_cell["reason"]
    assert jobs_cell["details"]["names"] == ["run7-seq0.dat"]

    # four files failed: more than failed_files_max, an alarm of its own; cleared once fixed
    for seq in (1, 2, 3):
        walk(bk, f"run7-seq{seq}.dat", FileState.FAILED, Event.ERROR)
    assert _check(m) == {"check:dataflow/jobs"}
    assert _cells(m)["dataflow/jobs"]["state"] == "error"
    for seq in (0, 1, 2, 3):
        walk(bk, f"run7-seq{seq}.dat", FileState.ANALYSED, Event.ANALYSED)
    assert _check(m) == set()
    assert _cells(m)["dataflow/jobs"]["state"] == "good"
    assert _open(bk) == set()  # cleared by the check itself
    bk.close()


def test_dead_card_through_the_real_emulator_and_reco(tmp_path: Path) -> None:
    """One event of each run emulated and reconstructed for real: a dead DAQ card is a block of
    dead channels listed by view and channel; the clean run before it raised nothing."""
    from farmtools.emulator.daq import RunPlan, emulate_run
    from farmtools.emulator.settings import EmulatorSettings

    m, bk, _ = _fresh(tmp_path)
    out = m.cfg.path(m.cfg.storage.output)
    runner = CliRunner()
    dead_block: dict[str, Any] = {}
    for run, bad_cards in ((20, 0), (21, 1)):
        (info,) = emulate_run(
            tmp_path / "raw",
            EmulatorSettings(seed=3, bad_cards=bad_cards),
            RunPlan(run=run, events_per_file=1),
        )
        reco = out / f"run{run}" / f"recotask_run{run}-seq0.root"
        reco.parent.mkdir(parents=True, exist_ok=True)
        res = runner.invoke(app, ["reco", str(info.path), "-o", str(reco), "--detector", "3x1x1"])
        assert res.exit_code == 0, res.output
        new = _check(m)
        noise = _cells(m)["pedestals/noise"]
        assert noise["reason"].startswith(f"run {run}:")
        if bad_cards == 0:
            assert new == set() and noise["state"] == "good" and _open(bk) == set()
        else:
            dead_block = noise
            assert new == {"bad_channels"}
    assert dead_block["state"] == "error"
    dead = dead_block["details"]["dead"]
    assert len(dead) == 64 and dead_block["details"]["noisy"] == []
    assert f"64 dead ({dead_block['details']['dead_text']})" in dead_block["reason"]
    bk.close()


def test_reference_cli_pins_lists_and_clears(tmp_path: Path) -> None:
    cfg_file = tmp_path / "farm.toml"
    cfg_file.write_text('[farm]\nhome = "farm"\n[monitor]\nreferences = {"*" = 3}\n')
    runner = CliRunner()
    args = ["monitor", "reference", "lem_gain/map", "14", "-c", str(cfg_file)]
    assert runner.invoke(app, args).exit_code == 3  # a shift command: no database, none created
    Bookkeeping.from_config(make_config(tmp_path / "farm")).close()
    ok = runner.invoke(app, args)
    assert ok.exit_code == 0, ok.output
    listed = runner.invoke(app, ["monitor", "reference", "-c", str(cfg_file)])
    assert listed.output.splitlines() == ["*\t3\tfarm.toml", "lem_gain/map\t14\tcli"]
    bad = runner.invoke(app, ["monitor", "reference", "lem_gain/nope", "2", "-c", str(cfg_file)])
    assert bad.exit_code == 2 and "has no item 'nope'" in bad.output
    out = runner.invoke(
        app, ["monitor", "reference", "--clear", "lem_gain/map", "-c", str(cfg_file)]
    )
    assert out.exit_code == 0
    again = runner.invoke(
        app, ["monitor", "reference", "--clear", "lem_gain/map", "-c", str(cfg_file)]
    )
    assert again.exit_code == 1


def test_overview_api_names_a_failure_and_a_bad_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.testclient import TestClient

    from farmtools.monitor.app import build_app

    m, bk, _ = _fresh(tmp_path)
    with TestClient(build_app(m)) as c:
        assert c.get("/api/overview").json()["run"] is None  # nothing judged yet: no run
        assert c.get("/api/overview?run=x").status_code == 400

        def away() -> None:
            raise OSError("database is away")

        monkeypatch.setattr(m.checks, "latest_run", away)
        r = c.get("/api/overview")
        assert r.status_code == 500 and r.json()["error"] == "overview: OSError: database is away"
        assert c.post("/api/overview").status_code == 405  # read-only
    bk.close()
