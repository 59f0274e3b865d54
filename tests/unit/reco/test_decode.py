"""The reconstruction's fast decoder agrees with the reference decoder of farmtools.rawdata."""

from __future__ import annotations

import numpy as np
import pytest

from farmtools.rawdata import huffman
from farmtools.reco.decode import decode_payload


def _event(rng: np.random.Generator, n_ch: int, n_t: int, sigma: float) -> np.ndarray:
    adc = 400 + rng.normal(0, sigma, (n_ch, n_t))
    for _ in range(n_ch // 4 if n_t > 40 else 0):  # pulses: large differences, raw packets
        ch, t = rng.integers(0, n_ch), rng.integers(10, n_t - 20)
        adc[ch, t : t + 15] += rng.uniform(20, 3000) * np.exp(-np.arange(15) / 3)
    return np.clip(np.round(adc), 0, 4095).astype(np.uint16)


@pytest.mark.parametrize("sigma", [0.0, 0.4, 1.0, 2.0, 6.0])
def test_agrees_with_the_reference_decoder(sigma: float) -> None:
    rng = np.random.default_rng(int(sigma * 10) + 1)
    for n_t in (1, 2, 5, 13, 1667):
        adc = _event(rng, 40, n_t, sigma)
        payload = huffman.encode(adc)
        fast = decode_payload(payload, *adc.shape)
        assert fast is not None
        assert np.array_equal(fast, adc)
        assert np.array_equal(fast, huffman.decode(payload, *adc.shape))


def test_edge_values_and_constant_channels() -> None:
    adc = np.zeros((6, 100), dtype=np.uint16)
    adc[1] = 4095
    adc[2, ::2] = 4095
    adc[3] = np.arange(100) % 4  # small differences and repeats
    adc[4] = 2048 + (np.arange(100) % 7) - 3
    adc[5] = np.repeat(np.arange(25) * 3, 4)
    payload = huffman.encode(adc)
    out = decode_payload(payload, *adc.shape)
    assert out is not None and np.array_equal(out, adc)


def test_invalid_streams_are_refused_not_misread() -> None:
    rng = np.random.default_rng(9)
    adc = _event(rng, 20, 200, 1.0)
    payload = bytearray(huffman.encode(adc))
    assert decode_payload(bytes(payload[:-3]), *adc.shape) is None  # truncated
    assert decode_payload(bytes(payload) + b"\x00", *adc.shape) is None  # trailing bytes
    assert decode_payload(b"\xff" * len(payload), *adc.shape) is None  # starts with a code
    refused = 0
    for k in range(0, len(payload), 97):  # flipped bytes: refused, or what the reference says
        bad = bytearray(payload)
        bad[k] ^= 0xA5
        fast = decode_payload(bytes(bad), *adc.shape)
        try:
            ref = huffman.decode(bytes(bad), *adc.shape)
        except huffman.DecodeError:
            assert fast is None
            refused += 1
        else:
            assert fast is not None and np.array_equal(fast, ref)
    assert refused > 0
