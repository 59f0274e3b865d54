"""Commands of the bookkeeping stage: ``story``, ``runs``, ``files``, ``alarms``, ``logs export``, ``db upgrade``.

Reads the database named by the farm configuration (``--config``, else ``$FARMTOOLS_CONFIG``,
else ``./farm.toml``).  These commands only read (``db upgrade`` aside): they never create a
database, so a wrong directory is an error naming the configuration looked for, not empty tables.
A database that is away is one line and exit code 3 (``farmtools/cli.py``).  SQLAlchemy is
imported inside the commands so ``farmtools --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from farmtools.cliopts import check_choice
from farmtools.listing import JSON_OPTION, emit, emit_json

if TYPE_CHECKING:
    from farmtools.bookkeeping.db import Bookkeeping

#: The fields of a file in ``files --json`` (docs/bookkeeping.md), as named in :class:`FileRecord`.
FILE_FIELDS = (
    "name",
    "run",
    "seq",
    "state",
    "state_since",
    "size",
    "adler32",
    "tries",
    "last_error",
    "daq_write_time",
    "source_path",
    "storage_path",
    "not_before",
)
#: The fields of an alarm in ``alarms --json``, as named in :class:`AlarmRecord`.
ALARM_FIELDS = (
    "id",
    "time",
    "file",
    "source",
    "kind",
    "message",
    "acknowledged",
    "closed",
    "closed_how",
    "closed_by",
    "close_reason",
)

_CONFIG = typer.Option(
    None, "--config", "-c", help="farm.toml (default: $FARMTOOLS_CONFIG, ./farm.toml)"
)


def _open(config: Path | None, *, create: bool = False) -> Bookkeeping:
    """The database of the configuration; an existing one unless ``create`` (``db upgrade``)."""
    from farmtools.bookkeeping.db import Bookkeeping
    from farmtools.config import load_config

    return Bookkeeping.from_config(load_config(config), create=create)


def story(
    name: str = typer.Argument(..., help="file name (run<N>-seq<M>.dat) or a path to it"),
    config: Path | None = _CONFIG,
    as_json: bool = JSON_OPTION,
) -> None:
    """Print one file's timeline: every event with its time, host and details."""
    import json
    import os

    from farmtools.bookkeeping.names import db_text

    name = db_text(name)  # a non-UTF-8 name from the shell, as the database stores it
    bk = _open(config)
    rec = bk.get(name) or bk.get(os.path.basename(name))
    if rec is None:
        typer.echo(f"{name}: not in the bookkeeping database", err=True)
        raise typer.Exit(1)
    timeline = bk.story(rec.name)
    if as_json:
        emit_json(
            {
                "name": rec.name,
                "run": rec.run,
                "seq": rec.seq,
                "state": rec.state.value,
                "adler32": rec.adler32,
                "events": [
                    {
                        "time": e.time,
                        "event": e.event,
                        "host": e.host,
                        "pid": e.pid,
                        "details": e.details,
                    }
                    for e in timeline
                ],
            }
        )
        return
    rows = [
        [
            ev.time.strftime("%Y-%m-%d %H:%M:%S.%f"),
            ev.event,
            f"{ev.host}:{ev.pid}",
            json.dumps(ev.details, ensure_ascii=True) if ev.details else "",
        ]
        for ev in timeline
    ]
    emit(
        f"{rec.name}  [{rec.state}]  run {rec.run} seq {rec.seq}  adler32 {rec.adler32 or '-'}",
        ("time (UTC)", "event", "host:pid", "details"),
        rows,
    )


def runs(config: Path | None = _CONFIG, as_json: bool = JSON_OPTION) -> None:
    """List runs: files, bytes and files per state (and the 6x6x6 event-building counts)."""
    from farmtools.bookkeeping.db import RunSummary
    from farmtools.bookkeeping.textlogs import human_size

    bk = _open(config)
    evb = bk.evb_counts()
    if as_json:  # a run the builders counted before ingest recorded a file of it is listed too
        summaries = {r.run: r for r in bk.runs()}
        summaries |= {n: RunSummary(n, 0, 0) for n in evb.keys() - summaries.keys()}
        emit_json(
            [
                {"run": n, "files": r.files, "bytes": r.bytes, "states": r.states}
                | {"evb": evb.get(n)}
                for n, r in sorted(summaries.items())
            ]
        )
        return
    rows = [
        [
            str(r.run),
            str(r.files),
            human_size(r.bytes),
            ", ".join(f"{s} {n}" for s, n in sorted(r.states.items())),
        ]
        for r in bk.runs()
    ]
    emit("runs", ("run", "files", "bytes", "states"), rows)
    if evb:
        keys = ("built", "incomplete", "duplicates", "mismatches", "late", "truncated", "pending")
        emit(
            "event building (6x6x6, all L2 builders)",
            ("run", "L1 in 0+1", *keys, "files"),
            [
                [str(run), f"{c['fragments_in0']}+{c['fragments_in1']}"]
                + [str(c[k]) for k in (*keys, "files")]
                for run, c in evb.items()
            ],
        )


def files(
    run: int | None = typer.Option(None, "--run", help="only this run"),
    state: str | None = typer.Option(None, "--state", help="only files in this state"),
    config: Path | None = _CONFIG,
    as_json: bool = JSON_OPTION,
) -> None:
    """List files with their state, size and checksum."""
    from farmtools.bookkeeping.states import FileState

    check_choice("--state", state, [s.value for s in FileState])
    bk = _open(config)
    found = bk.files(run=run, state=state)
    if run is not None and not found and not bk.files(run=run, limit=1):
        typer.echo(f"--run {run}: no such run in the bookkeeping database", err=True)
        raise typer.Exit(1)
    if as_json:
        emit_json([{k: getattr(f, k) for k in FILE_FIELDS} for f in found])
        return
    rows = [
        [
            f.name,
            str(f.run),
            str(f.seq),
            f.state.value,
            f.state_since.strftime("%Y-%m-%d %H:%M:%S"),
            str(f.size),
            f.adler32 or "",
            str(f.tries),
            (f.last_error or "").replace("\n", " "),
        ]
        for f in found
    ]
    title = "files" + (f" of run {run}" if run is not None else "")
    title += f" in state {state}" if state is not None else ""
    cols = ("name", "run", "seq", "state", "since (UTC)", "size", "adler32", "tries", "last error")
    emit(title, cols, rows)


def alarms(
    all_: bool = typer.Option(False, "--all", help="include acknowledged alarms"),
    config: Path | None = _CONFIG,
    as_json: bool = JSON_OPTION,
) -> None:
    """List alarms (quarantined files and other conditions that need a person)."""
    found = _open(config).alarms(include_acknowledged=all_)
    if as_json:
        emit_json([{k: getattr(a, k) for k in ALARM_FIELDS} for a in found])
        return
    rows = [
        [
            str(a.id),
            a.time.strftime("%Y-%m-%d %H:%M:%S"),
            a.file or "",
            a.source,
            a.kind,
            a.message.replace("\n", " "),
        ]
        for a in found
    ]
    emit("alarms", ("id", "time (UTC)", "file", "source", "kind", "message"), rows)


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
    from farmtools.config import masked_url

    bk = _open(config, create=True)
    typer.echo(f"{masked_url(bk.url)}: schema version {bk.upgrade()}")


def register(app: typer.Typer) -> None:
    """Add the bookkeeping commands to the root application."""
    app.command()(story)
    app.command()(runs)
    app.command()(files)
    app.command()(alarms)
    app.add_typer(logs_app, name="logs")
    app.add_typer(db_app, name="db")
