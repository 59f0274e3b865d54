"""``farmtools status``: each condition it shows, created for real in a SQLite bookkeeping.

Exit code 0 when nothing needs a person, 1 when something does; ``--json`` and ``--nagios``.
"""

from __future__ import annotations

import getpass
import json
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from farmtools.bookkeeping import Bookkeeping, Event, FileState, schema
from farmtools.bookkeeping.schema import now
from farmtools.cli import app
from farmtools.config import NotifySection, load_config
from farmtools.monitor.alarms import AlarmChecker, evaluate_buffer
from farmtools.monitor.attention import (
    BufferSampler,
    buffer_forecast,
    buffer_of,
    resolve_command,
)
from farmtools.monitor.queries import FarmQueries
from farmtools.monitor.store import SummaryStore
from farmtools.processing.jobs import JobStore
from tests.servers.smtp import SmtpServer
from tests.states import walk, walk_job


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[tuple[Path, Bookkeeping]]:
    cfg_file = tmp_path / "farm.toml"
    cfg_file.write_text('[farm]\nhome = "farm"\n[monitor]\nstuck_after_s = 600.0\n')
    bk = Bookkeeping.from_config(load_config(cfg_file))
    yield cfg_file, bk
    bk.close()


def _status(cfg_file: Path, *args: str) -> tuple[int, Any]:
    out = CliRunner().invoke(app, ["status", "-c", str(cfg_file), *args])
    assert out.exception is None or isinstance(out.exception, SystemExit), out.output
    if args == ("--json",):
        return out.exit_code, json.loads(out.stdout)
    return out.exit_code, out.stdout


def _file(bk: Bookkeeping, run: int, seq: int, size: int = 1000) -> str:
    name = f"run{run}-seq{seq}.dat"
    bk.register_file(
        name, source_path=f"/daq/{name}", run=run, seq=seq, size=size, daq_write_time=now()
    )
    return name


def _park(bk: Bookkeeping, name: str, state: FileState, source: str, kind: str) -> None:
    """``name`` from detected to ``state`` with an alarm, as ingest and processing do."""
    walk(bk, name, state, str(state), alarm=(source, kind, f"{name}: {kind}"))


def _analysed(bk: Bookkeeping, name: str) -> None:
    walk(bk, name, FileState.ANALYSED, Event.ANALYSED)


def test_an_empty_farm_needs_nobody(farm: tuple[Path, Bookkeeping]) -> None:
    cfg_file, _ = farm
    code, text = _status(cfg_file)
    assert code == 0 and text.startswith("OK: nothing needs a person")
    assert "jobs in the batch system: new 0, submitted 0, running 0" in text
    code, line = _status(cfg_file, "--nagios")
    assert code == 0 and line.startswith("FARMTOOLS OK - nothing needs a person | alarms=0")


def test_an_alarm_is_grouped_with_its_command_and_closes_when_the_file_is_reingested(
    farm: tuple[Path, Bookkeeping],
) -> None:
    cfg_file, bk = farm
    names = [_file(bk, 3, seq) for seq in (0, 1)]
    for name in names:
        _park(bk, name, FileState.QUARANTINED, "ingest", "truncated")
    code, doc = _status(cfg_file, "--json")
    assert code == 1 and doc["needs_person"] is True
    (group,) = doc["alarms"]
    assert (group["source"], group["kind"], group["count"]) == ("ingest", "truncated", 2)
    assert group["command"] == "farmtools ingest retry run3-seq1.dat run3-seq0.dat"
    assert doc["failed_count"] == 2 and {f["name"] for f in doc["failed"]} == set(names)
    assert doc["attention"] == ["2 open alarm(s) of 1 kind(s)"]
    code, line = _status(cfg_file, "--nagios")
    assert code == 1 and line.startswith("FARMTOOLS WARNING - 2 open alarm(s)")
    assert "alarms=2" in line and "failed=2" in line

    for name in names:  # re-ingested after a person fixed the cause
        bk.transition(name, FileState.QUARANTINED, FileState.DETECTED, Event.RETRY)
        walk(bk, name, FileState.STORED, Event.VERIFIED)
    code, doc = _status(cfg_file, "--json")
    assert code == 0 and doc["alarms"] == [] and doc["failed_count"] == 0
    assert bk.story(names[0])[-1].event == Event.ALARM_CLEARED


