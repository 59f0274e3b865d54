"""The L2 event builder: two L1 fragment streams in, complete events in ProtoDUNE-DP files out.

One builder (id ``a``, ``b``, ...) of ``n`` takes the triggers with ``trigger % n`` equal to its
place in the list of ids, so that several builders share the work without ever writing one
event twice.  For each of its triggers it pairs the fragments of the two L1 streams by run and
trigger number and checks that they agree (event number, trigger time) and that each carries
its stream file's run:

* both there and agreeing: a complete event;
* the partner does not come within ``pair_timeout_s``: the event is written *incomplete* (flag
  in the table and the fragment, a placeholder in place of the missing fragment) and counted;
* a second fragment of one stream for a trigger (duplicate), one whose run, event number or
  time disagrees (mismatch), a partner that comes after its event was written incomplete
  (late), and tails of stream files that are not whole fragments (truncated, corrupt) are *set
  aside*: copied as they are into ``setaside_dir`` under a name that says why, with an alarm.

Events are written into ``<run>_<seq>_<id>.dat`` files of at most ``roll_bytes`` (or fewer
when the oldest waiting event is ``flush_s`` old, and at the end of a drain).  A file is
written under a temporary name from the fragments' own bytes (``copy_file_range``), synced,
re-read and checked, and only then renamed to its final name.

Nothing lost, nothing twice, whatever the moment of a SIGKILL: the builder's state is what it
wrote.  At start it reads its journal (one synced line per event file renamed: which triggers,
which streams), the event tables of final files the journal misses (a crash between rename and
journal line), and the names of the set-aside files (which fragments), and removes its
temporary files; then it reads the streams from their beginning, passing over the fragments
already written or set aside.  Counts are recomputed the same way, exactly.  The journal
outlives the event files, which the archive stage may clean from the DAQ disk.

Imports :mod:`farmtools.rawdata`, :mod:`farmtools.detector` and the evb modules.
"""

from __future__ import annotations

import json
import logging
import os
import re
import selectors
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farmtools import pddp_channels

if TYPE_CHECKING:
    from farmtools.bookkeeping.db import Bookkeeping

from farmtools.bookkeeping.heartbeat import Heartbeat
from farmtools.detector import Geometry
from farmtools.evb.streams import FragRef, StreamTail, Tail
from farmtools.rawdata.errors import RawDataError
from farmtools.rawdata.pddp_format import DQ_EVENT_INCOMPLETE, FRAGMENT_HEADER_SIZE, TRAILER
from farmtools.rawdata.pddp_naming import L2Name, parse_l2_name
from farmtools.rawdata.pddp_reader import PDDPFile
from farmtools.rawdata.pddp_writer import Fragment, copy_range, write_pddp_file

log = logging.getLogger("farmtools.evb")

#: Set-aside file: ``<run>_<trigger>_<stream>_<reason>_<L1 file>@<offset>.frag``.
_SETASIDE = re.compile(r"([0-9]+)_(-?[0-9]+)_([0-9])_([a-z]+)_(.+@[0-9]+)\.frag")
REASONS = ("duplicate", "mismatch", "late", "truncated", "corrupt")


@dataclass(frozen=True)
class BuilderSettings:
    """Where and how one L2 builder works."""

    in_dir: Path
    out_dir: Path
    setaside_dir: Path
    geometry: Geometry
    builder_id: str = "a"
    builders: tuple[str, ...] = ("a",)
    pair_timeout_s: float = 10.0
    roll_bytes: int = 4 << 30
    flush_s: float = 30.0
    idle_s: float = 60.0
    status_path: Path | None = None
    #: Sync each event file before its rename (the guarantee); off only to measure the CPU cost.
    fsync: bool = True

    def check(self) -> None:
        if self.builder_id not in self.builders:
            raise ValueError(f"builder id {self.builder_id!r} is not among {list(self.builders)}")
        if len(set(self.builders)) != len(self.builders):
            raise ValueError(f"builder ids {list(self.builders)} repeat")
        for b in self.builders:
            if not re.fullmatch(r"[A-Za-z0-9]", b):
                raise ValueError(
                    f"builder id {b!r} must be one letter or digit (the file name has one)"
                )
        if self.geometry.l1_builders != 2:
            raise ValueError(f"the {self.geometry.name} has no two L1 event builders to merge")

    @property
    def index(self) -> int:
        return self.builders.index(self.builder_id)


