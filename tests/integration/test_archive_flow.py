"""The archive stage end to end on a real bookkeeping (SQLite) and real destinations.

Local directory and a real XRootD server (marker ``xrootd``); raw files are plain bytes with
raw-file names (the archive level does not look inside them).
"""

from __future__ import annotations

import json
import os
import pwd
import zlib
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from farmtools.archive.catalog import ArchiveRecord, ArchiveState
from farmtools.archive.cleanup import cleanup
from farmtools.archive.restore import RestoreError
from farmtools.archive.service import Archiver
from farmtools.bookkeeping import Bookkeeping, Event, FileState
from farmtools.config import FarmConfig
from farmtools.storage.checksum import adler32_hex
from tests.states import walk

SIZES = {(1012, 0): 300_000, (1012, 1): 200_000, (1013, 0): 400_000, (1014, 0): 150_000}


def _farm(tmp_path: Path, destination: str = "central") -> tuple[FarmConfig, Bookkeeping]:
    cfg = FarmConfig.model_validate(
        {
            "farm": {"home": str(tmp_path)},
            "archive": {"target_size": "1MB", "min_size": "100kB", "destination": destination},
            "storage": {"retries": 1, "backoff_s": 0.01},
            "base_dir": tmp_path,
        }
    )
    bk = Bookkeeping(cfg.database_url)
    for (run, seq), n in SIZES.items():
        name = f"run{run}-seq{seq}.dat"
        data = os.urandom(n)
        evb = cfg.path(cfg.daq.watch_dir) / name
        stored = cfg.path(cfg.storage.input) / f"run{run}" / name
        for p in (evb, stored):
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        bk.register_file(
            name, source_path=str(evb), run=run, seq=seq, size=n, daq_write_time=datetime.now(UTC)
        )
        walk(
            bk,
            name,
            FileState.STORED,
            Event.VERIFIED,
            fields={"adler32": adler32_hex(zlib.adler32(data)), "storage_path": str(stored)},
        )
    return cfg, bk


def _events(bk: Bookkeeping, name: str) -> list[str]:
    return [e.event for e in bk.story(name)]


def test_plan_create_transfer_verify_restore_local(tmp_path: Path) -> None:
    cfg, bk = _farm(tmp_path)
    arch = Archiver(cfg, bk)
    plan = arch.plan()
    # 1 MB target: runs 1012 (500 kB) + 1013 (400 kB) fit; 1014 (150 kB) opens a new one
    assert [a.runs for a in plan.archives] == [(1012, 1013), (1014,)]
    arch.record_plan(plan)
    assert arch.plan().archives == ()  # planned files are not planned twice
    assert arch.create().done == ["auto_1012.0-1013.0", "auto_1014.0-1014.0"]
    assert arch.transfer().done == ["auto_1012.0-1013.0", "auto_1014.0-1014.0"]
    central = tmp_path / "central"
    assert sorted(p.name for p in central.iterdir()) == [
        "auto_1012.0-1013.0.log",
        "auto_1012.0-1013.0.tar",
        "auto_1014.0-1014.0.log",
        "auto_1014.0-1014.0.tar",
    ]
    results = arch.verify()
    assert [r.ok for _, r in results] == [True, True]
    assert {r.state for r in arch.catalog.find()} == {ArchiveState.VERIFIED}
    story = _events(bk, "run1013-seq0.dat")
    assert story[-3:] == ["archived", "archive_transferred", "archive_verified"]
    # the database knows where each file's bytes are; restore reads them at the destination
    out = arch.restore("run1013-seq0.dat", tmp_path / "restored")
    assert out.read_bytes() == (cfg.path(cfg.storage.input) / "run1013" / out.name).read_bytes()
    assert _events(bk, "run1013-seq0.dat")[-1] == "restored"
    with pytest.raises(RestoreError, match="not in any archive"):
        arch.restore("run9999-seq0.dat", tmp_path / "restored")
    # a second transfer copies nothing and leaves no duplicate
    assert arch.transfer().done == []


