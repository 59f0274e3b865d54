"""Reconstruction of one event: from the reader's ADC array to hits, tracks and dQ/ds.

:func:`reconstruct_event` chains :mod:`.signal` and :mod:`.tracks` and returns plain numpy
columns (:class:`EventReco`), the shape the ROOT writer and the analyses want.  Pure function,
no I/O; may import :mod:`farmtools.detector` and the sibling core modules.

Conventions written to the output (docs/reco.md):

* a hit's ``tick`` is its charge-weighted centroid; ``charge`` is in fC (``sum ADC*tick /
  adc_per_fc[view]``);
* hits of one track on one strip are merged: a straight track crosses a strip once, and a
  split there only comes from Landau fluctuations along a steep track;
* ``z_cm = tick * drift velocity`` in the track lines (the time origin is the trigger);
* ``t0`` of a track is the first tick of its earliest hit; ``drift_us = (tick - t0) * tick_us``
  for anode-cathode crossers, ``tick * tick_us`` (t0 = trigger) otherwise;
* ``edge`` marks the first and last strip of a track, crossed only partly, so the analyses
  leave them out of dQ/ds.
"""

from __future__ import annotations

import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from farmtools.detector import Geometry
from farmtools.reco import signal, tracks
from farmtools.reco.signal import HitParams
from farmtools.reco.tracks import TrackParams

#: Tolerances of the anode-cathode crossing test, in ticks around the full drift time (1557).
#: The span of a crossing pair runs from its earliest pulse's start at the anode to the end of
#: the last pulse's tail at the cathode: 1557 + 9..15 ticks (1 us peaking shaping) in emulated
#: runs, while tracks leaving through a side 1-2 cm above the cathode span 1530-1550.
CROSSING_TOLERANCE_TICKS: tuple[float, float] = (5.0, 25.0)

HIT_COLUMNS: dict[str, type] = {
    "view": np.int8,
    "channel": np.int16,
    "tick": np.float32,
    "tick_start": np.int16,
    "tick_end": np.int16,
    "amplitude": np.float32,
    "charge": np.float32,
    "track": np.int16,
    "edge": np.bool_,
    "ds": np.float32,
    "dqds": np.float32,
    "x": np.float32,
    "y": np.float32,
    "drift_us": np.float32,
    "lem": np.int8,
    "crp": np.int8,
}

TRACK_COLUMNS: dict[str, type] = {
    "view": np.int8,
    "id": np.int16,
    "slope": np.float32,
    "intercept": np.float32,
    "u0": np.float32,
    "z0": np.float32,
    "du": np.float32,
    "dz": np.float32,
    "n_hits": np.int32,
    "tick_min": np.float32,
    "tick_max": np.float32,
    "length": np.float32,
    "length3d": np.float32,
    "t0": np.float32,
    "crossing": np.bool_,
    "partner": np.int16,
    "crp": np.int8,
    "track3d": np.int16,
    "flash": np.int16,
    "t0_us": np.float32,
    "tag": np.int8,
    "match_quality": np.float32,
    "drift_min_cm": np.float32,
    "drift_max_cm": np.float32,
}

#: Track columns that say "none" until the light readout matched the track (6x6x6 only).
UNMATCHED_TRACK: dict[str, float] = {
    "track3d": -1,
    "flash": -1,
    "t0_us": np.nan,
    "match_quality": np.nan,
    "drift_min_cm": np.nan,
    "drift_max_cm": np.nan,
}


@dataclass
class EventReco:
    """What the reconstruction found in one event (columns keyed as HIT_COLUMNS/TRACK_COLUMNS)."""

    pedestal: npt.NDArray[np.float32]
    rms: npt.NDArray[np.float32]
    hits: dict[str, npt.NDArray[Any]]
    tracks: dict[str, npt.NDArray[Any]]
    #: CPU seconds of the calling thread in each step (the benchmark's time shares; exact
    #: whatever else runs, also when events are reconstructed on several threads).
    timing: dict[str, float] = field(default_factory=dict)
    #: Flashes found in the light readout (6x6x6; 0 where there is none).
    n_flashes: int = 0

    @property
    def n_hits(self) -> int:
        return int(self.hits["view"].size)

    @property
    def n_tracks(self) -> int:
        return int(self.tracks["view"].size)


