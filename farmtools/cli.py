"""The ``farmtools`` command line: ``farmtools <stage> <verb>``.

Each stage owns a ``cli`` module with a ``register(app)`` function that adds its commands or
its sub-group to the root application; this file only lists them.  Stage CLI modules import
their heavy dependencies (numba, uproot, SQLAlchemy...) inside the command functions, so that
``farmtools --help`` and small commands start fast.

Errors the shift meets when something around the command is wrong are handled here, once, at the
command-line boundary (:class:`FarmtoolsGroup`), not in each command: a bookkeeping database that
cannot be reached or read is one line naming it (password masked) and exit code
:data:`EXIT_DATABASE`; an invalid configuration is one line and :data:`EXIT_USAGE`.

Exit codes of every command: 0 done; 1 a check failed or the thing asked for does not exist;
2 wrong usage or configuration (:data:`EXIT_USAGE`); 3 the bookkeeping database is unavailable
(:data:`EXIT_DATABASE`); 65 corrupt input (``farmtools.job.exitcodes``).
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperGroup

from farmtools.cliopts import EXIT_DATABASE, EXIT_USAGE


class FarmtoolsGroup(TyperGroup):
    """The root command group: turns the shift's usual failures into one line and an exit code.

    Every command runs inside :meth:`invoke`, so one ``except`` here covers them all (and the
    tests' ``CliRunner``, which calls the same group).  Anything else keeps its traceback: a bug.
    """

    def invoke(self, ctx: Any) -> Any:
        from farmtools.config import ConfigError

        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(EXIT_USAGE) from None
        except Exception as exc:
            from farmtools.bookkeeping.errors import database_failure

            message = database_failure(exc)
            if message is None:
                raise
            typer.echo(message, err=True)
            raise typer.Exit(EXIT_DATABASE) from None


app = typer.Typer(
    name="farmtools",
    cls=FarmtoolsGroup,
    epilog="Exit codes: 0 done; 1 a check failed or no such thing; 2 wrong option or "
    "configuration; 3 the bookkeeping database is unavailable; 65 corrupt input.",
    help="Online storage and processing farm of the WA105 dual-phase LAr TPC.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

#: Stage CLI modules, in the order their commands appear in ``--help``.
STAGES: tuple[str, ...] = (
    "farmtools.rawdata.cli",
    "farmtools.emulator.cli",
    "farmtools.evb.cli",
    "farmtools.archive.cli",
    "farmtools.final.cli",
    "farmtools.bookkeeping.cli",
    "farmtools.ingest.cli",
    "farmtools.processing.cli",
    "farmtools.analysis.cli",
    "farmtools.reco.cli",
    "farmtools.deploy.cli",
    "farmtools.monitor.cli",
    "farmtools.challenge.cli",
)


def _version(value: bool) -> None:
    if value:
        from farmtools import __version__

        typer.echo(f"farmtools {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Online storage and processing farm of the WA105 dual-phase LAr TPC."""


for _module in STAGES:
    importlib.import_module(_module).register(app)


def main() -> None:
    """Console-script entry point."""
    app()
