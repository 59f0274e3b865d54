"""``farmtools reco RAW -o OUT.root`` and ``farmtools verify-output DIR``.

``reco`` is the program a processing job runs.  Its exit code tells the processing manager why
it failed (:mod:`farmtools.batch.exitcodes`): 65 for a corrupt raw file (deterministic, never
resubmitted), 66 when the input cannot be opened, 73 when the output cannot be written; the
message on stderr names the file, the event and the byte offset.

Heavy imports (numba, uproot) happen inside the commands so that ``farmtools --help`` stays
fast.  May import :mod:`farmtools.reco`, :mod:`farmtools.rawdata`, :mod:`farmtools.config` and
:mod:`farmtools.batch.exitcodes`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from farmtools.batch.exitcodes import EX_CANTCREAT, EX_DATAERR, EX_NOINPUT

if TYPE_CHECKING:
    from farmtools.detector import Geometry

#: ``verify-output`` exit code when any output is missing, short or unreadable.
VERIFY_FAILED = 1
#: Exit code for a configuration that cannot be read (as the other stages use).
EX_CONFIG = 2


def _geometry(config: Path | None, detector: str | None) -> Geometry:
    from farmtools.config import ConfigError, load_config
    from farmtools.detector import geometry

    if detector:
        try:
            return geometry(detector)
        except ValueError as exc:
            typer.echo(f"farmtools: {exc}", err=True)
            raise typer.Exit(EX_CONFIG) from None
    try:
        return load_config(config).geometry
    except ConfigError as exc:
        typer.echo(f"farmtools reco: {exc}", err=True)
        raise typer.Exit(EX_CONFIG) from None


def reco(
    raw: Annotated[str, typer.Argument(help="raw file run<N>-seq<M>.dat: a path or a root:// URL")],
    output: Annotated[
        str, typer.Option("--output", "-o", help="ROOT file to write: a path or a root:// URL")
    ],
    config: Annotated[
        Path | None,
        typer.Option("--config", help="farm.toml (default: $FARMTOOLS_CONFIG or ./farm.toml)"),
    ] = None,
    detector: Annotated[
        str | None, typer.Option("--detector", help="detector geometry (overrides the config)")
    ] = None,
    scratch: Annotated[
        Path | None,
        typer.Option("--scratch", help="where a root:// input is copied first (default $TMPDIR)"),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no summary line")] = False,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            "--cores",
            "-j",
            min=1,
            help="events reconstructed at once (default: the batch slot's cores from"
            " FARMTOOLS_JOB_CPUS, SLURM_CPUS_PER_TASK, PBS_NUM_PPN or OMP_NUM_THREADS, else 1);"
            " the output is the same whatever the number",
        ),
    ] = None,
) -> None:
    """Reconstruct a raw file: hits, 2D tracks, view matching, dQ/ds, into a ROOT file."""
    from farmtools.rawdata import RawDataError
    from farmtools.reco.driver import job_cores, reconstruct_file
    from farmtools.reco.stage import LocationError, OutputError, is_url, local_input, local_output

    geo = _geometry(config, detector)
    if not is_url(raw) and not Path(raw).is_file():
        typer.echo(f"farmtools reco: cannot open input {raw!r}: no such file", err=True)
        raise typer.Exit(EX_NOINPUT)
    try:
        with local_input(raw, scratch) as local, local_output(output, scratch) as out:
            try:
                stats = reconstruct_file(
                    local, out, geo, threads=threads if threads is not None else job_cores()
                )
            except RawDataError as exc:
                # name the input as the job was given it, not the scratch copy
                message = str(exc).replace(str(local), raw)
                if exc.reason.startswith("cannot open"):
                    typer.echo(f"farmtools reco: {message}", err=True)
                    raise typer.Exit(EX_NOINPUT) from None
                typer.echo(f"farmtools reco: corrupt input: {message}", err=True)
                raise typer.Exit(EX_DATAERR) from None
    except OutputError as exc:
        typer.echo(f"farmtools reco: {exc}", err=True)
        raise typer.Exit(EX_CANTCREAT) from None
    except LocationError as exc:
        typer.echo(f"farmtools reco: cannot read input: {exc}", err=True)
        raise typer.Exit(EX_NOINPUT) from None
    except OSError as exc:
        typer.echo(f"farmtools reco: cannot write {output!r}: {exc}", err=True)
        raise typer.Exit(EX_CANTCREAT) from None
    if not quiet:
        # challenge.collect parses this line: "<raw>: N events, ... in S s (..."
        cpu = sum(stats.timing.values()) or 1.0
        shares = ", ".join(f"{k} {100 * v / cpu:.0f}%" for k, v in sorted(stats.timing.items()))
        typer.echo(
            f"{raw}: {stats.n_events} events, {stats.n_hits} hits, {stats.n_tracks} tracks "
            f"in {stats.seconds:.1f} s ({stats.n_events / max(stats.seconds, 1e-9):.1f} events/s;"
            f" cpu {stats.cpu_seconds:.1f} s on {stats.threads} thread(s): {shares}) -> {output}"
        )


def verify_output(
    directory: Annotated[Path, typer.Argument(help="reconstruction output directory")],
    raw_dir: Annotated[
        Path | None,
        typer.Option("--raw", help="raw files directory (default: the config's storage.input)"),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="farm.toml (default: $FARMTOOLS_CONFIG or ./farm.toml)"),
    ] = None,
    detector: Annotated[
        str | None, typer.Option("--detector", help="detector geometry (overrides the config)")
    ] = None,
) -> None:
    """Open every ROOT file under DIR and check its event count against its raw file."""
    from farmtools.config import ConfigError, load_config
    from farmtools.reco.verify import verify_tree

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        typer.echo(f"farmtools verify-output: {exc}", err=True)
        raise typer.Exit(EX_CONFIG) from None
    geo = _geometry(config, detector)
    raws = raw_dir if raw_dir is not None else cfg.path(cfg.storage.input)
    if not directory.is_dir():
        typer.echo(f"farmtools verify-output: {str(directory)!r} is not a directory", err=True)
        raise typer.Exit(VERIFY_FAILED)
    report = verify_tree(directory, raws, geo)
    for line in report.lines():
        typer.echo(line, err=not line.startswith("ok "))
    typer.echo(report.summary())
    if not report.ok:
        raise typer.Exit(VERIFY_FAILED)


def register(app: typer.Typer) -> None:
    """Add ``reco`` and ``verify-output`` to the root application."""
    app.command("reco")(reco)
    app.command("verify-output")(verify_output)
