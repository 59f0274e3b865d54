"""``farmtools story / runs / files / alarms / logs export / db upgrade`` on a real database."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from farmtools.bookkeeping import Bookkeeping, Event, FileState
from farmtools.bookkeeping.cli import ALARM_FIELDS, FILE_FIELDS
from farmtools.bookkeeping.schema import SCHEMA_VERSION
from farmtools.bookkeeping.textlogs import export, line_for
from farmtools.cli import app
from tests.unit.bookkeeping.test_textlogs import SEED_RE

runner = CliRunner()


@pytest.fixture
def farm(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A farm.toml naming the test database; the farm's clock is CERN's."""
    monkeypatch.setenv("TZ", "Europe/Zurich")
    time.tzset()
    cfg = tmp_path / "farm.toml"
    cfg.write_text(f'[farm]\nhome = "{tmp_path}/home"\n\n[database]\nurl = "{db_url}"\n')
    yield cfg
    monkeypatch.undo()
    time.tzset()


def _stored(bk: Bookkeeping, run: int, seq: int, size: int = 1 << 20) -> str:
    """A file through detection, copy and verification, as ingest records it."""
    name = f"run{run}-seq{seq}.dat"
    bk.register_file(
        name,
        source_path=f"/evb/data/{name}",
        run=run,
        seq=seq,
        size=size,
        daq_write_time=datetime(2016, 10, 27, 11, 50, tzinfo=UTC),
    )
    (rec,) = bk.claim(
        "detected", "copying", worker="evb:1", event=Event.COPY_STARTED, run=run, limit=1
    )
    assert rec.name == name
    bk.record(name, Event.COPY_ENDED, {"bytes": size})
    assert bk.transition(
        name,
        FileState.COPYING,
        FileState.STORED,
        Event.VERIFIED,
        {"adler32": "0a1b2c3d"},
        fields={"adler32": "0a1b2c3d", "storage_path": f"/home/prod/storage/input/run{run}/{name}"},
    )
    return name


def _cli(cfg: Path, *args: str) -> tuple[int, str]:
    res = runner.invoke(app, [*args, "--config", str(cfg)])
    return res.exit_code, res.output


def test_story_prints_the_timeline_in_order(farm: Path, db_url: str) -> None:
    bk = Bookkeeping(db_url)
    name = _stored(bk, 1014, 2)
    code, out = _cli(farm, "story", name)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == f"{name}  [stored]  run 1014 seq 2  adler32 0a1b2c3d"
    events = [ln.split()[2] for ln in lines[2:]]
    assert events == ["written", "detected", "copy_started", "copy_ended", "verified"]
    assert '{"adler32": "0a1b2c3d"}' in lines[-1]
    # a path to the file works too; an unknown file is an error naming it
    assert _cli(farm, "story", f"/evb/data/{name}")[1] == out
    code, out = _cli(farm, "story", "run9-seq9.dat")
    assert code == 1 and "run9-seq9.dat: not in the bookkeeping database" in out
    bk.close()


def test_runs_and_files(farm: Path, db_url: str) -> None:
    bk = Bookkeeping(db_url)
    _stored(bk, 1014, 0, size=3 << 20)
    _stored(bk, 1014, 1, size=3 << 20)
    bk.register_file(
        "run1015-seq0.dat", source_path="x", run=1015, seq=0, size=10, daq_write_time=None
    )
    code, out = _cli(farm, "runs")
    assert code == 0, out
    rows = [ln.split(None, 3) for ln in out.splitlines()[2:]]
    assert rows == [["1014", "2", "6M", "stored 2"], ["1015", "1", "1K", "detected 1"]]

    code, out = _cli(farm, "files", "--run", "1014", "--state", "stored")
    assert code == 0, out
    assert out.splitlines()[0] == "files of run 1014 in state stored"
    assert [ln.split()[0] for ln in out.splitlines()[2:]] == [
        "run1014-seq0.dat",
        "run1014-seq1.dat",
    ]
    assert "0a1b2c3d" in out
    code, out = _cli(farm, "files", "--state", "detected")
    assert [ln.split()[0] for ln in out.splitlines()[2:]] == ["run1015-seq0.dat"]
    code, out = _cli(farm, "files", "--run", "99")  # not an empty table: no such run
    assert code == 1 and "--run 99: no such run in the bookkeeping database" in out
    code, out = _cli(farm, "files", "--run", "1015", "--state", "stored")
    assert code == 0 and len(out.splitlines()) == 2  # the run exists: title and header
    code, out = _cli(farm, "files", "--state", "lost")
    assert code == 2 and "--state 'lost': not one of detected, copying" in out
    bk.close()


def test_alarms_command(farm: Path, db_url: str) -> None:
    bk = Bookkeeping(db_url)
    bk.register_file("run1-seq0.dat", source_path="x", run=1, seq=0, size=1, daq_write_time=None)
    bk.raise_alarm("run1-seq0.dat", "ingest", "checksum_conflict", "different bytes [kept]")
    code, out = _cli(farm, "alarms")
    assert code == 0
    (row,) = out.splitlines()[2:]
    assert row.split()[3:] == [
        "run1-seq0.dat",
        "ingest",
        "checksum_conflict",
        "different",
        "bytes",
        "[kept]",
    ]
    bk.acknowledge_alarm(bk.alarms()[0].id)
    assert len(_cli(farm, "alarms")[1].splitlines()) == 2
    assert len(_cli(farm, "alarms", "--all")[1].splitlines()) == 3
    bk.close()


def test_db_upgrade_command(farm: Path, db_url: str) -> None:
    code, out = _cli(farm, "db", "upgrade")
    assert code == 0 and out.rstrip().endswith(f"schema version {SCHEMA_VERSION}")
    assert "password" not in out


