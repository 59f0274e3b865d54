"""End of run (issue 17): runs close on the DAQ's record or after a quiet time, then finish.

Real SQLite bookkeeping, real (small, synthetic) ROOT outputs read by the real analysis
pipeline, the real archive planner.  A run with a missing sequence number raises an alarm at
close naming it; a last group smaller than ``[analysis] group_size`` is analysed at close and
flagged partial; the run's summary is written and its files planned into an archive.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from farmtools.analysis.pipeline import run_ready_analyses
from farmtools.bookkeeping import Bookkeeping, FileState
from farmtools.bookkeeping.ledger import run_ledger
from farmtools.bookkeeping.registry import flag_history, run_flag
from farmtools.bookkeeping.schema import now
from farmtools.cli import app
from farmtools.processing.runclose import close_runs, closing_pass
from tests.processing_farm import make_cfg
from tests.runs_farm import add_file, eor, write_output


def _bk(tmp_path: Path) -> Bookkeeping:
    return Bookkeeping(f"sqlite:///{tmp_path / 'bk.sqlite'}")


def test_a_run_with_a_missing_sequence_number_raises_an_alarm_at_close(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)  # program check: no analyses
    bk = _bk(tmp_path)
    names = [add_file(bk, 20, seq, FileState.RECONSTRUCTED) for seq in (0, 1, 3)]
    record = eor(20, [(n, 100, "0000abcd") for n in names])
    bk.record_end_of_run(20, record, source="/daq/run20.eor.json")
    assert bk.alarms() == []
    report = closing_pass(cfg, bk)
    assert report.closed == [20] and report.finished == [20]
    (alarm,) = bk.alarms()
    assert (alarm.source, alarm.kind, alarm.file) == ("runs", "run_gap", None)
    assert alarm.message == "run 20: sequence number 2 missing"
    led = run_ledger(bk, 20)
    assert led is not None
    assert (led.status, led.close_reason, led.flag, led.complete) == (
        "finished",
        "end_of_run",
        "bad",
        False,
    )
    assert [c.source for c in flag_history(bk, 20)] == ["completeness"]
    assert closing_pass(cfg, bk).closed == []  # closed once, alarmed once
    assert len(bk.alarms()) == 1


def test_the_last_partial_group_is_analysed_at_close_with_summary_and_archive(
    tmp_path: Path,
) -> None:
    cfg = make_cfg(tmp_path, processing={"program": "reco"}, analysis={"group_size": 4})
    bk = _bk(tmp_path)
    out = tmp_path / "outputs"
    names = [
        add_file(
            bk,
            21,
            seq,
            FileState.RECONSTRUCTED,
            output=write_output(out / f"recotask_run21-seq{seq}.root", seed=seq),
        )
        for seq in range(3)
    ]
    assert run_ready_analyses(cfg, bk) == []  # 3 files, groups of 4: today's dead end
    assert close_runs(cfg, bk) == []  # no record, no later run: still open
    bk.record_end_of_run(21, eor(21, [(n, 100, "0000abcd") for n in names]), source="x")

    report = closing_pass(cfg, bk)
    assert report.closed == [21] and report.finished == [21]
    assert {bk.get(n).state for n in names} == {FileState.ANALYSED}  # type: ignore[union-attr]
    (row,) = bk.analyses(run=21)
    assert row.partial and row.files == names and (row.first_seq, row.last_seq) == (0, 2)
    analysed = [e for e in bk.story(names[0]) if e.event == "analysed"]
    assert analysed[-1].details is not None and analysed[-1].details["partial"] is True
    (summary,) = report.summaries
    assert summary.name == "analysis_run21.txt" and summary.exists()
    doc = json.loads(summary.with_suffix(".json").read_text())
    assert doc["run"] == 21 and len(doc["files"]) == 3
    assert len(summary.read_text().splitlines()) == 2 + 12  # stamp, lifetimes, one line per LEM
    assert len(report.archives) == 1
    led = run_ledger(bk, 21)
    assert led is not None
    assert (led.status, led.analysed, led.archive_planned, led.flag) == ("finished", 3, 3, "good")
    assert led.summary == str(summary) and bk.alarms() == []
    config = tmp_path / "farm.toml"
    config.write_text(f'[database]\nurl = "{bk.url}"\n')
    res = CliRunner().invoke(app, ["run", "21", "--json", "--config", str(config)])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["archives"] == [{"name": report.archives[0], "state": "planned"}]
    assert [(a["partial"], len(a["files"])) for a in doc["analyses"]] == [(True, 3)]
    # a file that arrives after its run finished is analysed too (it would wait for ever)
    late = add_file(
        bk, 21, 3, FileState.RECONSTRUCTED, output=write_output(out / "late.root", seed=9)
    )
    assert closing_pass(cfg, bk).partial
    assert bk.get(late).state == FileState.ANALYSED  # type: ignore[union-attr]
    assert [len(a.files) for a in bk.analyses(run=21)] == [1, 3]


def test_process_close_runs_from_cron_says_what_it_closed(tmp_path: Path) -> None:
    config = tmp_path / "farm.toml"
    config.write_text(
        f'[farm]\nhome = "{tmp_path}"\n[processing]\nprogram = "check"\n'
        "[runs]\narchive_at_close = false\n"
    )
    bk = Bookkeeping(f"sqlite:///{tmp_path / 'bookkeeping.sqlite'}")
    name = add_file(bk, 25, 0, FileState.RECONSTRUCTED)
    bk.record_end_of_run(25, eor(25, [(name, 100, "0000abcd")]), source="x")
    res = CliRunner().invoke(app, ["process", "close-runs", "--json", "--config", str(config)])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert (doc["closed"], doc["finished"], doc["archives"]) == ([25], [25], [])
    res = CliRunner().invoke(app, ["run", "25", "--config", str(config)])
    assert res.exit_code == 0 and res.output.startswith("run 25  [finished, end_of_run]  flag good")
    bk.close()


def test_without_a_record_a_run_closes_when_quiet_after_a_later_run_started(
    tmp_path: Path,
) -> None:
    cfg = make_cfg(tmp_path, runs={"quiet_s": 600.0, "archive_at_close": False})
    bk = _bk(tmp_path)
    add_file(bk, 30, 0, FileState.RECONSTRUCTED)
    add_file(bk, 30, 2, FileState.RECONSTRUCTED)
    later = now() + timedelta(seconds=601)
    assert close_runs(cfg, bk, t=later) == []  # the last run: it may still be going on
    add_file(bk, 31, 0)
    assert close_runs(cfg, bk) == []  # not quiet yet
    assert close_runs(cfg, bk, t=later) == [30]
    (alarm,) = bk.alarms()
    assert alarm.kind == "run_gap" and "sequence number 1 missing" in alarm.message
    led = run_ledger(bk, 30)
    assert led is not None and (led.status, led.close_reason) == ("closed", "quiet")
    assert run_flag(bk, 30) == "bad"
    assert run_ledger(bk, 31).status == "open"  # type: ignore[union-attr]


def test_a_checksum_disagreement_and_a_file_never_seen_are_named_by_alarms(
    tmp_path: Path,
) -> None:
    cfg = make_cfg(tmp_path, runs={"quiet_s": 60.0, "archive_at_close": False})
    bk = _bk(tmp_path)
    a = add_file(bk, 40, 0, FileState.RECONSTRUCTED, adler32="0000abcd")
    record = eor(40, [(a, 100, "99999999"), ("run40-seq1.dat", 100, "0000abcd")])
    bk.record_end_of_run(40, record, source="x")
    assert close_runs(cfg, bk) == []  # the record names a file not seen yet: waits
    assert close_runs(cfg, bk, t=now() + timedelta(seconds=61)) == [40]
    finished = closing_pass(cfg, bk).finished
    assert finished == [40]
    kinds = sorted((al.kind, al.message) for al in bk.alarms())
    assert kinds == [
        ("run_checksum", f"{a}: adler32 0000abcd here, 99999999 in the end-of-run record"),
        (
            "run_missing_files",
            "run 40: run40-seq1.dat named by the end-of-run record, never detected",
        ),
    ]
    assert run_flag(bk, 40) == "bad"


def test_a_database_outage_during_the_closing_pass_is_one_line_not_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The daemon's analysis thread runs the closing pass; when the database goes away under it
    (the manager's outage test caught it so), the pass says so in one warning line and is tried
    again later, as every other step of the daemon does: a traceback per pass buried the log."""
    import shutil

    cfg = make_cfg(tmp_path)
    bk = _bk(tmp_path)
    add_file(bk, 21, 0, FileState.RECONSTRUCTED)
    bk.engine.dispose()
    db = tmp_path / "bk.sqlite"
    db.unlink()
    db.mkdir()  # SQLite cannot open a directory: "unable to open database file"
    try:
        with caplog.at_level(logging.WARNING, logger="farmtools.processing"):
            report = closing_pass(cfg, bk)
    finally:
        shutil.rmtree(db)
    assert report.closed == [] and report.finished == []
    (rec,) = [r for r in caplog.records if "closing runs" in r.getMessage()]
    assert rec.levelno == logging.WARNING and rec.exc_info is None, rec.getMessage()
    assert "waits for the bookkeeping database" in rec.getMessage()
