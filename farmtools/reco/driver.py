"""Streams a raw file (or any source of events) through the reconstruction into a ROOT file.

The place in :mod:`farmtools.reco` that does the I/O: it reads events one at a time from
:class:`farmtools.rawdata.RawFile` (never the whole file; compressed payloads through the
faster :mod:`.decode`), calls the pure
:func:`~farmtools.reco.event.reconstruct_event`, and hands results to
:class:`~farmtools.reco.output.RecoWriter`.  May import rawdata, detector and the reco core.
"""

from __future__ import annotations

import functools
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from farmtools.detector import Geometry
from farmtools.rawdata import RawFile
from farmtools.rawdata.reader import ReadBuffers
from farmtools.reco.event import EventReco, reconstruct_event
from farmtools.reco.multicrp import finish_detector_event, reconstruct_crps
from farmtools.reco.output import RecoWriter

#: What reads one event's ADC array when called, in DAQ order (rows = DAQ channels, as the
#: payload holds them: no gather into view order, the signal step maps the rows): the driver
#: calls it on the thread that reconstructs the event, so decoding runs on the job's threads
#: too (the decoders and unpackers release the GIL).
AdcLoader = Callable[[], npt.NDArray[np.uint16]]

#: One event for the driver: the header fields of EVENT_COLUMNS and the view-order ADC array
#: (or its loader).
EventInput = tuple[dict[str, Any], npt.NDArray[np.uint16] | AdcLoader]


@dataclass
class RecoStats:
    """What one reconstruction did, for logs and the benchmark."""

    n_events: int = 0
    n_hits: int = 0
    n_tracks: int = 0
    seconds: float = 0.0
    #: CPU seconds of the whole process (all threads) over the same span.
    cpu_seconds: float = 0.0
    #: Events reconstructed at once.
    threads: int = 1
    #: CPU seconds per step: "read" (decoding, in the reader), the steps of
    #: reconstruct_event, and "write".
    timing: dict[str, float] = field(default_factory=dict)


#: Environment variables that say how many cores a batch job was given, in the order they are
#: trusted: the farm's job script (``[processing] cores``), the local pool's slot (set by
#: :mod:`farmtools.batch.local`), Slurm's
#: ``--cpus-per-task``, TORQUE/PBS's ``ppn``, and HTCondor's ``request_cpus`` (which HTCondor
#: exports as OMP_NUM_THREADS).
CORES_ENV: tuple[str, ...] = (
    "FARMTOOLS_THREADS",
    "FARMTOOLS_JOB_CPUS",
    "SLURM_CPUS_PER_TASK",
    "PBS_NUM_PPN",
    "OMP_NUM_THREADS",
)


def job_cores(environ: Mapping[str, str] | None = None) -> int:
    """Cores this job may use: the batch slot's size from the environment, else 1.

    Bounded by the CPUs the process may run on (its affinity mask), so a slot larger than the
    node never makes threads wait for one another.
    """
    env = os.environ if environ is None else environ
    cores = 1
    for name in CORES_ENV:
        value = env.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            cores = int(value)
            break
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        available = os.cpu_count() or 1
    return max(1, min(cores, available))


