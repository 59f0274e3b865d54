"""``farmtools daq emulate`` end to end: physics and template modes, checked by ``raw inspect``."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

from typer.testing import CliRunner

from farmtools.cli import app
from farmtools.detector import WA105_3X1X1 as G
from farmtools.emulator.truth import truth_path
from farmtools.rawdata import RawFile
from farmtools.rawdata.endofrun import read_end_of_run

runner = CliRunner()


def test_emulate_physics_then_template(tmp_path: Path) -> None:
    out = tmp_path / "evb"
    gain_map = tmp_path / "gains.json"
    gain_map.write_text(json.dumps({str(lem): 15.0 + lem for lem in range(1, 13)}))
    res = runner.invoke(
        app,
        [
            "daq",
            "emulate",
            "--out",
            str(out),
            "--run",
            "3",
            "--files",
            "2",
            "--events",
            "2",
            "--compress",
            "--lifetime-ms",
            "5",
            "--gain-map",
            str(gain_map),
            "--asymmetry",
            "-0.1",
            "--seed",
            "4",
        ],
    )
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in out.glob("*.dat"))
    assert names == ["run3-seq0.dat", "run3-seq1.dat"]
    truth = json.loads(truth_path(out / "run3-seq1.dat").read_text())
    assert truth["injected"]["gain_map"]["12"] == 27.0 and truth["injected"]["lifetime_ms"] == 5.0
    assert truth["injected"]["asymmetry"] == -0.1 and truth["seed"] == 4
    # the end-of-run record: every file with its real size, adler32 and events (docs/runs.md)
    record = read_end_of_run(out / "run3.eor.json")
    assert (record.run, record.files, record.events, record.last_seq) == (3, 2, 4, 1)
    for entry in record.file_list:
        data = (out / entry.name).read_bytes()
        assert (entry.size, entry.adler32) == (len(data), f"{zlib.adler32(data):08x}")

    res = runner.invoke(app, ["raw", "inspect", *(str(out / n) for n in names)])
    assert res.exit_code == 0, res.output

    res = runner.invoke(
        app,
        [
            "daq",
            "emulate",
            "--out",
            str(out),
            "--run",
            "9",
            "--files",
            "2",
            "--template",
            str(out / "run3-seq0.dat"),
        ],
    )
    assert res.exit_code == 0, res.output
    for seq in (0, 1):
        raw = RawFile.open(out / f"run9-seq{seq}.dat", G)
        raw.validate()
        assert raw.n_events == 2


def test_bad_gain_map_is_refused_naming_the_file(tmp_path: Path) -> None:
    gain_map = tmp_path / "gains.json"
    gain_map.write_text(json.dumps({"1": 20.0, "2": 20.0}))
    res = runner.invoke(
        app,
        ["daq", "emulate", "--out", str(tmp_path / "o"), "--run", "1", "--gain-map", str(gain_map)],
    )
    assert res.exit_code == 2
    assert "gains.json" in res.output and "lacks LEMs" in res.output
    assert not list((tmp_path).glob("o/*.dat"))
