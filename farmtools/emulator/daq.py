"""Writing raw files as the DAQ did: ``run<N>-seq<M>.dat`` created in place, event by event.

:func:`emulate_run` is the API of ``farmtools daq emulate`` and of the data challenge.  For each
file it waits for the file's slot in the schedule (file ``k`` of this call starts at
``start + k * interval_s``; a file that takes longer than the interval delays the next one,
nothing is skipped), creates the file under its final name (the watcher must cope with a file
that is visible while it grows), writes and flushes each event, writes the truth sidecar, and
closes the file (footer).  Sequence numbers start at 0, or after the highest existing sequence
of the run in the directory; trigger and event numbers and trigger times continue from the last
file of the run.  An existing file is never overwritten.

The trigger time of an event is the clock when it was generated (wall clock by default), made
strictly increasing.  Trigger and event numbers are equal and count from 0 over the run.

Template mode (:func:`copy_template`) re-writes one existing raw file under new names at the
same rate, rewriting only the run number of the run header: events, their trigger numbers and
times are copied as they are (for throughput tests where physics is not needed).

Random numbers: the run's master ``seed`` with the run number and the first sequence of this
call seed the generator (``default_rng([seed, run, first_seq])``), so a command repeated on the
same directory state reproduces its files exactly.

May import :mod:`farmtools.detector`, :mod:`farmtools.rawdata` and the emulator modules.
(`RawFileWriter`/`RawFile`/`RawDataError` come from the package root of :mod:`farmtools.rawdata`.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from farmtools.detector import WA105_3X1X1, Geometry
from farmtools.emulator.settings import EmulatorSettings
from farmtools.emulator.truth import injected, read_truth, write_truth
from farmtools.rawdata import RawDataError, RawFile, RawFileWriter
from farmtools.rawdata.format import RUN_HEADER, RUN_HEADER_SIZE, EventHeader, TriggerType
from farmtools.rawdata.naming import RawName, parse_raw_name

#: Called after each event is on disk: (path of the file being written, events in it so far).
EventHook = Callable[[Path, int], None]


@dataclass(frozen=True)
class RunPlan:
    """How many files of how many events, how often, and compressed or not."""

    run: int
    files: int = 1
    events_per_file: int = 335
    interval_s: float = 0.0
    compress: bool = False

    def check(self) -> None:
        if self.run < 0 or self.run > 0xFFFFFFFF:
            raise ValueError(f"run number must be within 0..4294967295 (got {self.run})")
        if self.files < 1:
            raise ValueError(f"files must be >= 1 (got {self.files})")
        if not 1 <= self.events_per_file <= 0xFFFF:
            raise ValueError(
                f"events per file must be within 1..65535 (got {self.events_per_file})"
            )
        if self.interval_s < 0:
            raise ValueError(f"interval must be >= 0 s (got {self.interval_s})")


@dataclass
class EmulatedFile:
    """What one written file is, and when it was scheduled, started and closed (clock seconds)."""

    path: Path
    run: int
    seq: int
    events: int = 0
    first_trigger: int = 0
    last_trigger: int = -1
    scheduled_s: float = 0.0
    started_s: float = 0.0
    closed_s: float = 0.0
    size: int = 0
    truth: Path | None = None


@dataclass
class RunState:
    """Where a run stands in a directory: next sequence, next trigger number, last trigger time."""

    next_seq: int = 0
    next_trigger: int = 0
    last_time_ns: int = 0
    notes: list[str] = field(default_factory=list)


def run_files(out_dir: Path, run: int) -> list[tuple[int, Path]]:
    """(seq, path) of the run's raw files in ``out_dir``, in sequence order."""
    found = []
    if out_dir.is_dir():
        for entry in out_dir.iterdir():
            name = parse_raw_name(entry.name)
            if name is not None and name.run == run and not name.pddp:
                found.append((name.seq, entry))
    return sorted(found)


