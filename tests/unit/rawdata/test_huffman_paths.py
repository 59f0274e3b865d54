"""The two decoders of the compressed format agree: the table-driven fast path and the reference walk.

:func:`huffman.decode` runs the table-driven decoder and falls back on the reference walk only
to explain a stream it refuses, so the fast path must never accept what the reference refuses,
nor read anything differently.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from farmtools.rawdata import huffman, huffman_table


def _event(rng: np.random.Generator, n_ch: int, n_t: int, sigma: float) -> np.ndarray:
    adc = 400 + rng.normal(0, sigma, (n_ch, n_t))
    for _ in range(n_ch // 4 if n_t > 40 else 0):  # pulses: large differences, raw packets
        ch, t = rng.integers(0, n_ch), rng.integers(10, n_t - 20)
        adc[ch, t : t + 15] += rng.uniform(20, 3000) * np.exp(-np.arange(15) / 3)
    return np.clip(np.round(adc), 0, 4095).astype(np.uint16)


def _fast(payload: bytes, n_ch: int, n_t: int, threads: int = 1) -> np.ndarray | None:
    """The fast path alone: the samples, or None when it refuses the stream."""
    out = np.empty((n_ch, n_t), dtype=np.uint16)
    raw = np.frombuffer(payload, dtype=np.uint8)
    return out if huffman_table.decode(raw, out, threads) else None


@pytest.mark.parametrize("sigma", [0.0, 0.4, 1.0, 2.0, 6.0])
def test_the_fast_path_agrees_with_the_reference(sigma: float) -> None:
    rng = np.random.default_rng(int(sigma * 10) + 1)
    for n_t in (1, 2, 5, 13, 1667):
        adc = _event(rng, 40, n_t, sigma)
        payload = huffman.encode(adc)
        fast = _fast(payload, *adc.shape)
        assert fast is not None and np.array_equal(fast, adc)
        assert np.array_equal(huffman.decode_reference(payload, *adc.shape), adc)


CODES = {0: "01", -1: "001", 1: "0001", -2: "00001", 2: "000001", -3: "0000001", 3: "00000001"}


def _random_stream(rng: np.random.Generator, n_ch: int, n_t: int) -> bytes:
    """A stream of random valid symbols, which no encoder would write in that order.

    Repeats anywhere a last difference exists (also ending runs, first in a packet, many in a
    row), raw packets after any code, and now and then a value pushed outside 0..4095: what
    the table decoder reads from the carried-over state, checked against the reference walk.
    """
    bits = ""
    for _ in range(n_ch):
        v = int(rng.integers(0, 4096))
        ch = "0" + format(v, "012b")
        word = ""  # the open code packet's bits, without its header
        count, last = 1, None
        while count < n_t:
            r = rng.random()
            if r < 0.15 or (count == 1 and r < 0.3):
                v = int(rng.integers(0, 4096))
                ch += ("1" + word).ljust(13, "0") if word else ""
                ch += "0" + format(v, "012b")
                word, last, count = "", None, count + 1
                continue
            if last is not None and r < 0.45 and count + 4 <= n_t:
                code, count = "1", count + 4
            else:
                last = int(rng.integers(-3, 4))
                code, count = CODES[last], count + 1
            word += code
            while len(word) >= 12:
                ch += "1" + word[:12]
                word = word[12:]
        ch += "1" + word if word else ""
        bits += ch + "0" * (-len(ch) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


@pytest.mark.parametrize("n_t", [1, 7, 49, 50, 120, 1667])
def test_random_symbol_streams_are_read_alike(n_t: int) -> None:
    rng = np.random.default_rng(n_t)
    accepted = 0
    for _ in range(30):
        payload = _random_stream(rng, 3, n_t)
        fast = _fast(payload, 3, n_t)
        try:
            ref = huffman.decode_reference(payload, 3, n_t)
        except huffman.DecodeError as exc:
            assert fast is None and "outside 0..4095" in str(exc)
        else:
            assert fast is not None and np.array_equal(fast, ref)
            accepted += 1
    assert accepted > 0


def test_edge_values_and_constant_channels() -> None:
    adc = np.zeros((6, 100), dtype=np.uint16)
    adc[1] = 4095
    adc[2, ::2] = 4095
    adc[3] = np.arange(100) % 4  # small differences and repeats
    adc[4] = 2048 + (np.arange(100) % 7) - 3
    adc[5] = np.repeat(np.arange(25) * 3, 4)
    out = _fast(huffman.encode(adc), *adc.shape)
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
        assert _fast(bad, *adc.shape) is None
        with pytest.raises(huffman.DecodeError, match=reason):
            huffman.decode(bad, *adc.shape)
    refused = 0
    for k in range(0, len(payload), 97):  # flipped bytes: refused by both, or read alike
        flipped = bytearray(payload)
        flipped[k] ^= 0xA5
        fast = _fast(bytes(flipped), *adc.shape)
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


@pytest.mark.parametrize(("threads", "n_t", "step"), [(2, 300, 211), (3, 300, 211), (2, 900, 701)])
def test_channel_blocks_in_parallel_read_alike(threads: int, n_t: int, step: int) -> None:
    """Channel starts found first, blocks decoded on threads: the same samples, the same
    refusals, also of streams whose counting goes wrong (flipped bytes); at ``n_t`` 900 the
    counting runs 8 packets at a time too."""
    rng = np.random.default_rng(threads)
    adc = _event(rng, 40, n_t, 1.5)
    payload = huffman.encode(adc)
    fast = _fast(payload, 40, n_t, threads=threads)
    assert fast is not None and np.array_equal(fast, adc)
    assert np.array_equal(huffman.decode(payload, *adc.shape, threads=threads), adc)
    for k in range(0, len(payload), step):
        flipped = bytearray(payload)
        flipped[k] ^= 0x5A
        one, many = _fast(bytes(flipped), 40, n_t), _fast(bytes(flipped), 40, n_t, threads)
        assert (one is None) == (many is None)
        assert one is None or many is None or np.array_equal(one, many)


def test_threads_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARMTOOLS_THREADS", "3")
    assert huffman.threads_from_env() == 3
    adc = _event(np.random.default_rng(4), 12, 100, 1.0)
    assert np.array_equal(huffman.decode(huffman.encode(adc), 12, 100), adc)
    monkeypatch.setenv("FARMTOOLS_THREADS", "many")
    with pytest.raises(ValueError, match="FARMTOOLS_THREADS='many'"):
        huffman.decode(huffman.encode(adc), 12, 100)
    monkeypatch.delenv("FARMTOOLS_THREADS")
    assert huffman.threads_from_env() == 1


@pytest.mark.parametrize("threads", [2, 3, 8])
def test_blocks_cover_every_channel_once_earlier_ones_larger(threads: int) -> None:
    bounds = huffman_table.block_bounds(1280, threads)
    assert bounds[0] == 0 and bounds[-1] == 1280 and len(bounds) == threads + 1
    sizes = np.diff(bounds)
    assert (sizes > 0).all() and (np.diff(sizes) <= 0).all()


def test_out_must_be_rows_of_uint16_in_one_piece() -> None:
    adc = _event(np.random.default_rng(5), 4, 60, 1.0)
    payload = huffman.encode(adc)
    out = np.empty((4, 60), np.uint16)
    assert huffman.decode(payload, 4, 60, out=out) is out and np.array_equal(out, adc)
    bad: list[Any] = [np.empty((4, 120), np.uint16)[:, ::2], np.empty((4, 60), np.int32)]
    for wrong in bad:
        with pytest.raises(ValueError, match="C-contiguous uint16"):
            huffman.decode(payload, 4, 60, out=wrong)


def _channel(bits: str) -> bytes:
    """One channel's stream from its packets' bits, padded to a byte."""
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


@pytest.mark.parametrize("more", [0, 100])
@pytest.mark.parametrize(
    ("faulty", "n_t", "reason"),
    [
        ("0" + "0" * 12 + "1" + "1" * 12, 321, "repeat code without a previous difference"),
        ("1" + "000000001" + "000", 272, "invalid difference code"),
        ("1" + "0" * 12 + "1" + "0000000" + "1" + "0001", 274, "invalid difference code"),
    ],
)
def test_faults_deep_in_a_channel_are_caught_by_the_table_loop(
    faulty: str, n_t: int, reason: str, more: int
) -> None:
    """A repeat right after a raw packet, more than 7 zeros inside a packet or across two: in
    the table loop's reach (the channel's first 80 samples), followed by a raw sample (the
    fault must be caught in its own packet), refused like the reference.  ``n_t`` is the
    channel's length were the faulty packet read as its table entry says (a repeat of 48, none,
    two samples): the fault, not the length, is what must be found.  With ``more`` packets
    after it, the fault is in the unrolled blocks' reach (more than 400 samples before the
    channel's end)."""
    good = "0" + format(2000, "012b") + ("1" + "01" * 6) * 5  # 31 samples
    rest = "0" + format(1000, "012b") + ("1" + "01" * 6) * (40 + more)  # 1 + 240 + 6 more
    payload = _channel(good + faulty + rest)
    n_t += 6 * more
    assert _fast(payload, 1, n_t) is None
    with pytest.raises(huffman.DecodeError, match=reason):
        huffman.decode(payload, 1, n_t)


