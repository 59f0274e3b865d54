"""The event display: one event's raw waveforms per view as a channel x time image, hits and tracks on top.

What the 3x1x1 shift looked at every day.  For a run, a sequence and an event (the newest
reconstructed file's last event by default) it reads the one event from the stored raw file
(:class:`farmtools.rawdata.RawFile`, which decodes only that event) and the event's hits and
tracks from the file's reconstruction output (``hits``/``tracks`` trees, uproot), and draws a
plotly figure: per view, the ADC above pedestal as an indexed PNG (server-side: the colour map
is a lookup table, the image a ``data:`` URI laid under the axes, so zoom and hover work and
the browser decodes one small image instead of 2 M numbers), the hits as open markers and the
tracks as lines.

Files follow the farm's one layout: ``<storage.input>/run<N>/run<N>-seq<M>.dat`` and
``<storage.output>/run<N>/recotask_run<N>-seq<M>.root`` (local storage, as the rest of the
page).  Caches are LRUs of a fixed size (rendered figures, reco columns), keyed by the files'
mtimes, so a poll of "latest" costs a few ``stat`` calls and nothing grows without bound.

May import the monitor's sibling modules, :mod:`farmtools.rawdata` and :mod:`farmtools.detector`;
uproot is imported when a reco file is read.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from farmtools.monitor.png import indexed_png
from farmtools.monitor.recofiles import RecoIndex, raw_of_output, reco_files
from farmtools.monitor.tasks import Context, Figure, Item, MonTask, empty_figure, register
from farmtools.rawdata.naming import RawName, parse_raw_name

if TYPE_CHECKING:
    from farmtools.config import FarmConfig
    from farmtools.detector import Geometry

#: ADC above pedestal at the ends of the colour scale; the positive side is on a square-root
#: scale, so that the noise (a few ADC) and a muon's pulse (hundreds) are both visible.
ADC_LOW, ADC_HIGH = -20.0, 1000.0
#: Ticks per pixel row of the waveform image (see :func:`view_pixels`).
TIME_BIN = 3
#: Palette entries for the negative side (the rest, up to 256, for the positive side).
_NEG = 32
#: Anchors of the positive side's colours (fraction of the scale, RGB).
_ANCHORS = (
    (0.0, (255, 255, 255)),
    (0.08, (198, 219, 239)),
    (0.25, (66, 146, 198)),
    (0.45, (35, 139, 69)),
    (0.65, (254, 217, 42)),
    (0.85, (240, 59, 32)),
    (1.0, (103, 0, 13)),
)
HIT_COLOUR = "#000"
TRACK_COLOURS = ("#e7298a", "#7570b3", "#d95f02", "#1b9e77", "#66a61e", "#e6ab02")
#: The event display's item ids (one per CRP once a detector has several).
VIEWS_ITEM = "views"


class EventNotFound(LookupError):
    """The asked run, file or event is not on the farm storage (the message says which)."""


class RecoUnreadable(ValueError):
    """A reco output without the hits and tracks the display overlays (the message names it)."""


def palette() -> npt.NDArray[np.uint8]:
    """The 256 colours: blue shades below the pedestal, white at it, then up to dark red."""
    pal = np.empty((256, 3), dtype=np.float64)
    neg = np.linspace(0.0, 1.0, _NEG, endpoint=False)[:, None]
    pal[:_NEG] = (1 - neg) * np.array([8, 48, 107]) + neg * np.array([255, 255, 255])
    f = np.linspace(0.0, 1.0, 256 - _NEG)
    xs = [a for a, _ in _ANCHORS]
    for c in range(3):
        pal[_NEG:, c] = np.interp(f, xs, [rgb[c] for _, rgb in _ANCHORS])
    return np.rint(pal).astype(np.uint8)


_PALETTE = palette()
#: Samples are 12-bit: ADC - pedestal + _SHIFT is within 1..8191 for any pedestal 0..4095.
_SHIFT = 4096


def _lookup() -> npt.NDArray[np.uint8]:
    """Palette index for each ``ADC - pedestal + _SHIFT`` (the colour map as one table)."""
    s = np.arange(2 * _SHIFT, dtype=np.float64) - _SHIFT
    idx = np.empty(s.size, dtype=np.float64)
    neg = s < 0
    idx[neg] = _NEG * (1 - np.clip(s[neg] / ADC_LOW, 0, 1))
    pos = np.sqrt(np.clip(s[~neg] / ADC_HIGH, 0, 1))
    idx[~neg] = _NEG + pos * (255 - _NEG)
    return np.clip(np.rint(idx), 0, 255).astype(np.uint8)


_LUT = _lookup()


def pedestals(adc: npt.NDArray[np.uint16]) -> npt.NDArray[np.uint16]:
    """Per-channel pedestal of one event: the median of every 16th sample (signal is sparse).

    The median of ~100 samples costs a twentieth of the full one and, for a noise of a few ADC,
    is within a fraction of an ADC of it.
    """
    return np.median(adc[:, ::16], axis=1).round().astype(np.uint16)


def view_pixels(adc: npt.NDArray[np.uint16], time_bin: int = 3) -> npt.NDArray[np.uint8]:
    """Palette indices of one view, (time bins, channels) with the latest time in row 0 (the top).

    ``adc`` is (channels, ticks) as the reader returns it.  ``time_bin`` ticks make one pixel
    row, the highest sample of the bin kept so a pulse is never lost (the last bin may be
    shorter): the plot is ~550 pixels high, so 1667 rows would only cost encoding time, and
    zoomed in the hits keep their exact ticks.  The maximum is taken on the raw samples (it
    commutes with the per-channel pedestal), then the pedestal is subtracted and the colour
    map applied by one lookup in a table: ~20 ms for a 3x1x1 event on a loaded core.
    """
    ticks = adc.shape[1]
    full = ticks // time_bin * time_bin
    binned = adc[:, :full:time_bin].copy()
    for k in range(1, time_bin):  # strided maxima: far faster than a max over a short axis
        np.maximum(binned, adc[:, k:full:time_bin], out=binned)
    if full < ticks:
        binned = np.concatenate([binned, adc[:, full:].max(axis=1, keepdims=True)], axis=1)
    binned += (_SHIFT - pedestals(adc).astype(np.int32)).astype(np.uint16)[:, None]
    return np.ascontiguousarray(_LUT[binned].T[::-1])


@dataclass(frozen=True)
class EventRef:
    """Which event: its raw file, its reco output (None while there is none) and its index."""

    run: int
    seq: int
    raw: Path
    reco: Path | None


def raw_path(cfg: FarmConfig, name: RawName) -> Path:
    """``<storage.input>/run<N>/run<N>-seq<M>.dat``: where ingest stores a raw file."""
    return cfg.path(cfg.storage.input) / name.run_dir / name.filename


def _raw_names(cfg: FarmConfig, run: int, pddp: bool) -> list[RawName]:
    """The run's raw files on the farm storage (3x1x1 or 6x6x6 ones), by seq (and L2 builder)."""
    d = cfg.path(cfg.storage.input) / f"run{run}"
    try:
        with os.scandir(d) as it:
            names = [parse_raw_name(e.name) for e in it]
    except OSError:
        return []
    return sorted(n for n in names if n is not None and n.run == run and n.pddp == pddp)