def test_flipped_byte_at_destination_fails_verify_and_names_member(tmp_path: Path) -> None:
    cfg, bk = _farm(tmp_path)
    arch = Archiver(cfg, bk)
    arch.run_ready(force=True)
    rec = arch.catalog.get("auto_1012.0-1013.0")
    assert rec is not None and rec.state == ArchiveState.VERIFIED and rec.destination
    member = arch.catalog.member_of("run1012-seq1.dat")
    assert member is not None and member.offset is not None
    with open(rec.destination, "r+b") as f:
        f.seek(member.offset + 777)
        b = f.read(1)
        f.seek(member.offset + 777)
        f.write(bytes([b[0] ^ 0x80]))
    [(_, res)] = arch.verify(["auto_1012.0-1013.0"])
    assert not res.ok
    assert any(p.startswith("run1012/run1012-seq1.dat:") for p in res.problems)
    rec = arch.catalog.get("auto_1012.0-1013.0")
    assert rec is not None and rec.state == ArchiveState.FAILED
    assert "run1012-seq1.dat" in (rec.last_error or "")
    assert any("auto_1012.0-1013.0" in a.message for a in bk.alarms())


def test_interrupted_transfer_resumes_without_duplicate(tmp_path: Path) -> None:
    cfg, bk = _farm(tmp_path)
    arch = Archiver(cfg, bk)
    arch.record_plan(arch.plan(force=True))
    arch.create()
    name = "auto_1012.0-1013.0"
    # what a transfer killed half-way leaves: a partial hidden .part and the state transferring
    central = tmp_path / "central"
    central.mkdir()
    tar = arch.workdir / f"{name}.tar"
    (central / f".{name}.tar.part").write_bytes(tar.read_bytes()[:5000] + b"garbage")
    assert arch.catalog.move(name, [ArchiveState.CREATED], ArchiveState.TRANSFERRING)
    report = arch.transfer()
    assert name in report.done and not report.failed
    assert sorted(p.name for p in central.iterdir() if name in p.name) == [
        f"{name}.log",
        f"{name}.tar",
    ]
    assert (central / f"{name}.tar").read_bytes() == tar.read_bytes()
    assert all(r.ok for _, r in arch.verify())


def test_damaged_workdir_archive_is_not_shipped(tmp_path: Path) -> None:
    cfg, bk = _farm(tmp_path)
    arch = Archiver(cfg, bk)
    arch.record_plan(arch.plan(force=True))
    arch.create()
    tar = arch.workdir / "auto_1014.0-1014.0.tar"
    blob = bytearray(tar.read_bytes())
    blob[2000] ^= 1
    tar.write_bytes(bytes(blob))
    report = arch.transfer()
    assert [n for n, _ in report.failed] == ["auto_1014.0-1014.0"]
    assert "damaged" in report.failed[0][1]


