"""Reference overlays: the difference and ratio panels drawn from a run and its reference."""

from __future__ import annotations

from typing import Any

import pytest

from farmtools.monitor.builtin import ChargePerLem, Pedestals


def _channels(run: int, rms: list[float]) -> dict[str, Any]:
    return {
        "run": run,
        "file": f"recotask_run{run}-seq0.root",
        "values": rms,
        "dead": [i for i, v in enumerate(rms) if v < 0.3],
        "noisy": [],
        "view0": 2,
        "labels": [f"c{i}" for i in range(len(rms))],
    }


def test_noise_difference_panel_only_for_a_comparable_reference() -> None:
    fig = Pedestals().draw("noise", _channels(5, [1.5, 0.0, 2.0, 1.5]), _channels(4, [1.5] * 4))
    diff = next(t for t in fig["data"] if t.get("yaxis") == "y2")
    assert diff["y"] == [0.0, -1.5, 0.5, 0.0]
    assert fig["layout"]["xaxis"]["anchor"] == "y2"
    assert "reference run 4 and the difference" in fig["layout"]["title"]["text"]
    # another detector's channel count: overlaid, but no channel-by-channel difference
    other = Pedestals().draw("noise", _channels(5, [1.5] * 4), _channels(4, [1.5] * 6))
    assert (
        not any(t.get("yaxis") == "y2" for t in other["data"]) and "yaxis2" not in other["layout"]
    )


def _lems(run: int, lems: list[int], q0: list[float], q1: list[float]) -> dict[str, Any]:
    return {"run": run, "lems": lems, "dqds": [q0, q1], "err": [[1.0] * len(lems)] * 2}


def test_charge_ratio_per_lem_and_view() -> None:
    data = _lems(5, [1, 2, 3], [100.0, 80.0, 90.0], [100.0, 120.0, float("nan")])
    ref = _lems(4, [1, 2], [100.0, 100.0], [50.0, 100.0])  # no LEM 3 in the reference
    fig = ChargePerLem().draw("per_lem", data, ref)
    r0 = next(t for t in fig["data"] if t["name"] == "view 0 / reference run 4")
    r1 = next(t for t in fig["data"] if t["name"] == "view 1 / reference run 4")
    assert r0["y"][:2] == pytest.approx([1.0, 0.8]) and r0["y"][2] is None
    assert r1["y"][:2] == pytest.approx([2.0, 1.2]) and r1["y"][2] is None
    assert fig["layout"]["yaxis2"]["title"]["text"] == "run / ref"
    plain = ChargePerLem().draw("per_lem", data, None)
    assert "yaxis2" not in plain["layout"]
