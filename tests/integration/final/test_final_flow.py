"""The final stage end to end on a real bookkeeping (SQLite): classify, filter, pack, transfer,
verify, deletable, to a local directory and to a real XRootD server, on tiny 6x6x6 events."""

from __future__ import annotations

import json
import os
import pwd
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from farmtools.bookkeeping import Bookkeeping, Event, FileState
from farmtools.cli import app
from farmtools.config import FarmConfig, load_config
from farmtools.final.catalog import FinalCatalog, FinalState
from farmtools.final.policy import Decision
from farmtools.final.stages import (
    classify_run,
    deletable_run,
    filter_run,
    pack_run,
    transfer_run,
    verify_run,
)
from farmtools.monitor.attention import resolve_command
from farmtools.rawdata.pddp_reader import PDDPFile
from farmtools.storage import XRootDStorage
from farmtools.storage.checksum import adler32_hex
from tests.states import walk
from tests.unit.evb.pddp_oracle import read_file
from tests.unit.final.synth import GEO, write_run

RUN = 5
#: two raw files of one run, as two L2 builders' files: 16 events of every class
KINDS = {
    "5_0_a.dat": ["beam", "cosmic", "cosmic", "empty", "beam", "cosmic", "noisy", "cosmic"],
    "5_0_b.dat": ["cosmic", "beam", "incomplete", "cosmic", "empty", "corrupt", "cosmic", "beam"],
}
EXPECTED = {"beam": 4, "cosmic": 7, "empty": 2, "noisy": 2, "incomplete": 1}


def _farm(
    tmp_path: Path, destination: str = "central/final", **final: str
) -> tuple[FarmConfig, Bookkeeping]:
    settings = {"destination": destination, "cosmic": "prescale:3", "empty": "drop", **final}
    toml = tmp_path / "farm.toml"
    toml.write_text(
        f'[farm]\nhome = "{tmp_path}"\ndetector = "6x6x6:{GEO.samples}"\n'
        "[storage]\nretries = 1\nbackoff_s = 0.01\n[final]\n"
        + "".join(f'{k} = "{v}"\n' for k, v in settings.items())
    )
    cfg = load_config(toml)
    bk = Bookkeeping(cfg.database_url)
    for n, (name, kinds) in enumerate(KINDS.items()):
        stored = cfg.path(cfg.storage.input) / f"run{RUN}" / name
        stored.parent.mkdir(parents=True, exist_ok=True)
        # the two builders take alternate triggers
        write_run(stored, kinds, run=RUN, first_trigger=100 * n, seed=n)
        data = stored.read_bytes()
        bk.register_file(
            name, source_path=name, run=RUN, seq=0, size=len(data), daq_write_time=datetime.now(UTC)
        )
        walk(
            bk,
            name,
            FileState.STORED,
            Event.VERIFIED,
            fields={"adler32": adler32_hex(zlib.adler32(data)), "storage_path": str(stored)},
        )
    return cfg, bk


