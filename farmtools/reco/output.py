"""The reconstruction's ROOT file, written with uproot in chunks of events.

Layout (docs/reco.md): TTrees ``events`` (one entry per raw event, so its entry count is the
raw file's event count), ``hits`` and ``tracks`` (flat, one entry per hit or track, with the
``event`` index and the event's ``trigger_number`` and ``trigger_time``), and TH1D
``pedestal`` and ``rms`` (mean per-channel pedestal and noise RMS over the file, x =
view-order channel).  Readable by uproot and by ROOT itself.

Schema contract: the tree and branch names are read by :mod:`farmtools.analysis`; they only
grow.  Changes, newest first:

* 2026-12-07: the 6x6x6, additive: ``hits.crp``; ``tracks.crp``, ``track3d`` (the
  joined, view-matched track within the event, -1 none), ``flash`` (-1 none), ``t0_us`` (the
  flash's time from the trigger, NaN unmatched), ``tag`` (0 unmatched, 1 cosmic, 2 beam),
  ``match_quality`` (0..1, NaN unmatched), ``drift_min_cm``/``drift_max_cm`` (absolute drift
  coordinate, NaN unmatched); ``events.n_flashes``.  A 3x1x1 file has crp 0, tag 0, NaN, -1.
* 2026-12-07: ``events.trigger_type`` and ``events.dq_flag`` are uint8 (were int8): they are
  the raw header's unsigned bytes, and a value of 128 or more (a trigger type >= 128, the dq
  flag's bit 7) made the writer fail.  Values below 128 read the same.
* 2026-12-07: every tree and histogram has a title giving the units of its branches
  (:data:`TREE_TITLES`; uproot sets no per-branch title); ``pedestal`` and ``rms`` have axis
  titles and bin errors 0 (a mean, not a count: no sqrt(content)).  Nothing renamed.
* 2026-11-28: ``trigger_number`` (int64) and ``trigger_time`` (float64, s since the epoch)
  added to ``hits`` and ``tracks`` (additive: nothing renamed or removed).

May import uproot, numpy and the sibling :mod:`.event` module (for the column lists).
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from farmtools.reco.event import HIT_COLUMNS, TRACK_COLUMNS, EventReco

#: The trees of every output file (``farmtools verify-output`` checks they are all there).
TREES: tuple[str, ...] = ("events", "hits", "tracks")

EVENT_COLUMNS: dict[str, type] = {
    "event": np.int32,
    "run": np.int32,
    "event_number": np.int64,
    "trigger_number": np.int64,
    "trigger_type": np.uint8,
    "seconds": np.int64,
    "nanoseconds": np.int64,
    "trigger_time": np.float64,
    "dq_flag": np.uint8,
    "compressed": np.bool_,
    "bad_cards": np.int8,
    "offset": np.int64,
    "n_hits": np.int32,
    "n_tracks": np.int32,
    "n_matched": np.int32,
    "n_crossing": np.int32,
    "n_flashes": np.int32,
}


#: Fields of the event repeated on every hit and track, so each can be used on its own.
EVENT_KEYS: dict[str, type] = {
    "event": np.int32,
    "trigger_number": np.int64,
    "trigger_time": np.float64,
}


#: Tree titles, with the units of the branches (docs/reco.md lists every branch).
TREE_TITLES: dict[str, str] = {
    "events": "one entry per raw event: header fields; trigger_time s since the epoch; "
    "offset bytes; counts of hits, tracks, matched and anode-cathode tracks",
    "hits": "one entry per hit: channel = strip of its view; tick, tick_start, tick_end in "
    "0.4 us ticks; amplitude ADC; charge fC; ds cm; dqds fC/cm; x, y cm on the CRP; "
    "drift_us us; lem 1..n (0 unknown); NaN unless the track is matched",
    "tracks": "one entry per 2D track: slope dz/du (cm/cm); intercept, u0, z0 cm; du, dz unit "
    "direction; tick_min, tick_max, t0 in 0.4 us ticks; length, length3d cm; t0_us us from "
    "the trigger (flash); tag 0 unmatched 1 cosmic 2 beam; drift_min_cm, drift_max_cm cm",
}


class RecoWriter:
    """Appends reconstructed events to a ROOT file in chunks: every ``chunk_events`` events,
    or sooner once ``chunk_hits`` hits are waiting.

    Use as a context manager; nothing but the current chunk is held in memory.  Chunks are
    large because each one costs uproot a rewrite of every tree's metadata (its Python
    overhead grows with the branches, ~20 ms a chunk here): a whole 335-event 3x1x1 file
    (~90,000 hits) is one chunk, a 6x6x6 file (~50,000 hits an event) flushes every ~20
    events, ~70 MB of hits.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        n_channels: int,
        chunk_events: int = 500,
        chunk_hits: int = 1_000_000,
    ) -> None:
        import uproot

        self.path = os.fspath(path)
        self._file: Any = uproot.recreate(self.path)
        self._file.mktree(
            "events",
            {k: np.dtype(t) for k, t in EVENT_COLUMNS.items()},
            title=TREE_TITLES["events"],
        )
        for name, columns in (("hits", HIT_COLUMNS), ("tracks", TRACK_COLUMNS)):
            self._file.mktree(
                name,
                {
                    **{k: np.dtype(t) for k, t in EVENT_KEYS.items()},
                    **{k: np.dtype(t) for k, t in columns.items()},
                },
                title=TREE_TITLES[name],
            )
        self.chunk_events = chunk_events
        self.chunk_hits = chunk_hits
        self._pending_hits = 0
        self._pending: list[tuple[dict[str, Any], EventReco]] = []
        self._ped_sum = np.zeros(n_channels, dtype=np.float64)
        self._rms_sum = np.zeros(n_channels, dtype=np.float64)
        self.n_events = 0

    def add(self, header: dict[str, Any], reco: EventReco) -> None:
        """Queue one event (``header``: the EVENT_COLUMNS fields not derived from ``reco``)."""
        self._ped_sum += reco.pedestal
        self._rms_sum += reco.rms
        self._pending.append((header, reco))
        self._pending_hits += reco.n_hits
        self.n_events += 1
        if len(self._pending) >= self.chunk_events or self._pending_hits >= self.chunk_hits:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        ev: dict[str, list[Any]] = {k: [] for k in EVENT_COLUMNS}
        for header, reco in self._pending:
            row = dict(header)
            row["n_hits"] = reco.n_hits
            row["n_tracks"] = reco.n_tracks
            row["n_matched"] = int((reco.tracks["partner"] >= 0).sum())
            row["n_crossing"] = int(reco.tracks["crossing"].sum() // 2)
            row["n_flashes"] = reco.n_flashes
            for k in EVENT_COLUMNS:
                ev[k].append(row[k])
        self._file["events"].extend(
            {k: np.asarray(v, dtype=EVENT_COLUMNS[k]) for k, v in ev.items()}
        )
        self._file["hits"].extend(_stack([(h, r.hits) for h, r in self._pending], HIT_COLUMNS))
        self._file["tracks"].extend(
            _stack([(h, r.tracks) for h, r in self._pending], TRACK_COLUMNS)
        )
        self._pending.clear()
        self._pending_hits = 0

    def close(self) -> None:
        self.flush()
        from farmtools.roothist import th1d

        n = max(self.n_events, 1)
        edges = np.arange(self._ped_sum.size + 1, dtype=np.float64) - 0.5
        x = "view-order channel (view 0 first)"
        self._file["pedestal"] = th1d(
            "pedestal",
            "pedestal per channel, mean over the file (ADC)",
            self._ped_sum / n,
            edges,
            x,
            "ADC",
        )
        self._file["rms"] = th1d(
            "rms",
            "noise RMS per channel, mean over the file (ADC)",
            self._rms_sum / n,
            edges,
            x,
            "ADC",
        )
        self._file.close()

    def __enter__(self) -> RecoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _stack(
    items: list[tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]], columns: dict[str, type]
) -> dict[str, npt.NDArray[Any]]:
    """One chunk of a flat tree: the EVENT_KEYS of each row's event, then its own columns."""
    out: dict[str, npt.NDArray[Any]] = {
        key: np.concatenate(
            [np.full(cols["view"].size, header[key], dtype=t) for header, cols in items]
        )
        for key, t in EVENT_KEYS.items()
    }
    for k, t in columns.items():
        out[k] = np.concatenate([cols[k] for _, cols in items]).astype(t, copy=False)
    return out
