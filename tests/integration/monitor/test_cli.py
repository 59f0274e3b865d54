"""``farmtools monitor tasks|check|ack`` on a real SQLite bookkeeping."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from farmtools.cli import app
from tests.integration.monitor.farmdata import make_farm, write_summary


def test_tasks_check_and_ack(tmp_path: Path) -> None:
    farm = make_farm(tmp_path / "farm")
    cfg_file = tmp_path / "farm.toml"
    # buffer_warn_h 0: make_farm's hour of files would forecast this machine's disk full within
    # a day and add a buffer_full alarm, whatever the disk (that alarm is tested in test_status)
    cfg_file.write_text(
        '[farm]\nhome = "farm"\n[monitor]\nlifetime_min_us = 2000.0\nstuck_max = 5\n'
        "buffer_warn_h = 0.0\n"
    )
    runner = CliRunner()
    out = runner.invoke(app, ["monitor", "tasks", "-c", str(cfg_file)])
    assert out.exit_code == 0, out.output
    assert "lem_gain: LEM gain" in out.output and "  stuck: Stuck files" in out.output

    write_summary(farm.summary_dir, 5, datetime.now(UTC), (900.0, 7000.0))
    (farm.summary_dir / "broken_run6.txt").write_text("nonsense\n")
    out = runner.invoke(app, ["monitor", "check", "-c", str(cfg_file)])
    assert out.exit_code == 0, out.output
    assert "lifetime_low:view0" in out.output and "broken_run6.txt" in out.output
    assert "1 new alarms" in out.output
    assert "checks of run 5: worst error" in out.output
    assert "purity/vs_time: run 5: lifetime view 0 = 900 us, below 2000 us" in out.output
    listed = runner.invoke(app, ["monitor", "checks", "-c", str(cfg_file)])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0] == "checks of run 5: worst error"
    assert any(
        line.split()[:3] == ["purity/vs_time", "5", "error"] and "900 us" in line for line in lines
    )
    import json

    doc = json.loads(
        runner.invoke(app, ["monitor", "checks", "--json", "-c", str(cfg_file)]).output
    )
    by = {(d["task"], d["item"]): d for d in doc}
    assert by[("purity", "vs_time")]["state"] == "error" and by[("purity", "vs_time")]["run"] == 5
    assert by[("dataflow", "stuck")]["scope"] == "window"
    again = runner.invoke(app, ["monitor", "check", "-c", str(cfg_file)])
    assert "0 new alarms" in again.output  # still open: not raised twice

    (alarm,) = farm.bk.alarms()
    assert runner.invoke(app, ["monitor", "ack", "999", "-c", str(cfg_file)]).exit_code == 1
    out = runner.invoke(app, ["monitor", "ack", str(alarm.id), "-c", str(cfg_file)])
    assert out.exit_code == 0 and farm.bk.alarms() == []
    bad = tmp_path / "bad.toml"
    bad.write_text("[monitor]\nport = 0\n")
    out = runner.invoke(app, ["monitor", "check", "-c", str(bad)])
    assert out.exit_code == 2 and "monitor.port" in out.output
    farm.bk.close()


def test_a_plugin_that_cannot_be_imported_is_named_by_every_command(tmp_path: Path) -> None:
    cfg_file = tmp_path / "farm.toml"
    cfg_file.write_text(
        f'[farm]\nhome = "{tmp_path / "farm"}"\n[monitor]\nplugins = ["wa105_no_such_plugin"]\n'
    )
    runner = CliRunner()
    for command in ("tasks", "check"):
        out = runner.invoke(app, ["monitor", command, "-c", str(cfg_file)])
        assert out.exit_code == 2, out.output
        assert "monitor.plugins" in out.output and "wa105_no_such_plugin" in out.output
        assert out.exception is None or isinstance(out.exception, SystemExit)
