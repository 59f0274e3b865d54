"""The purity task: electron lifetime per view, versus time and run, checked against a reference."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from farmtools.monitor import builtin_checks as checks
from farmtools.monitor.checks import CheckResult
from farmtools.monitor.tasks import Context, Figure, Item, MonTask, empty_figure, finite, register
from farmtools.monitor.trends import error_bars, marker_size, run_axis, time_axis

if TYPE_CHECKING:
    pass

from farmtools.monitor.builtin.common import (
    VIEW_COLOURS,
    hline,
    plot_layout,
    result_for,
    tau_us,
)


@register
class Purity(MonTask):
    """Electron lifetime per view with fit errors, versus time and versus run."""

    name = "purity"
    title = "Electron lifetime"

    def items(self, ctx: Context) -> list[Item]:
        return [Item("vs_time", "Lifetime vs time"), Item("vs_run", "Lifetime vs run")]

    def read(self, ctx: Context, item: str, run: int | None) -> Any:
        if item == "vs_run":  # the latest result of each run
            res = ctx.results.latest_per_run(ctx.cfg.monitor.trend_points)
        else:
            res = ctx.results.results(limit=ctx.cfg.monitor.trend_points)
        if not res:
            return None
        sel = result_for(ctx, run)
        return {
            "x": [r.time.isoformat() if item == "vs_time" else r.run for r in res],
            "tau": [[tau_us(r.lifetime_us[v]) for r in res] for v in (0, 1)],
            "err": [
                [r.lifetime_err_us[v] if tau_us(r.lifetime_us[v]) else None for r in res]
                for v in (0, 1)
            ],
            "combined": (
                [tau_us(r.combined_us[0]) if r.combined_us else None for r in res]
                if any(r.combined_us for r in res)
                else None
            ),
            "run": sel.run if sel else None,
            "selected": [tau_us(sel.lifetime_us[v]) for v in (0, 1)] if sel else None,
            # the chosen run's own points, ringed (None: "latest", nothing to pick out)
            "picked": [i for i, r in enumerate(res) if r.run == run] if run is not None else [],
            "min_us": ctx.cfg.monitor.lifetime_min_us,
        }

    def draw(self, item: str, data: Any, reference: Any | None) -> Figure:
        title = "Electron lifetime " + ("versus time" if item == "vs_time" else "versus run")
        if data is None:
            return empty_figure(title, "no purity result yet")
        traces: list[dict[str, Any]] = []
        n = len(data["x"])
        for v in (0, 1):
            traces.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": f"view {v}",
                    "x": data["x"],
                    "y": finite(data["tau"][v]),
                    "error_y": error_bars(finite(data["err"][v]), n),
                    "marker": {"color": VIEW_COLOURS[v], "size": marker_size(n)},
                }
            )
        if data.get("combined"):
            traces.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": "views combined",
                    "x": data["x"],
                    "y": finite(data["combined"]),
                    "marker": {"color": "#2ca02c", "symbol": "diamond", "size": marker_size(n)},
                }
            )
        if data.get("picked"):
            idx = data["picked"]
            traces.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": f"run {data['run']}",
                    "x": [data["x"][i] for i in idx],
                    "y": [data["tau"][0][i] for i in idx],
                    "marker": {"symbol": "circle-open", "size": 14, "color": "#000"},
                }
            )
        shapes = [hline(data["min_us"], "#ff7f0e", "dot")]
        if reference is not None and reference.get("selected"):
            for v in (0, 1):
                tau = reference["selected"][v]
                if tau is not None:
                    shapes.append(hline(tau, VIEW_COLOURS[v], "dash"))
                    traces.append(
                        {
                            "type": "scatter",
                            "mode": "lines",
                            "x": [None],
                            "y": [None],
                            "name": f"reference run {reference['run']} view {v}",
                            "line": {"dash": "dash", "color": VIEW_COLOURS[v]},
                        }
                    )
        return {
            "data": traces,
            "layout": plot_layout(
                title + (f" (run {data['run']} latest)" if data["run"] is not None else ""),
                "time" if item == "vs_time" else "run",
                "lifetime (us)",
                shapes=shapes,
                xaxis=run_axis() if item == "vs_run" else time_axis(data["x"], "time"),
            ),
        }

    def check(self, ctx: Context, item: str, data: Any, reference: Any | None) -> CheckResult:
        return checks.lifetime(data, reference, ctx.cfg.monitor)
