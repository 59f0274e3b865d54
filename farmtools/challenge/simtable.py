"""Presenting the farm model: the calibration check against a real run, and the 6x6x6 table.

:func:`calibration_check` calibrates :class:`~farmtools.challenge.simulate.FarmModel` on a
challenge report's ``measured`` block, replays the same run in the model and compares the
predicted median latencies (from ``written``) with the measured ones; the model is fit for sizing
when every stage is within 20 %.  :func:`markdown_sizing` is the README's 6x6x6 table.  Pure.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from farmtools.challenge.simulate import (
    EVENT_BYTES_6X6X6,
    WORK_RATIO_6X6X6,
    calibrate,
    compare,
    simulate,
)

#: Stages compared (the report's latency stages).
COMPARED = ("detected", "stored", "submitted", "started", "ended", "analysed")
TOLERANCE = 0.20


def measured_medians(report: Mapping[str, Any]) -> dict[str, float]:
    """Median latency (from ``written``) per stage over the report's good files.

    The same median as the model's (:func:`statistics.median`, the mean of the two middle values
    for an even count), not the report's nearest-rank p50: with analysis groups of 4 the two
    differ by a whole file interval.  Falls back to the report's p50 when it lists no files.
    """
    values: dict[str, list[float]] = {}
    for o in report.get("files", []):
        st = o.get("stages") or {}
        if o.get("bad_on_purpose") or "written" not in st:
            continue
        t0 = datetime.fromisoformat(st["written"])
        for stage in COMPARED:
            if stage in st:
                dt = (datetime.fromisoformat(st[stage]) - t0).total_seconds()
                values.setdefault(stage, []).append(dt)
    if values:
        return {k: statistics.median(v) for k, v in values.items()}
    return {
        stage: float(v["p50"])
        for stage, v in report.get("latency_s", {}).items()
        if stage in COMPARED and "p50" in v
    }


def calibration_check(report: Mapping[str, Any], tolerance: float = TOLERANCE) -> dict[str, Any]:
    """Calibrate on ``report`` and compare predicted and measured median latencies per stage."""
    model = calibrate(report)
    measured = measured_medians(report)
    predicted = simulate(model)
    stages = compare(predicted, measured)
    for v in stages.values():
        v["within"] = abs(v["ratio"] - 1.0) <= tolerance
    return {
        "model": asdict(model),
        "stages": stages,
        "tolerance": tolerance,
        "within_20_percent": bool(stages) and all(v["within"] for v in stages.values()),
    }


def markdown_summary(check: Mapping[str, Any]) -> str:
    """The calibration as a markdown table."""
    lines = [
        "| stage (from written) | measured median (s) | predicted median (s) | ratio | within 20 % |",
        "|---|---:|---:|---:|:---:|",
    ]
    for stage, v in check["stages"].items():
        lines.append(
            f"| {stage} | {v['measured_s']:.3f} | {v['predicted_s']:.3f} | {v['ratio']:.3f} | "
            f"{'yes' if v['within'] else 'NO'} |"
        )
    return "\n".join(lines)


def markdown_sizing(
    rows: Sequence[Mapping[str, Any]],
    per_event_3x1x1: float,
    cores: int,
    bandwidth_gb_s: float,
    job_s: float | None = None,
    per_event_compressed_3x1x1: float | None = None,
    per_event_6x6x6: float | None = None,
) -> str:
    """The 6x6x6 sizing table (markdown) with the assumptions it rests on."""
    ratio = WORK_RATIO_6X6X6
    per_event = f"{per_event_3x1x1:.4f} s per 3x1x1 event"
    scaled = f"{per_event_3x1x1 * ratio:.2f} s"
    if per_event_compressed_3x1x1 is not None:
        per_event += f" ({per_event_compressed_3x1x1:.4f} s compressed)"
        scaled += f" ({per_event_compressed_3x1x1 * ratio:.2f} s compressed)"
    job = f"; every job {job_s:.2f} s before its first event" if job_s is not None else ""
    if per_event_6x6x6 is not None:
        decode = ""
        if per_event_compressed_3x1x1 is not None:
            extra = (per_event_compressed_3x1x1 - per_event_3x1x1) * ratio
            decode = f", compressed + {extra:.2f} s of decoding (3x1x1's, scaled)"
        head = (
            f"6x6x6 sizing: {EVENT_BYTES_6X6X6 / 1e6:.0f} MB events, {cores} cores, "
            f"{bandwidth_gb_s:g} GB/s storage; reconstruction {per_event_6x6x6:.2f} s CPU per "
            f"6x6x6 event measured (bench_reco666.py){decode}{job}.\n"
        )
    else:
        head = (
            f"6x6x6 sizing: {EVENT_BYTES_6X6X6 / 1e6:.0f} MB events, {cores} cores, "
            f"{bandwidth_gb_s:g} GB/s storage; reconstruction {per_event} measured here "
            f"x {ratio:.1f} (channels x samples) = {scaled} per 6x6x6 event on one core{job}.\n"
        )
    lines = [
        head,
        "| case | trigger (Hz) | mean data rate (GB/s) | events/file | a file every (s, mean) | "
        "cores needed | core utilisation | written->reconstructed median / p95 (s) | "
        "max batch queue | keeps up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['trigger_hz']:g} | {r['data_rate_GBps']:.2f} | "
            f"{r['events_per_file']} | {r['file_interval_s']:.2f} | {r['cores_needed']} | "
            f"{r['core_utilisation']:.2f} | {r['median_written_to_ended_s']:.0f} / "
            f"{r['p95_written_to_ended_s']:.0f} | "
            f"{r['max_batch_queue']} | {'yes' if r['keeps_up'] else 'NO'} |"
        )
    lines.append("")
    lines.extend(f"- {r['case']}: {r['why']}" for r in rows)
    return "\n".join(lines)