def run_state(out_dir: Path, run: int, geometry: Geometry = WA105_3X1X1) -> RunState:
    """Continue a run: the highest sequence + 1, and the trigger count of its newest readable file.

    The sidecar is read first (cheap); otherwise the file's event headers; a file that cannot
    be read (e.g. a crashed writer left it without footer) is passed over with a note.
    """
    files = run_files(out_dir, run)
    state = RunState(next_seq=files[-1][0] + 1 if files else 0)
    for _seq, path in reversed(files):
        doc = read_truth(path)
        if doc is not None and "last_trigger_number" in doc:
            state.next_trigger = int(doc["last_trigger_number"]) + 1
            state.last_time_ns = int(doc.get("last_time_ns", 0))
            return state
        try:
            headers = _headers(path, geometry)
        except RawDataError as exc:
            state.notes.append(
                f"{path.name} is unreadable, trigger numbers continue from an older file: {exc}"
            )
            continue
        if headers:
            last = headers[-1]
            state.next_trigger = last.trigger_number + 1
            state.last_time_ns = last.seconds * 1_000_000_000 + last.nanoseconds
            return state
    return state


def _headers(path: Path, geometry: Geometry) -> list[EventHeader]:
    raw = RawFile.open(path, geometry)
    try:
        return list(raw.headers)
    finally:
        with contextlib.suppress(Exception):
            raw.close()


def _new_seed() -> int:
    return int(np.random.SeedSequence().entropy) % (1 << 63)  # type: ignore[arg-type]


