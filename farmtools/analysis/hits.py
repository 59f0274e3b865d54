"""Reading the hits of reconstructed ROOT files into flat numpy columns for the analyses.

Each hit gets the fields of its track it needs for the selections (``trk_crossing``,
``trk_length3d``, ``trk_t0``), joined on (event, track) from the ``tracks`` tree, and ``file``,
the index of its file in the list.  The only I/O of :mod:`farmtools.analysis` besides the CLI
and the pipeline hook; may import uproot and numpy.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Columns = dict[str, npt.NDArray[np.generic]]

#: Hit columns the analyses use (the reco output has a few more).
HIT_BRANCHES: tuple[str, ...] = ("event", "view", "channel", "tick", "charge", "track", "edge", "ds", "dqds",
                                 "x", "y", "drift_us", "lem")


class RecoFileError(Exception):
    """A reconstructed file cannot be read or lacks the trees the analyses need."""


def attach_tracks(hits: Columns, tracks: Columns) -> Columns:
    """Add trk_crossing, trk_length3d and trk_t0 to ``hits`` (defaults for hits without a track)."""
    n = hits["track"].size
    out = dict(hits)
    out["trk_crossing"] = np.zeros(n, dtype=np.bool_)
    out["trk_length3d"] = np.full(n, np.nan, dtype=np.float32)
    out["trk_t0"] = np.zeros(n, dtype=np.float32)
    if n == 0 or tracks["id"].size == 0:
        return out
    tkey = tracks["event"].astype(np.int64) * 65536 + tracks["id"].astype(np.int64)
    order = np.argsort(tkey)
    tkey = tkey[order]
    hkey = hits["event"].astype(np.int64) * 65536 + hits["track"].astype(np.int64)
    pos = np.clip(np.searchsorted(tkey, hkey), 0, tkey.size - 1)
    found = (hits["track"] >= 0) & (tkey[pos] == hkey)
    idx = order[pos[found]]
    out["trk_crossing"][found] = tracks["crossing"][idx]
    out["trk_length3d"][found] = tracks["length3d"][idx]
    out["trk_t0"][found] = tracks["t0"][idx]
    return out


def read_hits(paths: Sequence[str | os.PathLike[str]]) -> Columns:
    """Hits of all ``paths`` concatenated, with their track fields; RecoFileError names a bad file."""
    import uproot

    parts: list[Columns] = []
    for i, path in enumerate(paths):
        try:
            with uproot.open(os.fspath(path)) as f:
                hits = f["hits"].arrays(list(HIT_BRANCHES), library="np")
                tracks = f["tracks"].arrays(["event", "id", "crossing", "length3d", "t0"], library="np")
        except Exception as exc:  # uproot raises many types for a bad file; name the file
            raise RecoFileError(f"{os.fspath(path)}: cannot read reconstruction output: {exc}") from exc
        cols = attach_tracks(hits, tracks)
        cols["file"] = np.full(cols["track"].size, i, dtype=np.int16)
        parts.append(cols)
    if not parts:
        raise RecoFileError("no reconstructed files given")
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
