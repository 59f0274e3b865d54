"""6x6x6 filtering and final-storage formatting: classification speed, formatting beside tar and lz4/zstd.

Prints, all in one process so that the machine's load hits baselines and measurements alike:
  * the cheap classification (:class:`farmtools.final.classify.Classifier`) of every event of a
    raw L2 file: GB of event data per second, wall clock and per CPU second (the one-core
    figure; issue 16 asks >= 1 GB/s per core: it must see every event);
  * formatting the same events into one final file (Huffman-compressed ProtoDUNE-DP file with
    manifest and log, fsynced and re-read: :func:`farmtools.final.writer.write_final`) beside
    ``tar cf`` of the raw file and beside compressing it with the fastest general-purpose codecs
    installed (``lz4 -1``, ``zstd -1``, one thread each), with the output sizes.
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from farmtools.detector import geometry
from farmtools.final.classify import Classifier, EventClass
from farmtools.final.writer import OpenFiles, PackItem, write_final
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=4)
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--tmpfs", action="store_true", help="work in /dev/shm")
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

        c = Classifier(geo)
        with PDDPFile(raw, geo) as f:
            c.classify(f, 0)  # compile the kernels outside the clock
            with Step() as s:
                got = [c.classify(f, i).klass for i in range(f.n_events)]
        assert set(got) == {EventClass.BEAM}, got
        s.say("classify", gb)

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
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
