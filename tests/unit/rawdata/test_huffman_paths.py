"""The two decoders of the compressed format agree: the windowed fast path and the reference walk.

:func:`huffman.decode` runs the windowed decoder and falls back on the reference walk only to
explain a stream it refuses, so the fast path must never accept what the reference refuses, nor
read anything differently.
"""

from __future__ import annotations

import numpy as np
import pytest

from farmtools.rawdata import huffman


def _event(rng: np.random.Generator, n_ch: int, n_t: int, sigma: float) -> np.ndarray:
    adc = 400 + rng.normal(0, sigma, (n_ch, n_t))
    for _ in range(n_ch // 4 if n_t > 40 else 0):  # pulses: large differences, raw packets
        ch, t = rng.integers(0, n_ch), rng.integers(10, n_t - 20)
        adc[ch, t : t + 15] += rng.uniform(20, 3000) * np.exp(-np.arange(15) / 3)
    return np.clip(np.round(adc), 0, 4095).astype(np.uint16)


def _windowed(payload: bytes, n_ch: int, n_t: int) -> np.ndarray | None:
    """The fast path alone: the samples, or None when it refuses the stream."""
    out = np.empty((n_ch, n_t), dtype=np.uint16)
    raw = np.frombuffer(payload, dtype=np.uint8)
    status = huffman._decode_windowed(raw, out, huffman._BITLEN, huffman._DIFF_OF_ZEROS)
    return out if status == huffman.OK else None


@pytest.mark.parametrize("sigma", [0.0, 0.4, 1.0, 2.0, 6.0])
def test_the_fast_path_agrees_with_the_reference(sigma: float) -> None:
    rng = np.random.default_rng(int(sigma * 10) + 1)
    for n_t in (1, 2, 5, 13, 1667):
        adc = _event(rng, 40, n_t, sigma)
        payload = huffman.encode(adc)
        fast = _windowed(payload, *adc.shape)
        assert fast is not None and np.array_equal(fast, adc)
        assert np.array_equal(huffman.decode_reference(payload, *adc.shape), adc)


def test_edge_values_and_constant_channels() -> None:
    adc = np.zeros((6, 100), dtype=np.uint16)
    adc[1] = 4095
    adc[2, ::2] = 4095
    adc[3] = np.arange(100) % 4  # small differences and repeats
    adc[4] = 2048 + (np.arange(100) % 7) - 3
    adc[5] = np.repeat(np.arange(25) * 3, 4)
    out = _windowed(huffman.encode(adc), *adc.shape)
    assert out is not None and np.array_equal(out, adc)


def test_invalid_streams_are_refused_by_both_and_explained() -> None:
    rng = np.random.default_rng(9)
    adc = _event(rng, 20, 200, 1.0)
    payload = bytearray(huffman.encode(adc))
    for bad, reason in (
        (bytes(payload[:-3]), "ends before the channel is complete"),
        (bytes(payload) + b"\x00", "bytes left over"),
        (b"\xff" * len(payload), "does not start with a raw sample"),
    ):
        assert _windowed(bad, *adc.shape) is None
        with pytest.raises(huffman.DecodeError, match=reason):
            huffman.decode(bad, *adc.shape)
    refused = 0
    for k in range(0, len(payload), 97):  # flipped bytes: refused by both, or read alike
        flipped = bytearray(payload)
        flipped[k] ^= 0xA5
        fast = _windowed(bytes(flipped), *adc.shape)
        try:
            ref = huffman.decode_reference(bytes(flipped), *adc.shape)
        except huffman.DecodeError as exc:
            assert fast is None
            with pytest.raises(huffman.DecodeError) as caught:
                huffman.decode(bytes(flipped), *adc.shape)
            assert (caught.value.channel, caught.value.offset) == (exc.channel, exc.offset)
            refused += 1
        else:
            assert fast is not None and np.array_equal(fast, ref)
    assert refused > 0
