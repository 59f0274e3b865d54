"""Raw file names as ingest reads them: ASCII digits only, leading zeros normalised."""

from __future__ import annotations

import re

import pytest

from farmtools.rawdata.naming import RawName, parse_raw_name


@pytest.mark.parametrize(
    "name",
    [
        "run\u0661-seq2.dat",  # ARABIC-INDIC DIGIT ONE
        "run1-seq\u0662.dat",
        "run\uff11-seq2.dat",  # FULLWIDTH DIGIT ONE
        "run\u09e7-seq\u09e8.dat",  # BENGALI
        "run\U0001d7cf-seq2.dat",  # MATHEMATICAL BOLD DIGIT ONE
    ],
)
def test_non_ascii_digits_are_not_raw_names(name: str) -> None:
    # what the pattern used to be: it matched, and int() reads them as ASCII numbers
    assert re.fullmatch(r"run(\d{1,9})-seq(\d{1,9})\.dat", name) is not None
    assert parse_raw_name(name) is None


def test_ascii_names_and_leading_zeros() -> None:
    assert parse_raw_name("run1014-seq2.dat") == RawName(1014, 2)
    assert parse_raw_name("/evb/data/run1014/run1014-seq2.dat") == RawName(1014, 2)
    assert parse_raw_name(b"run7-seq0.dat") == RawName(7, 0)
    # leading zeros are accepted, and normalise to the same file name: a possible collision
    assert parse_raw_name("run01-seq2.dat") == parse_raw_name("run1-seq2.dat")
    assert RawName(1, 2).filename == "run1-seq2.dat"
    for bad in ("run1-seq2.dat.tmp", "run1-seq2.dat ", "run-seq2.dat", "run1234567890-seq1.dat"):
        assert parse_raw_name(bad) is None, bad
