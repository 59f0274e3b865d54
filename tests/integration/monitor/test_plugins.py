"""The MonTask plugin interface, used the way an operator would: a module named in farm.toml.

The task below lives in a module of its own (written to a temporary directory on ``sys.path``,
as a farm's site package would be), knows nothing of the tests, and is loaded only because
``monitor.plugins`` names it in the configuration file.  It reads a result file it did not
write (a per-run CSV of trigger counts, as a DAQ-side script could leave) and draws it.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from farmtools.cli import app
from farmtools.config import load_config
from farmtools.monitor import tasks as tasks_module
from farmtools.monitor.app import Monitor, MonitorError, build_app
from farmtools.monitor.checks import State

PLUGIN = "ft_test_trigger_rate"

#: The plugin module, exactly as the README example shows it (plus the file it reads).
PLUGIN_SOURCE = textwrap.dedent(
    '''
    """A farm's own monitoring task: triggers per type, from triggers/run<N>.csv."""

    import csv

    from farmtools.monitor.tasks import Item, MonTask, empty_figure, register


    @register
    class TriggerRate(MonTask):
        name = "trigger_rate"
        title = "Trigger rate"

        def items(self, ctx):
            return [Item("per_type", "Triggers per type")]

        def read(self, ctx, item, run):
            folder = ctx.cfg.home / "triggers"
            files = sorted(folder.glob("run*.csv"), key=lambda p: int(p.stem[3:]))
            if run is not None:
                files = [p for p in files if p.stem == f"run{run}"]
            if not files:
                return None
            with files[-1].open() as f:
                rows = list(csv.reader(f))
            return {"run": files[-1].stem, "types": [r[0] for r in rows],
                    "counts": [int(r[1]) for r in rows]}

        def draw(self, item, data, reference):
            if data is None:
                return empty_figure("Triggers per type", "no trigger file yet")
            return {"data": [{"type": "bar", "x": data["types"], "y": data["counts"],
                              "name": data["run"]}],
                    "layout": {"title": {"text": f"Triggers per type, {data['run']}"}}}
    '''
)


@contextmanager
def plugin_farm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, source: str, extra: str = ""
) -> Iterator[Path]:
    """A farm.toml naming ``module`` (``extra`` lines added to ``[monitor]``), the module
    importable from a site folder; its tasks are forgotten afterwards."""
    site = tmp_path / "site"
    site.mkdir()
    (site / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(site))
    before = dict(tasks_module.TASKS)
    cfg = tmp_path / "farm.toml"
    cfg.write_text(f'[farm]\nhome = "farm"\n[monitor]\nplugins = ["{module}"]\n{extra}')
    try:
        yield cfg
    finally:
        tasks_module.TASKS.clear()
        tasks_module.TASKS.update(before)
        sys.modules.pop(module, None)


@pytest.fixture
def farm_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A farm.toml naming the plugin module, with the module importable (and forgotten after)."""
    with plugin_farm(tmp_path, monkeypatch, PLUGIN, PLUGIN_SOURCE) as cfg:
        yield cfg


def test_plugin_named_in_config_appears_in_tree_and_draws_its_file(farm_toml: Path) -> None:
    cfg = load_config(farm_toml)
    assert cfg.monitor.plugins == [PLUGIN]
    assert "trigger_rate" not in tasks_module.TASKS  # nothing imported it yet: the config does
    monitor = Monitor(cfg, use_db=False)
    with TestClient(build_app(monitor)) as c:
        tree = {t["name"]: t for t in c.get("/api/tree").json()}
        assert "purity" in tree  # the built-in tasks stay
        assert tree["trigger_rate"]["title"] == "Trigger rate"
        assert tree["trigger_rate"]["items"] == [{"id": "per_type", "title": "Triggers per type"}]

        r = c.get("/api/plot/trigger_rate/per_type")
        assert r.status_code == 200
        assert "no trigger file yet" in r.json()["figure"]["layout"]["annotations"][0]["text"]

        folder = cfg.home / "triggers"
        folder.mkdir(parents=True)
        (folder / "run7.csv").write_text("PMT,120\nCRT,45\nPED,10\n")
        (folder / "run12.csv").write_text("PMT,300\nCRT,80\n")
        latest = c.get("/api/plot/trigger_rate/per_type").json()
        (bar,) = latest["figure"]["data"]
        assert (bar["type"], bar["x"], bar["y"]) == ("bar", ["PMT", "CRT"], [300, 80])
        assert latest["figure"]["layout"]["title"]["text"] == "Triggers per type, run12"
        chosen = c.get("/api/plot/trigger_rate/per_type?run=7").json()
        assert chosen["figure"]["data"][0]["y"] == [120, 45, 10]
        assert chosen["digest"] != latest["digest"]  # the page redraws when the data change

        import plotly.graph_objects as go

        go.Figure(chosen["figure"])  # a figure plotly.js accepts as it is


def test_plugin_listed_by_monitor_tasks_command(farm_toml: Path) -> None:
    out = CliRunner().invoke(app, ["monitor", "tasks", "-c", str(farm_toml)])
    assert out.exit_code == 0, out.output
    assert "trigger_rate: Trigger rate" in out.output
    assert "  per_type: Triggers per type" in out.output


def test_missing_plugin_module_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "farm.toml"
    cfg.write_text('[farm]\nhome = "farm"\n[monitor]\nplugins = ["ft_no_such_plugin"]\n')
    with pytest.raises(MonitorError, match=r"monitor\.plugins: cannot import 'ft_no_such_plugin'"):
        Monitor(load_config(cfg), use_db=False)
    out = CliRunner().invoke(app, ["monitor", "serve", "-c", str(cfg)])
    assert out.exit_code == 2 and "ft_no_such_plugin" in out.output


#: A farm's task with checks: PMT triggers against the reference run's, and a check that breaks.
CHECKED_PLUGIN = "ft_test_checked_rate"
CHECKED_SOURCE = textwrap.dedent(
    """
    import csv

    from farmtools.monitor.checks import CheckResult, State
    from farmtools.monitor.tasks import Item, MonTask, empty_figure, register


    @register
    class CheckedRate(MonTask):
        name = "checked_rate"
        title = "Checked trigger rate"

        def items(self, ctx):
            return [Item("pmt", "PMT triggers"), Item("broken", "A check that fails")]

        def read(self, ctx, item, run):
            path = ctx.cfg.home / "triggers" / f"run{run}.csv"
            if not path.exists():
                return None
            with path.open() as f:
                return {"run": run, "pmt": int(next(csv.reader(f))[1])}

        def draw(self, item, data, reference):
            return empty_figure(self.title, "")

        def check(self, ctx, item, data, reference):
            if item == "broken":
                raise RuntimeError("no trigger map")
            if data is None:
                return CheckResult(State.TOO_FEW, "no trigger file yet")
            if reference is not None and data["pmt"] < 0.5 * reference["pmt"]:
                return CheckResult(
                    State.ERROR,
                    f"run {data['run']}: {data['pmt']} PMT triggers, "
                    f"less than half of run {reference['run']}'s",
                )
            return CheckResult(State.GOOD, f"run {data['run']}: {data['pmt']} PMT triggers")
    """
)


def test_a_plugins_checks_are_judged_stored_and_alarmed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A check in a farm's own task: judged against the reference pinned in farm.toml, stored,
    an error alarmed; a check that raises is a warning naming the error, the others go on."""
    extra = 'references = {"checked_rate" = 7}\n'
    with plugin_farm(tmp_path, monkeypatch, CHECKED_PLUGIN, CHECKED_SOURCE, extra) as toml:
        cfg = load_config(toml)
        folder = cfg.home / "triggers"
        folder.mkdir(parents=True)
        (folder / "run7.csv").write_text("PMT,120\n")
        (folder / "run8.csv").write_text("PMT,110\n")
        (folder / "run9.csv").write_text("PMT,40\n")
        monitor = Monitor(cfg)
        for run in (8, 9):
            monitor.runner.run(run)
        cells = {
            c["item"]: c
            for t in monitor.overview(9)["tasks"]
            if t["name"] == "checked_rate"
            for c in t["cells"]
        }
        assert cells["pmt"]["state"] == "error" and cells["pmt"]["reference"] == 7
        assert cells["pmt"]["reason"] == "run 9: 40 PMT triggers, less than half of run 7's"
        assert cells["broken"]["state"] == "warning"
        assert cells["broken"]["reason"] == "check failed: RuntimeError: no trigger map"
        assert monitor.checks.run_state(8) == (
            State.WARNING,
            ["checked_rate/broken: check failed: RuntimeError: no trigger map"],
        )
        # the checker's pass over the current run (9, the newest the bookkeeping knows) alarms
        assert monitor.bk is not None
        name = "run9-seq0.dat"
        monitor.bk.register_file(
            name, source_path=f"/evb/{name}", run=9, seq=0, size=1, daq_write_time=None
        )
        kinds = {b.kind for b in monitor.checker.check()}
        assert "check:checked_rate/pmt" in kinds
        assert "check:checked_rate/broken" not in kinds  # a warning: no alarm
        (alarm,) = [a for a in monitor.bk.alarms() if a.kind == "check:checked_rate/pmt"]
        monitor.bk.acknowledge_alarm(alarm.id)
        assert monitor.checker.check() == []  # acknowledged: not raised again for the same run
        monitor.bk.close()
