"""The one way tests wait for something: poll until it holds, or fail naming what never came.

Why one helper: the hand-written deadline loops it replaced each failed their own way: some
with a bare ``assert`` (no message), some not at all (the loop ended at its deadline and the
test carried on as if the condition had come, to fail later somewhere else or not at all).
:func:`eventually` always fails, with ``what`` and the last value it saw.  An exception raised
by the condition is not swallowed: it ends the wait at once (a daemon that died, a server that
exited), which is how a probe says "this will never come".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class NeverHappened(AssertionError):
    """A condition that did not hold within its time; the message says what and what was seen."""


def eventually(
    condition: Callable[[], T],
    timeout: float = 30.0,
    what: str = "condition",
    *,
    until: Callable[[T], object] = bool,
    interval: float = 0.05,
    details: Callable[[], object] | None = None,
    step: Callable[[], object] | None = None,
) -> T:
    """Call ``condition()`` every ``interval`` s until ``until(value)`` is true; return the value.

    ``step``, if given, is called after each try that did not hold: it drives the system when
    the test runs it itself (a manager pass, a ``farmtools process once``).  After ``timeout`` s
    (the condition is tried once more at the deadline) raise :class:`NeverHappened` naming
    ``what``, the last value observed and, if given, ``details()`` (a daemon's log, the files
    per state...), read only then.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if until(value):
            return value
        if time.monotonic() >= deadline:
            break
        if step is not None:
            step()
        time.sleep(interval)
    message = f"{what}: not within {timeout:g} s; last observed: {value!r}"
    if details is not None:
        message += f"\n{details()}"
    raise NeverHappened(message)
