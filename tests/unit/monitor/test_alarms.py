"""Threshold evaluation of the monitor's alarms (pure functions)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from farmtools.config import FarmConfig, FarmSection, MonitorSection
from farmtools.monitor.alarms import AlarmChecker, evaluate, evaluate_channels, evaluate_stuck
from farmtools.monitor.store import SummaryStore
from farmtools.monitor.summary import INFINITE_US, AnalysisResult, LemResult

M = MonitorSection(
    lifetime_min_us=2000,
    gain_min=5,
    gain_max=40,
    asymmetry_max=0.1,
    bad_channels_max=3,
    stuck_max=0,
)


def _result(tau: tuple[float, float], lems: dict[int, tuple[float, float]]) -> AnalysisResult:
    return AnalysisResult(
        run=9,
        time=datetime(2026, 1, 1, tzinfo=UTC),
        lifetime_us=tau,
        lifetime_err_us=(10, 10),
        lems={k: LemResult.from_dqds(k, v, (1, 1)) for k, v in lems.items()},
        source="s_run9.txt",
    )


def test_values_in_band_raise_nothing() -> None:
    assert evaluate(_result((7000, INFINITE_US), {1: (100, 100), 2: (95, 105)}), M) == []


def test_each_breach_has_its_own_kind() -> None:
    r = _result((1500, 1900), {1: (10, 10), 2: (300, 300), 3: (80, 120)})
    kinds = {b.kind for b in evaluate(r, M)}
    assert kinds == {
        "lifetime_low:view0",
        "lifetime_low:view1",
        "gain_low:lem1",
        "gain_high:lem2",
        "asymmetry:lem3",
    }
    msg = next(b.message for b in evaluate(r, M) if b.kind == "asymmetry:lem3")
    assert "run 9" in msg and "+0.200" in msg


def test_infinite_lifetime_is_not_low() -> None:
    assert evaluate(_result((INFINITE_US, INFINITE_US), {}), M) == []


def test_channels_and_stuck() -> None:
    assert evaluate_channels(1, 2, 1, M) == []
    assert [b.kind for b in evaluate_channels(1, 2, 2, M)] == ["bad_channels"]
    assert evaluate_stuck(0, M) == []
    assert "3 files" in evaluate_stuck(3, M)[0].message


def test_checker_judges_the_present_then_every_new_result(tmp_path: Path) -> None:
    """At start only the newest result counts (no mail storm about the past); afterwards every
    new result, and a gain appended to a purity file, is judged."""
    summary = tmp_path / "processing" / "summary"
    summary.mkdir(parents=True)
    (summary / "purity_run1.txt").write_text("010126 000000\n1500 50 7000 50\n")  # old, bad
    (summary / "purity_run2.txt").write_text("020126 000000\n7000 50 7000 50\n")  # newest, good
    cfg = FarmConfig(farm=FarmSection(home=tmp_path), monitor=M, base_dir=tmp_path)
    store = SummaryStore(summary, min_interval=0.0)
    checker = AlarmChecker(cfg, None, None, store)
    assert checker.check() == []
    p3 = summary / "purity_run3.txt"
    p3.write_text("030126 000000\n7000 50 1000 50\n")
    assert [b.kind for b in checker.check()] == ["lifetime_low:view1"]
    assert checker.check() == []  # nothing new
    with p3.open("a") as f:  # the gain analysis appends: LEM 4 far too low
        f.write("4 5.0 1.0 5.0 1.0\n")
    os.utime(p3, ns=(5, 5))
    assert [b.kind for b in checker.check()] == ["gain_low:lem4"]
    assert set(checker.local) == {"lifetime_low:view1", "gain_low:lem4"}