def reconstruct_stream(
    events: Iterable[EventInput],
    out_path: str | os.PathLike[str],
    geometry: Geometry,
    progress: Callable[[int], None] | None = None,
    threads: int = 1,
) -> RecoStats:
    """Reconstruct ``events`` and write them, in their order, to ``out_path``.

    A detector of several CRPs (the 6x6x6) is reconstructed one event at a time, the event's
    CRPs on ``threads`` threads (an event is 115 MB: several at once would cost memory for
    nothing), its tracks timed with the LRO segments the header carries as ``lro``; with
    ``threads`` > 1 that serial tail (joining, flashes, t0, write: ~0.15 s CPU) runs on a
    thread of its own, in event order, while the next event's CRPs run on the pool.
    With ``threads`` > 1, up to ``threads`` 3x1x1 events are read (decoded: an event given as a
    loader is loaded on the thread that reconstructs it) and reconstructed at once on a thread
    pool (the numba kernels and decoders release the GIL) while this thread writes the
    finished ones in order; each event's reconstruction is the same function of its ADC
    array, so the file is the same whatever ``threads`` is.  The output is written to
    ``<out>.part`` and renamed when complete, so a crash never leaves a ROOT file that looks
    finished.  ``timing`` holds CPU seconds per step (each step's own thread's CPU time).
    """
    stats = RecoStats(threads=threads)
    out = os.fspath(out_path)
    part = out + ".part"
    t_all = time.perf_counter()
    c_all = time.process_time()
    pool = ThreadPoolExecutor(threads, thread_name_prefix="reco") if threads > 1 else None
    pending: deque[tuple[dict[str, Any], Future[tuple[EventReco, float]]]] = deque()
    # the 6x6x6's serial tail of each event, one at a time in order (the writer is not shared)
    tail = (
        ThreadPoolExecutor(1, thread_name_prefix="reco-tail")
        if pool is not None and geometry.n_crps > 1
        else None
    )
    tails: deque[Future[tuple[EventReco, float]]] = deque()

    def add(timing: dict[str, float], key: str, seconds: float) -> None:
        timing[key] = timing.get(key, 0.0) + seconds

    def write(writer: RecoWriter, header: dict[str, Any], reco: EventReco) -> float:
        """Add ``reco`` to the output; the CPU seconds it took (on the calling thread)."""
        t_w = time.thread_time()
        writer.add(header, reco)
        return time.thread_time() - t_w

    def finish(
        writer: RecoWriter, header: dict[str, Any], reco: EventReco, read_cpu: float
    ) -> None:
        add(stats.timing, "read", read_cpu)
        account(reco, write(writer, header, reco))

    def detector_tail(
        writer: RecoWriter, header: dict[str, Any], parts: list[EventReco]
    ) -> tuple[EventReco, float]:
        reco = finish_detector_event(parts, geometry, header.get("lro", []))
        return reco, write(writer, header, reco)

    def account(reco: EventReco, write_cpu: float) -> None:
        add(stats.timing, "write", write_cpu)
        for k, v in reco.timing.items():
            add(stats.timing, k, v)
        stats.n_events += 1
        stats.n_hits += reco.n_hits
        stats.n_tracks += reco.n_tracks
        if progress is not None:
            progress(stats.n_events)

    it = iter(events)
    try:
        with RecoWriter(part, geometry.n_channels) as writer, _shut_down_first(tail):
            while True:
                t_read = time.thread_time()
                item = next(it, None)
                t_read = time.thread_time() - t_read
                if item is None:
                    add(stats.timing, "read", t_read)
                    break
                header, source = item
                # a prefetched read ran on another thread: its own CPU, not this wait
                add(stats.timing, "read", header.get("read_cpu", t_read))
                if geometry.n_crps > 1:  # one event at a time, its CRPs on the pool
                    adc, t_load = _load(source, geometry)
                    add(stats.timing, "read", t_load)
                    parts = reconstruct_crps(adc, geometry, pool)  # adc free again after it
                    if tail is None:
                        lro = header.get("lro", [])
                        finish(writer, header, finish_detector_event(parts, geometry, lro), 0.0)
                        continue
                    tails.append(tail.submit(detector_tail, writer, header, parts))
                    while len(tails) > 1 or (tails and tails[0].done()):  # one event behind
                        account(*tails.popleft().result())
                    continue
                if pool is None:
                    finish(writer, header, *_load_and_reconstruct(source, geometry))
                    continue
                # the load too runs on the pool: decoding overlaps the other events' signal step
                pending.append((header, pool.submit(_load_and_reconstruct, source, geometry)))
                while len(pending) >= threads or (pending and pending[0][1].done()):
                    done_header, future = pending.popleft()
                    finish(writer, done_header, *future.result())
            while pending:
                done_header, future = pending.popleft()
                finish(writer, done_header, *future.result())
            while tails:
                account(*tails.popleft().result())
            t_w = time.thread_time()
        add(stats.timing, "write", time.thread_time() - t_w)
        os.replace(part, out)
    except BaseException:
        for _header, future in pending:
            future.cancel()
        for pending_tail in tails:
            pending_tail.cancel()
        if os.path.exists(part):
            os.unlink(part)
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        close = getattr(it, "close", None)  # the file, once no thread can read it any more
        if close is not None:
            close()
    stats.seconds = time.perf_counter() - t_all
    stats.cpu_seconds = time.process_time() - c_all
    return stats


