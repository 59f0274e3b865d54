"""A faster decoder of compressed payloads for the reconstruction (same format, same output).

:func:`farmtools.rawdata.huffman.decode` walks the stream one bit at a time; on a 335-event
compressed file that alone took ~37 s of the reconstruction's budget of 30.  This decoder reads
whole code windows from a 64-bit bit buffer instead: a raw packet is one 13-bit peek, a
difference code is "count the leading zeros of the rest of the packet" by a table.

It only decodes valid streams: on anything unexpected it returns a non-zero status and the
caller falls back to the reference decoder of :mod:`farmtools.rawdata`, which raises the
canonical :class:`~farmtools.rawdata.errors.RawDataError` (file, event, byte offset).  Tests
check that both decoders agree sample for sample.  Candidate to move into
:mod:`farmtools.rawdata.huffman`.

Imports numpy and numba only.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

#: Bit length of every 13-bit value (0 for 0).
_BITLEN = np.array([int(v).bit_length() for v in range(1 << 13)], dtype=np.int64)
#: Difference coded by k leading zeros (k = 1..7); index 0 is the repeat code.
_DIFF_OF_ZEROS = np.array([0, 0, -1, 1, -2, 2, -3, 3], dtype=np.int64)


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _decode(
    buf: npt.NDArray[np.uint8],
    out: npt.NDArray[np.uint16],
    bitlen: npt.NDArray[np.int64],
    diff_of_zeros: npt.NDArray[np.int64],
) -> int:  # pragma: no cover - compiled
    """Decode into ``out`` (channels, samples); 0 on success, else the channel that failed + 1.

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


def decode_payload(
    payload: bytes | bytearray | memoryview | npt.NDArray[np.uint8],
    n_channels: int,
    n_samples: int,
    out: npt.NDArray[np.uint16] | None = None,
) -> npt.NDArray[np.uint16] | None:
    """(channels, samples) uint16 in DAQ order, or None if the stream is not valid.

    None means "ask the reference decoder", which explains what is wrong and where.
    """
    raw = payload if isinstance(payload, np.ndarray) else np.frombuffer(payload, dtype=np.uint8)
    if out is None:
        out = np.empty((n_channels, n_samples), dtype=np.uint16)
    status = _decode(raw, out, _BITLEN, _DIFF_OF_ZEROS)
    return out if status == 0 else None
