"""The reconstruction's ROOT outputs as the monitor reads them: which files a run has, and
each file's channel pedestals and noise, cached (LRU) so that the checker and the page share a read.

Also the names of channels (CRP, view, channel) the pedestal task and the alarms print.  uproot is
imported when a file is first read.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from farmtools.rawdata.naming import RawName, parse_raw_name

if TYPE_CHECKING:
    from farmtools.config import FarmConfig
    from farmtools.detector import Geometry


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


def raw_of_output(name: str) -> RawName | None:
    """The raw file whose reconstruction output is named ``name`` (None: not an output name):
    ``recotask_run<N>-seq<M>.root`` (3x1x1) or ``recotask_<run>_<seq>_<L2>.root`` (6x6x6),
    exactly as :attr:`RawName.reco_filename` names them."""
    if not (name.startswith("recotask_") and name.endswith(".root")):
        return None
    raw = parse_raw_name(name[len("recotask_") : -len(".root")] + ".dat")
    return raw if raw is not None and raw.reco_filename == name else None


class RecoIndex:
    """The reconstruction outputs ``<output>/run<N>/recotask_run<N>-seq<M>.root`` by run (and
    the 6x6x6's ``recotask_<run>_<seq>_<L2>.root``).

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
        """The run's outputs in sequence order (then L2 builder; [] when none)."""
        d = out / f"run{run}"
        try:
            mtime = d.stat().st_mtime_ns
        except OSError:
            return []
        with self._lock:
            hit = self._files.get(d)
            if hit is not None and hit[0] == mtime:
                return hit[1]
        found: list[tuple[RawName, Path]] = []
        with os.scandir(d) as it:
            for e in it:
                raw = raw_of_output(e.name)
                if raw is not None and raw.run == run:
                    found.append((raw, Path(e.path)))
        paths = [p for _, p in sorted(found)]
        with self._lock:
            self._files[d] = (mtime, paths)
        return paths


RECO_INDEX = RecoIndex()


def reco_files(cfg: FarmConfig, run: int | None, *, pddp: bool | None = None) -> list[Path]:
    """The run's reconstruction outputs (``<output>/run<N>/recotask_run<N>-seq<M>.root``, the
    6x6x6's ``recotask_<run>_<seq>_<L2>.root``), by seq.

    ``run`` None: those of the newest run that has any.  ``pddp`` True or False: the 6x6x6's
    outputs only, or the 3x1x1's only (the event display reads one detector's files).
    """
    out = cfg.path(cfg.storage.output)

    def of(r: int) -> list[Path]:
        found = RECO_INDEX.files(out, r)
        if pddp is None:
            return found
        return [p for p in found if (n := raw_of_output(p.name)) is not None and n.pddp == pddp]

    if run is not None:
        return of(run)
    for r in RECO_INDEX.runs(out):
        found = of(r)
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


def reading_geometry(n_channels: int, configured: Geometry) -> Geometry:
    """The detector of a reading of ``n_channels``: the farm's, or the known one with that many
    channels (a 6x6x6 output on a 3x1x1 farm's storage, or the reverse)."""
    if n_channels == configured.n_channels:
        return configured
    from farmtools.detector import GEOMETRIES

    return next((g for g in GEOMETRIES.values() if g.n_channels == n_channels), configured)


def read_out(geometry: Geometry) -> npt.NDArray[np.bool_]:
    """Per view-order channel: whether a card reads it.  The 6x6x6's non-instrumented channels
    (70 of its 120 cards in 2019) have no noise at all: not *dead*, absent."""
    return geometry.instrumented[geometry.view_to_daq]


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