def test_every_event_classified_filtered_packed_and_accounted(tmp_path: Path) -> None:
    cfg, bk = _farm(tmp_path, target_size="700kB")
    rep = classify_run(cfg, bk, RUN)
    assert (rep.files, rep.events, rep.failed) == (2, 16, [])
    assert rep.by_class == EXPECTED
    assert classify_run(cfg, bk, RUN).files == 0  # done once
    # nothing is deletable before the filter and the verified files
    assert [d.allowed for d in deletable_run(cfg, bk, RUN)] == [False, False]

    flt = filter_run(cfg, bk, RUN)
    assert flt.counts["cosmic"] == {"kept": 3, "prescaled_out": 4, "dropped": 0}
    assert flt.counts["empty"] == {"kept": 0, "prescaled_out": 0, "dropped": 2}
    assert (flt.kept, flt.prescaled_out, flt.dropped) == (10, 4, 2)
    rec = FinalCatalog(bk).filter_record(RUN)
    assert rec is not None and rec.policy["cosmic"] == "prescale:3" and rec.counts == flt.counts

    finals = pack_run(cfg, bk, RUN)
    # compressed events are ~0.3 MB (0.74 MB raw): two fit under 700 kB, a third starts a file
    by_stream = {f.stream: [x.events for x in finals if x.stream == f.stream] for f in finals}
    assert by_stream == {"beam": [2, 2], "cosmic": [2, 1], "other": [2, 1]}
    assert sum(f.events for f in finals) == flt.kept
    assert all(f.name.endswith(("_B.dat", "_C.dat", "_X.dat")) for f in finals)
    assert pack_run(cfg, bk, RUN) == []  # packed once
    work = tmp_path / "final" / f"run{RUN}"
    for f in finals:
        assert f.size <= 700_000
        with PDDPFile(work / f.name, GEO) as pf:  # the project's own reader takes it
            assert pf.n_events == f.events
            assert all(h.compressed for frags in pf.fragments for _p, h in frags)
            if f.stream != "other":  # (a corrupt event is kept as it came, bad LRO included)
                pf.validate()
            triggers = [e.trigger_number for e in pf.entries]
        # the public decoder's rules (an independent, literal reading) split it the same way
        oracle = read_file(str(work / f.name))
        assert [e.fragments[0].trigger_number for e in oracle] == triggers
        assert all(fr.run_flags & 1 for e in oracle for fr in e.fragments)
        if f.stream == "beam":
            assert all(e.good and len(e.fragments) == 2 for e in oracle)
        manifest = json.loads((work / (f.name + ".manifest.json")).read_text())
        assert manifest["adler32"] == f.adler32 and len(manifest["events"]) == f.events
        assert (work / (f.name + ".log")).read_text().rstrip().endswith(f"adler32 {f.adler32}")
    # compressed and read back: the samples are the raw ones
    beam = next(f for f in finals if f.stream == "beam")
    raw = tmp_path / "storage" / "input" / f"run{RUN}" / "5_0_a.dat"
    with PDDPFile(raw, GEO) as a, PDDPFile(work / beam.name, GEO) as b:
        assert b.entries[0].trigger_number == a.entries[0].trigger_number == 0
        assert (a.event_daq(0).adc == b.event_daq(0).adc.copy()).all()
        assert b.size < a.entries[0].size * b.n_events

    assert [f.state for f in transfer_run(cfg, bk, RUN)] == [FinalState.TRANSFERRED] * len(finals)
    # not deletable while the final files are not verified at the destination
    assert not any(d.allowed for d in deletable_run(cfg, bk, RUN))
    results = verify_run(cfg, bk, RUN)
    assert [r.ok for _f, r in results] == [True] * len(finals), [r.problems for _f, r in results]
    dels = deletable_run(cfg, bk, RUN)
    assert [d.allowed for d in dels] == [True, True], [d.proof for d in dels]
    assert "prescaled out" in dels[0].proof and "dropped by policy 1" in dels[0].proof
    assert all(Path(d.path or "").exists() for d in dels)  # listed, never deleted


def test_refilter_keeps_more_and_packs_only_the_new_events(tmp_path: Path) -> None:
    cfg, bk = _farm(tmp_path)
    classify_run(cfg, bk, RUN)
    filter_run(cfg, bk, RUN)
    first = pack_run(cfg, bk, RUN)
    cfg2 = cfg.model_copy(
        update={"final": cfg.final.model_copy(update={"cosmic": "keep", "policy_version": "2"})}
    )
    flt = filter_run(cfg2, bk, RUN)
    assert flt.counts["cosmic"]["kept"] == 7 and flt.policy_version == "2"
    second = pack_run(cfg2, bk, RUN)
    assert [f.name for f in second] == [f"{RUN}_2_C.dat"]
    assert second[0].events == 4 and second[0].policy_version == "2"
    events = FinalCatalog(bk).events(RUN)
    cosmics = [e for e in events if e.klass == "cosmic"]
    assert all(e.final_file is not None and e.decision == Decision.KEPT for e in cosmics)
    assert len({e.final_file for e in cosmics}) == 2 and first
    # once a raw file has left the buffer, its newly kept events cannot be packed: said, not lost
    bk.update_fields("5_0_b.dat", storage_path=None)
    cfg3 = cfg.model_copy(
        update={"final": cfg.final.model_copy(update={"empty": "keep", "policy_version": "3"})}
    )
    filter_run(cfg3, bk, RUN)
    [other] = pack_run(cfg3, bk, RUN)
    assert other.events == 1  # the empty event of 5_0_a.dat; 5_0_b.dat's is left
    [gone] = [a for a in bk.alarms() if a.kind == "raw_gone"]
    assert "5_0_b.dat" in gone.message


def test_a_damaged_final_file_at_the_destination_fails_verification(tmp_path: Path) -> None:
    cfg, bk = _farm(tmp_path, beam="keep", cosmic="drop", noisy="drop", incomplete="drop")
    classify_run(cfg, bk, RUN)
    filter_run(cfg, bk, RUN)
    [beam] = pack_run(cfg, bk, RUN)
    transfer_run(cfg, bk, RUN)
    there = tmp_path / "central" / "final" / f"run{RUN}" / beam.name
    blob = bytearray(there.read_bytes())
    blob[-100] ^= 1
    there.write_bytes(bytes(blob))
    [(rec, res)] = verify_run(cfg, bk, RUN)
    assert rec.state == FinalState.FAILED and any("event 3" in p for p in res.problems)
    dels = deletable_run(cfg, bk, RUN)
    assert not any(d.allowed for d in dels) and "not verified" in dels[0].proof
    assert any(a.kind == "final_failed" for a in bk.alarms())


