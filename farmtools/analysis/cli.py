"""``farmtools analyse``: electron lifetime (purity), LEM gain, and the pipeline's ready groups.

Exit codes: 0 done; 2 bad input (an unreadable ROOT file, purity summary or option: the message
names it).  Heavy imports (numpy, uproot) happen inside the commands.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:
    from farmtools.detector import Geometry

analyse_app = typer.Typer(
    help="Online analyses of reconstructed files: electron lifetime and LEM gain.",
    no_args_is_help=True,
)
_err = Console(stderr=True, soft_wrap=True)
_RUN_RE = re.compile(r"run(\d+)")

_FILES = typer.Argument(..., help="reconstructed ROOT files (3-4 of a run in the seed)")
_OUT = typer.Option(
    None, "--output", "-o", help="summary file (seed format); its .json twin is written too"
)
_PURITY = typer.Option(..., "--purity", help="purity summary (text or JSON) giving the lifetime")
_ROOT = typer.Option(None, "--root", help="also write the 2D LEM histograms")
_CONFIG = typer.Option(
    None, "--config", "-c", help="farm.toml (default: $FARMTOOLS_CONFIG, ./farm.toml)"
)
_RUN = typer.Option(None, help="run number for the JSON (default: from the file names)")
_DETECTOR = typer.Option(
    None,
    "--detector",
    help="detector of the files, e.g. 6x6x6 (default: from the files' channel count)",
)


def _run_of(files: list[Path], run: int | None) -> int | None:
    if run is not None:
        return run
    found = {int(m.group(1)) for f in files if (m := _RUN_RE.search(f.name))}
    return found.pop() if len(found) == 1 else None


def _fail(message: str) -> typer.Exit:
    _err.print(f"[red]{message}[/red]", highlight=False)
    return typer.Exit(2)


def _geometry(files: list[Path], detector: str | None) -> Geometry:
    """The detector whose settings analyse ``files`` (said on stderr: the pipeline's choice)."""
    from farmtools.analysis.hits import RecoFileError
    from farmtools.analysis.pipeline import output_geometry

    try:
        geo = output_geometry(files, detector)
    except (RecoFileError, ValueError) as exc:
        raise _fail(str(exc)) from None
    how = "--detector" if detector is not None else "the files' channel count"
    _err.print(f"detector: {geo.name} ({geo.n_lems} LEMs, {how})", highlight=False)
    return geo


def _pair(text: str | None, option: str) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        a, b = (float(x) for x in text.split(","))
    except ValueError:
        raise _fail(f"{option}: expected two numbers 'view0,view1', got {text!r}") from None
    return (a, b)


@analyse_app.command("purity")
def purity_cmd(
    files: list[Path] = _FILES,
    output: Path | None = _OUT,
    estimator: str = typer.Option("tm", help="per drift-time bin: tm (truncated mean) or mpv"),
    run: int | None = _RUN,
    as_json: bool = typer.Option(False, "--json", help="print the JSON instead of the text"),
    threshold_model: bool = typer.Option(
        False,
        "--threshold-model",
        help="fit the hit finder's threshold loss with k instead of correcting it (costs precision)",
    ),
    threshold_correction: bool = typer.Option(
        True,
        "--threshold-correction/--no-threshold-correction",
        help="correct each hit for the charge the hit finder's threshold loses (default)",
    ),
    detector: str | None = _DETECTOR,
) -> None:
    """Electron lifetime per view and combined (anode-cathode crossing tracks)."""
    from farmtools.analysis.hits import RecoFileError, read_hits
    from farmtools.analysis.pipeline import max_drift_us, muon_offset, threshold_loss
    from farmtools.analysis.purity import NO_THRESHOLD_LOSS, purity
    from farmtools.analysis.summary import dumps, seed_text, summary_json, write_summary

    if estimator not in ("tm", "mpv"):
        raise _fail(f"--estimator: expected tm or mpv, got {estimator!r}")
    geo = _geometry(files, detector)
    try:
        hits = read_hits(files)
    except RecoFileError as exc:
        raise _fail(str(exc)) from None
    correct = threshold_correction and not threshold_model
    res = purity(
        hits,
        estimator="tm" if estimator == "tm" else "mpv",
        max_drift_us=max_drift_us(geo),
        threshold_model=threshold_model,
        threshold_loss=threshold_loss(geo) if correct else NO_THRESHOLD_LOSS,
        max_muon_offset=muon_offset(geo),
    )
    t = datetime.now(UTC)
    names = [str(f) for f in files]
    r = _run_of(files, run)
    if output is not None:
        write_summary(output, t, r, names, res, res.views)
    if as_json:
        typer.echo(dumps(summary_json(t, r, names, res, res.views, None)))
    else:
        typer.echo(seed_text(t, res.views), nl=False)
    _err.print(
        f"combined: {res.combined.describe()} ({res.n_tracks} muons, {res.n_hits} hits)"
        + (
            f"; systematic (threshold loss, noise/signal {res.noise_to_signal:.3f}): "
            f"+- {1e6 * res.k_systematic:.1f} e-6/us on k"
            if math.isfinite(res.k_systematic)
            else f"; systematic (threshold loss): {res.systematic}"
        ),
        highlight=False,
    )


@analyse_app.command("gain")
def gain_cmd(
    files: list[Path] = _FILES,
    purity_summary: Path = _PURITY,
    output: Path | None = _OUT,
    root: Path | None = _ROOT,
    tm_ref: str | None = typer.Option(
        None, help="gain-1 truncated mean per view 'v0,v1' (fC/cm; default: calibrated)"
    ),
    mpv_ref: str | None = typer.Option(None, help="gain-1 MPV per view 'v0,v1' (fC/cm)"),
    run: int | None = _RUN,
    as_json: bool = typer.Option(False, "--json", help="print the JSON instead of the text"),
    detector: str | None = _DETECTOR,
) -> None:
    """Per-LEM dQ/ds per view, effective gain and view asymmetry, lifetime-corrected."""
    from farmtools.analysis.gain import gain
    from farmtools.analysis.hits import RecoFileError, read_hits
    from farmtools.analysis.pipeline import gain_refs, threshold_loss
    from farmtools.analysis.summary import (
        SummaryFileError,
        dumps,
        read_purity_summary,
        seed_text,
        summary_json,
        write_root,
        write_summary,
    )

    geo = _geometry(files, detector)
    tm_geo, mp_geo = gain_refs(geo)
    tm = _pair(tm_ref, "--tm-ref") or tm_geo
    mp = _pair(mpv_ref, "--mpv-ref") or mp_geo
    try:
        pur = read_purity_summary(purity_summary)
        hits = read_hits(files)
    except (SummaryFileError, RecoFileError) as exc:
        raise _fail(str(exc)) from None
    res = gain(
        hits, pur.combined.tau_us, geo, tm_ref=tm, mpv_ref=mp, threshold_loss=threshold_loss(geo)
    )
    t = datetime.now(UTC)
    names = [str(f) for f in files]
    r = _run_of(files, run)
    if output is not None:
        write_summary(output, t, r, names, pur.block, pur.views, res)
    if root is not None:
        write_root(root, res, geo)
    if as_json:
        typer.echo(dumps(summary_json(t, r, names, pur.block, pur.views, res)))
    else:
        typer.echo(seed_text(t, pur.views, res), nl=False)


@analyse_app.command("ready")
def ready_cmd(
    config: Path | None = _CONFIG,
) -> None:
    """Analyse every complete group of reconstructed files (what the pipeline does)."""
    from farmtools.analysis.pipeline import run_ready_analyses
    from farmtools.bookkeeping.db import Bookkeeping
    from farmtools.config import ConfigError, load_config

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    bk = Bookkeeping.from_config(cfg)
    try:
        for path in run_ready_analyses(cfg, bk):
            typer.echo(str(path))
    finally:
        bk.close()


def register(app: typer.Typer) -> None:
    """Add ``farmtools analyse`` to the root application."""
    app.add_typer(analyse_app, name="analyse")
