"""Commands of the processing stage: ``process run|once|close-runs`` and ``jobs list|show|retry|cancel``.

``process run`` is the daemon (claims stored files as soon as they are verified); ``process once``
is one pass for cron, as the seed's ``processing.sh``.  Both read the farm configuration
(``--config``, else ``$FARMTOOLS_CONFIG``, else ``./farm.toml``).  The manager, SQLAlchemy and
rich are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from farmtools.cliopts import LogJson, check_choice
from farmtools.listing import JSON_OPTION, emit, emit_json

if TYPE_CHECKING:
    from farmtools.bookkeeping import Bookkeeping
    from farmtools.config import FarmConfig
    from farmtools.processing.manager import Manager

_CONFIG = typer.Option(
    None, "--config", "-c", help="farm.toml (default: $FARMTOOLS_CONFIG, ./farm.toml)"
)

process_app = typer.Typer(
    help="The processing manager: stored files -> batch jobs.", no_args_is_help=True
)
jobs_app = typer.Typer(
    help="Batch jobs of the processing: list, show, retry, cancel.", no_args_is_help=True
)


def _config(config: Path | None) -> FarmConfig:
    from farmtools.config import ConfigError, load_config

    try:
        return load_config(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def _manager(config: Path | None, *, create: bool = True) -> Manager:
    """The manager of the configuration; ``create=False`` (the shift's jobs commands): only an
    existing bookkeeping database, never a new empty one."""
    from farmtools.processing.manager import Manager

    cfg = _config(config)
    return Manager(cfg, bk=None if create else _bookkeeping(cfg))


def _bookkeeping(cfg: FarmConfig) -> Bookkeeping:
    """The existing bookkeeping database of ``cfg`` (a missing one is refused, not created)."""
    from farmtools.bookkeeping import Bookkeeping

    return Bookkeeping.from_config(cfg, create=False)


@process_app.command("run")
def run(config: Path | None = _CONFIG, log_json: LogJson = False) -> None:
    """Run the manager until SIGTERM/SIGINT: claim, submit, poll, retry, notify, analyse."""
    import signal
    import threading

    from farmtools.logsetup import setup_logging

    setup_logging(log_json)
    manager = _manager(config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    manager.run(stop)


@process_app.command("once")
def once(config: Path | None = _CONFIG) -> None:
    """One pass (for cron): claim stored files, submit due jobs, collect finished ones, analyse."""
    from rich.console import Console

    manager = _manager(config)
    s = manager.run_once()
    s.errors += manager.digest.flush(force=True)  # this process ends: the digests go now
    Console().print(
        f"claimed {s.claimed}, submitted {s.submitted}, started {s.started}, "
        f"succeeded {s.succeeded}, retried {s.retried}, failed {s.failed}, "
        f"analysed {s.analysed}" + (", [red]batch system unreachable[/red]" if s.batch_down else "")
    )
    for e in s.errors:
        Console(stderr=True, soft_wrap=True).print(f"[red]{e}[/red]")


@process_app.command("close-runs")
def close_runs(config: Path | None = _CONFIG, as_json: bool = JSON_OPTION) -> None:
    """One end-of-run step (what the daemon's analysis pass does; for cron when [analysis] auto
    is off): close runs that are over, analyse their remainder groups, write their summaries,
    plan their archives, raise alarms for what is missing."""
    from farmtools.processing.runclose import closing_pass, describe

    cfg = _config(config)
    bk = _bookkeeping(cfg)
    doc = describe(closing_pass(cfg, bk))
    if as_json:
        emit_json(doc)
        return
    for key, values in doc.items():
        typer.echo(f"{key}: {', '.join(str(v) for v in values) or '-'}")


@jobs_app.command("list")
def list_jobs(
    state: str | None = typer.Option(
        None, help="new, submitted, running, done, failed or cancelled"
    ),
    file: str | None = typer.Option(None, help="only the jobs of this raw file"),
    limit: int = typer.Option(50, help="newest first"),
    config: Path | None = _CONFIG,
    as_json: bool = JSON_OPTION,
) -> None:
    """List jobs, newest first."""
    from dataclasses import asdict

    from farmtools.batch.base import hms
    from farmtools.processing.jobs import JOB_STATES, JobStore

    check_choice("--state", state, JOB_STATES)
    found = JobStore(_bookkeeping(_config(config))).list(state, file, limit)
    if as_json:
        emit_json([asdict(j) for j in found])
        return
    rows = [
        [
            str(j.id),
            j.file,
            str(j.try_number),
            j.backend,
            j.batch_id or "-",
            j.state,
            "-" if j.exit_code is None else str(j.exit_code),
            hms(j.cpu_s) if j.cpu_s is not None else "-",
            f"{j.max_rss_kb / 1024:.1f}" if j.max_rss_kb is not None else "-",
            j.node or "-",
            j.failure or "",
        ]
        for j in found
    ]
    columns = ["id", "file", "try", "backend", "batch id", "state", "exit", "cpu", "max rss MB"]
    emit("jobs", [*columns, "node", "failure"], rows)


@jobs_app.command("show")
def show(
    job: str = typer.Argument(..., help="job id (from `jobs list`) or a raw file name"),
    config: Path | None = _CONFIG,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show one job (or every job of a file) with its paths, accounting and job log.

    ``--json``: the job as an object (the fields of ``jobs list --json`` and ``log``, the job
    log's text or null) for a job id; a list of them for a file name.
    """
    from dataclasses import asdict

    from rich.console import Console

    from farmtools.processing.jobs import JobStore

    store = JobStore(_bookkeeping(_config(config)))
    records = [r for r in [store.get(int(job))] if r] if job.isdigit() else store.of_file(job)
    if not records:
        typer.echo(f"{job}: no such job", err=True)
        raise typer.Exit(1)
    if as_json:
        shown = [asdict(r) | {"log": _job_log(r.job_log)} for r in records]
        emit_json(shown[0] if job.isdigit() else shown)
        return
    console = Console()
    for r in records:
        console.rule(f"job {r.id}: {r.file} try {r.try_number} [{r.state}]")
        for k, v in asdict(r).items():
            console.print(f"{k:<16} {v}", highlight=False, markup=False)
        log = _job_log(r.job_log)
        if log is not None:
            console.print(log, highlight=False, markup=False)


def _job_log(path: str | None) -> str | None:
    """The text of a job log, or None when the job has none (yet) or it is gone."""
    if not path or not Path(path).exists():
        return None
    return Path(path).read_text(errors="replace")


@jobs_app.command("retry")
def retry(
    file: str = typer.Argument(..., help="raw file name (run<N>-seq<M>.dat) parked as failed"),
    config: Path | None = _CONFIG,
) -> None:
    """Put a failed file back in the queue, with its try count reset."""
    manager = _manager(config, create=False)
    if not manager.retry(file):
        rec = manager.bk.get(file)
        if rec is None:
            typer.echo(f"{file}: no such file in the bookkeeping database", err=True)
        else:
            typer.echo(f"{file}: in state '{rec.state}', not 'failed': nothing to retry", err=True)
        raise typer.Exit(1)
    typer.echo(f"{file}: back to 'stored'; the manager will submit it")


@jobs_app.command("cancel")
def cancel(
    job: int = typer.Argument(..., help="job id (from `jobs list`)"), config: Path | None = _CONFIG
) -> None:
    """Cancel a job (the file is then parked as failed, with reason 'cancelled')."""
    try:
        typer.echo(_manager(config, create=False).cancel(job))
    except KeyError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    """Add ``process`` and ``jobs`` to the root application."""
    app.add_typer(process_app, name="process")
    app.add_typer(jobs_app, name="jobs")