def _raw_seqs(cfg: FarmConfig, run: int) -> list[int]:
    return [n.seq for n in _raw_names(cfg, run, pddp=False)]


#: Run folders of the raw files (the 6x6x6's "newest"), listed again when the folder's mtime moves.
_INPUT_INDEX = RecoIndex()


def _locate_pddp(cfg: FarmConfig, run: int | None, seq: int | None) -> EventRef:
    """A 6x6x6 event file ``<run>_<seq>_<L2>.dat``: the newest of the run (or of its ``seq``).

    Its reconstruction's hits and tracks are not overlaid yet (``reco`` None).  Of a sequence
    written by several L2 builders, the last builder's file is shown.
    """
    runs = [run] if run is not None else _INPUT_INDEX.runs(cfg.path(cfg.storage.input))
    for r in runs:
        names = [n for n in _raw_names(cfg, r, pddp=True) if seq is None or n.seq == seq]
        if names:
            return EventRef(r, names[-1].seq, raw_path(cfg, names[-1]), None)
    if run is None:
        raise EventNotFound("no 6x6x6 event file on the farm storage yet")
    what = f"run {run}" + (f" seq {seq}" if seq is not None else "")
    raise EventNotFound(f"{what}: no 6x6x6 event file on the farm storage")


def locate(cfg: FarmConfig, run: int | None, seq: int | None) -> EventRef:
    """The raw file (and reco output) of ``run``/``seq``; None picks the newest reconstructed one.

    ``run`` None: the newest run with a reco output.  ``seq`` None: the run's newest reco output,
    or its newest raw file while nothing is reconstructed yet.
    """
    if cfg.geometry.n_crps > 1:
        return _locate_pddp(cfg, run, seq)
    if run is None:
        found = reco_files(cfg, None, pddp=False)
        if not found:
            raise EventNotFound("no reconstructed file yet")
        run = int(found[-1].parent.name[3:])
    if seq is None:
        recos = reco_files(cfg, run, pddp=False)
        if recos:
            name = raw_of_output(recos[-1].name)
            seq = name.seq if name is not None else None
        if seq is None:
            seqs = _raw_seqs(cfg, run)
            if not seqs:
                raise EventNotFound(f"run {run}: no raw file on the farm storage")
            seq = seqs[-1]
    name = RawName(run, seq)
    raw = raw_path(cfg, name)
    if not raw.is_file():
        raise EventNotFound(f"run {run} seq {seq}: {raw} is not on the farm storage")
    reco = cfg.path(cfg.storage.output) / name.run_dir / name.reco_filename
    return EventRef(run, seq, raw, reco if reco.is_file() else None)


