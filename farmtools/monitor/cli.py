"""``farmtools monitor``: serve the monitoring page, run one alarm check, list the tasks; and
``farmtools status``, what needs attention now (farmtools.monitor.attention).

Imports Typer and rich at module level; the web stack (Starlette, uvicorn, plotly, SQLAlchemy)
inside the commands, so that ``farmtools --help`` stays fast.
"""

from __future__ import annotations

import logging
import signal
import socket
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from farmtools.cliopts import LogJson
from farmtools.listing import JSON_OPTION, emit, emit_json

if TYPE_CHECKING:
    import uvicorn

    from farmtools.config import FarmConfig
    from farmtools.monitor.app import Monitor
    from farmtools.monitor.attention import ShiftStatus

monitor_app = typer.Typer(
    help="The data-quality monitoring page, /metrics and alarms.", no_args_is_help=True
)
_console = Console(stderr=True, soft_wrap=True)  # paths in alarms stay greppable

_CONFIG = typer.Option(
    None, "--config", "-c", help="farm.toml (default: $FARMTOOLS_CONFIG, ./farm.toml)"
)


def _load(config: Path | None) -> FarmConfig:
    from farmtools.config import ConfigError, load_config

    try:
        return load_config(config)
    except ConfigError as exc:
        _console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _monitor(cfg: FarmConfig, *, use_db: bool = True) -> Monitor:
    """The monitor of ``cfg``, or exit 2 naming what is wrong (a missing asset, a bad plugin)."""
    from farmtools.monitor.app import Monitor, MonitorError

    try:
        return Monitor(cfg, use_db=use_db)
    except MonitorError as exc:
        _console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening, or exit 1 naming the address and why.

    Bound before anything says the monitor is up: a busy port is one line and an exit code,
    never "monitor on http://..." followed by a failure.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        _console.print(
            f"[red]monitor: cannot listen on {host}:{port}: {exc.strerror or exc}[/red]",
            highlight=False,
        )
        raise typer.Exit(1) from None


@monitor_app.command("serve")
def serve(
    host: str | None = typer.Option(None, help="bind address (default monitor.host, 127.0.0.1)"),
    port: int | None = typer.Option(None, help="port (default monitor.port, 8050)"),
    config: Path | None = _CONFIG,
    log_json: LogJson = False,
) -> None:
    """Serve the page in the foreground until SIGINT/SIGTERM (GET only)."""
    import uvicorn

    from farmtools.config import masked_url
    from farmtools.logsetup import setup_logging
    from farmtools.monitor.app import build_app
    from farmtools.monitor.server import is_loopback

    setup_logging(log_json)
    log = logging.getLogger("farmtools.monitor")
    cfg = _load(config)
    host = host or cfg.monitor.host
    port = port or cfg.monitor.port
    monitor = _monitor(cfg)
    if not is_loopback(host) and not cfg.monitor.auth_user:
        log.warning(
            "serving on %s without authentication (set monitor.auth_user and the password variable)",
            host,
        )
    app = build_app(monitor)
    # log_config=None: uvicorn's own warnings go through the set-up above, not its format
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=host, port=port, log_level="warning", log_config=None, lifespan="off"
        )
    )
    # A SIGTERM (systemd, the challenge, a test) only asks the server to stop; the function then
    # returns through ``finally`` (the monitor's last alarm pass, its "stopped" heartbeat), exit
    # 0.  The handler is in place before the port listens (a stop sent as soon as the page
    # answers must find it) and never raises: an exception raised from a signal handler can
    # interrupt the main thread inside an import while it holds the interpreter's import lock,
    # and the checker thread's next import then waits forever.  uvicorn puts its own handler in
    # place while it serves and calls this one again when it is done: it stops it just the same.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: _stop_server(server))
    sock: socket.socket | None = None
    try:
        # started before the port listens: whoever sees the page answer may stop it at once,
        # and the stop must find the checker (and its heartbeat) running
        monitor.start()
        sock = _listen(host, port)
        log.info(
            "farmtools monitor on http://%s:%d (summaries: %s, database: %s)",
            *(host, port, monitor.results.directory, masked_url(cfg.database_url)),
        )
        server.run(sockets=[sock])
    finally:
        monitor.stop()
        if sock is not None:
            sock.close()


def _stop_server(server: uvicorn.Server) -> None:
    """A stop asked for by SIGTERM: the server leaves its loop (or never enters it)."""
    server.should_exit = True