def _empty(columns: dict[str, type], n: int = 0) -> dict[str, npt.NDArray[Any]]:
    return {k: np.zeros(n, dtype=t) for k, t in columns.items()}


def _merge_track_hits(
    raw: npt.NDArray[np.float64], track: npt.NDArray[np.intp]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]:
    """Merge hits that share (track, channel); untracked hits are kept as they are."""
    free = track < 0
    out = [raw[free]]
    out_track = [track[free]]
    tr = raw[~free]
    tt = track[~free]
    if tr.shape[0]:
        order = np.lexsort((tr[:, 1], tr[:, 0], tt))
        tr = tr[order]
        tt = tt[order]
        key = tt * 100_000 + tr[:, 0].astype(np.int64)
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        merged = np.empty((starts.size, tr.shape[1]))
        sums = np.add.reduceat(tr[:, 6], starts)
        merged[:, 0] = tr[starts, 0]
        merged[:, 1] = np.minimum.reduceat(tr[:, 1], starts)
        merged[:, 2] = np.maximum.reduceat(tr[:, 2], starts)
        peak_idx = starts  # the peak tick of the largest piece
        amp = np.maximum.reduceat(tr[:, 5], starts)
        merged[:, 3] = tr[peak_idx, 3]
        w = np.clip(tr[:, 6], 1e-9, None)
        merged[:, 4] = np.add.reduceat(tr[:, 4] * w, starts) / np.add.reduceat(w, starts)
        merged[:, 5] = amp
        merged[:, 6] = sums
        out.append(merged)
        out_track.append(tt[starts])
    return np.concatenate(out), np.concatenate(out_track)