# -- reco: hits and tracks ---------------------------------------------------------------------
_HIT_BRANCHES = ("event", "view", "channel", "tick", "track", "amplitude")
_TRACK_BRANCHES = ("event", "view", "id", "u0", "z0", "du", "dz", "n_hits")


class _LRU:
    """A small thread-safe LRU (fixed size: nothing here may grow with the data)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._d: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any | None:
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key]
        return None

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._d.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()


#: Hit and track columns of the newest reco files asked for (a 3x1x1 file: ~1 MB).
_RECO_CACHE = _LRU(4)
#: Rendered figures (a 3x1x1 event: ~1.5 MB of JSON): "latest" polled by a few pages.
_FIGURE_CACHE = _LRU(8)


def _mtime(path: Path | None) -> int:
    return path.stat().st_mtime_ns if path is not None else 0


def reco_columns(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The hits and tracks columns of a reco output (cached by path and mtime)."""
    key = (str(path), _mtime(path))
    hit = _RECO_CACHE.get(key)
    if hit is not None:
        return hit
    import uproot

    with uproot.open(path) as f:
        missing = [t for t in ("hits", "tracks") if t not in f]
        if missing:
            raise RecoUnreadable(f"{path}: no {' or '.join(missing)} tree")
        hits = f["hits"].arrays(list(_HIT_BRANCHES), library="np")
        tracks = f["tracks"].arrays(list(_TRACK_BRANCHES), library="np")
    _RECO_CACHE.put(key, (hits, tracks))
    return hits, tracks


def track_segments(
    hits: dict[str, Any], tracks: dict[str, Any], geometry: Geometry
) -> list[dict[str, Any]]:
    """Each track of one event as a segment in (channel, tick), spanning its hits.

    The fitted line (point ``u0, z0``, unit direction ``du, dz``, cm; ``u = (channel + 0.5) *
    pitch``, ``z = tick * drift velocity``: docs/reco.md) is cut at the projections of its
    first and last hit, so the line ends where the track's charge does.
    """
    pitch = geometry.pitch_cm
    vz = geometry.drift_velocity_cm_per_tick
    out: list[dict[str, Any]] = []
    for k in range(tracks["id"].size):
        view, tid = int(tracks["view"][k]), int(tracks["id"][k])
        mine = (hits["track"] == tid) & (hits["view"] == view)
        u0, z0, du, dz = (float(tracks[c][k]) for c in ("u0", "z0", "du", "dz"))
        if not mine.any() or not all(math.isfinite(v) for v in (u0, z0, du, dz)):
            continue
        u = (hits["channel"][mine].astype(np.float64) + 0.5) * pitch
        z = hits["tick"][mine].astype(np.float64) * vz
        s = (u - u0) * du + (z - z0) * dz
        ends = [(u0 + t * du, z0 + t * dz) for t in (float(s.min()), float(s.max()))]
        out.append(
            {
                "view": view,
                "id": tid,
                "channel": [e[0] / pitch - 0.5 for e in ends],
                "tick": [e[1] / vz for e in ends],
                "n_hits": int(tracks["n_hits"][k]),
            }
        )
    return out