@pytest.mark.xrootd
def test_transfer_and_verify_on_xrootd(tmp_path: Path, xrootd_server) -> None:  # type: ignore[no-untyped-def]
    dest = f"{xrootd_server.url}//final/f16"
    top = xrootd_server.root / "final"
    top.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:  # the server runs as the xrootd account and must own its tree
        pw = pwd.getpwnam("xrootd")
        os.chown(top, pw.pw_uid, pw.pw_gid)
    cfg, bk = _farm(tmp_path, destination=dest)
    # the raw buffer on XRootD too (the farm storage is EOS in production): read over the wire
    buffer = XRootDStorage(xrootd_server.url, "/final/buffer")
    for name in KINDS:
        rec = bk.get(name)
        assert rec is not None and rec.storage_path is not None
        put = buffer.put(rec.storage_path, f"run{RUN}/{name}")
        Path(rec.storage_path).unlink()
        bk.update_fields(name, storage_path=put.url)
    assert classify_run(cfg, bk, RUN).events == 16
    filter_run(cfg, bk, RUN)
    finals = pack_run(cfg, bk, RUN)
    work = tmp_path / "final" / f"run{RUN}"
    assert not [p for p in work.iterdir() if p.name.startswith(".")]  # fetched copies gone
    moved = transfer_run(cfg, bk, RUN)
    assert [f.destination for f in moved] == [f"{dest}/run{RUN}"] * len(finals)
    on_server = sorted(p.name for p in (top / "f16" / f"run{RUN}").iterdir())
    assert on_server == sorted(
        n for f in finals for n in (f.name, f.name + ".log", f.name + ".manifest.json")
    )
    results = verify_run(cfg, bk, RUN)
    assert all(r.ok for _f, r in results) and len(results) == len(finals)
    assert all(d.allowed for d in deletable_run(cfg, bk, RUN))


def test_cli_runs_the_chain_and_lists_deletable_files_with_their_proof(tmp_path: Path) -> None:
    _cfg, bk = _farm(tmp_path)
    runner = CliRunner()
    conf = ["-c", str(tmp_path / "farm.toml")]

    def run(*args: str) -> str:
        res = runner.invoke(app, ["final", *args, str(RUN), *conf])
        assert res.exit_code == 0, res.output
        return res.output

    assert "2 files, 16 events classified" in run("classify")
    counts = json.loads(run("filter", "--json"))["counts"]
    assert counts["cosmic"] == {"kept": 3, "prescaled_out": 4, "dropped": 0}
    before = json.loads(run("deletable", "--json"))
    assert [d["deletable"] for d in before] == [False, False]
    assert "5_1_B.dat" in run("pack") and "5_1_C.dat" in run("status")
    run("transfer")
    run("verify")
    after = json.loads(run("deletable", "--json"))
    assert [d["deletable"] for d in after] == [True, True]
    assert all("dropped by policy 1" in d["proof"] for d in after)
    status = json.loads(run("status", "--json"))
    assert {f["state"] for f in status["files"]} == {"verified"}
    assert sum(f["events"] for f in status["files"]) == 10
    # a policy value that is not keep, drop or prescale:N is refused naming the key
    toml = tmp_path / "farm.toml"
    toml.write_text(toml.read_text().replace('empty = "drop"', 'empty = "sometimes"'))
    res = runner.invoke(app, ["final", "filter", str(RUN), *conf])
    assert res.exit_code == 2 and "final.empty" in res.output
    bk.close()


def test_a_failed_transfer_is_recorded_and_tried_again(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the destination directory should be")
    cfg, bk = _farm(tmp_path, destination=str(blocker), cosmic="drop", noisy="drop")
    classify_run(cfg, bk, RUN)
    filter_run(cfg, bk, RUN)
    finals = pack_run(cfg, bk, RUN)
    assert transfer_run(cfg, bk, RUN) == []
    cat = FinalCatalog(bk)
    failed = cat.finals(RUN, FinalState.FAILED)
    assert sorted(f.name for f in failed) == sorted(f.name for f in finals)
    assert all(f.last_error and "not-a-dir" in f.last_error for f in failed)
    alarms = [a for a in bk.alarms() if a.kind == "final_failed"]
    assert len(alarms) == len(finals)  # one per file, each naming it
    for a in alarms:
        assert resolve_command("final", a.kind, message=a.message) == f"farmtools final all {RUN}"
    assert verify_run(cfg, bk, RUN) == []  # nothing transferred, nothing to verify
    good = cfg.model_copy(
        update={"final": cfg.final.model_copy(update={"destination": str(tmp_path / "eos")})}
    )
    assert len(transfer_run(good, bk, RUN)) == len(finals)
    assert all(r.ok for _f, r in verify_run(good, bk, RUN))
    assert all(d.allowed for d in deletable_run(good, bk, RUN))
