"""The DAQ's lossless compression of an event payload (dq flag bit 6; spec section 2).

Each channel, in DAQ order, is a stream of 13-bit packets, most significant bit first:

* ``0`` + 12 bits: a raw sample value.  The first sample of a channel is always raw, and so is
  every sample whose difference from the previous one is outside -3..+3;
* ``1`` + 12 bits: prefix codes for first differences (sample minus previous sample).  A code
  may continue into the next code packet.  Codes count the zeros before the first one:
  ``1`` repeat the last difference four times, ``01`` 0, ``001`` -1, ``0001`` +1, ``00001`` -2,
  ``000001`` +2, ``0000001`` -3, ``00000001`` +3.

A partly filled code packet is padded with zeros before a raw packet; each channel's stream is
padded with zeros to a byte boundary (without completing its last code packet).  Choices where
the spec is silent, shared by encoder and decoder: "the last difference" is the last one sent
as a difference code since the last raw packet (a repeat right after a raw packet is invalid).
The encoder follows the DAQ's ``CompressChData`` byte for byte: a run of equal differences is
the difference's code, then repeats while at least one more difference follows, then codes
(a run never ends with a repeat); the decoder reads any valid use of the repeat.

Both directions are compiled with numba: a channel is a bit-level state machine that numpy
cannot vectorise, and the decoder must run at DAQ speed.  So there are two decoders of the one
format: the table-driven fast path (:mod:`farmtools.rawdata.huffman_table`, a 13-bit code
packet per step), and the bit-at-a-time reference walk here, which runs only when the fast path
refuses a stream, to say where and why, and is the fast path's test oracle.  Malformed streams
are reported by status codes that :func:`decode` turns into :class:`DecodeError` (a ValueError)
with the channel and byte; the reader wraps them into
:class:`~farmtools.rawdata.errors.RawDataError`.

Imports only :mod:`farmtools.rawdata.huffman_table`.
"""

from __future__ import annotations

import os

import numba
import numpy as np
import numpy.typing as npt

from farmtools.rawdata import huffman_table
from farmtools.rawdata.huffman_table import store_be64 as _store_be64

U8 = npt.NDArray[np.uint8]
U16 = npt.NDArray[np.uint16]

#: Number of leading zeros of the code of each difference -3..+3 (index d + 3).
_ZEROS_OF_DIFF = np.array([6, 4, 2, 1, 3, 5, 7], dtype=np.int64)
#: The encoder's "difference" of a raw sample of value v: ``RAW_BASE + v`` (no run).
RAW_BASE = 1 << 16
#: Difference coded by k leading zeros (k = 1..7); index 0 is the repeat code.
_DIFF_OF_ZEROS = np.array([0, 0, -1, 1, -2, 2, -3, 3], dtype=np.int64)

OK = 0
_MESSAGES = {
    1: "compressed stream ends before the channel is complete",
    2: "channel does not start with a raw sample",
    3: "invalid difference code (more than 7 zeros)",
    4: "decoded sample outside 0..4095",
    5: "repeat code without a previous difference",
    6: "repeat code runs past the end of the channel",
    7: "bytes left over after the last channel",
}


@numba.njit(inline="always")
def _place(t: int, d: int, d_before: int) -> int:  # pragma: no cover - compiled
    """A sample's place in its run of equal differences (0: the run's first), from the last."""
    return (t + 1) & -int((d == d_before) & (d < RAW_BASE))


@numba.njit(inline="always")
def _left_in_run(r: int, d: int, d_after: int) -> int:  # pragma: no cover - compiled
    """The samples left in a sample's run, itself included, from those of the next sample."""
    return r + 1 if (d == d_after) & (d < RAW_BASE) else 1


