"""Raw-data codecs: 12-bit unpacking against a read + adler32 pass, Huffman against the figure.

Prints the measured throughput of
  * 12-bit unpacking (GB/s of packed input) and, as the baseline in the same process, a plain
    ``read`` of the same bytes from a file plus ``zlib.adler32``;
  * Huffman decoding and encoding (MB/s of 16-bit samples) on emulator-like events (pedestal
    400, white noise, a few pulses), with the compression ratio beside the spec's expectation,
    and the reference walk of the format (what explains a bad stream) beside the fast path.
Numba compilation is excluded (a warm-up call first).  Targets (issue 2): unpacking >= 1 GB/s,
Huffman >= 50 MB/s both ways, on one core.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import zlib
from collections.abc import Callable
from functools import partial

import numpy as np

from farmtools.detector import WA105_3X1X1 as G
from farmtools.rawdata.huffman import decode, decode_reference, encode
from farmtools.rawdata.packing import pack12, unpack12

EXPECTED_RATIO = {0.7: 3.4, 1.0: 2.8, 1.5: 2.0, 2.0: 1.6, 3.0: 1.2}


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
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
    args = ap.parse_args()
    rng = np.random.default_rng(1)

    n = G.n_channels * G.samples * args.events
    packed = pack12(rng.integers(0, 4096, n).astype(np.uint16))
    out = np.empty(n, np.uint16)
    unpack12(packed, n, out=out)
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(packed.tobytes())
        path = f.name
    try:

        def baseline() -> None:
            with open(path, "rb") as fh:
                zlib.adler32(fh.read())

        baseline()
        t_unpack = best(lambda: unpack12(packed, n, out=out), args.repeat)
        t_base = best(baseline, args.repeat)
    finally:
        os.unlink(path)
    gb = packed.size / 1e9
    print(f"12-bit unpack      : {gb / t_unpack:6.2f} GB/s of input ({packed.size / 1e6:.0f} MB)")
    print(f"baseline read+adler: {gb / t_base:6.2f} GB/s")
    print(f"ratio unpack/baseline: {t_base / t_unpack:.2f}   (target: unpack >= 1 GB/s)")

    for sigma in (1.0, 1.5, 2.0):
        adc = event(rng, sigma)
        payload = encode(adc)
        decode(payload, G.n_channels, G.samples)
        decode_reference(payload, G.n_channels, G.samples)
        t_enc = best(partial(encode, adc), args.repeat)
        t_dec = best(partial(decode, payload, G.n_channels, G.samples), args.repeat)
        t_ref = best(partial(decode_reference, payload, G.n_channels, G.samples), args.repeat)
        mb = adc.size * 2 / 1e6
        ratio = adc.size * 1.5 / len(payload)
        print(
            f"huffman sigma {sigma:3.1f}: encode {mb / t_enc:6.1f} MB/s, decode {mb / t_dec:6.1f} MB/s "
            f"of samples; ratio {ratio:.2f} (spec expects ~{EXPECTED_RATIO[sigma]} for white noise); "
            f"decode/target {mb / t_dec / 50:.2f}x of 50 MB/s; the reference walk alone "
            f"{mb / t_ref:6.1f} MB/s (fast path x{t_ref / t_dec:.1f})"
        )


if __name__ == "__main__":
    main()
