"""The ``farmtools`` command line: ``farmtools <stage> <verb>``.

Each stage owns a ``cli`` module with a ``register(app)`` function that adds its commands or
its sub-group to the root application; this file only lists them.  Stage CLI modules import
their heavy dependencies (numba, uproot, SQLAlchemy...) inside the command functions, so that
``farmtools --help`` and small commands start fast.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="farmtools",
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
