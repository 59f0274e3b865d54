"""What the built-in monitoring tasks share: colours, plot layouts, the latest results."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from farmtools.monitor.summary import INFINITE_US, AnalysisResult
from farmtools.monitor.tasks import Context

if TYPE_CHECKING:
    pass


VIEW_COLOURS = ("#1f77b4", "#d62728")
REF_STYLE = {"dash": "dash", "color": "#555"}
N_LEMS = 12


def tau_us(v: float) -> float | None:
    """A lifetime for plotting: the seed's 'infinite' dummy is a gap, not a point at 100 ms."""
    return None if not math.isfinite(v) or v >= INFINITE_US else v


def plot_layout(title: str, xtitle: str, ytitle: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title},
        "xaxis": {"title": {"text": xtitle}},
        "yaxis": {"title": {"text": ytitle}},
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
        "legend": {"orientation": "h", "y": -0.2},
        **extra,
    }


def result_for(ctx: Context, run: int | None) -> AnalysisResult | None:
    return ctx.results.latest(run)


def gain_result_for(ctx: Context, run: int | None) -> AnalysisResult | None:
    """The newest result with LEM numbers (a purity-only result has none yet)."""
    return ctx.results.latest(run, with_lems=True)


# -- purity ------------------------------------------------------------------------------------


def hline(y: float, colour: str, dash: str) -> dict[str, Any]:
    return {
        "type": "line",
        "xref": "paper",
        "x0": 0,
        "x1": 1,
        "y0": y,
        "y1": y,
        "line": {"color": colour, "dash": dash, "width": 1},
    }


def mean_finite(values: Iterable[float]) -> float:
    """Mean of the finite values, NaN if none (plain Python: numpy costs more for 12 numbers)."""
    ok = [v for v in values if math.isfinite(v)]
    return sum(ok) / len(ok) if ok else math.nan


def per_lem(r: AnalysisResult | None) -> dict[str, Any] | None:
    if r is None or not r.lems:
        return None
    lems = sorted(r.lems)
    return {
        "run": r.run,
        "lems": lems,
        "asym": [r.lems[k].asymmetry for k in lems],
        "dqds": [[r.lems[k].dqds[v] for k in lems] for v in (0, 1)],
        "err": [[r.lems[k].dqds_err[v] for k in lems] for v in (0, 1)],
    }


def with_lower_panel(layout: dict[str, Any], ytitle: str) -> None:
    """Give ``layout`` a lower panel (``yaxis2``, a quarter of the height, the same x axis) for a
    ratio or a difference to the reference run, under the main plot."""
    layout["yaxis"] = {**layout.get("yaxis", {}), "domain": [0.32, 1.0]}
    layout["yaxis2"] = {"domain": [0.0, 0.24], "anchor": "x", "title": {"text": ytitle}}
    layout["xaxis"] = {**layout.get("xaxis", {}), "anchor": "y2"}