@monitor_app.command("check")
def check(config: Path | None = _CONFIG) -> None:
    """One alarm pass over the analysis results, the farm counts and the data-quality checks
    (for cron or a test); prints the new alarms and the worst check state of the current run."""
    monitor = _monitor(_load(config))
    new = monitor.checker.check()
    monitor.checker.flush(force=True)  # the command ends here: nothing waits for a digest
    for b in new:
        _console.print(f"[red]alarm[/red] {b.kind}: {b.message}")
    for path, err in monitor.results.errors.items():
        _console.print(f"[yellow]unreadable summary[/yellow] {path}: {err}")
    ov = monitor.overview()
    _console.print(f"checks of run {ov['run']}: worst {ov['worst']}", highlight=False)
    for c in ov["worst_cells"]:
        _console.print(f"  {c['task']}/{c['item']}: {c['reason']}", highlight=False)
    _console.print(f"{len(monitor.results.results())} results, {len(new)} new alarms")


@monitor_app.command("tasks")
def tasks(config: Path | None = _CONFIG) -> None:
    """The task tree (registered MonTask classes and their items)."""
    monitor = _monitor(_load(config), use_db=False)
    for t in monitor.tree():
        typer.echo(f"{t['name']}: {t['title']}")
        for i in t["items"]:
            typer.echo(f"  {i['id']}: {i['title']}")


@monitor_app.command("checks")
def checks_(
    run: int | None = typer.Option(None, "--run", help="the run (default: the newest judged)"),
    json_out: bool = JSON_OPTION,
    config: Path | None = _CONFIG,
) -> None:
    """The stored data-quality verdicts of a run and of the farm-wide window (read-only)."""
    from farmtools.bookkeeping import Bookkeeping
    from farmtools.monitor.checks import worst
    from farmtools.monitor.checkstore import CheckStore

    bk = Bookkeeping.from_config(_load(config), create=False)
    store = CheckStore(bk.engine)
    run = run if run is not None else store.latest_run()
    rows = (store.for_run(run) if run is not None else []) + store.window()
    if json_out:
        emit_json([r.as_dict() for r in rows])
        return
    emit(
        f"checks of run {run}: worst {worst(r.state for r in rows).label}",
        ["check", "run", "state", "reason", "reference"],
        [
            [
                f"{r.task}/{r.item}",
                "window" if r.run is None else str(r.run),
                r.state.label,
                r.reason,
                "" if r.reference is None else str(r.reference),
            ]
            for r in rows
        ],
    )


@monitor_app.command("reference")
def reference(
    spec: str | None = typer.Argument(
        None, help='what the run is the reference of: "task/item", "task" or "*" (everything)'
    ),
    run: int | None = typer.Argument(None, help="the reference run", min=0),
    clear: bool = typer.Option(False, "--clear", help="remove the pin of SPEC"),
    config: Path | None = _CONFIG,
) -> None:
    """Pin a reference run for the checks and overlays (no argument: list the pins in force).

    The most specific pin wins ("task/item", then "task", then "*"); a pin made here wins over
    monitor.references of farm.toml.
    """
    from farmtools.bookkeeping import Bookkeeping
    from farmtools.monitor.references import References, ReferenceSpecError, validate_spec

    cfg = _load(config)
    refs = References(cfg, Bookkeeping.from_config(cfg, create=False).engine)
    if spec is None:
        pinned = refs.pinned()
        for s, r in sorted(refs.all().items()):
            typer.echo(f"{s}\t{r}\t{'cli' if s in pinned else 'farm.toml'}")
        return
    monitor = _monitor(cfg, use_db=False)
    tree = {t["name"]: {i["id"] for i in t["items"]} for t in monitor.tree()}
    try:
        validate_spec(spec, tree)
        if clear:
            if not refs.unpin(spec):
                _console.print(f"[red]no reference pinned for {spec} with the CLI[/red]")
                raise typer.Exit(1)
            _console.print(f"reference of {spec} unpinned")
            return
        if run is None:
            _console.print("[red]give the reference RUN (or --clear)[/red]")
            raise typer.Exit(2)
        refs.pin(spec, run)
    except ReferenceSpecError as exc:
        _console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    _console.print(f"reference of {spec}: run {run}")


@monitor_app.command("ack")
def ack(
    alarm_id: int = typer.Argument(..., help="alarm id (farmtools alarms)"),
    reason: str = typer.Option("", "--reason", help="why (kept with the alarm)"),
    config: Path | None = _CONFIG,
) -> None:
    """Acknowledge an alarm: it leaves the page's banner, and the same kind may be raised again.

    Who (the Unix user running the command) and when are recorded with the alarm
    (``farmtools alarms --all``) and, for an alarm about a file, in the file's story.
    """
    from farmtools.bookkeeping import Bookkeeping

    bk = Bookkeeping.from_config(_load(config), create=False)
    if not bk.acknowledge_alarm(alarm_id, reason=reason):
        _console.print(f"[red]no open alarm with id {alarm_id}[/red]")
        raise typer.Exit(1)
    closed = next(a for a in bk.alarms(include_acknowledged=True) if a.id == alarm_id)
    _console.print(f"alarm {alarm_id} acknowledged by {closed.closed_by}", highlight=False)


