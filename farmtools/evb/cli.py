"""``farmtools evb build`` (the L2 event-builder daemon) and ``farmtools evb status``.

Heavy imports happen inside the commands.  May import the evb modules, :mod:`farmtools.config`
and :mod:`farmtools.listing`.
"""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from farmtools.cliopts import LogJson
from farmtools.listing import JSON_OPTION, emit, emit_json

#: The counts ``evb status`` shows per builder and run, after the fragments read per L1 stream.
EVB_COUNTS = (
    "built",
    "incomplete",
    "duplicates",
    "mismatches",
    "late",
    "truncated",
    "corrupt",
    "pending",
    "files",
)

evb_app = typer.Typer(
    help="The 6x6x6 L2 event builders: two L1 fragment streams into ProtoDUNE-DP event files.",
    no_args_is_help=True,
)

_Config = Annotated[
    Path | None,
    typer.Option("--config", help="farm.toml (default: $FARMTOOLS_CONFIG or ./farm.toml)."),
]


def _status_path(state_dir: Path, builder: str) -> Path:
    return state_dir / f"evb-{builder}.json"


@evb_app.command("build")
def build(
    builder_id: Annotated[str, typer.Option("--id", help="This builder's id (one letter).")] = "a",
    builders: Annotated[
        str | None,
        typer.Option("--builders", help="All ids, comma-separated (default: evb.builders)."),
    ] = None,
    l1_dir: Annotated[
        Path | None, typer.Option("--in", help="L1 stream directory (evb.l1_dir).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Event files (daq.watch_dir).")] = None,
    setaside: Annotated[Path | None, typer.Option("--setaside", help="evb.setaside_dir")] = None,
    detector: Annotated[
        str | None,
        typer.Option("--detector", help="Detector geometry (farm.detector), e.g. 6x6x6:100."),
    ] = None,
    pair_timeout: Annotated[float | None, typer.Option("--pair-timeout", help="Seconds.")] = None,
    roll_bytes: Annotated[int | None, typer.Option("--roll-bytes", min=1)] = None,
    flush_s: Annotated[float | None, typer.Option("--flush-s")] = None,
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help="Build what is there now (tails truncated, lonely fragments incomplete), then exit.",
        ),
    ] = False,
    config: _Config = None,
    log_json: LogJson = False,
) -> None:
    """Follow the L1 streams and write complete events; runs until SIGTERM/SIGINT (or --once)."""
    from farmtools.config import ConfigError, load_config
    from farmtools.detector import geometry
    from farmtools.evb.builder import BuilderSettings, L2Builder
    from farmtools.logsetup import setup_logging

    setup_logging(log_json)
    try:
        cfg = load_config(config)
        geo = geometry(detector or cfg.farm.detector)
        ev = cfg.evb
        settings = BuilderSettings(
            in_dir=l1_dir if l1_dir is not None else cfg.path(ev.l1_dir),
            out_dir=out if out is not None else cfg.path(cfg.daq.watch_dir),
            setaside_dir=setaside if setaside is not None else cfg.path(ev.setaside_dir),
            geometry=geo,
            builder_id=builder_id,
            builders=tuple(builders.split(",")) if builders else tuple(ev.builders),
            pair_timeout_s=pair_timeout if pair_timeout is not None else ev.pair_timeout_s,
            roll_bytes=roll_bytes if roll_bytes is not None else ev.roll_bytes,
            flush_s=flush_s if flush_s is not None else ev.flush_s,
            idle_s=ev.idle_s,
            status_path=_status_path(cfg.path(ev.state_dir), builder_id),
        )
        settings.check()
    except (ConfigError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    assert settings.status_path is not None
    settings.status_path.parent.mkdir(parents=True, exist_ok=True)
    bk = None
    try:
        from farmtools.bookkeeping.db import Bookkeeping

        bk = Bookkeeping(cfg.database_url)
    except Exception as exc:  # the builder works without: counts stay in its status file
        logging.getLogger("farmtools.evb").warning(
            "bookkeeping unavailable, counts only in %s: %s", settings.status_path, exc
        )
    builder = L2Builder(settings, bk)
    if once:
        builder.drain()
    else:
        stop = False

        def _stop(_sig: int, _frame: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        builder.run(lambda: stop, heartbeat_s=cfg.monitor.heartbeat_s)
    typer.echo(json.dumps(builder.status()["runs"]))


@evb_app.command("status")
def status(
    builder_id: Annotated[
        str | None, typer.Option("--id", help="One builder (default: all).")
    ] = None,
    config: _Config = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Counts per run of each L2 builder: fragments in per stream, built, incomplete, set aside.

    A builder without a status file yet is named on stderr (it has no row).
    """
    from farmtools.config import load_config

    cfg = load_config(config)
    found = []
    for b in [builder_id] if builder_id else cfg.evb.builders:
        path = _status_path(cfg.path(cfg.evb.state_dir), b)
        if not path.exists():
            typer.echo(f"builder {b}: no status yet ({path})", err=True)
            continue
        runs = json.loads(path.read_text())["runs"]
        found += [{"builder": b, "run": int(run)} | counts for run, counts in runs.items()]
    if as_json:
        emit_json(found)
        return
    rows = [
        [c["builder"], str(c["run"]), "+".join(map(str, c["fragments_in"]))]
        + [str(c[k]) for k in EVB_COUNTS]
        for c in found
    ]
    emit("event building per L2 builder", ["builder", "run", "L1 in 0+1", *EVB_COUNTS], rows)


def register(app: typer.Typer) -> None:
    """Add the ``evb`` group to the root application."""
    app.add_typer(evb_app, name="evb")