def _load(
    source: npt.NDArray[np.uint16] | AdcLoader, geometry: Geometry
) -> tuple[npt.NDArray[np.uint16], float]:
    """The event's view-order ADC array (read now if ``source`` is a loader) and the CPU
    seconds of that read on the calling thread (for the 6x6x6, one event at a time)."""
    if not callable(source):
        return source, 0.0
    c0 = time.thread_time()
    adc = source()[geometry.view_to_daq]
    return adc, time.thread_time() - c0


def _load_and_reconstruct(
    source: npt.NDArray[np.uint16] | AdcLoader, geometry: Geometry
) -> tuple[EventReco, float]:
    """Read (if need be) and reconstruct one event on the calling thread: (its result, the
    read's CPU seconds).  A loader's array is reused by this thread's next load, so the
    reconstruction must be done with it first, as here."""
    if not callable(source):
        return reconstruct_event(source, geometry), 0.0
    c0 = time.thread_time()
    adc = source()
    read_cpu = time.thread_time() - c0
    return reconstruct_event(adc, geometry, daq_order=True), read_cpu


@contextmanager
def _shut_down_first(executor: ThreadPoolExecutor | None) -> Iterator[None]:
    """Leaving the block waits for ``executor``'s running task and cancels the queued ones,
    so that nothing writes to the output after the writer closes (it closes after this)."""
    try:
        yield
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def input_geometry(path: str | os.PathLike[str], geometry: Geometry) -> Geometry:
    """The geometry to read ``path`` with: a 6x6x6 file (by name or content) is read as a 6x6x6
    even when the configuration names the 3x1x1 (a farm handles both kinds of files)."""
    from farmtools.detector import geometry as by_name
    from farmtools.rawdata.sniff import raw_format

    if geometry.channel_map != "pddp" and raw_format(path) == "pddp":
        return by_name("6x6x6")
    return geometry


def pddp_events(
    path: str | os.PathLike[str], geometry: Geometry, prefetch: bool = True
) -> tuple[int, Iterator[EventInput]]:
    """(events, lazy iterator of driver inputs) of a 6x6x6 file; the header carries ``lro``.

    With ``prefetch``, a second reader unpacks event i + 1 on a thread of its own while event
    i is reconstructed (each reader reuses one 115 MB + 154 MB buffer, so the two alternate):
    the read then fills the core the serial steps (t0, write) leave idle.  The header's
    ``read_cpu`` is the CPU seconds of its read, wherever it ran.
    """
    from farmtools.rawdata.pddp_reader import DPEvent, PDDPFile

    first = PDDPFile.open(path, geometry)
    n = first.n_events
    readers = [first]
    if prefetch and n > 1:
        readers.append(PDDPFile.open(path, geometry))

    def read(i: int) -> tuple[DPEvent, float]:
        c0 = time.thread_time()
        ev = readers[i % len(readers)].event(i)  # RawDataError names file, event, offset
        return ev, time.thread_time() - c0

    def header(i: int, ev: DPEvent, cpu: float) -> dict[str, Any]:
        h = ev.fragments[0]
        return {
            "event": i,
            "run": h.run,
            "event_number": h.event_number,
            "trigger_number": h.trigger_number,
            "trigger_type": h.trigger_type,
            "seconds": h.seconds,
            "nanoseconds": h.nanoseconds,
            "trigger_time": h.time_ns * 1e-9,
            "dq_flag": h.dq_flag,
            "compressed": h.compressed,
            "bad_cards": sum(f.missing_cards for f in ev.fragments),
            "offset": ev.offset,
            "lro": ev.lro,
            "read_cpu": cpu,
        }

    def gen() -> Iterator[EventInput]:
        pool = ThreadPoolExecutor(1, thread_name_prefix="read") if len(readers) > 1 else None
        try:
            ahead: Future[tuple[DPEvent, float]] | None = None
            for i in range(n):
                ev, cpu = ahead.result() if ahead is not None else read(i)
                ahead = pool.submit(read, i + 1) if pool is not None and i + 1 < n else None
                yield header(i, ev, cpu), ev.adc
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            for r in readers:
                r.close()

    return n, gen()


