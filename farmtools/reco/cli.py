"""``farmtools reco RAW -o OUT.root`` and ``farmtools verify-output DIR``.

``reco`` is the program a processing job runs.  Its exit code tells the processing manager why
it failed (:mod:`farmtools.job.exitcodes`): 65 for a corrupt raw file (deterministic, never
resubmitted), 66 when the input cannot be opened, 73 when the output cannot be written; the
message on stderr names the file, the event and the byte offset.  A job may be given several
files (``farmtools reco A.dat B.dat -o A.root -o B.root --status S.jsonl``): they share the
process's start-up, and each is classified on its own (a line per file in ``--status``).

Heavy imports (numba, uproot) happen inside the commands so that ``farmtools --help`` stays
fast.  May import :mod:`farmtools.reco`, :mod:`farmtools.rawdata`, :mod:`farmtools.config` and
:mod:`farmtools.job.exitcodes`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from farmtools.job.exitcodes import EX_CANTCREAT, EX_DATAERR, EX_NOINPUT

if TYPE_CHECKING:
    from farmtools.detector import Geometry
    from farmtools.reco.driver import RecoStats

#: ``verify-output`` exit code when any output is missing, short or unreadable.
VERIFY_FAILED = 1
#: Exit code for a configuration that cannot be read (as the other stages use).
EX_CONFIG = 2


def _geometry(config: Path | None, detector: str | None) -> Geometry:
    from farmtools.detector import geometry

    if detector:
        try:
            return geometry(detector)
        except ValueError as exc:
            typer.echo(f"farmtools: {exc}", err=True)
            raise typer.Exit(EX_CONFIG) from None
    # only now: the configuration's model (pydantic) is ~0.1 s of a job's start-up
    from farmtools.config import ConfigError, load_config

    try:
        return load_config(config).geometry
    except ConfigError as exc:
        typer.echo(f"farmtools reco: {exc}", err=True)
        raise typer.Exit(EX_CONFIG) from None


def _reco_one(
    raw: str, output: str, geo: Geometry, scratch: Path | None, threads: int
) -> tuple[int, str, RecoStats | None]:
    """Reconstruct one file: (exit code of its failure class, message for stderr, stats)."""
    from farmtools.rawdata import RawDataError
    from farmtools.reco.driver import reconstruct_file
    from farmtools.reco.stage import LocationError, OutputError, is_url, local_input, local_output

    if not is_url(raw) and not Path(raw).is_file():
        return EX_NOINPUT, f"farmtools reco: cannot open input {raw!r}: no such file", None
    try:
        with local_input(raw, scratch) as local, local_output(output, scratch) as out:
            try:
                stats = reconstruct_file(local, out, geo, threads=threads)
            except RawDataError as exc:
                # name the input as the job was given it, not the scratch copy
                message = str(exc).replace(str(local), raw)
                if exc.reason.startswith("cannot open"):
                    return EX_NOINPUT, f"farmtools reco: {message}", None
                return EX_DATAERR, f"farmtools reco: corrupt input: {message}", None
    except OutputError as exc:
        return EX_CANTCREAT, f"farmtools reco: {exc}", None
    except LocationError as exc:
        return EX_NOINPUT, f"farmtools reco: cannot read input: {exc}", None
    except OSError as exc:
        return EX_CANTCREAT, f"farmtools reco: cannot write {output!r}: {exc}", None
    return 0, "", stats


def _summary(raw: str, output: str, stats: RecoStats) -> str:
    """The job's summary line; challenge.evidence parses "<raw>: N events, ... in S s (..."."""
    cpu = sum(stats.timing.values()) or 1.0
    shares = ", ".join(f"{k} {100 * v / cpu:.0f}%" for k, v in sorted(stats.timing.items()))
    return (
        f"{raw}: {stats.n_events} events, {stats.n_hits} hits, {stats.n_tracks} tracks "
        f"in {stats.seconds:.1f} s ({stats.n_events / max(stats.seconds, 1e-9):.1f} events/s;"
        f" cpu {stats.cpu_seconds:.1f} s on {stats.threads} thread(s): {shares}) -> {output}"
    )