@numba.njit(inline="always")
def _code_bits(d: int, place: int, rem: int) -> int:  # pragma: no cover - compiled
    """A sample's code length: a code; a repeat (1) for the first of four samples of a run with
    at least five left, counted from its second sample; nothing (0) for the other three."""
    g = (place - 1) & 3
    lc = 2 * abs(d) + int(d > 0) + int(d == 0) + 1
    repeats = (place >= 1) & (rem + g >= 5)
    return int(g == 0) if repeats else lc


@numba.njit(inline="always")
def _pack(
    d: int, lc: int, acc: int, nacc: int, left: int
) -> tuple[int, int, int]:  # pragma: no cover
    """A sample's bits (``lc`` code bits, or a raw packet) into the word ``acc`` holding
    ``nacc`` bits: (word, its bits, bits left in the open code packet)."""
    rest = lc - left  # > 0: its first zeros close the packet, then a new one
    nf = int(rest > 0)
    nb = lc + nf
    val = (nf << max(rest, 0)) | int(lc != 0)
    nleft = left - lc + 12 * nf
    raw = d >= RAW_BASE  # a raw packet, after padding the open code packet
    nb = left + 13 if raw else nb
    val = d - RAW_BASE if raw else val
    left = 0 if raw else nleft
    acc |= (val << (32 - nb)) << (32 - nacc)
    return acc, nacc + nb, left


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _encode(adc: U16, out: U8) -> int:  # pragma: no cover
    """Compress ``adc`` into ``out`` as the DAQ's ``CompressChData`` does; the bytes written.

    The DAQ codes a run of n equal differences as the difference's code, then as many repeat
    codes (four each) as leave at least one more difference, then the rest one code each:
    a run never ends with a repeat, so a run of five is five codes, a run of six is code,
    repeat, code.  Code bits are packed into 13-bit code packets (a ``1`` then 12 bits, a code
    may straddle two); a raw packet is a ``0`` and 12 bits, after the open code packet is
    padded with zeros; a channel ends on a byte boundary without completing its code packet.

    Written without a branch on the data (runs end and raw samples come at random, and each
    mispredicted branch cost as much as a sample): per channel the differences (``RAW_BASE`` +
    the value for a raw sample), each sample's place in its run and the samples left in it
    (the two chains of dependencies in loops of their own: one loop of both ran slower), its
    code's bits (:func:`_code_bits`), then the packing alone (:func:`_pack`).  Bits gather
    left-aligned in a 64-bit word, stored whole after every sample and advanced by the bytes
    completed (``out`` has 8 bytes of slack).  The chained loops (place, samples left,
    packing) are latency-bound, so they run two channels side by side (x1.13 measured,
    2026-12-08); the second channel is packed into ``tmp`` and copied behind the first.
    """
    nch, ns = adc.shape
    dd = np.empty((2, ns), np.int64)
    place = np.empty((2, ns), np.int64)
    rem = np.empty((2, ns), np.int64)
    bits = np.empty((2, ns), np.int64)
    tmp = np.empty(ns * 13 // 8 + 16, np.uint8)
    nout = 0
    for c0 in range(0, nch, 2):
        c1 = min(c0 + 1, nch - 1)  # (an odd last channel twice: the second copy is dropped)
        for k in range(2):
            row = adc[c0 + k * (c1 - c0)]
            dk = dd[k]
            dk[0] = RAW_BASE + np.int64(row[0])
            for i in range(1, ns):  # (vectorised)
                d = np.int64(row[i]) - np.int64(row[i - 1])
                dk[i] = d if -3 <= d <= 3 else RAW_BASE + np.int64(row[i])
        da, db = dd[0], dd[1]
        pa, pb = place[0], place[1]
        ta = tb = 0
        pa[0] = pb[0] = 0
        for i in range(1, ns):
            ta = _place(ta, da[i], da[i - 1])
            tb = _place(tb, db[i], db[i - 1])
            pa[i] = ta
            pb[i] = tb
        rem_a, rem_b = rem[0], rem[1]
        ra = rb = 1
        rem_a[ns - 1] = rem_b[ns - 1] = 1
        for i in range(ns - 2, -1, -1):
            ra = _left_in_run(ra, da[i], da[i + 1])
            rb = _left_in_run(rb, db[i], db[i + 1])
            rem_a[i] = ra
            rem_b[i] = rb
        for k in range(2):
            for i in range(ns):  # (vectorised)
                bits[k, i] = _code_bits(dd[k, i], place[k, i], rem[k, i])
        bits_a, bits_b = bits[0], bits[1]
        acc_a = nacc_a = left_a = n_a = 0  # bits not yet stored (left-aligned), bytes stored
        acc_b = nacc_b = left_b = n_b = 0
        for i in range(ns):
            acc_a, nacc_a, left_a = _pack(da[i], bits_a[i], acc_a, nacc_a, left_a)
            acc_b, nacc_b, left_b = _pack(db[i], bits_b[i], acc_b, nacc_b, left_b)
            _store_be64(out, nout + n_a, acc_a)
            _store_be64(tmp, n_b, acc_b)
            k_a = nacc_a >> 3
            k_b = nacc_b >> 3
            n_a += k_a
            n_b += k_b
            acc_a <<= 8 * k_a
            acc_b <<= 8 * k_b
            nacc_a &= 7
            nacc_b &= 7
        nout += n_a + ((nacc_a + 7) >> 3)  # (its last byte is stored, zero-padded)
        if c1 != c0:
            n_b += (nacc_b + 7) >> 3
            out[nout : nout + n_b] = tmp[:n_b]
            nout += n_b
    return nout


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _decode_reference(
    buf: U8, nbytes: int, out: U16, diff_of_zeros: npt.NDArray[np.int64]
) -> tuple[int, int, int]:  # pragma: no cover
    """The bit-at-a-time walk of the stream: (status, payload byte, channel) of the first fault.

    Slow and plain on purpose, as the format's reference: it is what explains a bad stream and
    what the table-driven decoder is tested against.
    """
    nch, ns = out.shape
    nbits = nbytes * 8
    pos = 0
    for ch in range(nch):
        count = 0
        left = 0
        zeros = 0
        last_valid = False
        last = np.int64(0)
        prev = np.int64(0)
        while count < ns:
            if left == 0:
                if pos >= nbits:
                    return 1, pos >> 3, ch
                header = (buf[pos >> 3] >> (7 - (pos & 7))) & 1
                pos += 1
                if header == 0:
                    if pos + 12 > nbits:
                        return 1, pos >> 3, ch
                    v = np.int64(0)
                    for _ in range(12):
                        v = (v << 1) | ((buf[pos >> 3] >> (7 - (pos & 7))) & 1)
                        pos += 1
                    out[ch, count] = v
                    prev = v
                    count += 1
                    zeros = 0  # zeros pending before a raw packet were padding
                    last_valid = False
                    continue
                if count == 0:
                    return 2, (pos - 1) >> 3, ch
                left = 12
            if pos >= nbits:
                return 1, pos >> 3, ch
            bit = (buf[pos >> 3] >> (7 - (pos & 7))) & 1
            pos += 1
            left -= 1
            if bit == 0:
                zeros += 1  # more than 7 is legal only as padding before a raw packet
                continue
            if zeros > 7:
                return 3, (pos - 1) >> 3, ch
            if zeros == 0:
                if not last_valid:
                    return 5, (pos - 1) >> 3, ch
                if count + 4 > ns:
                    return 6, (pos - 1) >> 3, ch
                for _ in range(4):
                    prev += last
                    if prev < 0 or prev > 4095:
                        return 4, (pos - 1) >> 3, ch
                    out[ch, count] = prev
                    count += 1
            else:
                last = diff_of_zeros[zeros]
                last_valid = True
                prev += last
                if prev < 0 or prev > 4095:
                    return 4, (pos - 1) >> 3, ch
                out[ch, count] = prev
                count += 1
                zeros = 0
        pos = (pos + 7) & ~7
    if (pos >> 3) != nbytes:
        return 7, pos >> 3, nch
    return 0, pos >> 3, nch


def encode(adc_daq: npt.ArrayLike) -> bytes:
    """Compress an event's samples, shape (channels, samples) in DAQ order, into the payload bytes."""
    adc = np.ascontiguousarray(adc_daq, dtype=np.uint16)
    if adc.ndim != 2 or adc.shape[1] < 1:
        raise ValueError(f"expected a (channels, samples) array, got shape {adc.shape}")
    if adc.size and int(adc.max()) > 0xFFF:
        raise ValueError(f"sample value {int(adc.max())} does not fit in 12 bits")
    nch, ns = adc.shape
    out = np.empty(nch * ((ns * 13 + 7) // 8 + 1) + 8, dtype=np.uint8)
    n = _encode(adc, out)
    return out[:n].tobytes()


def _as_bytes(buf: bytes | bytearray | memoryview | U8) -> U8:
    return np.frombuffer(buf, dtype=np.uint8) if not isinstance(buf, np.ndarray) else buf


def decode(
    buf: bytes | bytearray | memoryview | U8,
    n_channels: int,
    n_samples: int,
    out: U16 | None = None,
    *,
    threads: int | None = None,
) -> U16:
    """Decompress a payload into a (channels, samples) uint16 array in DAQ order.

    The table-driven decoder (:mod:`farmtools.rawdata.huffman_table`) runs first; a stream it
    refuses is walked again by the reference decoder, which raises :class:`DecodeError` (a
    ValueError) naming the channel and the byte offset within the payload where the stream
    stopped making sense.  Bad payloads are rare, so the price of the second walk is paid only
    when there is something to explain.

    ``threads``: channels are decoded in parallel on that many threads (None: the environment's
    ``FARMTOOLS_THREADS``, else 1, what a batch job on a one-core slot should use).
    """
    raw = _as_bytes(buf)
    if out is None:
        out = np.empty((n_channels, n_samples), dtype=np.uint16)
    elif (
        out.dtype != np.uint16 or out.shape != (n_channels, n_samples) or not out.flags.c_contiguous
    ):
        # (the fast decoder stores 4 samples at a time into the rows' memory)
        raise ValueError(
            f"out must be a C-contiguous uint16 array of shape {(n_channels, n_samples)}, "
            f"got {out.dtype} {out.shape}"
        )
    if threads is None:
        threads = threads_from_env()
    if huffman_table.decode(raw, out, threads):
        return out
    return decode_reference(raw, n_channels, n_samples, out)


def threads_from_env() -> int:
    """``FARMTOOLS_THREADS`` (a positive integer), else 1: the cores a job may decode on."""
    text = os.environ.get("FARMTOOLS_THREADS", "").strip() or "1"
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"FARMTOOLS_THREADS={text!r}: expected a positive number of threads")
    return int(text)


def decode_reference(
    buf: bytes | bytearray | memoryview | U8,
    n_channels: int,
    n_samples: int,
    out: U16 | None = None,
) -> U16:
    """:func:`decode` by the reference walk alone (for tests and benchmarks of the fast path)."""
    raw = _as_bytes(buf)
    if out is None:
        out = np.empty((n_channels, n_samples), dtype=np.uint16)
    status, offset, channel = _decode_reference(raw, raw.size, out, _DIFF_OF_ZEROS)
    if status != OK:
        raise DecodeError(_MESSAGES[status], channel=channel, offset=offset)
    return out


class DecodeError(ValueError):
    """A compressed payload is malformed; ``offset`` is relative to the start of the payload."""

    def __init__(self, message: str, *, channel: int, offset: int) -> None:
        self.channel = channel
        self.offset = offset
        self.reason = message
        super().__init__(f"{message} (DAQ channel {channel}, payload byte {offset})")
