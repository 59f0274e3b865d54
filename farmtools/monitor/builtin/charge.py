"""The charge task: collected charge dQ/ds per LEM and view."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from farmtools.monitor.tasks import Context, Figure, Item, MonTask, empty_figure, finite, register

if TYPE_CHECKING:
    pass

from farmtools.monitor.builtin.common import (
    VIEW_COLOURS,
    gain_result_for,
    per_lem,
    plot_layout,
    with_lower_panel,
)


@register
class ChargePerLem(MonTask):
    """Collected charge dQ/ds per LEM and view (fC/cm), with errors."""

    name = "charge"
    title = "Charge per LEM"

    def items(self, ctx: Context) -> list[Item]:
        return [Item("per_lem", "dQ/ds per LEM")]

    def read(self, ctx: Context, item: str, run: int | None) -> Any:
        return per_lem(gain_result_for(ctx, run))

    def draw(self, item: str, data: Any, reference: Any | None) -> Figure:
        title = "Collected charge per LEM"
        if data is None:
            return empty_figure(title, "no gain result yet")
        traces: list[dict[str, Any]] = []
        for v in (0, 1):
            traces.append(
                {
                    "type": "bar",
                    "name": f"view {v}",
                    "x": data["lems"],
                    "y": finite(data["dqds"][v]),
                    "marker": {"color": VIEW_COLOURS[v]},
                    "error_y": {"type": "data", "array": finite(data["err"][v]), "visible": True},
                }
            )
            if reference is not None:
                traces.append(
                    {
                        "type": "scatter",
                        "mode": "markers",
                        "name": f"reference run {reference['run']} view {v}",
                        "x": reference["lems"],
                        "y": finite(reference["dqds"][v]),
                        "marker": {"symbol": "diamond-open", "size": 10, "color": VIEW_COLOURS[v]},
                    }
                )
        layout = plot_layout(f"{title}, run {data['run']}", "LEM", "dQ/ds (fC/cm)", barmode="group")
        if reference is not None:
            # ratio to the reference per LEM and view: a LEM whose gain dropped stands out
            ref = {
                v: dict(zip(reference["lems"], reference["dqds"][v], strict=True)) for v in (0, 1)
            }
            for v in (0, 1):
                ratio = [
                    q / ref[v][k] if ref[v].get(k) else None
                    for k, q in zip(data["lems"], data["dqds"][v], strict=True)
                ]
                traces.append(
                    {
                        "type": "scatter",
                        "mode": "markers",
                        "name": f"view {v} / reference run {reference['run']}",
                        "x": data["lems"],
                        "y": finite(ratio),
                        "marker": {"color": VIEW_COLOURS[v], "size": 8},
                        "xaxis": "x",
                        "yaxis": "y2",
                    }
                )
            with_lower_panel(layout, "run / ref")
            layout["title"]["text"] += f"; ratio to reference run {reference['run']}"
            layout["shapes"] = [
                {
                    "type": "line",
                    "xref": "paper",
                    "yref": "y2",
                    "x0": 0,
                    "x1": 1,
                    "y0": 1,
                    "y1": 1,
                    "line": {"color": "#555", "dash": "dot", "width": 1},
                }
            ]
        return {"data": traces, "layout": layout}
