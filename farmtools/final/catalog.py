"""The filter's and the final files' rows in the bookkeeping: what was classified, decided, written.

``final_sources`` (one row per raw file classified, with its event count), ``final_events``
(one row per event: class, decision, final file), ``final_filters`` (per run: the policy, its
version and the counts), ``final_files`` (per final-storage file, its state along
:data:`FINAL_MACHINE`, a compare-and-set as for archives).  A raw file's rows and its events'
rows are written in one transaction, so a file is classified wholly or not at all.
Imports :mod:`farmtools.bookkeeping` (engine and tables), SQLAlchemy and the final stage's
classes only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, select, tuple_, update

from farmtools.bookkeeping import Bookkeeping
from farmtools.bookkeeping.schema import (
    final_events,
    final_files,
    final_filters,
    final_sources,
    now,
)
from farmtools.final.classify import Classified, EventClass
from farmtools.final.policy import Decision
from farmtools.statemachine import StateMachine


class FinalState(StrEnum):
    WRITTEN = "written"
    TRANSFERRING = "transferring"
    TRANSFERRED = "transferred"
    VERIFIED = "verified"
    FAILED = "failed"


_F = FinalState
#: The moves of a final-storage file (docs/bookkeeping.md draws it): a failed transfer or
#: verification is tried again; a verified file may be verified again, and fail then.
FINAL_MACHINE = StateMachine.of(
    "final file",
    FinalState,
    initial=[_F.WRITTEN],
    moves=[
        ([_F.WRITTEN, _F.TRANSFERRING, _F.FAILED], [_F.TRANSFERRING]),
        ([_F.TRANSFERRING], [_F.TRANSFERRED]),
        ([_F.TRANSFERRED, _F.VERIFIED, _F.FAILED], [_F.VERIFIED]),
        (list(FinalState), [_F.FAILED]),
    ],
)


@dataclass(frozen=True)
class SourceRecord:
    file: str
    run: int
    events: int
    size: int
    adler32: str | None


@dataclass(frozen=True)
class EventRecord:
    file: str
    idx: int
    run: int
    trigger: int
    event: int
    trigger_type: int
    size: int
    klass: EventClass
    reason: str
    decision: Decision | None
    policy_version: str | None
    final_file: str | None


@dataclass(frozen=True)
class FinalFile:
    name: str
    run: int
    stream: str
    events: int
    size: int
    adler32: str
    policy_version: str
    state: FinalState
    written: datetime
    transferred: datetime | None
    verified: datetime | None
    destination: str | None
    last_error: str | None


@dataclass(frozen=True)
class FilterRecord:
    run: int
    policy_version: str
    policy: dict[str, str]
    counts: dict[str, dict[str, int]]
    filtered: datetime


def _event(m: Any) -> EventRecord:
    return EventRecord(
        m["file"],
        m["idx"],
        m["run"],
        m["trigger"],
        m["event"],
        m["trigger_type"],
        m["size"],
        EventClass(m["klass"]),
        m["reason"],
        Decision(m["decision"]) if m["decision"] is not None else None,
        m["policy_version"],
        m["final_file"],
    )


def _final(m: Any) -> FinalFile:
    d = dict(m)
    d["state"] = FinalState(d["state"])
    return FinalFile(**d)


class FinalCatalog:
    """The final stage's rows of one bookkeeping database."""

    def __init__(self, bk: Bookkeeping) -> None:
        self.bk = bk

    def _write(self) -> AbstractContextManager[Connection]:
        return self.bk.writing()

    def _read(self) -> AbstractContextManager[Connection]:
        return self.bk.reading()

    # -- sources and events ----------------------------------------------------------------
    def sources(self, run: int) -> dict[str, SourceRecord]:
        q = select(final_sources).where(final_sources.c.run == run)
        with self._read() as conn:
            return {
                r.file: SourceRecord(r.file, r.run, r.events, r.size, r.adler32)
                for r in conn.execute(q)
            }

    def add_source(
        self, file: str, run: int, size: int, adler32: str | None, events: Sequence[Classified]
    ) -> bool:
        """Record a classified raw file and its events at once; False if it was already there."""
        with self._write() as conn:
            if conn.execute(
                select(final_sources.c.file).where(final_sources.c.file == file)
            ).first():
                return False
            conn.execute(
                insert(final_sources).values(
                    file=file,
                    run=run,
                    events=len(events),
                    size=size,
                    adler32=adler32,
                    classified=now(),
                )
            )
            if events:
                conn.execute(
                    insert(final_events),
                    [
                        {
                            "file": file,
                            "idx": e.index,
                            "run": run,
                            "trigger": e.trigger,
                            "event": e.event,
                            "trigger_type": e.trigger_type,
                            "size": e.size,
                            "klass": str(e.klass),
                            "reason": e.reason,
                        }
                        for e in events
                    ],
                )
        return True

    def events(self, run: int, *, file: str | None = None) -> list[EventRecord]:
        """A run's classified events in trigger order (then raw file and index)."""
        q = select(final_events).where(final_events.c.run == run)
        if file is not None:
            q = q.where(final_events.c.file == file)
        q = q.order_by(final_events.c.trigger, final_events.c.file, final_events.c.idx)
        with self._read() as conn:
            return [_event(r._mapping) for r in conn.execute(q)]

    # -- filter ----------------------------------------------------------------------------
    def record_filter(
        self,
        run: int,
        version: str,
        policy: Mapping[str, str],
        decisions: Sequence[tuple[str, int, Decision]],
        counts: Mapping[str, Mapping[str, int]],
    ) -> None:
        """Every event's decision and the run's counts, in one transaction (replacing earlier ones)."""
        with self._write() as conn:
            for d in Decision:
                keys = [(f, i) for f, i, dec in decisions if dec == d]
                for chunk in range(0, len(keys), 500):
                    part = keys[chunk : chunk + 500]
                    conn.execute(
                        update(final_events)
                        .where(tuple_(final_events.c.file, final_events.c.idx).in_(part))
                        .values(decision=str(d), policy_version=version)
                    )
            conn.execute(delete(final_filters).where(final_filters.c.run == run))
            conn.execute(
                insert(final_filters).values(
                    run=run,
                    policy_version=version,
                    policy=dict(policy),
                    counts={k: dict(v) for k, v in counts.items()},
                    filtered=now(),
                )
            )

    def filter_record(self, run: int) -> FilterRecord | None:
        with self._read() as conn:
            r = conn.execute(select(final_filters).where(final_filters.c.run == run)).first()
        if r is None:
            return None
        return FilterRecord(r.run, r.policy_version, dict(r.policy), dict(r.counts), r.filtered)

    # -- final files -----------------------------------------------------------------------
    def add_final(
        self,
        *,
        name: str,
        run: int,
        stream: str,
        size: int,
        adler32: str,
        policy_version: str,
        events: Sequence[tuple[str, int]],
    ) -> FinalFile:
        """Record a written final file and point its events at it, in one transaction."""
        FINAL_MACHINE.check_initial(FinalState.WRITTEN)
        with self._write() as conn:
            conn.execute(
                insert(final_files).values(
                    name=name,
                    run=run,
                    stream=stream,
                    events=len(events),
                    size=size,
                    adler32=adler32,
                    policy_version=policy_version,
                    state=str(FinalState.WRITTEN),
                    written=now(),
                )
            )
            for chunk in range(0, len(events), 500):
                conn.execute(
                    update(final_events)
                    .where(
                        and_(
                            tuple_(final_events.c.file, final_events.c.idx).in_(
                                list(events[chunk : chunk + 500])
                            ),
                            final_events.c.final_file.is_(None),
                        )
                    )
                    .values(final_file=name)
                )
        rec = self.get(name)
        assert rec is not None
        return rec

    def get(self, name: str) -> FinalFile | None:
        with self._read() as conn:
            r = conn.execute(select(final_files).where(final_files.c.name == name)).first()
        return _final(r._mapping) if r is not None else None

    def finals(
        self, run: int | None = None, state: FinalState | Iterable[FinalState] | None = None
    ) -> list[FinalFile]:
        q = select(final_files).order_by(final_files.c.run, final_files.c.name)
        if run is not None:
            q = q.where(final_files.c.run == run)
        if state is not None:
            states = [state] if isinstance(state, str) else list(state)
            q = q.where(final_files.c.state.in_([str(s) for s in states]))
        with self._read() as conn:
            return [_final(r._mapping) for r in conn.execute(q)]

    def move(self, name: str, froms: Iterable[FinalState], to: FinalState, **values: Any) -> bool:
        """Compare-and-set of a final file's state; False if it was not in one of ``froms``."""
        froms = list(froms)
        FINAL_MACHINE.check(froms, to)
        with self._write() as conn:
            res = conn.execute(
                update(final_files)
                .where(
                    final_files.c.name == name,
                    final_files.c.state.in_([str(s) for s in froms]),
                )
                .values(state=str(to), **values)
            )
        return bool(res.rowcount)
