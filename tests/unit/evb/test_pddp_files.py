"""ProtoDUNE-DP files: farmtools' writer and reader against the oracle written from the public decoder."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from farmtools.detector import geometry
from farmtools.rawdata.errors import RawDataError
from farmtools.rawdata.pddp_format import LroPulse, pack_lro, unpack_lro
from farmtools.rawdata.pddp_naming import L1Name, L2Name, parse_l1_name, parse_l2_name
from farmtools.rawdata.pddp_reader import PDDPFile
from farmtools.rawdata.pddp_writer import Fragment, make_fragment, write_pddp_file
from tests.unit.evb import pddp_oracle

SMALL = geometry("6x6x6").with_samples(20)


def _event(
    rng: np.random.Generator, trigger: int, compress: bool = False
) -> tuple[np.ndarray, list[Fragment]]:
    g = SMALL
    view = rng.integers(380, 420, size=(g.n_channels, g.samples), dtype=np.uint16)
    daq = np.empty_like(view)
    daq[g.view_to_daq] = view
    fc = g.fragment_channels
    lro = pack_lro([LroPulse(3, 120, 55.5)])
    frags = [
        make_fragment(
            daq[k * fc : (k + 1) * fc],
            run=42,
            trigger_type=1,
            trigger_number=trigger,
            time_ns=1_700_000_000_123_456_789 + trigger,
            event_number=trigger,
            missing_cards=g.missing_cards(k),
            compress=compress,
            lro=lro if k == 0 else b"",
        )
        for k in range(2)
    ]
    return view, frags


@pytest.mark.parametrize("compress", [False, True])
def test_written_events_read_back_and_by_the_oracle(tmp_path: Path, compress: bool) -> None:
    rng = np.random.default_rng(5)
    views, events = zip(*[_event(rng, t, compress) for t in (7, 8, 9)], strict=True)
    path = tmp_path / "42_0_a.dat"
    write_pddp_file(path, 42, events)
    with PDDPFile.open(path, SMALL) as f:
        assert f.run == 42 and f.n_events == 3
        for i, view in enumerate(views):
            ev = f.event(i)
            assert np.array_equal(ev.adc, view)
            assert ev.good and not ev.incomplete
            assert ev.fragments[0].trigger_number == 7 + i
            assert unpack_lro(ev.lro[0]) == [LroPulse(3, 120, 55.5)]
        assert f.validate().compression == ("all" if compress else "none")
    oracle = pddp_oracle.read_file(str(path))
    assert len(oracle) == 3
    for oev, view in zip(oracle, views, strict=True):
        assert oev.good and len(oev.fragments) == 2
        assert oev.fragments[1].nanoseconds == 123_456_789 + oev.fragments[1].trigger_number
        if not compress:
            daq = np.concatenate(
                [pddp_oracle.unpack_cro(fr.cro, SMALL.samples) for fr in oev.fragments]
            )
            assert np.array_equal(daq[SMALL.view_to_daq], view)


def test_full_size_zero_event_is_byte_exact(tmp_path: Path) -> None:
    """A full 115 MB event (all zero samples): the bytes are the layout the decoder reads."""
    g = geometry("6x6x6")
    rows = np.zeros((g.fragment_channels, g.samples), dtype=np.uint16)
    frags = [
        make_fragment(rows, run=198, trigger_type=2, trigger_number=5, time_ns=3_000_000_004,
                      event_number=5, missing_cards=25)
        for _k in range(2)
    ]  # fmt: skip
    path = tmp_path / "198_129_b.dat"
    write_pddp_file(path, 198, [frags])
    frag = (
        b"\xff\xff" + struct.pack("<IB", 198, 0) + struct.pack("<B3xIqq", 2, 5, 3, 4)
        + struct.pack("<BIII", 25, 5, 0, 57_600_000)
    )  # fmt: skip
    assert len(frag) == 44
    one = frag + bytes(57_600_000) + b"\x00"
    expected = struct.pack("<II", 198, 1) + struct.pack("<IIII", 5, 2 * len(one), 5, 0) + one + one
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 24):
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(expected).hexdigest()
    with PDDPFile.open(path, g) as f:
        ev = f.event_daq(0)
        assert ev.adc.shape == (7680, 10000) and not ev.adc.any() and ev.good


def test_placeholder_makes_the_event_incomplete_for_both_readers(tmp_path: Path) -> None:
    _view, frags = _event(np.random.default_rng(1), 3)
    hole = Fragment(frags[0].header.placeholder_for(60), b"\x00")
    path = tmp_path / "42_1_a.dat"
    write_pddp_file(path, 42, [[frags[0], hole]], incomplete=[True])
    with PDDPFile.open(path, SMALL) as f:
        ev = f.event_daq(0)
        assert ev.incomplete and not ev.good
        assert not ev.adc[SMALL.fragment_channels :].any()
    (oracle,) = pddp_oracle.read_file(str(path))
    assert not oracle.good and len(oracle.fragments) == 2


def _small_file(tmp_path: Path, n: int = 2) -> Path:
    rng = np.random.default_rng(2)
    path = tmp_path / "42_2_a.dat"
    write_pddp_file(path, 42, [_event(rng, t)[1] for t in range(n)])
    return path


def test_errors_name_file_event_fragment_and_offset(tmp_path: Path) -> None:
    path = _small_file(tmp_path)
    data = bytearray(path.read_bytes())
    first = 8 + 2 * 16
    second_event = first + struct.unpack_from("<I", data, 8 + 4)[0]
    second_fragment = second_event + 44 + 20 + SMALL.fragment_bytes + 1  # LRO: 20 bytes
    bad = bytearray(data)
    bad[second_fragment] = 0x00
    (tmp_path / "bad.dat").write_bytes(bad)
    with pytest.raises(RawDataError) as exc:
        PDDPFile.open(tmp_path / "bad.dat", SMALL)
    assert (exc.value.event, exc.value.fragment, exc.value.offset) == (1, 1, second_fragment)
    assert "bad.dat" in str(exc.value) and "fragment 1" in str(exc.value)
    (tmp_path / "cut.dat").write_bytes(data[:-10])
    with pytest.raises(RawDataError) as exc:
        PDDPFile.open(tmp_path / "cut.dat", SMALL)
    assert exc.value.event == 1 and exc.value.offset == second_event
    (tmp_path / "long.dat").write_bytes(data + b"x")
    with pytest.raises(RawDataError, match="1 bytes after the last event"):
        PDDPFile.open(tmp_path / "long.dat", SMALL)
    (tmp_path / "none.dat").write_bytes(struct.pack("<II", 42, 0))
    with pytest.raises(RawDataError, match="0 events"):
        PDDPFile.open(tmp_path / "none.dat", SMALL)


def test_wrong_geometry_is_named(tmp_path: Path) -> None:
    path = _small_file(tmp_path, 1)
    with pytest.raises(RawDataError, match="CRO segment of 115200 bytes") as exc:
        PDDPFile.open(path, geometry("6x6x6").with_samples(40))
    assert exc.value.fragment == 0


def test_names() -> None:
    assert parse_l2_name("/x/198_129_b.test") == L2Name(198, 129, "b", "test")
    assert parse_l2_name("198_129_bb.dat") is None
    assert parse_l2_name("run1-seq2.dat") is None
    assert parse_l1_name("12_3_l1evb1.frag") == L1Name(12, 3, 1)
    assert parse_l2_name(L1Name(12, 3, 1).filename) is None
    assert L2Name(1, 2, "a").filename == "1_2_a.dat"


def test_raw_inspect_reads_both_formats_by_name_and_content(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from farmtools.cli import app

    path = _small_file(tmp_path, 2)
    unnamed = tmp_path / "renamed.bin"
    unnamed.write_bytes(path.read_bytes())
    runner = CliRunner()
    res = runner.invoke(app, ["raw", "inspect", "--json", "--detector", "6x6x6:20", str(path)])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert (doc["format"], doc["events"], doc["run"]) == ("pddp", 2, 42)
    res = runner.invoke(app, ["raw", "inspect", "--json", str(unnamed)])
    # by content: a ProtoDUNE-DP file, read with the full 6x6x6 geometry: wrong CRO size, named
    assert res.exit_code == 1
    assert json.loads(res.stdout)["error"].startswith("CRO segment of 115200 bytes")


def test_odd_sample_count_and_missing_fragment_in_view_order(tmp_path: Path) -> None:
    g = geometry("6x6x6:21")
    rng = np.random.default_rng(4)
    view = rng.integers(0, 4096, size=(g.n_channels, g.samples), dtype=np.uint16)
    daq = np.empty_like(view)
    daq[g.view_to_daq] = view
    fc = g.fragment_channels
    first = make_fragment(
        daq[:fc], run=1, trigger_type=0, trigger_number=0, time_ns=5, event_number=0
    )
    second = make_fragment(
        daq[fc:], run=1, trigger_type=0, trigger_number=0, time_ns=5, event_number=0
    )
    hole = Fragment(first.header.placeholder_for(60), b"\x00")
    path = tmp_path / "1_0_a.dat"
    write_pddp_file(path, 1, [[first, second], [first, hole]], incomplete=[False, True])
    with PDDPFile.open(path, g) as f:
        assert np.array_equal(f.event(0).adc, view)
        partial = f.event(1).adc
        present = g.daq_to_view[:fc]
        assert np.array_equal(partial[present], view[present])
        assert not partial[g.daq_to_view[fc:]].any()


def test_fragments_decoded_side_by_side_on_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With cores given, an event's compressed fragments are decoded side by side: the same
    samples in both orders, and a bad segment named as one by one (event, fragment, offset)."""
    rng = np.random.default_rng(11)
    views, events = zip(*[_event(rng, t, compress=True) for t in (7, 8)], strict=True)
    path = tmp_path / "42_0_a.dat"
    write_pddp_file(path, 42, events)
    data = bytearray(path.read_bytes())
    data[-6:-1] = b"\xff" * 5  # the last fragment's compressed segment ends in repeats
    (tmp_path / "bad.dat").write_bytes(data)
    seen = []
    for threads in ("1", "2"):
        monkeypatch.setenv("FARMTOOLS_THREADS", threads)
        with PDDPFile.open(path, SMALL) as f:
            assert np.array_equal(f.event(1).adc, views[1])
            assert np.array_equal(f.event_daq(0).adc[SMALL.view_to_daq], views[0])
        with PDDPFile.open(tmp_path / "bad.dat", SMALL) as f, pytest.raises(RawDataError) as exc:
            f.event(1)
        seen.append((exc.value.event, exc.value.fragment, exc.value.offset, str(exc.value)))
    assert seen[0] == seen[1] and seen[0][:2] == (1, 1)
