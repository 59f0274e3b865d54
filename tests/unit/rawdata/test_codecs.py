"""12-bit packing and the Huffman codec: round trips, extremes, and one vector derived by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from farmtools.rawdata.huffman import DecodeError, decode, encode
from farmtools.rawdata.packing import pack12, packed_size, unpack12

samples_12bit = hnp.arrays(np.uint16, st.integers(0, 600), elements=st.integers(0, 4095))


@settings(deadline=None)
@given(samples_12bit)
def test_pack_round_trip(values: np.ndarray) -> None:
    packed = pack12(values)
    assert packed.size == packed_size(values.size)
    assert np.array_equal(unpack12(packed, values.size), values)


def test_pack_layout_matches_spec() -> None:
    # v1 = 0xABC, v2 = 0x123 -> b0 = 0xAB, b1 = 0xC1, b2 = 0x23
    assert pack12(np.array([0xABC, 0x123], np.uint16)).tobytes() == bytes([0xAB, 0xC1, 0x23])
    assert pack12(np.array([0, 4095], np.uint16)).tobytes() == bytes([0x00, 0x0F, 0xFF])


def test_pack_refuses_13_bits() -> None:
    with pytest.raises(ValueError, match="12 bits"):
        pack12(np.array([4096, 0], np.uint16))


def test_unpack_refuses_short_buffer() -> None:
    with pytest.raises(ValueError):
        unpack12(b"\x00\x01", 2)


def _channels(draw: st.DrawFn) -> np.ndarray:
    nch = draw(st.integers(1, 4))
    # beyond 49 samples a channel goes through the decoder's table loop, not only its tail
    ns = draw(st.one_of(st.integers(1, 60), st.integers(61, 200)))
    kind = draw(st.sampled_from(["random", "walk", "constant", "steps", "extremes", "runs"]))
    if kind == "random":
        return draw(hnp.arrays(np.uint16, (nch, ns), elements=st.integers(0, 4095)))
    if kind == "constant":
        v = draw(st.integers(0, 4095))
        return np.full((nch, ns), v, np.uint16)
    if kind == "extremes":
        return draw(hnp.arrays(np.uint16, (nch, ns), elements=st.sampled_from([0, 1, 4094, 4095])))
    start = draw(st.integers(0, 4095))
    if kind == "runs":  # runs of equal differences of every length: where the repeat code goes
        lengths = draw(hnp.arrays(np.int64, nch * ns, elements=st.integers(1, 14)))
        diffs = draw(hnp.arrays(np.int64, nch * ns, elements=st.integers(-4, 4)))
        steps = np.repeat(diffs, lengths)[: nch * ns].reshape(nch, -1)
        steps = np.pad(steps, ((0, 0), (0, ns - steps.shape[1])))
        return np.clip(start + np.cumsum(steps, axis=1), 0, 4095).astype(np.uint16)
    lo, hi = (-3, 3) if kind == "walk" else (-6, 6)
    steps = draw(hnp.arrays(np.int64, (nch, ns), elements=st.integers(lo, hi)))
    return np.clip(start + np.cumsum(steps, axis=1), 0, 4095).astype(np.uint16)


@settings(max_examples=300, deadline=None)
@given(st.composite(_channels)())
def test_huffman_round_trip(adc: np.ndarray) -> None:
    nch, ns = adc.shape
    assert np.array_equal(decode(encode(adc), nch, ns), adc)


def test_huffman_long_repeats_and_far_jumps() -> None:
    ramp = (1000 + 2 * np.arange(1667)).clip(0, 4095)
    saw = np.where(np.arange(1667) % 50 < 25, 0, 4095)
    adc = np.stack([ramp, saw, np.full(1667, 4095), np.zeros(1667)]).astype(np.uint16)
    payload = encode(adc)
    assert np.array_equal(decode(payload, 4, 1667), adc)
    # a constant channel costs one raw packet and a repeat bit per four samples
    assert len(encode(adc[2:3])) < 1667 // 4 // 8 * 2 + 10


def _bits(text: str) -> bytes:
    text = text.replace(" ", "")
    return int(text, 2).to_bytes(len(text) // 8, "big")


def test_huffman_golden_vector() -> None:
    """Derived by hand from the spec and the DAQ's rule, independently of the encoder.

    samples 400, 401, ..., 405, 300 (one channel): five differences of +1 are five codes (the
    DAQ never ends a run with the repeat code, so a run of five has no room for one):
      raw 400                          0 000110010000
      +1 +1 +1 (code packet, 0001 x3)  1 000100010001
      +1 +1, padded before the raw     1 00010001 0000
      raw 300                          0 000100101100
      pad to a byte                    0000
    """
    expected = _bits("0000110010000 1000100010001 1000100010000 0000100101100 0000")
    adc = np.array([[400, 401, 402, 403, 404, 405, 300]], np.uint16)
    assert encode(adc) == expected
    assert np.array_equal(decode(expected, 1, 7), adc)
    # the greedy form (+1, then a repeat for the last four) is as valid, and decodes alike
    greedy = _bits("0000110010000 1000110000000 0000100101100 0")
    assert np.array_equal(decode(greedy, 1, 7), adc)


def test_huffman_golden_vector_with_a_repeat() -> None:
    """Six differences of +1: code, repeat (four), code; then a raw 300 and the padding."""
    expected = _bits("0000110010000 1000110001000 0000100101100 0")
    adc = np.array([[400, 401, 402, 403, 404, 405, 406, 300]], np.uint16)
    assert encode(adc) == expected
    assert np.array_equal(decode(expected, 1, 8), adc)


def test_huffman_code_continues_into_next_packet() -> None:
    # twelve differences of -3 (7 bits each) must straddle packet boundaries
    adc = np.array(
        [[4000 - 3 * i if i < 2 else 4000 - 3 * i - (i % 2) for i in range(13)]], np.uint16
    )
    assert np.array_equal(decode(encode(adc), 1, 13), adc)


@pytest.mark.parametrize(
    "sigma, expected", [(0.7, 3.4), (1.0, 2.8), (1.5, 2.0), (2.0, 1.6), (3.0, 1.2)]
)
def test_huffman_ratio_on_white_noise(sigma: float, expected: float) -> None:
    """The spec's expected compression ratios for white noise (section 2)."""
    rng = np.random.default_rng(7)
    adc = (400 + rng.normal(0, sigma, (64, 1667))).round().astype(np.uint16)
    ratio = adc.size * 1.5 / len(encode(adc))
    assert ratio == pytest.approx(expected, rel=0.06)


@pytest.mark.parametrize(
    "payload, match",
    [
        (b"", "ends before"),
        (bytes([0x80, 0x00, 0x00]), "does not start with a raw"),
        (int("0000000000001" + "1" + "1" + "0" * 9, 2).to_bytes(3, "big"), "repeat code without"),
        (
            int("0000000000001" + "1" + "000000001" + "0" * 1, 2).to_bytes(3, "big"),
            "more than 7 zeros",
        ),
        (int("0000000000000" + "1" + "001" + "0" * 7, 2).to_bytes(3, "big"), "outside 0..4095"),
    ],
)
def test_huffman_malformed_streams(payload: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode(payload, 1, 3)


def test_huffman_trailing_bytes() -> None:
    payload = encode(np.array([[5, 6, 7]], np.uint16))
    with pytest.raises(DecodeError, match="left over"):
        decode(payload + b"\x00", 1, 3)
