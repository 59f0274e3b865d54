"""12-bit sample packing of the uncompressed payload: two samples in three bytes (spec section 2).

``b0 = v1 >> 4``, ``b1 = (v1 & 0xF) << 4 | v2 >> 8``, ``b2 = v2 & 0xFF``.  Both directions are one
compiled pass (numba) over the buffer, because unpacking is on the hot path of every reader:
numpy's vectorised form needs several temporaries and runs at a fraction of the speed.

Imports nothing from farmtools.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
U16 = npt.NDArray[np.uint16]


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _unpack(buf: U8, out: U16, n: int) -> None:  # pragma: no cover - compiled
    pairs = n // 2
    for i in range(pairs):
        b0 = np.uint16(buf[3 * i])
        b1 = np.uint16(buf[3 * i + 1])
        b2 = np.uint16(buf[3 * i + 2])
        out[2 * i] = (b0 << 4) | (b1 >> 4)
        out[2 * i + 1] = ((b1 & 0xF) << 8) | b2
    if n % 2:
        b0 = np.uint16(buf[3 * pairs])
        b1 = np.uint16(buf[3 * pairs + 1])
        out[n - 1] = (b0 << 4) | (b1 >> 4)


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _pack(samples: U16, out: U8) -> None:  # pragma: no cover - compiled
    n = samples.size
    pairs = n // 2
    for i in range(pairs):
        v1 = samples[2 * i]
        v2 = samples[2 * i + 1]
        out[3 * i] = v1 >> 4
        out[3 * i + 1] = ((v1 & 0xF) << 4) | (v2 >> 8)
        out[3 * i + 2] = v2 & 0xFF
    if n % 2:
        v1 = samples[n - 1]
        out[3 * pairs] = v1 >> 4
        out[3 * pairs + 1] = (v1 & 0xF) << 4


def packed_size(n_samples: int) -> int:
    """Bytes that ``n_samples`` 12-bit samples take (an odd last sample takes two bytes)."""
    return (n_samples * 3 + 1) // 2


def pack12(samples: npt.ArrayLike) -> U8:
    """Pack 12-bit samples (any shape, C order) into bytes; values above 4095 are a ValueError."""
    flat = np.ascontiguousarray(samples, dtype=np.uint16).reshape(-1)
    if flat.size and int(flat.max()) > 0xFFF:
        raise ValueError(f"sample value {int(flat.max())} does not fit in 12 bits")
    out = np.empty(packed_size(flat.size), dtype=np.uint8)
    _pack(flat, out)
    return out


def unpack12(
    buf: bytes | bytearray | memoryview | U8, n_samples: int, out: U16 | None = None
) -> U16:
    """Unpack ``n_samples`` 12-bit samples from ``buf`` into a flat uint16 array.

    ``out`` (flat, at least ``n_samples`` long) avoids an allocation per event in readers.
    A buffer too short for ``n_samples`` is a ValueError (readers turn it into RawDataError).
    """
    raw = np.frombuffer(buf, dtype=np.uint8) if not isinstance(buf, np.ndarray) else buf
    need = packed_size(n_samples)
    if raw.size < need:
        raise ValueError(f"{raw.size} bytes cannot hold {n_samples} packed samples ({need} needed)")
    if out is None:
        out = np.empty(n_samples, dtype=np.uint16)
    elif out.size < n_samples or out.dtype != np.uint16:
        raise ValueError("out must be a uint16 array of at least n_samples elements")
    _unpack(raw, out.reshape(-1), n_samples)
    return out[:n_samples] if out.size != n_samples else out