def event_reco(path: Path | None, event: int, geometry: Geometry) -> dict[str, Any] | None:
    """Hits (per view: channel, tick, amplitude) and track segments of one event; None: no reco."""
    if path is None:
        return None
    hits, tracks = reco_columns(path)
    hsel = hits["event"] == event
    h = {k: v[hsel] for k, v in hits.items()}
    t = {k: v[tracks["event"] == event] for k, v in tracks.items()}
    return {
        "hits": [
            {
                "channel": h["channel"][h["view"] == v].astype(int).tolist(),
                "tick": np.round(h["tick"][h["view"] == v], 1).tolist(),
                "amplitude": np.round(h["amplitude"][h["view"] == v], 1).tolist(),
            }
            for v in (0, 1)
        ],
        "tracks": track_segments(h, t, geometry),
    }


# -- the figure --------------------------------------------------------------------------------
def _png_uri(pixels: npt.NDArray[np.uint8]) -> str:
    return "data:image/png;base64," + base64.b64encode(indexed_png(pixels, _PALETTE)).decode()


def _crp(item: str) -> int | None:
    """The CRP of an item id (``crp2`` -> 2; ``views``, the 3x1x1's single CRP: None)."""
    return int(item[3:]) if item.startswith("crp") and item[3:].isdigit() else None


def _read_event(
    ref: EventRef, event: int | None, geometry: Geometry, crp: int | None
) -> tuple[int, int, tuple[npt.NDArray[np.uint16], ...], int, float]:
    """(index, events in the file, the two views' samples, trigger number, time) of one event.

    The 3x1x1's reader decodes the event alone; the 6x6x6's decodes it whole (its fragments
    split the CRPs between two L1 builders) and the CRP's two views are sliced out of it.
    """
    from farmtools.rawdata import RawFile
    from farmtools.rawdata.pddp_reader import PDDPFile

    opener = PDDPFile.open if geometry.n_crps > 1 else RawFile.open
    with opener(ref.raw, geometry) as f:
        n = f.n_events
        if n == 0:
            raise EventNotFound(f"{ref.raw} holds no event")
        index = n - 1 if event is None else event
        if not 0 <= index < n:
            raise EventNotFound(f"{ref.raw} holds events 0..{n - 1}, not {event}")
        ev = f.event(index)
        per_crp = sum(geometry.channels_per_view)
        first = (crp or 0) * per_crp
        n0 = geometry.channels_per_view[0]
        # copies: the 6x6x6 reader's event buffer is reused by its next event
        views = (
            ev.adc[first : first + n0].copy(),
            ev.adc[first + n0 : first + per_crp].copy(),
        )
        if not hasattr(ev, "fragments"):  # a 3x1x1 event: one header
            h = ev.header
            return index, n, views, h.trigger_number, h.seconds + h.nanoseconds * 1e-9
        frag = ev.fragments[0]
        when = frag.seconds + frag.nanoseconds * 1e-9
        return index, n, views, frag.trigger_number, when


