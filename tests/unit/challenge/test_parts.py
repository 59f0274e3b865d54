"""Presets, the fault schedule, the batch pause on a real local pool, truth comparison, the model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from farmtools.challenge.chaos import BatchPause, drop_corrupt, plan_faults
from farmtools.challenge.presets import PRESETS, get_preset
from farmtools.challenge.recocost import RecoCosts
from farmtools.challenge.simtable import calibration_check, markdown_sizing
from farmtools.challenge.simulate import WORK_RATIO_6X6X6 as WORK_RATIO
from farmtools.challenge.simulate import FarmModel, simulate, size_6x6x6
from farmtools.challenge.truth import analyses_vs_truth, extract
from tests.eventually import eventually


def test_presets_are_the_seed_tests_and_scale_keeps_the_load() -> None:
    p = get_preset("seed-10s-compressed")
    assert (p.files, p.interval_s, p.events, p.compress) == (500, 10.0, 335, True)
    assert (PRESETS["seed-300s-raw"].files, PRESETS["seed-300s-raw"].compress) == (25, False)
    fast = get_preset("seed-300s-compressed").scaled(100)
    assert fast.interval_s == 3.0 and fast.events == 3 and fast.files == 50
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        get_preset("nope")
    with pytest.raises(ValueError, match="positive"):
        p.scaled(0)


def test_fault_plan_is_reproducible_and_covers_every_daemon() -> None:
    a = plan_faults(7, 60.0, ["ingest", "processing", "monitor"])
    b = plan_faults(7, 60.0, ["ingest", "processing", "monitor"])
    assert [f.to_json() for f in a] == [f.to_json() for f in b]
    assert {f.target for f in a if f.kind == "kill"} == {"ingest", "processing", "monitor"}
    assert [f.at_s for f in a] == sorted(f.at_s for f in a)
    assert all(0 <= f.at_s <= 60 for f in a)
    assert [f.target for f in a if f.kind == "corrupt_file"] in (
        ["truncated", "garbage"],
        ["garbage", "truncated"],
    )
    outage = next(f for f in a if f.kind == "storage_outage")
    pause = next(f for f in a if f.kind == "batch_pause")
    assert outage.at_s + outage.duration_s < pause.at_s  # never overlapping


def test_corrupt_files_cannot_be_read(tmp_path: Path) -> None:
    from farmtools.emulator.daq import RunPlan, emulate_run
    from farmtools.emulator.settings import EmulatorSettings
    from farmtools.rawdata import RawDataError, RawFile

    good = emulate_run(tmp_path, EmulatorSettings(seed=1), RunPlan(run=3, events_per_file=2))[0]
    for kind, seq in (("truncated", 5), ("garbage", 6)):
        path = tmp_path / f"run3-seq{seq}.dat"
        what = drop_corrupt(path, kind, good.path, seed=seq)
        assert path.exists() and what
        with pytest.raises(RawDataError), RawFile.open(path) as f:
            f.validate()
    assert (tmp_path / "run3-seq5.dat").stat().st_size == good.size // 2


def test_every_planned_fault_kind_has_its_injector(tmp_path: Path) -> None:
    import threading

    from farmtools.challenge.chaos import KINDS, Fault
    from farmtools.challenge.inject import INJECTORS, FaultContext, run_faults
    from farmtools.config import FarmConfig

    assert set(INJECTORS) == set(KINDS)
    written: list[Any] = []
    ctx = FaultContext(
        cfg=FarmConfig(base_dir=tmp_path),
        stop=threading.Event(),
        elapsed=lambda: 5.0,
        daemons={},
        lock=threading.Lock(),
        input_dir=tmp_path / "input",
        outage_marker=tmp_path / "marker",
        watch_dir=tmp_path,
        written=written,
        bad_files={},
        done=[],
        run_number=3,
        files=4,
        seed=1,
    )
    faults = [Fault(0.0, "kill", "ingest"), Fault(0.0, "corrupt_file", "garbage")]
    run_faults(ctx, faults)
    assert ctx.done == faults
    assert not faults[0].injected and "nothing to kill" in faults[0].details
    assert faults[1].injected and faults[1].target == "run3-seq4.dat (garbage)"
    assert ctx.bad_files == {"run3-seq4.dat": "garbage"}
    assert (tmp_path / "run3-seq4.dat").stat().st_size == 200_000
    assert faults[1].done_at_s == faults[1].ended_at_s == 5.0


def test_batch_pause_stops_and_resumes_a_running_job(tmp_path: Path) -> None:
    """A real process group standing in for a running job of the local pool's layout."""
    pool = tmp_path / "pool"
    for sub in ("jobs/1", "run", "queue"):
        (pool / sub).mkdir(parents=True)
    (pool / "slots").write_text("2")
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time\nwhile True: time.sleep(0.05)"],
        start_new_session=True,
    )
    try:
        (pool / "run" / "1").touch()
        (pool / "jobs" / "1" / "started.json").write_text(
            json.dumps({"pid": proc.pid, "supervisor": os.getpid()})
        )
        (pool / "jobs" / "1" / "spec.json").write_text("{}")
        pause = BatchPause(pool)
        assert "1 running job(s) SIGSTOPped" in pause.start()
        assert (pool / "slots").read_text() == "0"
        eventually(lambda: _state(proc.pid), 10, "the job SIGSTOPped", until=lambda s: s == "T")
        (pool / "jobs" / "1" / "accounting.json").write_text("{}")  # lets schedule() reap it
        pause.end()
        assert (pool / "slots").read_text() == "2"
        assert _state(proc.pid) in ("S", "R")
    finally:
        proc.kill()
        proc.wait()


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_batch_pause_refuses_a_directory_that_is_no_pool(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not a local batch pool"):
        BatchPause(tmp_path).start()


def test_truth_comparison_reads_lifetime_and_gains(tmp_path: Path) -> None:
    truth = tmp_path / "run1-seq0.truth.json"
    truth.write_text(
        json.dumps({"injected": {"lifetime_ms": 7.0, "gain_map": {"1": 20.0, "2": 10.0}}})
    )
    summary = tmp_path / "purity.json"
    summary.write_text(
        json.dumps(
            {
                "purity": {"combined": {"tau_us": 6650.0, "error_us": 300.0}, "views": []},
                "gain": {
                    "lems": [{"lem": 1, "gain": 21.0, "gain_err": 0.5}, {"lem": 2, "gain": 9.0}]
                },
            }
        )
    )
    (out,) = analyses_vs_truth([summary], [truth])
    assert out["lifetime"] == (6650.0, 300.0)
    assert out["lifetime_bias"] == pytest.approx(-0.05)
    assert out["gain_bias_worst"] == pytest.approx(0.1)
    assert "injected 7000 us, -5.0 %" in out["summary_line"]
    assert out["gain_errors"] == {"1": 0.5}  # a LEM without an error has none, not a guess
    assert "lifetime_pull" in out and out["lifetime_pull"] == pytest.approx(-350.0 / 300.0)
    assert extract({"nothing": 1}) == {
        "lifetime": None,
        "k": None,
        "lifetime_status": None,
        "gains": {},
        "gain_errors": {},
    }


def test_the_lifetime_pull_is_judged_in_k_where_the_summary_gives_it(tmp_path: Path) -> None:
    # the demo's group of 40 events: 5350 +- 782 us against 7000 us is -2.1 "sigma" in tau but
    # -1.6 in k = 1/tau, the fitted parameter, whose error is the Gaussian one
    truth = tmp_path / "run1-seq0.truth.json"
    truth.write_text(json.dumps({"injected": {"lifetime_ms": 7.0}}))
    k, k_err = 1 / 5350.0, 782.0 / 5350.0**2
    summary = tmp_path / "analysis.json"
    combined = {"tau_us": 5350.0, "error_us": 782.0, "k_per_us": k, "k_error": k_err}
    summary.write_text(json.dumps({"purity": {"combined": combined, "views": []}}))
    (out,) = analyses_vs_truth([summary], [truth])
    assert out["k"] == (k, k_err)
    assert out["lifetime_pull"] == pytest.approx((1 / 7000.0 - k) / k_err)
    assert -1.7 < out["lifetime_pull"] < -1.5  # in tau it would be -2.11


def test_an_analysis_that_measured_nothing_is_not_a_pass(tmp_path: Path) -> None:
    from farmtools.challenge.report import analysis_rule, verdict

    truth = tmp_path / "run1-seq0.truth.json"
    truth.write_text(json.dumps({"injected": {"lifetime_ms": 7.0}}))
    none = {"status": "none", "tau_us": None, "error_us": None, "k_per_us": None, "k_error": None}
    # the seed's dummy with an error on k larger than the injected k: pure argon within 1 sigma
    dummy = {"status": "infinite", "tau_us": 100000.0, "k_per_us": 5e-6, "k_error": 3e-4}
    k = 1 / 7000
    good = {"status": "measured", "tau_us": 7000.0, "k_per_us": k, "k_error": 0.1 * k}
    summaries = []
    for name, combined in (("none", none), ("dummy", dummy), ("good", good)):
        s = tmp_path / f"{name}.json"
        s.write_text(json.dumps({"purity": {"combined": combined, "views": []}}))
        summaries.append(s)
    out = analyses_vs_truth(summaries, [truth])
    assert [a["lifetime_measured"] for a in out] == [False, False, True]
    assert "lifetime: no measurement (injected 7000 us)" in out[0]["summary_line"]
    assert "lifetime 7000 +778 -636 us" in out[2]["summary_line"]
    rule = analysis_rule(out, events_per_group=400)
    assert rule["judged"] and len(rule["measured_nothing"]) == 2
    assert verdict([], {}, None, rule) == "FAIL: 2 analyses measured no lifetime"
    assert verdict([], {}, None, analysis_rule(out[2:], 400)) == "PASS"
    # a tiny challenge (12 events per group) is not expected to measure a lifetime
    assert verdict([], {}, None, analysis_rule(out, events_per_group=12)) == "PASS"


def test_model_calibrated_on_its_own_prediction_is_within_20_percent() -> None:
    truth = FarmModel(n_files=12, file_interval_s=5, events_per_file=10, workers=2)
    res = simulate(truth)
    latency = {s: {"p50": res.median_latency(s)} for s in ("stored", "started", "ended")}
    report: dict[str, Any] = {
        "latency_s": latency,
        "measured": {
            "files": 12,
            "interval_s": 5.0,
            "events_per_file": 10,
            "workers": 2,
            "detect_delay_median_s": truth.detect_delay_s,
            "copy_median_s": truth.file_bytes / truth.transfer_bandwidth_Bps,
            "file_bytes_median": truth.file_bytes,
            "submit_delay_median_s": truth.submit_delay_s,
            "job_run_median_s": truth.job_s,
            "job_startup_s": truth.job_startup_s,
        },
    }
    check = calibration_check(report)
    assert check["within_20_percent"], check["stages"]
    # and a measured latency far from the model fails the check
    latency["ended"]["p50"] *= 2
    assert not calibration_check(report)["within_20_percent"]


def test_sizing_table_has_every_case() -> None:
    rows = size_6x6x6(0.3, minutes=2.0)
    assert len(rows) == 4 and all(r["cores_needed"] > 0 for r in rows)
    table = markdown_sizing(rows, 0.3, 384, 20.0)
    assert table.count("\n| ") == 5 and "384 cores" in table


def test_sizing_uses_the_compressed_per_event_cost_and_the_per_job_cost() -> None:
    rows = size_6x6x6(0.01, minutes=2.0, job_s=0.5, reco_s_per_event_compressed_3x1x1=0.02)
    by_case = {r["case"]: r for r in rows}
    assert by_case["beam, SPS spills"]["reco_s_per_event"] == pytest.approx(0.02 * WORK_RATIO)
    uncompressed = by_case["beam, SPS spills, uncompressed"]
    assert uncompressed["reco_s_per_event"] == pytest.approx(0.01 * WORK_RATIO)
    for r in rows:
        assert r["job_s"] == pytest.approx(0.5 + r["events_per_file"] * r["reco_s_per_event"])
    table = markdown_sizing(rows, 0.01, 384, 20.0, job_s=0.5, per_event_compressed_3x1x1=0.02)
    assert "(0.0200 s compressed)" in table and "every job 0.50 s" in table


def test_the_sizing_options_take_the_node_worker_s_per_job_cost_when_measured() -> None:
    costs = RecoCosts(0.015, 0.035, 2.4, 0.01, 335, per_job_worker_s=0.12)
    assert "--job-s 0.12" in costs.simulate_args()
    assert "--job-s 2.40" in costs.simulate_args(worker=False)
    unmeasured = RecoCosts(0.015, 0.035, 2.4, 0.01, 335)
    assert "--job-s 2.40" in unmeasured.simulate_args()
    assert "--reco-s-per-event-compressed 0.0350" in unmeasured.simulate_args()


def test_sizing_takes_the_measured_6x6x6_cost_and_adds_the_decoding() -> None:
    rows = size_6x6x6(
        0.01,
        minutes=2.0,
        job_s=0.5,
        reco_s_per_event_compressed_3x1x1=0.02,
        reco_s_per_event_6x6x6=1.3,
    )
    by_case = {r["case"]: r for r in rows}
    assert by_case["beam, SPS spills, uncompressed"]["reco_s_per_event"] == pytest.approx(1.3)
    compressed = by_case["beam, SPS spills"]["reco_s_per_event"]
    assert compressed == pytest.approx(1.3 + 0.01 * WORK_RATIO)
    table = markdown_sizing(
        rows, 0.01, 384, 20.0, job_s=0.5, per_event_compressed_3x1x1=0.02, per_event_6x6x6=1.3
    )
    assert "1.30 s CPU per 6x6x6 event measured" in table and "x 36" not in table


def test_simulate_cli_calibrates_on_a_report_and_prints_the_sizing_table(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from farmtools.cli import app

    truth = FarmModel(n_files=8, file_interval_s=4, events_per_file=10, workers=2)
    res = simulate(truth)
    report = {
        "latency_s": {s: {"p50": res.median_latency(s)} for s in ("stored", "ended")},
        "measured": {
            "files": 8,
            "interval_s": 4.0,
            "events_per_file": 10,
            "workers": 2,
            "copy_median_s": truth.file_bytes / truth.transfer_bandwidth_Bps,
            "file_bytes_median": truth.file_bytes,
            "job_run_median_s": truth.job_s,
            "job_startup_s": truth.job_startup_s,
        },
    }
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    res_cli = CliRunner().invoke(
        app, ["challenge", "simulate", "--calibrate", str(path), "--size-6x6x6"]
    )
    assert res_cli.exit_code == 0, res_cli.output
    assert "| ended |" in res_cli.output and "| beam, SPS spills |" in res_cli.output
    report["latency_s"]["ended"]["p50"] *= 3  # type: ignore[index]
    path.write_text(json.dumps(report))
    res_cli = CliRunner().invoke(app, ["challenge", "simulate", "--calibrate", str(path)])
    assert res_cli.exit_code == 1 and "NO" in res_cli.output
