"""6x6x6 filtering and final-storage formatting: classification speed, formatting beside tar and lz4/zstd.

Prints, all in one process so that the machine's load hits baselines and measurements alike:
  * the cheap classification (:class:`farmtools.final.classify.Classifier`) of every event of a
    raw L2 file: GB of event data per second, wall clock and per CPU second (the one-core
    figure; issue 16 asks >= 1 GB/s per core: it must see every event), beside main's
    classification before 2026-12-08 (whole-event read, the row-offset kernel), reading the
    events alone and both scan kernels alone;
  * formatting the same events into one final file (Huffman-compressed ProtoDUNE-DP file with
    manifest and log, fsynced and re-read: :func:`farmtools.final.writer.write_final`) beside
    ``tar cf`` of the raw file and beside compressing it with the fastest general-purpose codecs
    installed (``lz4 -1``, ``zstd -1``, one thread each), with the output sizes, and beside the
    DAQ's Huffman encoder alone on the same samples (its share of the formatting).
Events: pedestal 400 ADC with white noise (RMS 2 ADC) on the instrumented channels, a block of
charge on two CRPs and a flash (the synthetic events of the tests), ``--samples`` per channel
(10,000 = the full 115 MB event).  ``--tmpfs`` works in /dev/shm (no disk under any step).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from farmtools.detector import Geometry, geometry
from farmtools.final.classify import Classifier, EventClass, _scan_even, flash_pe
from farmtools.final.writer import OpenFiles, PackItem, write_final
from farmtools.rawdata import huffman
from farmtools.rawdata.pddp_format import FRAGMENT_HEADER_SIZE
from farmtools.rawdata.pddp_reader import PDDPFile
from farmtools.rawdata.pddp_writer import make_fragment, write_pddp_file
from tests.unit.final.synth import daq_adc, lro


def _cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


class Step:
    """Wall and CPU seconds (children included) of one step."""

    def __enter__(self) -> Step:
        self.t0, self.c0 = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.t0, _cpu() - self.c0

    def say(self, label: str, gb: float, extra: str = "") -> None:
        print(
            f"{label:28s}: {gb / self.wall:6.3f} GB/s wall ({self.wall:6.2f} s), "
            f"{gb / max(self.cpu, 1e-9):6.3f} GB per CPU s{extra}",
            flush=True,
        )


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _scan_main(
    buf: npt.NDArray[np.uint8], n_channels: int, ns: int, stats: npt.NDArray[np.float64]
) -> None:  # pragma: no cover - compiled
    """The baseline: main's scan kernel before 2026-12-08 (``buf`` indexed with a row offset)."""
    row = ns * 3 // 2
    for c in range(n_channels):
        base = c * row
        s = np.int64(0)
        s2 = np.int64(0)
        mx = np.int64(0)
        for p in range(ns // 2):
            b0 = np.int64(buf[base + 3 * p])
            b1 = np.int64(buf[base + 3 * p + 1])
            b2 = np.int64(buf[base + 3 * p + 2])
            a = (b0 << 4) | (b1 >> 4)
            b = ((b1 & 0xF) << 8) | b2
            s += a + b
            s2 += a * a + b * b
            mx = max(mx, max(a, b))
        mean = s / ns
        stats[c, 0] = mean
        stats[c, 1] = np.sqrt(max(s2 / ns - mean * mean, 0.0))
        stats[c, 2] = mx


def classify_figures(raw: Path, geo: Geometry, n: int, gb: float) -> None:
    """Classification beside its baselines, same events, same process (every event BEAM)."""
    fc = geo.fragment_channels
    c = Classifier(geo)
    with PDDPFile(raw, geo) as f:
        c.classify(f, 0)  # compile the kernels outside the clock
        with Step() as read:
            for i in range(n):
                f.read_raw_event(i)
        read.say("read the events (floor)", gb)
        stats = np.empty((fc, 3))
        event = np.frombuffer(f.read_raw_event(0), dtype=np.uint8)
        cros = [
            event[p - f.event_offsets[0] + FRAGMENT_HEADER_SIZE + h.lro_size :][: h.cro_size]
            for p, h in f.fragments[0]
        ]
        _scan_main(cros[0], fc, geo.samples, stats)
        kernels = {}
        for name, kernel in (("main", _scan_main), ("this", _scan_even)):
            with Step() as k:
                for _ in range(n):
                    for cro in cros:
                        kernel(cro, fc, geo.samples, stats)
            k.say(f"scan kernel alone, {name}", gb)
            kernels[name] = k.cpu
        with Step() as before:  # main's classify: whole event read, main's kernel
            for i in range(n):
                ev = np.frombuffer(f.read_raw_event(i), dtype=np.uint8)
                for p, h in f.fragments[i]:
                    body = p - f.event_offsets[i] + FRAGMENT_HEADER_SIZE
                    flash_pe(bytes(ev[body : body + h.lro_size]), c.th)
                    _scan_main(ev[body + h.lro_size :][: h.cro_size], fc, geo.samples, stats)
        before.say("classify, main's (baseline)", gb)
        with Step() as s:
            got = [c.classify(f, i).klass for i in range(n)]
    assert set(got) == {EventClass.BEAM}, got
    s.say(
        "classify",
        gb,
        f"; x{before.cpu / max(s.cpu, 1e-9):.2f} of main's, "
        f"kernel x{kernels['main'] / max(kernels['this'], 1e-9):.2f}",
    )


def compressed_figures(final: Path, geo: Geometry, n: int, gb: float) -> None:
    """Classifying the same events Huffman-coded (the final file): beside decoding them alone
    and beside main's way (a new array per decode, numpy's mean/std/max over a float64 copy)."""
    fc = geo.fragment_channels
    c = Classifier(geo)
    with PDDPFile(final, geo) as f:
        c.classify(f, 0)
        cros = []
        for i in range(n):
            ev = bytes(f.read_raw_event(i))
            for p, h in f.fragments[i]:
                body = p - f.event_offsets[i] + FRAGMENT_HEADER_SIZE + h.lro_size
                cros.append(ev[body : body + h.cro_size])
        out = np.empty((fc, geo.samples), dtype=np.uint16)
        with Step() as dec:
            for cro in cros:
                huffman.decode(cro, fc, geo.samples, out)
        dec.say("decode alone (compressed)", gb)
        with Step() as before:
            for cro in cros:
                a = huffman.decode(cro, fc, geo.samples).astype(np.float64)
                np.stack([a.mean(axis=1), a.std(axis=1), a.max(axis=1)], axis=1)
        before.say("decode + scan, main's (baseline)", gb)
        with Step() as s:
            got = [c.classify(f, i).klass for i in range(n)]
    assert set(got) == {EventClass.BEAM}, got
    s.say(
        "classify compressed events",
        gb,
        f" (of decoded data); x{before.cpu / max(s.cpu, 1e-9):.2f} of main's decode + scan alone",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=4)
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--tmpfs", action="store_true", help="work in /dev/shm")
    ap.add_argument("--classify-only", action="store_true", help="skip formatting")
    args = ap.parse_args()
    geo = geometry(f"6x6x6:{args.samples}")
    work = Path(tempfile.mkdtemp(prefix="bench-final-", dir="/dev/shm" if args.tmpfs else None))
    try:
        rng = np.random.default_rng(1)
        fc = geo.fragment_channels
        adc = daq_adc(geo, rng, (0, 1))  # one event's samples under every header (as --no-physics)
        light = lro(rng, flash=True, dark=280)
        events = [
            [
                make_fragment(
                    adc[k * fc : (k + 1) * fc],
                    run=1,
                    trigger_type=3,
                    trigger_number=t,
                    time_ns=t,
                    event_number=t,
                    missing_cards=geo.missing_cards(k),
                    lro=light if k == 0 else b"",
                )
                for k in range(geo.l1_builders)
            ]
            for t in range(args.events)
        ]
        raw = work / "1_0_a.dat"
        write_pddp_file(raw, 1, events, fsync=True)
        del events
        gb = raw.stat().st_size / 1e9
        print(f"{args.events} events of {args.samples} samples: {gb:.3f} GB raw; load "
              f"{os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip

        classify_figures(raw, geo, args.events, gb)
        if args.classify_only:
            return

        os.sync()
        with Step() as tar:
            subprocess.run(["tar", "cf", str(work / "raw.tar"), "-C", str(work), raw.name],
                           check=True)  # fmt: skip
            os.sync()
        tar.say("tar cf (baseline)", gb)
        for codec in ("lz4", "zstd"):
            if shutil.which(codec) is None:
                print(f"{codec}: not installed")
                continue
            out = work / f"raw.{codec}"
            cmd = {
                "lz4": ["lz4", "-1", "-q", "-f", str(raw), str(out)],
                "zstd": ["zstd", "-1", "-q", "-f", "-T1", str(raw), "-o", str(out)],
            }[codec]
            with Step() as z:
                subprocess.run(cmd, check=True)
                os.sync()
            z.say(f"{codec} -1 one thread", gb, f", {out.stat().st_size / 1e9:.3f} GB out")
            out.unlink()

        final_dir = work / "final"
        final_dir.mkdir()
        with OpenFiles(geo) as opened:
            items = [PackItem(raw.name, str(raw), i, EventClass.BEAM) for i in range(args.events)]
            opened.get(str(raw))
            with Step() as w:
                written = write_final(final_dir, "1_1_B.dat", 1, "beam", items, opened, "bench")
        w.say(
            "final file (Huffman, verified)",
            gb,
            f", {written.size / 1e9:.3f} GB out; CPU x{w.cpu / max(tar.cpu, 1e-9):.1f} of tar",
        )
        compressed_figures(written.path, geo, args.events, gb)
        with PDDPFile(raw, geo) as f:  # the DAQ's encoder alone on the same samples
            rows = f.event_daq(0).adc.copy()
        fc = geo.fragment_channels
        huffman.encode(rows[:fc])
        with Step() as enc:
            for _ in range(args.events):
                for k in range(geo.l1_builders):
                    huffman.encode(rows[k * fc : (k + 1) * fc])
        enc.say(
            "Huffman encoder alone",
            gb,
            f"; {100 * enc.cpu / max(w.cpu, 1e-9):.0f} % of the final file",
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
