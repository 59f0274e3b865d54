"""``farmtools challenge run`` end to end on the embedded default (real daemons, real jobs).

A tiny challenge (4 files x 3 events) through the real emulator, ``farmtools ingest watch``,
``farmtools process run`` with the local batch running ``farmtools reco``, the archive and the
monitor; then the same with ``--chaos``: daemons SIGKILLed and restarted, the storage made
read-only for a while (root only), the local pool paused, corrupt files dropped.  The report must
name every fault and still show every good file complete, none lost, duplicated or corrupt.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from farmtools.bookkeeping import Bookkeeping, FileState
from farmtools.challenge.chaos import is_mount_point
from farmtools.challenge.run import ChallengeSettings, run_challenge
from tests.eventually import eventually

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
    # the seed's rule: every worker ran at least one job (the local batch: this host)
    workers = rep["workers"]
    assert workers["expected"] == [socket.gethostname()] and workers["idle"] == []
    assert workers["every_worker_ran_a_job"] is True and workers["judged"] is True
    assert "every worker ran a job: yes, 1/1" in result.text_path.read_text()
    _throughput_and_latencies_are_sane(rep, good=4)
    # one full group of 4 files: analysed, and the results beside the injected truth
    assert rep["counts"]["analysed"] == 4
    (analysis,) = rep["analyses"]
    _analysis_agrees_with_truth(analysis)


#: The analyses' calibration bound on an effective gain (their own closure tests: 5 %).
GAIN_CALIBRATION = 0.05


def _analysis_agrees_with_truth(analysis: dict[str, Any]) -> None:
    """Lifetime and LEM gains against the injected truth, within what 12 events allow.

    The lifetime is judged by its fit error (a dozen events give ~30 %): within 3 sigma, and the
    error must be smaller than the value (a fit that constrains nothing would pass any band).
    Each LEM gain is judged by its fit error plus the calibration bound the analyses' closure
    tests hold (statistical errors alone ignore that the truncated-mean reference is a constant).
    """
    truth = analysis["truth"]
    assert truth["lifetime_us"] == 7000.0 and truth["gain_map"]["1"] == 20.0
    tau, err = analysis["lifetime"]
    assert err is not None and 0 < err < tau, analysis["summary_line"]
    assert abs(tau - truth["lifetime_us"]) <= 3 * err, analysis["summary_line"]
    gains, errors = analysis["gains"], analysis["gain_errors"]
    # 12 events: not every LEM gets its 10 hits per view; most do
    assert len(gains) >= 6 and set(gains) <= set(errors), analysis
    for lem, g in gains.items():
        want = truth["gain_map"][lem]
        assert 0 < errors[lem] < 0.2 * want, (lem, g, errors[lem])
        allowed = 3 * errors[lem] + GAIN_CALIBRATION * want
        assert abs(g - want) <= allowed, f"LEM {lem}: {g:.2f} +- {errors[lem]:.2f} vs {want}"
    assert abs(analysis["gain_bias_mean"]) <= GAIN_CALIBRATION


def _throughput_and_latencies_are_sane(rep: dict[str, Any], good: int) -> None:
    """Throughput from the files' bytes over the run; percentiles ordered and inside the run."""
    duration = rep["duration_s"]
    assert duration > 0
    t = rep["throughput"]
    written_bytes = sum(f["bytes"] for f in rep["emulator_files"])
    assert t["bytes"] == written_bytes > 0
    assert t["MBps"] == pytest.approx(written_bytes / duration / 1e6)
    assert t["files_per_min"] == pytest.approx(good / duration * 60)
    previous = 0.0
    for stage in ("detected", "stored", "submitted", "started", "ended", "analysed"):
        p = rep["latency_s"][stage]
        assert p["n"] == good, stage
        assert 0 <= p["min"] <= p["p50"] <= p["p90"] <= p["p99"] <= p["max"] < duration, p
        assert p["p50"] >= previous, stage  # each stage comes after the one before
        previous = p["p50"]


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
    _outage_and_pause_had_effect(rep, tmp_path / "farm")
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
    assert not is_mount_point(inp)
    assert not (tmp_path / "farm" / "challenge" / "storage-outage.mounted").exists()
    assert (tmp_path / "farm" / "processing" / "localbatch" / "slots").read_text() == "2"