def event_figure(
    cfg: FarmConfig,
    ref: EventRef,
    event: int | None,
    crp: int | None = None,
    geometry: Geometry | None = None,
) -> dict[str, Any]:
    """``{"figure", "digest", "event"}`` of one event (``event`` None: the file's last) of one
    CRP (None: the 3x1x1's), cached by the files' mtimes.  ``geometry``: the configuration's
    by default (tests give a 6x6x6 of few samples)."""
    geometry = geometry or cfg.geometry
    if (crp is None) != (geometry.n_crps == 1) or (crp is not None and crp >= geometry.n_crps):
        raise EventNotFound(f"the {geometry.name} has no CRP {crp}")
    key = (str(ref.raw), _mtime(ref.raw), str(ref.reco), _mtime(ref.reco), event, crp)
    hit = _FIGURE_CACHE.get(key)
    if hit is not None:
        return hit
    index, n, views, trigger, when = _read_event(ref, event, geometry, crp)
    problem = None
    try:
        reco = event_reco(ref.reco, index, geometry)
    except (RecoUnreadable, OSError, ValueError) as exc:  # show the waveforms all the same
        reco, problem = None, str(exc)
    meta = {
        "run": ref.run,
        "seq": ref.seq,
        "event": index,
        "n_events": n,
        "crp": crp,
        "trigger": trigger,
        "time": when,
        "raw": ref.raw.name,
        "reco": ref.reco.name if ref.reco else None,
        "hits": [len(h["channel"]) for h in reco["hits"]] if reco else None,
        "tracks": len(reco["tracks"]) if reco else None,
        "reco_error": problem,
    }
    # what the page compares to redraw only a changed event: the files' versions and the event
    digest = hashlib.blake2b(repr((key, index)).encode(), digest_size=12).hexdigest()
    # about one pixel row per screen pixel (~550): 3 ticks on the 3x1x1, 18 on the 6x6x6
    time_bin = max(TIME_BIN, -(-geometry.samples // 556))
    fig = _figure(views, reco, meta, geometry.samples, time_bin, pddp=geometry.n_crps > 1)
    out = {"figure": fig, "digest": digest, "event": meta}
    _FIGURE_CACHE.put(key, out)
    return out


def _figure(
    views: tuple[npt.NDArray[np.uint16], ...],
    reco: dict[str, Any] | None,
    meta: dict[str, Any],
    ticks: int,
    time_bin: int = TIME_BIN,
    pddp: bool = False,
) -> Figure:
    from datetime import UTC, datetime

    widths = [v.shape[0] for v in views]
    gap = 0.04
    split = (1 - gap) * widths[0] / sum(widths)
    domains = ([0.0, split], [split + gap, 1.0])
    traces: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    layout: dict[str, Any] = {}
    for v, adc in enumerate(views):
        ax = "" if v == 0 else str(v + 1)
        xref, yref = f"x{ax}", f"y{ax}"
        pixels = view_pixels(adc, time_bin)
        images.append(
            {
                "source": _png_uri(pixels),
                "xref": xref,
                "yref": yref,
                "x": -0.5,
                # every row is TIME_BIN ticks, the last one partly past the window
                "y": pixels.shape[0] * time_bin - 0.5,
                "sizex": widths[v],
                "sizey": pixels.shape[0] * time_bin,
                "sizing": "stretch",
                "xanchor": "left",
                "yanchor": "top",
                "layer": "below",
            }
        )
        layout[f"xaxis{ax}"] = {
            "domain": domains[v],
            "range": [-0.5, widths[v] - 0.5],
            "title": {"text": f"view {v} channel"},
            "showgrid": False,
            "zeroline": False,
        }
        layout[f"yaxis{ax}"] = {
            "range": [-0.5, ticks - 0.5],
            "anchor": xref,
            "showgrid": False,
            "zeroline": False,
            **({"title": {"text": "time (0.4 us ticks)"}} if v == 0 else {"matches": "y"}),
        }
        if reco is None:
            continue
        h = reco["hits"][v]
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"view {v} hits ({len(h['channel'])})",
                "legendgroup": "hits",
                "x": h["channel"],
                "y": h["tick"],
                "customdata": h["amplitude"],
                "hovertemplate": "channel %{x}<br>tick %{y}<br>%{customdata} ADC<extra></extra>",
                "marker": {"symbol": "circle-open", "size": 5, "color": HIT_COLOUR},
                "xaxis": xref,
                "yaxis": yref,
            }
        )
        for t in (t for t in reco["tracks"] if t["view"] == v):
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": f"view {v} track {t['id']} ({t['n_hits']} hits)",
                    "x": t["channel"],
                    "y": t["tick"],
                    "line": {"color": TRACK_COLOURS[t["id"] % len(TRACK_COLOURS)], "width": 1.5},
                    "opacity": 0.7,  # the waveform under the line stays visible
                    "xaxis": xref,
                    "yaxis": yref,
                }
            )
    when = datetime.fromtimestamp(meta["time"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    title = (
        f"Run {meta['run']} seq {meta['seq']} event {meta['event']} "
        f"(of {meta['n_events']}), trigger {meta['trigger']}, {when}"
    )
    if meta["crp"] is not None:
        title = f"CRP {meta['crp']}: {title}"
    if pddp:
        title += ": raw waveforms (the 6x6x6's hits and tracks are not overlaid yet)"
    elif meta["reco_error"]:
        title += f"<br>no hits or tracks: {meta['reco_error']}"
    elif reco is None:
        title += ": not reconstructed yet (raw waveforms only)"
    else:
        title += f": {sum(meta['hits'])} hits, {meta['tracks']} tracks"
    layout.update(
        {
            "title": {"text": title},
            "images": images,
            "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
            "legend": {"orientation": "h", "y": -0.12},
            "plot_bgcolor": "#fff",
            "dragmode": "zoom",
            "annotations": [
                {
                    "text": f"colour: ADC above pedestal, {ADC_LOW:.0f} (blue) to "
                    f"{ADC_HIGH:.0f} (dark red), square-root scale",
                    "showarrow": False,
                    "xref": "paper",
                    "yref": "paper",
                    "x": 1,
                    "y": 1.0,
                    "xanchor": "right",
                    "yanchor": "bottom",
                    "font": {"size": 11},
                }
            ],
        }
    )
    return {"data": traces, "layout": layout}


def show_event(
    cfg: FarmConfig,
    run: int | None,
    seq: int | None,
    event: int | None,
    item: str = VIEWS_ITEM,
    geometry: Geometry | None = None,
) -> dict[str, Any]:
    """The event display of ``run``/``seq``/``event`` (None: the newest) of ``item`` (the
    3x1x1's ``views`` or a 6x6x6 ``crpK``), or a message figure."""
    try:
        return event_figure(cfg, locate(cfg, run, seq), event, _crp(item), geometry)
    except EventNotFound as exc:
        digest = hashlib.blake2b(str(exc).encode(), digest_size=12).hexdigest()
        return {"figure": empty_figure("Event display", str(exc)), "digest": digest, "event": None}


def warm_up() -> None:
    """Import and compile what the first event display needs (uproot, the decoders).

    Run in a daemon thread when the page is served: otherwise the first shifter to open the
    event display pays the imports and the decoders' first calls (0.4-3 s on a loaded machine).
    """
    import uproot  # noqa: F401

    from farmtools.rawdata import huffman
    from farmtools.rawdata.packing import unpack12

    unpack12(bytes(3), 2)
    with contextlib.suppress(huffman.DecodeError):  # an empty stream: compiled all the same
        huffman.decode(b"", 1, 2)
    view_pixels(np.zeros((2, 6), dtype=np.uint16))
    indexed_png(np.zeros((1, 1), dtype=np.uint8), _PALETTE)


#: The JSON bodies of the newest figures, by digest: a page polling "newest" is sent bytes.
_BODY_CACHE = _LRU(8)


def show_event_json(
    cfg: FarmConfig, run: int | None, seq: int | None, event: int | None, item: str = VIEWS_ITEM
) -> bytes:
    """:func:`show_event` as the JSON body of ``/api/event`` (serialised once per figure)."""
    out = show_event(cfg, run, seq, event, item)
    body = _BODY_CACHE.get(out["digest"])
    if body is None:
        body = json.dumps(out, separators=(",", ":"), allow_nan=False).encode()
        _BODY_CACHE.put(out["digest"], body)
    return body


@register
class EventDisplay(MonTask):
    """The newest event of a run (tree entry and ``/api/plot``); ``/api/event`` picks any event."""

    name = "event"
    title = "Event display"

    def items(self, ctx: Context) -> list[Item]:
        n = ctx.cfg.geometry.n_crps
        if n > 1:
            return [Item(f"crp{k}", f"CRP {k} waveforms") for k in range(n)]
        return [Item(VIEWS_ITEM, "Waveforms, hits and tracks")]

    def read(self, ctx: Context, item: str, run: int | None) -> Any:
        return show_event(ctx.cfg, run, None, None, item)

    def draw(self, item: str, data: Any, reference: Any | None) -> Figure:
        return data["figure"]
