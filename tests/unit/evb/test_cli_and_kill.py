"""`daq emulate --detector 6x6x6` and `evb build` on the command line; SIGKILL loses and duplicates nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from farmtools.cli import app
from farmtools.detector import geometry
from farmtools.evb.cli import EVB_COUNTS
from farmtools.rawdata.pddp_naming import parse_l2_name
from farmtools.rawdata.pddp_reader import PDDPFile

DET = "6x6x6:20"


def _config(tmp: Path) -> Path:
    cfg = tmp / "farm.toml"
    cfg.write_text(f'[farm]\nhome = "{tmp / "farm"}"\ndetector = "{DET}"\n')
    return cfg


def _emulate(cfg: Path, *extra: str) -> None:
    res = CliRunner().invoke(
        app,
        ["daq", "emulate", "--run", "31", "--files", "4", "--events", "5", "--no-physics",
         "--config", str(cfg), *extra],
    )  # fmt: skip
    assert res.exit_code == 0, res.output


def test_emulate_then_build_on_the_command_line(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    _emulate(cfg, "--fault", "missing:0:4", "--fault", "duplicate:1:9", "--fault", "truncated:0:2")
    truth = json.loads((tmp_path / "farm/evb/l1/31_l1truth.json").read_text())
    runner = CliRunner()
    res = runner.invoke(app, ["evb", "build", "--once", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    counts = json.loads(res.stdout.strip().splitlines()[-1])["31"]
    exp = truth["expected"]
    assert (counts["built"], counts["incomplete"], counts["duplicates"], counts["truncated"]) == (
        exp["built"], exp["incomplete"], exp["duplicates"], exp["truncated"],
    )  # fmt: skip
    assert exp["incomplete"] == 2 and exp["truncated"] == 1
    res = runner.invoke(app, ["evb", "status", "--config", str(cfg)])
    (row,) = [ln.split() for ln in res.stdout.splitlines()[2:]]  # piped: title, header, a row
    assert row[1] == "31" and row[3:6] == [str(exp["built"]), "2", "1"]
    res = runner.invoke(app, ["evb", "status", "--json", "--config", str(cfg)])
    (doc,) = json.loads(res.stdout)
    assert (doc["builder"], doc["run"], doc["built"], doc["incomplete"], doc["duplicates"]) == (
        row[0], 31, exp["built"], 2, 1,
    )  # fmt: skip
    assert set(doc) >= {"fragments_in", *EVB_COUNTS}
    bad = runner.invoke(app, ["daq", "emulate", "--run", "1", "--detector", DET, "--fault", "lost:0:1",
                              "--config", str(cfg)])  # fmt: skip
    assert bad.exit_code == 2 and "lost:0:1" in bad.output


def test_sigkill_at_any_moment_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    _emulate(cfg, "--fault", "missing:1:3")
    truth = json.loads((tmp_path / "farm/evb/l1/31_l1truth.json").read_text())
    geo = geometry(DET)
    cmd = [sys.executable, "-m", "farmtools", "evb", "build", "--once", "--config", str(cfg),
           "--roll-bytes", str(2 * geo.fragment_bytes)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    out = tmp_path / "farm/evb/data"

    def finals() -> int:
        return sum(1 for p in out.iterdir() if not p.name.startswith(".")) if out.exists() else 0

    kills = []
    for attempt in range(4):
        before = finals()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # kill in the middle: while a temporary file is being written, or right after a rename
        while proc.poll() is None:
            tmp_now = out.exists() and any(p.name.endswith(".tmp") for p in out.iterdir())
            if (attempt % 2 and tmp_now) or (not attempt % 2 and finals() > before):
                proc.send_signal(signal.SIGKILL)
                kills.append(finals())
                break
            time.sleep(0.005)
        proc.wait(timeout=60)
    final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    counts = json.loads(final.stdout.strip().splitlines()[-1])["31"]
    triggers = []
    for path in out.iterdir():
        assert parse_l2_name(path.name) is not None, f"left over: {path.name}"
        with PDDPFile.open(path, geo) as f:
            triggers += [e.trigger_number for e in f.entries]
    assert sorted(triggers) == list(range(20))
    assert (counts["built"], counts["incomplete"]) == (truth["expected"]["built"], 1)
    assert counts["fragments_in"] == truth["emitted"]
    assert len(kills) >= 3, f"the builder was killed mid-way only {len(kills)} times"
    assert len(set(kills)) >= 2  # killed at different points of the build