@dataclass
class RunCounts:
    """What the shift needs per run (this builder's share of the triggers)."""

    fragments_in: list[int] = field(default_factory=lambda: [0, 0])
    built: int = 0
    incomplete: int = 0
    duplicates: int = 0
    mismatches: int = 0
    late: int = 0
    truncated: int = 0
    corrupt: int = 0
    pending: int = 0
    files: int = 0
    bytes_in: int = 0

    def set_aside(self, reason: str) -> None:
        attr = {"duplicate": "duplicates", "mismatch": "mismatches"}.get(reason, reason)
        setattr(self, attr, getattr(self, attr) + 1)


@dataclass
class _Pending:
    frags: list[FragRef | None]
    first_seen: float


@dataclass
class _Ready:
    run: int
    trigger: int
    frags: list[FragRef | None]
    since: float

    @property
    def incomplete(self) -> bool:
        return any(f is None for f in self.frags)

    @property
    def size(self) -> int:
        return sum(f.header.size if f is not None else FRAGMENT_HEADER_SIZE + 1 for f in self.frags)


class L2Builder:
    """One L2 event builder; :meth:`step` does one pass, :meth:`run` loops (see the module doc)."""

    def __init__(self, settings: BuilderSettings, bookkeeping: Bookkeeping | None = None) -> None:
        settings.check()
        self.s = settings
        self.bk = bookkeeping
        self._recorded: dict[int, dict[str, int]] = {}
        self.tail = StreamTail(settings.in_dir, settings.idle_s)
        self.counts: dict[int, RunCounts] = defaultdict(RunCounts)
        #: (run, trigger) -> streams present in the event as written.
        self.built: dict[tuple[int, int], tuple[bool, bool]] = {}
        self._replayed: set[tuple[int, int, int]] = set()
        self.setaside_ids: set[str] = set()
        self.pending: dict[tuple[int, int], _Pending] = {}
        self.ready: dict[int, list[_Ready]] = defaultdict(list)
        self.next_seq: dict[int, int] = defaultdict(int)
        self.alarms: list[str] = []
        self._journaled: set[str] = set()
        for d in (settings.out_dir, settings.setaside_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._recover()

    # --- restart ---------------------------------------------------------------------------
    def _mine(self, trigger: int) -> bool:
        return trigger % len(self.s.builders) == self.s.index

    @property
    def journal_path(self) -> Path:
        """The list of event files this builder wrote: ``<setaside_dir>/built-<id>.jsonl``."""
        return self.s.setaside_dir / f"built-{self.s.builder_id}.jsonl"

    def _note_built(self, name: str, run: int, events: list[tuple[int, bool, bool]]) -> None:
        """Account one event file: its (trigger, stream 0 present, stream 1 present) events."""
        parsed = parse_l2_name(name)
        if parsed is not None:
            self.next_seq[run] = max(self.next_seq[run], parsed.seq + 1)
        c = self.counts[run]
        c.files += 1
        for trigger, p0, p1 in events:
            self.built[(run, trigger)] = (p0, p1)
            if p0 and p1:
                c.built += 1
            else:
                c.incomplete += 1
        self._journaled.add(name)

    def _journal(self, name: str, run: int, events: list[tuple[int, bool, bool]]) -> None:
        """Append one event file to the journal (synced): the restart's memory of what was built,
        which outlives the file itself (an archived file may be cleaned from the DAQ disk)."""
        line = json.dumps({"file": name, "run": run, "events": events}) + "\n"
        with open(self.journal_path, "a") as fh:
            fh.write(line)
            fh.flush()
            if self.s.fsync:
                os.fsync(fh.fileno())

    def _recover(self) -> None:
        """Rebuild the state from what was written: the journal, final event files, set-aside fragments."""
        me = self.s.builder_id
        if self.journal_path.exists():
            with open(self.journal_path) as fh:
                for line in fh:
                    try:
                        doc = json.loads(line)
                    except ValueError:
                        continue  # a line cut by a crash: its file is found in out_dir below
                    events = [(int(t), bool(a), bool(b)) for t, a, b in doc["events"]]
                    self._note_built(doc["file"], int(doc["run"]), events)
        for entry in os.scandir(self.s.out_dir):
            if entry.name.startswith(".") and entry.name.endswith(f"_{me}.dat.tmp"):
                os.unlink(entry.path)  # a file that never got its final name: rewritten
                log.info("%s: removed an unfinished event file", entry.path)
                continue
            name = parse_l2_name(entry.name)
            if name is None or name.builder != me or entry.name in self._journaled:
                continue
            try:  # renamed, but the crash came before its journal line
                with PDDPFile.open(entry.path, self.s.geometry) as f:
                    events = []
                    for i, e in enumerate(f.entries):
                        present = [True, True]
                        for k, (_pos, h) in enumerate(f.fragments[i]):
                            if h.placeholder:
                                present[k] = False
                        events.append((e.trigger_number, present[0], present[1]))
                    run = f.run
            except RawDataError as exc:
                self._alarm(f"an event file of this builder is unreadable, left alone: {exc}")
                continue
            self._journal(entry.name, run, events)
            self._note_built(entry.name, run, events)
        for entry in os.scandir(self.s.setaside_dir):
            m = _SETASIDE.fullmatch(entry.name)
            if m is None:
                continue
            run, trig, stream, reason, ident = m.groups()
            t = int(trig)
            if (t >= 0 and not self._mine(t)) or (t < 0 and self.s.index != 0):
                continue
            self.setaside_ids.add(ident)
            self.counts[int(run)].set_aside(reason)
            self.counts[int(run)].fragments_in[int(stream)] += 1

    # --- one pass --------------------------------------------------------------------------
    def step(self, drain: bool = False) -> None:
        """Read what the streams brought, pair, time out, set aside, write the files that are due."""
        frags, tails = self.tail.poll(drain=drain)
        for frag in frags:
            self._take(frag)
        for tail in tails:
            self._take_tail(tail)
        now = time.monotonic()
        for key in [
            k
            for k, p in self.pending.items()
            if drain or now - p.first_seen >= self.s.pair_timeout_s
        ]:
            p = self.pending.pop(key)
            self.ready[key[0]].append(_Ready(key[0], key[1], p.frags, now))
        for run in list(self.ready):
            self._write_due(run, drain)
        waiting: dict[int, int] = defaultdict(int)
        for (run, _t), p in self.pending.items():
            waiting[run] += sum(1 for f in p.frags if f is not None)
        for run, queue in self.ready.items():
            waiting[run] += sum(1 for r in queue for f in r.frags if f is not None)
        for run, c in self.counts.items():
            c.pending = waiting[run]
        self._status()
        self._record()

    def _take(self, f: FragRef) -> None:
        h = f.header
        if not self._mine(h.trigger_number):
            return
        if f.identity in self.setaside_ids:
            return  # counted at start from the set-aside file
        c = self.counts[f.file_run]
        c.fragments_in[f.stream] += 1
        c.bytes_in += h.size
        if h.run != f.file_run:
            self._set_aside(f, "mismatch", f"run {h.run} in a stream file of run {f.file_run}")
            return
        key = (f.file_run, h.trigger_number)
        if key in self.built:
            replay = (key[0], key[1], f.stream)
            if self.built[key][f.stream] and replay not in self._replayed:
                self._replayed.add(replay)  # already in an event file: read again after a restart
                return
            reason = "duplicate" if self.built[key][f.stream] else "late"
            self._set_aside(f, reason, f"trigger {h.trigger_number} already written")
            return
        waiting = self.pending.get(key)
        if waiting is None:
            for r in self.ready.get(key[0], []):
                if r.trigger == key[1]:
                    present = r.frags[f.stream] is not None
                    reason = "duplicate" if present else "late"
                    self._set_aside(f, reason, f"trigger {h.trigger_number} already closed")
                    return
            frags: list[FragRef | None] = [None, None]
            frags[f.stream] = f
            self.pending[key] = _Pending(frags, f.seen)
            return
        if waiting.frags[f.stream] is not None:
            self._set_aside(f, "duplicate", f"second fragment of trigger {h.trigger_number}")
            return
        other = waiting.frags[1 - f.stream]
        assert other is not None
        oh = other.header
        if (oh.event_number, oh.time_ns) != (h.event_number, h.time_ns):
            self._set_aside(
                f,
                "mismatch",
                f"event {h.event_number} at {h.time_ns} ns, its partner event {oh.event_number} "
                f"at {oh.time_ns} ns",
            )
            return
        waiting.frags[f.stream] = f
        del self.pending[key]
        self.ready[key[0]].append(_Ready(key[0], key[1], waiting.frags, time.monotonic()))

    def _take_tail(self, t: Tail) -> None:
        trigger = t.header.trigger_number if t.header is not None else -1
        if trigger >= 0 and not self._mine(trigger):
            return
        if trigger < 0 and self.s.index != 0:
            return
        if t.identity in self.setaside_ids:
            return
        c = self.counts[t.file_run]
        c.fragments_in[t.stream] += 1
        self._copy_aside(
            t.file_run, trigger, t.stream, t.reason, t.identity, t.path, t.offset, t.size
        )

    def _set_aside(self, f: FragRef, reason: str, why: str) -> None:
        self._copy_aside(
            f.file_run,
            f.header.trigger_number,
            f.stream,
            reason,
            f.identity,
            f.path,
            f.offset,
            f.header.size,
        )
        self._alarm(
            f"{reason} fragment {f.identity} (run {f.file_run}, stream {f.stream}) set aside: {why}"
        )

    def _copy_aside(
        self,
        run: int,
        trigger: int,
        stream: int,
        reason: str,
        ident: str,
        path: str,
        offset: int,
        size: int,
    ) -> None:
        name = f"{run}_{trigger}_{stream}_{reason}_{ident}.frag"
        final = self.s.setaside_dir / name
        tmp = self.s.setaside_dir / f".{name}.tmp"
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            copy_range(src.fileno(), dst.fileno(), offset, size)
            os.fsync(dst.fileno())
        os.replace(tmp, final)
        self.setaside_ids.add(ident)
        self.counts[run].set_aside(reason)
        if reason in ("truncated", "corrupt"):
            self._alarm(f"{reason} tail of {path} at byte {offset} ({size} bytes) set aside")

    def _alarm(self, message: str) -> None:
        log.warning("%s", message)
        self.alarms.append(message)

    # --- writing ---------------------------------------------------------------------------
    def _write_due(self, run: int, drain: bool) -> None:
        queue = self.ready[run]
        while queue:
            total = sum(r.size for r in queue)
            old = time.monotonic() - min(r.since for r in queue) >= self.s.flush_s
            if not (drain or old or total >= self.s.roll_bytes):
                return
            take: list[_Ready] = []
            size = 0
            for r in sorted(queue, key=lambda r: r.trigger):
                if take and size + r.size > self.s.roll_bytes:
                    break
                take.append(r)
                size += r.size
            self._write_file(run, take)
            ids = {id(r) for r in take}
            self.ready[run] = queue = [r for r in queue if id(r) not in ids]

    def _write_file(self, run: int, events: list[_Ready]) -> Path:
        name = L2Name(run, self.next_seq[run], self.s.builder_id)
        final = self.s.out_dir / name.filename
        tmp = self.s.out_dir / f".{name.filename}.tmp"
        if final.exists():
            raise FileExistsError(
                f"{final}: an event file of that name exists; refusing to overwrite"
            )
        cards_per_builder = pddp_channels.N_CHANNELS // pddp_channels.CHANNELS_PER_CARD // 2
        planned: list[list[Fragment]] = []
        for r in events:
            present = next(f for f in r.frags if f is not None)
            frags = []
            for f in r.frags:
                if f is None:
                    frags.append(
                        Fragment(present.header.placeholder_for(cards_per_builder), TRAILER)
                    )
                else:
                    h = f.header
                    if r.incomplete:
                        h = replace(h, dq_flag=h.dq_flag | DQ_EVENT_INCOMPLETE)
                    frags.append(
                        Fragment(h, source=f.path, body_offset=f.offset + FRAGMENT_HEADER_SIZE)
                    )
            planned.append(frags)
        if tmp.exists():
            tmp.unlink()
        write_pddp_file(
            tmp, run, planned, incomplete=[r.incomplete for r in events], fsync=self.s.fsync
        )
        self._verify(tmp, run, events)
        os.rename(tmp, final)
        if self.s.fsync:
            dirfd = os.open(self.s.out_dir, os.O_RDONLY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)
        written = [(r.trigger, r.frags[0] is not None, r.frags[1] is not None) for r in events]
        self._journal(final.name, run, written)
        self._note_built(final.name, run, written)
        for r in events:
            for k, f in enumerate(r.frags):
                if f is not None:
                    self._replayed.add((run, r.trigger, k))
        log.info("%s: %d events written", final, len(events))
        return final

    def _verify(self, path: Path, run: int, events: list[_Ready]) -> None:
        """Re-read the new file's structure; it must hold exactly the planned events."""
        with PDDPFile.open(path, self.s.geometry) as f:
            got = [(e.trigger_number, e.incomplete) for e in f.entries]
        want = [(r.trigger, r.incomplete) for r in events]
        if f.run != run or got != want:
            raise RawDataError(path, f"written file holds {got}, planned {want}")

    # --- status ----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {
            "builder": self.s.builder_id,
            "builders": list(self.s.builders),
            "time": time.time(),
            "runs": {str(run): asdict(c) for run, c in sorted(self.counts.items())},
            "alarms": self.alarms[-20:],
        }

    def _record(self) -> None:
        """Counts that changed into the bookkeeping; a database outage waits for the next pass."""
        if self.bk is None:
            return
        for run, c in self.counts.items():
            row = {k: v for k, v in asdict(c).items() if k != "fragments_in"}
            row["fragments_in0"], row["fragments_in1"] = c.fragments_in
            if self._recorded.get(run) == row:
                continue
            try:
                self.bk.record_evb_counts(run, self.s.builder_id, row)
            except Exception as exc:  # the daemon keeps building; the files are the truth
                log.warning("counts of run %d not recorded (again next pass): %s", run, exc)
                return
            self._recorded[run] = row

    def _status(self) -> None:
        if self.s.status_path is None:
            return
        tmp = self.s.status_path.with_name(f".{self.s.status_path.name}.tmp")
        tmp.write_text(json.dumps(self.status(), indent=1))
        os.replace(tmp, self.s.status_path)

    def drain(self) -> None:
        """Build everything there is now: tails truncated, lonely fragments incomplete."""
        self.step(drain=True)

    def run(
        self, should_stop: Callable[[], bool], tick_s: float = 0.5, heartbeat_s: float = 10.0
    ) -> None:
        """The daemon loop: wake on the streams' inotify events or every ``tick_s`` (timeouts);
        a heartbeat (``evb-<id>``) at most every ``heartbeat_s`` when it has a bookkeeping."""
        from farmtools.ingest.watcher import DirWatcher

        self.s.in_dir.mkdir(parents=True, exist_ok=True)
        watcher = DirWatcher(self.s.in_dir)
        watcher.start()
        heartbeat = Heartbeat(self.bk, f"evb-{self.s.builder_id}", heartbeat_s)
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(watcher.fileno(), selectors.EVENT_READ)
                while not should_stop():
                    try:
                        self.step()
                    except (OSError, RawDataError) as exc:
                        self._alarm(f"pass failed, retried: {exc}")
                    heartbeat.beat()
                    sel.select(timeout=tick_s)
                    watcher.read()
        finally:
            heartbeat.stop()
            watcher.close()
