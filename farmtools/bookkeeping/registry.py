"""The run registry: a quality flag per run (good, bad, unknown), set by checks and by people.

Every change is a row of ``run_flags`` (never updated): when, which flag, who set it (a check's
``source`` such as ``completeness`` or ``dqm:<check>``, or ``person`` with the Unix user) and
why.  The current flag is computed from that history, so it can always be explained:

* a person's latest flag wins (``farmtools run N flag bad --reason "HV trip"``); a person's
  ``auto`` hands the run back to the checks;
* otherwise the checks decide: **bad** when any source's latest state is bad, **good** when at
  least one source says good and none bad, **unknown** else (no check has spoken yet).

The checks call :func:`set_auto_flag` (the end-of-run step with ``completeness``; the
data-quality monitor with ``dqm:<check>``).  Imports SQLAlchemy and the bookkeeping schema only.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import RowMapping, insert, select

from farmtools.bookkeeping.schema import now, run_flags

if TYPE_CHECKING:
    from farmtools.bookkeeping.db import Bookkeeping

GOOD, BAD, UNKNOWN, AUTO = "good", "bad", "unknown", "auto"
#: The flags a run can carry.
FLAGS: tuple[str, ...] = (GOOD, BAD, UNKNOWN)
#: The ``source`` of a flag set by a person.
PERSON = "person"


class FlagError(ValueError):
    """A flag or source that the registry does not take; the message says which and why."""


@dataclass(frozen=True)
class FlagChange:
    """One row of a run's flag history."""

    time: datetime
    run: int
    flag: str
    source: str
    user: str
    reason: str

    def to_json(self) -> dict[str, object]:
        return {
            "time": self.time,
            "flag": self.flag,
            "source": self.source,
            "user": self.user,
            "reason": self.reason,
        }


def _insert(bk: Bookkeeping, run: int, flag: str, source: str, user: str, reason: str) -> None:
    with bk.engine.begin() as conn:
        conn.execute(
            insert(run_flags).values(
                run=run, time=now(), flag=flag, source=source, user=user, reason=reason
            )
        )


def set_auto_flag(bk: Bookkeeping, run: int, source: str, state: str, reason: str) -> bool:
    """Record what check ``source`` says of ``run`` (good, bad or unknown) and why.

    The entry point of every automatic check.  Nothing is written when the source's latest
    state and reason are already these (a check run at every pass does not fill the history);
    returns whether a row was written.
    """
    if state not in FLAGS:
        raise FlagError(f"flag {state!r}: expected one of {', '.join(FLAGS)}")
    if not source or source == PERSON:
        raise FlagError(f"source {source!r}: a check's name (completeness, dqm:<check>)")
    last = next((c for c in reversed(flag_history(bk, run)) if c.source == source), None)
    if last is not None and (last.flag, last.reason) == (state, reason):
        return False
    _insert(bk, run, state, source, "", reason)
    return True


def set_flag(bk: Bookkeeping, run: int, flag: str, *, reason: str, user: str | None = None) -> str:
    """A person's flag for ``run`` (``auto``: back to the checks); the run's flag afterwards.

    ``reason`` is required: the history must say why.  ``user`` defaults to the Unix user
    (:func:`unix_user`).
    """
    if flag not in (*FLAGS, AUTO):
        raise FlagError(f"flag {flag!r}: expected one of {', '.join((*FLAGS, AUTO))}")
    if not reason.strip():
        raise FlagError("a reason is required (--reason): the run's history says why")
    _insert(bk, run, flag, PERSON, user or unix_user(), reason.strip())
    return run_flag(bk, run)


def unix_user() -> str:
    """Who runs the command: the login behind ``sudo -u prod`` (``alice as prod``), else the user."""
    me = getpass.getuser()
    behind = os.environ.get("SUDO_USER")
    return f"{behind} as {me}" if behind and behind != me else me


def flag_history(bk: Bookkeeping, run: int) -> list[FlagChange]:
    """Every flag change of ``run``, oldest first."""
    q = select(run_flags).where(run_flags.c.run == run).order_by(run_flags.c.id)
    with bk.engine.connect() as conn:
        return [_change(r._mapping) for r in conn.execute(q)]


def _change(m: RowMapping) -> FlagChange:
    return FlagChange(m["time"], m["run"], m["flag"], m["source"], m["user"], m["reason"])


def decide(history: Iterable[FlagChange]) -> str:
    """The flag a history gives (see the module docstring)."""
    person: str | None = None
    latest: dict[str, str] = {}
    for c in history:
        if c.source == PERSON:
            person = None if c.flag == AUTO else c.flag
        else:
            latest[c.source] = c.flag
    if person is not None:
        return person
    states = set(latest.values())
    if BAD in states:
        return BAD
    return GOOD if GOOD in states else UNKNOWN


def run_flag(bk: Bookkeeping, run: int) -> str:
    """The current flag of ``run``."""
    return decide(flag_history(bk, run))


def all_flags(bk: Bookkeeping) -> dict[int, str]:
    """The current flag of every run with a history (a run without one is unknown)."""
    by_run: dict[int, list[FlagChange]] = {}
    with bk.engine.connect() as conn:
        for r in conn.execute(select(run_flags).order_by(run_flags.c.id)):
            c = _change(r._mapping)
            by_run.setdefault(c.run, []).append(c)
    return {run: decide(h) for run, h in by_run.items()}


def good_runs(bk: Bookkeeping) -> list[int]:
    """The runs flagged good, ascending: the list the analyses take."""
    return sorted(run for run, flag in all_flags(bk).items() if flag == GOOD)