def test_logs_export_matches_the_seed_format(farm: Path, db_url: str, tmp_path: Path) -> None:
    bk = Bookkeeping(db_url)
    names = [_stored(bk, 1014, 0), _stored(bk, 1015, 0), _stored(bk, 1014, 1)]
    # a retried copy: one line, with the successful (last) attempt
    bk.register_file(
        "run1015-seq1.dat", source_path="x", run=1015, seq=1, size=5, daq_write_time=None
    )
    bk.claim("detected", "copying", worker="w", event=Event.COPY_STARTED)
    bk.transition("run1015-seq1.dat", "copying", "detected", Event.RETRY, {"error": "down"})
    bk.claim("detected", "copying", worker="w", event=Event.COPY_STARTED)
    bk.transition(
        "run1015-seq1.dat",
        "copying",
        "stored",
        Event.VERIFIED,
        fields={"storage_path": "/home/prod/storage/input/run1015/run1015-seq1.dat"},
    )
    names.append("run1015-seq1.dat")
    # the same bytes were on the storage already: recorded, a zero-length line
    bk.register_file(
        "run1016-seq0.dat", source_path="x", run=1016, seq=0, size=7, daq_write_time=None
    )
    bk.claim("detected", "copying", worker="w", event=Event.COPY_STARTED)
    bk.transition(
        "run1016-seq0.dat",
        "copying",
        "stored",
        Event.ALREADY_STORED,
        fields={"storage_path": "/home/prod/storage/input/run1016/run1016-seq0.dat"},
    )
    names.append("run1016-seq0.dat")
    # not stored: no line
    bk.register_file(
        "run1016-seq1.dat", source_path="x", run=1016, seq=1, size=7, daq_write_time=None
    )
    bk.transition("run1016-seq1.dat", "detected", "quarantined", Event.QUARANTINED)

    dest = tmp_path / "public"
    code, out = _cli(farm, "logs", "export", str(dest))
    assert code == 0 and out.strip() == f"5 transfer lines written to {dest}"
    all_lines = (dest / "alltransfer.log").read_text().splitlines()
    assert len(all_lines) == 5
    for ln in all_lines:
        m = SEED_RE.match(ln)
        assert m, ln
        assert m.group(6).startswith("/home/prod/storage/input/run")
    # in copy-start order: the order they were taken
    assert [ln.rsplit("/", 1)[1] for ln in all_lines] == names
    assert all_lines[0].split()[5:7] == ["1M", "2016-10-27"] and all_lines[0].split()[7] == "13:50"
    for run in (1014, 1015, 1016):
        per_run = (dest / "runs" / f"run{run}.log").read_text().splitlines()
        assert per_run == [ln for ln in all_lines if f"/run{run}/" in ln]
    # the live line (what ingest appends) is the exported line
    rec = bk.get(names[0])
    assert rec is not None and line_for(bk, rec) == all_lines[0]
    # export is a rewrite, not an append
    assert export(bk, dest) == 5 and len((dest / "alltransfer.log").read_text().splitlines()) == 5
    assert not [p for p in dest.rglob("*.tmp")]
    assert re.fullmatch(r"0 .*", all_lines[-1])  # already stored: no copy time
    bk.close()


def _json(cfg: Path, *args: str) -> Any:
    code, out = _cli(cfg, *args, "--json")
    assert code == 0, out
    return json.loads(out)


def test_listings_give_json_with_the_documented_fields(farm: Path, db_url: str) -> None:
    """runs, files, alarms, story --json: one document each, fields as docs/bookkeeping.md."""
    bk = Bookkeeping(db_url)
    name = _stored(bk, 1014, 0, size=3 << 20)
    long = "run1015-seq0-" + "long" * 40 + ".dat"  # wider than any terminal
    bk.register_file(long, source_path="x", run=1015, seq=0, size=10, daq_write_time=None)
    bk.raise_alarm(name, "ingest", "checksum_conflict", "different bytes")
    runs = _json(farm, "runs")
    assert [(r["run"], r["files"], r["bytes"], r["states"]) for r in runs] == [
        (1014, 1, 3 << 20, {"stored": 1}),
        (1015, 1, 10, {"detected": 1}),
    ]
    assert set(runs[0]) == {"run", "files", "bytes", "states", "evb"} and runs[0]["evb"] is None
    files = _json(farm, "files", "--run", "1014")
    assert set(files[0]) == set(FILE_FIELDS) and files[0]["name"] == name
    assert files[0]["daq_write_time"] == "2016-10-27T11:50:00.000000Z"
    assert (files[0]["state"], files[0]["adler32"], files[0]["size"]) == (
        "stored",
        "0a1b2c3d",
        3 << 20,
    )
    since = datetime.fromisoformat(files[0]["state_since"])
    assert since.tzinfo is not None and abs(datetime.now(UTC) - since).total_seconds() < 600
    (alarm,) = _json(farm, "alarms")
    assert set(alarm) == set(ALARM_FIELDS)
    assert (alarm["file"], alarm["kind"], alarm["acknowledged"]) == (
        name,
        "checksum_conflict",
        False,
    )
    story = _json(farm, "story", name)
    assert (story["name"], story["state"], story["run"], story["seq"]) == (name, "stored", 1014, 0)
    events = {e["event"]: e for e in story["events"]}
    assert list(events)[:2] == ["written", "detected"] and "alarm" in events
    assert events["verified"]["details"] == {"adler32": "0a1b2c3d"}
    assert set(story["events"][0]) == {"time", "event", "host", "pid", "details"}
    # piped, the long name is whole on its line, in the table and in the story's title
    code, out = _cli(farm, "files")
    assert code == 0 and any(ln.split()[0] == long for ln in out.splitlines()[2:]), out
    assert "…" not in out
    bk.close()
