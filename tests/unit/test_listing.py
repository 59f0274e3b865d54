"""The shared output of the listing commands (farmtools/listing.py): JSON values and plain text."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from farmtools.bookkeeping.states import FileState
from farmtools.listing import emit, emit_json, jsonable, utc_text


def test_times_are_iso_utc_of_one_width() -> None:
    cern = timezone(timedelta(hours=1))
    assert utc_text(datetime(2026, 12, 7, 20, 13, tzinfo=cern)) == "2026-12-07T19:13:00.000000Z"
    assert utc_text(datetime(2026, 12, 7, 19, 13, 0, 5, tzinfo=UTC)) == (
        "2026-12-07T19:13:00.000005Z"
    )
    assert utc_text(None) is None
    parsed = datetime.fromisoformat(str(utc_text(datetime(2026, 1, 2, tzinfo=cern))))
    assert parsed == datetime(2026, 1, 2, tzinfo=cern)


def test_json_has_no_nan_and_plain_types(capsys: pytest.CaptureFixture[str]) -> None:
    t = datetime(2026, 12, 7, tzinfo=UTC)
    doc = {"cpu_s": float("nan"), "rss": float("inf"), "runs": (1, 2), "state": FileState.STORED}
    assert jsonable([doc, {"t": t}]) == [
        {"cpu_s": None, "rss": None, "runs": [1, 2], "state": "stored"},
        {"t": "2026-12-07T00:00:00.000000Z"},
    ]
    emit_json([doc])
    assert json.loads(capsys.readouterr().out)[0]["cpu_s"] is None  # strict JSON: no NaN


def test_piped_text_is_full_width_and_one_line_per_row(capsys: pytest.CaptureFixture[str]) -> None:
    long = "run7-seq12-" + "x" * 150 + ".dat"
    emit("files", ["name", "last error"], [[long, "two\nlines [red]"], ["b", ""]])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "files"
    assert out[1].split() == ["name", "last", "error"]
    assert out[2] == f"{long}  two\\nlines [red]"
    assert out[3] == "b"
    assert "…" not in "".join(out) and "│" not in "".join(out)
