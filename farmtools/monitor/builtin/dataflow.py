"""The data-flow task: files, latency, jobs, storage, archives and stuck files from the bookkeeping."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from farmtools.monitor import builtin_checks as checks
from farmtools.monitor.checks import CheckResult
from farmtools.monitor.tasks import Context, Figure, Item, MonTask, empty_figure, register
from farmtools.monitor.trends import marker_size, time_axis

if TYPE_CHECKING:
    pass

from farmtools.monitor.builtin.common import (
    plot_layout,
)

# -- data flow ---------------------------------------------------------------------------------
STATE_ORDER = (
    "detected",
    "copying",
    "stored",
    "queued",
    "submitted",
    "running",
    "reconstructed",
    "analysed",
    "failed",
    "quarantined",
)


@register
class DataFlow(MonTask):
    """The farm's data flow from the bookkeeping: files, latency, jobs, storage, archives, stuck."""

    name = "dataflow"
    title = "Data flow"
    per_run = False

    def items(self, ctx: Context) -> list[Item]:
        return [
            Item("files_per_run", "Files per run"),
            Item("latency", "Transfer latency"),
            Item("jobs", "Batch jobs"),
            Item("storage", "Storage used"),
            Item("archives", "Archive state"),
            Item("stuck", "Stuck files"),
        ]

    def read(self, ctx: Context, item: str, run: int | None) -> Any:
        q = ctx.queries
        if q is None:
            return None
        snap = ctx.totals.snapshot if ctx.totals is not None else None
        m = ctx.cfg.monitor
        if item == "files_per_run":
            return {
                "runs": [
                    {"run": f.run, "states": f.states} for f in q.latest_runs_flow(m.runs_shown)
                ]
            }
        if item == "latency":
            lat = q.recent_latencies(500)
            return {
                "t": [x.verified.isoformat() for x in lat],
                "s": [x.seconds for x in lat],
                "names": [x.name for x in lat],
            }
        if item == "jobs":
            active = q.active_jobs()
            totals = dict(snap.jobs_by_state) if snap else {}
            totals.update(active)
            return {
                "states": totals,
                "failures": dict(snap.failures_by_class) if snap else {},
                "failed_files": dict(snap.failed_files_by_class) if snap else {},
                "files_with_failures": snap.files_with_failures if snap else 0,
                "files_given_up": snap.files_by_state.get("failed", 0) if snap else 0,
                "files": q.active_counts(),
                "taken": _taken(snap),
            }
        if item == "storage":
            flows = q.latest_runs_flow(m.runs_shown)
            return {
                "runs": [f.run for f in flows],
                "bytes": [f.bytes for f in flows],
                "total": snap.bytes_ingested if snap else None,
                "taken": _taken(snap),
            }
        if item == "archives":
            return {
                "states": {k: list(v) for k, v in snap.archives_by_state.items()} if snap else {},
                "taken": _taken(snap),
            }
        if item == "stuck":
            n, rows = q.stuck_files(m.stuck_after_s)
            return {
                "count": n,
                "after_s": m.stuck_after_s,
                "rows": [
                    [r.name, r.state, r.since.isoformat(timespec="seconds"), r.last_error or ""]
                    for r in rows
                ],
            }
        raise KeyError(item)

    def draw(self, item: str, data: Any, reference: Any | None) -> Figure:
        if data is None:
            return empty_figure("Data flow", "no bookkeeping database")
        if item == "files_per_run":
            runs = [r["run"] for r in data["runs"]]
            seen = [s for s in STATE_ORDER if any(s in r["states"] for r in data["runs"])]
            seen += sorted({s for r in data["runs"] for s in r["states"]} - set(seen))
            traces = [
                {
                    "type": "bar",
                    "name": s,
                    "x": runs,
                    "y": [r["states"].get(s, 0) for r in data["runs"]],
                }
                for s in seen
            ]
            return {
                "data": traces,
                "layout": plot_layout(
                    "Files per run, by state",
                    "run",
                    "files",
                    barmode="stack",
                    xaxis={"type": "category", "title": {"text": "run"}},
                ),
            }
        if item == "latency":
            s = data["s"]
            title = "Transfer latency (DAQ write to verified on farm storage)"
            if s:
                title += (
                    f": median {float(np.median(s)):.1f} s, p95 {float(np.percentile(s, 95)):.1f} s"
                )
            return {
                "data": [
                    {
                        "type": "scattergl",
                        "mode": "markers",
                        "x": data["t"],
                        "y": s,
                        "text": data["names"],
                        "name": "file",
                        "marker": {"size": marker_size(len(s))},
                    }
                ],
                "layout": plot_layout(
                    title, "verified at", "seconds", xaxis=time_axis(data["t"], "verified at")
                ),
            }
        if item == "jobs":
            st = data["states"]
            jtraces: list[dict[str, Any]] = [
                {
                    "type": "bar",
                    "name": "jobs",
                    "x": list(st),
                    "y": list(st.values()),
                    "xaxis": "x",
                    "yaxis": "y",
                },
                {
                    "type": "bar",
                    "name": "failed attempts by class",
                    "x": list(data["failures"]),
                    "y": list(data["failures"].values()),
                    "xaxis": "x2",
                    "yaxis": "y2",
                    "marker": {"color": "#f4a3a8"},
                },
                {
                    "type": "bar",
                    "name": "files with a failed attempt, by class",
                    "x": list(data["failures"]),
                    "y": [data["failed_files"].get(k, 0) for k in data["failures"]],
                    "xaxis": "x2",
                    "yaxis": "y2",
                    "marker": {"color": "#d62728"},
                },
            ]
            # files first: 7 failed attempts of 1 file is one file to look at, not 7
            attempts = sum(data["failures"].values())
            title = (
                f"Batch jobs by state (totals of {data['taken']})<br>"
                f"failed: {_plural(data['files_given_up'], 'file')} given up, "
                f"{_plural(data['files_with_failures'], 'file')} with failed attempts "
                f"({_plural(attempts, 'failed attempt')})"
            )
            layout = plot_layout(title, "", "jobs", barmode="group")
            layout["margin"]["t"] = 70
            layout.update(
                {
                    "xaxis": {"domain": [0, 0.55]},
                    "xaxis2": {"domain": [0.65, 1], "anchor": "y2"},
                    "yaxis2": {"anchor": "x2", "title": {"text": "failed attempts / files"}},
                }
            )
            return {"data": jtraces, "layout": layout}
        if item == "storage":
            total = data["total"]
            title = "Raw data stored per run" + (
                f", {total / 1e12:.3f} TB in all" if total is not None else ""
            )
            return {
                "data": [
                    {
                        "type": "bar",
                        "x": data["runs"],
                        "y": [b / 1e9 for b in data["bytes"]],
                        "name": "GB",
                    }
                ],
                "layout": plot_layout(
                    title, "run", "GB", xaxis={"type": "category", "title": {"text": "run"}}
                ),
            }
        if item == "archives":
            st = data["states"]
            return {
                "data": [
                    {
                        "type": "bar",
                        "x": list(st),
                        "y": [v[0] for v in st.values()],
                        "name": "archives",
                        "text": [f"{v[1] / 1e9:.1f} GB" for v in st.values()],
                    }
                ],
                "layout": plot_layout(
                    f"Archives by state (as of {data['taken']})", "state", "archives"
                ),
            }
        if item == "stuck":
            rows = data["rows"]
            cols = [list(c) for c in zip(*rows, strict=True)] if rows else [[], [], [], []]
            return {
                "data": [
                    {
                        "type": "table",
                        "header": {"values": ["file", "state", "since (UTC)", "last error"]},
                        "cells": {"values": cols},
                    }
                ],
                "layout": {
                    "title": {
                        "text": f"{data['count']} files stuck for more than {data['after_s']:.0f} s"
                    },
                    "margin": {"l": 20, "r": 20, "t": 50, "b": 20},
                },
            }
        raise KeyError(item)

    def check(
        self, ctx: Context, item: str, data: Any, reference: Any | None
    ) -> CheckResult | None:
        m = ctx.cfg.monitor
        if item == "latency":
            return checks.latency(data, m)
        if item == "jobs":
            return checks.failed_files(ctx.queries, m)
        if item == "stuck":
            return checks.backlog(data, ctx.queries, m)
        return None


def _plural(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def _taken(snap: Any) -> str:
    return (
        snap.taken.isoformat(timespec="seconds")
        if snap is not None and snap.taken
        else "not yet computed"
    )
