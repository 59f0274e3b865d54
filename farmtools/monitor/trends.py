"""How the monitor's trend plots read with one point or a thousand: axes, markers, error bars.

Left to itself plotly gives a single point on a date axis a range of +-1 ms (tick labels such as
``20:33:12.9995``), and a thousand points the same 6-pixel markers and 4-pixel error-bar
whiskers as ten, which merge into a band.  These helpers give every time trend at least
:data:`MIN_TIME_SPAN` of axis (centred on the data, padded 3 % either side when it is longer),
run axes as categories (one label per run, thinned by plotly when there are many, never
"run 6.5"), and markers and whiskers that shrink as points are added.  Pure functions over
the JSON the tasks send; imports the standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

#: The shortest time axis of a trend: one result shows as a point in an hour, not a millisecond.
MIN_TIME_SPAN = timedelta(hours=1)
#: Extra room either side of the data, as a fraction of its span.
PAD_FRACTION = 0.03


def _plotly_time(t: datetime) -> str:
    # plotly ignores a UTC offset in a date string: the data's times are UTC, so is the range
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")


def time_range(x: Sequence[str | None]) -> list[str] | None:
    """The x range of a time trend of ISO 8601 times (None when there is no time)."""
    ts = [datetime.fromisoformat(v) for v in x if v]
    if not ts:
        return None
    lo, hi = min(ts), max(ts)
    span = hi - lo
    pad = max(span * PAD_FRACTION, (MIN_TIME_SPAN - span) / 2)
    return [_plotly_time(lo - pad), _plotly_time(hi + pad)]


def time_axis(x: Sequence[str | None], title: str) -> dict[str, Any]:
    """A date axis over ``x`` of at least :data:`MIN_TIME_SPAN` (times in UTC)."""
    axis: dict[str, Any] = {"type": "date", "title": {"text": f"{title} (UTC)"}}
    r = time_range(x)
    if r is not None:
        axis["range"] = r
    return axis


def run_axis(title: str = "run") -> dict[str, Any]:
    """Runs as categories: whole run numbers whatever their count or gaps."""
    return {"type": "category", "title": {"text": title}}


def marker_size(n: int) -> int:
    """Marker diameter (px) for ``n`` points: 8 for a few, down to 3 for a thousand."""
    if n <= 20:
        return 8
    if n <= 100:
        return 6
    if n <= 400:
        return 4
    return 3


def error_bars(errors: Sequence[float | None], n: int) -> dict[str, Any]:
    """Error bars for ``n`` points: whiskers only while the points are few enough to see them."""
    return {
        "type": "data",
        "array": list(errors),
        "visible": True,
        "width": 4 if n <= 50 else (2 if n <= 200 else 0),
        "thickness": 1.5 if n <= 200 else 1,
    }
