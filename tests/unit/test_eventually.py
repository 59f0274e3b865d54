"""tests/eventually.py: returns what it waited for, fails loudly with what and the last value."""

from __future__ import annotations

import itertools

import pytest

from tests.eventually import NeverHappened, eventually


def test_returns_the_value_that_held_driving_the_system_between_tries() -> None:
    counter = itertools.count()
    driven: list[int] = []
    value = eventually(
        lambda: len(driven),
        30,
        "three steps",
        until=lambda n: n >= 3,
        step=lambda: driven.append(1),
    )
    assert value == 3 and len(driven) == 3
    assert eventually(lambda: next(counter), 30, "a non-zero count") == 1  # 0 is falsy


def test_a_timeout_names_what_the_last_value_and_the_details() -> None:
    seen = itertools.count()
    with pytest.raises(NeverHappened) as err:
        eventually(
            lambda: f"state {next(seen)}",
            0.05,
            "the file reconstructed",
            until=lambda s: s == "never",
            interval=0.01,
            details=lambda: "files per state: {'queued': 1}",
        )
    tries = next(seen)
    message = str(err.value)
    assert message.startswith("the file reconstructed: not within 0.05 s; last observed: ")
    assert f"'state {tries - 1}'" in message  # the last value, not the first
    assert tries >= 2  # polled, and once more at the deadline
    assert message.endswith("\nfiles per state: {'queued': 1}")
    assert isinstance(err.value, AssertionError)  # pytest shows it as a test failure


def test_an_exception_of_the_condition_ends_the_wait_at_once() -> None:
    calls = itertools.count()

    def dead() -> bool:
        next(calls)
        raise RuntimeError("the daemon exited with 1")

    with pytest.raises(RuntimeError, match="daemon exited"):
        eventually(dead, 30, "never reached")
    assert next(calls) == 1
