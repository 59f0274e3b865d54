"""The builders' counts per run reach the bookkeeping, `farmtools runs` and /metrics."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from farmtools.bookkeeping.db import Bookkeeping
from farmtools.cli import app
from farmtools.config import FarmConfig
from farmtools.detector import geometry
from farmtools.emulator.l1streams import Faults, L1Plan, emulate_l1_run
from farmtools.evb.builder import BuilderSettings, L2Builder
from farmtools.monitor.metrics import FarmCollector, make_registry, render
from farmtools.monitor.queries import FarmQueries
from farmtools.monitor.store import SummaryStore

GEO = geometry("6x6x6:20")


def test_counts_in_bookkeeping_runs_and_metrics(tmp_path: Path) -> None:
    (tmp_path / "farm.toml").write_text(f'[farm]\nhome = "{tmp_path}"\n')
    cfg = FarmConfig.model_validate({"farm": {"home": str(tmp_path)}, "base_dir": tmp_path})
    bk = Bookkeeping(cfg.database_url)
    faults = Faults(missing=((0, 1),), duplicate=((1, 6),))
    truth = emulate_l1_run(
        tmp_path / "l1", GEO, L1Plan(run=12, events=10, physics=False, faults=faults)
    )
    for bid in "ab":
        s = BuilderSettings(
            in_dir=tmp_path / "l1",
            out_dir=tmp_path / "l2",
            setaside_dir=tmp_path / "aside",
            geometry=GEO,
            builder_id=bid,
            builders=("a", "b"),
        )
        L2Builder(s, bk).drain()
    c = bk.evb_counts()[12]
    exp = truth["expected"]
    assert (c["built"], c["incomplete"], c["duplicates"], c["pending"]) == (exp["built"], 1, 1, 0)
    assert [c["fragments_in0"], c["fragments_in1"]] == truth["emitted"]
    res = CliRunner().invoke(app, ["runs", "--config", str(tmp_path / "farm.toml")])
    assert res.exit_code == 0, res.output
    assert "event building" in res.output and "9+11" in res.output
    res = CliRunner().invoke(app, ["runs", "--json", "--config", str(tmp_path / "farm.toml")])
    (run,) = json.loads(res.output)  # counted by the builders, no file of it ingested yet
    assert (run["run"], run["files"], run["evb"]) == (12, 0, c)
    assert FarmQueries(bk.engine).evb_counts()[12] == c
    text = render(
        make_registry(FarmCollector(cfg, FarmQueries(bk.engine), None, SummaryStore(tmp_path)))
    ).decode()
    assert 'farmtools_evb_count{kind="built",run="12"} 9.0' in text
    assert 'farmtools_evb_fragments_in{run="12",stream="1"} 11.0' in text
    # the monitor's task: the latest run's bars, another run as reference
    from farmtools.monitor.evbtask import EventBuilding
    from farmtools.monitor.tasks import Context

    ctx = Context(cfg, FarmQueries(bk.engine), SummaryStore(tmp_path), None)
    task = EventBuilding()
    data = task.read(ctx, "counts", None)
    assert data is not None and data["run"] == 12
    fig = task.draw("counts", data, data)
    bars = dict(zip(fig["data"][0]["x"], fig["data"][0]["y"], strict=True))
    assert bars["built"] == exp["built"] and bars["duplicates"] == 1 and len(fig["data"]) == 2
    assert task.read(ctx, "counts", 13) is None
