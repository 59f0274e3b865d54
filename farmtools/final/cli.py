"""``farmtools final classify|filter|pack|transfer|verify|deletable|status|all RUN``.

Thin: each verb calls one function of :mod:`farmtools.final.stages` on the configuration's
bookkeeping (which must exist) and prints what it did.  The policy comes from ``farm.toml``
``[final]``; a value that is not keep, drop or prescale:N is refused naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from farmtools.cliopts import EXIT_USAGE
from farmtools.listing import JSON_OPTION, emit, emit_json

if TYPE_CHECKING:
    from farmtools.bookkeeping import Bookkeeping
    from farmtools.config import FarmConfig
    from farmtools.final.catalog import FinalFile

app = typer.Typer(
    help="6x6x6 event filtering and final-storage files (classify, filter, pack, transfer, "
    "verify; which raw files may go)."
)

_CONFIG = typer.Option(None, "--config", "-c", help="farm.toml (default: $FARMTOOLS_CONFIG)")
_RUN = typer.Argument(..., help="run number")


def _open(config: Path | None) -> tuple[FarmConfig, Bookkeeping]:
    from farmtools.bookkeeping import Bookkeeping
    from farmtools.config import load_config

    cfg = load_config(config)
    return cfg, Bookkeeping.from_config(cfg, create=False)


def _files(title: str, finals: list[FinalFile]) -> None:
    rows = [
        [f.name, f.stream, str(f.events), str(f.size), f.adler32, str(f.state), f.last_error or ""]
        for f in finals
    ]
    emit(title, ["file", "stream", "events", "bytes", "adler32", "state", "error"], rows)


@app.command("classify")
def classify_cmd(run: int = _RUN, config: Path = _CONFIG) -> None:
    """Class of every event of the run's raw files not classified yet."""
    from farmtools.final.stages import classify_run

    cfg, bk = _open(config)
    rep = classify_run(cfg, bk, run)
    classes = ", ".join(f"{k} {n}" for k, n in sorted(rep.by_class.items())) or "-"
    typer.echo(f"run {run}: {rep.files} files, {rep.events} events classified ({classes})")
    for name, why in rep.failed:
        typer.echo(f"not classified: {name}: {why}", err=True)
    if rep.failed:
        raise typer.Exit(1)


