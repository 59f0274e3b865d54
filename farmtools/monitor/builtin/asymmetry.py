"""The asymmetry task: charge asymmetry between the views per LEM, versus run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from farmtools.monitor import builtin_checks as checks
from farmtools.monitor.checks import CheckResult
from farmtools.monitor.summary import AnalysisResult
from farmtools.monitor.tasks import Context, Figure, Item, MonTask, empty_figure, finite, register
from farmtools.monitor.trends import marker_size, run_axis

if TYPE_CHECKING:
    pass

from farmtools.monitor.builtin.common import (
    gain_result_for,
    hline,
    mean_finite,
    per_lem,
    plot_layout,
)


@register
class Asymmetry(MonTask):
    """Charge asymmetry between the views, A = (Q1 - Q0) / (Q1 + Q0), per LEM and versus run."""

    name = "asymmetry"
    title = "View asymmetry"

    def items(self, ctx: Context) -> list[Item]:
        return [Item("per_lem", "Asymmetry per LEM"), Item("vs_run", "Mean asymmetry vs run")]

    def read(self, ctx: Context, item: str, run: int | None) -> Any:
        if item == "per_lem":
            d = per_lem(gain_result_for(ctx, run))
            if d is not None:
                d["max"] = ctx.cfg.monitor.asymmetry_max
            return d
        last: dict[int, AnalysisResult] = {}
        for r in ctx.results.latest_per_run(ctx.cfg.monitor.trend_points):
            if r.lems:
                last[r.run] = r
        if not last:
            return None
        runs = sorted(last)
        mean = [mean_finite(lr.asymmetry for lr in last[k].lems.values()) for k in runs]
        return {
            "runs": runs,
            "mean": mean,
            "max": ctx.cfg.monitor.asymmetry_max,
            "run": run,
            "selected": mean[runs.index(run)] if run in last else None,
        }

    def draw(self, item: str, data: Any, reference: Any | None) -> Figure:
        if item == "per_lem":
            title = "Charge asymmetry between views per LEM"
            if data is None:
                return empty_figure(title, "no gain result yet")
            traces: list[dict[str, Any]] = [
                {
                    "type": "bar",
                    "name": f"run {data['run']}",
                    "x": data["lems"],
                    "y": finite(data["asym"]),
                }
            ]
            if reference is not None:
                traces.append(
                    {
                        "type": "scatter",
                        "mode": "markers",
                        "name": f"reference run {reference['run']}",
                        "x": reference["lems"],
                        "y": finite(reference["asym"]),
                        "marker": {"symbol": "line-ew-open", "size": 18, "color": "#555"},
                    }
                )
            shapes = [hline(s * data["max"], "#ff7f0e", "dot") for s in (-1, 1)]
            return {
                "data": traces,
                "layout": plot_layout(
                    f"{title}, run {data['run']}", "LEM", "asymmetry", shapes=shapes
                ),
            }
        title = "Mean view asymmetry versus run"
        if data is None:
            return empty_figure(title, "no gain result yet")
        traces = [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "mean over LEMs",
                "x": data["runs"],
                "y": finite(data["mean"]),
                "marker": {"size": marker_size(len(data["runs"]))},
            }
        ]
        shapes = [hline(s * data["max"], "#ff7f0e", "dot") for s in (-1, 1)]
        if reference is not None and reference.get("selected") is not None:
            shapes.append(hline(reference["selected"], "#555", "dash"))
        layout = plot_layout(title, "run", "asymmetry", shapes=shapes, xaxis=run_axis())
        return {"data": traces, "layout": layout}

    def check(
        self, ctx: Context, item: str, data: Any, reference: Any | None
    ) -> CheckResult | None:
        return checks.asymmetry(data, ctx.cfg.monitor) if item == "per_lem" else None
