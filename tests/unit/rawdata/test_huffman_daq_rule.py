"""The encoder writes what the DAQ's ``CompressChData`` writes, byte for byte.

The reference below is written from the DAQ's rule, as plainly as the DAQ writes it (strings
of bits): differences are grouped into runs of equal values; a run of n is the value's code,
then a repeat code for each four of the following differences as long as at least one more
follows (``jj + 4 <= nrep``: a run never ends with a repeat), then the rest one code each.
Code bits fill 13-bit code packets (``1`` + 12 bits, a code may straddle two); before a raw
packet (``0`` + 12 bits) an open code packet is padded with zeros; a channel's last code packet
is written as far as it goes, then the channel is padded to a byte.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from farmtools.rawdata.huffman import decode, decode_reference, encode

CODES = {0: "01", -1: "001", 1: "0001", -2: "00001", 2: "000001", -3: "0000001", 3: "00000001"}


def daq_channel(samples: list[int]) -> str:
    """One channel's bits as CompressChData writes them (before the padding to a byte)."""
    runs: list[list[int]] = []  # [difference, count] or [raw value, 0]
    for i, v in enumerate(samples):
        d = v - samples[i - 1] if i else 99
        if abs(d) > 3:
            runs.append([v, 0])
        elif runs and runs[-1][1] and runs[-1][0] == d:
            runs[-1][1] += 1
        else:
            runs.append([d, 1])
    bits, word = "", ""
    for value, count in runs:
        if count == 0:
            if len(word) > 1:
                bits += word.ljust(13, "0")
            bits += "0" + format(value, "012b")
            word = "1"
            continue
        nrep = count - 1
        jj = 0
        while jj <= nrep:
            if jj and jj + 4 <= nrep:
                word += "1"
                jj += 3
            else:
                word += CODES[value]
            while len(word) >= 13:
                bits += word[:13]
                word = "1" + word[13:]
            jj += 1
    if len(word) > 1:
        bits += word
    return bits + "0" * (-len(bits) % 8)


def daq_encode(adc: np.ndarray) -> bytes:
    bits = "".join(daq_channel([int(v) for v in row]) for row in adc)
    return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""


@st.composite
def channels(draw: st.DrawFn) -> np.ndarray:
    nch = draw(st.integers(1, 3))
    ns = draw(st.integers(1, 120))
    start = draw(st.integers(0, 4095))
    lengths = draw(hnp.arrays(np.int64, nch * ns, elements=st.integers(1, 14)))
    diffs = draw(hnp.arrays(np.int64, nch * ns, elements=st.integers(-5, 5)))
    steps = np.repeat(diffs, lengths)[: nch * ns].reshape(nch, ns)
    return np.clip(start + np.cumsum(steps, axis=1), 0, 4095).astype(np.uint16)


@settings(max_examples=300, deadline=None)
@given(channels())
def test_encoder_is_byte_identical_to_the_daq_rule(adc: np.ndarray) -> None:
    payload = encode(adc)
    assert payload == daq_encode(adc)
    assert np.array_equal(decode(payload, *adc.shape), adc)
    assert np.array_equal(decode_reference(payload, *adc.shape), adc)


def test_runs_of_every_length_around_the_repeat() -> None:
    """Runs of 1..14 equal differences: repeats only where one more difference follows."""
    for n in range(1, 15):
        adc = np.array([[100 + 2 * k for k in range(n + 1)] + [900]], np.uint16)
        assert encode(adc) == daq_encode(adc)
        assert np.array_equal(decode(encode(adc), 1, n + 2), adc)


def test_a_long_flat_channel_is_mostly_repeats() -> None:
    adc = np.full((1, 1667), 2000, np.uint16)
    payload = encode(adc)
    assert payload == daq_encode(adc)
    # 1666 zero differences: code (01), 416 repeats, one code for the last: 420 code bits in
    # 35 code packets, after the raw first sample
    bits = 13 + 420 + 35
    assert len(payload) == (bits + 7) // 8
    assert np.array_equal(decode(payload, 1, 1667), adc)
