"""The monitoring tasks the farm ships: purity, LEM gain, asymmetry, charge, pedestals, data flow.

Each is a :class:`~farmtools.monitor.tasks.MonTask` registered on import; they read the analysis
results (:class:`~farmtools.monitor.summary.SummaryStore`), the reconstruction's ROOT files
(uproot, imported when a pedestal plot is asked for) and the bookkeeping
(:class:`~farmtools.monitor.queries.FarmQueries`), and draw plotly figure dicts.  May import the
monitor's sibling modules, :mod:`farmtools.detector` and the config.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from farmtools.monitor import builtin_checks as checks
from farmtools.monitor.checks import CheckResult
from farmtools.monitor.summary import INFINITE_US, AnalysisResult
from farmtools.monitor.tasks import Context, Figure, Item, MonTask, empty_figure, finite, register
from farmtools.monitor.trends import error_bars, marker_size, run_axis, time_axis

if TYPE_CHECKING:
    from farmtools.config import FarmConfig

VIEW_COLOURS = ("#1f77b4", "#d62728")
REF_STYLE = {"dash": "dash", "color": "#555"}
N_LEMS = 12


def _tau(v: float) -> float | None:
    """A lifetime for plotting: the seed's 'infinite' dummy is a gap, not a point at 100 ms."""
    return None if not math.isfinite(v) or v >= INFINITE_US else v


def _layout(title: str, xtitle: str, ytitle: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title},
        "xaxis": {"title": {"text": xtitle}},
        "yaxis": {"title": {"text": ytitle}},
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
        "legend": {"orientation": "h", "y": -0.2},
        **extra,
    }


def _result_for(ctx: Context, run: int | None) -> AnalysisResult | None:
    return ctx.results.latest(run)


def _gain_result_for(ctx: Context, run: int | None) -> AnalysisResult | None:
    """The newest result with LEM numbers (a purity-only result has none yet)."""
    return ctx.results.latest(run, with_lems=True)


# -- purity ------------------------------------------------------------------------------------
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
        sel = _result_for(ctx, run)
        return {
            "x": [r.time.isoformat() if item == "vs_time" else r.run for r in res],
            "tau": [[_tau(r.lifetime_us[v]) for r in res] for v in (0, 1)],
            "err": [
                [r.lifetime_err_us[v] if _tau(r.lifetime_us[v]) else None for r in res]
                for v in (0, 1)
            ],
            "combined": (
                [_tau(r.combined_us[0]) if r.combined_us else None for r in res]
                if any(r.combined_us for r in res)
                else None
            ),
            "run": sel.run if sel else None,
            "selected": [_tau(sel.lifetime_us[v]) for v in (0, 1)] if sel else None,
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
        shapes = [_hline(data["min_us"], "#ff7f0e", "dot")]
        if reference is not None and reference.get("selected"):
            for v in (0, 1):
                tau = reference["selected"][v]
                if tau is not None:
                    shapes.append(_hline(tau, VIEW_COLOURS[v], "dash"))
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
            "layout": _layout(
                title + (f" (run {data['run']} latest)" if data["run"] is not None else ""),
                "time" if item == "vs_time" else "run",
                "lifetime (us)",
                shapes=shapes,
                xaxis=run_axis() if item == "vs_run" else time_axis(data["x"], "time"),
            ),
        }

    def check(self, ctx: Context, item: str, data: Any, reference: Any | None) -> CheckResult:
        return checks.lifetime(data, reference, ctx.cfg.monitor)


def _hline(y: float, colour: str, dash: str) -> dict[str, Any]:
    return {
        "type": "line",
        "xref": "paper",
        "x0": 0,
        "x1": 1,
        "y0": y,
        "y1": y,
        "line": {"color": colour, "dash": dash, "width": 1},
    }


