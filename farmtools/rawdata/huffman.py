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
as a difference code since the last raw packet (a repeat right after a raw packet is invalid),
and the encoder uses a repeat only when four more samples fit in the channel.

Both directions are compiled with numba: a channel is a bit-level state machine that numpy
cannot vectorise, and the decoder must run at DAQ speed (on a 335-event compressed file the
bit-at-a-time walk alone took ~37 s of the reconstruction's budget of 30).  So there are two
decoders of the one format: a windowed fast path, and the reference walk that runs only when
the fast path refuses a stream, to say where and why.  They share the last step, applying a
code once read, written out in each: moved into one inlined numba helper it cost the windowed
decoder 25-35 % of its speed (measured with benchmarks/bench_rawdata.py, 2026-12-02), in the
loop that takes more than half of the reconstruction of a compressed file.  Malformed streams are reported by status
codes that :func:`decode` turns into :class:`DecodeError` (a ValueError) with the channel and
byte; the reader wraps them into :class:`~farmtools.rawdata.errors.RawDataError`.

Imports nothing from farmtools.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
U16 = npt.NDArray[np.uint16]

#: Number of leading zeros of the code of each difference -3..+3 (index d + 3).
_ZEROS_OF_DIFF = np.array([6, 4, 2, 1, 3, 5, 7], dtype=np.int64)
#: Bit length of every 13-bit value (0 for 0): the leading zeros of a code window, by table.
_BITLEN = np.array([int(v).bit_length() for v in range(1 << 13)], dtype=np.int64)
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


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _encode(adc: U16, out: U8, zeros_of_diff: npt.NDArray[np.int64]) -> int:  # pragma: no cover
    nch, ns = adc.shape
    pos = 0  # bit position in out (pre-zeroed)
    for ch in range(nch):
        row = adc[ch]
        # raw first sample
        v = np.int64(row[0])
        for b in range(12, -1, -1):
            if (v >> b) & 1:
                out[pos >> 3] |= np.uint8(0x80 >> (pos & 7))
            pos += 1
        left = 0  # bits left in the open code packet
        last_valid = False
        last = np.int64(0)
        i = 1
        while i < ns:
            d = np.int64(row[i]) - np.int64(row[i - 1])
            zeros = -1
            step = 1
            if last_valid and i + 3 < ns:
                same = True
                for k in range(4):
                    if np.int64(row[i + k]) - np.int64(row[i + k - 1]) != last:
                        same = False
                        break
                if same:
                    zeros = 0
                    step = 4
            if zeros < 0 and -3 <= d <= 3:
                zeros = zeros_of_diff[d + 3]
                last = d
                last_valid = True
            if zeros < 0:
                # raw packet: close the open code packet with zeros first
                pos += left
                left = 0
                v = np.int64(row[i])
                pos += 1  # leading 0
                for b in range(11, -1, -1):
                    if (v >> b) & 1:
                        out[pos >> 3] |= np.uint8(0x80 >> (pos & 7))
                    pos += 1
                last_valid = False
                i += 1
                continue
            # zeros then a one, each bit inside code packets
            for k in range(zeros + 1):
                if left == 0:
                    out[pos >> 3] |= np.uint8(0x80 >> (pos & 7))
                    pos += 1
                    left = 12
                if k == zeros:
                    out[pos >> 3] |= np.uint8(0x80 >> (pos & 7))
                pos += 1
                left -= 1
            i += step
        pos = (pos + 7) & ~7
    return pos >> 3


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _decode_reference(
    buf: U8, nbytes: int, out: U16, diff_of_zeros: npt.NDArray[np.int64]
) -> tuple[int, int, int]:  # pragma: no cover
    """The bit-at-a-time walk of the stream: (status, payload byte, channel) of the first fault.

    Slow and plain on purpose, as the format's reference: it is what explains a bad stream and
    what the windowed decoder is tested against.
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


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _decode_windowed(
    buf: npt.NDArray[np.uint8],
    out: npt.NDArray[np.uint16],
    bitlen: npt.NDArray[np.int64],
    diff_of_zeros: npt.NDArray[np.int64],
) -> int:  # pragma: no cover - compiled
    """Decode into ``out`` (channels, samples); 0 on success, else the channel that failed + 1.

    The fast path: it reads whole code windows from a 64-bit bit buffer instead of one bit at a
    time (a raw packet is one 13-bit peek, a difference code "count the leading zeros of the
    rest of the packet" by a table), about three times faster than :func:`_decode_reference`.
    It only says *that* a stream is invalid; the reference walk says where and why.

    ``acc`` holds the next ``nacc`` unread bits of the stream (refilled a byte at a time up to
    55 bits, so an int64 never overflows); a peek is a shift and a mask.
    """
    nch, ns = out.shape
    nbytes = buf.shape[0]
    bi = 0
    acc = np.int64(0)
    nacc = 0
    for ch in range(nch):
        count = 0
        left = 0
        zeros = 0
        last_valid = False
        last = np.int64(0)
        prev = np.int64(0)
        while count < ns:
            if nacc < 13:
                acc &= (np.int64(1) << nacc) - 1
                while nacc <= 47 and bi < nbytes:
                    acc = (acc << 8) | np.int64(buf[bi])
                    bi += 1
                    nacc += 8
            if left == 0:
                if nacc <= 0:
                    return ch + 1
                # a code packet's header may be the last bit or so of a stream cut short
                w = (acc >> (nacc - 13)) & 0x1FFF if nacc >= 13 else ((acc >> (nacc - 1)) & 1) << 12
                if w < 4096:
                    if nacc < 13:
                        return ch + 1
                    nacc -= 13
                    out[ch, count] = w
                    prev = np.int64(w)
                    count += 1
                    zeros = 0
                    last_valid = False
                    continue
                if count == 0:
                    return ch + 1
                nacc -= 1
                left = 12
            k = min(left, nacc)
            if k <= 0:
                return ch + 1
            w = (acc >> (nacc - k)) & ((np.int64(1) << k) - 1)
            if w == 0:
                zeros += k
                nacc -= k
                left -= k
                continue
            lz = k - bitlen[w]
            zeros += lz
            nacc -= lz + 1
            left -= lz + 1
            if zeros > 7:
                return ch + 1
            if zeros == 0:
                if not last_valid or count + 4 > ns:
                    return ch + 1
                for _ in range(4):
                    prev += last
                    if prev < 0 or prev > 4095:
                        return ch + 1
                    out[ch, count] = prev
                    count += 1
            else:
                last = diff_of_zeros[zeros]
                last_valid = True
                prev += last
                if prev < 0 or prev > 4095:
                    return ch + 1
                out[ch, count] = prev
                count += 1
                zeros = 0
        nacc -= nacc & 7
    if bi != nbytes or nacc != 0:
        return nch + 1
    return 0


def encode(adc_daq: npt.ArrayLike) -> bytes:
    """Compress an event's samples, shape (channels, samples) in DAQ order, into the payload bytes."""
    adc = np.ascontiguousarray(adc_daq, dtype=np.uint16)
    if adc.ndim != 2 or adc.shape[1] < 1:
        raise ValueError(f"expected a (channels, samples) array, got shape {adc.shape}")
    if adc.size and int(adc.max()) > 0xFFF:
        raise ValueError(f"sample value {int(adc.max())} does not fit in 12 bits")
    nch, ns = adc.shape
    out = np.zeros(nch * ((ns * 13 + 7) // 8 + 1), dtype=np.uint8)
    n = _encode(adc, out, _ZEROS_OF_DIFF)
    return out[:n].tobytes()


def _as_bytes(buf: bytes | bytearray | memoryview | U8) -> U8:
    return np.frombuffer(buf, dtype=np.uint8) if not isinstance(buf, np.ndarray) else buf


def decode(
    buf: bytes | bytearray | memoryview | U8,
    n_channels: int,
    n_samples: int,
    out: U16 | None = None,
) -> U16:
    """Decompress a payload into a (channels, samples) uint16 array in DAQ order.

    The windowed decoder runs first; a stream it refuses is walked again by the reference
    decoder, which raises :class:`DecodeError` (a ValueError) naming the channel and the byte
    offset within the payload where the stream stopped making sense.  Bad payloads are rare, so
    the price of the second walk is paid only when there is something to explain.
    """
    raw = _as_bytes(buf)
    if out is None:
        out = np.empty((n_channels, n_samples), dtype=np.uint16)
    if _decode_windowed(raw, out, _BITLEN, _DIFF_OF_ZEROS) == OK:
        return out
    return decode_reference(raw, n_channels, n_samples, out)


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
