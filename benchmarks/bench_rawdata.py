"""Raw-data codecs: 12-bit unpacking against a read + adler32 pass, Huffman against both.

Prints the measured throughput of
  * 12-bit unpacking (GB/s of packed input) and, as the baseline in the same process, a read of
    the same bytes from a file into a preallocated buffer (``readinto``, 8 MiB at a time) plus
    the project's adler32 (ISA-L's, ``farmtools.storage.checksum``): the same work a reader's
    verification pass does, at its best settings;
  * Huffman decoding and encoding on emulator-like events (pedestal 400, white noise, a few
    pulses), in MB/s of samples counted at 2 bytes per sample (a 3x1x1 event: 1280 x 1667
    samples = 4.27 MB), with the compression ratio beside the spec's expectation; beside the
    fast decoder, in the same run, the reference walk of the format (what explains a bad
    stream) and the 12-bit unpack of the same number of samples (the ceiling of a reader); and
    the codec of an older commit (``--old``, by default the windowed decoder and the encoder
    that issue 22 measured), loaded from git into this process: the speed-up, measured now.
Times are the best of ``--repeat`` runs of the process's CPU time for one thread (the machine
is shared: wall time counts the other tenants), numba compilation excluded (a warm-up call
first).  Targets (issue 22): Huffman decode >= 1 GB/s of samples on one core, encode >= 500.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType

import numpy as np

from farmtools.detector import WA105_3X1X1 as G
from farmtools.rawdata.huffman import decode, decode_reference, encode
from farmtools.rawdata.packing import pack12, unpack12
from farmtools.storage.checksum import CHUNK, adler32

EXPECTED_RATIO = {0.7: 3.4, 1.0: 2.8, 1.5: 2.0, 2.0: 1.6, 3.0: 1.2}
#: The codec issue 22 measured (one symbol per step, byte refills; its encoder).
OLD_CODEC = "eede180"


def old_codec(rev: str, where: Path) -> ModuleType:
    """``farmtools/rawdata/huffman.py`` of commit ``rev``, imported from a file in ``where``
    (numba caches next to it); it must not import other farmtools modules of its time."""
    repo = Path(__file__).resolve().parent.parent
    text = subprocess.run(
        ["git", "-C", str(repo), "show", f"{rev}:farmtools/rawdata/huffman.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = where / f"huffman_{rev}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # (numba's cache looks the module up)
    spec.loader.exec_module(module)
    return module


def best(
    fn: Callable[[], object], repeat: int, clock: Callable[[], float] = time.thread_time
) -> float:
    times = []
    for _ in range(repeat):
        t = clock()
        fn()
        times.append(clock() - t)
    return min(times)


def event(rng: np.random.Generator, sigma: float) -> np.ndarray:
    adc = 400 + rng.normal(0, sigma, (G.n_channels, G.samples))
    for _ in range(40):  # a few track-like pulses
        ch, t = rng.integers(0, G.n_channels), rng.integers(20, G.samples - 20)
        adc[ch, t - 3 : t + 8] += rng.uniform(20, 300) * np.exp(-np.abs(np.arange(-3, 8)) / 2)
    return np.clip(adc.round(), 0, 4095).astype(np.uint16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=20, help="events per unpack pass")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="decode N cores")
    ap.add_argument("--old", default=OLD_CODEC, help="git commit of the codec to compare with")
    args = ap.parse_args()
    old_dir = tempfile.TemporaryDirectory(prefix="bench-rawdata-")  # (removed at exit)
    old = old_codec(args.old, Path(old_dir.name))
    rng = np.random.default_rng(1)

    n = G.n_channels * G.samples * args.events
    packed = pack12(rng.integers(0, 4096, n).astype(np.uint16))
    out = np.empty(n, np.uint16)
    unpack12(packed, n, out=out)
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(packed.tobytes())
        path = f.name
    try:
        buf = bytearray(CHUNK)
        view = memoryview(buf)

        def baseline() -> None:
            value = 1
            with open(path, "rb", buffering=0) as fh:
                while k := fh.readinto(buf):
                    value = adler32(view[:k], value)

        baseline()
        t_unpack = best(lambda: unpack12(packed, n, out=out), args.repeat)
        t_base = best(baseline, args.repeat, time.perf_counter)  # (the read is kernel time)
    finally:
        os.unlink(path)
    gb = packed.size / 1e9
    print(f"12-bit unpack      : {gb / t_unpack:6.2f} GB/s of input ({packed.size / 1e6:.0f} MB)")
    print(f"baseline readinto + adler32 (isal): {gb / t_base:6.2f} GB/s")
    print(f"ratio unpack/baseline: {t_base / t_unpack:.2f}   (target: unpack >= 1 GB/s)")

    for sigma in (1.0, 1.5, 2.0):
        adc = event(rng, sigma)
        payload = encode(adc)
        assert np.array_equal(decode(payload, G.n_channels, G.samples), adc)
        decode_reference(payload, G.n_channels, G.samples)
        packed_event = pack12(adc.ravel())
        flat = np.empty(adc.size, np.uint16)
        t_enc = best(partial(encode, adc), args.repeat)
        t_dec = best(partial(decode, payload, G.n_channels, G.samples), args.repeat)
        t_ref = best(partial(decode_reference, payload, G.n_channels, G.samples), args.repeat)
        t_unp = best(partial(unpack12, packed_event, adc.size, out=flat), args.repeat)
        assert np.array_equal(old.decode(payload, *adc.shape), adc)
        assert np.array_equal(decode(old.encode(adc), *adc.shape), adc)  # (before the DAQ rule)
        t_old_enc = best(partial(old.encode, adc), args.repeat)
        t_old_dec = best(partial(old.decode, payload, *adc.shape), args.repeat)
        # N cores: wall time (threads), against the 1-core decode timed the same way
        t_w1 = best(partial(decode, payload, *adc.shape, threads=1), args.repeat, time.perf_counter)
        t_wn = best(
            partial(decode, payload, *adc.shape, threads=args.threads),
            args.repeat,
            time.perf_counter,
        )
        mb = adc.size * 2 / 1e6
        ratio = adc.size * 1.5 / len(payload)
        print(
            f"huffman sigma {sigma:3.1f}: ratio {ratio:.2f} (spec ~{EXPECTED_RATIO[sigma]} for white "
            f"noise); encode {mb / t_enc:6.0f} MB/s of samples (target 500: x{mb / t_enc / 500:.2f}; "
            f"{args.old}'s x{t_old_enc / t_enc:.2f} slower)"
        )
        print(
            f"  decode 1 core {mb / t_dec:6.0f} MB/s of samples (target 1000: "
            f"x{mb / t_dec / 1000:.2f}); reference walk {mb / t_ref:5.0f} MB/s (fast x"
            f"{t_ref / t_dec:.1f}); 12-bit unpack of the same samples {mb / t_unp:6.0f} MB/s "
            f"(decode takes x{t_dec / t_unp:.1f} its time); {args.old}'s decoder "
            f"{mb / t_old_dec:5.0f} MB/s (x{t_old_dec / t_dec:.2f} slower)"
        )
        print(
            f"  decode {args.threads} cores (threads, wall time) {mb / t_wn:6.0f} MB/s against 1 core "
            f"{mb / t_w1:6.0f} MB/s in wall time: x{t_w1 / t_wn:.2f}"
        )


if __name__ == "__main__":
    main()
