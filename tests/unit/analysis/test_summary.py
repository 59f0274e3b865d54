"""Summary files: the seed format, its JSON twin, reading a purity summary back."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from farmtools.analysis.gain import GainResult, lem_gain
from farmtools.analysis.purity import INFINITE_US, Lifetime, PurityResult
from farmtools.analysis.summary import (
    SummaryFileError,
    read_purity_summary,
    seed_text,
    write_summary,
)

T = datetime(2018, 10, 3, 14, 5, 9, tzinfo=UTC)


def _purity() -> PurityResult:
    views = [Lifetime.from_k(1 / 7000, 1e-5), Lifetime.from_k(-1e-6, 1e-5)]
    return PurityResult(views, Lifetime.from_k(1 / 7100, 8e-6), "tm", 10, 1000)


def _gain() -> GainResult:
    lems = [
        lem_gain(
            lem, [(50, 90.0, 0.5, 87.0, 0.6), (50, 91.0, 0.5, 86.0, 0.6)], (9.0, 9.0), (8.7, 8.6)
        )
        for lem in range(1, 12)
    ]
    lems.append(lem_gain(12, [(3, math.nan, math.nan, math.nan, math.nan)] * 2, (9, 9), (9, 9)))
    return GainResult(lems, 7100.0, 1100, 20, (9.0, 9.0), (8.7, 8.6))


def test_seed_text_has_the_seed_layout() -> None:
    p = _purity()
    text = seed_text(T, p.views, _gain())
    lines = text.splitlines()
    assert lines[0] == "031018 140509"
    assert lines[1].split() == ["7000.0", "490.0", f"{INFINITE_US:.1f}", f"{INFINITE_US:.1f}"]
    assert lines[2].split() == ["1", "90.0000", "0.5000", "91.0000", "0.5000"]
    assert lines[13].split() == ["12", "nan", "nan", "nan", "nan"]
    assert len(lines) == 14


def test_write_then_read_purity_back_from_text_and_json(tmp_path: Path) -> None:
    p = _purity()
    txt, js = write_summary(tmp_path / "run5" / "purity_run5.txt", T, 5, ["a.root"], p, p.views)
    doc = json.loads(js.read_text())
    assert doc["run"] == 5 and doc["lifetime_us"] == pytest.approx([7000.0, INFINITE_US])
    assert doc["purity"]["combined"]["tau_us"] == pytest.approx(7100.0)
    from_json = read_purity_summary(js)
    assert from_json.combined.tau_us == pytest.approx(7100.0)
    from_text = read_purity_summary(txt)
    assert from_text.views[0].tau_us == 7000.0
    # The text has no combined value: an inverse-variance mean of 1/tau, here view 0's.
    assert from_text.combined.tau_us == pytest.approx(7000.0, rel=0.01)
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize(
    ("content", "match"),
    [("", "too short"), ("031018 140509\n7000 1 x 2\n", "line 2"), ("{}", "not a purity JSON")],
)
def test_bad_purity_summary_names_the_file(tmp_path: Path, content: str, match: str) -> None:
    bad = tmp_path / "bad_summary.txt"
    bad.write_text(content)
    with pytest.raises(SummaryFileError, match=match) as err:
        read_purity_summary(bad)
    assert "bad_summary.txt" in str(err.value)
    with pytest.raises(SummaryFileError, match=r"missing\.txt"):
        read_purity_summary(tmp_path / "missing.txt")