@app.command("filter")
def filter_cmd(run: int = _RUN, json_out: bool = JSON_OPTION, config: Path = _CONFIG) -> None:
    """Decide every classified event by the policy; record decisions and counts per run."""
    from farmtools.final.policy import PolicyError
    from farmtools.final.stages import filter_run

    cfg, bk = _open(config)
    try:
        rep = filter_run(cfg, bk, run)
    except PolicyError as exc:
        typer.echo(f"final filter: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    if json_out:
        emit_json({"run": run, "policy_version": rep.policy_version, "counts": rep.counts})
        return
    _counts(run, rep.policy_version, rep.counts)


def _counts(run: int, version: str, counts: dict[str, dict[str, int]]) -> None:
    rows = [
        [k, str(c["kept"]), str(c["prescaled_out"]), str(c["dropped"])] for k, c in counts.items()
    ]
    emit(
        f"run {run}, filter policy {version}",
        ["class", "kept", "prescaled out", "dropped"],
        rows,
    )


@app.command("pack")
def pack_cmd(
    run: int = _RUN,
    target_size: str = typer.Option(None, help="final file size (default final.target_size)"),
    config: Path = _CONFIG,
) -> None:
    """Write the run's kept events, compressed, into final-storage files with manifest and log."""
    from farmtools.archive.planner import parse_size
    from farmtools.final.stages import pack_run

    cfg, bk = _open(config)
    finals = pack_run(cfg, bk, run, target_bytes=parse_size(target_size) if target_size else None)
    _files(f"run {run}: final files written", finals)


@app.command("transfer")
def transfer_cmd(run: int = _RUN, config: Path = _CONFIG) -> None:
    """Copy the run's written final files to final.destination (verified copies)."""
    from farmtools.final.catalog import FinalCatalog, FinalState
    from farmtools.final.stages import transfer_run

    cfg, bk = _open(config)
    done = transfer_run(cfg, bk, run)
    _files(f"run {run}: final files transferred", done)
    failed = [f for f in FinalCatalog(bk).finals(run, FinalState.FAILED) if f.transferred is None]
    if failed:
        _files(f"run {run}: transfers failed", failed)
        raise typer.Exit(1)


@app.command("verify")
def verify_cmd(
    run: int = _RUN,
    again: bool = typer.Option(False, help="re-verify files already verified"),
    config: Path = _CONFIG,
) -> None:
    """Re-read the run's final files at the destination, event by event."""
    from farmtools.final.stages import verify_run

    cfg, bk = _open(config)
    results = verify_run(cfg, bk, run, again=again)
    _files(f"run {run}: final files verified", [f for f, _r in results])
    bad = [p for _f, r in results for p in r.problems]
    for p in bad:
        typer.echo(p, err=True)
    if bad:
        raise typer.Exit(1)


@app.command("deletable")
def deletable_cmd(run: int = _RUN, json_out: bool = JSON_OPTION, config: Path = _CONFIG) -> None:
    """List the run's raw files with whether they may be deleted, and the bookkeeping's proof.

    Nothing is deleted: farmtools never deletes a raw file of the farm storage.
    """
    from farmtools.final.stages import deletable_run

    cfg, bk = _open(config)
    dels = deletable_run(cfg, bk, run)
    if json_out:
        emit_json(
            [
                {"file": d.file, "path": d.path, "deletable": d.allowed, "proof": d.proof}
                for d in dels
            ]
        )
        return
    rows = [[d.file, "yes" if d.allowed else "no", d.proof] for d in dels]
    emit(f"run {run}: raw files", ["file", "deletable", "proof / why not"], rows)


@app.command("status")
def status_cmd(run: int = _RUN, json_out: bool = JSON_OPTION, config: Path = _CONFIG) -> None:
    """What the filter decided for the run and where its final files are."""
    from farmtools.final.catalog import FinalCatalog

    _cfg, bk = _open(config)
    cat = FinalCatalog(bk)
    flt = cat.filter_record(run)
    finals = cat.finals(run)
    if json_out:
        emit_json(
            {
                "run": run,
                "filter": None
                if flt is None
                else {
                    "policy_version": flt.policy_version,
                    "policy": flt.policy,
                    "counts": flt.counts,
                    "filtered": flt.filtered,
                },
                "files": [
                    {
                        "name": f.name,
                        "stream": f.stream,
                        "events": f.events,
                        "size": f.size,
                        "adler32": f.adler32,
                        "state": str(f.state),
                        "destination": f.destination,
                    }
                    for f in finals
                ],
            }
        )
        return
    if flt is None:
        typer.echo(f"run {run}: not filtered")
    else:
        _counts(run, flt.policy_version, flt.counts)
    _files(f"run {run}: final files", finals)


@app.command("all")
def all_cmd(run: int = _RUN, config: Path = _CONFIG) -> None:
    """classify, filter, pack, transfer and verify the run in one go."""
    from farmtools.final.stages import (
        classify_run,
        filter_run,
        pack_run,
        transfer_run,
        verify_run,
    )

    cfg, bk = _open(config)
    classify_run(cfg, bk, run)
    rep = filter_run(cfg, bk, run)
    pack_run(cfg, bk, run)
    transfer_run(cfg, bk, run)
    results = verify_run(cfg, bk, run)
    bad = [p for _f, r in results for p in r.problems]
    typer.echo(
        f"run {run}: {rep.kept} kept, {rep.prescaled_out} prescaled out, {rep.dropped} dropped "
        f"(policy {rep.policy_version}); {sum(r.ok for _f, r in results)} final files verified"
    )
    for p in bad:
        typer.echo(p, err=True)
    if bad:
        raise typer.Exit(1)


def register(root: typer.Typer) -> None:
    """Add ``farmtools final ...``."""
    root.add_typer(app, name="final")