def reconstruct_event(
    adc: npt.NDArray[np.uint16],
    geometry: Geometry,
    hit_params: HitParams = HitParams(),  # noqa: B008 - frozen dataclasses, safe as defaults
    track_params: TrackParams = TrackParams(),  # noqa: B008
    *,
    pool: Executor | None = None,
    chunks: int = 1,
    daq_order: bool = False,
) -> EventReco:
    """Reconstruct one event given as ``uint16 (n_channels, samples)`` in view order.

    With a thread ``pool``, the channel groups of the signal step run in ``chunks`` ranges on
    its threads; the result is the same whatever the number of threads.  ``daq_order``: the
    rows of ``adc`` are DAQ channels, as the reader's payload holds them (the signal step
    reads each view channel's row there; the result is the same as for the view-order array).
    """
    timing: dict[str, float] = {}
    t_start = time.thread_time()
    sig = signal.process_signal(
        adc, geometry, hit_params, pool=pool, chunks=chunks, daq_order=daq_order
    )
    ped, rms, raw = sig.pedestal, sig.rms, sig.hits
    t3 = time.thread_time()
    timing["signal"] = t3 - t_start

    n0 = geometry.channels_per_view[0]
    pitch = geometry.pitch_cm
    vz = geometry.drift_velocity_cm_per_tick
    view_of_hit = (raw[:, 0] >= n0).astype(np.int8)
    track_of_hit = np.full(raw.shape[0], -1, dtype=np.intp)
    lines: list[tracks.Line2D] = []
    views: list[int] = []
    for view in (0, 1):
        sel = np.flatnonzero(view_of_hit == view)
        ch = raw[sel, 0].astype(np.int64) - (0 if view == 0 else n0)
        labels = tracks.cluster_hits(
            ch,
            raw[sel, 1].astype(np.int64),
            raw[sel, 2].astype(np.int64),
            track_params.max_channel_gap,
            track_params.max_tick_gap,
        )
        u = (ch + 0.5) * pitch
        z = raw[sel, 4] * vz
        for found in tracks.find_tracks(u, z, labels, track_params):
            track_of_hit[sel[found.hits]] = len(lines)
            lines.append(found.line)
            views.append(view)
    t4 = time.thread_time()
    timing["tracks"] = t4 - t3

    merged, mtrack = _merge_track_hits(raw, track_of_hit)
    n = merged.shape[0]
    hits = _empty(HIT_COLUMNS, n)
    hview = (merged[:, 0] >= n0).astype(np.int8)
    hch = merged[:, 0].astype(np.int64) - np.where(hview == 1, n0, 0)
    adc_per_fc = np.asarray(geometry.adc_per_fc)[hview]
    hits["view"][:] = hview
    hits["channel"][:] = hch
    hits["tick"][:] = merged[:, 4]
    hits["tick_start"][:] = merged[:, 1]
    hits["tick_end"][:] = merged[:, 2]
    hits["amplitude"][:] = merged[:, 5]
    hits["charge"][:] = merged[:, 6] / adc_per_fc
    hits["track"][:] = mtrack
    hits["ds"][:] = np.nan
    hits["dqds"][:] = np.nan
    hits["x"][:] = np.nan
    hits["y"][:] = np.nan
    hits["drift_us"][:] = merged[:, 4] * geometry.tick_us

    nt = len(lines)
    trk = _empty(TRACK_COLUMNS, nt)
    for key, value in UNMATCHED_TRACK.items():
        trk[key][:] = value
    ranges: list[tuple[float, float]] = []
    for k, line in enumerate(lines):
        mine = mtrack == k
        u = (hch[mine] + 0.5) * pitch
        tmin = float(merged[mine, 1].min())
        tmax = float(merged[mine, 2].max())
        ranges.append((tmin, tmax))
        chs = hch[mine]
        hits["edge"][np.flatnonzero(mine)[(chs == chs.min()) | (chs == chs.max())]] = True
        trk["view"][k] = views[k]
        trk["id"][k] = k
        trk["slope"][k] = line.slope
        trk["intercept"][k] = line.intercept
        trk["u0"][k], trk["z0"][k], trk["du"][k], trk["dz"][k] = line.u0, line.z0, line.du, line.dz
        trk["n_hits"][k] = int(mine.sum())
        trk["tick_min"][k] = tmin
        trk["tick_max"][k] = tmax
        trk["length"][k] = float(np.hypot(np.ptp(u) + pitch, (tmax - tmin) * vz))
        trk["length3d"][k] = np.nan
        trk["t0"][k] = tmin
        trk["partner"][k] = -1
    idx0 = [k for k in range(nt) if views[k] == 0]
    idx1 = [k for k in range(nt) if views[k] == 1]
    pairs = tracks.match_views([ranges[k] for k in idx0], [ranges[k] for k in idx1])
    full = geometry.full_drift_ticks
    lo_tol, hi_tol = CROSSING_TOLERANCE_TICKS
    for i, j in pairs:
        k0, k1 = idx0[i], idx1[j]
        trk["partner"][k0] = k1
        trk["partner"][k1] = k0
        t0 = min(ranges[k0][0], ranges[k1][0])
        t_end = max(ranges[k0][1], ranges[k1][1])
        crossing = full - lo_tol <= t_end - t0 <= full + hi_tol
        a0, a1 = lines[k0].slope, lines[k1].slope
        dx = float(np.ptp((hch[mtrack == k0] + 0.5) * pitch)) + pitch
        dy = float(np.ptp((hch[mtrack == k1] + 0.5) * pitch)) + pitch
        length3d = float(np.sqrt(dx * dx + dy * dy + ((t_end - t0) * vz) ** 2))
        for k, other, a_this, a_other in ((k0, k1, a0, a1), (k1, k0, a1, a0)):
            trk["t0"][k] = t0
            trk["crossing"][k] = crossing
            trk["length3d"][k] = length3d
            mine = np.flatnonzero(mtrack == k)
            ds = tracks.path_length(pitch, a_this, a_other)
            hits["ds"][mine] = ds
            hits["dqds"][mine] = hits["charge"][mine] / ds
            zh = merged[mine, 4] * vz
            u_self = (hch[mine] + 0.5) * pitch
            u_other = lines[other].u_at(zh)
            if views[k] == 0:
                hits["x"][mine], hits["y"][mine] = u_self, u_other
            else:
                hits["x"][mine], hits["y"][mine] = u_other, u_self
            if crossing:
                hits["drift_us"][mine] = (merged[mine, 4] - t0) * geometry.tick_us
    ok = np.isfinite(hits["x"]) & np.isfinite(hits["y"])
    if ok.any():
        nx, ny = geometry.lem_grid
        ix = np.clip((hits["x"][ok] // geometry.lem_size_cm).astype(np.int64), 0, nx - 1)
        iy = np.clip((hits["y"][ok] // geometry.lem_size_cm).astype(np.int64), 0, ny - 1)
        hits["lem"][ok] = 1 + ix + nx * iy
    timing["matching"] = time.thread_time() - t4
    return EventReco(pedestal=ped, rms=rms, hits=hits, tracks=trk, timing=timing)