def _paced(
    plan: RunPlan,
    first_seq: int,
    start: float,
    should_stop: Callable[[], bool] | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> Iterator[tuple[float, RawName]]:
    """Yield (scheduled start, name) of each file of ``plan``, sleeping until its slot.

    Slots are fixed on ``start + k * interval`` (not "interval after the previous file"), so a slow
    file does not shift the rate of the whole run, as the DAQ's own cadence would not.
    """
    for k in range(plan.files):
        if should_stop is not None and should_stop():
            return
        scheduled = start + k * plan.interval_s
        wait = scheduled - clock()
        if wait > 0:
            sleep(wait)
        yield scheduled, RawName(plan.run, first_seq + k)


def emulate_run(
    out_dir: str | os.PathLike[str],
    settings: EmulatorSettings,
    plan: RunPlan,
    *,
    geometry: Geometry = WA105_3X1X1,
    on_event: EventHook | None = None,
    on_file: Callable[[EmulatedFile], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> list[EmulatedFile]:
    """Emulate ``plan.files`` raw files of physics events into ``out_dir``; see the module doc.

    ``should_stop`` is asked after every event: when it says yes, the current file is closed
    properly (with the events written so far, sidecar and footer) and no further file starts.
    """
    from farmtools.emulator.event import EventGenerator

    plan.check()
    settings.check(geometry)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = run_state(out, plan.run, geometry)
    seed = settings.seed if settings.seed is not None else _new_seed()
    rng = np.random.default_rng([seed, plan.run, state.next_seq])
    gen = EventGenerator(geometry, settings, rng)
    inject = injected(settings, geometry) | {"seed": seed}
    trigger = state.next_trigger
    last_ns = state.last_time_ns
    written: list[EmulatedFile] = []
    start = clock()
    for scheduled, name in _paced(plan, state.next_seq, start, should_stop, clock, sleep):
        path = out / name.filename
        if path.exists():
            raise FileExistsError(f"{path}: refusing to overwrite an existing raw file")
        info = EmulatedFile(
            path,
            plan.run,
            name.seq,
            first_trigger=trigger,
            scheduled_s=scheduled,
            started_s=clock(),
        )
        events_truth: list[dict[str, object]] = []
        with RawFileWriter(path, plan.run, geometry=geometry, compress=plan.compress) as writer:
            try:
                for i in range(plan.events_per_file):
                    adc, truth = gen.next_event()
                    now_ns = max(int(clock() * 1e9), last_ns + 1)
                    last_ns = now_ns
                    seconds, nanos = divmod(now_ns, 1_000_000_000)
                    writer.write_event(
                        adc,
                        trigger_number=trigger,
                        seconds=seconds,
                        nanoseconds=nanos,
                        trigger_type=TriggerType.CRT if truth.crt else TriggerType.PMT,
                        bad_cards=truth.bad_cards,
                        event_number=trigger,
                    )
                    writer.flush()
                    events_truth.append(
                        {
                            "index": i,
                            "trigger_number": trigger,
                            "event_number": trigger,
                            "seconds": seconds,
                            "nanoseconds": nanos,
                            **truth.to_json(),
                        }
                    )
                    info.events = i + 1
                    info.last_trigger = trigger
                    trigger += 1
                    if on_event is not None:
                        on_event(path, i + 1)
                    if should_stop is not None and should_stop():
                        break
            finally:
                info.truth = write_truth(
                    path,
                    {
                        "mode": "physics",
                        "file": path.name,
                        "run": plan.run,
                        "seq": name.seq,
                        "geometry": geometry.name,
                        "seed": seed,
                        "compressed": plan.compress,
                        "injected": inject,
                        "events": events_truth,
                        "last_trigger_number": trigger - 1,
                        "last_time_ns": last_ns,
                    },
                )
        info.closed_s = clock()
        info.size = path.stat().st_size
        written.append(info)
        if on_file is not None:
            on_file(info)
        if should_stop is not None and should_stop():
            break
    return written


def copy_template(
    template: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    plan: RunPlan,
    *,
    geometry: Geometry = WA105_3X1X1,
    on_file: Callable[[EmulatedFile], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    chunk_bytes: int = 4 << 20,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> list[EmulatedFile]:
    """Re-write copies of one valid raw file as ``run<plan.run>-seq<M>.dat`` at the plan's rate.

    The template is validated first (a bad template is a :class:`RawDataError` naming it);
    each copy is created in place and written in chunks, flushing as it grows.
    """
    plan.check()
    src = Path(template)
    raw = RawFile.open(src, geometry)
    try:
        raw.validate()
        n_events = raw.n_events
    finally:
        with contextlib.suppress(Exception):
            raw.close()
    with src.open("rb") as f:
        _run, flags = RUN_HEADER.unpack(f.read(RUN_HEADER_SIZE))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = run_state(out, plan.run, geometry)
    written: list[EmulatedFile] = []
    start = clock()
    for scheduled, name in _paced(plan, state.next_seq, start, should_stop, clock, sleep):
        path = out / name.filename
        info = EmulatedFile(
            path, plan.run, name.seq, events=n_events, scheduled_s=scheduled, started_s=clock()
        )
        with src.open("rb") as fin, path.open("xb") as fout:
            fin.seek(RUN_HEADER_SIZE)
            fout.write(RUN_HEADER.pack(plan.run, flags))
            while chunk := fin.read(chunk_bytes):
                fout.write(chunk)
                fout.flush()
            info.truth = write_truth(
                path,
                {
                    "mode": "template",
                    "file": path.name,
                    "run": plan.run,
                    "seq": name.seq,
                    "geometry": geometry.name,
                    "template": str(src.resolve()),
                    "events_in_file": n_events,
                },
            )
        info.closed_s = clock()
        info.size = path.stat().st_size
        written.append(info)
        if on_file is not None:
            on_file(info)
    return written


def _events_in(path: Path, geometry: Geometry) -> int | None:
    """Events of a closed raw file: its truth sidecar's count, else its event headers."""
    doc = read_truth(path)
    if doc is not None:
        if isinstance(doc.get("events"), list):
            return len(doc["events"])
        if isinstance(doc.get("events_in_file"), int):
            return int(doc["events_in_file"])
    try:
        return len(_headers(path, geometry))
    except RawDataError:
        return None


def end_run(
    out_dir: str | os.PathLike[str],
    run: int,
    *,
    geometry: Geometry = WA105_3X1X1,
    checksum: bool = True,
) -> Path:
    """Write the run's end-of-run record (:mod:`farmtools.rawdata.endofrun`) into ``out_dir``.

    It lists every raw file of the run in the directory (also those of earlier calls that the
    run continued), with size, adler32 (``checksum``) and events; the DAQ's word that the run is
    over, after its last file is closed.
    """
    from farmtools.rawdata.endofrun import describe_file, write_end_of_run

    out = Path(out_dir)
    entries = [
        describe_file(path, seq, _events_in(path, geometry), checksum=checksum)
        for seq, path in run_files(out, run)
    ]
    return write_end_of_run(out, run, entries)


def disk_free_bytes(path: str | os.PathLike[str]) -> int:
    """Free bytes where ``path`` lives (the CLI warns before filling a disk)."""
    return shutil.disk_usage(path).free
