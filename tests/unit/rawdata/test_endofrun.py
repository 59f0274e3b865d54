"""The end-of-run record's format: written atomically, read back, bad records named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from farmtools.rawdata.endofrun import (
    EndOfRunError,
    EorFile,
    eor_name,
    parse_eor_name,
    read_end_of_run,
    write_end_of_run,
)


def test_written_record_reads_back_with_counts_and_sequence_range(tmp_path: Path) -> None:
    files = [
        EorFile("run9-seq1.dat", 1, 10, "0000000a", 5),
        EorFile("run9-seq0.dat", 0, 20, None, 7),
    ]
    path = write_end_of_run(tmp_path, 9, files)
    assert path.name == eor_name(9) == "run9.eor.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run9.eor.json"]  # no temporary left
    rec = read_end_of_run(path)
    assert (rec.run, rec.files, rec.events, rec.first_seq, rec.last_seq) == (9, 2, 12, 0, 1)
    assert [f.name for f in rec.file_list] == ["run9-seq0.dat", "run9-seq1.dat"]
    assert rec.file_list[1].adler32 == "0000000a" and rec.ended and rec.ended.endswith("Z")
    assert parse_eor_name(path) == 9 and parse_eor_name("run9.eor.json.tmp") is None


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("not json", "not JSON"),
        ([], "expected a JSON object"),
        ({"format": "other", "run": 3}, "format 'other'"),
        ({"format": "farmtools-eor/1", "run": 4, "files": 1, "events": 1}, "says run 4"),
        ({"format": "farmtools-eor/1", "run": 3, "files": -1, "events": 1}, "'files' must be"),
        ({"format": "farmtools-eor/1", "run": 3, "files": 1}, "'events' must be"),
        (
            {
                "format": "farmtools-eor/1",
                "run": 3,
                "files": 1,
                "events": 1,
                "file_list": [{"name": "run3-seq0.dat", "seq": 0, "adler32": "xyz"}],
            },
            "adler32 'xyz'",
        ),
    ],
)
def test_a_bad_record_is_refused_naming_the_file_and_the_problem(
    tmp_path: Path, doc: object, message: str
) -> None:
    path = tmp_path / "run3.eor.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(EndOfRunError, match=message) as err:
        read_end_of_run(path)
    assert str(path) in str(err.value)
