"""Commands of the ingest stage: ``farmtools ingest watch | once | retry``.

Read the farm configuration (``--config``, else ``$FARMTOOLS_CONFIG``, else ``./farm.toml``).
Heavy imports (SQLAlchemy, XRootD, inotify) happen inside the commands.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from farmtools.cliopts import LogJson
from farmtools.logsetup import setup_logging

if TYPE_CHECKING:
    from farmtools.ingest.service import IngestService

ingest_app = typer.Typer(
    name="ingest",
    help="Copy raw files from the DAQ directory to the farm storage, verified and recorded.",
    no_args_is_help=True,
)

_FILES = typer.Argument(None, help="file names (run<N>-seq<M>.dat) or paths")
_CONFIG = typer.Option(
    None, "--config", "-c", help="farm.toml (default: $FARMTOOLS_CONFIG, ./farm.toml)"
)


def _service(config: Path | None, *, create: bool = True, log_json: bool = False) -> IngestService:
    """The ingest service of the configuration; ``create=False`` (``ingest retry``, a shift
    command): only an existing bookkeeping database, never a new empty one.  Logging is set up
    here, for the daemon and the one-shot commands alike (:mod:`farmtools.logsetup`)."""
    from farmtools.bookkeeping.db import Bookkeeping
    from farmtools.config import ConfigError, load_config
    from farmtools.ingest.service import IngestService
    from farmtools.storage import storage_from_config

    setup_logging(log_json)
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    bk = Bookkeeping.from_config(cfg, create=create)
    return IngestService(cfg, bk, storage_from_config(cfg))


@ingest_app.command()
def watch(config: Path | None = _CONFIG, log_json: LogJson = False) -> None:
    """Run the ingest daemon: reconcile, then follow inotify events (and rescan) until SIGTERM."""
    import signal
    import threading

    svc = _service(config, log_json=log_json)
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        logging.getLogger("farmtools.ingest").info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    svc.watch(stop)


@ingest_app.command()
def once(config: Path | None = _CONFIG) -> None:
    """Reconcile once and exit: ingest whatever is complete and not yet stored.

    Exit status 0 when nothing is left waiting, 1 when files wait for a retry.
    """
    from farmtools.bookkeeping.states import FileState

    svc = _service(config)
    stored = svc.reconcile()
    waiting = svc.bk.files(state=FileState.DETECTED)
    typer.echo(f"stored {stored} file(s); {len(waiting)} waiting for a retry")
    raise typer.Exit(1 if waiting else 0)


@ingest_app.command()
def retry(
    files: list[str] | None = _FILES,
    all_failed: bool = typer.Option(
        False, "--all-failed", help="every quarantined file and every file waiting after errors"
    ),
    force: bool = typer.Option(
        False, "--force", help="take over a file claimed by a worker of another host (dead)"
    ),
    config: Path | None = _CONFIG,
) -> None:
    """Retry quarantined or failing files, once a person has fixed the cause."""
    if not files and not all_failed:
        typer.echo("give FILE names or --all-failed", err=True)
        raise typer.Exit(2)
    svc = _service(config, create=False)
    results: dict[str, str] = {}
    if all_failed:
        results.update({k: str(v) for k, v in svc.retry_failed().items()})
    bad = False
    for name in files or []:
        try:
            results[name] = str(svc.retry(name, force=force))
        except (KeyError, RuntimeError) as exc:
            typer.echo(str(exc).strip("'\""), err=True)
            bad = True
    for name, state in results.items():
        typer.echo(f"{name}: {state}")
    if bad or any(s != "stored" for s in results.values()):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root application."""
    app.add_typer(ingest_app, name="ingest")
