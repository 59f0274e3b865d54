"""adler32 in chunks, on a helper thread, of files, and its printed form."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from farmtools.storage.checksum import (
    ChunkSummer,
    adler32,
    adler32_file,
    adler32_hex,
    parse_adler32,
)


@given(st.binary(max_size=5000), st.integers(min_value=1, max_value=700))
def test_chunked_adler32_is_the_whole_adler32(data: bytes, chunk: int) -> None:
    summer = ChunkSummer()
    view = memoryview(data)
    for pos in range(0, len(data), chunk):
        summer.feed(view[pos : pos + chunk])
    assert summer.value() == zlib.adler32(data)


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=3000), st.integers(min_value=1, max_value=1000))
def test_adler32_file_in_any_chunk_size(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, chunk: int
) -> None:
    path = tmp_path_factory.mktemp("a") / "f"
    path.write_bytes(data)
    assert adler32_file(path, chunk=chunk) == zlib.adler32(data)


def test_empty_input_is_one() -> None:
    assert ChunkSummer().value() == 1 == zlib.adler32(b"")


def test_adler32_of_a_large_file(tmp_path: Path) -> None:
    data = bytes(range(256)) * 70000  # 17.9 MB: more than two 8 MiB chunks
    path = tmp_path / "big"
    path.write_bytes(data)
    assert adler32_file(path) == zlib.adler32(data)


@given(st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_hex_form_is_8_digits_and_round_trips(value: int) -> None:
    text = adler32_hex(value)
    assert len(text) == 8 and int(text, 16) == value
    assert parse_adler32(text) == value
    assert parse_adler32(f"adler32 {value:x}\n") == value  # as xrdfs prints it, unpadded


def test_leading_zeros_compare_right() -> None:
    small = zlib.adler32(b"\x00")  # 0x00010001
    assert adler32_hex(small) == "00010001"
    assert parse_adler32("adler32 10001") == parse_adler32("00010001") == small


@given(st.binary(max_size=4000), st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_the_fast_adler32_is_zlibs(data: bytes, start: int) -> None:
    """ISA-L's adler32 (when installed) gives zlib's values, from any running value."""
    assert adler32(data) == zlib.adler32(data)
    assert adler32(memoryview(data)[1:], start) == zlib.adler32(data[1:], start)


def test_chunk_summer_holds_at_most_max_pending_chunks() -> None:
    """Fresh buffers handed over by a reader: feed() waits rather than queueing them all."""
    import threading

    gate = threading.Event()
    summer = ChunkSummer(max_pending=2)
    summer._pool.submit(gate.wait, 10)  # a stalled summer (the worker is busy)
    summer.feed(memoryview(b"a"))
    summer.feed(b"b")  # two chunks wait: the limit
    fed = threading.Event()

    def third() -> None:
        summer.feed(b"c")
        fed.set()

    t = threading.Thread(target=third)
    t.start()
    try:
        assert not fed.wait(0.2), "feed() did not wait for the summer"
    finally:
        gate.set()
    t.join(timeout=5)
    assert fed.is_set()
    assert summer.value() == zlib.adler32(b"abc")