def test_cleanup_refuses_everything_not_proven(tmp_path: Path) -> None:
    cfg, bk = _farm(tmp_path)
    evb = cfg.path(cfg.daq.watch_dir)
    arch = Archiver(cfg, bk)
    # an unknown file, and a file that was never verified on the storage
    (evb / "run2000-seq0.dat").write_bytes(b"x")
    bk.register_file(
        "run2001-seq0.dat",
        source_path=str(evb / "run2001-seq0.dat"),
        run=2001,
        seq=0,
        size=1,
        daq_write_time=datetime.now(UTC),
    )
    (evb / "run2001-seq0.dat").write_bytes(b"y")
    (evb / "notes.txt").write_text("not a raw file")

    def reasons() -> dict[str, str]:
        return {d.path.name: d.reason for d in cleanup(bk, evb, dry_run=False) if not d.allowed}

    before = reasons()  # nothing archived yet: everything refused, even with dry_run=False
    assert before["run2000-seq0.dat"] == "unknown to the bookkeeping"
    assert "state is detected" in before["run2001-seq0.dat"]
    assert before["run1012-seq0.dat"] == "not archived"
    arch.record_plan(arch.plan(force=True))
    arch.create()
    arch.transfer(["auto_1012.0-1013.0"])
    # (after the plan, so that no archive takes it) a file in state stored whose copy ended but was never verified (no verified event)
    bk.register_file(
        "run2002-seq0.dat",
        source_path=str(evb / "run2002-seq0.dat"),
        run=2002,
        seq=0,
        size=1,
        daq_write_time=datetime.now(UTC),
    )
    walk(
        bk,
        "run2002-seq0.dat",
        FileState.STORED,
        Event.COPY_ENDED,
        fields={"adler32": adler32_hex(zlib.adler32(b"z"))},
    )
    (evb / "run2002-seq0.dat").write_bytes(b"z")
    r = reasons()
    assert r["run2002-seq0.dat"] == "its stored copy was never verified"
    assert "is created, not verified" in r["run1014-seq0.dat"]
    assert "is transferred, not verified" in r["run1012-seq0.dat"]
    arch.verify()
    # a file rewritten on the event builder since it was archived is not taken for it
    (evb / "run1013-seq0.dat").write_bytes(os.urandom(SIZES[(1013, 0)]))
    dry = cleanup(bk, evb)  # default: dry run
    allowed = sorted(d.path.name for d in dry if d.allowed)
    assert allowed == ["run1012-seq0.dat", "run1012-seq1.dat"]
    assert all(p.exists() for p in evb.iterdir() if p.name in allowed)  # dry run deleted nothing
    done = cleanup(bk, evb, dry_run=False)
    assert sorted(d.path.name for d in done if d.deleted) == allowed
    left = sorted(p.name for p in evb.iterdir())
    assert left == [
        "notes.txt",
        "run1013-seq0.dat",
        "run1014-seq0.dat",
        "run2000-seq0.dat",
        "run2001-seq0.dat",
        "run2002-seq0.dat",
    ]
    refused = {d.path.name: d.reason for d in done if not d.allowed}
    assert "adler32" in refused["run1013-seq0.dat"]
    assert "not verified at the destination" in refused["run1014-seq0.dat"]
    assert _events(bk, "run1012-seq0.dat")[-1] == "deleted_from_event_builder"


