"""Dead and noisy channels named as the shift crew names them: view and channel within the view."""

from __future__ import annotations

from farmtools.detector import WA105_3X1X1, geometry
from farmtools.monitor.recofiles import channel_label, channel_ranges


def test_neighbours_become_one_line_per_view() -> None:
    g = WA105_3X1X1  # 320 + 960 view-order channels
    got = channel_ranges([700, 5, 6, 7, 319, 320, 321, 9, 6], g)
    assert [(r["text"], r["count"]) for r in got] == [
        ("view 0: 5-7", 3),
        ("view 0: 9", 1),
        ("view 0: 319", 1),  # the last strip of view 0 and the first of view 1 are not neighbours
        ("view 1: 0-1", 2),
        ("view 1: 380", 1),
    ]
    assert got[0]["members"] == [5, 6, 7]
    assert channel_ranges([], g) == []
    assert channel_label(1279, g) == "view 1 channel 959"


def test_several_crps_are_named() -> None:
    g = geometry("6x6x6")
    per_crp = sum(g.channels_per_view)
    n0 = g.channels_per_view[0]
    got = channel_ranges([per_crp * 2 + n0 + 3, per_crp * 2 + n0 + 4, 1], g)
    assert [r["text"] for r in got] == ["CRP 0 view 0: 1", "CRP 2 view 1: 3-4"]
    assert channel_label(per_crp + 2, g) == "CRP 1 view 0 channel 2"
