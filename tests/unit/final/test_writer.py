"""Final files from raw events: samples kept, compressed input copied as it came (issue 16)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from farmtools.final import writer
from farmtools.final.classify import EventClass
from farmtools.final.writer import OpenFiles, PackItem, write_final
from farmtools.rawdata.pddp_format import FRAGMENT_HEADER_SIZE
from farmtools.rawdata.pddp_reader import PDDPFile
from farmtools.rawdata.pddp_writer import write_pddp_file
from tests.unit.final.synth import GEO, event

KINDS = ["beam", "cosmic", "noisy", "beam"]


def _raw(tmp_path: Path, compress: bool) -> Path:
    rng = np.random.default_rng(7)
    raw = tmp_path / "5_0_a.dat"
    write_pddp_file(raw, 5, [event(k, i, rng, compress=compress)[0] for i, k in enumerate(KINDS)])
    return raw


def _pack(tmp_path: Path, raw: Path) -> Path:
    out = tmp_path / "final"
    out.mkdir()
    items = [PackItem(raw.name, str(raw), i, EventClass.BEAM) for i in range(len(KINDS))]
    with OpenFiles(GEO) as opened:
        return write_final(out, "5_1_B.dat", 5, "beam", items, opened, "t").path


def _cro(f: PDDPFile, i: int) -> list[bytes]:
    raw = f.read_raw_event(i)
    start = f.event_offsets[i]
    return [
        bytes(raw[p - start + FRAGMENT_HEADER_SIZE + h.lro_size :][: h.cro_size])
        for p, h in f.fragments[i]
    ]


def test_every_event_keeps_its_samples_through_the_reused_unpack_buffer(tmp_path: Path) -> None:
    raw = _raw(tmp_path, compress=False)
    final = _pack(tmp_path, raw)
    with PDDPFile(raw, GEO) as a, PDDPFile(final, GEO) as b:
        assert b.n_events == len(KINDS)
        for i in range(len(KINDS)):
            assert all(h.compressed for _p, h in b.fragments[i])
            assert (a.event_daq(i).adc == b.event_daq(i).adc).all(), i


def test_compressed_events_are_copied_never_coded_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_a: object, **_k: object) -> bytes:
        raise AssertionError("an event that came compressed was coded again")

    raw = _raw(tmp_path, compress=True)
    monkeypatch.setattr(writer.huffman, "encode", refuse)
    final = _pack(tmp_path, raw)
    with PDDPFile(raw, GEO) as a, PDDPFile(final, GEO) as b:
        for i in range(len(KINDS)):
            assert _cro(b, i) == _cro(a, i)  # the DAQ's code, byte for byte
