"""L2 event building: throughput beside ``cat``, two builders, reading one 6x6x6 event, a replay.

Prints, all in one process so that the machine's load hits baseline and measurement alike:
  * ``cat`` of the two L1 streams into one file (then fsync: the builder syncs what it writes),
    and one L2 builder building the same streams into event files (GB/s of input fragments,
    uncompressed 12-bit), with the ratio;
  * two builders (ids a, b) sharing the triggers, in two processes, wall time for the same input;
  * reading one full 6x6x6 event (115 MB) from a built file: GB/s of event bytes, and the peak
    of the Python/numpy allocations during the read beside the event's size;
  * a scaled-down replay: the emulator writes the two streams at a set rate with faults while a
    builder follows them; every fragment is accounted (built + incomplete + set aside = emitted),
    the events counted from the event tables of the files written (each trigger once).
Targets (issue 14): building >= 1 GB/s on one core and close to ``cat``; reading >= 1 GB/s with
peak memory near one event; a 20-minute stream at 100 Hz (120,000 triggers) replayed.

``--tmpfs`` works in /dev/shm: no disk under ``cat`` or the builder, so both show what the CPU and
memory give (fsync is a no-op there).  The 20-minute replay, scaled to this machine (2 samples per
channel, as fast as it goes, built files deleted once counted):
``--tmpfs --skip-throughput --replay-events 120000 --replay-rate 0 --replay-samples 2
--replay-per-file 2000 --replay-pair-timeout 20``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import threading
import time
import tracemalloc
from multiprocessing import Process
from pathlib import Path

from farmtools.detector import Geometry, geometry
from farmtools.emulator.l1streams import Faults, L1Plan, emulate_l1_run
from farmtools.evb.builder import BuilderSettings, L2Builder
from farmtools.rawdata.pddp_reader import PDDPFile


def _settings(
    tmp: Path,
    geo_name: str,
    out: str,
    bid: str = "a",
    ids: tuple[str, ...] = ("a",),
    fsync: bool = True,
) -> BuilderSettings:
    return BuilderSettings(
        fsync=fsync,
        in_dir=tmp / "l1",
        out_dir=tmp / out,
        setaside_dir=tmp / f"{out}-aside",
        geometry=geometry(geo_name),
        builder_id=bid,
        builders=ids,
        roll_bytes=3_000_000_000,
    )


def _build(
    tmp: Path, geo_name: str, out: str, bid: str, ids: tuple[str, ...], fsync: bool = True
) -> None:
    L2Builder(_settings(tmp, geo_name, out, bid, ids, fsync)).drain()


class _Clock:
    """Wall time and CPU time (this process and its children: ``cat``, the builder processes)
    of one step.  On a loaded machine a step gets a fraction of a core: GB per CPU second is
    the one-core figure, wall-clock GB/s what the machine gave."""

    def __enter__(self) -> _Clock:
        self._t, self._c = time.perf_counter(), self._cpu()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.wall = time.perf_counter() - self._t
        self.cpu = self._cpu() - self._c

    @staticmethod
    def _cpu() -> float:
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + kids.ru_utime + kids.ru_stime

    def line(self, label: str, gb: float, extra: str = "") -> str:
        return (
            f"{label:22s}: {gb / self.wall:6.2f} GB/s wall ({self.wall:.2f} s), "
            f"{gb / max(self.cpu, 1e-9):6.2f} GB per CPU s ({self.cpu:.2f} s){extra}"
        )


def _timed_build(tmp: Path, out: str, fsync: bool) -> _Clock:
    os.sync()  # start clean: dirty pages of the step before would throttle this one's writes
    with _Clock() as c:
        _build(tmp, "6x6x6", out, "a", ("a",), fsync)
    return c


def _cat(tmp: Path, fsync: bool) -> _Clock:
    streams = sorted(str(p) for p in (tmp / "l1").glob("*.frag"))
    (tmp / "cat.out").unlink(missing_ok=True)
    os.sync()
    with _Clock() as c, open(tmp / "cat.out", "wb") as out:
        subprocess.run(["cat", *streams], stdout=out, check=True)
        if fsync:
            os.fsync(out.fileno())
    return c


def throughput(tmp: Path, events: int) -> None:
    emulate_l1_run(
        tmp / "l1",
        geometry("6x6x6"),
        L1Plan(run=1, events=events, fragments_per_file=50, physics=False),
    )
    size = sum(p.stat().st_size for p in (tmp / "l1").glob("*.frag"))
    _cat(tmp, False)  # warm the page cache for both
    cat_mem = _cat(tmp, False)
    one_mem = _timed_build(tmp, "l2-mem", fsync=False)
    shutil.rmtree(tmp / "l2-mem")
    cat = _cat(tmp, True)
    one = _timed_build(tmp, "l2-one", fsync=True)
    os.sync()
    with _Clock() as two:
        procs = [Process(target=_build, args=(tmp, "6x6x6", "l2-two", b, ("a", "b"))) for b in "ab"]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
    gb = size / 1e9

    def ratio(base: _Clock, step: _Clock) -> str:
        return f"; ratio to cat: wall {base.wall / step.wall:.2f}, CPU {base.cpu / step.cpu:.2f}"

    print(f"input: {events} events, two L1 streams, {gb:.2f} GB of fragments")
    print(cat_mem.line("cat (page cache)", gb))
    print(one_mem.line("L2 build, no sync", gb, ratio(cat_mem, one_mem)))
    print(cat.line("cat + fsync", gb))
    print(one.line("L2 build, 1 builder", gb, ratio(cat, one)))
    print(two.line("L2 build, 2 builders", gb, f"; wall scaling x{one.wall / two.wall:.2f}"))
    shutil.rmtree(tmp / "l2-two")
    (tmp / "cat.out").unlink()

    built = sorted((tmp / "l2-one").glob("*.dat"))[0]
    with PDDPFile.open(built) as f:
        tracemalloc.start()
        f.event(0)  # buffers allocated, numba compiled, file cached
        _cur, first_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        f.event_daq(0)
        nbytes = f.entries[1 % f.n_events].size
        # Interleaved, best of five each: a load burst hits both orders alike.
        view: list[_Clock] = []
        daq: list[_Clock] = []
        for _ in range(5):
            with _Clock() as c:
                f.event(1 % f.n_events)
            view.append(c)
            with _Clock() as c:
                f.event_daq(1 % f.n_events)
            daq.append(c)
    gb = nbytes / 1e9
    t_view, t_daq = min(c.wall for c in view), min(c.wall for c in daq)
    c_view, c_daq = min(c.cpu for c in view), min(c.cpu for c in daq)
    print(
        f"read one event ({nbytes / 1e6:.0f} MB): view order {gb / t_view:.2f} GB/s wall "
        f"({t_view * 1e3:.0f} ms), {gb / c_view:.2f} GB per CPU s; DAQ order {gb / t_daq:.2f} GB/s "
        f"wall, {gb / c_daq:.2f} GB per CPU s; peak allocation {first_peak / 1e6:.0f} MB for the "
        "first event (its bytes + its samples), buffers reused after"
    )


def _count_and_remove(out: Path, geo: Geometry, seen: set[int]) -> tuple[int, int]:
    """Events and incomplete events of the final files in ``out``, their triggers added to
    ``seen`` (a trigger twice is an error); the files are deleted once read (space: a long
    replay writes as much as it reads)."""
    events = incomplete = 0
    for path in sorted(out.glob("*.dat")):
        with PDDPFile.open(path, geo) as f:
            for e in f.entries:
                if e.trigger_number in seen:
                    raise SystemExit(f"trigger {e.trigger_number} written twice ({path.name})")
                seen.add(e.trigger_number)
                events += 1
                incomplete += int(e.incomplete)
        path.unlink()
    return events, incomplete


def replay(
    tmp: Path,
    events: int,
    rate: float,
    samples: int,
    per_file: int = 200,
    pair_timeout_s: float = 2.0,
) -> None:
    name = f"6x6x6:{samples}"
    faults = Faults(
        missing=((1, 17),),
        duplicate=((0, 40),),
        run_mismatch=((1, 77),),
        out_of_order=((0, 90),),
        truncated=((1, 3),),
    )
    plan = L1Plan(
        run=2,
        events=events,
        fragments_per_file=per_file,
        physics=False,
        rate_hz=rate,
        faults=faults,
    )
    result: dict[str, object] = {}
    writer = threading.Thread(
        target=lambda: result.update(emulate_l1_run(tmp / "replay-l1", geometry(name), plan)),
        daemon=True,
    )
    s = BuilderSettings(
        in_dir=tmp / "replay-l1",
        out_dir=tmp / "replay-l2",
        setaside_dir=tmp / "replay-aside",
        geometry=geometry(name),
        pair_timeout_s=pair_timeout_s,
        roll_bytes=per_file * 2 * geometry(name).fragment_bytes,
        flush_s=1.0,
        fsync=False,
    )
    builder = L2Builder(s)
    seen: set[int] = set()
    in_files = n_incomplete = 0
    t = time.perf_counter()
    writer.start()
    while writer.is_alive():
        builder.step()
        n, k = _count_and_remove(s.out_dir, s.geometry, seen)
        in_files, n_incomplete = in_files + n, n_incomplete + k
        time.sleep(0.05)
    builder.drain()
    n, k = _count_and_remove(s.out_dir, s.geometry, seen)
    in_files, n_incomplete = in_files + n, n_incomplete + k
    wall = time.perf_counter() - t
    c = builder.counts[2]
    emitted = result["emitted"]
    assert isinstance(emitted, list)
    aside = c.duplicates + c.mismatches + c.late + c.truncated + c.corrupt
    accounted = 2 * c.built + c.incomplete + aside
    asked = f"{rate:.0f} Hz asked" if rate > 0 else "as fast as it goes"
    print(
        f"replay: {events} triggers ({events / 100 / 60:.1f} min at 100 Hz), {samples} samples, "
        f"{asked}: {wall:.1f} s = {events / wall:.0f} Hz; emitted {sum(emitted)} fragments; "
        f"built {c.built} events, incomplete {c.incomplete}, set aside {aside} (late {c.late}) "
        f"-> {accounted} "
        f"accounted, {sum(emitted) - accounted} lost; expected {result['expected']}"
    )
    print(
        f"replay, from the event tables of the files written: {in_files} events "
        f"({n_incomplete} incomplete), {len(seen)} distinct triggers, "
        f"{c.built + c.incomplete - in_files} counted but not in a file"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=8, help="full-size events for the throughput")
    ap.add_argument("--replay-events", type=int, default=3000)
    ap.add_argument("--replay-samples", type=int, default=20)
    ap.add_argument("--replay-per-file", type=int, default=200, help="fragments per L1 file")
    ap.add_argument(
        "--replay-pair-timeout",
        type=float,
        default=2.0,
        help="evb.pair_timeout_s of the replay's builder (it shares the GIL with the emulator)",
    )
    ap.add_argument(
        "--replay-rate", type=float, default=300.0, help="triggers/s; 0: as fast as it goes"
    )
    ap.add_argument(
        "--dir", type=Path, default=None, help="work directory (default: a temporary one)"
    )
    ap.add_argument(
        "--tmpfs", action="store_true", help="work in /dev/shm: CPU and memory, no disk"
    )
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-replay", action="store_true")
    args = ap.parse_args()
    where = Path("/dev/shm") if args.tmpfs else args.dir
    with tempfile.TemporaryDirectory(dir=where, prefix="bench_evb-") as d:
        tmp = Path(d)
        fs = subprocess.run(
            ["stat", "-f", "-c", "%T", d], capture_output=True, text=True, check=False
        ).stdout.strip()
        print(f"work directory {d} ({fs}); load average {os.getloadavg()[0]:.1f}")
        if not args.skip_throughput:
            throughput(tmp, args.events)
        if not args.skip_replay:
            replay(
                tmp,
                args.replay_events,
                args.replay_rate,
                args.replay_samples,
                args.replay_per_file,
                args.replay_pair_timeout,
            )


if __name__ == "__main__":
    main()
