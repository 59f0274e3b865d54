"""The built-in checks as pure functions: data shaped as the tasks' ``read`` returns it."""

from __future__ import annotations

from typing import Any

from farmtools.config import MonitorSection
from farmtools.monitor import builtin_checks as bc
from farmtools.monitor.checks import State, channel_text, ranges, worst

M = MonitorSection(bad_channels_max=20, lifetime_min_us=2000)


def _purity(run: int, sel: tuple[float | None, float | None], trend: list[float]) -> dict[str, Any]:
    return {"run": run, "selected": list(sel), "tau": [trend, trend]}


def test_channel_lists_read_as_blocks_by_view() -> None:
    assert ranges([7, 1, 2, 3, 3]) == "1-3, 7"
    assert channel_text([5, 64, 65, 66, 640, 641], 640) == "view 0: 5, 64-66; view 1: 0-1"
    assert channel_text([], 640) == ""
    assert worst([State.GOOD, State.TOO_FEW, State.NONE]) is State.TOO_FEW
    assert worst([]) is State.NONE


def test_lifetime_below_limit_falling_and_too_few() -> None:
    assert bc.lifetime(None, None, M).state is State.TOO_FEW
    assert (
        bc.lifetime({"run": 4, "selected": None}, None, M).reason
        == "no lifetime result of run 4 yet"
    )
    ok = bc.lifetime(_purity(3, (7000, 6800), [7000, 7100]), None, M)
    assert ok.state is State.GOOD and ok.covers == ("lifetime_low:",)
    low = bc.lifetime(_purity(3, (1500, 6800), [7000, 7100]), None, M)
    assert low.state is State.ERROR and "view 0 = 1500 us, below 2000 us" in low.reason
    # above the limit but fallen by more than 30% from the reference run's
    ref = {"run": 1, "selected": [7000.0, 7000.0]}
    fell = bc.lifetime(_purity(3, (4000, 6900), [4000]), ref, M)
    assert fell.state is State.WARNING and "reference run 1" in fell.reason
    # without a reference: from the trend's median
    assert bc.lifetime(_purity(3, (4000, 7000), [7000, 7000, 7000, 4000]), None, M).state is (
        State.WARNING
    )
    assert bc.lifetime(_purity(3, (None, None), [7000]), None, M).state is State.GOOD


def test_gain_off_its_reference_names_the_lem() -> None:
    ref = dict.fromkeys(range(1, 13), 20.0)
    gains = {**ref, 5: 12.0, 7: 22.5}
    r = bc.gains(3, gains, ref, 1, M)
    assert r.state is State.ERROR and "LEM 5 12.0 (-40% vs run 1)" in r.reason
    assert r.covers == ()  # off the reference: the check's own alarm
    assert r.details["lems_warning"] == [7]
    assert bc.gains(3, {**ref, 7: 22.5}, ref, 1, M).state is State.WARNING
    assert bc.gains(3, ref, ref, 1, M).state is State.GOOD
    band = bc.gains(3, {1: 0.5}, {}, None, M)  # no reference: the band only
    assert band.state is State.ERROR and "outside [1, 50]" in band.reason and band.covers
    assert bc.gains(3, {}, ref, 1, M).state is State.TOO_FEW


def test_asymmetry() -> None:
    data = {"run": 2, "lems": [1, 2, 3], "asym": [0.01, -0.15, float("nan")]}
    assert bc.asymmetry(data, M).state is State.WARNING
    data["asym"] = [0.01, -0.25, 0.0]
    r = bc.asymmetry(data, M)
    assert r.state is State.ERROR and "LEM 2 A = -0.25" in r.reason


def _channels(dead: list[int], noisy: list[int], n: int = 1280) -> dict[str, Any]:
    return {"run": 5, "values": [1.5] * n, "dead": dead, "noisy": noisy, "view0": 640}


def test_noise_lists_dead_and_noisy_channels_known_ones_excluded() -> None:
    clean = bc.noise(_channels([], []), None, M)
    assert clean.state is State.GOOD
    card = bc.noise(_channels([], list(range(64, 128))), None, M)
    assert card.state is State.ERROR and "64 noisy (view 0: 64-127)" in card.reason
    assert card.details["noisy_text"] == "view 0: 64-127"
    few = bc.noise(_channels([700, 701], []), None, M)
    assert few.state is State.WARNING and "2 dead (view 1: 60-61)" in few.reason
    # the reference run had the same two dead channels: known, not counted
    known = bc.noise(_channels([700, 701], []), _channels([700, 701], []), M)
    assert known.state is State.GOOD and "2 known" in known.reason
    assert bc.noise(None, None, M).state is State.TOO_FEW


def test_pedestal_shift_needs_a_reference() -> None:
    data = {"run": 5, "values": [400.0] * 1280, "view0": 640}
    assert bc.pedestal_shift(data, None, M).state is State.NONE
    ref = {"run": 1, "values": [400.0] * 1280}
    assert bc.pedestal_shift(data, ref, M).state is State.GOOD
    data["values"] = [400.0] * 640 + [430.0] * 3 + [400.0] * 637
    r = bc.pedestal_shift(data, ref, M)
    assert r.state is State.WARNING and "view 1: 0-2" in r.reason
    data["values"] = [430.0] * 1280
    assert bc.pedestal_shift(data, ref, M).state is State.ERROR


def test_latency() -> None:
    assert bc.latency({"s": [1.0] * 3}, M).state is State.TOO_FEW
    assert bc.latency({"s": [10.0] * 50}, M).state is State.GOOD
    assert bc.latency({"s": [10.0] * 40 + [900.0] * 10}, M).state is State.WARNING
    assert bc.latency({"s": [10.0] * 40 + [4000.0] * 10}, M).state is State.ERROR
