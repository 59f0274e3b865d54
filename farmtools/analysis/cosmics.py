"""The cosmics of beam events that purity and gain can use (6x6x6; docs/analysis.md).

At the surface ~70 cosmic muons overlap each 6x6x6 event.  A cosmic serves the lifetime and
gain measurements when its drift times are absolute (a flash gave it its t0), it is long enough
for a dQ/ds sample, it spans enough drift for the attenuation lever arm, and no beam particle
shares its charge (the hit finder would mix them).  :func:`select_cosmics` applies those cuts to
the ``tracks`` tree of the reconstruction (docs/reco.md) and marks every 2D track row of a
selected 3D track, so the hits of the selected tracks are the analyses' subsample.

Isolation: in every CRP and view the cosmic crosses, the box it covers (strip coordinate x drift
time, widened by ``isolation_cm``) overlaps no beam-tagged track's box.

Two more cuts keep out the 3D tracks that are not one particle, whose t0 is then wrong as often
as right.  The reconstruction pairs a CRP's two views by the overlap of their drift-time ranges;
with ~25 muons per CRP a view-0 track may be paired with another muon's view-1 track.  Both
views of one muon see its charge arrive from the same first to the same last tick, so in every
CRP the two views' ranges must agree within ``max_view_mismatch_us`` at both ends.  And the
flash must fit the track's light (``max_match_quality``, the Poisson deviance per PMT of
:mod:`farmtools.reco.t0match`, ~1 when right).  On 24 emulated beam events (seed 666, 2026-12-08,
``benchmarks/bench_closure666.py``) 137 of 417 selected cosmics had a t0 off by more than 1 us
without them: their views ended 78..1440 ticks apart (10-90 %), the right ones within 14
(90 %); with the cuts 98 % of the selection is right and tau moved from +10 % to the truth.

:func:`cosmic_subsample` is what the purity and gain analyses read of a 6x6x6 output: the hits
of the selected cosmics, their drift times absolute (so they count as the 3x1x1's anode-cathode
crossers, whose t0 the charge gave), their LEM numbered on the whole anode plane
(:meth:`farmtools.detector.Geometry.anode_geometry`: 144 LEMs).

Pure numpy over the column dictionaries of :mod:`farmtools.analysis.hits`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from farmtools.detector import PDDP_6X6X6, Geometry
from farmtools.reco.t0match import TAG_BEAM, TAG_COSMIC

Columns = dict[str, npt.NDArray[Any]]


@dataclass(frozen=True)
class CosmicSelection:
    """Cuts of the cosmic subsample [choice: docs/analysis.md]."""

    min_length_cm: float = 100.0
    min_drift_cm: float = 150.0
    isolation_cm: float = 30.0
    #: Largest difference (us) between the two views' first (and last) arrival times in a CRP.
    max_view_mismatch_us: float = 12.0
    #: Largest match quality (deviance per PMT) of the track's flash.
    max_match_quality: float = 2.0


def views_agree(
    tracks: Columns, rows: npt.NDArray[np.intp], max_ticks: float, samples: int
) -> bool:
    """Whether, in each CRP of ``rows`` (one 3D track), both views span the same drift times.

    An end cut by the readout window (tick 0 or the last) says nothing: both views stop there
    whatever muon they are; a CRP's piece cut at both ends cannot be checked, and fails.
    """
    for crp in np.unique(tracks["crp"][rows]):
        here = rows[tracks["crp"][rows] == crp]
        v0 = here[tracks["view"][here] == 0]
        v1 = here[tracks["view"][here] == 1]
        if v0.size == 0 or v1.size == 0:
            return False
        first = (float(tracks["tick_min"][v0].min()), float(tracks["tick_min"][v1].min()))
        last = (float(tracks["tick_max"][v0].max()), float(tracks["tick_max"][v1].max()))
        if max(first) <= 1.0 and min(last) >= samples - 2.0:
            return False
        if max(abs(first[0] - first[1]), abs(last[0] - last[1])) > max_ticks:
            return False
    return True


def _boxes(tracks: Columns, geometry: Geometry) -> npt.NDArray[np.float64]:
    """(n, 4) u_lo, u_hi, z_lo, z_hi (cm; z from the trigger) of each 2D track row."""
    vz = geometry.drift_velocity_cm_per_tick
    z_lo = tracks["tick_min"].astype(np.float64) * vz
    z_hi = tracks["tick_max"].astype(np.float64) * vz
    dz = tracks["dz"].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(dz != 0, tracks["du"] / dz, 0.0)
    u_a = tracks["u0"] + (z_lo - tracks["z0"]) * slope
    u_b = tracks["u0"] + (z_hi - tracks["z0"]) * slope
    return np.column_stack([np.minimum(u_a, u_b), np.maximum(u_a, u_b), z_lo, z_hi])


def select_cosmics(
    tracks: Columns,
    geometry: Geometry,
    cuts: CosmicSelection = CosmicSelection(),
) -> npt.NDArray[np.bool_]:
    """Per track row: whether it belongs to a selected cosmic (all its CRPs and both views)."""
    n = tracks["event"].size
    selected = np.zeros(n, dtype=np.bool_)
    if n == 0:
        return selected
    boxes = _boxes(tracks, geometry)
    key = tracks["event"].astype(np.int64) * 65536 + tracks["track3d"].astype(np.int64)
    cosmic = (tracks["tag"] == TAG_COSMIC) & (tracks["track3d"] >= 0)
    beam_rows = np.flatnonzero(tracks["tag"] == TAG_BEAM)
    w = cuts.isolation_cm
    mismatch_ticks = cuts.max_view_mismatch_us / geometry.tick_us
    for k in np.unique(key[cosmic]):
        rows = np.flatnonzero(key == k)
        v0 = rows[tracks["view"][rows] == 0]
        length = float(np.nansum(tracks["length3d"][v0]))
        drift = float(
            np.nanmax(tracks["drift_max_cm"][rows]) - np.nanmin(tracks["drift_min_cm"][rows])
        )
        if length < cuts.min_length_cm or drift < cuts.min_drift_cm:
            continue
        if not float(tracks["match_quality"][rows[0]]) <= cuts.max_match_quality:
            continue
        if not views_agree(tracks, rows, mismatch_ticks, geometry.samples):
            continue
        isolated = True
        for r in rows:
            same = beam_rows[
                (tracks["event"][beam_rows] == tracks["event"][r])
                & (tracks["crp"][beam_rows] == tracks["crp"][r])
                & (tracks["view"][beam_rows] == tracks["view"][r])
            ]
            b = boxes[same]
            a = boxes[r]
            hit = (
                (b[:, 0] - w <= a[1])
                & (a[0] <= b[:, 1] + w)
                & (b[:, 2] - w <= a[3])
                & (a[2] <= b[:, 3] + w)
            )
            if hit.any():
                isolated = False
                break
        if isolated:
            selected[rows] = True
    return selected


def anode_lem(lem: npt.NDArray[Any], crp: npt.NDArray[Any], geometry: Geometry) -> npt.NDArray[Any]:
    """LEM on the whole anode plane of a CRP's own LEM ``lem`` (1..36; 0 unknown stays 0)."""
    nx, ny = geometry.crp_geometry().lem_grid
    ax, _ay = geometry.anode_geometry().lem_grid
    local = lem.astype(np.int64) - 1
    crp = crp.astype(np.int64)
    ix = local % nx + nx * (crp % 2)
    iy = local // nx + ny * (crp // 2)
    return np.where(lem > 0, 1 + ix + ax * iy, 0).astype(lem.dtype if ax * ax < 128 else np.int16)


def cosmic_subsample(
    hits: Columns,
    tracks: Columns,
    geometry: Geometry = PDDP_6X6X6,
    cuts: CosmicSelection = CosmicSelection(),
) -> tuple[Columns, Columns]:
    """(hits, tracks) of the selected cosmics, as the 3x1x1's analyses take them (module doc)."""
    chosen = select_cosmics(tracks, geometry, cuts)
    tracks = dict(tracks)
    tracks["crossing"] = chosen.copy()  # drift times absolute: the flash gave the t0
    tracks["t0"] = np.where(chosen, 0.0, tracks["t0"]).astype(tracks["t0"].dtype)
    key = tracks["event"].astype(np.int64) * 65536 + tracks["id"].astype(np.int64)
    hkey = hits["event"].astype(np.int64) * 65536 + hits["track"].astype(np.int64)
    keep = (hits["track"] >= 0) & np.isin(hkey, key[chosen])
    out = {k: v[keep] for k, v in hits.items()}
    out["lem"] = anode_lem(out["lem"], out["crp"], geometry)
    return out, tracks
