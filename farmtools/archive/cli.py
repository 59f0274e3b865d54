"""``farmtools archive plan|create|transfer|verify|restore|cleanup|list``.

Thin: every verb builds an :class:`~farmtools.archive.service.Archiver` from ``farm.toml`` and
prints what it did with rich.  Heavy imports (SQLAlchemy, XRootD) happen inside the commands.
Sizes are decimal (``5GB`` = 5,000,000,000 bytes; ``GiB`` for binary).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from farmtools.listing import JSON_OPTION, emit, emit_json

if TYPE_CHECKING:
    from farmtools.archive.service import Archiver

app = typer.Typer(help="Archives of raw files for central storage (tar + manifest + log).")

_HERE = Path(".")
_CONFIG = typer.Option(None, "--config", "-c", help="farm.toml (default: $FARMTOOLS_CONFIG)")


def _archiver(config: Path | None, destination: str | None = None) -> Archiver:
    """The archiver of the configuration, on its existing bookkeeping database (archives are made
    of recorded files: a missing database is refused, never created empty)."""
    from farmtools.archive.service import Archiver
    from farmtools.bookkeeping import Bookkeeping
    from farmtools.config import load_config

    cfg = load_config(config)
    return Archiver(cfg, Bookkeeping.from_config(cfg, create=False), destination=destination)


def _progress_bar(total: int, what: str):  # type: ignore[no-untyped-def]
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    p = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        transient=True,
    )
    task = p.add_task(what, total=total)
    return p, (lambda n: p.advance(task, n))


@app.command("plan")
def plan_cmd(
    target_size: str = typer.Option(
        None, help="archive size to aim for (default archive.target_size, 5GB)"
    ),
    min_size: str = typer.Option(None, help="smaller archives wait for more data (default 1GB)"),
    runs: str = typer.Option(None, help="explicit run selection, e.g. 1012-1020,1030"),
    tag: str = typer.Option(None, help="tag of the archives, e.g. hv-scan"),
    force: bool = typer.Option(False, help="plan the last archive even if under the minimum"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan, record nothing"),
    config: Path = _CONFIG,
) -> None:
    """Group stored, unarchived raw files into archives and record the plan."""
    from farmtools.archive.planner import PlanError, format_size, parse_runs, parse_size

    arch = _archiver(config)
    try:
        plan = arch.plan(
            target=parse_size(target_size) if target_size else None,
            minimum=parse_size(min_size) if min_size else None,
            runs=parse_runs(runs) if runs else None,
            tag=tag,
            force=force,
        )
    except PlanError as exc:
        typer.echo(f"archive plan: {exc}", err=True)
        raise typer.Exit(2) from None
    rows = [
        [
            a.name,
            a.tag,
            f"{a.runs[0]}-{a.runs[-1]}" if len(a.runs) > 1 else str(a.runs[0]),
            str(len(a.files)),
            format_size(a.size),
            a.note,
        ]
        for a in plan.archives
    ]
    emit("archive plan", ["archive", "tag", "runs", "files", "size", "note"], rows)
    if plan.waiting:
        waiting = sum(f.size for f in plan.waiting)
        typer.echo(
            f"{len(plan.waiting)} files ({format_size(waiting)}) wait for more data "
            "(under the minimum; --force to archive them now)"
        )
    if plan.missing_runs:
        typer.echo(f"runs without stored files: {', '.join(map(str, plan.missing_runs))}")
    if not dry_run:
        arch.record_plan(plan)
        typer.echo(f"recorded {len(plan.archives)} planned archive(s)")


@app.command("create")
def create_cmd(
    name: Annotated[
        list[str] | None, typer.Argument(help="archives to create (default: all planned)")
    ] = None,
    config: Path = _CONFIG,
) -> None:
    """Write each planned archive (tar with manifest, log beside it) in archive.workdir."""
    arch = _archiver(config)
    names = name or None
    todo = [r for r in arch.catalog.find() if r.created is None and (not names or r.name in names)]
    total = sum(m.size for r in todo for m in arch.catalog.members(r.name))
    bar, advance = _progress_bar(total, "creating")
    with bar:
        report = arch.create(names, progress=advance)
    _report("created", report)


@app.command("transfer")
def transfer_cmd(
    name: Annotated[
        list[str] | None, typer.Argument(help="archives to transfer (default: all created)")
    ] = None,
    destination: str = typer.Option(
        None, help="root:// URL or directory (default archive.destination)"
    ),
    config: Path = _CONFIG,
) -> None:
    """Copy created archives and their logs to central storage, checksum verified, retried."""
    arch = _archiver(config, destination)
    _report("transferred", arch.transfer(name or None))


@app.command("verify")
def verify_cmd(
    name: Annotated[
        list[str] | None, typer.Argument(help="archives to verify (default: all transferred)")
    ] = None,
    all_: bool = typer.Option(
        False, "--all", help="re-read every created archive, already verified or not (for cron)"
    ),
    config: Path = _CONFIG,
) -> None:
    """Re-read archives where they lie; check every member against the manifest and the DB.

    Ends with a line saying what was checked; exit code 1 when an archive is bad.
    """
    from collections import Counter

    arch = _archiver(config)
    if name and all_:
        typer.echo("archive verify: name archives or give --all, not both", err=True)
        raise typer.Exit(2)
    try:
        results = arch.verify(name or None, every=all_)
    except KeyError as exc:
        typer.echo(f"archive verify: {exc.args[0]}", err=True)
        raise typer.Exit(2) from None
    bad = 0
    for rec, res in results:
        if res.ok:
            typer.echo(f"OK   {rec.name}: {res.members} members at {res.location}")
        else:
            bad += 1
            typer.echo(f"BAD  {rec.name} at {res.location}:")
            for p in res.problems:
                typer.echo(f"     {p}")
    if results:
        typer.echo(f"verified {len(results)} archive(s): {len(results) - bad} OK, {bad} bad")
    else:
        states = Counter(str(r.state) for r in arch.catalog.find())
        known = ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "no archives"
        typer.echo(
            f"nothing to verify: {states.get('verified', 0)} archive(s) already verified, "
            f"none transferred and unverified ({known}); --all re-reads every archive"
        )
    if bad:
        raise typer.Exit(1)


@app.command("restore")
def restore_cmd(
    file: str = typer.Argument(..., help="raw file name, e.g. run1012-seq3.dat"),
    to: Annotated[Path, typer.Option("--to", help="directory to restore into")] = _HERE,
    config: Path = _CONFIG,
) -> None:
    """Extract one raw file from its archive and check it against its original adler32."""
    from farmtools.archive.restore import RestoreError

    arch = _archiver(config)
    try:
        path = arch.restore(Path(file).name, to)
    except RestoreError as exc:
        typer.echo(f"archive restore: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"restored {path} (adler32 matches the original)")


@app.command("cleanup")
def cleanup_cmd(
    dry_run: bool = typer.Option(
        True, "--dry-run/--delete", help="only report (default); --delete really deletes"
    ),
    config: Path = _CONFIG,
) -> None:
    """DELETE raw files from the event builder that are archived and verified at the destination.

    The only farmtools command that deletes raw files.  Dry run unless --delete is given.
    """
    from farmtools.archive.cleanup import cleanup

    arch = _archiver(config)
    decisions = cleanup(arch.bk, arch.cfg.path(arch.cfg.daq.watch_dir), dry_run=dry_run)
    for d in decisions:
        verb = "DELETED" if d.deleted else ("would delete" if d.allowed else "REFUSED")
        typer.echo(f"{verb:12s} {d.path}: {d.reason}")
    allowed = sum(d.allowed for d in decisions)
    typer.echo(
        f"{allowed} of {len(decisions)} raw files may go"
        + (" (dry run: nothing deleted; --delete to delete)" if dry_run else "")
    )


@app.command("list")
def list_cmd(config: Path = _CONFIG, as_json: bool = JSON_OPTION) -> None:
    """Archives and their states (plain columns on a terminal too, as ever)."""
    from dataclasses import asdict

    found = _archiver(config).catalog.find()
    if as_json:
        emit_json([asdict(r) for r in found])
        return
    rows = [
        [
            r.name,
            r.state,
            str(r.size or 0),
            r.adler32 or "-",
            r.destination or "",
            r.last_error or "",
        ]
        for r in found
    ]
    columns = ["name", "state", "size", "adler32", "destination", "last error"]
    emit("archives", columns, rows, table=False)


def _report(verb: str, report: object) -> None:
    from farmtools.archive.service import StepReport

    assert isinstance(report, StepReport)
    for n in report.done:
        typer.echo(f"{verb} {n}")
    for n, why in report.failed:
        typer.echo(f"FAILED {n}: {why}", err=True)
    if report.failed:
        raise typer.Exit(1)


def register(root: typer.Typer) -> None:
    """Add ``farmtools archive ...``."""
    root.add_typer(app, name="archive")