def _outage_and_pause_had_effect(rep: dict[str, Any], home: Path) -> None:
    """As root, the storage outage and the batch pause were injected and did something.

    Their effects are read from the evidence, not from the fault records alone: a copy that
    failed with EROFS while the storage was read-only (the file's story), and a job whose
    process group was stopped and that ran through the whole pause (its started/ended events).
    """
    if os.geteuid() != 0:
        pytest.skip("not root: the storage outage (a read-only bind mount) cannot be injected")
    faults = {f["kind"]: f for f in rep["faults"]}
    outage, pause = faults["storage_outage"], faults["batch_pause"]
    assert outage["injected"] and "read-only" in outage["details"], outage["details"]
    assert pause["injected"] and pause["extra"]["stopped_jobs"], (pause["details"], pause["extra"])
    t0 = datetime.fromisoformat(rep["started"])

    def at(f: dict[str, Any], key: str) -> datetime:
        return t0 + timedelta(seconds=f["extra"][key])

    bk = Bookkeeping(f"sqlite:///{home / 'bookkeeping.sqlite'}")
    stories = {o["name"]: bk.story(o["name"]) for o in rep["files"]}
    slack = timedelta(seconds=0.5)  # the fault's times are taken around the mount commands
    start, end = at(outage, "read_only_at_s"), at(outage, "writable_at_s")
    refused = [
        (name, ev.time)
        for name, story in stories.items()
        for ev in story
        if ev.event == "error"
        and "Read-only file system" in str((ev.details or {}).get("error"))
        and start - slack <= ev.time <= end + slack
    ]
    assert refused, "no copy was refused during the storage outage"
    # each stopped job (by batch id) ended only after the pool was resumed: it was really stopped
    resumed = at(pause, "resumed_at_s")
    ends = {}
    for story in stories.values():
        batch_ids = {str((ev.details or {}).get("batch_id")) for ev in story}
        for job in set(pause["extra"]["stopped_jobs"]) & batch_ids:
            ends[job] = [
                ev.time
                for ev in story
                if ev.event == "ended" and str((ev.details or {}).get("batch_id")) == job
            ]
    assert set(ends) == set(pause["extra"]["stopped_jobs"]), ends
    for job, times in ends.items():
        assert times and min(times) >= resumed - slack, (job, times, resumed)
    assert rep["failures_by_class"].get("ingest:transient", 0) >= len(refused)


def _cli(home: Path, *args: str) -> dict[str, Any]:
    """``farmtools challenge run`` through the CLI, progress bars on (no terminal here)."""
    from typer.testing import CliRunner

    from farmtools.cli import app

    res = CliRunner().invoke(
        app, ["challenge", "run", "--home", str(home), "--timeout", "400", *args]
    )
    assert res.exit_code == 0, res.output
    assert "Data challenge: PASS" in res.output and "report:" in res.output
    # not a terminal: each line whole (the report's paths are longer than 80 columns)
    (where,) = [line for line in res.output.splitlines() if line.startswith("report: ")]
    assert "(JSON " in where and where.endswith(".txt)"), where
    return json.loads((home / "reports" / "challenge-run1.json").read_text())


def test_preset_with_time_scale_through_the_cli(tmp_path: Path) -> None:
    # seed test 2 (25 uncompressed 335-event files every 300 s) 100x faster, 3 files of it
    rep = _cli(
        tmp_path / "farm", "--preset", "seed-300s-raw", "--time-scale", "100", "--files", "3"
    )
    s = rep["settings"]
    assert (s["preset"], s["files"], s["compress"], s["progress"]) == (
        "seed-300s-raw",
        3,
        False,
        True,
    )
    assert s["interval_s"] == pytest.approx(3.0) and s["events"] == 3  # 300 s / 100, 335 / 100
    assert [f["events"] for f in rep["emulator_files"]] == [3, 3, 3]
    assert rep["counts"]["reconstructed"] == 3 and rep["verdict"] == "PASS"


