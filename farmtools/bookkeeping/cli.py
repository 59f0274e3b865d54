"""Commands of the bookkeeping stage: ``story``, ``runs``, ``files``, ``alarms``, ``logs export``, ``db upgrade``.

Reads the database named by the farm configuration (``--config``, else ``$FARMTOOLS_CONFIG``,
else ``./farm.toml``).  SQLAlchemy is imported inside the commands so ``farmtools --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from farmtools.bookkeeping.db import Bookkeeping

_CONFIG = typer.Option(
    None, "--config", "-c", help="farm.toml (default: $FARMTOOLS_CONFIG, ./farm.toml)"
)


def _open(config: Path | None) -> Bookkeeping:
    from farmtools.bookkeeping.db import Bookkeeping
    from farmtools.config import ConfigError, load_config

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    return Bookkeeping.from_config(cfg)


def story(
    name: str = typer.Argument(..., help="file name (run<N>-seq<M>.dat) or a path to it"),
    config: Path | None = _CONFIG,
) -> None:
    """Print one file's timeline: every event with its time, host and details."""
    import json
    import os

    from rich.console import Console
    from rich.table import Table

    bk = _open(config)
    rec = bk.get(name) or bk.get(os.path.basename(name))
    if rec is None:
        typer.echo(f"{name}: not in the bookkeeping database", err=True)
        raise typer.Exit(1)
    table = Table(
        title=f"{rec.name}  [{rec.state}]  run {rec.run} seq {rec.seq}  "
        f"adler32 {rec.adler32 or '-'}"
    )
    for col in ("time (UTC)", "event", "host:pid", "details"):
        table.add_column(col)
    for ev in bk.story(rec.name):
        table.add_row(
            ev.time.strftime("%Y-%m-%d %H:%M:%S.%f"),
            ev.event,
            f"{ev.host}:{ev.pid}",
            json.dumps(ev.details, ensure_ascii=True) if ev.details else "",
        )
    Console().print(table)


def runs(config: Path | None = _CONFIG) -> None:
    """List runs: files, bytes and files per state."""
    from rich.console import Console
    from rich.table import Table

    from farmtools.bookkeeping.textlogs import human_size

    table = Table(title="runs")
    for col in ("run", "files", "bytes", "states"):
        table.add_column(col)
    for r in _open(config).runs():
        states = ", ".join(f"{s} {n}" for s, n in sorted(r.states.items()))
        table.add_row(str(r.run), str(r.files), human_size(r.bytes), states)
    Console().print(table)


def files(
    run: int | None = typer.Option(None, "--run", help="only this run"),
    state: str | None = typer.Option(None, "--state", help="only files in this state"),
    config: Path | None = _CONFIG,
) -> None:
    """List files with their state, size and checksum."""
    from rich.console import Console
    from rich.table import Table

    from farmtools.bookkeeping.states import FileState

    if state is not None and state not in {s.value for s in FileState}:
        typer.echo(
            f"--state {state!r}: not one of {', '.join(s.value for s in FileState)}", err=True
        )
        raise typer.Exit(2)
    table = Table(title="files")
    for col in (
        "name",
        "run",
        "seq",
        "state",
        "since (UTC)",
        "size",
        "adler32",
        "tries",
        "last error",
    ):
        table.add_column(col)
    for f in _open(config).files(run=run, state=state):
        table.add_row(
            f.name,
            str(f.run),
            str(f.seq),
            f.state.value,
            f.state_since.strftime("%Y-%m-%d %H:%M:%S"),
            str(f.size),
            f.adler32 or "",
            str(f.tries),
            f.last_error or "",
        )
    Console().print(table)


def alarms(
    all_: bool = typer.Option(False, "--all", help="include acknowledged alarms"),
    config: Path | None = _CONFIG,
) -> None:
    """List alarms (quarantined files and other conditions that need a person)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="alarms")
    for col in ("id", "time (UTC)", "file", "source", "kind", "message"):
        table.add_column(col)
    for a in _open(config).alarms(include_acknowledged=all_):
        table.add_row(
            str(a.id),
            a.time.strftime("%Y-%m-%d %H:%M:%S"),
            a.file or "",
            a.source,
            a.kind,
            a.message,
        )
    Console().print(table)


logs_app = typer.Typer(
    help="The seed's text logs, generated from the bookkeeping database.", no_args_is_help=True
)
db_app = typer.Typer(help="The bookkeeping database itself.", no_args_is_help=True)


@logs_app.command("export")
def logs_export(
    dest: Annotated[Path, typer.Argument(help="directory to write alltransfer.log and runs/ into")],
    config: Path | None = _CONFIG,
) -> None:
    """Re-generate alltransfer.log and runs/run<N>.log from the database into DEST."""
    from farmtools.bookkeeping.textlogs import export

    n = export(_open(config), dest)
    typer.echo(f"{n} transfer lines written to {dest}")


@db_app.command("upgrade")
def db_upgrade(config: Path | None = _CONFIG) -> None:
    """Create missing tables and run schema upgrades (also done when any command opens the DB)."""
    bk = _open(config)
    typer.echo(
        f"{bk.engine.url.render_as_string(hide_password=True)}: schema version {bk.upgrade()}"
    )


def register(app: typer.Typer) -> None:
    """Add the bookkeeping commands to the root application."""
    app.command()(story)
    app.command()(runs)
    app.command()(files)
    app.command()(alarms)
    app.add_typer(logs_app, name="logs")
    app.add_typer(db_app, name="db")
