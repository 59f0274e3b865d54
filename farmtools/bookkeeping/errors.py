"""What a daemon needs to know about a bookkeeping error: is the database away right now?

A PostgreSQL restart or a network cut reaches the daemons as SQLAlchemy ``OperationalError``
(or a ``DBAPIError`` whose connection was invalidated).  Nothing about a file can be recorded
then, so the daemons neither mark the file failed nor print a traceback per try: they say in
one line what waits for the database and try again later, backing off.  Imports SQLAlchemy only.

The shift's commands get the same one line at the command-line boundary (``farmtools/cli.py``):
:func:`database_failure` turns any of these errors, and :class:`DatabaseUnavailable`, into the
message naming the database (password masked), printed instead of a traceback.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError, OperationalError


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the bookkeeping database cannot be reached or used right now."""
    return isinstance(exc, (OperationalError, DatabaseUnavailable)) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (SQLAlchemy's run over several), or its type."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


#: Attribute :meth:`~farmtools.bookkeeping.db.Bookkeeping` sets on every SQLAlchemy error of its
#: engine: the database's URL with the password masked, so a message can name the database.
DATABASE_ATTR = "farmtools_database"


class DatabaseUnavailable(Exception):
    """The bookkeeping database cannot be opened: not reachable, not readable, or absent where a
    read-only command must not create it.  ``database`` is the URL with its password masked."""

    def __init__(self, database: str, reason: str) -> None:
        super().__init__(f"bookkeeping database {database}: {reason}")
        self.database = database
        self.reason = reason


def database_failure(exc: BaseException) -> str | None:
    """One line for a shift command whose database is away (None: ``exc`` is something else)."""
    if isinstance(exc, DatabaseUnavailable):
        return str(exc)
    if database_unavailable(exc):
        where = getattr(exc, DATABASE_ATTR, None) or "(unknown URL)"
        return f"bookkeeping database {where}: unavailable: {first_line(exc)}"
    return None


def log_pass_error(log: logging.Logger, what: str, exc: BaseException) -> None:
    """Log a failed pass of a daemon's background step (``what`` failed; tried again later).

    While the database is away that is one warning line (an outage is expected and long:
    a traceback per pass would bury the log and fail the "no traceback" checks of a clean
    outage); anything else is a bug and gets its traceback.
    """
    if database_unavailable(exc):
        log.warning("%s waits for the bookkeeping database: %s", what, first_line(exc))
    else:
        log.error("%s failed; tried again at the next pass", what, exc_info=exc)
