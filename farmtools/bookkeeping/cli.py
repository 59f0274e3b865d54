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
#: The fields of a run in ``runs --json`` (docs/bookkeeping.md), as :meth:`RunLedger.to_json`
#: names them; ``files`` is ``detected`` (its name before the ledger).
RUN_FIELDS = (
    "run",
    "files",
    "status",
    "complete",
    "flag",
    "first_seen",
    "closed",
    "close_reason",
    "finished",
    "expected_files",
    "expected_events",
    "detected",
    "stored",
    "reconstructed",
    "analysed",
    "archived",
    "archive_planned",
    "failed",
    "quarantined",
    "bytes",
    "states",
    "gaps",
    "missing",
    "stuck",
    "evb",
    "problems",
    "summary",
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


_STUCK = typer.Option(
    None,
    "--stuck-after",
    help="seconds in one state after which a file is stuck (default: monitor.stuck_after_s)",
)


def _ledger_opts(config: Path | None, stuck_after: float | None) -> tuple[Bookkeeping, float]:
    """The database and the stuck threshold (the option, else the monitor's)."""
    from farmtools.bookkeeping.db import Bookkeeping
    from farmtools.config import load_config

    cfg = load_config(config)
    bk = Bookkeeping.from_config(cfg, create=False)
    return bk, stuck_after if stuck_after is not None else cfg.monitor.stuck_after_s


def _count(done: int, expected: int | None) -> str:
    return str(done) if expected is None else f"{done}/{expected}"


def runs(
    which: Annotated[
        str | None, typer.Argument(help="'good': only the runs flagged good (the good-run list)")
    ] = None,
    last: int | None = typer.Option(
        None, "--last", min=1, help="only the LAST highest run numbers (default: every run)"
    ),
    stuck_after: float | None = _STUCK,
    config: Path | None = _CONFIG,
    as_json: bool = JSON_OPTION,
) -> None:
    """The run ledger: per run, files expected, detected, stored, reconstructed, analysed,
    archived, gaps, stuck files, status (open/closed/finished) and quality flag."""
    from farmtools.bookkeeping.ledger import latest_runs, run_ledgers
    from farmtools.bookkeeping.registry import GOOD
    from farmtools.bookkeeping.schema import now
    from farmtools.bookkeeping.textlogs import human_size

    check_choice("runs", which, ["good"])
    bk, stuck = _ledger_opts(config, stuck_after)
    since = latest_runs(bk, last) if last is not None else None
    ledgers = run_ledgers(bk, stuck_after_s=stuck, since_run=since)
    if which == "good":
        good = [r for r in ledgers if r.flag == GOOD]
        if as_json:
            emit_json({"runs": [r.run for r in good], "generated": now()})
        else:
            emit(
                "good runs",
                ("run", "status", "files", "events"),
                [
                    [str(r.run), r.status, str(r.detected), str(r.expected_events or "")]
                    for r in good
                ],
            )
        return
    if as_json:  # a run the event builders counted before ingest recorded a file is listed too
        docs = [{"files": r.detected} | r.to_json() for r in ledgers]
        emit_json([{k: d[k] for k in RUN_FIELDS} for d in docs])
        return
    rows = [
        [
            str(r.run),
            r.status,
            r.flag,
            _count(r.detected, r.expected_files),
            str(r.stored),
            str(r.reconstructed),
            str(r.analysed),
            str(r.archived),
            str(r.failed + r.quarantined),
            str(len(r.gaps)),
            str(len(r.stuck)),
            human_size(r.bytes),
            ", ".join(f"{s} {n}" for s, n in sorted(r.states.items())),
        ]
        for r in ledgers
    ]
    emit(
        "runs",
        (
            "run",
            "status",
            "flag",
            "files",
            "stored",
            "reco",
            "analysed",
            "archived",
            "failed",
            "gaps",
            "stuck",
            "bytes",
            "states",
        ),
        rows,
    )
    evb = {r.run: r.evb for r in ledgers if r.evb}
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


def _archive_states(bk: Bookkeeping, names: set[str]) -> dict[str, str]:
    """``{archive: state}`` of ``names``, by name."""
    from sqlalchemy import select

    from farmtools.bookkeeping.schema import archives

    q = select(archives.c.name, archives.c.state).where(archives.c.name.in_(sorted(names)))
    with bk.engine.connect() as conn:
        return dict(sorted((n, s) for n, s in conn.execute(q)))


def run(
    number: Annotated[int, typer.Argument(help="run number")],
    action: Annotated[
        str | None, typer.Argument(help="'flag' to set the run's quality flag")
    ] = None,
    flag: Annotated[
        str | None, typer.Argument(help="good, bad, unknown, or auto (back to the checks)")
    ] = None,
    reason: str = typer.Option("", "--reason", help="why (required with flag; kept in history)"),
    stuck_after: float | None = _STUCK,
    config: Path | None = _CONFIG,
    as_json: bool = JSON_OPTION,
) -> None:
    """One run in full: its ledger, files, gaps, analyses, archives and flag history;
    'run N flag bad --reason "HV trip"' sets its quality flag (who, when and why are kept)."""
    from farmtools.bookkeeping.ledger import run_ledger
    from farmtools.bookkeeping.registry import FlagError, flag_history, set_flag

    check_choice("run", action, ["flag"])
    bk, stuck = _ledger_opts(config, stuck_after)
    led = run_ledger(bk, number, stuck_after_s=stuck)
    if led is None:
        typer.echo(f"run {number}: no such run in the bookkeeping database", err=True)
        raise typer.Exit(1)
    if action == "flag":
        if flag is None:
            typer.echo("run N flag: which flag? good, bad, unknown or auto", err=True)
            raise typer.Exit(2)
        try:
            now_flag = set_flag(bk, number, flag, reason=reason)
        except FlagError as exc:
            typer.echo(f"run {number}: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"run {number}: flag {now_flag}")
        return
    history = flag_history(bk, number)
    analyses = bk.analyses(run=number)
    archives = _archive_states(bk, {f.archive for f in led.files if f.archive})
    if as_json:
        emit_json(
            led.to_json(with_files=True)
            | {
                "analyses": [
                    {
                        "first_seq": a.first_seq,
                        "last_seq": a.last_seq,
                        "files": a.files,
                        "partial": a.partial,
                        "time": a.time,
                        "lifetime_us": a.lifetime_us,
                        "lifetime_err_us": a.lifetime_err_us,
                        "summary": a.summary,
                    }
                    for a in reversed(analyses)
                ],
                "archives": [{"name": n, "state": s} for n, s in archives.items()],
                "flag_history": [c.to_json() for c in history],
            }
        )
        return
    head = (
        f"run {led.run}  [{led.status}{', ' + led.close_reason if led.close_reason else ''}]"
        f"  flag {led.flag}  files {_count(led.detected, led.expected_files)}"
        f"  events {led.expected_events if led.expected_events is not None else '?'}"
        f"  stored {led.stored}  reconstructed {led.reconstructed}  analysed {led.analysed}"
        f"  archived {led.archived}"
    )
    typer.echo(head)
    for p in led.problems:
        typer.echo(f"problem: {p}")
    for s in led.stuck:
        typer.echo(f"stuck: {s.name} {s.state} since {s.since:%Y-%m-%d %H:%M:%S}")
    if led.summary:
        typer.echo(f"summary: {led.summary}")
    if led.evb:
        typer.echo("event building: " + ", ".join(f"{k} {v}" for k, v in led.evb.items()))
    emit(
        "files",
        ("name", "seq", "state", "since (UTC)", "size", "adler32", "archive"),
        [
            [
                f.name,
                str(f.seq),
                f.state,
                f.since.strftime("%Y-%m-%d %H:%M:%S"),
                str(f.size),
                f.adler32 or "",
                f.archive or "",
            ]
            for f in led.files
        ],
    )
    emit(
        "analyses",
        ("seq", "files", "partial", "time (UTC)", "lifetime (us)", "summary"),
        [
            [
                f"{a.first_seq}-{a.last_seq}",
                str(len(a.files)),
                "yes" if a.partial else "",
                a.time.strftime("%Y-%m-%d %H:%M:%S"),
                "" if a.lifetime_us is None else f"{a.lifetime_us:.0f}",
                a.summary,
            ]
            for a in reversed(analyses)
        ],
    )
    if archives:
        typer.echo("archives: " + ", ".join(f"{n} [{s}]" for n, s in archives.items()))
    emit(
        "flag history",
        ("time (UTC)", "flag", "source", "user", "reason"),
        [
            [c.time.strftime("%Y-%m-%d %H:%M:%S"), c.flag, c.source, c.user, c.reason]
            for c in history
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
    app.command()(run)
    app.command()(files)
    app.command()(alarms)
    app.add_typer(logs_app, name="logs")
    app.add_typer(db_app, name="db")
