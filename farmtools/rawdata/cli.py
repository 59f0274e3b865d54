"""``farmtools raw inspect``: look inside raw files (3x1x1 or 6x6x6) and validate every event.

The format comes from the name, else from the content (:mod:`farmtools.rawdata.sniff`); the
detector from ``--detector``, else 3x1x1 for 311 files and 6x6x6 for ProtoDUNE-DP files.

Exit code 0 when every file is valid, 1 when any is not (the error, naming the file, the event
and the byte offset, goes to stderr).  The processing manager and the shift crew use the same
command, so its output stays short and its exit code exact.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

EXIT_INVALID = 1


def register(app: typer.Typer) -> None:
    """Add the ``raw`` group to the root application."""
    raw = typer.Typer(
        help="Raw data files: the 3x1x1's 311 format, the 6x6x6's ProtoDUNE-DP format.",
        no_args_is_help=True,
    )
    raw.command("inspect")(inspect)
    app.add_typer(raw, name="raw")


def _when(t: float | None) -> str:
    return (
        datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
        if t is not None
        else "-"
    )


def inspect(
    files: Annotated[list[Path], typer.Argument(help="raw files to inspect")],
    as_json: Annotated[
        bool, typer.Option("--json", help="one JSON object per file on stdout")
    ] = False,
    detector: Annotated[
        str | None,
        typer.Option(
            help="detector geometry (default: 3x1x1 for 311 files, 6x6x6 for ProtoDUNE-DP)"
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Print run, events, triggers, time span, compression and bad cards; validate every event."""
    from rich.console import Console
    from rich.progress import Progress

    from farmtools.detector import geometry
    from farmtools.rawdata import RawDataError, RawFile
    from farmtools.rawdata.pddp_reader import PDDPFile
    from farmtools.rawdata.sniff import raw_format

    out = Console()
    err = Console(stderr=True, soft_wrap=True)
    failed = 0
    for path in files:
        kind = raw_format(path)
        geo = geometry(detector or ("6x6x6" if kind == "pddp" else "3x1x1"))
        opener = PDDPFile.open if kind == "pddp" else RawFile.open
        try:
            with opener(path, geo) as f:
                if quiet or as_json or f.n_events < 20:
                    report = f.validate()
                else:
                    with Progress(console=err, transient=True) as bar:
                        task = bar.add_task(f"validating {path.name}", total=f.n_events)
                        report = f.validate(lambda n, task=task: bar.update(task, completed=n))
        except RawDataError as exc:
            failed += 1
            err.print(f"[red]INVALID[/red] {exc}", markup=True, highlight=False, soft_wrap=True)
            if as_json:
                print(
                    json.dumps(
                        {
                            "file": str(path),
                            "valid": False,
                            "error": str(exc),
                            "event": exc.event,
                            "offset": exc.offset,
                        }
                    )
                )
            continue
        if as_json:
            print(
                json.dumps(
                    {
                        "file": str(path),
                        "valid": True,
                        "run": report.run,
                        "events": report.n_events,
                        "size": report.size,
                        "first_trigger": report.first_trigger,
                        "last_trigger": report.last_trigger,
                        "first_time": report.first_time,
                        "last_time": report.last_time,
                        "compression": report.compression,
                        "bad_card_events": report.bad_card_events,
                        "format": kind or "311",
                        "incomplete_events": getattr(report, "incomplete_events", 0),
                    }
                )
            )
            continue
        out.print(f"[bold]{path}[/bold]: valid", highlight=False)
        out.print(
            f"  run {report.run}, {report.n_events} events, {report.size:,} bytes, "
            f"compression: {report.compression}",
            highlight=False,
        )
        out.print(
            f"  triggers {report.first_trigger} .. {report.last_trigger}, "
            f"{_when(report.first_time)} .. {_when(report.last_time)}",
            highlight=False,
        )
        kinds = ", ".join(f"type {k}: {v}" for k, v in sorted(report.trigger_types.items()))
        out.print(
            f"  trigger types: {kinds or '-'}; events with bad cards: {report.bad_card_events}",
            highlight=False,
        )
        if kind == "pddp":
            out.print(
                f"  ProtoDUNE-DP ({geo.name}); incomplete events: "
                f"{getattr(report, 'incomplete_events', 0)}",
                highlight=False,
            )
    if failed:
        raise typer.Exit(EXIT_INVALID)
