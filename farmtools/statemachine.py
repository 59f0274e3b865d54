"""Declared state machines: the (from, to) pairs a record may move along, checked at each move.

The bookkeeping keeps three records with a state: a raw file (:data:`farmtools.bookkeeping.states.
FILE_MACHINE`), a batch job (:data:`farmtools.processing.jobs.JOB_MACHINE`) and an archive
(:data:`farmtools.archive.catalog.ARCHIVE_MACHINE`).  Each compare-and-set of a state goes
through :meth:`StateMachine.check` first, so the allowed moves are read in one table instead of
being scattered over the call sites, and a move that is not in the table is a bug that raises
:class:`IllegalTransition` before anything is written.  A move that finds the record in another
state than expected is not an error (somebody else moved it): the compare-and-set returns False.

docs/bookkeeping.md shows each table as a diagram made by :meth:`StateMachine.mermaid` (a test
keeps the two equal).  Imports the standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class IllegalTransition(RuntimeError):
    """A move that the record's state machine does not allow: a bug in the caller."""


@dataclass(frozen=True)
class StateMachine:
    """The states of one kind of record, where a new record starts, and the allowed moves."""

    name: str
    states: tuple[str, ...]
    initial: frozenset[str]
    moves: frozenset[tuple[str, str]]

    def __post_init__(self) -> None:
        known = set(self.states)
        stray = {s for move in self.moves for s in move} | set(self.initial)
        if not stray <= known:
            raise ValueError(f"{self.name}: unknown states {sorted(stray - known)}")

    @classmethod
    def of(
        cls,
        name: str,
        states: Iterable[str],
        initial: Iterable[str],
        moves: Iterable[tuple[Iterable[str], Iterable[str]]],
    ) -> StateMachine:
        """A machine from ``moves`` given as (from states, to states) groups: every pair counts."""
        pairs = {(str(a), str(b)) for froms, tos in moves for a in froms for b in tos}
        return cls(name, tuple(map(str, states)), frozenset(map(str, initial)), frozenset(pairs))

    def check(self, from_states: str | Iterable[str], to_state: str) -> None:
        """Raise :class:`IllegalTransition` unless every ``from_states`` -> ``to_state`` is allowed."""
        froms = [from_states] if isinstance(from_states, str) else list(from_states)
        bad = [str(f) for f in froms if (str(f), str(to_state)) not in self.moves]
        if bad:
            raise IllegalTransition(
                f"{self.name} state machine: {', '.join(bad)} -> {to_state} is not an allowed "
                f"move (allowed to {to_state}: from "
                f"{', '.join(sorted(a for a, b in self.moves if b == str(to_state))) or 'nowhere'})"
            )

    def check_initial(self, state: str) -> None:
        """Raise :class:`IllegalTransition` unless a new record may start in ``state``."""
        if str(state) not in self.initial:
            raise IllegalTransition(
                f"{self.name} state machine: a new record cannot start in {state} "
                f"(only in {', '.join(sorted(self.initial))})"
            )

    def mermaid(self) -> str:
        """The machine as a Mermaid state diagram (docs/bookkeeping.md)."""
        lines = ["stateDiagram-v2"]
        lines += [f"    [*] --> {s}" for s in self.states if s in self.initial]
        lines += [
            f"    {a} --> {b}" for a in self.states for b in self.states if (a, b) in self.moves
        ]
        return "\n".join(lines)
