"""The analysis results of the summary directory, kept up to date for the page: :class:`SummaryStore`.

The seed's GUI polled its summary directory every few seconds; so does this store, but a year of
running leaves ~800,000 analyses (a group of 4 files every 40 s) in ~9,000 run folders, which
can neither be listed every few seconds nor kept in memory.  So the store keeps three things:

* the **window**: every result of the newest run folders, enough for the trend plots
  (``window`` results, ``monitor.trend_points``), plus every file directly in the directory
  (a flat layout, fine for a few thousand files).  Its files are listed and stat'ed on each
  refresh, so a new file, a changed one (the seed's gain analysis appended to the purity file)
  or a removed one is seen at the next look;
* the **latest result of every older run** (the "lifetime versus run" plot, the run selector),
  from the newest file of each run folder; a folder is listed again only when its mtime moved
  (a file created or renamed into it), and those mtimes are looked at on every
  :data:`OLDER_EVERY`-th look only (one ``stat`` per older run: ~0.3 s for a year here);
* **on demand**, every result of an older run chosen in the run or reference selector, read
  when asked for and kept in a small LRU.

Layout expected (what ``farmtools analyse`` writes): ``<summary_dir>/run<N>/...`` with the run
number in the folder name (files may sit deeper), or files named ``...run<N>...`` anywhere.
Names starting with ``.`` or ending in ``.part``/``.tmp``/``.root`` are not read (a writer
writes a temporary name and renames).  Thread-safe: refreshes read the disk without the lock
readers take, then swap the new state in.  May import :mod:`farmtools.monitor.summary` only.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from farmtools.monitor.summary import (
    RUN_RE,
    SKIPPED,
    AnalysisResult,
    SummaryError,
    group_results,
    read_json_summary,
    read_seed_summary,
)

#: Newest run folders always read in full, even when the window is filled by fewer.
MIN_WINDOW_FOLDERS = 2
#: The older run folders' mtimes are looked at on every this many looks (the first included).
OLDER_EVERY = 12
#: Older runs whose every result is kept after being asked for (run or reference selector).
ON_DEMAND_RUNS = 32


def read_summary(path: str, run: int) -> AnalysisResult:
    """A seed file or its JSON twin, by the name's suffix."""
    return read_json_summary(path, run) if path.endswith(".json") else read_seed_summary(path, run)


def _scan(directory: str) -> Iterator[tuple[os.DirEntry[str], int | None, os.stat_result | None]]:
    """The readable entries of ``directory``: (entry, run number in its name, stat of a file).

    The stat is None for a folder.  Hidden and temporary names are skipped, and so is an entry
    removed while listed (or a directory that cannot be listed): a writer renames files into
    place while the page looks, and a vanished file is simply gone at the next look.
    """
    try:
        it = os.scandir(directory)
    except OSError:
        return
    with it:
        for e in it:
            if e.name.startswith(".") or e.name.endswith(SKIPPED):
                continue
            m = RUN_RE.search(e.name)
            try:
                if e.is_dir(follow_symlinks=False):
                    st = None
                elif e.is_file():
                    st = e.stat()
                else:
                    continue
            except OSError:
                continue
            yield e, (int(m.group(1)) if m else None), st


def _list_files(directory: str, run: int, out: dict[str, tuple[int, int, int]]) -> None:
    """Every result file below ``directory`` (a run folder): path -> (size, mtime, run)."""
    for e, number, st in _scan(directory):
        here = run if number is None else number
        if st is None:
            _list_files(e.path, here, out)
        else:
            out[e.path] = (st.st_size, st.st_mtime_ns, here)


@dataclass
class _Folder:
    """An older run's folder as last seen: its mtime and the result of its newest analysis."""

    mtime: int
    latest: AnalysisResult | None
    error: str | None = None


@dataclass
class _State:
    """What readers see; replaced as a whole by a refresh."""

    ordered: list[AnalysisResult] = field(default_factory=list)
    by_run: dict[int, list[AnalysisResult]] = field(default_factory=dict)
    older: dict[int, AnalysisResult] = field(default_factory=dict)
    folders: dict[int, list[str]] = field(default_factory=dict)


