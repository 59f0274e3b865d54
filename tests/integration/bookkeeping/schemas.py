"""Databases as an older schema version left them, for the tests of the upgrade steps."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from farmtools.bookkeeping import Bookkeeping, schema
from farmtools.bookkeeping.schema import now


def as_version(bk: Bookkeeping, version: int, undo: Callable[[sa.Connection], None]) -> None:
    """Make ``bk``'s database look as schema ``version`` left it: ``undo`` removes what came
    later (tables, columns, triggers), and the recorded version becomes ``version``."""
    with bk.engine.begin() as conn:
        undo(conn)
        conn.execute(sa.delete(schema.schema_version))
        conn.execute(sa.insert(schema.schema_version).values(version=version, applied=now()))


def reopened_at(
    bk: Bookkeeping, db_url: str, version: int, undo: Callable[[sa.Connection], None]
) -> Bookkeeping:
    """``bk``'s database set back to ``version`` (:func:`as_version`), closed and opened again:
    opening runs the upgrade steps from ``version``.  The caller closes the result."""
    as_version(bk, version, undo)
    bk.close()
    return Bookkeeping(db_url)