@pytest.mark.parametrize("n_t", [300, 1000])
def test_all_zero_code_packets_are_read_like_the_reference(n_t: int) -> None:
    """An all-zero code packet (no encoder writes one) is padding before a raw packet and makes
    the next code invalid otherwise; read alike by both decoders in the table loop and in the
    unrolled blocks (``n_t`` 1000)."""
    zero, codes = "1" + "0" * 12, ("1" + "01" * 6) * 4  # 24 samples
    raw = "0" + format(1000, "012b")
    for middle, valid in ((zero + raw, True), (zero * 3 + raw, True), (zero + codes, False)):
        left = n_t - 1 - 24 - (1 if valid else 0)  # samples still to write
        tail = ("1" + "01" * 6) * (left // 6) + ("1" + "01" * (left % 6) if left % 6 else "")
        payload = _channel(raw + codes + middle + tail)
        fast = _fast(payload, 1, n_t)
        if valid:
            ref = huffman.decode_reference(payload, 1, n_t)
            assert fast is not None and np.array_equal(fast, ref)
        else:
            assert fast is None
            with pytest.raises(huffman.DecodeError, match="invalid difference code"):
                huffman.decode_reference(payload, 1, n_t)


def test_the_raw_entry_constant_is_the_table_s() -> None:
    pairs, _runs, _mf = huffman_table.tables()
    assert pairs[-1] == huffman_table.S_RAW