def reco(
    raw: Annotated[
        list[str],
        typer.Argument(help="raw file(s) run<N>-seq<M>.dat: paths or root:// URLs"),
    ],
    output: Annotated[
        list[str],
        typer.Option(
            "--output", "-o", help="ROOT file to write, one per raw file: a path or a root:// URL"
        ),
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
            " FARMTOOLS_THREADS, FARMTOOLS_JOB_CPUS, SLURM_CPUS_PER_TASK, PBS_NUM_PPN or"
            " OMP_NUM_THREADS, else 1);"
            " the output is the same whatever the number",
        ),
    ] = None,
    status: Annotated[
        Path | None,
        typer.Option(
            "--status",
            help="append one JSON line per file (raw, output, exit, events, seconds,"
            " cpu_seconds, error): the per-file accounting of a job given several files",
        ),
    ] = None,
) -> None:
    """Reconstruct raw files: hits, 2D tracks, view matching, dQ/ds, into ROOT files.

    Several files in one job share its start-up (imports, numba's first calls: ~0.5-1 s);
    each file is reconstructed, reported and classified on its own, a failure does not stop
    the next one, and the exit code is the first failure's class.
    """
    import json
    import time

    from farmtools.reco.driver import job_cores

    if len(raw) != len(output):
        raise typer.BadParameter(
            f"{len(raw)} raw file(s) but {len(output)} --output: give one each",
            param_hint="--output",
        )
    geo = _geometry(config, detector)
    n_threads = threads if threads is not None else job_cores()
    first_failure = 0
    for one_raw, one_out in zip(raw, output, strict=True):
        t0, c0 = time.perf_counter(), time.process_time()
        code, message, stats = _reco_one(one_raw, one_out, geo, scratch, n_threads)
        if code:
            typer.echo(message, err=True)
            first_failure = first_failure or code
        elif stats is not None and not quiet:
            typer.echo(_summary(one_raw, one_out, stats))
        if status is not None:
            record = {
                "raw": one_raw,
                "output": one_out,
                "exit": code,
                "events": stats.n_events if stats is not None else 0,
                "seconds": time.perf_counter() - t0,
                "cpu_seconds": time.process_time() - c0,
                "error": message or None,
            }
            with status.open("a") as f:
                f.write(json.dumps(record) + "\n")
    if first_failure:
        raise typer.Exit(first_failure)


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


def reco_worker(
    socket_path: Annotated[
        Path,
        typer.Option(
            "--socket",
            help="unix socket to serve jobs on (the config's processing.reco_worker_socket)",
        ),
    ],
    warm: Annotated[
        list[Path] | None,
        typer.Option(
            "--warm",
            help="raw file(s) reconstructed once at the start (default: two emulated"
            " one-event 3x1x1 files, compressed and not)",
        ),
    ] = None,
    no_warm: Annotated[bool, typer.Option("--no-warm", help="no warm-up reconstruction")] = False,
    detector: Annotated[
        str, typer.Option("--detector", help="the geometry of the --warm files")
    ] = "3x1x1",
) -> None:
    """The node's long-lived reconstruction worker: jobs hand it their files (no start-up each).

    Imports everything and reconstructs a warm-up file once, then forks a warmed-up child per
    job that connects (python -m farmtools.job.recoclient, in the job script when
    processing.reco_worker_socket is set); the child runs `farmtools reco` with the job's
    arguments, environment, stdout and stderr.  SIGTERM stops accepting and lets jobs end.
    """
    from farmtools.job.recoserver import serve
    from farmtools.logsetup import setup_logging

    setup_logging()
    try:
        served = serve(socket_path, warm, do_warm=not no_warm, detector=detector)
    except RuntimeError as exc:
        typer.echo(f"farmtools reco-worker: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"farmtools reco-worker: stopped after {served} job(s)")


def register(app: typer.Typer) -> None:
    """Add ``reco``, ``reco-worker`` and ``verify-output`` to the root application."""
    app.command("reco")(reco)
    app.command("reco-worker")(reco_worker)
    app.command("verify-output")(verify_output)
