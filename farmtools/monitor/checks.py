"""Data-quality checks: the states a check returns, :class:`CheckResult`, and the roll-up.

A check belongs to one item of a :class:`~farmtools.monitor.tasks.MonTask` (its ``check``
method): it judges what ``read`` returned for a run against the item's reference run (pinned
per item, :mod:`farmtools.monitor.references`) and/or limits of ``[monitor]``, and returns a
:class:`CheckResult`: a :class:`State` and a one-line reason the shifter reads in the overview.

States, in increasing order of concern (the overview rolls the worst one up):

* ``none``: the item has no check, or there is no data at all (grey);
* ``good``: judged and within its limits (green);
* ``too_few``: data too thin to judge (no result of the run yet, a handful of files): early in a
  run this avoids false alarms, the way Belle II's "too few entries" state does (blue);
* ``warning``: worth a look, no alarm (orange);
* ``error``: out of limits; raises an alarm (red).

Pure standard library, so a farm's plugin can import it cheaply.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class State(IntEnum):
    """A check's verdict; the integer order is the order of concern (max() is the worst)."""

    NONE = 0
    GOOD = 1
    TOO_FEW = 2
    WARNING = 3
    ERROR = 4

    @property
    def label(self) -> str:
        """The name stored in the bookkeeping and shown on the page: good, too_few..."""
        return self.name.lower()

    @classmethod
    def parse(cls, label: str) -> State:
        return cls[label.upper()]


@dataclass(frozen=True)
class CheckResult:
    """A check's verdict on one item of one run: a state, why (one line), and the details."""

    state: State
    reason: str
    #: what the reason summarises, for the page and the registry (channel lists, LEMs...)
    details: dict[str, Any] = field(default_factory=dict)
    #: kinds of the threshold alarms (farmtools.monitor.alarms) that already report this error
    #: ("bad_channels"; ending in ":", a prefix: "lifetime_low:"): the check then raises no alarm of its own (one fault,
    #: one message), and clears those alarms once it is no longer an error
    covers: tuple[str, ...] = ()


def worst(states: Iterable[State]) -> State:
    """The state of most concern (NONE when there is none)."""
    return max(states, default=State.NONE)


def ranges(numbers: Iterable[int]) -> str:
    """Channel numbers as compact ranges: [1, 2, 3, 7] -> "1-3, 7" (a card reads as one block)."""
    out: list[str] = []
    nums = sorted(set(numbers))
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        out.append(str(nums[i]) if i == j else f"{nums[i]}-{nums[j]}")
        i = j + 1
    return ", ".join(out)


def by_view(channels: Iterable[int], view0: int) -> dict[int, list[int]]:
    """View-order channel indices split by view: {0: [channel in view 0...], 1: [...]}.

    The reconstruction's per-channel histograms list view 0's ``view0`` channels first, then
    view 1's; a shifter names a channel by view and its number within the view.
    """
    out: dict[int, list[int]] = {0: [], 1: []}
    for c in sorted(channels):
        out[0 if c < view0 else 1].append(c if c < view0 else c - view0)
    return out


def channel_text(channels: Iterable[int], view0: int) -> str:
    """ "view 0: 5, 64-127; view 1: 3" (empty string when there is none)."""
    split = by_view(channels, view0)
    return "; ".join(f"view {v}: {ranges(split[v])}" for v in (0, 1) if split[v])