def test_compress_through_the_cli(tmp_path: Path) -> None:
    from farmtools.rawdata import RawFile

    home = tmp_path / "farm"
    rep = _cli(home, "--files", "2", "--events", "2", "--interval", "0.5", "--compress")
    assert rep["settings"]["compress"] is True and rep["verdict"] == "PASS"
    uncompressed = 2 * 3_200_675 + 9  # two 35-byte headers + packed payloads, header + footer
    for f in rep["emulator_files"]:
        assert f["bytes"] < uncompressed / 1.1, f  # Huffman-coded noise is smaller than packed
        stored = home / "storage" / "input" / "run1" / f["name"]
        with RawFile.open(stored) as raw:
            report = raw.validate()
        assert report.compression == "all" and report.n_events == 2
    roots = rep["root_outputs"]
    assert len(roots) == 2 and all(r["ok"] and r["entries"] == 2 for r in roots)


def test_cli_defaults_are_the_issue_command_line() -> None:
    from farmtools.challenge.run import ChallengeSettings

    s = ChallengeSettings()
    assert (s.files, s.interval_s, s.events) == (50, 10.0, 335)
    demo = (Path(__file__).parents[3] / "scripts" / "demo.sh").read_text()
    assert (
        "--files 8 --events 50 --interval 3 --compress" in demo
    )  # the demo passes its small values


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
    try:  # until a job has started writing its output
        eventually(
            (home / "storage" / "output" / "run1").exists, 90, "a job's output", interval=0.2
        )
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    assert db.exists()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    text = out.decode(errors="replace")
    assert proc.returncode == 1, text
    assert "interrupted" in text
    report = json.loads((home / "reports" / "challenge-run1.json").read_text())
    assert "interrupted" in report["verdict"] and report["settings"]["interrupted"]

    def left() -> list[str]:
        """Processes of this farm still there (cancelled jobs' groups are killed by their
        supervisors, which may take a moment after the command's exit)."""
        cmds = (" ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"]))
        return [cmd for cmd in cmds if str(home) in cmd]

    eventually(left, 10, "no process of the farm left", until=lambda cmds: cmds == [])


def test_runs_ending_with_a_partial_group_are_closed_and_every_file_analysed(
    tmp_path: Path,
) -> None:
    """Two runs of 2 files, groups of 4 (issue 17): each run ends with its end-of-run record,
    is closed by the processing daemon, its remainder analysed, and the report lists each
    run's ledger."""
    settings = _settings(tmp_path / "farm", files=2, runs=2, monitor=False)
    result = run_challenge(settings, Console(quiet=True))
    rep = result.report
    assert rep["verdict"] == "PASS", (rep["incomplete"], rep.get("runs"), rep["errors"])
    assert rep["counts"]["analysed"] == 4 and rep["counts"]["archived"] == 4
    runs = rep["runs"]
    assert [r["run"] for r in runs] == [1, 2]
    for r in runs:
        assert (r["status"], r["close_reason"], r["flag"]) == ("finished", "end_of_run", "good")
        assert (r["expected_files"], r["expected_events"], r["analysed"]) == (2, 6, 2)
        assert r["archived"] == 2 and r["problems"] == [] and r["summary"]
        assert Path(r["summary"]).exists()
    bk = Bookkeeping(f"sqlite:///{tmp_path / 'farm' / 'bookkeeping.sqlite'}")
    for run in (1, 2):
        (group,) = bk.analyses(run=run)
        assert group.partial and len(group.files) == 2
    bk.close()
    text = result.text_path.read_text()
    assert "run 1: finished (end_of_run), flag good, files 2/2" in text