def test_a_failed_file_whose_alarm_was_acknowledged_is_shown_but_needs_nobody(
    farm: tuple[Path, Bookkeeping],
) -> None:
    cfg_file, bk = farm
    name = _file(bk, 4, 0)
    _park(bk, name, FileState.FAILED, "processing", "oom")
    code, doc = _status(cfg_file, "--json")
    assert code == 1 and doc["alarms"][0]["command"] == f"farmtools jobs retry {name}"
    out = CliRunner().invoke(app, ["monitor", "ack", str(bk.alarms()[0].id), "-c", str(cfg_file)])
    assert out.exit_code == 0 and "acknowledged by" in out.output
    code, text = _status(cfg_file)
    assert code == 0
    assert "failed and quarantined files (1" in text and name in text
    listed = CliRunner().invoke(app, ["alarms", "--all", "--json", "-c", str(cfg_file)])
    (alarm,) = json.loads(listed.stdout)
    assert alarm["closed_how"] == "acknowledged" and alarm["closed_by"] == getpass.getuser()
    assert alarm["closed"].endswith("Z") and alarm["acknowledged"] is True


def test_a_stuck_file_needs_a_person(farm: tuple[Path, Bookkeeping]) -> None:
    cfg_file, bk = farm
    name = _file(bk, 5, 0)
    bk.update_fields(name, state_since=now() - timedelta(hours=2))
    code, doc = _status(cfg_file, "--json")
    assert code == 1 and doc["stuck_count"] == 1 and doc["stuck"][0]["name"] == name
    assert doc["attention"] == ["1 file(s) stuck more than 600 s"]


def test_an_incomplete_run_is_listed_with_its_gap(farm: tuple[Path, Bookkeeping]) -> None:
    cfg_file, bk = farm
    for seq in (0, 1):
        _analysed(bk, _file(bk, 6, seq))
    for seq in (0, 1, 3):
        name = _file(bk, 7, seq)
        if seq != 3:
            _analysed(bk, name)
    code, doc = _status(cfg_file, "--json")
    assert code == 0 and doc["incomplete_runs"] == []  # open runs, nothing stuck: still coming
    for run in (6, 7):  # the run ledger closes them (quiet after a later run started)
        assert bk.close_run(run, "quiet", [])
    code, doc = _status(cfg_file, "--json")
    assert code == 0  # the run's close raises the alarm for a gap; the listing itself needs nobody
    (run7,) = [r for r in doc["incomplete_runs"] if r["run"] == 7]
    assert run7["status"] == "closed" and run7["gaps"] == [2] and run7["analysed"] == 2
    assert any("2" in p for p in run7["problems"])
    code, text = _status(cfg_file)
    listed = text.split("incomplete runs (")[1].splitlines()
    assert any(line.split()[:2] == ["7", "closed"] for line in listed)


def test_a_silent_daemon_needs_a_person_until_it_beats_again(
    farm: tuple[Path, Bookkeeping],
) -> None:
    cfg_file, bk = farm
    bk.beat("processing", started=now(), detail="0 jobs")
    bk.beat("ingest", started=now(), stopped=True)
    code, doc = _status(cfg_file, "--json")
    assert code == 0 and {d["daemon"]: d["silent"] for d in doc["daemons"]} == {
        "ingest": False,
        "processing": False,
    }
    with bk.engine.begin() as conn:  # its last beat, ten minutes ago
        conn.execute(
            sa.update(schema.heartbeats)
            .where(schema.heartbeats.c.daemon == "processing")
            .values(beat=now() - timedelta(minutes=10))
        )
    code, text = _status(cfg_file)
    assert code == 1 and "daemon processing on" in text and "SILENT" in text
    assert "stopped" in text  # the ingest daemon was stopped cleanly: not silent

    cfg = load_config(cfg_file)
    checker = AlarmChecker(
        cfg, bk, FarmQueries(bk.engine), SummaryStore(cfg.path(cfg.analysis.summary_dir))
    )
    (new,) = checker.check()
    assert new.kind.startswith("daemon_silent:processing@")
    assert "systemctl restart farmtools-processing.service" in new.message
    bk.beat("processing", started=now())
    assert checker.check() == []
    (closed,) = bk.alarms(include_acknowledged=True)
    assert (closed.closed_how, closed.close_reason) == ("cleared", "beats again")
    code, _ = _status(cfg_file)
    assert code == 0


def test_the_buffer_forecast_follows_the_incoming_rate(farm: tuple[Path, Bookkeeping]) -> None:
    cfg_file, bk = farm
    code, doc = _status(cfg_file, "--json")
    assert doc["buffer"]["seconds_to_full"] is None and doc["buffer"]["total_bytes"] > 0
    free = shutil.disk_usage(cfg_file.parent).free
    # the DAQ wrote ten times the free space in the last hour: full in about six minutes
    _analysed(bk, _file(bk, 8, 0, size=10 * free))
    code, doc = _status(cfg_file, "--json")
    b = doc["buffer"]
    assert code == 1 and b["rate_bytes_s"] == pytest.approx(10 * free / 3600)
    assert 0 < b["seconds_to_full"] < 3600
    assert doc["attention"][0].startswith("storage ")