def raw_events(
    path: str | os.PathLike[str], geometry: Geometry
) -> tuple[int, Iterator[EventInput]]:
    """(number of events, lazy iterator of driver inputs) of a raw file, via the rawdata reader."""
    from farmtools.rawdata.naming import parse_raw_name

    if geometry.channel_map == "pddp":
        return pddp_events(path, geometry)

    name = parse_raw_name(path)
    run_hint = name.run if name is not None else -1
    raw = RawFile.open(path, geometry)
    run = int(getattr(raw, "run", run_hint))
    scratch = threading.local()  # each reading thread's own buffers and output array

    def load(i: int) -> npt.NDArray[np.uint16]:
        """Event ``i``'s DAQ-order array, in the calling thread's own buffer (valid until
        that thread loads its next event: the driver reconstructs it before then)."""
        if not hasattr(scratch, "adc"):
            scratch.buffers = ReadBuffers(geometry)
            scratch.adc = np.empty((geometry.n_channels, geometry.samples), dtype=np.uint16)
        # one thread per event: the driver's threads are its cores, so decode on one
        return raw.read_adc(i, scratch.adc, scratch.buffers, threads=1, daq_order=True)

    def item(i: int) -> EventInput:
        h = raw.headers[i]
        header = {
            "event": i,
            "run": run,
            "event_number": h.event_number,
            "trigger_number": h.trigger_number,
            "trigger_type": h.trigger_type,
            "seconds": h.seconds,
            "nanoseconds": h.nanoseconds,
            "trigger_time": h.time,
            "dq_flag": h.dq_flag,
            "compressed": h.compressed,
            "bad_cards": h.bad_cards,
            "offset": raw.event_offsets[i],
        }
        # RawDataError (file, event, offset) comes from the load, where it runs
        return header, functools.partial(load, i)

    return int(raw.n_events), _Loaders(raw.n_events, item, raw.close)


class _Loaders(Iterator[EventInput]):
    """The events of an open file as loaders, the file closed by :meth:`close` (which
    :func:`reconstruct_stream` calls once its threads are done), or when garbage-collected.

    Not a generator: a generator's ``finally`` runs when the last event is taken, while the
    threads may still be loading the last few from the file.
    """

    def __init__(self, n: int, item: Callable[[int], EventInput], close: Callable[[], None]):
        self._n = n
        self._next = 0
        self._item = item
        self._finalizer = weakref.finalize(self, close)

    def __next__(self) -> EventInput:
        if self._next >= self._n:
            raise StopIteration
        self._next += 1
        return self._item(self._next - 1)

    def close(self) -> None:
        self._finalizer()


def reconstruct_file(
    raw_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    geometry: Geometry,
    progress: Callable[[int], None] | None = None,
    threads: int = 1,
) -> RecoStats:
    """Reconstruct a raw file into ``out_path``; bad input raises RawDataError (file, event, offset).

    ``threads``: events reconstructed at once (see :func:`reconstruct_stream`).
    """
    geometry = input_geometry(raw_path, geometry)
    _n, events = raw_events(raw_path, geometry)
    return reconstruct_stream(events, out_path, geometry, progress, threads)
