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
from farmtools.detector import WA105_3X1X1 as G

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


def _reject_constant(name: str) -> None:
    raise ValueError(f"bare {name} in JSON")


def test_json_is_strict_nan_written_as_null(tmp_path: Path) -> None:
    p = _purity()
    _, js = write_summary(tmp_path / "a.txt", T, 5, ["a.root"], p, p.views, _gain())
    text = js.read_text()
    assert "NaN" not in text and "Infinity" not in text
    doc = json.loads(text, parse_constant=_reject_constant)  # what a strict parser accepts
    lem12 = doc["lems"][11]
    assert lem12["lem"] == 12 and lem12["dqds"] == [None, None] and lem12["gain"] is None


def test_lifetime_reports_k_asymmetric_errors_and_no_measurement() -> None:
    lt = Lifetime.from_k(1 / 7000, 0.3 / 7000)  # 30 % in k
    j = lt.to_json()
    assert j["status"] == "measured" and j["k_per_us"] == pytest.approx(1 / 7000)
    assert j["tau_min_us"] == pytest.approx(7000 / 1.3) and j["tau_max_us"] == pytest.approx(10000)
    assert j["tau_err_high_us"] == pytest.approx(3000) and j["tau_err_low_us"] < 1700
    assert "+3000 -1615 us" in lt.describe()
    none = Lifetime.from_k(math.nan, math.nan)
    assert none.to_json()["status"] == "none" and none.to_json()["tau_us"] is None
    assert none.describe() == "no measurement"
    inf = Lifetime.from_k(-1e-6, 1e-5)
    assert inf.status == "infinite" and inf.to_json()["error_us"] is None
    assert inf.describe().startswith("no attenuation seen, tau > 111111 us")
    # the seed's text keeps its four numbers: the dummy for both
    assert seed_text(T, [none, inf]).splitlines()[1] == "100000.0 100000.0 100000.0 100000.0"


def test_gain_json_carries_the_purity_block(tmp_path: Path) -> None:
    p = _purity()
    _, pur_json = write_summary(tmp_path / "purity.txt", T, 5, ["a.root"], p, p.views)
    for source in (pur_json, pur_json.with_suffix(".txt")):
        summary = read_purity_summary(source)
        _, js = write_summary(
            tmp_path / "gain.txt", T, 5, ["a.root"], summary.block, summary.views, _gain()
        )
        doc = json.loads(js.read_text())
        block = doc["purity"]
        assert block["combined"]["tau_us"] == pytest.approx(
            7100.0 if source.suffix == ".json" else 7000.0, rel=1e-3
        )
        assert [v["status"] for v in block["views"]] == (
            ["measured", "infinite"] if source.suffix == ".json" else ["measured", "none"]
        )
        assert len(doc["lems"]) == 12


def test_root_lem_maps_have_titles_errors_and_mark_missing_lems(tmp_path: Path) -> None:
    import uproot

    from farmtools.analysis.summary import write_root

    g = _gain()
    out = write_root(tmp_path / "lems.root", g)
    with uproot.open(out) as f:
        h = f["gain"]
        assert "gain" in h.title and "no data" in h.title
        assert h.axis(0).member("fTitle").endswith("(cm)")
        lem1 = g.by_lem()[1]
        assert h.values()[0, 0] == pytest.approx(lem1.gain)
        assert h.errors()[0, 0] == pytest.approx(lem1.gain_err)  # not sqrt(content)
        assert "(fC/cm)" in f["dqds_view0"].title
        valid = f["valid"].values()
        ix, iy = G.lem_cell(12)
        assert valid[ix, iy] == 0 and valid.sum() == 11
        lems = f["lems"].arrays(library="np")
        assert list(lems["lem"]) == list(range(1, 13))
        assert not lems["valid"][11] and math.isnan(lems["gain"][11])
        assert "fC/cm" in f["lems"].title