def test_the_buffer_alarm_is_raised_below_the_threshold_and_clears_by_itself(
    farm: tuple[Path, Bookkeeping],
) -> None:
    cfg_file, bk = farm
    cfg = load_config(cfg_file)
    checker = AlarmChecker(
        cfg, bk, FarmQueries(bk.engine), SummaryStore(cfg.path(cfg.analysis.summary_dir))
    )
    assert checker.check() == []
    free = shutil.disk_usage(cfg_file.parent).free
    # full in about 5 h: above a 3-hour threshold, below the default 24 h
    name = _file(bk, 8, 0, size=free // 5)
    relaxed = cfg.model_copy(
        update={"monitor": cfg.monitor.model_copy(update={"buffer_warn_h": 3.0})}
    )
    assert evaluate_buffer(buffer_of(relaxed, FarmQueries(bk.engine)), relaxed.monitor) == []
    (new,) = checker.check()
    assert new.kind == "buffer_full" and "below the 24 h it must cover" in new.message
    assert checker.check() == []  # one open alarm, not one per pass
    code, doc = _status(cfg_file, "--json")
    (group,) = doc["alarms"]
    assert code == 1 and group["command"].startswith("farmtools status (storage)")
    assert doc["buffer"]["change_bytes_s"] is None  # a one-shot status has no samples
    with bk.engine.begin() as conn:  # the file was written two hours ago: nothing comes in now
        conn.execute(
            sa.update(schema.files)
            .where(schema.files.c.name == name)
            .values(daq_write_time=now() - timedelta(hours=2))
        )
    assert checker.check() == []
    (closed,) = bk.alarms(include_acknowledged=True)
    assert (closed.closed_how, closed.close_reason) == ("cleared", "nothing coming in")


def test_the_sampler_measures_the_rate_of_change_over_its_window() -> None:
    s = BufferSampler(window_s=100.0)
    assert s.add(0.0, 1000) is None  # one sample: no rate
    assert s.add(10.0, 3000) == 200.0
    assert s.add(20.0, 2000) == 50.0  # freed meanwhile: the net change since the first sample
    assert s.add(110.0, 2000) == -10.0  # the first fell out of the window: since the second


def test_buffer_forecast_without_a_capacity_or_a_rate() -> None:
    assert buffer_forecast("root://eos", None, 5e6, 3600).seconds_to_full is None
    f = buffer_forecast("/data", (1000, 400, 600), 2.0, 60)
    assert (f.seconds_to_full, f.used_fraction) == (300.0, 0.4)
    assert buffer_forecast("/data", (1000, 400, 600), 0.0, 60).seconds_to_full is None


def test_jobs_in_the_batch_system_by_state(farm: tuple[Path, Bookkeeping]) -> None:
    cfg_file, bk = farm
    jobs = JobStore(bk)
    for seq, state in ((0, "running"), (1, "submitted"), (2, "submitted"), (3, "done")):
        j = jobs.add(
            file=_file(bk, 9, seq),
            try_number=1,
            backend="local",
            name=f"j{seq}",
            queue="prod",
            memory_mb=100,
            walltime_s=60,
        )
        walk_job(jobs, j.id, state)
    code, doc = _status(cfg_file, "--json")
    assert code == 0 and doc["jobs"] == {"new": 0, "submitted": 2, "running": 1}


def test_the_monitor_beats_while_it_serves(farm: tuple[Path, Bookkeeping]) -> None:
    from farmtools.monitor.app import Monitor
    from tests.eventually import eventually

    cfg_file, bk = farm
    monitor = Monitor(load_config(cfg_file), bk)
    monitor.start()
    try:
        eventually(lambda: [h.daemon for h in bk.heartbeats()], 30, "a beat")
        assert bk.heartbeats()[0].daemon == "monitor"
    finally:
        monitor.stop()
    assert bk.heartbeats()[0].stopped is not None


def test_the_monitoring_page_shows_the_same_status_read_only(
    farm: tuple[Path, Bookkeeping],
) -> None:
    from starlette.testclient import TestClient

    from farmtools.monitor.app import Monitor, build_app

    cfg_file, bk = farm
    name = _file(bk, 10, 0)
    _park(bk, name, FileState.QUARANTINED, "ingest", "checksum_conflict")
    bk.beat("evb-a", started=now())
    with bk.engine.begin() as conn:
        conn.execute(sa.update(schema.heartbeats).values(beat=now() - timedelta(hours=1)))
    with TestClient(build_app(Monitor(load_config(cfg_file), bk))) as c:
        page = c.get("/shift")
        assert page.status_code == 200
        assert "Needs a person" in page.text and f"farmtools ingest retry {name}" in page.text
        assert "SILENT" in page.text and "farmtools-evb-a.service" in page.text
        doc = c.get("/api/shift").json()
        assert c.post("/shift").status_code == 405
    _, cli = _status(cfg_file, "--json")
    assert len(doc["attention"]) == len(cli["attention"]) == 2
    assert doc["attention"][0] == cli["attention"][0] == "1 open alarm(s) of 1 kind(s)"
    assert all(a.startswith("daemon evb-a on ") for a in (doc["attention"][1], cli["attention"][1]))
    assert set(doc) == set(cli) and doc["alarms"][0]["ids"] == cli["alarms"][0]["ids"]


def test_each_source_has_its_resolving_command() -> None:
    assert resolve_command("ingest", "truncated", "run1-seq0.dat") == (
        "farmtools ingest retry run1-seq0.dat"
    )
    assert resolve_command("processing", "oom", "run1-seq0.dat") == (
        "farmtools jobs retry run1-seq0.dat"
    )
    assert resolve_command("runs", "run_gap", None, 7, "run 20: sequence number 2 missing") == (
        "farmtools run 20, then farmtools monitor ack 7"
    )
    assert resolve_command("monitor", "daemon_silent:evb-b@l2b", None, 3) == (
        "ssh l2b sudo systemctl restart farmtools-evb-b.service"
    )
    assert resolve_command("monitor", "lifetime_low:view0", None, 5) == "farmtools monitor ack 5"


def test_the_bounded_incomplete_runs_are_the_ledgers(farm: tuple[Path, Bookkeeping]) -> None:
    """attention.incomplete_runs reads only the candidate runs: the same list as the ledger's
    incomplete_runs, which reads every run (a drift between the two fails here)."""
    from farmtools.bookkeeping.ledger import incomplete_runs as ledger_incomplete
    from farmtools.monitor.attention import incomplete_runs

    _, bk = farm
    for run in range(20, 27):
        for seq in (0, 1, 2):
            if not (run == 21 and seq == 1):  # run 21 has a gap
                _analysed(bk, _file(bk, run, seq))
    for run in (20, 21, 22, 23, 26):
        bk.close_run(run, "quiet", [])
    bk.finish_run(26, [], None)  # closed and finished clean: complete
    bk.finish_run(20, [], None)  # finished clean, then a late file of it failed
    _park(bk, _file(bk, 20, 3), FileState.FAILED, "processing", "oom")
    bk.finish_run(21, ["sequence number 1 missing"], None)  # finished with a problem
    # 22, 23 closed, not finished; 24 open with a stuck file; 25 open with a failed file
    stuck = _file(bk, 24, 3)
    bk.update_fields(stuck, state_since=now() - timedelta(hours=2))
    _park(bk, _file(bk, 25, 3), FileState.FAILED, "processing", "oom")
    expected = [r.to_json() for r in reversed(ledger_incomplete(bk, stuck_after_s=600.0))]
    got = incomplete_runs(bk, FarmQueries(bk.engine), 600.0, 50)
    assert [r["run"] for r in got] == [r["run"] for r in expected] and got == expected
    assert {r["run"] for r in got} >= {20, 21, 22, 23, 24} and 26 not in {r["run"] for r in got}
    assert [r["run"] for r in incomplete_runs(bk, FarmQueries(bk.engine), 600.0, 2)] == [
        r["run"] for r in expected[:2]
    ]


@pytest.mark.smtp
def test_the_other_stages_alarms_are_mailed_once_by_the_monitor(
    farm: tuple[Path, Bookkeeping], smtp_server: SmtpServer
) -> None:
    """Ingest, archive, final and run closing write alarms to the bookkeeping only: the
    monitor mails each one once, and nothing raised before it started."""
    cfg_file, bk = farm
    base = load_config(cfg_file)
    notify = NotifySection(email_to=["shift@localhost"], smtp_port=smtp_server.port)
    cfg = base.model_copy(update={"notify": notify})
    bk.raise_alarm(None, "archive", "archive_failed", "archive a0: raised before the monitor")
    checker = AlarmChecker(
        cfg, bk, FarmQueries(bk.engine), SummaryStore(cfg.path(cfg.analysis.summary_dir))
    )
    assert checker.check() == [] and checker.relay() == 0
    name = _file(bk, 8, 0)
    bk.raise_alarm(name, "ingest", "quarantined", "header truncated at byte 12")
    bk.raise_alarm(None, "archive", "archive_failed", "archive a1: server down")
    assert checker.relay() == 2
    mails = smtp_server.wait_for(2)
    assert sorted(m["Subject"] for m in mails) == [
        "[farmtools archive] archive_failed",
        f"[farmtools ingest] quarantined ({name})",
    ]
    assert any("header truncated at byte 12" in m.get_payload() for m in mails)
    checker.check()  # a later pass mails nothing again
    assert checker.relay() == 0 and len(smtp_server.messages) == 2
