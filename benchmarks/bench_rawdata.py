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
    stream), the 12-bit unpack of the same number of samples (the ceiling of a reader), the
    codec of ``--base`` (by default main before issue 22's second pass: its table decoder, its
    encoder, its threads) and that of ``--old`` (by default the windowed decoder and the
    encoder that issue 22 measured), both loaded from git into this process: the speed-ups,
    measured now;
  * decoding on 1 and 2 threads in wall time (this decoder and ``--base``'s), and the share of
    a decode's time that counting where channels start takes (what bounds 2 threads at about
    2 - share).
Times are the best of ``--repeat`` runs of the process's CPU time for one thread (the machine
is shared: wall time counts the other tenants), numba compilation excluded (a warm-up call
first); the threaded figures are wall time, so they need an idle machine to mean much.
Targets (issue 22): Huffman decode >= 1 GB/s of samples on one core, encode >= 500.
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
from farmtools.rawdata import huffman, huffman_table
from farmtools.rawdata.huffman import decode, decode_reference, encode
from farmtools.rawdata.packing import pack12, unpack12
from farmtools.storage.checksum import CHUNK, adler32

EXPECTED_RATIO = {0.7: 3.4, 1.0: 2.8, 1.5: 2.0, 2.0: 1.6, 3.0: 1.2}
#: The codec issue 22 measured (one symbol per step, byte refills; its encoder).
OLD_CODEC = "eede180"
#: Main before issue 22's second pass (table decoder one packet per step, serial counting).
BASE_CODEC = "5575753"


def git_module(
    rev: str, path: str, where: Path, imports: dict[str, str] | None = None
) -> ModuleType:
    """``path`` of commit ``rev``, imported from a file in ``where`` (numba caches next to it).

    It must not import other farmtools modules of its time, except those named in
    ``imports`` (the import line of its time, replaced by one of a module loaded before).
    """
    repo = Path(__file__).resolve().parent.parent
    text = subprocess.run(
        ["git", "-C", str(repo), "show", f"{rev}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for line, replacement in (imports or {}).items():
        text = text.replace(line, replacement)
    file = where / f"{Path(path).stem}_{rev}.py"
    file.write_text(text)
    spec = importlib.util.spec_from_file_location(file.stem, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[file.stem] = module  # (numba's cache looks the module up)
    spec.loader.exec_module(module)
    return module


def old_codec(rev: str, where: Path) -> ModuleType:
    """``farmtools/rawdata/huffman.py`` of commit ``rev`` (self-contained at that commit)."""
    return git_module(rev, "farmtools/rawdata/huffman.py", where)


def base_codec(rev: str, where: Path) -> ModuleType:
    """``farmtools/rawdata/huffman.py`` of commit ``rev`` with its own ``huffman_table.py``."""
    table = git_module(rev, "farmtools/rawdata/huffman_table.py", where)
    return git_module(
        rev,
        "farmtools/rawdata/huffman.py",
        where,
        {
            "from farmtools.rawdata import huffman_table\n": f"import {table.__name__} as huffman_table\n",
            "from farmtools.rawdata.huffman_table import": f"from {table.__name__} import",
        },
    )


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
    ap.add_argument("--old", default=OLD_CODEC, help="git commit of the codec to compare with")
    ap.add_argument("--base", default=BASE_CODEC, help="git commit of the table codec to compare")
    args = ap.parse_args()
    old_dir = tempfile.TemporaryDirectory(prefix="bench-rawdata-")  # (removed at exit)
    old = old_codec(args.old, Path(old_dir.name))
    base = base_codec(args.base, Path(old_dir.name))
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
        huffman_figures(rng, sigma, args.repeat, old, base, args.old, args.base)


def huffman_figures(
    rng: np.random.Generator,
    sigma: float,
    repeat: int,
    old: ModuleType,
    base: ModuleType,
    old_rev: str,
    base_rev: str,
) -> None:
    """The Huffman lines of one noise level: this codec beside the others, in this process."""
    adc = event(rng, sigma)
    shape = adc.shape
    payload = encode(adc)
    assert encode(adc) == base.encode(adc)  # (the DAQ's bytes, both)
    assert np.array_equal(decode(payload, *shape), adc)
    assert np.array_equal(base.decode(payload, *shape, threads=2), adc)
    assert np.array_equal(old.decode(payload, *shape), adc)
    decode_reference(payload, *shape)
    packed_event = pack12(adc.ravel())
    flat = np.empty(adc.size, np.uint16)
    t_enc = best(partial(encode, adc), repeat)
    t_base_enc = best(partial(base.encode, adc), repeat)
    t_old_enc = best(partial(old.encode, adc), repeat)
    t_dec = best(partial(decode, payload, *shape), repeat)
    t_base_dec = best(partial(base.decode, payload, *shape), repeat)
    t_old_dec = best(partial(old.decode, payload, *shape), repeat)
    t_ref = best(partial(decode_reference, payload, *shape), repeat)
    t_unp = best(partial(unpack12, packed_event, adc.size, out=flat), repeat)
    raw = np.frombuffer(payload, np.uint8)
    buf = huffman_table.padded(raw, shape[1])
    starts = np.zeros(shape[0] + 1, np.int64)
    sc, counts = huffman_table.tables()[0], huffman_table.count_table()
    t_count = best(
        partial(
            huffman_table.channel_starts, buf, raw.size, 0, shape[0], shape[1], sc, counts, starts
        ),
        repeat,
    )
    wall = {
        (name, n): best(
            partial(codec.decode, payload, *shape, threads=n), repeat, time.perf_counter
        )
        for name, codec in (("this", huffman), ("base", base))
        for n in (1, 2)
    }
    mb = adc.size * 2 / 1e6
    ratio = adc.size * 1.5 / len(payload)
    print(
        f"huffman sigma {sigma:3.1f}: ratio {ratio:.2f} (spec ~{EXPECTED_RATIO[sigma]} for white "
        f"noise); encode {mb / t_enc:5.0f} MB/s of samples (target 500: x{mb / t_enc / 500:.2f}; "
        f"{base_rev}'s {mb / t_base_enc:4.0f}: x{t_base_enc / t_enc:.2f}; "
        f"{old_rev}'s x{t_old_enc / t_enc:.2f})"
    )
    print(
        f"  decode 1 core {mb / t_dec:5.0f} MB/s of samples (target 1000: x{mb / t_dec / 1000:.2f}); "
        f"{base_rev}'s {mb / t_base_dec:4.0f} (x{t_base_dec / t_dec:.2f}); {old_rev}'s "
        f"{mb / t_old_dec:4.0f} (x{t_old_dec / t_dec:.2f}); reference walk {mb / t_ref:4.0f} "
        f"(x{t_ref / t_dec:.1f}); 12-bit unpack of the same samples {mb / t_unp:5.0f} "
        f"(decode takes x{t_dec / t_unp:.1f} its time)"
    )
    print(
        f"  decode threads 1 / 2 (wall time): {mb / wall['this', 1]:5.0f} / "
        f"{mb / wall['this', 2]:5.0f} MB/s, x{wall['this', 1] / wall['this', 2]:.2f} "
        f"({base_rev}'s {mb / wall['base', 1]:4.0f} / {mb / wall['base', 2]:4.0f}, "
        f"x{wall['base', 1] / wall['base', 2]:.2f}); counting channel starts takes "
        f"{t_count / t_dec:.2f} of a decode (2 threads at most x{2 - t_count / t_dec:.2f})"
    )


if __name__ == "__main__":
    main()
