"""Reading the hits of reconstructed ROOT files into flat numpy columns for the analyses.

Each hit gets the fields of its track it needs for the selections (``trk_crossing``,
``trk_length3d``, ``trk_t0``, ``trk_matched``), joined on (event, track) from the ``tracks``
tree, and ``file``, the index of its file in the list.  Files are read branch by branch (the
analyses need a dozen float columns, a few MB per 335-event file), never event objects.
The only ROOT I/O of :mod:`farmtools.analysis` besides the optional histogram output; may
import uproot and numpy.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

#: Flat columns of hits, all of the same length (the analyses' common currency).
Columns = dict[str, npt.NDArray[Any]]

#: Hit columns the analyses use (the reco output has a few more).
HIT_BRANCHES: tuple[str, ...] = (
    "event",
    "view",
    "channel",
    "tick",
    "charge",
    "amplitude",
    "track",
    "edge",
    "ds",
    "dqds",
    "x",
    "y",
    "drift_us",
    "lem",
)
#: Track columns joined onto the hits.
TRACK_BRANCHES: tuple[str, ...] = ("event", "id", "crossing", "length3d", "t0", "partner")
#: Columns of a 6x6x6 output (flash-timed tracks) the cosmic selection needs, read when present.
PDDP_HIT_BRANCHES: tuple[str, ...] = ("crp",)
PDDP_TRACK_BRANCHES: tuple[str, ...] = (
    "view",
    "crp",
    "track3d",
    "tag",
    "u0",
    "z0",
    "du",
    "dz",
    "tick_min",
    "tick_max",
    "drift_min_cm",
    "drift_max_cm",
    "match_quality",
)


class RecoFileError(Exception):
    """A reconstructed file cannot be read or lacks the trees the analyses need."""


def attach_tracks(hits: Columns, tracks: Columns) -> Columns:
    """Add trk_crossing, trk_length3d, trk_t0 (ticks), trk_matched and trk_partner to ``hits``.

    Hits without a track (``track < 0``) or whose track is missing get False / NaN / 0 / -1.
    ``trk_partner`` (the matched track of the other view) lets the analyses treat the two views
    of one muon as one sample: they share its charge fluctuations.
    """
    n = hits["track"].size
    out = dict(hits)
    out["trk_crossing"] = np.zeros(n, dtype=np.bool_)
    out["trk_length3d"] = np.full(n, np.nan, dtype=np.float32)
    out["trk_t0"] = np.zeros(n, dtype=np.float32)
    out["trk_matched"] = np.zeros(n, dtype=np.bool_)
    out["trk_partner"] = np.full(n, -1, dtype=np.int16)
    if n == 0 or tracks["id"].size == 0:
        return out
    tkey = tracks["event"].astype(np.int64) * 65536 + tracks["id"].astype(np.int64)
    order = np.argsort(tkey)
    tkey = tkey[order]
    htrack = hits["track"].astype(np.int64)
    hkey = hits["event"].astype(np.int64) * 65536 + htrack
    pos = np.clip(np.searchsorted(tkey, hkey), 0, tkey.size - 1)
    found = (htrack >= 0) & (tkey[pos] == hkey)
    idx = order[pos[found]]
    out["trk_crossing"][found] = tracks["crossing"][idx]
    out["trk_length3d"][found] = tracks["length3d"][idx]
    out["trk_t0"][found] = tracks["t0"][idx]
    if "partner" in tracks:
        out["trk_matched"][found] = tracks["partner"][idx] >= 0
        out["trk_partner"][found] = tracks["partner"][idx]
    return out


def read_reco_file(path: str | os.PathLike[str]) -> Columns:
    """Hits of one reconstructed file with their track fields; RecoFileError names the file.

    ``path`` may be a ``root://`` URL: outputs on XRootD storage are read where they lie.
    """
    from farmtools.storage.location import open_root

    name = os.fspath(path)
    try:
        with open_root(name) as f:
            for tree in ("hits", "tracks"):
                if tree not in f:
                    raise RecoFileError(f"{name}: no {tree!r} tree (not a farmtools reco file?)")
            pddp = {"tag"} <= set(f["tracks"].keys()) and {"crp"} <= set(f["hits"].keys())
            extra_h = PDDP_HIT_BRANCHES if pddp else ()
            extra_t = PDDP_TRACK_BRANCHES if pddp else ()
            hits = f["hits"].arrays([*HIT_BRANCHES, *extra_h], library="np")
            tracks = f["tracks"].arrays([*TRACK_BRANCHES, *extra_t], library="np")
            rms = f["rms"].values() if "rms" in f else None
    except RecoFileError:
        raise
    except FileNotFoundError:
        raise RecoFileError(f"{name}: no such file") from None
    except Exception as exc:  # uproot raises many types for a damaged file; name the file
        raise RecoFileError(f"{name}: cannot read reconstruction output: {exc}") from exc
    if rms is not None:
        noise = channel_noise(hits, rms)
        if noise is not None:
            hits["noise_rms"] = noise
    if pddp and (tracks["tag"] > 0).any():  # a 6x6x6 event file: its selected cosmics only
        from farmtools.analysis.cosmics import cosmic_subsample

        hits, tracks = cosmic_subsample(hits, tracks)
    hits.pop("crp", None)  # not in a 3x1x1 file's columns: concat keeps the common ones
    return attach_tracks(hits, tracks)


def output_channels(path: str | os.PathLike[str]) -> int | None:
    """Channels of the detector that made a reconstructed file: the bins of its ``rms``
    histogram (one per view-order channel); None without one.  RecoFileError names the file."""
    from farmtools.storage.location import open_root

    name = os.fspath(path)
    try:
        with open_root(name) as f:
            return len(f["rms"].values()) if "rms" in f else None
    except FileNotFoundError:
        raise RecoFileError(f"{name}: no such file") from None
    except Exception as exc:  # uproot raises many types for a damaged file; name the file
        raise RecoFileError(f"{name}: cannot read reconstruction output: {exc}") from exc


def channel_noise(hits: Columns, rms: npt.NDArray[Any]) -> npt.NDArray[np.float32] | None:
    """Per hit: the noise RMS (ADC) of its channel from the file's ``rms`` histogram.

    The histogram is in view order (view 0 first); the split between the views comes from the
    detector geometry with that many channels (None when no known geometry has it).
    """
    from farmtools.detector import GEOMETRIES

    geo = next((g for g in GEOMETRIES.values() if g.n_channels == rms.size), None)
    if geo is None:
        return None
    n0, n1 = geo.channels_per_view
    index = hits["channel"].astype(np.int64) + np.where(hits["view"] == 0, 0, n0)
    if "crp" in hits:  # view order is CRP-major (docs/protodune-dp.md)
        index += hits["crp"].astype(np.int64) * (n0 + n1)
    return np.asarray(rms, dtype=np.float32)[np.clip(index, 0, rms.size - 1)]


def concat(parts: Sequence[Columns]) -> Columns:
    """Concatenate column sets; each part's ``file`` column is its index in ``parts``."""
    if not parts:
        raise RecoFileError("no reconstructed files given")
    tagged = []
    for i, cols in enumerate(parts):
        c = dict(cols)
        c["file"] = np.full(c["view"].size, i, dtype=np.int16)
        tagged.append(c)
    keys = [k for k in tagged[0] if all(k in p for p in tagged)]
    return {k: np.concatenate([p[k] for p in tagged]) for k in keys}


def read_hits(paths: Sequence[str | os.PathLike[str]]) -> Columns:
    """Hits of all ``paths`` concatenated, with their track fields; RecoFileError names a bad file."""
    return concat([read_reco_file(p) for p in paths])
