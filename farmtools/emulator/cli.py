"""``farmtools daq emulate``: the DAQ emulator on the command line (physics or template copies).

Heavy imports (numba, scipy) happen inside the command so that ``farmtools --help`` stays fast.
May import the emulator, :mod:`farmtools.rawdata` and :mod:`farmtools.config`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

daq_app = typer.Typer(
    help="The DAQ side: emulate raw files as the 3x1x1 event builder wrote them.",
    no_args_is_help=True,
)


@daq_app.command("emulate")
def emulate(
    run: Annotated[int, typer.Option("--run", min=0, max=0xFFFFFFFF, help="Run number.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Directory to write into (default: daq.watch_dir).")
    ] = None,
    files: Annotated[int, typer.Option("--files", min=1, help="Number of files.")] = 1,
    events: Annotated[
        int, typer.Option("--events", min=1, max=0xFFFF, help="Events per file (335 fill 1 GiB).")
    ] = 335,
    interval: Annotated[
        float, typer.Option("--interval", min=0.0, help="Seconds between file starts.")
    ] = 0.0,
    compress: Annotated[
        bool, typer.Option("--compress", help="Huffman-compress payloads.")
    ] = False,
    lifetime_ms: Annotated[
        float, typer.Option("--lifetime-ms", help="Electron lifetime (ms); 'inf' for pure argon.")
    ] = 7.0,
    gain: Annotated[float, typer.Option("--gain", min=0.0, help="Gain of every LEM.")] = 20.0,
    gain_map: Annotated[
        Path | None,
        typer.Option(
            "--gain-map",
            exists=True,
            dir_okay=False,
            help='JSON {"1": 20.0, ..., "12": 18.5}: gain per LEM (overrides --gain); '
            '6x6x6: {"0": {"1": 20.0, ..., "36": 19.0}, ..., "3": {...}} per CRP.',
        ),
    ] = None,
    asymmetry: Annotated[
        float,
        typer.Option(
            "--asymmetry", min=-1.0, max=1.0, help="View 0 gets 0.5(1-A), view 1 0.5(1+A)."
        ),
    ] = 0.0,
    seed: Annotated[
        int | None, typer.Option("--seed", min=0, help="Master seed (default: random, recorded).")
    ] = None,
    crt_fraction: Annotated[
        float,
        typer.Option(
            "--crt-fraction", min=0.0, max=1.0, help="Fraction of CRT (anode-cathode) triggers."
        ),
    ] = 0.5,
    realistic: Annotated[
        bool,
        typer.Option(
            "--realistic",
            help="Shaped noise, dead/noisy channels, early and side muons, delta rays, multiple "
            "scattering (gain spread and stopping muons are on by default; docs/emulator.md).",
        ),
    ] = False,
    template: Annotated[
        Path | None,
        typer.Option(
            "--template", exists=True, dir_okay=False, help="Copy this raw file instead of physics."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="farm.toml (default: $FARMTOOLS_CONFIG or ./farm.toml)."),
    ] = None,
    detector: Annotated[
        str | None,
        typer.Option(
            "--detector",
            help="Detector (default: farm.detector); 6x6x6 writes the two L1 streams, "
            "--files files of --events fragments each (6x6x6:100: 100 samples per channel).",
        ),
    ] = None,
    no_physics: Annotated[
        bool, typer.Option("--no-physics", help="6x6x6: pedestal events (fast replays).")
    ] = False,
    end_of_run: Annotated[
        bool,
        typer.Option(
            "--end-of-run/--no-end-of-run",
            help="write run<N>.eor.json (files, events, sizes, adler32) after the last file; "
            "--no-end-of-run when a later call continues the run",
        ),
    ] = True,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            help="6x6x6 fault, repeatable: missing:S:T, late:S:SECONDS, out-of-order:S:T, "
            "duplicate:S:T, run-mismatch:S:T, truncated:S:SEQ (S stream 0/1, T trigger).",
        ),
    ] = None,
    spill_s: Annotated[
        float, typer.Option("--spill-s", min=0.0, help="6x6x6: SPS spill length (s).")
    ] = 4.8,
    spill_period_s: Annotated[
        float, typer.Option("--spill-period-s", min=0.0, help="6x6x6: one spill every (s).")
    ] = 20.0,
    beam_rate_hz: Annotated[
        float, typer.Option("--beam-rate-hz", min=0.0, help="6x6x6: beam triggers in a spill (Hz).")
    ] = 100.0,
    cosmic_trigger_hz: Annotated[
        float,
        typer.Option("--cosmic-trigger-hz", min=0.0, help="6x6x6: cosmic triggers between spills."),
    ] = 5.0,
    beam_pileup: Annotated[
        float,
        typer.Option("--beam-pileup", min=0.0, help="6x6x6: mean extra beam particles per event."),
    ] = 0.3,
    cosmic_flux: Annotated[
        float,
        typer.Option(
            "--cosmic-flux",
            min=0.0,
            help="Cosmic flux per m2 per s (6x6x6: ~92 overlapping muons per event at 166).",
        ),
    ] = 166.0,
    dark_rate_hz: Annotated[
        float, typer.Option("--dark-rate-hz", min=0.0, help="6x6x6: dark counts per PMT (Hz).")
    ] = 1000.0,
    light_yield: Annotated[
        float,
        typer.Option("--light-yield", min=0.0, help="6x6x6: detected photons per cm over 4 pi."),
    ] = 1000.0,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=4, help="6x6x6: threads per event (CRPs).")
    ] = 1,
    gain_spread: Annotated[
        float,
        typer.Option(
            "--gain-spread", min=0.0, max=0.49, help="6x6x6: relative RMS of the per-LEM gains."
        ),
    ] = 0.0,
) -> None:
    """Write run<N>-seq<M>.dat files at a set interval, created in place, closed when complete.

    With a 6x6x6 detector: the two L1 streams ``<run>_<seq>_l1evb<k>.frag`` into evb.l1_dir.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from farmtools.config import ConfigError, load_config
    from farmtools.emulator.daq import (
        EmulatedFile,
        RunPlan,
        copy_template,
        emulate_run,
        end_run,
    )
    from farmtools.emulator.settings import (
        REALISTIC,
        EmulatorSettings,
        GainMapError,
        load_crp_gain_maps,
        load_gain_map,
    )
    from farmtools.rawdata import RawDataError

    err = Console(stderr=True, soft_wrap=True)
    console = Console()
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    try:
        from farmtools.detector import geometry as lookup

        geometry = lookup(detector) if detector else cfg.geometry
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if geometry.l1_builders == 2:
        from farmtools.emulator.beam import BeamSettings
        from farmtools.emulator.l1streams import L1Plan, emulate_l1_run, parse_faults

        try:
            faults = parse_faults(fault or [])
            beam = BeamSettings(
                spill_s=spill_s,
                spill_period_s=spill_period_s,
                beam_rate_hz=beam_rate_hz,
                cosmic_trigger_hz=cosmic_trigger_hz,
                beam_pileup=beam_pileup,
                dark_rate_hz=dark_rate_hz,
                light_yield_per_cm=light_yield,
                gain_spread=gain_spread,
                gain_maps=tuple(
                    load_crp_gain_maps(gain_map, geometry.crp_geometry(), geometry.n_crps)
                    if gain_map is not None
                    else ()
                ),
            )
            beam.check()
            l1_settings = EmulatorSettings(
                lifetime_ms=lifetime_ms,
                gain=gain,
                asymmetry=asymmetry,
                seed=seed,
                muon_flux_per_m2_s=cosmic_flux,
            )
            if realistic:  # the noise and channel switches; the box brings early and side muons
                l1_settings = dataclasses.replace(l1_settings, **REALISTIC)  # type: ignore[arg-type]
            l1_settings.check(geometry.crp_geometry())
        except ValueError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        l1_out = out if out is not None else cfg.path(cfg.evb.l1_dir)
        l1_plan = L1Plan(
            run=run,
            events=files * events,
            fragments_per_file=events,
            compress=compress,
            rate_hz=events / interval if interval > 0 else 0.0,
            physics=not no_physics,
            faults=faults,
            workers=workers,
        )
        truth = emulate_l1_run(
            l1_out,
            geometry,
            l1_plan,
            l1_settings,
            seed=seed or 0,
            beam=beam,
        )
        console.print(
            f"run {run}: L1 streams in {l1_out}: {truth['emitted']} fragments, expected {truth['expected']}"
        )
        if truth["physics_truth"]:
            from farmtools.emulator.pddp_event import mean_cosmics

            mean = mean_cosmics(geometry, cosmic_flux)
            console.print(
                f"physics truth: {', '.join(truth['physics_truth'])} "
                f"({mean:.1f} overlapping cosmics per event on average)"
            )
        return
    out_dir = out if out is not None else cfg.path(cfg.daq.watch_dir)
    plan = RunPlan(
        run=run, files=files, events_per_file=events, interval_s=interval, compress=compress
    )
    try:
        gains = load_gain_map(gain_map, geometry) if gain_map is not None else {}
        settings = EmulatorSettings(
            lifetime_ms=lifetime_ms,
            gain=gain,
            gain_map=gains,
            asymmetry=asymmetry,
            seed=seed,
            crt_fraction=crt_fraction,
            muon_flux_per_m2_s=cosmic_flux,
        )
        if realistic:
            settings = dataclasses.replace(settings, **REALISTIC)  # type: ignore[arg-type]
        settings.check(geometry)
    except (GainMapError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        files_task = progress.add_task(f"run {run}: files", total=files)
        events_task = progress.add_task("events", total=files * events)

        def file_done(info: EmulatedFile) -> None:
            progress.advance(files_task)
            progress.console.print(
                f"closed {info.path} ({info.events} events, {info.size:,} bytes)"
            )

        try:
            if template is not None:
                progress.update(events_task, visible=False)
                copy_template(template, out_dir, plan, geometry=geometry, on_file=file_done)
            else:
                emulate_run(
                    out_dir,
                    settings,
                    plan,
                    geometry=geometry,
                    on_file=file_done,
                    on_event=lambda _p, _n: progress.advance(events_task),
                )
            if end_of_run:
                record = end_run(out_dir, run, geometry=geometry)
                progress.console.print(f"end of run {run}: {record}")
        except (RawDataError, FileExistsError, OSError) as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    """Add the ``daq`` group to the root application."""
    app.add_typer(daq_app, name="daq")
