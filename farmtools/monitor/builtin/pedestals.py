"""The pedestals task: channel pedestals and noise from the reconstruction, bad channels flagged."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from farmtools.monitor import builtin_checks as checks
from farmtools.monitor.checks import CheckResult
from farmtools.monitor.tasks import Context, Figure, Item, MonTask, empty_figure, finite, register

if TYPE_CHECKING:
    pass

from farmtools.monitor.builtin.common import (
    REF_STYLE,
    plot_layout,
    with_lower_panel,
)
from farmtools.monitor.recofiles import (
    channel_label,
    channel_ranges,
    read_channels,
    read_out,
    reading_geometry,
    reco_files,
)


@register
class Pedestals(MonTask):
    """Channel pedestals and noise RMS from the reconstruction, dead and noisy channels flagged."""

    name = "pedestals"
    title = "Channel pedestals and noise"

    def items(self, ctx: Context) -> list[Item]:
        return [
            Item("pedestal", "Pedestal per channel"),
            Item("noise", "Noise RMS per channel"),
            Item("bad_channels", "Dead and noisy channels"),
        ]

    def read(self, ctx: Context, item: str, run: int | None) -> Any:
        paths = reco_files(ctx.cfg, run)
        if not paths:
            return None
        path = paths[-1]
        run_n = run if run is not None else int(path.parent.name[3:])
        reading = read_channels(path, run_n)
        rms = np.asarray(reading.rms)
        m = ctx.cfg.monitor
        geometry = reading_geometry(rms.size, ctx.cfg.geometry)
        inst = read_out(geometry)
        dead = [int(i) for i in np.flatnonzero((rms < m.dead_rms_adc) & inst)]
        noisy = [int(i) for i in np.flatnonzero((rms > m.noisy_rms_adc) & inst)]
        out = {
            "run": run_n,
            "file": path.name,
            "values": reading.pedestal if item == "pedestal" else reading.rms,
            "dead": dead,
            "noisy": noisy,
            "view0": geometry.channels_per_view[0],
            # (view, channel within the view) of every point, for the hover
            "labels": [channel_label(c, geometry) for c in range(len(reading.rms))],
        }
        if item == "bad_channels":
            out["pedestal"] = reading.pedestal
            out["ranges"] = {
                "dead": channel_ranges(dead, geometry),
                "noisy": channel_ranges(noisy, geometry),
            }
            out["limits"] = {"dead": m.dead_rms_adc, "noisy": m.noisy_rms_adc}
        return out

    def draw(self, item: str, data: Any, reference: Any | None) -> Figure:
        if item == "bad_channels":
            return _bad_channel_table(data, reference)
        what = "Pedestal" if item == "pedestal" else "Noise RMS"
        if data is None:
            return empty_figure(f"{what} per channel", "no reconstructed file yet")
        vals = data["values"]
        x = list(range(len(vals)))
        labels = data["labels"]
        hover = "%{text}<br>%{y:.2f} ADC<extra>%{fullData.name}</extra>"
        traces: list[dict[str, Any]] = [
            {
                "type": "scattergl",
                "mode": "lines",
                "name": f"run {data['run']}",
                "x": x,
                "y": finite(vals),
                "text": labels,
                "hovertemplate": hover,
                "line": {"width": 1},
            }
        ]
        for flag, colour in (("dead", "#000"), ("noisy", "#d62728")):
            idx = data[flag]
            traces.append(
                {
                    "type": "scattergl",
                    "mode": "markers",
                    "name": f"{flag} ({len(idx)})",
                    "x": idx,
                    "y": finite([vals[i] for i in idx]),
                    "text": [labels[i] for i in idx],
                    "hovertemplate": hover,
                    "marker": {"color": colour, "size": 7, "symbol": "x"},
                }
            )
        if reference is not None:
            traces.append(
                {
                    "type": "scattergl",
                    "mode": "lines",
                    "name": f"reference run {reference['run']}",
                    "x": list(range(len(reference["values"]))),
                    "y": finite(reference["values"]),
                    "line": {"width": 1, **REF_STYLE},
                }
            )
        shapes = [
            {
                "type": "line",
                "yref": "paper",
                "y0": 0,
                "y1": 1,
                "x0": data["view0"] - 0.5,
                "x1": data["view0"] - 0.5,
                "line": {"color": "#999", "dash": "dot", "width": 1},
            }
        ]
        title = f"{what} per channel, run {data['run']} ({data['file']}): {len(data['dead'])} dead, {len(data['noisy'])} noisy"
        layout = plot_layout(title, "channel (view order: view 0 | view 1)", "ADC", shapes=shapes)
        if reference is not None and len(reference["values"]) == len(vals):
            # the difference says at once which channels moved: a dead card is a block at -RMS
            diff = [a - b for a, b in zip(vals, reference["values"], strict=True)]
            traces.append(
                {
                    "type": "scattergl",
                    "mode": "lines",
                    "name": f"run {data['run']} - reference run {reference['run']}",
                    "x": x,
                    "y": finite(diff),
                    "text": labels,
                    "hovertemplate": "%{text}<br>%{y:+.2f} ADC<extra>difference</extra>",
                    "line": {"width": 1, "color": "#6a3d9a"},
                    "xaxis": "x",
                    "yaxis": "y2",
                }
            )
            with_lower_panel(layout, "run - ref (ADC)")
            layout["title"]["text"] += f"; reference run {reference['run']} and the difference"
        return {"data": traces, "layout": layout}

    def check(
        self, ctx: Context, item: str, data: Any, reference: Any | None
    ) -> CheckResult | None:
        if item == "pedestal":
            return checks.pedestal_shift(data, reference, ctx.cfg.monitor)
        if item == "bad_channels":  # the list of what the noise item judges: one cell, not two
            return None
        return checks.noise(data, reference, ctx.cfg.monitor)


def _bad_channel_table(data: Any, reference: Any | None) -> Figure:
    """Dead and noisy channels by view and channel number, one line per run of neighbours.

    With a reference run, each line says whether its channels were already flagged there
    (a known dead card) or are new in this run (what the shift should report).
    """
    title = "Dead and noisy channels"
    if data is None:
        return empty_figure(title, "no reconstructed file yet")
    rms = data["values"]
    cols: list[list[Any]] = [[], [], [], [], [], []]
    for flag in ("dead", "noisy"):
        known = set(reference[flag]) if reference is not None else set()
        for r in data["ranges"][flag]:
            vals = [rms[c] for c in r["members"]]
            cols[0].append(flag)
            cols[1].append(r["where"])
            cols[2].append(r["text"].split(": ")[1])
            cols[3].append(r["count"])
            cols[4].append(
                f"{min(vals):.2f}" if min(vals) == max(vals) else f"{min(vals):.2f}-{max(vals):.2f}"
            )
            cols[5].append(
                "-" if reference is None else ("yes" if set(r["members"]) <= known else "new")
            )
    lim = data["limits"]
    head = (
        f"{title}, run {data['run']} ({data['file']}): {len(data['dead'])} dead "
        f"(RMS < {lim['dead']} ADC), {len(data['noisy'])} noisy (RMS > {lim['noisy']} ADC)"
    )
    if reference is not None:
        head += f", against reference run {reference['run']}"
    if not cols[0]:
        return empty_figure(head, "no dead or noisy channel")
    header = ["flag", "where", "channels", "count", "RMS (ADC)", "also in the reference run"]
    return {
        "data": [{"type": "table", "header": {"values": header}, "cells": {"values": cols}}],
        "layout": {"title": {"text": head}, "margin": {"l": 20, "r": 20, "t": 50, "b": 20}},
    }
