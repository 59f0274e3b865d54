"""Checks of command-line values shared by the stage CLIs (light: no heavy import here).

An option restricted to a set of names (a file state, a job state) is checked before anything is
read, so a typo is an error listing the accepted values rather than an empty table that looks
like "nothing there".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import typer

#: Exit code of a wrong option or an invalid configuration (as click's usage errors).
EXIT_USAGE = 2
#: Exit code of a command whose bookkeeping database cannot be reached, read or found.
EXIT_DATABASE = 3

#: ``--log-json`` of every daemon command (see :mod:`farmtools.logsetup`).
LogJson = Annotated[
    bool,
    typer.Option(
        "--log-json",
        envvar="FARMTOOLS_LOG_JSON",
        help="Log one JSON object per line (time, level, logger, message, exception) "
        "for a log shipper, instead of plain lines.",
    ),
]


def check_choice(option: str, value: str | None, allowed: Iterable[str]) -> None:
    """Exit with :data:`EXIT_USAGE` and a message listing ``allowed`` unless ``value`` is one."""
    choices = list(allowed)
    if value is not None and value not in choices:
        typer.echo(f"{option} {value!r}: not one of {', '.join(choices)}", err=True)
        raise typer.Exit(EXIT_USAGE)
