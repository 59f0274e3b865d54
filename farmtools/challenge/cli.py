"""``farmtools challenge run|simulate|presets``: the project's main job, and the farm model.

Heavy imports (the stages, SimPy, plotly) happen inside the commands.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

challenge_app = typer.Typer(
    help="Mock data challenges: the whole chain on emulated data, a report, a farm model.",
    no_args_is_help=True,
)


@challenge_app.command("run")
def run(
    files: Annotated[
        int | None, typer.Option(min=1, help="Raw files to write (default 50).")
    ] = None,
    interval: Annotated[
        float | None, typer.Option(min=0.0, help="Seconds between files (default 10).")
    ] = None,
    events: Annotated[
        int | None, typer.Option(min=1, max=0xFFFF, help="Events per file (default 335).")
    ] = None,
    compress: Annotated[bool | None, typer.Option("--compress/--no-compress")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Local batch slots (embedded farm).")] = 2,
    preset: Annotated[
        str | None,
        typer.Option(
            help="A seed test: seed-300s-compressed, seed-300s-raw, seed-10s-... (see presets)."
        ),
    ] = None,
    time_scale: Annotated[
        float, typer.Option(min=0.0001, help="Run a preset this many times faster.")
    ] = 1.0,
    chaos: Annotated[
        bool,
        typer.Option(
            help="Inject faults: SIGKILL daemons, storage outage, batch pause, corrupt files."
        ),
    ] = False,
    chaos_seed: Annotated[int, typer.Option(help="Seed of the fault schedule.")] = 1,
    corrupt_files: Annotated[
        int, typer.Option(min=0, help="Corrupt files dropped with --chaos.")
    ] = 2,
    run_number: Annotated[
        int | None, typer.Option("--run", help="First run number (default: next free).")
    ] = None,
    runs: Annotated[
        int,
        typer.Option(
            min=1,
            help="Runs of --files files each, one after the other, each ended by its "
            "end-of-run record (files not a multiple of [analysis] group_size: every run "
            "ends with a partial group, analysed at its close).",
        ),
    ] = 1,
    home: Annotated[
        Path, typer.Option(help="Where the embedded farm lives (ignored with --config).")
    ] = Path("challenge-farm"),
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="farm.toml of a deployed farm (default: an embedded one)."
        ),
    ] = None,
    daemons: Annotated[
        bool,
        typer.Option(help="Start ingest/processing/monitor (--no-daemons: the farm's own run)."),
    ] = True,
    monitor: Annotated[bool, typer.Option(help="Start the monitoring page.")] = True,
    archive: Annotated[bool, typer.Option(help="Archive the raw files at the end.")] = True,
    timeout: Annotated[float | None, typer.Option(help="Give up after this many seconds.")] = None,
    lifetime_ms: Annotated[float, typer.Option(help="Injected electron lifetime (ms).")] = 7.0,
    gain: Annotated[float, typer.Option(help="Injected gain of every LEM.")] = 20.0,
    seed: Annotated[int, typer.Option(help="Emulator seed.")] = 2016,
    progress: Annotated[bool, typer.Option(help="Progress bars.")] = True,
    detector: Annotated[
        str | None,
        typer.Option(
            help="6x6x6 or 6x6x6:SAMPLES: the 6x6x6 chain (L1 streams, L2 building, ingest, "
            "filtering, reconstruction, purity/gain, formatting, transfer); presets "
            "cosmics, beam, beam-outage.",
        ),
    ] = None,
) -> None:
    """Run the whole chain on emulated data until every file is done; write the report."""
    from rich.console import Console

    from farmtools.challenge.presets import get_preset
    from farmtools.challenge.run import ChallengeSettings, run_challenge

    # piped or in a log, a report line is one line (a value cut as "+13.3\n%" defeats grep)
    console = Console(soft_wrap=not sys.stdout.isatty())
    if detector is not None and detector != "3x1x1":
        from farmtools.challenge.run666 import get_preset_666, run_challenge_666, settings_for

        if not detector.startswith("6x6x6"):
            console.print(f"[red]no data challenge for the detector {detector!r}[/red]")
            raise typer.Exit(2)
        if chaos or time_scale != 1.0:
            console.print("[red]--chaos and --time-scale are the 3x1x1 challenge's[/red]")
            raise typer.Exit(2)
        try:
            p666 = get_preset_666(preset or "beam")
        except ValueError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
        s666 = settings_for(
            p666, files=files, events=events, interval_s=interval, compress=compress,
            workers=workers, run=run_number, runs=runs, config=config, home=home, seed=seed,
            lifetime_ms=lifetime_ms, gain=gain, timeout_s=timeout, monitor=monitor,
            daemons=daemons, progress=progress, detector=detector,
        )  # fmt: skip
        _finish(console, _run_or_exit(console, run_challenge_666, s666))
        return
    defaults = ChallengeSettings()  # one place for the defaults: 50 files / 10 s / 335 events
    base: dict[str, Any] = {
        "files": defaults.files,
        "interval_s": defaults.interval_s,
        "events": defaults.events,
        "compress": defaults.compress,
    }
    if preset is not None:
        try:
            p = get_preset(preset).scaled(time_scale)
        except ValueError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
        base = {
            "files": p.files,
            "interval_s": p.interval_s,
            "events": p.events,
            "compress": p.compress,
        }
    for key, value in (
        ("files", files),
        ("interval_s", interval),
        ("events", events),
        ("compress", compress),
    ):
        if value is not None:
            base[key] = value
    settings = ChallengeSettings(
        **base,
        workers=workers,
        run=run_number,
        runs=runs,
        config=config,
        home=home,
        chaos=chaos,
        chaos_seed=chaos_seed,
        corrupt_files=corrupt_files,
        seed=seed,
        lifetime_ms=lifetime_ms,
        gain=gain,
        timeout_s=timeout,
        monitor=monitor,
        archive=archive,
        daemons=daemons,
        preset=preset,
        progress=progress,
    )
    _finish(console, _run_or_exit(console, run_challenge, settings))


def _run_or_exit(console: Any, run: Any, settings: Any) -> Any:
    """``run(settings, console)``; a configuration error is exit 2 with its message."""
    from farmtools.config import ConfigError

    try:
        return run(settings, console)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _finish(console: Any, result: Any) -> None:
    """Print the report and where it is; exit 1 unless the verdict is PASS."""
    from farmtools.challenge.render import render_text

    console.print(render_text(result.report), highlight=False, markup=False)
    console.print(f"report: {result.html_path}  (JSON {result.json_path}, text {result.text_path})")
    if result.monitor_url:
        console.print(
            f"monitor: {result.monitor_url} was served during the challenge; serve it again with "
            f"farmtools monitor serve --config {result.config_path}"
        )
    if result.report["verdict"] != "PASS":
        raise typer.Exit(1)


@challenge_app.command("presets")
def presets() -> None:
    """List the presets (the seed's four tests and the demo)."""
    from farmtools.challenge.presets import PRESETS
    from farmtools.challenge.run666 import PRESETS_666

    for p in PRESETS.values():
        typer.echo(
            f"{p.name:<22} {p.files:>4} files x {p.events} events every {p.interval_s:g} s, "
            f"{'compressed' if p.compress else 'uncompressed'}: {p.description}"
        )
    for q in PRESETS_666.values():
        typer.echo(
            f"{q.name:<22} {q.files:>4} files x {q.events} events every {q.interval_s:g} s "
            f"(--detector 6x6x6): {q.description}"
        )


@challenge_app.command("simulate")
def simulate(
    files: Annotated[int, typer.Option(min=1)] = 50,
    interval: Annotated[float, typer.Option(min=0.001, help="Seconds between files.")] = 10.0,
    events: Annotated[int, typer.Option(min=1)] = 335,
    compression: Annotated[float, typer.Option(min=1.0, help="Compression factor.")] = 1.0,
    workers: Annotated[int, typer.Option(min=1)] = 2,
    reco_s_per_event: Annotated[float, typer.Option(min=0.0)] = 0.3,
    reco_s_per_event_compressed: Annotated[
        float | None,
        typer.Option(min=0.0, help="6x6x6: CPU s per compressed 3x1x1 event (full files)."),
    ] = None,
    job_s: Annotated[
        float | None,
        typer.Option(
            min=0.0, help="Seconds every job pays before its first event (measured start-up)."
        ),
    ] = None,
    bandwidth_mb_s: Annotated[float, typer.Option(min=0.001, help="Verified-copy MB/s.")] = 400.0,
    group_size: Annotated[int, typer.Option(min=1)] = 4,
    calibrate: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help="A challenge report (JSON) to calibrate on."
        ),
    ] = None,
    reco_s_per_event_6x6x6: Annotated[
        float | None,
        typer.Option(
            "--reco-s-per-event-6x6x6",
            min=0.0,
            help="6x6x6: CPU s per uncompressed 6x6x6 event measured (bench_reco666.py);"
            " replaces the 3x1x1 figure scaled by channels x samples.",
        ),
    ] = None,
    size_6x6x6: Annotated[
        bool, typer.Option("--size-6x6x6", help="Print the 6x6x6 sizing table (markdown).")
    ] = False,
    cores: Annotated[int, typer.Option(help="6x6x6: cores.")] = 384,
    bandwidth_gb_s: Annotated[float, typer.Option(help="6x6x6: storage bandwidth GB/s.")] = 20.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Predict queues and latencies of a farm (discrete-event model); calibrate; size the 6x6x6."""
    from farmtools.challenge import simulate as sim
    from farmtools.challenge.simtable import calibration_check, markdown_sizing, markdown_summary

    model = sim.FarmModel(
        n_files=files,
        file_interval_s=interval,
        events_per_file=events,
        compression=compression,
        workers=workers,
        reco_s_per_event=reco_s_per_event,
        transfer_bandwidth_Bps=bandwidth_mb_s * 1e6,
        group_size=group_size,
    )
    if job_s is not None:
        model = replace(model, job_startup_s=job_s)
    out: dict[str, Any] = {}
    per_event = reco_s_per_event
    if calibrate is not None:
        report = json.loads(calibrate.read_text())
        if (report.get("chain_6x6x6") or {}).get("model_inputs"):
            # a 6x6x6 challenge: the chain's model, and its sizing at full size
            try:
                _calibrate_chain(report, as_json, size_6x6x6, reco_s_per_event_6x6x6, job_s)
            except ValueError as exc:
                typer.echo(f"{calibrate}: {exc}", err=True)
                raise typer.Exit(2) from None
            return
        check = calibration_check(report)
        out["calibration"] = check
        model = sim.FarmModel(**check["model"])
        per_event = model.reco_s_per_event
    result = sim.simulate(model)
    out["prediction"] = result.summary()
    if size_6x6x6:
        out["sizing_6x6x6"] = sim.size_6x6x6(
            per_event,
            cores=cores,
            bandwidth_Bps=bandwidth_gb_s * 1e9,
            job_s=job_s if job_s is not None else sim.DEFAULT_JOB_S,
            reco_s_per_event_compressed_3x1x1=reco_s_per_event_compressed,
            reco_s_per_event_6x6x6=reco_s_per_event_6x6x6,
        )
    if as_json:
        typer.echo(json.dumps(out, indent=1, default=str))
        return
    if "calibration" in out:
        typer.echo(markdown_summary(out["calibration"]))
    typer.echo(
        f"model: {model.n_files} files every {model.file_interval_s:g} s, "
        f"{model.events_per_file} events, {model.workers} workers, "
        f"utilisation {model.utilisation:.2f}, max batch queue {result.max_batch_queue}"
    )
    for stage, v in out["prediction"]["latency"].items():
        typer.echo(f"  {stage:<10} median {v['median_s']:9.2f} s  p95 {v['p95_s']:9.2f} s")
    if size_6x6x6:
        typer.echo("")
        typer.echo(
            markdown_sizing(
                out["sizing_6x6x6"],
                per_event,
                cores,
                bandwidth_gb_s,
                job_s=job_s if job_s is not None else sim.DEFAULT_JOB_S,
                per_event_compressed_3x1x1=reco_s_per_event_compressed,
                per_event_6x6x6=reco_s_per_event_6x6x6,
            )
        )
    if "calibration" in out and not out["calibration"]["within_20_percent"]:
        raise typer.Exit(1)


def _calibrate_chain(
    report: dict[str, Any],
    as_json: bool,
    size: bool = False,
    reco_s_per_event: float | None = None,
    job_s: float | None = None,
) -> None:
    """The 6x6x6 chain's model calibrated on a 6x6x6 challenge's report and compared with it
    stage by stage (:mod:`farmtools.challenge.sim666`), with ``size`` the chain's sizing from
    its costs at full size (the benchmarks' defaults for what it cannot measure); exit 1 when
    a stage is > 20 % off."""
    from dataclasses import asdict

    from farmtools.challenge import sim666

    check = sim666.compare_chain(report)
    out: dict[str, Any] = {
        "calibration_6x6x6": {k: v for k, v in check.items() if k not in ("costs", "input")},
        "costs": asdict(check["costs"]),
    }
    rows: list[dict[str, Any]] = []
    if size:
        files = report["chain_6x6x6"]["model_inputs"]["files"]
        full = sim666.full_size_costs(
            check["costs"],
            sum(f["events"] for f in files) / max(len(files), 1),
            reco_s_per_event=reco_s_per_event or sim666.RECO_S_PER_EVENT_6X6X6,
            job_s=job_s if job_s is not None else sim666.JOB_S,
        )
        rows = sim666.size_chain(full)
        out["full_size_costs"] = asdict(full)
        out["sizing_6x6x6_chain"] = rows
    if as_json:
        typer.echo(json.dumps(out, default=str))
    else:
        typer.echo(sim666.markdown_comparison(check))
        typer.echo(f"costs: {check['costs']}")
        if rows:
            typer.echo("")
            typer.echo(sim666.markdown_chain_sizing(rows))
    if not check["within_20_percent"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``challenge`` group to the root application."""
    app.add_typer(challenge_app, name="challenge")
