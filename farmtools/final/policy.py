"""The filter policy: per event class keep, drop or prescale 1 in N, with a version.

Dropping events is the only place the farm removes events, so a decision is a pure function of
the policy and of the run's classified events: the ``i``-th event of a class in the run (in
trigger order, counting from 0) is kept by ``prescale:N`` when ``i % N == 0``.  Filtering a run
again with the same policy gives the same decisions; with another policy, other ones (while
the raw files are still in the buffer, docs/final.md).  Imports :mod:`farmtools.final.classify`
and the configuration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from farmtools.config import FinalSection
from farmtools.final.classify import EventClass


class Decision(StrEnum):
    KEPT = "kept"
    PRESCALED_OUT = "prescaled_out"
    DROPPED = "dropped"


class PolicyError(ValueError):
    """A policy value that is not keep, drop or prescale:N (the message names the class)."""


@dataclass(frozen=True)
class Action:
    """Keep every event (n = 1), 1 in n (prescale), or none (n = 0: drop)."""

    n: int

    @classmethod
    def parse(cls, klass: str, text: str) -> Action:
        t = text.strip().lower()
        if t == "keep":
            return cls(1)
        if t == "drop":
            return cls(0)
        if t.startswith("prescale:"):
            try:
                n = int(t.split(":", 1)[1])
            except ValueError:
                n = 0
            if n >= 1:
                return cls(n)
        raise PolicyError(f"final.{klass}: {text!r} is not keep, drop or prescale:N (N >= 1)")

    def __str__(self) -> str:
        return "keep" if self.n == 1 else "drop" if self.n == 0 else f"prescale:{self.n}"

    def decide(self, i: int) -> Decision:
        """The decision for the ``i``-th event (from 0) of its class in the run."""
        if self.n == 0:
            return Decision.DROPPED
        return Decision.KEPT if i % self.n == 0 else Decision.PRESCALED_OUT


@dataclass(frozen=True)
class Policy:
    version: str
    actions: Mapping[EventClass, Action]

    @classmethod
    def from_config(cls, section: FinalSection) -> Policy:
        return cls(
            section.policy_version,
            {k: Action.parse(str(k), getattr(section, str(k))) for k in EventClass},
        )

    def as_json(self) -> dict[str, str]:
        return {str(k): str(a) for k, a in self.actions.items()}

    def decide(self, classes: Iterable[EventClass]) -> list[Decision]:
        """Decisions for a run's events given in trigger order."""
        seen: dict[EventClass, int] = {}
        out = []
        for k in classes:
            i = seen.get(k, 0)
            seen[k] = i + 1
            out.append(self.actions[k].decide(i))
        return out


def count(
    classes: Iterable[EventClass], decisions: Iterable[Decision]
) -> dict[str, dict[str, int]]:
    """{class: {decision: n}} with every class and decision present (zeros included)."""
    table = {str(k): {str(d): 0 for d in Decision} for k in EventClass}
    for k, d in zip(classes, decisions, strict=True):
        table[str(k)][str(d)] += 1
    return table
