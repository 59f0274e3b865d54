"""``farmtools challenge run`` end to end on the embedded default (real daemons, real jobs).

A tiny challenge (4 files x 3 events) through the real emulator, ``farmtools ingest watch``,
``farmtools process run`` with the local batch running ``farmtools reco``, the archive and the
monitor; then the same with ``--chaos``: daemons SIGKILLed and restarted, the storage made
read-only for a while (root only), the local pool paused, corrupt files dropped.  The report must
name every fault and still show every good file complete, none lost, duplicated or corrupt.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from farmtools.bookkeeping import Bookkeeping, FileState
from farmtools.challenge.run import ChallengeSettings, run_challenge

STAGES = ("written", "detected", "stored", "submitted", "started", "ended", "reconstructed")


def _settings(home: Path, **kw: object) -> ChallengeSettings:
    base: dict[str, object] = dict(
        files=4, events=3, interval_s=0.5, workers=2, home=home, progress=False, timeout_s=240.0
    )
    base.update(kw)
    return ChallengeSettings(**base)  # type: ignore[arg-type]


def test_tiny_challenge_every_story_complete(tmp_path: Path) -> None:
    result = run_challenge(_settings(tmp_path / "farm"), Console(quiet=True))
    rep = result.report
    assert rep["verdict"] == "PASS", rep["incomplete"]
    names = [f"run1-seq{i}.dat" for i in range(4)]
    assert [o["name"] for o in rep["files"]] == names
    assert rep["counts"]["written"] == 4
    assert rep["counts"]["stored"] == 4
    assert rep["counts"]["reconstructed"] == 4
    assert rep["counts"]["archived"] == 4
    for o in rep["files"]:
        assert o["complete"], o
        assert set(STAGES) <= set(o["stages"]), o["name"]
    # the report's claims against the database and the files themselves
    bk = Bookkeeping(f"sqlite:///{tmp_path / 'farm' / 'bookkeeping.sqlite'}")
    for name in names:
        rec = bk.get(name)
        assert rec is not None and rec.state in (FileState.RECONSTRUCTED, FileState.ANALYSED)
        events = [e.event for e in bk.story(name)]
        assert events.count("verified") == 1 and events.count("reconstructed") == 1
    roots = rep["root_outputs"]
    assert len(roots) == 4 and all(r["ok"] and r["entries"] == 3 for r in roots)
    assert rep["integrity"]["checked_bytes_of"] == 4
    assert sum(rep["jobs_per_worker"].values()) == 4
    for stage in ("detected", "stored", "submitted", "started", "ended"):
        assert rep["latency_s"][stage]["n"] == 4
    assert json.loads(result.json_path.read_text())["verdict"] == "PASS"
    assert "Plotly.newPlot" in result.html_path.read_text()
    assert set(rep["daemons"]) == {"ingest", "processing", "monitor"}
    if "analysis" not in rep["missing_pieces"]:  # one full group of 4: analysed, against truth
        assert rep["counts"]["analysed"] == 4
        (analysis,) = rep["analyses"]
        assert analysis["lifetime"] is not None and analysis["lifetime"][0] > 0
        # 12 events: not every LEM gets enough tracks for a gain; those that do are near 20
        assert analysis["gains"] and all(5 < g < 80 for g in analysis["gains"].values())
        assert analysis["truth"]["lifetime_us"] == 7000.0


def test_chaos_faults_named_nothing_lost(tmp_path: Path) -> None:
    result = run_challenge(
        _settings(tmp_path / "farm", files=5, events=2, interval_s=1.0, chaos=True, chaos_seed=3),
        Console(quiet=True),
    )
    rep = result.report
    faults = rep["faults"]
    kinds = [f["kind"] for f in faults]
    assert kinds.count("kill") == 3 and kinds.count("corrupt_file") == 2
    assert {"storage_outage", "batch_pause"} <= set(kinds)
    killed = {f["target"] for f in faults if f["kind"] == "kill" and f["injected"]}
    assert killed == {"ingest", "processing", "monitor"}
    for f in faults:
        assert f["details"], f  # every fault says what was done, or why it was not
    integ = rep["integrity"]
    assert integ["lost"] == [] and integ["duplicated"] == [] and integ["corrupt"] == []
    assert len(rep["bad_on_purpose"]) == 2
    by_name = {o["name"]: o for o in rep["files"]}
    for bad in rep["bad_on_purpose"]:
        assert by_name[bad]["state"] in ("quarantined", "failed") and by_name[bad]["complete"]
    assert rep["verdict"] == "PASS", (rep["incomplete"], rep["faults"])
    assert rep["daemons"]["ingest"]["sigkills"] == 1 and rep["daemons"]["ingest"]["starts"] == 2
    # nothing left mounted or paused
    inp = tmp_path / "farm" / "storage" / "input"
    assert not inp.is_mount()
    assert (tmp_path / "farm" / "processing" / "localbatch" / "slots").read_text() == "2"


@pytest.mark.parametrize("bad", ["no-such-preset"])
def test_unknown_preset_is_an_error_naming_it(bad: str) -> None:
    from typer.testing import CliRunner

    from farmtools.cli import app

    res = CliRunner().invoke(app, ["challenge", "run", "--preset", bad])
    assert res.exit_code == 2 and bad in res.output


def test_ctrl_c_stops_everything_and_still_reports(tmp_path: Path) -> None:
    """SIGINT to the command (as Ctrl-C in a terminal): daemons and jobs gone, report written."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    home = tmp_path / "farm"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "farmtools", "challenge", "run", "--home", str(home)),
            *("--files", "30", "--events", "2", "--interval", "1", "--no-progress"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    db = home / "bookkeeping.sqlite"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not (home / "storage" / "output" / "run1").exists():
        time.sleep(0.2)  # wait until a job has started writing its output
    assert db.exists()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    text = out.decode(errors="replace")
    assert proc.returncode == 1, text
    assert "interrupted" in text
    report = json.loads((home / "reports" / "challenge-run1.json").read_text())
    assert "interrupted" in report["verdict"] and report["settings"]["interrupted"]
    time.sleep(1.0)  # cancelled jobs' process groups are being killed by their supervisors
    left = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if str(home) in cmd:
            left.append(cmd)
    assert left == []
