"""Reconstruction of one event of a detector with several CRPs and a light readout (the 6x6x6).

One code for both detectors: each CRP's block of the view-order event (the layout of one 3x1x1
CRP, :meth:`farmtools.detector.Geometry.crp_geometry`) goes through
:func:`farmtools.reco.event.reconstruct_event`, the CRPs on the threads of ``pool`` (the numba
kernels release the GIL, so a job given N cores uses them on one event):
:func:`reconstruct_crps`.  Then :func:`finish_detector_event` (which the driver runs on a thread
of its own beside the next event's CRPs): the CRPs' columns are put together (track ids made unique within the event, ``crp``
set), the view-matched pairs joined across CRP boundaries into 3D tracks (:mod:`.crpjoin`),
the flashes found in the LRO segment (:mod:`.flashes`) and matched to the 3D tracks
(:mod:`.t0match`).  A matched track's hits get their drift time from the flash's t0 and the
track its absolute drift coordinates.

Pure function of (ADC array, LRO bytes); may import the sibling reco modules and detector.
"""

from __future__ import annotations

import time
from concurrent.futures import Executor
from typing import Any

import numpy as np
import numpy.typing as npt

from farmtools import pddp_layout
from farmtools.detector import Geometry
from farmtools.reco import crpjoin, flashes, t0match
from farmtools.reco.event import EventReco, reconstruct_event
from farmtools.reco.tracks import TrackParams

#: The 2D track finder on a 6x6x6 CRP: ~25 muons cross it in one 4 ms window, so a cluster of
#: hits (tracks crossing in a view) may hold many; the 3x1x1's 4 per cluster found 121 of the
#: ~320 CRP-view pieces of an emulated beam event, 16 finds 176 (80 view pairs instead of 43)
#: for 10 % more track-finding time [choice: docs/reco.md].
TRACK_PARAMS = TrackParams(max_tracks_per_cluster=16)


