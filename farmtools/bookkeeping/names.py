"""File names as the bookkeeping database stores them.

Linux file names are bytes; Python gives undecodable ones (and command-line arguments holding
them) as lone surrogates (``surrogateescape``), which no database driver accepts.  The
database stores such bytes as ``\\xNN`` text: ingest records a name that way, and every
command that looks a name up converts what the shell passed the same way.  Imports nothing.
"""

from __future__ import annotations


def db_text(text: str) -> str:
    """A name or path as the database stores it: undecodable bytes shown as ``\\xNN``.

    The real path stays in memory for the copy itself.
    """
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
