"""The LEM-gain task: the gain map of a run and each LEM's gain versus time."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from farmtools.monitor import builtin_checks as checks
from farmtools.monitor.checks import CheckResult
from farmtools.monitor.tasks import Context, Figure, Item, MonTask, empty_figure, finite, register
from farmtools.monitor.trends import error_bars, marker_size, time_axis

if TYPE_CHECKING:
    pass

from farmtools.monitor.builtin.common import (
    N_LEMS,
    REF_STYLE,
    gain_result_for,
    hline,
    plot_layout,
)


@register
class LemGain(MonTask):
    """The map of the 12 LEM gains of a run, and each LEM's gain versus time."""

    name = "lem_gain"
    title = "LEM gain"

    def items(self, ctx: Context) -> list[Item]:
        return [Item("map", "Gain map (2 x 6)")] + [
            Item(f"lem{k}", f"LEM {k} gain trend") for k in range(1, N_LEMS + 1)
        ]

    def read(self, ctx: Context, item: str, run: int | None) -> Any:
        if item == "map":
            r = gain_result_for(ctx, run)
            if r is None:
                return None
            z: list[list[float | None]] = [[None] * 6 for _ in range(2)]
            for lem, lr in r.lems.items():
                ix, iy = ctx.cfg.geometry.lem_cell(lem)  # lem = 1 + ix + 2*iy (spec section 6)
                if 0 <= iy < 6:
                    z[ix][iy] = lr.gain if math.isfinite(lr.gain) else None
            return {"run": r.run, "z": z}
        lem = int(item.removeprefix("lem"))
        res = [r for r in ctx.results.results(limit=ctx.cfg.monitor.trend_points) if lem in r.lems]
        if not res:
            return None
        sel = gain_result_for(ctx, run)
        return {
            "lem": lem,
            "x": [r.time.isoformat() for r in res],
            "runs": [r.run for r in res],
            "gain": [r.lems[lem].gain for r in res],
            "err": [r.lems[lem].gain_err for r in res],
            "run": sel.run if sel else None,
            "selected": sel.lems[lem].gain if sel and lem in sel.lems else None,
            "band": (ctx.cfg.monitor.gain_min, ctx.cfg.monitor.gain_max),
        }

    def draw(self, item: str, data: Any, reference: Any | None) -> Figure:
        if item == "map":
            title = "LEM effective gain"
            if data is None:
                return empty_figure(title, "no gain result yet")
            text = []
            for ix in range(2):
                row = []
                for iy in range(6):
                    lem = 1 + ix + 2 * iy
                    g = data["z"][ix][iy]
                    s = f"LEM {lem}<br>G = {g:.2f}" if g is not None else f"LEM {lem}<br>-"
                    r = reference["z"][ix][iy] if reference is not None else None
                    if r is not None:
                        s += f"<br>ref {r:.2f}"
                        if g is not None and r:
                            s += f" (x{g / r:.2f})"  # the ratio: a LEM that dropped reads at once
                    row.append(s)
                text.append(row)
            title += f", run {data['run']}"
            if reference is not None:
                title += f" (reference run {reference['run']})"
            return {
                "data": [
                    {
                        "type": "heatmap",
                        "z": data["z"],
                        "x": [f"iy {i}" for i in range(6)],
                        "y": ["ix 0", "ix 1"],
                        "text": text,
                        "texttemplate": "%{text}",
                        "colorscale": "Viridis",
                        "colorbar": {"title": {"text": "gain"}},
                        "hovertemplate": "%{text}<extra></extra>",
                    }
                ],
                "layout": plot_layout(title, "along the 3 m axis", "along the 1 m axis"),
            }
        title = f"LEM {item.removeprefix('lem')} gain versus time"
        if data is None:
            return empty_figure(title, "no gain result for this LEM yet")
        traces = [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": f"LEM {data['lem']}",
                "x": data["x"],
                "y": finite(data["gain"]),
                "customdata": data["runs"],
                "hovertemplate": "run %{customdata}<br>G = %{y:.2f}<extra></extra>",
                "error_y": error_bars(finite(data["err"]), len(data["x"])),
                "marker": {"size": marker_size(len(data["x"]))},
            }
        ]
        shapes = [hline(b, "#ff7f0e", "dot") for b in data["band"]]
        if reference is not None and reference.get("selected") is not None:
            shapes.append(hline(reference["selected"], "#555", "dash"))
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "x": [None],
                    "y": [None],
                    "name": f"reference run {reference['run']}",
                    "line": REF_STYLE,
                }
            )
        layout = plot_layout(
            title, "time", "effective gain", shapes=shapes, xaxis=time_axis(data["x"], "time")
        )
        return {"data": traces, "layout": layout}

    def check(
        self, ctx: Context, item: str, data: Any, reference: Any | None
    ) -> CheckResult | None:
        """The map judges every LEM (one alarm for the CRP); the trend items have no check."""
        if item != "map":
            return None
        if data is None:
            return CheckResult(checks.TOO_FEW, "no gain result yet")
        gain, ref = checks.gain_map(data, reference)
        ref_run = reference["run"] if reference is not None else None
        return checks.gains(data["run"], gain, ref, ref_run, ctx.cfg.monitor)
