"""The archive stage's rows in the bookkeeping database: ``archives`` and ``archive_members``.

An archive moves through ``planned -> created -> transferring -> transferred -> verified``
(``failed`` with ``last_error`` when a step gives up; the step can be run again).  Every change
is a compare-and-set on the state, like the file states of :mod:`farmtools.bookkeeping`, so two
operators running ``archive transfer`` at once cannot both copy one archive.  A raw file is in
at most one archive (primary key on ``archive_members.file``).

Imports :mod:`farmtools.bookkeeping` (its engine and tables) and SQLAlchemy only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, insert, select, update

from farmtools.bookkeeping import Bookkeeping, FileRecord, FileState
from farmtools.bookkeeping.schema import archive_members, archives, files, now
from farmtools.statemachine import StateMachine


class ArchiveState(StrEnum):
    PLANNED = "planned"
    CREATED = "created"
    TRANSFERRING = "transferring"
    TRANSFERRED = "transferred"
    VERIFIED = "verified"
    FAILED = "failed"


_A = ArchiveState
#: The allowed moves of an archive (docs/bookkeeping.md draws it): a failed archive is created
#: again from its plan, or transferred or verified again; a verified one may be re-verified
#: (``archive verify --all``), and fail then.
ARCHIVE_MACHINE = StateMachine.of(
    "archive",
    ArchiveState,
    initial=[_A.PLANNED],
    moves=[
        ([_A.PLANNED, _A.FAILED], [_A.PLANNED]),
        ([_A.PLANNED], [_A.CREATED]),
        ([_A.CREATED, _A.TRANSFERRING, _A.FAILED], [_A.TRANSFERRING]),
        ([_A.TRANSFERRING], [_A.TRANSFERRED]),
        ([_A.TRANSFERRED, _A.VERIFIED, _A.FAILED], [_A.VERIFIED]),
        (list(ArchiveState), [_A.FAILED]),  # any step can fail, and a re-verification
    ],
)


#: File states in which the raw file is on the farm storage with a verified checksum.
ARCHIVABLE: frozenset[str] = frozenset(
    str(s)
    for s in (
        FileState.STORED,
        FileState.QUEUED,
        FileState.SUBMITTED,
        FileState.RUNNING,
        FileState.RECONSTRUCTED,
        FileState.ANALYSED,
        FileState.FAILED,  # processing failed; the raw file itself is fine
    )
)

#: Story events this stage adds to each member file.
EV_ARCHIVED = "archived"
EV_ARCHIVE_TRANSFERRED = "archive_transferred"
EV_ARCHIVE_VERIFIED = "archive_verified"
EV_ARCHIVE_FAILED = "archive_failed"
EV_RESTORED = "restored"
EV_CLEANED = "deleted_from_event_builder"


@dataclass(frozen=True)
class ArchiveRecord:
    name: str
    tag: str
    runs: tuple[int, ...]
    size: int | None
    adler32: str | None
    state: ArchiveState
    planned: datetime
    created: datetime | None
    transferred: datetime | None
    verified: datetime | None
    destination: str | None
    last_error: str | None


@dataclass(frozen=True)
class MemberRecord:
    archive: str
    file: str
    offset: int | None
    size: int
    adler32: str | None


def _archive(m: Any) -> ArchiveRecord:
    runs = tuple(int(r) for r in str(m["runs"]).split(",") if r)
    return ArchiveRecord(
        m["name"],
        m["tag"],
        runs,
        m["size"],
        m["adler32"],
        ArchiveState(m["state"]),
        m["planned"],
        m["created"],
        m["transferred"],
        m["verified"],
        m["destination"],
        m["last_error"],
    )


def _member(m: Any) -> MemberRecord:
    return MemberRecord(m["archive"], m["file"], m["offset"], m["size"], m["adler32"])


class Catalog:
    """Archive rows of one bookkeeping database."""

    def __init__(self, bk: Bookkeeping) -> None:
        self.bk = bk

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        # Same discipline as the bookkeeping: write transactions take the lock first on SQLite.
        with self.bk.engine.connect() as conn:
            conn.execution_options(farmtools_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.bk.engine.connect() as conn, conn.begin():
            yield conn

    # -- reading ---------------------------------------------------------------------------
    def unarchived(self) -> list[FileRecord]:
        """Raw files on the farm storage, checksum known, in no archive yet (run, seq order)."""
        taken = select(archive_members.c.file)
        q = (
            select(files.c.name)
            .where(
                files.c.state.in_(sorted(ARCHIVABLE)),
                files.c.adler32.is_not(None),
                files.c.run.is_not(None),
                files.c.name.not_in(taken),
            )
            .order_by(files.c.run, files.c.seq)
        )
        with self._read() as conn:
            names = [r[0] for r in conn.execute(q)]
        recs = [self.bk.get(n) for n in names]
        return [r for r in recs if r is not None]

    def get(self, name: str) -> ArchiveRecord | None:
        with self._read() as conn:
            row = conn.execute(select(archives).where(archives.c.name == name)).first()
        return _archive(row._mapping) if row is not None else None

    def find(
        self, state: ArchiveState | Iterable[ArchiveState] | None = None
    ) -> list[ArchiveRecord]:
        q = select(archives).order_by(archives.c.planned, archives.c.name)
        if state is not None:
            states = [state] if isinstance(state, str) else list(state)
            q = q.where(archives.c.state.in_([str(s) for s in states]))
        with self._read() as conn:
            return [_archive(r._mapping) for r in conn.execute(q)]

    def members(self, name: str) -> list[MemberRecord]:
        q = (
            select(archive_members)
            .join(files, files.c.name == archive_members.c.file)
            .where(archive_members.c.archive == name)
            .order_by(files.c.run, files.c.seq)
        )
        with self._read() as conn:
            return [_member(r._mapping) for r in conn.execute(q)]

    def member_of(self, file: str) -> MemberRecord | None:
        with self._read() as conn:
            row = conn.execute(
                select(archive_members).where(archive_members.c.file == file)
            ).first()
        return _member(row._mapping) if row is not None else None

    # -- writing ---------------------------------------------------------------------------
    def add(self, name: str, tag: str, members: Sequence[FileRecord]) -> ArchiveRecord:
        """Record a planned archive and its members in one transaction.

        Raises ``sqlalchemy.exc.IntegrityError`` if a file is already in another archive.
        """
        runs = ",".join(str(r) for r in sorted({m.run for m in members if m.run is not None}))
        with self._write() as conn:
            conn.execute(
                insert(archives).values(
                    name=name, tag=tag, runs=runs, state=str(ArchiveState.PLANNED), planned=now()
                )
            )
            conn.execute(
                insert(archive_members),
                [
                    {"archive": name, "file": m.name, "size": m.size or 0, "adler32": m.adler32}
                    for m in members
                ],
            )
        rec = self.get(name)
        assert rec is not None
        return rec

    def move(
        self,
        name: str,
        from_states: ArchiveState | Iterable[ArchiveState],
        to_state: ArchiveState,
        **fields: Any,
    ) -> bool:
        """Compare-and-set the state of ``name``; False if it was not in ``from_states``.

        A move :data:`ARCHIVE_MACHINE` does not allow raises
        :class:`~farmtools.statemachine.IllegalTransition`.
        """
        froms = [from_states] if isinstance(from_states, str) else list(from_states)
        ARCHIVE_MACHINE.check([str(s) for s in froms], str(to_state))
        with self._write() as conn:
            res = conn.execute(
                update(archives)
                .where(archives.c.name == name, archives.c.state.in_([str(s) for s in froms]))
                .values(state=str(to_state), **fields)
            )
            return bool(res.rowcount)

    def set_offsets(self, name: str, offsets: Mapping[str, int]) -> None:
        with self._write() as conn:
            for file, offset in offsets.items():
                conn.execute(
                    update(archive_members)
                    .where(archive_members.c.archive == name, archive_members.c.file == file)
                    .values(offset=offset)
                )
