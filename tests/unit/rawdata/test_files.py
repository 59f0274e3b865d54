"""Raw files: writer/reader round trips, the channel map, and fuzzing the reader with bad bytes."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from farmtools.cli import app
from farmtools.detector import WA105_3X1X1, Geometry
from farmtools.rawdata import RawDataError, RawFile, RawFileWriter, TriggerType
from farmtools.rawdata.format import uncompressed_file_size
from farmtools.rawdata.reader import ReadBuffers

SMALL = Geometry(name="small", channels_per_view=(8, 8), samples=20, channel_map="identity")


def _events(geo: Geometry, n: int, seed: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        np.clip(
            400
            + rng.normal(0, 2, (geo.n_channels, geo.samples))
            + 300 * (rng.random((geo.n_channels, 1)) < 0.1),
            0,
            4095,
        )
        .round()
        .astype(np.uint16)
        for _ in range(n)
    ]


def _write(
    path: Path, geo: Geometry, events: list[np.ndarray], compress: bool, run: int = 1014
) -> None:
    with RawFileWriter(path, run, geometry=geo, compress=compress, flags=3) as w:
        for i, adc in enumerate(events):
            w.write_event(
                adc,
                trigger_number=1000 + i,
                seconds=1_477_576_504 + i,
                nanoseconds=123_456_789,
                trigger_type=TriggerType.CRT if i % 2 else TriggerType.PMT,
                bad_cards=i % 3,
                event_number=50 + i,
            )


def test_channel_map_is_a_permutation() -> None:
    g = WA105_3X1X1
    assert sorted(g.view_to_daq.tolist()) == list(range(g.n_channels))
    assert np.array_equal(g.daq_to_view[g.view_to_daq], np.arange(g.n_channels))
    # view 0 stays in crate 0, view 1 in crates 1-3
    assert g.view_to_daq[:320].max() < 320 and g.view_to_daq[320:].min() >= 320


def test_wa105soft_channel_map_differs_from_larsoft_within_card_halves(tmp_path: Path) -> None:
    """WA105Soft's ChannelMap311 against LArSoft's Get311Chan (the default): same 32-channel
    card halves (so the coherent-noise groups agree), another place in them; a farm selects it
    with ``[farm] channel_map`` and the reader and writer follow it."""
    import dataclasses

    from farmtools.config import load_config

    alt = dataclasses.replace(WA105_3X1X1, channel_map="311-wa105soft")
    a, b = WA105_3X1X1.view_to_daq, alt.view_to_daq
    assert sorted(b.tolist()) == list(range(1280))
    assert np.array_equal(a // 32, b // 32) and not np.any(a == b)
    # WA105Soft, read from its source: DAQ 0 (crate 0, card 0, channel 0) is strip 319 of view
    # 0; DAQ 320 (crate 1, card 0, channel 0) is strip 160 of view 1, DAQ 352 strip 0
    assert (b[319], b[320 + 160], b[320]) == (0, 320, 352)
    # view 1: LArSoft's is WA105Soft's with every group of 8 strips reversed
    v = np.arange(320, 1280)
    assert np.array_equal(a[v], b[8 * (v // 8 + 1) - v % 8 - 1])
    toml = tmp_path / "farm.toml"
    toml.write_text('[farm]\nhome = "."\nchannel_map = "311-wa105soft"\n')
    geo = load_config(toml).geometry
    assert geo.channel_map == "311-wa105soft" and geo.name == "3x1x1"
    events = _events(geo, 1)
    _write(tmp_path / "run1-seq0.dat", geo, events, compress=False)
    with RawFile.open(tmp_path / "run1-seq0.dat", geo) as f:
        assert np.array_equal(f.event(0).adc, events[0])
    with RawFile.open(tmp_path / "run1-seq0.dat", WA105_3X1X1) as f:
        assert not np.array_equal(f.event(0).adc, events[0])


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip_3x1x1(tmp_path: Path, compress: bool) -> None:
    events = _events(WA105_3X1X1, 3)
    path = tmp_path / "run1014-seq2.dat"
    _write(path, WA105_3X1X1, events, compress)
    with RawFile.open(path) as f:
        assert (f.run, f.flags, f.n_events) == (1014, 3, 3)
        for i, ev in enumerate(f):
            h = ev.header
            assert np.array_equal(ev.adc, events[i])
            assert (h.trigger_number, h.seconds, h.nanoseconds, h.event_number) == (
                1000 + i,
                1_477_576_504 + i,
                123_456_789,
                50 + i,
            )
            assert h.trigger_type == (TriggerType.CRT if i % 2 else TriggerType.PMT)
            assert h.bad_cards == i % 3 and h.compressed == compress
        assert np.array_equal(f.event(-1).adc, events[2])
        report = f.validate()
    assert report.bad_card_events == 2 and report.compression == ("all" if compress else "none")
    if not compress:
        assert path.stat().st_size == uncompressed_file_size(3, WA105_3X1X1.payload_bytes)


@pytest.mark.parametrize("compress", [False, True])
def test_read_adc_into_reused_buffers_in_either_order_and_from_threads(
    tmp_path: Path, compress: bool
) -> None:
    """The allocation-free path the reconstruction uses: the same samples as ``event()``,
    in view or DAQ order, into arrays reused from event to event, also from two threads at
    once (each with its own buffers, one open file)."""
    g = WA105_3X1X1
    events = _events(g, 3, seed=8)
    path = tmp_path / "run1015-seq0.dat"
    _write(path, g, events, compress)
    with RawFile.open(path) as f:
        out = np.empty((g.n_channels, g.samples), dtype=np.uint16)
        buffers = ReadBuffers(g)
        for i, adc in enumerate(events):
            assert np.array_equal(f.read_adc(i, out, buffers), adc)
            daq = f.read_adc(i, out, buffers, daq_order=True)
            assert daq is out and np.array_equal(daq, adc[g.daq_to_view])

        def read_all(k: int) -> bool:
            mine, bufs = np.empty_like(out), ReadBuffers(g)
            return all(
                np.array_equal(f.read_adc(i, mine, bufs), events[i])
                for _ in range(2)
                for i in range(k % 2, len(events))
            )

        with ThreadPoolExecutor(2) as pool:
            assert all(pool.map(read_all, range(2)))


def test_file_size_formula_for_a_full_file() -> None:
    assert WA105_3X1X1.payload_bytes == 3_200_640
    assert uncompressed_file_size(335, WA105_3X1X1.payload_bytes) == 1_072_226_134


def test_writer_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "run1-seq0.dat"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        RawFileWriter(path, 1)
    assert path.read_bytes() == b"precious"


def test_file_has_no_footer_until_closed(tmp_path: Path) -> None:
    path = tmp_path / "run1-seq0.dat"
    w = RawFileWriter(path, 1, geometry=SMALL)
    w.write_event(_events(SMALL, 1)[0], trigger_number=0, seconds=0, nanoseconds=0)
    w.flush()
    with pytest.raises(RawDataError, match=r"truncated|footer"):
        RawFile.open(path, SMALL)
    w.close()
    assert RawFile.open(path, SMALL).n_events == 1


@pytest.fixture(scope="module", params=[False, True], ids=["packed", "compressed"])
def small_file(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("small") / "run7-seq0.dat"
    _write(path, SMALL, _events(SMALL, 2), request.param)
    return path.read_bytes()


def _read_all(path: Path) -> None:
    with RawFile.open(path, SMALL) as f:
        f.validate()


def test_truncation_at_every_offset(small_file: bytes, tmp_path: Path) -> None:
    path = tmp_path / "run7-seq0.dat"
    for cut in range(len(small_file)):
        path.write_bytes(small_file[:cut])
        with pytest.raises(RawDataError) as info:
            _read_all(path)
        assert info.value.path == str(path)
        assert info.value.offset is not None and 0 <= info.value.offset <= len(small_file)


def test_every_single_flipped_byte_is_caught_or_harmless(small_file: bytes, tmp_path: Path) -> None:
    """A flipped byte either raises RawDataError or decodes: never another exception."""
    path = tmp_path / "run7-seq0.dat"
    caught = 0
    for i in range(len(small_file)):
        data = bytearray(small_file)
        data[i] ^= 0xFF
        path.write_bytes(bytes(data))
        try:
            _read_all(path)
        except RawDataError:
            caught += 1
    assert caught > 0


def test_trailing_garbage_is_refused(small_file: bytes, tmp_path: Path) -> None:
    path = tmp_path / "run7-seq0.dat"
    path.write_bytes(small_file + b"\x00" * 7)
    with pytest.raises(RawDataError):
        _read_all(path)


def test_footer_count_mismatch(small_file: bytes, tmp_path: Path) -> None:
    path = tmp_path / "run7-seq0.dat"
    path.write_bytes(small_file[:-2] + (5).to_bytes(2, "big"))
    with pytest.raises(RawDataError, match="footer says 5 events but the file holds 2") as info:
        _read_all(path)
    assert info.value.offset == len(small_file) - 4


def test_wrong_payload_size_for_the_geometry(small_file: bytes, tmp_path: Path) -> None:
    path = tmp_path / "run7-seq0.dat"
    path.write_bytes(small_file)
    with pytest.raises(RawDataError), RawFile.open(path, WA105_3X1X1) as f:
        f.validate()


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=400))
def test_random_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "run1-seq0.dat"
    path.write_bytes(data)
    with pytest.raises(RawDataError):
        _read_all(path)


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(RawDataError, match="cannot open"):
        RawFile.open(tmp_path / "nothing.dat")
    (tmp_path / "empty.dat").write_bytes(b"")
    with pytest.raises(RawDataError, match="empty file"):
        RawFile.open(tmp_path / "empty.dat")


def test_inspect_cli(tmp_path: Path) -> None:
    good = tmp_path / "run1014-seq2.dat"
    _write(good, WA105_3X1X1, _events(WA105_3X1X1, 2), True)
    bad = tmp_path / "run1014-seq3.dat"
    bad.write_bytes(good.read_bytes()[:-100])
    runner = CliRunner()
    ok = runner.invoke(app, ["raw", "inspect", str(good)])
    assert ok.exit_code == 0, ok.output
    assert "run 1014, 2 events" in ok.output and "compression: all" in ok.output
    res = runner.invoke(app, ["raw", "inspect", str(good), str(bad)])
    assert res.exit_code == 1
    # the real console script, as the batch jobs and the shift crew run it
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "farmtools"), "raw", "inspect", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert str(bad) in proc.stderr and "event 1" in proc.stderr and "byte offset" in proc.stderr


def test_bytes_after_a_valid_footer_are_named_as_such(small_file: bytes, tmp_path: Path) -> None:
    path = tmp_path / "run7-seq0.dat"
    for extra in (b"\x00" * 10, b"\xff" * 40, b"x"):
        path.write_bytes(small_file + extra)
        with pytest.raises(RawDataError) as info:
            _read_all(path)
        assert info.value.reason == (
            f"{len(extra)} bytes after the footer (the footer at byte offset "
            f"{len(small_file) - 4} closes the file's 2 events; a complete file followed by "
            "other bytes)"
        )
        assert info.value.offset == len(small_file)


def test_a_file_cut_right_after_an_event_blames_the_missing_footer(
    small_file: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "run7-seq0.dat"
    with RawFile.open(_whole(small_file, tmp_path), SMALL) as f:
        second = f.event_offsets[1]
    for cut, event in ((len(small_file) - 4, 1), (second, 0)):
        path.write_bytes(small_file[:cut])
        with pytest.raises(RawDataError) as info:
            _read_all(path)
        assert info.value.reason == (
            f"footer missing: the file ends right after event {event}, which is complete"
        )
        assert info.value.offset == cut
    path.write_bytes(small_file[:-2])
    with pytest.raises(
        RawDataError, match=r"^file truncated in the footer \(2 of 4 bytes after event 1\)"
    ):
        _read_all(path)
    path.write_bytes(small_file[: second + 3])  # 3 bytes of the next event's header
    with pytest.raises(RawDataError) as info:
        _read_all(path)
    assert info.value.reason == "file truncated in an event header (3 of 35 bytes)"
    assert (info.value.event, info.value.offset) == (1, second)


def _whole(data: bytes, tmp_path: Path) -> Path:
    path = tmp_path / "whole" / "run7-seq0.dat"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path
