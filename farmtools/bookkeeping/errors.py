"""What a daemon needs to know about a bookkeeping error: is the database away right now?

A PostgreSQL restart or a network cut reaches the daemons as SQLAlchemy ``OperationalError``
(or a ``DBAPIError`` whose connection was invalidated).  Nothing about a file can be recorded
then, so the daemons neither mark the file failed nor print a traceback per try: they say in
one line what waits for the database and try again later, backing off.  Imports SQLAlchemy only.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the bookkeeping database cannot be reached or used right now."""
    return isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (SQLAlchemy's run over several), or its type."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
