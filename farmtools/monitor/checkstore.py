"""Check results kept in the bookkeeping (table ``dqm_checks``): :class:`CheckStore`.

The monitor's checker judges every checked item of the current run (and the farm-wide data flow
over a recent window) on each pass; a result is written only when its state, reason or
reference changed, so a quiet farm writes nothing.  One row per (task, item, scope, run): the
latest verdict, which the overview page, ``/metrics`` and the run registry read.  Without a
database the results live in memory only (the page still shows them).

Imports SQLAlchemy, the bookkeeping's schema and :mod:`farmtools.monitor.checks`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, func, insert, or_, select

from farmtools.bookkeeping.schema import dqm_checks, now
from farmtools.monitor.checks import CheckResult, State, worst

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

RUN = "run"
WINDOW = "window"


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction as the bookkeeping opens them (``BEGIN IMMEDIATE`` on SQLite: it
    waits for another process's write lock instead of failing with "database is locked")."""
    with engine.connect() as conn:
        conn.execution_options(farmtools_write=True)
        with conn.begin():
            yield conn


@dataclass(frozen=True)
class StoredCheck:
    """One check's latest verdict: of ``run`` (scope "run") or farm-wide (scope "window")."""

    task: str
    item: str
    run: int | None
    scope: str
    state: State
    reason: str
    reference: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    time: datetime | None = None
    #: :attr:`CheckResult.covers` (not stored: only the checker's alarm logic reads it)
    covers: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str, str, int | None]:
        return (self.task, self.item, self.scope, self.run)

    def same_verdict(self, other: StoredCheck | None) -> bool:
        return other is not None and (self.state, self.reason, self.reference) == (
            other.state,
            other.reason,
            other.reference,
        )

    def as_dict(self) -> dict[str, Any]:
        """The fields of ``monitor checks --json`` (the time as a datetime: the listing formats it)."""
        return {
            "task": self.task,
            "item": self.item,
            "run": self.run,
            "scope": self.scope,
            "state": self.state.label,
            "reason": self.reason,
            "reference": self.reference,
            "details": self.details,
            "time": self.time,
        }


def stored(
    task: str, item: str, run: int | None, result: CheckResult, reference: int | None
) -> StoredCheck:
    """A :class:`StoredCheck` of ``result`` (scope "window" when ``run`` is None)."""
    return StoredCheck(
        task,
        item,
        run,
        RUN if run is not None else WINDOW,
        result.state,
        result.reason,
        reference,
        dict(result.details),
        now(),
        result.covers,
    )


class CheckStore:
    """The latest check results, in ``dqm_checks`` (``engine``) or in memory (``engine`` None).

    With a database, what is stored is compared with the table on each save (one indexed read
    of the run's rows): a verdict another process wrote, or a row removed, is seen.
    """

    def __init__(self, engine: Engine | None) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._memory: dict[tuple[str, str, str, int | None], StoredCheck] = {}

    # -- writing -------------------------------------------------------------------------------
    def save(self, results: list[StoredCheck]) -> list[StoredCheck]:
        """Store the results whose verdict changed; returns those (the others are left as they are)."""
        if not results:
            return []
        with self._lock:
            if self.engine is None:
                changed = [r for r in results if not r.same_verdict(self._memory.get(r.key))]
            else:  # compared with the table itself: another process may have written it
                old = {r.key: r for r in self._read(self._keys_filter(results))}
                changed = [r for r in results if not r.same_verdict(old.get(r.key))]
                if changed:
                    with write_transaction(self.engine) as conn:
                        for r in changed:
                            conn.execute(delete(dqm_checks).where(self._key_filter(r)))
                        conn.execute(insert(dqm_checks), [self._row(r) for r in changed])
            for r in results:
                self._memory[r.key] = r
        return changed

    # -- reading -------------------------------------------------------------------------------
    def for_run(self, run: int) -> list[StoredCheck]:
        """The checks of ``run`` (scope "run"), in (task, item) order."""
        if self.engine is None:
            return sorted(
                (r for r in self._memory.values() if r.scope == RUN and r.run == run),
                key=lambda r: (r.task, r.item),
            )
        return self._read(and_(dqm_checks.c.run == run, dqm_checks.c.scope == RUN))

    def window(self) -> list[StoredCheck]:
        """The farm-wide checks over the recent window (run None)."""
        if self.engine is None:
            return sorted(
                (r for r in self._memory.values() if r.scope == WINDOW),
                key=lambda r: (r.task, r.item),
            )
        return self._read(and_(dqm_checks.c.run.is_(None), dqm_checks.c.scope == WINDOW))

    def latest_run(self) -> int | None:
        """The newest run with stored checks."""
        if self.engine is None:
            runs = [r.run for r in self._memory.values() if r.run is not None]
            return max(runs, default=None)
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(dqm_checks.c.run))).scalar()

    def run_state(self, run: int) -> tuple[State, list[str]]:
        """The worst state of ``run``'s checks and the reasons of the checks in that state."""
        rows = self.for_run(run)
        w = worst(r.state for r in rows)
        return w, [
            f"{r.task}/{r.item}: {r.reason}" for r in rows if r.state == w and w > State.GOOD
        ]

    # -- helpers -------------------------------------------------------------------------------
    def _read(self, where: Any) -> list[StoredCheck]:
        assert self.engine is not None
        q = select(dqm_checks).where(where).order_by(dqm_checks.c.task, dqm_checks.c.item)
        with self.engine.connect() as conn:
            return [
                StoredCheck(
                    m["task"],
                    m["item"],
                    m["run"],
                    m["scope"],
                    State.parse(m["state"]),
                    m["reason"],
                    m["reference"],
                    dict(m["details"] or {}),
                    m["time"],
                )
                for m in (row._mapping for row in conn.execute(q))
            ]

    @staticmethod
    def _key_filter(r: StoredCheck) -> Any:
        t = dqm_checks.c
        run = t.run.is_(None) if r.run is None else t.run == r.run
        return and_(t.task == r.task, t.item == r.item, t.scope == r.scope, run)

    @staticmethod
    def _keys_filter(rs: list[StoredCheck]) -> Any:
        runs = {r.run for r in rs}
        t = dqm_checks.c
        conds = [t.run.in_([r for r in runs if r is not None])]
        if None in runs:
            conds.append(t.run.is_(None))
        return or_(*conds)

    @staticmethod
    def _row(r: StoredCheck) -> dict[str, Any]:
        return {
            "task": r.task,
            "item": r.item,
            "scope": r.scope,
            "run": r.run,
            "state": r.state.label,
            "reason": r.reason,
            "reference": r.reference,
            "details": r.details,
            "time": r.time or now(),
        }