# -- LEM gain ----------------------------------------------------------------------------------
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
            r = _gain_result_for(ctx, run)
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
        sel = _gain_result_for(ctx, run)
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
                "layout": _layout(title, "along the 3 m axis", "along the 1 m axis"),
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
        shapes = [_hline(b, "#ff7f0e", "dot") for b in data["band"]]
        if reference is not None and reference.get("selected") is not None:
            shapes.append(_hline(reference["selected"], "#555", "dash"))
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
        layout = _layout(
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


def _mean_finite(values: Iterable[float]) -> float:
    """Mean of the finite values, NaN if none (plain Python: numpy costs more for 12 numbers)."""
    ok = [v for v in values if math.isfinite(v)]
    return sum(ok) / len(ok) if ok else math.nan


# -- asymmetry and charge per LEM --------------------------------------------------------------
def _per_lem(r: AnalysisResult | None) -> dict[str, Any] | None:
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


@register
class Asymmetry(MonTask):
    """Charge asymmetry between the views, A = (Q1 - Q0) / (Q1 + Q0), per LEM and versus run."""

    name = "asymmetry"
    title = "View asymmetry"

    def items(self, ctx: Context) -> list[Item]:
        return [Item("per_lem", "Asymmetry per LEM"), Item("vs_run", "Mean asymmetry vs run")]

    def read(self, ctx: Context, item: str, run: int | None) -> Any:
        if item == "per_lem":
            d = _per_lem(_gain_result_for(ctx, run))
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
        mean = [_mean_finite(lr.asymmetry for lr in last[k].lems.values()) for k in runs]
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
            shapes = [_hline(s * data["max"], "#ff7f0e", "dot") for s in (-1, 1)]
            return {
                "data": traces,
                "layout": _layout(f"{title}, run {data['run']}", "LEM", "asymmetry", shapes=shapes),
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
        shapes = [_hline(s * data["max"], "#ff7f0e", "dot") for s in (-1, 1)]
        if reference is not None and reference.get("selected") is not None:
            shapes.append(_hline(reference["selected"], "#555", "dash"))
        layout = _layout(title, "run", "asymmetry", shapes=shapes, xaxis=run_axis())
        return {"data": traces, "layout": layout}

    def check(
        self, ctx: Context, item: str, data: Any, reference: Any | None
    ) -> CheckResult | None:
        return checks.asymmetry(data, ctx.cfg.monitor) if item == "per_lem" else None


@register
class ChargePerLem(MonTask):
    """Collected charge dQ/ds per LEM and view (fC/cm), with errors."""

    name = "charge"
    title = "Charge per LEM"

    def items(self, ctx: Context) -> list[Item]:
        return [Item("per_lem", "dQ/ds per LEM")]

    def read(self, ctx: Context, item: str, run: int | None) -> Any:
        return _per_lem(_gain_result_for(ctx, run))

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
        layout = _layout(f"{title}, run {data['run']}", "LEM", "dQ/ds (fC/cm)", barmode="group")
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
            _with_lower_panel(layout, "run / ref")
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


# -- pedestals and noise -----------------------------------------------------------------------
@dataclass(frozen=True)
class ChannelReading:
    run: int
    path: str
    pedestal: list[float]
    rms: list[float]


#: Readings of the latest reco files asked for (LRU: the checker reads every new file).
_ROOT_CACHE: OrderedDict[tuple[str, int], ChannelReading] = OrderedDict()
_ROOT_CACHE_SIZE = 32
_ROOT_LOCK = threading.Lock()


_SEQ_RE = re.compile(r"recotask_run(\d+)-seq(\d+)\.root")


class RecoIndex:
    """The reconstruction outputs ``<output>/run<N>/recotask_run<N>-seq<M>.root`` by run.

    A year of running is ~9,000 run folders: listing them on every request would cost more than
    the page may spend (~150 ms here).  Listings are cached and re-read only when a folder's
    mtime changes (a file created or renamed into it changes it), so a request costs a few
    ``stat`` calls.  Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: tuple[Path, int, list[int]] | None = None
        self._files: dict[Path, tuple[int, list[Path]]] = {}

    def runs(self, out: Path) -> list[int]:
        """Run numbers that have a folder under ``out``, newest first."""
        try:
            mtime = out.stat().st_mtime_ns
        except OSError:
            return []
        with self._lock:
            if self._runs is not None and self._runs[:2] == (out, mtime):
                return self._runs[2]
        with os.scandir(out) as it:
            runs = sorted(
                (
                    int(e.name[3:])
                    for e in it
                    if e.name.startswith("run") and e.name[3:].isdigit() and e.is_dir()
                ),
                reverse=True,
            )
        with self._lock:
            self._runs = (out, mtime, runs)
        return runs

    def files(self, out: Path, run: int) -> list[Path]:
        """The run's outputs in sequence order ([] when none)."""
        d = out / f"run{run}"
        try:
            mtime = d.stat().st_mtime_ns
        except OSError:
            return []
        with self._lock:
            hit = self._files.get(d)
            if hit is not None and hit[0] == mtime:
                return hit[1]
        found: list[tuple[int, Path]] = []
        with os.scandir(d) as it:
            for e in it:
                m = _SEQ_RE.fullmatch(e.name)
                if m and int(m.group(1)) == run:
                    found.append((int(m.group(2)), Path(e.path)))
        paths = [p for _, p in sorted(found)]
        with self._lock:
            self._files[d] = (mtime, paths)
        return paths


_RECO_INDEX = RecoIndex()


def reco_files(cfg: FarmConfig, run: int | None) -> list[Path]:
    """The run's reconstruction outputs (``<output>/run<N>/recotask_run<N>-seq<M>.root``), by seq.

    ``run`` None: those of the newest run that has any.
    """
    out = cfg.path(cfg.storage.output)
    if run is not None:
        return _RECO_INDEX.files(out, run)
    for r in _RECO_INDEX.runs(out):
        found = _RECO_INDEX.files(out, r)
        if found:
            return found
    return []


def read_channels(path: Path, run: int) -> ChannelReading:
    """Pedestal and RMS per channel from the ``pedestal``/``rms`` TH1D of a reco file (cached)."""
    key = (str(path), path.stat().st_mtime_ns)
    with _ROOT_LOCK:
        if key in _ROOT_CACHE:
            _ROOT_CACHE.move_to_end(key)
            return _ROOT_CACHE[key]
    import uproot

    with uproot.open(path) as f:
        ped = f["pedestal"].values()
        rms = f["rms"].values()
    reading = ChannelReading(run, str(path), [float(x) for x in ped], [float(x) for x in rms])
    with _ROOT_LOCK:
        _ROOT_CACHE[key] = reading
        while len(_ROOT_CACHE) > _ROOT_CACHE_SIZE:
            _ROOT_CACHE.popitem(last=False)
    return reading


def channel_place(c: int, geometry: Any) -> tuple[int, int, int]:
    """(CRP, view, channel within the view) of view-order channel ``c`` (CRP after CRP)."""
    n0 = geometry.channels_per_view[0]
    crp, within = divmod(int(c), sum(geometry.channels_per_view))
    return (crp, 0, within) if within < n0 else (crp, 1, within - n0)


def _where(crp: int, view: int, geometry: Any) -> str:
    return f"CRP {crp} view {view}" if geometry.n_crps > 1 else f"view {view}"


def channel_label(c: int, geometry: Any) -> str:
    """``view 1 channel 60`` (``CRP 2 view 1 channel 60`` on a detector of several CRPs)."""
    crp, view, ch = channel_place(c, geometry)
    return f"{_where(crp, view, geometry)} channel {ch}"


def channel_ranges(channels: Iterable[int], geometry: Any) -> list[dict[str, Any]]:
    """View-order channels as runs of neighbours within one CRP and view, in channel order.

    Each is ``{"where", "first", "last", "count", "members", "text"}`` (``members``: the
    view-order channels), channels numbered within their view as the shift crew and the
    cabling tables name them: a dead card is one line, ``view 1: 384-415``, not 32 indices of
    a 1280-long axis.
    """
    out: list[dict[str, Any]] = []
    for c in sorted({int(c) for c in channels}):
        crp, view, ch = channel_place(c, geometry)
        where = _where(crp, view, geometry)
        if out and out[-1]["where"] == where and out[-1]["last"] == ch - 1:
            out[-1]["last"] = ch
        else:
            out.append({"where": where, "first": ch, "last": ch, "count": 0, "members": []})
        out[-1]["count"] += 1
        out[-1]["members"].append(c)
    for r in out:
        span = str(r["first"]) if r["count"] == 1 else f"{r['first']}-{r['last']}"
        r["text"] = f"{r['where']}: {span}"
    return out


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
        geometry = ctx.cfg.geometry
        dead = [int(i) for i in np.flatnonzero(rms < m.dead_rms_adc)]
        noisy = [int(i) for i in np.flatnonzero(rms > m.noisy_rms_adc)]
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
        layout = _layout(title, "channel (view order: view 0 | view 1)", "ADC", shapes=shapes)
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
            _with_lower_panel(layout, "run - ref (ADC)")
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


def _with_lower_panel(layout: dict[str, Any], ytitle: str) -> None:
    """Give ``layout`` a lower panel (``yaxis2``, a quarter of the height, the same x axis) for a
    ratio or a difference to the reference run, under the main plot."""
    layout["yaxis"] = {**layout.get("yaxis", {}), "domain": [0.32, 1.0]}
    layout["yaxis2"] = {"domain": [0.0, 0.24], "anchor": "x", "title": {"text": ytitle}}
    layout["xaxis"] = {**layout.get("xaxis", {}), "anchor": "y2"}


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
                "layout": _layout(
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
                "layout": _layout(
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
            layout = _layout(title, "", "jobs", barmode="group")
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
                "layout": _layout(
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
                "layout": _layout(
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