def _concat(parts: list[EventReco]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Hits and tracks of the CRPs as one event: ids offset, ``crp`` filled."""
    hits: list[dict[str, npt.NDArray[Any]]] = []
    trks: list[dict[str, npt.NDArray[Any]]] = []
    offset = 0
    for crp, reco in enumerate(parts):
        h = dict(reco.hits)
        t = dict(reco.tracks)
        h["track"] = np.where(h["track"] >= 0, h["track"] + offset, -1).astype(h["track"].dtype)
        t["id"] = (t["id"] + offset).astype(t["id"].dtype)
        t["partner"] = np.where(t["partner"] >= 0, t["partner"] + offset, -1).astype(
            t["partner"].dtype
        )
        h["crp"] = np.full(h["view"].size, crp, dtype=h["crp"].dtype)
        t["crp"] = np.full(t["view"].size, crp, dtype=t["crp"].dtype)
        hits.append(h)
        trks.append(t)
        offset += reco.n_tracks
    return (
        {k: np.concatenate([h[k] for h in hits]) for k in hits[0]},
        {k: np.concatenate([t[k] for t in trks]) for k in trks[0]},
    )


def reconstruct_crps(
    adc: npt.NDArray[np.uint16], geometry: Geometry, pool: Executor | None = None
) -> list[EventReco]:
    """Each CRP's block of the view-order event reconstructed as one 3x1x1 CRP, on ``pool``.

    The results own their arrays: ``adc`` may be reused as soon as this returns (the driver's
    readers refill their buffers while :func:`finish_detector_event` runs on the results).
    """
    crp_geo = geometry.crp_geometry()
    block = sum(crp_geo.channels_per_view)

    def one(crp: int) -> EventReco:
        return reconstruct_event(
            adc[crp * block : (crp + 1) * block], crp_geo, track_params=TRACK_PARAMS
        )

    crps = range(geometry.n_crps)
    return list(pool.map(one, crps)) if pool is not None else [one(c) for c in crps]


def reconstruct_detector_event(
    adc: npt.NDArray[np.uint16],
    geometry: Geometry,
    lro: list[bytes],
    *,
    pool: Executor | None = None,
    flash_params: flashes.FlashParams = flashes.FlashParams(),  # noqa: B008 - frozen
    join_params: crpjoin.JoinParams = crpjoin.JoinParams(),  # noqa: B008
    match_params: t0match.MatchParams = t0match.MatchParams(),  # noqa: B008
) -> EventReco:
    """Reconstruct a whole event (view order, all CRPs) and time its tracks with ``lro``."""
    return finish_detector_event(
        reconstruct_crps(adc, geometry, pool),
        geometry,
        lro,
        flash_params=flash_params,
        join_params=join_params,
        match_params=match_params,
    )


def finish_detector_event(
    parts: list[EventReco],
    geometry: Geometry,
    lro: list[bytes],
    *,
    flash_params: flashes.FlashParams = flashes.FlashParams(),  # noqa: B008 - frozen
    join_params: crpjoin.JoinParams = crpjoin.JoinParams(),  # noqa: B008
    match_params: t0match.MatchParams = t0match.MatchParams(),  # noqa: B008
) -> EventReco:
    """The CRPs' results as one event: joined across CRPs, flashes found, tracks timed.

    Serial (~0.06 s CPU per 6x6x6 beam event); the driver runs it beside the next event's CRPs.
    """
    timing: dict[str, float] = {}
    for p in parts:
        for step, seconds in p.timing.items():
            timing[step] = timing.get(step, 0.0) + seconds
    t_start = time.thread_time()
    hits, trk = _concat(parts)
    segs = crpjoin.segments(trk, geometry)
    labels = crpjoin.join(segs, join_params)
    n3d = int(labels.max()) + 1 if labels.size else 0
    groups: list[list[crpjoin.Segment]] = [[] for _ in range(n3d)]
    for seg, lab in zip(segs, labels, strict=True):
        groups[lab].append(seg)
    found = flashes.find_flashes(flashes.lro_pulses(lro), pddp_layout.N_PMTS, flash_params)
    timed = t0match.match_tracks(groups, found, geometry, match_params)
    v = geometry.drift_velocity_mm_per_us * 0.1
    track_t0 = np.full(trk["view"].size, np.nan, dtype=np.float32)
    for seg, lab in zip(segs, labels, strict=True):
        for k in (seg.track0, seg.track1):
            trk["track3d"][k] = lab
            trk["match_quality"][k] = timed.quality[lab]
            if timed.flash[lab] < 0:
                continue
            t0 = float(timed.t0_us[lab])
            trk["flash"][k] = timed.flash[lab]
            trk["t0_us"][k] = t0
            trk["tag"][k] = timed.tag[lab]
            trk["drift_min_cm"][k] = (trk["tick_min"][k] * geometry.tick_us - t0) * v
            trk["drift_max_cm"][k] = (trk["tick_max"][k] * geometry.tick_us - t0) * v
            track_t0[k] = t0
    # the timed tracks' hits in one pass (a mask of all hits per track was ~25 M comparisons);
    # float32 as the scalar t0 made it: tick * tick_us - t0, both float32
    hit_t0 = np.full(hits["track"].size, np.nan, dtype=np.float32)
    tracked = hits["track"] >= 0
    hit_t0[tracked] = track_t0[hits["track"][tracked]]
    timed_hits = np.isfinite(hit_t0)
    hits["drift_us"][timed_hits] = hits["tick"][timed_hits] * geometry.tick_us - hit_t0[timed_hits]
    timing["t0"] = time.thread_time() - t_start
    return EventReco(
        pedestal=np.concatenate([p.pedestal for p in parts]),
        rms=np.concatenate([p.rms for p in parts]),
        hits=hits,
        tracks=trk,
        timing=timing,
        n_flashes=found.n,
    )
