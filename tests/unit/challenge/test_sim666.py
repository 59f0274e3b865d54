"""The 6x6x6 chain's capacity model: its arithmetic by hand, its calibration on a report."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from farmtools.challenge.sim666 import (
    ChainCase,
    ChainCosts,
    ChainInput,
    FileIn,
    FullSizeCosts,
    chain_figures,
    compare_chain,
    simulate_chain,
    size_chain,
)
from farmtools.cli import app

COSTS = ChainCosts(
    samples=100,
    event_bytes=5e5,
    roll_events=100,
    flush_s=0.0,  # every file due at its last trigger
    build_delay_s=1.0,
    detect_delay_s=0.0,
    ingest_Bps=1e6,
    submit_delay_s=0.0,
    start_delay_s=0.0,
    reco_s_per_event=1.0,
    job_startup_s=2.0,
    analysis_s=0.5,
    group_size=2,
    filter_s_per_B=1e-6,
    format_s_per_B=1e-6,
    final_ratio=0.5,
    transfer_Bps=5e5,
    verify_Bps=1e6,
    keep_fraction=0.5,
)


def test_the_chain_queues_jobs_for_cores_and_runs_the_final_stage_once_all_is_stored() -> None:
    # two files of 2 events and 1 MB, last triggers at 0 and 1 s, one core
    files = (FileIn(0.0, 0.0, 1.0, 2, 10**6), FileIn(1.0, 1.0, None, 2, 10**6))
    res = simulate_chain(COSTS, ChainInput(files=files, workers=1))
    a, b = res.times
    assert (a["written"], a["stored"], a["reconstructed"]) == (1.0, 2.0, 6.0)  # job 2 + 2 x 1
    # the second file's copy waits for nothing (written at 2), its job for the core until 6
    assert (b["written"], b["stored"], b["started"], b["reconstructed"]) == (2.0, 3.0, 6.0, 10.0)
    assert a["analysed"] == b["analysed"] == 10.5  # one group of two, 0.5 s
    # final stage: all stored at 3, looks 0.5 s later; filter 2 MB, format 1 MB kept (half),
    # transfer and verify 0.5 MB of final files
    assert res.busy == {"filtering": 2.0, "formatting": 1.0, "transfer": 1.0, "verification": 0.5}
    assert (res.stored_all_s, res.verified_s) == (3.5, 8.0)
    fig = chain_figures(res.times, res.events, res.kept, res.busy, 0.0, 4.5)
    # latencies from written: 6 - 1 and 10 - 2; 4 events from the first written (1) to 10
    assert fig["reconstruction (t0)"] == {"latency_median_s": 6.5, "events_per_s": 4 / 9}
    assert fig["L2 building"]["latency_median_s"] == 1.0
    assert fig["formatting"]["events_per_s"] == 2.0  # 2 kept events in 1 s busy


def test_a_last_partial_analysis_group_is_analysed_once_every_file_is_reconstructed() -> None:
    three = ChainInput(files=(FileIn(0.0, 0.0, None, 1, 10**5),) * 3, workers=3)
    res = simulate_chain(COSTS, three)
    assert all("analysed" in t for t in res.times)


def _files(n: int) -> tuple[FileIn, ...]:
    """``n`` files of 5 events, one a second, the last of 3 events."""
    out = []
    for i in range(n):
        events = 5 if i < n - 1 else 3
        out.append(
            FileIn(5.0 * i, 5.0 * i + events - 1, 5.0 * i + 5 if i < n - 1 else None, events, 10**6)
        )
    return tuple(out)


def _report(costs: ChainCosts, feed: ChainInput) -> dict[str, Any]:
    """The report a challenge following the model exactly would write."""
    res = simulate_chain(costs, feed)
    t0 = datetime(2026, 12, 8, tzinfo=UTC)

    def iso(s: float) -> str:
        return (t0 + timedelta(seconds=s)).isoformat()

    names = [f"1_{i}_a.dat" for i in range(len(feed.files))]
    files = [
        {
            "name": n,
            "stages": {
                k: iso(t[k])
                for k in ("written", "submitted", "started", "reconstructed", "analysed")
            }
            | {"ended": iso(t["reconstructed"])},
        }
        for n, t in zip(names, res.times, strict=True)
    ]
    fig = chain_figures(
        res.times, res.events, res.kept, res.busy, feed.first_trigger_s, sum(res.busy.values())
    )
    total = sum(f.bytes for f in feed.files)
    kept = costs.keep_fraction * total
    return {
        "started": iso(0),
        "settings": {"workers": feed.workers},
        "measured": {
            "workers": feed.workers,
            "group_size": costs.group_size,
            "detect_delay_median_s": costs.detect_delay_s,
            "copy_median_s": feed.files[0].bytes / costs.ingest_Bps,
            "file_bytes_median": feed.files[0].bytes,
            "submit_delay_median_s": costs.submit_delay_s,
            "reco_s_per_event_median": costs.reco_s_per_event,
            "analysis_median_s": costs.analysis_s,
        },
        "files": files,
        "chain_6x6x6": {
            "counts": {"kept": round(costs.keep_fraction * res.events), "classified": res.events},
            "stages": {
                k: {
                    "latency": {"median_s": v["latency_median_s"]},
                    "events_per_s": v["events_per_s"],
                }
                for k, v in fig.items()
            },
            "model_inputs": {
                "samples": 100,
                "event_bytes": costs.event_bytes,
                "first_trigger_s": feed.first_trigger_s,
                "flush_s": costs.flush_s,
                "files": [
                    {
                        "name": n,
                        "events": f.events,
                        "bytes": f.bytes,
                        "first_trigger_s": f.first_trigger_s,
                        "last_trigger_s": f.last_trigger_s,
                        "next_trigger_s": f.next_trigger_s,
                        "written_s": t["written"],
                    }
                    for n, f, t in zip(names, feed.files, res.times, strict=True)
                ],
                "final_bytes": kept * costs.final_ratio,
                "final_wall_s": {
                    "classify": res.busy["filtering"],
                    "format": res.busy["formatting"],
                    "transfer": res.busy["transfer"],
                    "verify": res.busy["verification"],
                },
                "final_poll_s": costs.final_poll_s,
            },
        },
    }


def test_the_model_calibrated_on_a_report_replays_it_and_a_far_off_stage_fails() -> None:
    # six files of 5 events every 5 s on 2 cores, 4 s per event: the jobs queue; the builder
    # writes a full file (5 events) when the next event comes, the last one 6 s after its first
    feed = ChainInput(files=_files(6), workers=2, first_trigger_s=0.0)
    costs = replace(
        COSTS, reco_s_per_event=4.0, group_size=4, keep_fraction=0.5, roll_events=5, flush_s=6.0
    )
    report = _report(costs, feed)
    check = compare_chain(report)
    assert check["within_20_percent"], check["rows"]
    got = check["costs"]
    assert got.reco_s_per_event == 4.0
    assert got.job_startup_s == pytest.approx(2.0)
    assert got.filter_s_per_B == pytest.approx(costs.filter_s_per_B)
    assert got.final_ratio == pytest.approx(0.5)
    assert (got.roll_events, got.flush_s, got.build_delay_s) == (5, 6.0, pytest.approx(1.0))
    stages = {r["stage"] for r in check["rows"]}
    assert {"L2 building", "ingest", "reconstruction (t0)", "purity/gain", "verification"} <= stages
    # costs calibrated on this run predict another one with other triggers and workers
    other = ChainInput(files=_files(9), workers=3)
    predicted = compare_chain(_report(costs, other), costs=got)
    assert predicted["within_20_percent"], predicted["rows"]
    assert not compare_chain(_report(costs, other), costs=replace(got, reco_s_per_event=8.0))[
        "within_20_percent"
    ]
    # a reconstruction measured twice as slow as its jobs' own costs is not reproduced
    report["chain_6x6x6"]["stages"]["reconstruction (t0)"]["latency"]["median_s"] *= 2
    assert not compare_chain(report)["within_20_percent"]


def test_sizing_counts_cores_per_stage_local_bandwidth_buffer_and_catch_up_by_hand() -> None:
    costs = FullSizeCosts(
        build_s_per_B=1e-9,
        copy_s_per_B=2e-9,
        filter_s_per_B=1e-8,
        decode_s_per_event=0.5,
        reco_s_per_event=1.0,
        job_s=4.0,
        analysis_s_per_event=0.1,
        encode_s_per_B=1e-7,
    )
    # 10 Hz continuous, 2 MB events compressed to 1 MB, files of 4 events, a 1 TB buffer
    case = ChainCase("ten", 10.0, compressed=True)
    (row,) = size_chain(
        costs, [case], event_bytes=2e6, file_bytes=4e6, buffer_bytes=1e12, bandwidth_Bps=1e8
    )
    cpu = row["cpu_s_per_event"]
    assert cpu["filtering"] == pytest.approx(0.02 + 0.5)  # the scan of 2 MB + decoding
    assert cpu["reconstruction (t0)"] == pytest.approx(1.0 + 0.5 + 4.0 / 4)
    assert row["cores"]["reconstruction (t0)"] == 25
    assert cpu["formatting"] == pytest.approx(2e-3)  # a compressed event is copied, not coded
    # write 1 + ingest 2 + filter 1 + reco 1 + format 1 + 1 + transfer 1: 8 MB an event
    assert row["local_GBps"] == pytest.approx(0.08) and row["local_fit"]
    assert row["max_hz_local"] == pytest.approx(12.5)
    # link down: raw and final files stay, 2 MB an event at 10 Hz: 1e12 / 2e7 s
    assert row["buffer_hours"] == pytest.approx(1e12 / 2e7 / 3600)
    assert not row["covers_outage"]
    # what the buffer held (13.9 h of final files) sent within 24 h on top of the 10 MB/s
    assert row["catch_up_GBps"][24.0] == pytest.approx(0.01 * (1 + row["buffer_hours"] / 24))
    # uncompressed: formatting codes the event, every byte read and written is twice as big
    (raw,) = size_chain(costs, [ChainCase("raw", 10.0, compressed=False)], event_bytes=2e6)
    assert raw["cpu_s_per_event"]["formatting"] == pytest.approx(0.2)
    assert raw["local_GBps"] == pytest.approx(10 * (2e6 * 5 + 2e6 + 2e6) / 1e9)


def test_simulate_calibrate_on_a_6x6x6_report_compares_the_chain(tmp_path: Path) -> None:
    feed = ChainInput(files=_files(4), workers=2)
    report = _report(replace(COSTS, reco_s_per_event=2.0), feed)
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    res = CliRunner().invoke(app, ["challenge", "simulate", "--calibrate", str(path)])
    assert res.exit_code == 0, res.output
    assert "| reconstruction (t0) | latency median (s) |" in res.output
    report["chain_6x6x6"]["stages"]["purity/gain"]["events_per_s"] *= 2
    path.write_text(json.dumps(report))
    res = CliRunner().invoke(app, ["challenge", "simulate", "--calibrate", str(path), "--json"])
    assert res.exit_code == 1
    assert json.loads(res.output)["calibration_6x6x6"]["within_20_percent"] is False
