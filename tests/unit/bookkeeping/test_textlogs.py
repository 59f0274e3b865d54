"""The seed's transfer log line, byte for byte (seed-conventions.md)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from farmtools.bookkeeping.textlogs import append_transfer, human_size, transfer_line

SEED_LINE = (
    "0 2016-10-27 13:55:04 2016-10-27 13:55:04 1023M 2016-10-27 13:55 "
    "/home/prod/storage/input/run1014/run1014-seq2.dat"
)
#: duration, start, end, size, DAQ write time (minute), destination
SEED_RE = re.compile(
    r"^(\d+) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) "
    r"(\d+[KMG]) (\d{4}-\d\d-\d\d \d\d:\d\d) (\S.*)$"
)


@pytest.fixture
def cern_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The farm's local time (the seed's lines are in CERN local time)."""
    monkeypatch.setenv("TZ", "Europe/Zurich")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_the_seed_example_line_is_reproduced(cern_time: None) -> None:
    start = datetime(2016, 10, 27, 11, 55, 4, 200000, tzinfo=UTC)  # 13:55:04 CEST
    line = transfer_line(
        start,
        start + timedelta(milliseconds=700),
        1072226134,
        datetime(2016, 10, 27, 11, 55, 0, tzinfo=UTC),
        "/home/prod/storage/input/run1014/run1014-seq2.dat",
    )
    assert line == SEED_LINE
    assert SEED_RE.match(line)


def test_duration_is_the_difference_of_the_printed_seconds(cern_time: None) -> None:
    start = datetime(2016, 10, 27, 11, 55, 4, 900000, tzinfo=UTC)
    line = transfer_line(start, start + timedelta(seconds=0.2), 1, start, "/d")
    assert line.startswith("1 2016-10-27 13:55:04 2016-10-27 13:55:05 1K ")
    long = transfer_line(start, start + timedelta(seconds=125), 5 << 30, start, "/d")
    assert long.split()[0] == "125" and long.split()[5] == "5G"


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0K"), (1, "1K"), (1024, "1K"), (1025, "2K"), (1 << 20, "1M"), (1072226134, "1023M")],
)
def test_human_size_rounds_up_like_ls(size: int, text: str) -> None:
    assert human_size(size) == text


@given(st.integers(min_value=0, max_value=1 << 44))
def test_human_size_is_the_smallest_whole_unit_count_that_holds_the_file(size: int) -> None:
    text = human_size(size)
    value, unit = int(text[:-1]), 1024 ** ("KMG".index(text[-1]) + 1)
    assert value * unit >= size > (value - 1) * unit or size == value == 0
    assert text[-1] == "K" or size >= unit  # the largest unit that is not more than the size


def test_a_newline_in_a_destination_cannot_split_a_line(cern_time: None) -> None:
    t = datetime(2016, 10, 27, 11, 55, 4, tzinfo=UTC)
    line = transfer_line(t, t, 10, t, "/st/run1/odd\nname")
    assert "\n" not in line and line.endswith("/st/run1/odd\\nname")


def test_append_writes_both_seed_logs(tmp_path: Path, cern_time: None) -> None:
    t = datetime(2016, 10, 27, 11, 55, 4, tzinfo=UTC)
    lines = [transfer_line(t, t, 10, t, f"/st/run{r}/run{r}-seq0.dat") for r in (1014, 1015)]
    append_transfer(tmp_path, 1014, lines[0])
    append_transfer(tmp_path, 1015, lines[1])
    logs = tmp_path / "all_logs" / "fromEVB"
    assert (logs / "alltransfer.log").read_text() == lines[0] + "\n" + lines[1] + "\n"
    assert (logs / "runs" / "run1014.log").read_text() == lines[0] + "\n"
    assert (logs / "runs" / "run1015.log").read_text() == lines[1] + "\n"
