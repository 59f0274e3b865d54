"""Trends that read with one point or a thousand: the time axis, markers and error bars."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from farmtools.monitor.builtin import LemGain, Purity
from farmtools.monitor.trends import MIN_TIME_SPAN, error_bars, marker_size, time_range

T0 = datetime(2026, 12, 7, 20, 33, 13, tzinfo=UTC)


def _parse(s: str) -> datetime:
    return datetime.strptime(s, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)


def test_one_point_gets_an_hour_centred_on_it() -> None:
    lo, hi = (_parse(s) for s in time_range([T0.isoformat()]) or [])
    assert hi - lo == MIN_TIME_SPAN
    assert lo + (hi - lo) / 2 == T0
    assert time_range([]) is None and time_range([None]) is None


def test_a_long_trend_is_padded_by_three_percent() -> None:
    xs = [(T0 + timedelta(minutes=15 * i)).isoformat() for i in range(1000)]
    lo, hi = (_parse(s) for s in time_range(xs) or [])
    span = timedelta(minutes=15 * 999)
    assert T0 - lo == pytest.approx(span * 0.03, abs=timedelta(milliseconds=1))
    assert hi - (T0 + span) == pytest.approx(span * 0.03, abs=timedelta(milliseconds=1))


def test_markers_and_whiskers_shrink_with_the_point_count() -> None:
    sizes = [marker_size(n) for n in (1, 20, 21, 100, 400, 1000)]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]
    assert error_bars([1.0], 1)["width"] > 0 and error_bars([1.0] * 1000, 1000)["width"] == 0


def _purity_data(n: int) -> dict[str, object]:
    x = [(T0 + timedelta(minutes=10 * i)).isoformat() for i in range(n)]
    return {
        "x": x,
        "tau": [[5000.0] * n, [5100.0] * n],
        "err": [[100.0] * n, [100.0] * n],
        "combined": None,
        "run": 7,
        "selected": [5000.0, 5100.0],
        "picked": [],
        "min_us": 2000.0,
    }


@pytest.mark.parametrize("n", [1, 1000])
def test_lifetime_and_gain_trends_with_one_point_or_a_thousand(n: int) -> None:
    fig = Purity().draw("vs_time", _purity_data(n), None)
    axis = fig["layout"]["xaxis"]
    lo, hi = (_parse(s) for s in axis["range"])
    assert axis["type"] == "date"
    assert hi - lo >= MIN_TIME_SPAN
    assert lo < T0 and hi > T0 + timedelta(minutes=10 * (n - 1))
    assert fig["data"][0]["marker"]["size"] == marker_size(n)
    gain = {
        "lem": 3,
        "x": _purity_data(n)["x"],
        "runs": [7] * n,
        "gain": [20.0] * n,
        "err": [0.5] * n,
        "run": 7,
        "selected": 20.0,
        "band": (10.0, 40.0),
    }
    gfig = LemGain().draw("lem3", gain, None)
    assert gfig["layout"]["xaxis"]["range"] == axis["range"]
    vs_run = Purity().draw("vs_run", {**_purity_data(n), "x": list(range(n))}, None)
    assert vs_run["layout"]["xaxis"]["type"] == "category"