def test_cli_plan_create_transfer_verify_restore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from farmtools.cli import app

    _farm(tmp_path)
    toml = tmp_path / "farm.toml"
    toml.write_text(
        f'[farm]\nhome = "{tmp_path}"\n[archive]\ntarget_size = "1MB"\nmin_size = "100kB"\n'
    )
    monkeypatch.setenv("FARMTOOLS_CONFIG", str(toml))
    run = CliRunner().invoke
    res = run(app, ["archive", "plan", "--runs", "1012-1013", "--tag", "hv-scan"])
    assert res.exit_code == 0, res.output
    # piped: one plain line per archive, as every listing (no table cut at 80 columns)
    rows = [line.split() for line in res.output.splitlines()]
    assert ["hv-scan_1012.0-1013.0", "hv-scan", "1012-1013"] in [r[:3] for r in rows]
    res = run(app, ["archive", "plan", "--target-size", "5XB"])
    assert res.exit_code == 2 and "5XB" in res.output
    for verb in ("create", "transfer", "verify"):
        res = run(app, ["archive", verb])
        assert res.exit_code == 0, res.output
    assert "OK   hv-scan_1012.0-1013.0" in res.output
    assert "verified 1 archive(s): 1 OK, 0 bad" in res.output
    # again (cron): nothing left to verify is said, not silence; --all re-reads every archive
    res = run(app, ["archive", "verify"])
    assert res.exit_code == 0, res.output
    assert "nothing to verify: 1 archive(s) already verified" in res.output
    assert "OK   " not in res.output
    res = run(app, ["archive", "verify", "--all"])
    assert res.exit_code == 0, res.output
    assert "OK   hv-scan_1012.0-1013.0" in res.output
    assert "verified 1 archive(s): 1 OK, 0 bad" in res.output
    # listed: plain columns (title, header, a row); --json with the documented fields
    res = run(app, ["archive", "list"])
    (row,) = [ln.split() for ln in res.output.splitlines()[2:]]
    assert row[:2] == ["hv-scan_1012.0-1013.0", "verified"]
    (doc,) = json.loads(run(app, ["archive", "list", "--json"]).output)
    assert set(doc) == {f.name for f in fields(ArchiveRecord)}
    assert (doc["name"], doc["tag"], doc["runs"], doc["state"]) == (
        "hv-scan_1012.0-1013.0", "hv-scan", [1012, 1013], "verified",
    )  # fmt: skip
    assert doc["size"] == int(row[2]) and doc["verified"].endswith("Z")
    res = run(app, ["archive", "restore", "run1012-seq1.dat", "--to", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r" / "run1012-seq1.dat").stat().st_size == SIZES[(1012, 1)]
    res = run(app, ["archive", "cleanup"])
    assert res.exit_code == 0
    assert "would delete" in res.output and "REFUSED" in res.output
    assert (tmp_path / "evb" / "data" / "run1012-seq0.dat").exists()


@pytest.mark.xrootd
def test_transfer_verify_restore_on_xrootd(tmp_path: Path, xrootd_server) -> None:  # type: ignore[no-untyped-def]
    dest = f"{xrootd_server.url}//archives/h7"
    cfg, bk = _farm(tmp_path, destination=dest)
    arch = Archiver(cfg, bk)
    # a leftover .part of an interrupted transfer on the server
    part = xrootd_server.root / "archives" / "h7" / ".auto_1012.0-1013.0.tar.part"
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(b"half a transfer")
    if os.geteuid() == 0:  # the server runs as the xrootd account and must own its tree
        pw = pwd.getpwnam("xrootd")
        for p in (part.parent.parent, part.parent, part):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    reports = arch.run_ready(force=True)
    assert not reports["transfer"].failed, reports["transfer"].failed
    assert reports["transfer"].done == ["auto_1012.0-1013.0", "auto_1014.0-1014.0"]
    assert reports["verify"].done == ["auto_1012.0-1013.0", "auto_1014.0-1014.0"]
    on_server = sorted(p.name for p in part.parent.iterdir())
    assert on_server == [
        "auto_1012.0-1013.0.log",
        "auto_1012.0-1013.0.tar",
        "auto_1014.0-1014.0.log",
        "auto_1014.0-1014.0.tar",
    ]
    rec = arch.catalog.get("auto_1012.0-1013.0")
    assert rec is not None and rec.destination == f"{dest}/auto_1012.0-1013.0.tar"
    # restore reads one ranged slice over XRootD
    out = arch.restore("run1012-seq1.dat", tmp_path / "r")
    assert zlib.adler32(out.read_bytes()) == int(bk.get("run1012-seq1.dat").adler32 or "", 16)  # type: ignore[union-attr]
    # a flipped byte on the server is found by verify, naming the member
    member = arch.catalog.member_of("run1013-seq0.dat")
    assert member is not None and member.offset is not None
    on_disk = part.parent / "auto_1012.0-1013.0.tar"
    blob = bytearray(on_disk.read_bytes())
    blob[member.offset + 10] ^= 4
    on_disk.write_bytes(bytes(blob))
    [(_, res)] = arch.verify(["auto_1012.0-1013.0"])
    assert any(p.startswith("run1013/run1013-seq0.dat:") for p in res.problems)


@pytest.mark.xrootd
def test_transfer_retries_while_central_storage_is_down(tmp_path: Path, xrootd_factory) -> None:  # type: ignore[no-untyped-def]
    """Central storage down when the transfer starts, back a few seconds later: the copy
    retries with back-off (each failed attempt reported), then lands verified, exactly once."""
    import threading

    from farmtools.archive.transfer import transfer

    server = xrootd_factory()
    tar, log = tmp_path / "a.tar", tmp_path / "a.log"
    tar.write_bytes(os.urandom(2_000_000))
    log.write_text("archive log\n")
    server.stop()
    back = threading.Timer(7.0, server.start)  # longer than the client's own ~5 s window
    back.start()
    attempts: list[tuple[int, str]] = []
    try:
        done = transfer(
            tar,
            log,
            f"{server.url}//central",
            zlib.adler32(tar.read_bytes()),
            retries=8,
            backoff_s=0.5,
            backoff_max_s=2.0,
            on_retry=lambda n, exc: attempts.append((n, str(exc))),
        )
    finally:
        back.join()
    assert attempts, "the server was down: at least one attempt must have failed"
    assert all(str(server.port) in msg or "a.tar" in msg for _, msg in attempts), attempts
    assert done.copied and done.url.endswith("/central/a.tar")
    landed = server.root / "central"
    assert sorted(p.name for p in landed.iterdir()) == ["a.log", "a.tar"]  # no .part left
    assert (landed / "a.tar").read_bytes() == tar.read_bytes()
