"""The ``jobs`` table: one row per submission of a raw file to a batch system.

Owns reading and writing ``farmtools.bookkeeping.schema.jobs`` through the bookkeeping's engine
(:class:`JobStore`) and the :class:`JobRecord` value.  A job row's ``state`` is ``new`` (to
submit once ``due``), ``submitted``, ``running``, then ``done``, ``failed`` or ``cancelled``.
The file's own state and story stay in :class:`~farmtools.bookkeeping.Bookkeeping`; this table
holds what only processing needs (batch ids, resources, accounting, failure class).

Imports SQLAlchemy and :mod:`farmtools.bookkeeping`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from farmtools.bookkeeping import Bookkeeping
from farmtools.bookkeeping.schema import jobs, now

ACTIVE = ("submitted", "running")
#: Every state a job row can be in (``jobs list --state`` accepts these and nothing else).
JOB_STATES = ("new", *ACTIVE, "done", "failed", "cancelled")


@dataclass(frozen=True)
class JobRecord:
    id: int
    file: str
    try_number: int
    backend: str
    batch_id: str | None
    name: str
    script: str | None
    stdout: str | None
    stderr: str | None
    status_file: str | None
    output: str | None
    queue: str
    memory_mb: int
    walltime_s: int
    state: str
    created: datetime
    due: datetime
    submitted: datetime | None
    started: datetime | None
    ended: datetime | None
    exit_code: int | None
    signal: int | None
    cpu_s: float | None
    max_rss_kb: int | None
    walltime_used_s: float | None
    node: str | None
    failure: str | None
    reason: str | None
    job_log: str | None


_NAMES = [f.name for f in fields(JobRecord)]


def _rec(row: Any) -> JobRecord:
    m = row._mapping
    return JobRecord(**{k: m[k] for k in _NAMES})


class JobStore:
    """Jobs of the bookkeeping database ``bk``."""

    def __init__(self, bk: Bookkeeping) -> None:
        self.engine = bk.engine

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            # same execution option as the bookkeeping: BEGIN IMMEDIATE on SQLite
            conn.execution_options(farmtools_write=True)
            with conn.begin():
                yield conn

    def add(
        self,
        *,
        file: str,
        try_number: int,
        backend: str,
        name: str,
        queue: str,
        memory_mb: int,
        walltime_s: int,
        due: datetime | None = None,
    ) -> JobRecord:
        t = now()
        with self._write() as conn:
            row = conn.execute(
                insert(jobs)
                .values(
                    file=file,
                    try_number=try_number,
                    backend=backend,
                    name=name,
                    queue=queue,
                    memory_mb=memory_mb,
                    walltime_s=walltime_s,
                    state="new",
                    created=t,
                    due=due or t,
                )
                .returning(*jobs.c)
            ).one()
        return _rec(row)

    def update(self, job_id: int, **values: Any) -> None:
        with self._write() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))

    def set_state(
        self, job_id: int, from_states: Sequence[str], to_state: str, **values: Any
    ) -> bool:
        """Compare-and-set of a job's state (a CLI cancel may race with the manager)."""
        with self._write() as conn:
            res = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state.in_(list(from_states)))
                .values(state=to_state, **values)
            )
            return bool(res.rowcount)

    def get(self, job_id: int) -> JobRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        return _rec(row) if row is not None else None

    def due(self, limit: int = 100) -> list[JobRecord]:
        """New jobs whose cool-off is over, oldest first."""
        q = (
            select(jobs)
            .where(jobs.c.state == "new", jobs.c.due <= now())
            .order_by(jobs.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_rec(r) for r in conn.execute(q)]

    def next_due(self) -> datetime | None:
        """When the earliest ``new`` job is due (None when none waits): the daemon sleeps till then."""
        q = select(func.min(jobs.c.due)).where(jobs.c.state == "new")
        with self.engine.connect() as conn:
            due: datetime | None = conn.execute(q).scalar()
        return due

    def active(self) -> list[JobRecord]:
        q = select(jobs).where(jobs.c.state.in_(ACTIVE)).order_by(jobs.c.id)
        with self.engine.connect() as conn:
            return [_rec(r) for r in conn.execute(q)]

    def of_file(self, file: str) -> list[JobRecord]:
        q = select(jobs).where(jobs.c.file == file).order_by(jobs.c.id)
        with self.engine.connect() as conn:
            return [_rec(r) for r in conn.execute(q)]

    def files_with_open_jobs(self) -> set[str]:
        q = select(jobs.c.file).where(jobs.c.state.in_(("new", *ACTIVE))).distinct()
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(q)}

    def list(
        self, state: str | None = None, file: str | None = None, limit: int = 200
    ) -> list[JobRecord]:
        q = select(jobs)
        if state:
            q = q.where(jobs.c.state == state)
        if file:
            q = q.where(jobs.c.file == file)
        q = q.order_by(jobs.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_rec(r) for r in conn.execute(q)]

    def counts(self) -> dict[str, int]:
        q = select(jobs.c.state, func.count()).group_by(jobs.c.state)
        with self.engine.connect() as conn:
            return {s: int(n) for s, n in conn.execute(q)}
