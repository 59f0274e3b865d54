"""The run ledger, the end-of-run record's storage and the run registry (schema version 5).

On SQLite and on the real PostgreSQL fixture (see conftest.py).
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from farmtools.bookkeeping import Bookkeeping, FileState, schema
from farmtools.bookkeeping.ledger import (
    CHECKSUM,
    GAP,
    MISSING,
    incomplete_runs,
    run_ledger,
    run_ledgers,
)
from farmtools.bookkeeping.registry import (
    FlagError,
    flag_history,
    good_runs,
    run_flag,
    set_auto_flag,
    set_flag,
)
from farmtools.cli import app
from tests.integration.bookkeeping.schemas import reopened_at
from tests.runs_farm import add_file, eor


def test_ledger_counts_each_stage_gaps_and_stuck_files(bk: Bookkeeping) -> None:
    add_file(bk, 3, 0, FileState.ANALYSED)
    add_file(bk, 3, 1, FileState.RECONSTRUCTED)
    add_file(bk, 3, 2, FileState.STORED)
    add_file(bk, 3, 4, FileState.DETECTED)  # 3 never came
    add_file(bk, 3, 5, FileState.FAILED)
    add_file(bk, 4, 0, FileState.STORED)
    (led,) = run_ledgers(bk, run=3)
    assert (led.detected, led.stored, led.reconstructed, led.analysed) == (5, 3, 2, 1)
    assert (led.failed, led.status, led.flag, led.expected_files) == (1, "open", "unknown", None)
    assert led.gaps == [3]
    assert [k for k, _ in led.issues] == [GAP, "run_failed_files"]
    assert "sequence number 3 missing" in led.problems[0]
    assert led.stuck == []  # nothing older than an hour
    (led,) = run_ledgers(bk, run=3, stuck_after_s=0.0)
    assert [s.name for s in led.stuck] == [f"run3-seq{i}.dat" for i in (2, 4)]  # as the monitor
    assert [r.run for r in run_ledgers(bk)] == [3, 4]
    assert run_ledger(bk, 99) is None


def test_6x6x6_gaps_are_per_l2_builder(bk: Bookkeeping) -> None:
    """Each L2 builder numbers its event files from 0: builder b's missing seq 1 is a gap even
    though builder a wrote a seq 1."""
    for name, seq in (("12_0_a.dat", 0), ("12_1_a.dat", 1), ("12_0_b.dat", 0), ("12_2_b.dat", 2)):
        bk.register_file(name, source_path="x", run=12, seq=seq, size=1, daq_write_time=None)
    led = run_ledger(bk, 12)
    assert led is not None and led.gaps == [1]
    assert led.issues == [(GAP, "run 12: sequence number 1 of L2 builder b missing")]


def test_the_end_of_run_record_names_missing_files_and_checksum_disagreements(
    bk: Bookkeeping,
) -> None:
    a = add_file(bk, 5, 0, size=100, adler32="0000abcd")
    b = add_file(bk, 5, 1, size=100, adler32="0000abcd")
    record = eor(5, [(a, 100, "0000abcd"), (b, 100, "11112222"), ("run5-seq2.dat", 100, None)])
    assert bk.record_end_of_run(5, record, source="/daq/run5.eor.json")
    assert not bk.record_end_of_run(5, record, source="/daq/run5.eor.json")  # read again
    led = run_ledger(bk, 5)
    assert led is not None
    assert (led.expected_files, led.expected_events) == (3, 30)
    assert led.missing == ["run5-seq2.dat"] and led.gaps == [2]  # last_seq 2 from the record
    kinds = dict(led.issues)
    assert "run5-seq2.dat" in kinds[MISSING]
    assert kinds[CHECKSUM] == f"{b}: adler32 0000abcd here, 11112222 in the end-of-run record"
    doc = led.to_json()
    assert doc["complete"] is False and doc["expected_files"] == 3
    # a run known only from its record (no file arrived) is in the ledger too
    assert bk.record_end_of_run(6, eor(6, []), source="x")
    assert [r.run for r in run_ledgers(bk)] == [5, 6]


def test_registry_checks_decide_a_person_overrides_and_history_is_kept(bk: Bookkeeping) -> None:
    add_file(bk, 7, 0)
    assert run_flag(bk, 7) == "unknown"
    assert set_auto_flag(bk, 7, "completeness", "good", "complete")
    assert not set_auto_flag(bk, 7, "completeness", "good", "complete")  # same: not repeated
    assert run_flag(bk, 7) == "good" and good_runs(bk) == [7]
    set_auto_flag(bk, 7, "dqm:noise", "bad", "42 noisy channels")
    assert run_flag(bk, 7) == "bad" and good_runs(bk) == []
    assert set_flag(bk, 7, "good", reason="noise understood", user="shifter") == "good"
    set_auto_flag(bk, 7, "dqm:noise", "bad", "43 noisy channels")
    assert run_flag(bk, 7) == "good"  # the person's word stands
    assert set_flag(bk, 7, "auto", reason="back to the checks", user="shifter") == "bad"
    history = flag_history(bk, 7)
    assert [(c.flag, c.source, c.user) for c in history] == [
        ("good", "completeness", ""),
        ("bad", "dqm:noise", ""),
        ("good", "person", "shifter"),
        ("bad", "dqm:noise", ""),
        ("auto", "person", "shifter"),
    ]
    with pytest.raises(FlagError, match="reason"):
        set_flag(bk, 7, "bad", reason=" ")
    with pytest.raises(FlagError, match="'excellent'"):
        set_auto_flag(bk, 7, "completeness", "excellent", "")


def _farm(tmp_path: Path, db_url: str) -> Path:
    cfg = tmp_path / "farm.toml"
    cfg.write_text(f'[farm]\nhome = "{tmp_path}"\n[database]\nurl = "{db_url}"\n')
    return cfg


def _cli(cfg: Path, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, [*args, "--config", str(cfg)])
    return res.exit_code, res.output


def test_cli_flags_a_run_with_who_and_why_and_lists_the_good_runs(
    bk: Bookkeeping, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SUDO_USER", raising=False)
    cfg = _farm(tmp_path, db_url)
    for run in (8, 9):
        add_file(bk, run, 0)
        set_auto_flag(bk, run, "completeness", "good", "complete")
    code, out = _cli(cfg, "run", "8", "flag", "bad", "--reason", "HV trip")
    assert code == 0 and out.strip() == "run 8: flag bad", out
    code, out = _cli(cfg, "runs", "good", "--json")
    assert code == 0 and json.loads(out)["runs"] == [9], out
    code, out = _cli(cfg, "run", "8", "--json")
    doc = json.loads(out)
    assert doc["flag"] == "bad" and doc["files"][0]["name"] == "run8-seq0.dat"
    last = doc["flag_history"][-1]
    assert (last["flag"], last["source"], last["reason"]) == ("bad", "person", "HV trip")
    assert last["user"] == getpass.getuser()  # the Unix user
    code, out = _cli(cfg, "run", "8", "flag", "bad")
    assert code == 2 and "reason is required" in out
    code, out = _cli(cfg, "run", "8", "flag", "awful", "--reason", "x")
    assert code == 2 and "'awful'" in out
    code, out = _cli(cfg, "run", "77")
    assert code == 1 and "run 77: no such run" in out
    code, out = _cli(cfg, "runs")
    lines = out.splitlines()
    assert code == 0 and lines[1].split()[:4] == ["run", "status", "flag", "files"], out
    assert lines[2].split()[:3] == ["8", "open", "bad"]
    code, out = _cli(cfg, "runs", "--last", "1", "--json")
    assert code == 0 and [r["run"] for r in json.loads(out)] == [9]


def test_a_flag_set_through_sudo_names_the_person_behind_it(
    bk: Bookkeeping, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_file(bk, 10, 0)
    monkeypatch.setenv("SUDO_USER", "alice")
    monkeypatch.setattr(getpass, "getuser", lambda: "prod")
    set_flag(bk, 10, "bad", reason="HV trip")
    assert flag_history(bk, 10)[-1].user == "alice as prod"


def test_a_version_5_database_gets_the_run_tables_by_its_upgrade_step(
    bk: Bookkeeping, db_url: str
) -> None:
    add_file(bk, 2, 0)

    def undo(conn: sa.Connection) -> None:  # what a database of schema version 5 looked like
        schema.run_flags.drop(conn)
        schema.run_status.drop(conn)
        conn.execute(sa.text("ALTER TABLE analyses DROP COLUMN partial"))

    new = reopened_at(bk, db_url, 5, undo)  # opening upgrades
    try:
        assert new.schema_version() == schema.SCHEMA_VERSION
        with new.engine.connect() as conn:
            insp = sa.inspect(conn)
            assert {"run_status", "run_flags"} <= set(insp.get_table_names())
            assert "partial" in {c["name"] for c in insp.get_columns("analyses")}
        assert new.upgrade() == schema.SCHEMA_VERSION  # again: nothing to do
        set_auto_flag(new, 2, "completeness", "bad", "gap")
        assert run_flag(new, 2) == "bad"
        assert new.files(run=2)[0].state == FileState.STORED
    finally:
        new.close()


def test_stuck_threshold_counts_from_the_state_change(bk: Bookkeeping) -> None:
    name = add_file(bk, 11, 0, FileState.QUEUED)
    since = bk.get(name).state_since  # type: ignore[union-attr]
    (led,) = run_ledgers(bk, run=11, stuck_after_s=3600.0)
    assert led.stuck == []
    age = (datetime.now(UTC) - since + timedelta(seconds=1)).total_seconds()
    assert age < 3600.0
    (led,) = run_ledgers(bk, run=11, stuck_after_s=age / 1000)
    assert [(s.name, s.state) for s in led.stuck] == [(name, "queued")]


def test_incomplete_runs_are_the_ones_a_shift_must_look_at(bk: Bookkeeping) -> None:
    add_file(bk, 1, 1, FileState.ANALYSED)  # seq 0 missing: a problem once closed
    add_file(bk, 2, 0, FileState.ANALYSED)
    add_file(bk, 3, 0, FileState.QUEUED)
    assert bk.close_run(1, "quiet", ["gap"]) and bk.finish_run(1, ["gap"], None)
    assert bk.close_run(2, "end_of_run", []) and bk.finish_run(2, [], None)
    assert not bk.close_run(2, "end_of_run", [])  # closed once
    assert [r.run for r in incomplete_runs(bk)] == [1]  # 3 is open and not stuck yet
    assert [r.run for r in incomplete_runs(bk, stuck_after_s=0.0)] == [1, 3]
    assert [r.run for r in incomplete_runs(bk, stuck_after_s=0.0, last=1)] == [3]
