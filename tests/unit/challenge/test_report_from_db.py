"""The challenge report built from a synthetic bookkeeping database (real SQLite, no daemons)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from farmtools.bookkeeping import Bookkeeping, Event, FileState
from farmtools.bookkeeping.schema import now
from farmtools.challenge import evidence
from farmtools.challenge.assemble import expected_stages
from farmtools.challenge.render import render_html, render_text
from farmtools.challenge.report import build_report

T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def _file(
    bk: Bookkeeping, name: str, seq: int, state: FileState, offsets: dict[str, float]
) -> None:
    """``name`` written at T0+seq s, in ``state``, its story events at written + offset (s).

    The story is append-only (a trigger refuses updates), so events are recorded with their
    times rather than through transitions at wall-clock time.
    """
    written = T0 + timedelta(seconds=seq)
    bk.register_file(
        name,
        source_path=f"/evb/{name}",
        run=7,
        seq=seq,
        size=1000 + seq,
        daq_write_time=written,
        event="registered",
    )
    for event, off in offsets.items():
        bk.record(name, event, {}, time=written + timedelta(seconds=off))
    bk.update_fields(name, state=str(state))


@pytest.fixture
def bk(tmp_path: Path) -> Bookkeeping:
    bk = Bookkeeping(f"sqlite:///{tmp_path / 'bk.sqlite'}")
    for seq in range(4):
        _file(
            bk,
            f"run7-seq{seq}.dat",
            seq,
            FileState.RECONSTRUCTED,
            {
                "detected": 0.01,
                "copy_started": 0.02,
                "verified": 0.5 + seq,
                "queued": 0.6 + seq,
                "submitted": 1.0 + seq,
                "started": 2.0 + seq,
                "ended": 10.0 + seq,
                "reconstructed": 10.0 + seq,
            },
        )
    # seq 4 never got further than stored: incomplete, and named
    _file(bk, "run7-seq4.dat", 4, FileState.STORED, {"detected": 0.01, "verified": 0.3})
    # a corrupt file the challenge dropped on purpose, quarantined with a reason
    _file(bk, "run7-seq5.dat", 5, FileState.QUARANTINED, {"detected": 0.01})
    bk.record("run7-seq5.dat", Event.QUARANTINED, {"kind": "corrupt_raw_file"})
    bk.update_fields("run7-seq5.dat", last_error="truncated event 3")
    return bk


def _report(bk: Bookkeeping, archive: bool = False) -> dict[str, Any]:
    good = [f"run7-seq{i}.dat" for i in range(5)]
    names = [*good, "run7-seq5.dat", "run7-seq6.dat"]  # seq6: written, never seen: lost
    story_map = evidence.stories(bk, names)
    recs = evidence.records(bk, names)
    states = {r.name: str(r.state) for r in recs}
    stages = expected_stages(
        [*names[:5], "run7-seq6.dat"], states, set(), analysis=False, archive=archive, group_size=4
    )
    return build_report(
        settings={"files": 6},
        expected_files=names,
        records=recs,
        stories=story_map,
        expected_stages=stages,
        bad_files=["run7-seq5.dat"],
        failures_by_class=evidence.story_failures(story_map),
        integrity={"lost": ["run7-seq6.dat"], "duplicated": [], "corrupt": []},
        started=T0,
        finished=T0 + timedelta(seconds=60),
    )


def test_counts_latencies_and_incomplete_files_by_name(bk: Bookkeeping) -> None:
    rep = _report(bk)
    counts = rep["counts"]
    assert counts == {"written": 6, "stored": 5, "reconstructed": 4, "analysed": 0, "archived": 0}
    assert rep["incomplete"] == ["run7-seq4.dat", "run7-seq6.dat"]
    files = {o["name"]: o for o in rep["files"]}
    assert files["run7-seq4.dat"]["missing"] == ["submitted", "started", "ended", "reconstructed"]
    assert files["run7-seq6.dat"]["missing"] == ["not in the database"]
    assert files["run7-seq5.dat"]["complete"] is True  # quarantined on purpose, with a reason
    lat = rep["latency_s"]
    # started = written + 2 + seq for seq 0..3 -> 2, 3, 4, 5 s: nearest-rank median 3 s
    assert lat["started"]["p50"] == pytest.approx(3.0, abs=1e-3)
    assert lat["ended"]["max"] == pytest.approx(13.0, abs=1e-3)
    assert rep["failures_by_class"] == {"ingest:corrupt_raw_file (quarantined)": 1}
    assert rep["verdict"].startswith("FAIL: 2 incomplete, 1 lost")


def test_archive_expected_makes_unarchived_files_incomplete(bk: Bookkeeping) -> None:
    rep = _report(bk, archive=True)
    files = {o["name"]: o for o in rep["files"]}
    assert "archived" in files["run7-seq0.dat"]["missing"]


def test_renderers_show_the_verdict_every_file_and_plots(bk: Bookkeeping) -> None:
    rep = _report(bk)
    text = render_text(rep)
    assert "INCOMPLETE 'run7-seq4.dat'" in text
    assert "lost 1, duplicated 0, corrupt 0" in text
    page = render_html(rep)
    assert "Plotly.newPlot('fig0'" in page and "run7-seq6.dat" in page
    json.dumps(rep, default=str)  # JSON-ready


def test_every_worker_ran_a_job_names_the_idle_ones(bk: Bookkeeping) -> None:
    good = [f"run7-seq{i}.dat" for i in range(4)]

    kw: dict[str, Any] = dict(
        settings={"files": 5},
        expected_files=good,
        records=evidence.records(bk, good),
        stories=evidence.stories(bk, good),
        expected_stages=["written", "stored"],
        integrity={"lost": [], "duplicated": [], "corrupt": []},
        started=T0,
        finished=T0 + timedelta(seconds=60),
    )
    nodes = {"nodes": ["wa105cpu01", "wa105cpu02", "wa105cpu03"], "source": "slurm: sinfo"}
    rep = build_report(
        **kw, jobs_per_worker={"wa105cpu01": 3, "wa105cpu03": 1}, expected_workers=nodes
    )
    w = rep["workers"]
    assert w["idle"] == ["wa105cpu02"] and w["every_worker_ran_a_job"] is False
    assert w["judged"] and rep["verdict"] == "FAIL: 1 idle workers"  # 4 files for 3 workers
    text = render_text(rep)
    assert "every worker ran a job: NO, 2/3; idle workers: wa105cpu02 (slurm: sinfo)" in text
    page = render_html(rep)
    assert "idle workers: wa105cpu02" in page and "jobs per worker (idle: wa105cpu02)" in page
    assert json.loads(json.dumps(rep))["workers"]["idle"] == ["wa105cpu02"]
    # fewer good files than workers: an idle worker is shown, not a failure
    small = build_report(
        **{**kw, "expected_files": good[:2]},
        jobs_per_worker={"wa105cpu01": 2},
        expected_workers=nodes,
    )
    assert small["workers"]["idle"] == ["wa105cpu02", "wa105cpu03"]
    assert not small["workers"]["judged"] and small["verdict"] == "PASS"
    assert "not a failure" in render_text(small)
    # every worker busy; and unknown nodes (TORQUE here): reported as unknown, never guessed
    ok = build_report(**kw, jobs_per_worker={n: 1 for n in nodes["nodes"]}, expected_workers=nodes)
    assert ok["workers"]["every_worker_ran_a_job"] is True and ok["verdict"] == "PASS"
    unknown = build_report(
        **kw,
        jobs_per_worker={"x": 4},
        expected_workers={"nodes": None, "source": "torque: the node list is not looked up"},
    )
    assert unknown["workers"]["every_worker_ran_a_job"] is None
    assert "every worker ran a job: unknown" in render_text(unknown)


def test_expected_workers_of_the_local_batch_is_this_host(tmp_path: Path) -> None:
    import socket

    from farmtools.config import BatchSection, FarmConfig

    cfg = FarmConfig(batch=BatchSection(slots=3), base_dir=tmp_path)
    assert evidence.expected_workers(cfg) == {
        "nodes": [socket.gethostname()],
        "source": "local batch: this host, 3 slots",
    }
    torque = FarmConfig(batch=BatchSection(backend="torque"), base_dir=tmp_path)
    assert evidence.expected_workers(torque)["nodes"] is None


def test_measured_medians_for_the_simulator(bk: Bookkeeping) -> None:
    good = [f"run7-seq{i}.dat" for i in range(4)]
    m = evidence.measured(
        evidence.stories(bk, good),
        good,
        evidence.records(bk, good),
        files=4,
        interval_s=1.0,
        events_per_file=3,
        workers=2,
        group_size=4,
    )
    assert m["job_run_median_s"] == pytest.approx(8.0, abs=1e-3)
    assert m["start_delay_median_s"] == pytest.approx(1.0, abs=1e-3)
    assert m["copy_median_s"] == pytest.approx(2.0 - 0.01, abs=1e-3)
    assert m["file_bytes_median"] == pytest.approx(1001.5)


def test_leftover_files_of_an_incomplete_group_are_excused_from_analysis() -> None:
    good = [f"f{i}" for i in range(6)]
    states = {n: "analysed" for n in good[:4]} | {n: "reconstructed" for n in good[4:]}
    st = expected_stages(good, states, set(good[:4]), analysis=True, archive=False, group_size=4)
    assert "analysed" in st["f0"] and "analysed" not in st["f5"]
    # as many leftovers as a whole group: they should have been analysed
    states = {n: "reconstructed" for n in good}
    st = expected_stages(good, states, set(), analysis=True, archive=False, group_size=4)
    assert all("analysed" in v for v in st.values())


def test_the_report_is_gathered_from_plain_observations(bk: Bookkeeping, tmp_path: Path) -> None:
    from farmtools.challenge.assemble import Observations, gather_report
    from farmtools.config import FarmConfig
    from farmtools.emulator.daq import EmulatedFile

    written = [EmulatedFile(tmp_path / f"run7-seq{i}.dat", 7, i, events=3) for i in range(5)]
    daemons = {"ingest": {"cpu_s": 1.0, "alive_s": 60.0, "starts": 2, "sigkills": 1}}
    obs = Observations(
        settings={"files": 5},
        run_numbers=[7],
        events_per_file=3,
        interval_s=1.0,
        group_size=4,
        archive=False,
        written=written,
        bad_files=["run7-seq5.dat"],
        faults=[{"at_s": 1.0, "kind": "kill", "target": "ingest", "injected": True}],
        crashes=[{"daemon": "processing", "exit": -9, "at_s": 2.0, "log": "boom"}],
        daemons=daemons,
        stage_errors=["archive: failed"],
        interrupted=True,
    )
    cfg = FarmConfig(base_dir=tmp_path)
    rep = gather_report(cfg, bk, obs, T0, T0 + timedelta(seconds=60))
    assert rep["settings"] == {"files": 5}
    assert rep["counts"]["written"] == 5
    files = {o["name"]: o for o in rep["files"]}
    assert files["run7-seq0.dat"]["missing"] == ["analysed"]  # every good file: analysed too
    assert files["run7-seq5.dat"]["complete"]  # quarantined on purpose
    assert [f["kind"] for f in rep["faults"]] == ["kill", "crash (not injected)"]
    assert rep["faults"][1]["details"] == "exit -9: boom"
    assert rep["daemons"] == daemons
    assert rep["errors"] == {"emulator": None, "stages": ["archive: failed"]}
    assert [e["name"] for e in rep["emulator_files"]] == [w.path.name for w in written]
    assert rep["verdict"].startswith("FAIL") and "interrupted" in rep["verdict"]


def test_now_is_timezone_aware() -> None:
    assert now().tzinfo is not None