class SummaryStore:
    """The analysis results of ``directory`` (see the module docstring for what is kept).

    :meth:`refresh` looks again (at most every ``min_interval`` s unless forced); readers
    (:meth:`results`, :meth:`latest`, :meth:`runs`, :meth:`for_run`) never touch the disk,
    except :meth:`latest`/:meth:`for_run` for an older run not asked for recently.
    ``errors``: unreadable files of the window and of the older runs' newest files, with the
    message naming the file and line; ``version`` grows whenever the results change.
    """

    def __init__(
        self, directory: str | os.PathLike[str], min_interval: float = 1.0, window: int = 500
    ) -> None:
        self.directory = Path(directory)
        self.min_interval = min_interval
        self.window = window
        self.errors: dict[str, str] = {}
        self.version = 0
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()
        self._last = -math.inf
        self._state = _State()
        # owned by the refreshing thread
        self._seen: dict[str, tuple[int, int]] = {}
        self._parsed: dict[str, AnalysisResult] = {}
        self._file_errors: dict[str, str] = {}
        self._folder_cache: dict[str, _Folder] = {}
        self._looks = 0
        # on-demand reads of older runs: run -> (folder mtimes, results)
        self._demand: OrderedDict[int, tuple[tuple[int, ...], list[AnalysisResult]]] = OrderedDict()

    # -- refreshing ----------------------------------------------------------------------------
    def refresh(self, force: bool = False) -> bool:
        """Look at the directory again; True when the results changed.

        A refresh while another one runs returns False at once (``force``: waits, then looks).
        """
        t = time.monotonic()
        if not force and t - self._last < self.min_interval:
            return False
        if not self._refreshing.acquire(blocking=force):
            return False
        try:
            self._last = t
            return self._refresh()
        finally:
            self._refreshing.release()

    def _top(self) -> tuple[dict[int, list[str]], dict[str, tuple[int, int, int]]]:
        """Run folders by run, and the flat files (not inside a run folder)."""
        folders: dict[int, list[str]] = {}
        flat: dict[str, tuple[int, int, int]] = {}

        def walk(directory: str) -> None:
            for e, run, st in _scan(directory):
                if st is None and run is not None:
                    folders.setdefault(run, []).append(e.path)
                elif st is None:
                    walk(e.path)
                elif run is not None:
                    flat[e.path] = (st.st_size, st.st_mtime_ns, run)

        if self.directory.is_dir():
            walk(str(self.directory))
        return folders, flat

    def _read(self, files: dict[str, tuple[int, int, int]]) -> bool:
        """Parse what is new or changed in ``files``, forget what is gone; True if anything did."""
        changed = False
        for path in [p for p in self._seen if p not in files]:
            del self._seen[path]
            self._parsed.pop(path, None)
            self._file_errors.pop(path, None)
            changed = True
        for path, (size, mtime, run) in files.items():
            if self._seen.get(path) == (size, mtime):
                continue
            self._seen[path] = (size, mtime)
            changed = True
            try:
                self._parsed[path] = read_summary(path, run)
                self._file_errors.pop(path, None)
            except (SummaryError, OSError) as exc:
                self._parsed.pop(path, None)
                self._file_errors[path] = str(exc)
        return changed

    def _refresh(self) -> bool:
        folders, files = self._top()
        # the window: newest run folders until it holds `window` results
        runs = sorted(folders, reverse=True)
        in_window: set[int] = set()
        count = 0
        for run in runs:
            if count >= self.window and len(in_window) >= MIN_WINDOW_FOLDERS:
                break
            in_window.add(run)
            mine: dict[str, tuple[int, int, int]] = {}
            for d in folders[run]:
                _list_files(d, run, mine)
            files.update(mine)
            count += sum(1 for p in mine if not p.endswith(".json")) or len(mine)
        changed = self._read(files)
        # older runs: the newest analysis of each folder, re-read when the folder's mtime moved;
        # their mtimes are looked at every OLDER_EVERY looks (they rarely change: a late
        # reanalysis), a new folder or one leaving the window at once
        older_changed = False
        alive: set[str] = set()
        self._looks += 1
        full = self._looks % OLDER_EVERY == 1
        for run in runs:
            if run in in_window:
                continue
            for d in folders[run]:
                alive.add(d)
                cached = self._folder_cache.get(d)
                if cached is not None and not full:
                    continue
                try:
                    mtime = os.stat(d).st_mtime_ns
                except OSError:
                    continue
                if cached is None or cached.mtime != mtime:
                    self._folder_cache[d] = self._newest_of(d, run, mtime)
                    older_changed = True
        for d in [d for d in self._folder_cache if d not in alive]:
            del self._folder_cache[d]
            older_changed = True
        if not (changed or older_changed):
            return False
        ordered = group_results(self._parsed)
        by_run: dict[int, list[AnalysisResult]] = {}
        for r in ordered:
            by_run.setdefault(r.run, []).append(r)
        older: dict[int, AnalysisResult] = {}
        errors = dict(self._file_errors)
        for d, f in self._folder_cache.items():
            if f.latest is not None and f.latest.run not in by_run:
                prev = older.get(f.latest.run)
                if prev is None or f.latest.key > prev.key:
                    older[f.latest.run] = f.latest
            if f.error:
                errors[d] = f.error
        state = _State(ordered, by_run, older, folders)
        with self._lock:
            self._state = state
            self.errors = errors
            self.version += 1
        return True

    @staticmethod
    def _newest_of(directory: str, run: int, mtime: int) -> _Folder:
        """The result of a folder's newest analysis (newest file and its twin, by mtime)."""
        files: dict[str, tuple[int, int, int]] = {}
        _list_files(directory, run, files)
        if not files:
            return _Folder(mtime, None)
        newest = max(files, key=lambda p: (files[p][1], p))
        stem = newest.rsplit(".", 1)[0]
        group = [p for p in files if p.rsplit(".", 1)[0] == stem]
        parsed: dict[str, AnalysisResult] = {}
        error = None
        for p in group:
            try:
                parsed[p] = read_summary(p, files[p][2])
            except (SummaryError, OSError) as exc:
                error = str(exc)
        merged = group_results(parsed)
        return _Folder(mtime, merged[-1] if merged else None, error)

    def _on_demand(self, run: int) -> list[AnalysisResult]:
        """Every result of an older run (not in the window), read now or from the LRU."""
        with self._lock:
            dirs = self._state.folders.get(run, [])
        if not dirs:
            return []
        sig = tuple(os.stat(d).st_mtime_ns if os.path.isdir(d) else 0 for d in dirs)
        with self._lock:
            hit = self._demand.get(run)
            if hit is not None and hit[0] == sig:
                self._demand.move_to_end(run)
                return hit[1]
        files: dict[str, tuple[int, int, int]] = {}
        for d in dirs:
            _list_files(d, run, files)
        parsed: dict[str, AnalysisResult] = {}
        for p, (_, _, r) in files.items():
            try:
                parsed[p] = read_summary(p, r)
            except (SummaryError, OSError):
                continue  # reported by the refresh when it is the newest file
        results = group_results(parsed)
        with self._lock:
            self._demand[run] = (sig, results)
            while len(self._demand) > ON_DEMAND_RUNS:
                self._demand.popitem(last=False)
        return results

    # -- reading -------------------------------------------------------------------------------
    def results(self, limit: int | None = None) -> list[AnalysisResult]:
        """The window's results, oldest first (the last ``limit`` ones when given)."""
        with self._lock:
            ordered = self._state.ordered
        return list(ordered[-limit:] if limit else ordered)

    def runs(self) -> list[int]:
        """Every run with a result (window, older run folders), ascending."""
        with self._lock:
            st = self._state
        return sorted(set(st.by_run) | set(st.older))

    def latest_per_run(self, limit: int) -> list[AnalysisResult]:
        """The newest result of each of the ``limit`` newest runs, by run (lifetime vs run)."""
        with self._lock:
            st = self._state
        runs = sorted(set(st.by_run) | set(st.older))[-limit:]
        return [st.by_run[r][-1] if r in st.by_run else st.older[r] for r in runs]

    def for_run(self, run: int) -> list[AnalysisResult]:
        """Every result of ``run``, oldest first (read from disk for an older run)."""
        with self._lock:
            st = self._state
        if run in st.by_run:
            return list(st.by_run[run])
        if run in st.folders:
            return list(self._on_demand(run))
        return []

    def latest(self, run: int | None = None, *, with_lems: bool = False) -> AnalysisResult | None:
        """The newest result of ``run`` (of any run when None); ``with_lems``: the newest that
        has LEM results (a purity result whose gain is not there yet is skipped)."""
        with self._lock:
            st = self._state
        if run is None:
            candidates: list[AnalysisResult] = st.ordered
        elif run in st.by_run:
            candidates = st.by_run[run]
        elif run in st.older and (st.older[run].lems or not with_lems):
            return st.older[run]
        else:
            candidates = self.for_run(run)
        for r in reversed(candidates):
            if r.lems or not with_lems:
                return r
        return None