def _when(t: datetime | None) -> str:
    return "" if t is None else t.strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "never (nothing coming in)"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _print_status(st: ShiftStatus) -> None:
    """The shift's screen: what needs a person first, then each part (empty parts say so)."""
    from farmtools.listing import emit

    if st.attention:
        typer.echo("NEEDS A PERSON:")
        for line in st.attention:
            typer.echo(f"  - {line}")
    else:
        typer.echo("OK: nothing needs a person")
    typer.echo("")
    emit(
        f"open alarms ({sum(g.count for g in st.alarms)})",
        ("source", "kind", "count", "newest (UTC)", "message", "resolve with"),
        [
            [g.source, g.kind, str(g.count), _when(g.newest), g.message, g.command]
            for g in st.alarms
        ],
    )
    for title, count, briefs in (
        ("failed and quarantined files", st.failed_count, st.failed),
        ("stuck files", st.stuck_count, st.stuck),
    ):
        typer.echo("")
        emit(
            f"{title} ({count}, oldest first)",
            ("name", "state", "since (UTC)", "last error"),
            [[f.name, f.state, _when(f.since), f.last_error or ""] for f in briefs],
        )
    typer.echo("")
    emit(
        f"incomplete runs ({len(st.incomplete_runs)}, newest first)",
        ("run", "status", "files", "analysed", "gaps (seq)", "problems"),
        [
            [
                str(r["run"]),
                r["status"],
                str(r["detected"]),
                str(r["analysed"]),
                ",".join(map(str, r["gaps"])),
                "; ".join(r["problems"]),
            ]
            for r in st.incomplete_runs
        ],
    )
    typer.echo("")
    emit(
        f"daemons ({len(st.daemons)})",
        ("daemon", "host", "pid", "last beat (UTC)", "state", "detail"),
        [
            [
                d.daemon,
                d.host,
                str(d.pid),
                _when(d.beat),
                "stopped" if d.stopped else f"SILENT {d.age_s:.0f} s" if d.silent else "ok",
                d.detail,
            ]
            for d in st.daemons
        ],
    )
    typer.echo("")
    b = st.buffer
    if b is not None:
        used = "capacity unknown"
        if b.total_bytes and b.used_bytes is not None and b.free_bytes is not None:
            used = (
                f"{b.used_bytes / 1e9:.1f} of {b.total_bytes / 1e9:.1f} GB used "
                f"({100 * b.used_bytes / b.total_bytes:.0f} %), {b.free_bytes / 1e9:.1f} GB free"
            )
        typer.echo(f"storage {b.path}: {used}")
        change = (
            f"; used bytes changing {b.change_bytes_s / 1e6:+.2f} MB/s"
            if b.change_bytes_s is not None
            else ""
        )
        typer.echo(
            f"  incoming {b.rate_bytes_s / 1e6:.2f} MB/s (over {b.rate_window_s:.0f} s){change}; "
            f"full in {_duration(b.seconds_to_full) if b.total_bytes is not None else 'unknown'}"
        )
    typer.echo("jobs in the batch system: " + ", ".join(f"{k} {v}" for k, v in st.jobs.items()))


def _nagios(st: ShiftStatus) -> str:
    """One line in the Nagios plugin format: status text, then performance data after ``|``."""
    word = "WARNING" if st.needs_person else "OK"
    text = "; ".join(st.attention) or "nothing needs a person"
    perf = (
        f"alarms={sum(g.count for g in st.alarms)} "
        f"silent={sum(d.silent for d in st.daemons)} stuck={st.stuck_count} "
        f"failed={st.failed_count}"
    )
    return f"FARMTOOLS {word} - {text} | {perf}"


def status(
    config: Path | None = _CONFIG,
    as_json: bool = JSON_OPTION,
    nagios: bool = typer.Option(
        False, "--nagios", help="one line in the Nagios plugin format (status | perfdata)"
    ),
) -> None:
    """What needs attention now: alarms, failed and stuck files, runs, daemons, storage, jobs.

    Exit code 0: nothing needs a person; 1: something does (listed first): cron mails on 1.

    For Nagios: 0 OK, 1 WARNING, 2 (configuration) CRITICAL, 3 (no database) UNKNOWN.

    The --json fields: docs/shift.md.
    """
    from farmtools.bookkeeping import Bookkeeping
    from farmtools.listing import emit_json
    from farmtools.monitor.attention import collect

    cfg = _load(config)
    bk = Bookkeeping.from_config(cfg, create=False)
    try:
        st = collect(cfg, bk)
    finally:
        bk.close()
    if as_json:
        emit_json(st.to_json())
    elif nagios:
        typer.echo(_nagios(st))
    else:
        _print_status(st)
    if st.needs_person:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(monitor_app, name="monitor")
    app.command("status")(status)
