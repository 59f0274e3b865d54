"""How every listing command prints: a rich table, plain full-width text, or one JSON document.

The shift reads ``farmtools files`` on a terminal and scripts it (``| grep``, cron, ``jq``), so
each listing goes through here rather than building its own rich table: a table cut to the
terminal's 80 columns made ``jobs list | grep`` see ``run7…``.  Three forms of the same rows:

* on a terminal, a rich table whose cells fold rather than end in ``…``;
* piped, a title line, a header line and one line per row, columns aligned and separated by two
  or more spaces, nothing truncated, no box characters, newlines in values shown as ``\\n``;
* ``--json`` (:data:`JSON_OPTION`), one JSON document of the command's documented fields
  (docs/bookkeeping.md): times as ISO-8601 UTC strings, no NaN or infinity (``null``).

Values are never read as rich markup (a file name may hold ``[x]``).  Light: rich is imported
only when a table is drawn.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import typer

#: The ``--json`` option of every listing command.
JSON_OPTION = typer.Option(
    False, "--json", help="one JSON document (fields in docs/bookkeeping.md) instead of a table"
)


def emit(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    table: bool = True,
) -> None:
    """Print ``rows`` under ``columns``: a rich table on a terminal, plain aligned text otherwise.

    ``table=False`` keeps the plain form on a terminal too, for commands that always printed
    plain lines there.
    """
    if table and sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        drawn = Table(title=Text(title))
        for col in columns:
            drawn.add_column(col, overflow="fold")
        for row in rows:
            drawn.add_row(*(Text(v) for v in row))
        Console().print(drawn)
        return
    lines = [list(columns), *([v.replace("\n", "\\n") for v in row] for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    typer.echo(title)
    for line in lines:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


def utc_text(t: datetime | None) -> str | None:
    """``t`` as ISO-8601 UTC to the microsecond (``2026-12-07T19:13:00.000000Z``); None stays.

    One fixed width, so the strings sort as the times; a naive time is taken as UTC (the
    bookkeeping hands back aware ones).
    """
    if t is None:
        return None
    t = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def jsonable(value: Any) -> Any:
    """``value`` with datetimes as :func:`utc_text`, NaN/infinite floats as None, tuples as lists
    and enum-like ``str`` subclasses as plain strings, recursively."""
    if isinstance(value, datetime):
        return utc_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def emit_json(document: Any) -> None:
    """Print ``document`` (a list of objects, or one object) as one JSON document on stdout."""
    typer.echo(json.dumps(jsonable(document), ensure_ascii=True, allow_nan=False, indent=1))
