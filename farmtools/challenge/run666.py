"""``farmtools challenge run --detector 6x6x6``: the whole 6x6x6 chain on this machine, scaled down.

A :class:`~farmtools.challenge.run.Challenge` (its daemons, progress, stop, report and fault
machinery) with the 6x6x6's head and tail:

* the emulator writes the two L1 fragment streams (``emulate_l1_run``: physics, beam spills or
  cosmics by preset) into ``evb.l1_dir`` at the preset's rate, the event time of each trigger
  noted for the L2 building latency;
* the L2 event builder is one more daemon (``farmtools evb build``): it writes the event files
  into ``daq.watch_dir``, where ingest takes them; processing reconstructs them (flash t0) and
  the analyses measure purity and gain, as for the 3x1x1;
* once a run's event files are all built, the run is ended by its end-of-run record, and once
  they are all stored the final stage (:mod:`farmtools.final.stages`) classifies and filters its
  events, packs the kept ones into final-storage files and transfers and verifies them at the
  central storage, again until every final file is verified;
* the ``beam-outage`` preset cuts the link to central storage (the central directory
  bind-mounted read-only, :class:`~farmtools.challenge.chaos.StorageOutage`) from the start of
  data taking until the data taking is over plus ``outage_after_s``: final files wait in the
  buffer, transfers fail and are retried, the buffer forecast is sampled all along.

The report adds ``chain_6x6x6`` (:mod:`.report666`): every fragment and every event accounted
for, each stage's latency and throughput, the buffer forecast.  May import every stage.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from farmtools.bookkeeping import FileState
from farmtools.challenge.chaos import Fault, StorageOutage, start_outage
from farmtools.challenge.daemons import Daemon, farmtools_argv
from farmtools.challenge.run import Challenge, ChallengeSettings
from farmtools.emulator.beam import BeamSettings

#: the states of an event file from which the final stage can read it (stored on the farm)
STORED_OR_LATER = frozenset(
    {FileState.STORED, FileState.QUEUED, FileState.SUBMITTED, FileState.RUNNING}
    | {FileState.RECONSTRUCTED, FileState.ANALYSED}
)

#: the final stage looks at the runs this often (seconds)
FINAL_POLL_S = 1.0


@dataclass(frozen=True)
class Preset666:
    """A 6x6x6 challenge: how many L2 files of how many events, how often, which triggers."""

    name: str
    files: int
    events: int
    interval_s: float
    beam: BeamSettings
    outage: bool
    description: str


#: Spills scaled down ten times (0.48 s every 2 s at 10 Hz, cosmic triggers at 2.5 Hz between):
#: both kinds of trigger in a few seconds of run; the events themselves are full 6x6x6 events
#: (``--detector 6x6x6:SAMPLES`` shortens the drift window).
SCALED_SPILLS = BeamSettings(
    spill_s=0.48, spill_period_s=2.0, beam_rate_hz=10.0, cosmic_trigger_hz=2.5
)

PRESETS_666: dict[str, Preset666] = {
    p.name: p
    for p in (
        Preset666(
            "cosmics",
            4,
            6,
            6.0,
            BeamSettings(beam_rate_hz=0.0, cosmic_trigger_hz=5.0),
            False,
            "cosmic triggers only (no beam), 1 event/s",
        ),
        Preset666(
            "beam", 4, 6, 6.0, SCALED_SPILLS, False, "beam spills and cosmics between, 1 event/s"
        ),
        Preset666(
            "beam-outage",
            4,
            6,
            6.0,
            SCALED_SPILLS,
            True,
            "beam spills, the link to central storage down during the data taking",
        ),
    )
}


def get_preset_666(name: str) -> Preset666:
    try:
        return PRESETS_666[name]
    except KeyError:
        raise ValueError(
            f"unknown 6x6x6 preset {name!r}; known: {', '.join(PRESETS_666)}"
        ) from None


@dataclass
class Settings666(ChallengeSettings):
    """A 6x6x6 challenge: ``files`` L2 files of ``events`` events each per run (the builder
    rolls its files at that many events), one file's events every ``interval_s``."""

    detector: str = "6x6x6:100"
    preset: str | None = "beam"
    beam: BeamSettings = field(default_factory=lambda: SCALED_SPILLS)
    outage: bool = False
    #: the link stays down this long after the data taking (final files wait meanwhile)
    outage_after_s: float = 8.0
    archive: bool = False  # the raw event files' own archive: the final files replace it


@dataclass
class _Final:
    """The final stage's progress and timings (written by its thread)."""

    calls: dict[str, list[float]] = field(default_factory=dict)  # stage -> seconds per call
    #: stage -> CPU seconds of this thread per call (the cost the capacity model scales)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    done_runs: set[int] = field(default_factory=set)
    stored_at: dict[int, float] = field(default_factory=dict)  # run -> all files stored (s)
    verified_at: dict[int, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    buffer: list[dict[str, Any]] = field(default_factory=list)  # forecast samples


class Challenge666(Challenge):
    """The 6x6x6 chain; see the module docstring."""

    s: Settings666

    def __init__(self, settings: Settings666, console: Console | None = None) -> None:
        super().__init__(settings, console)
        self.final = _Final()
        self.emitted_at: dict[int, list[float]] = {}  # run -> elapsed s of each trigger
        self.l1_truth: dict[int, dict[str, Any]] = {}
        self.outage_fault: Fault | None = None
        self.outage_over = not settings.outage

    # -- set-up -----------------------------------------------------------------------------
    def overrides(self) -> dict[str, Any]:
        from farmtools.detector import geometry

        geo = geometry(self.s.detector)
        event = 2 * geo.fragment_bytes + 16384  # LRO pulses included, with room
        return {
            "farm.detector": self.s.detector,
            # the builder rolls a file at `events` events, or after one file's interval
            "evb.roll_bytes": self.s.events * event,
            "evb.flush_s": max(2.0, self.s.interval_s),
            "evb.pair_timeout_s": 10.0,
            "evb.idle_s": 15.0,
            # final files of about two raw files' kept events (several per run)
            "final.target_size": f"{max(1, 2 * self.s.events * event // 3 // 1000)}kB",
            # the 6x6x6 design: the buffer covers a 3-day outage of the link to central storage
            "monitor.buffer_warn_h": 72.0,
            "runs.quiet_s": 30.0,
        }

    def prepare(self) -> None:
        super().prepare()
        # a challenge killed with -9 during its outage left the central storage read-only
        if self._remote_central():
            return
        left = StorageOutage.leftover(self._central(), self._link_marker())
        if left is not None:
            self.console.print(f"[yellow]{left}[/yellow]")

    def _central(self) -> Path:
        """The central storage of the embedded farm: the parent of ``final.destination``."""
        return self.cfg.path(self.cfg.final.destination).parent

    def _remote_central(self) -> bool:
        from farmtools.storage.location import is_url

        return is_url(self.cfg.final.destination)

    def _link_marker(self) -> Path:
        return self.cfg.home / "challenge" / "link-outage.mounted"

    def start_daemons(self) -> None:
        super().start_daemons()
        if self.s.daemons:
            ft = farmtools_argv()
            d = Daemon(
                "evb", [*ft, "evb", "build", "--config", str(self.config_path)], self.log_dir
            )
            self.daemons["evb"] = d
            d.start()
        if self.s.outage:
            self._spawn(self._outage, "outage")
        self._spawn(self._final_stage, "final")

    # -- the head: L1 streams, then the built files -----------------------------------------
    def _emulate(self) -> None:
        from farmtools.emulator.l1streams import L1Plan, emulate_l1_run
        from farmtools.emulator.settings import EmulatorSettings

        s = self.s
        per_run = s.files * s.events
        try:
            for run in self.run_numbers:
                times: list[float] = []
                self.emitted_at[run] = times

                def emitted(_n: int, times: list[float] = times) -> None:
                    times.append(self.elapsed())

                self.l1_truth[run] = emulate_l1_run(
                    self.cfg.path(self.cfg.evb.l1_dir),
                    self.cfg.geometry,
                    L1Plan(
                        run=run,
                        events=per_run,
                        fragments_per_file=s.events,
                        compress=s.compress,
                        rate_hz=s.events / s.interval_s if s.interval_s > 0 else 0.0,
                    ),
                    EmulatorSettings(lifetime_ms=s.lifetime_ms, gain=s.gain, seed=s.seed),
                    seed=s.seed,
                    on_event=emitted,
                    beam=s.beam,
                )
                if self.stop.is_set():
                    break
                self._wait_built(run)
        except Exception as exc:
            self.shared.emulator_error = f"{type(exc).__name__}: {exc}"
        finally:
            self.shared.emulator_done = True

    def built_files(self, run: int) -> list[tuple[int, Path, int]]:
        """(seq, path, events) of the run's event files the builder published so far."""
        from farmtools.rawdata.errors import RawDataError
        from farmtools.rawdata.pddp_naming import parse_l2_name
        from farmtools.rawdata.pddp_reader import PDDPFile

        out = []
        for p in sorted(self.watch_dir.glob(f"{run}_*_*.dat")):
            name = parse_l2_name(p.name)
            if name is None or name.run != run:
                continue
            try:
                with PDDPFile(p, self.cfg.geometry) as f:
                    out.append((name.seq, p, f.n_events))
            except (RawDataError, OSError):
                continue  # not readable yet: the next look
        return sorted(out)

    def _wait_built(self, run: int) -> None:
        """Until the builder wrote every trigger of ``run`` (built or incomplete); then the
        run's files are the challenge's files and the DAQ ends the run with its record."""
        from farmtools.emulator.daq import EmulatedFile
        from farmtools.rawdata.endofrun import describe_file, write_end_of_run

        expected = self.l1_truth[run]["expected"]
        want = expected["built"] + expected["incomplete"]
        deadline = time.monotonic() + 120.0 + 4 * self.cfg.evb.flush_s
        files = self.built_files(run)
        while sum(n for _s, _p, n in files) < want and time.monotonic() < deadline:
            if self.stop.wait(0.5):
                return
            files = self.built_files(run)
        if sum(n for _s, _p, n in files) < want:
            self.shared.emulator_error = (
                f"run {run}: the builder wrote {sum(n for *_x, n in files)} of {want} events"
            )
        first = 0
        for seq, path, n in files:
            self.shared.written.append(
                EmulatedFile(
                    path,
                    run,
                    seq,
                    events=n,
                    first_trigger=first,
                    last_trigger=first + n - 1,
                    size=path.stat().st_size,
                )
            )
            first += n
        write_end_of_run(self.watch_dir, run, [describe_file(p, seq, n) for seq, p, n in files])

    # -- the tail: filter, format, transfer, verify -----------------------------------------
    def _outage(self) -> None:
        """The link to central storage down from the start until the data taking is over
        (plus ``outage_after_s``): the central directory read-only."""
        central = self._central()
        f = Fault(at_s=round(self.elapsed(), 2), kind="link_outage", target=str(central))
        f.done_at_s = f.at_s
        self.outage_fault = f
        outage = StorageOutage(central, self._link_marker())
        try:
            if self._remote_central():
                f.details = "not injected: central storage is XRootD, not this challenge's to cut"
                return
            if not start_outage(outage, f):
                return
            f.extra["down_at_s"] = round(self.elapsed(), 2)
            while not self.shared.emulator_done and not self.stop.wait(0.5):
                pass
            self.stop.wait(self.s.outage_after_s)
        finally:
            if f.injected and (why := outage.end()) is not None:
                f.details += f"; NOT undone: {why}"
            f.extra["up_at_s"] = round(self.elapsed(), 2)
            f.ended_at_s = f.extra["up_at_s"]
            f.duration_s = round(f.ended_at_s - (f.done_at_s or 0.0), 2)
            self.shared.faults.append(f)
            self.outage_over = True

    def _timed(self, stage: str, fn: Any, *args: Any) -> Any:
        t, c = time.monotonic(), time.thread_time()
        out = fn(*args)
        self.final.calls.setdefault(stage, []).append(time.monotonic() - t)
        self.final.cpu.setdefault(stage, []).append(time.thread_time() - c)
        return out

    def _run_stored(self, run: int) -> bool:
        """Every event file of ``run`` is built and on the farm storage, verified."""
        if not self.shared.emulator_done:
            return False
        mine = [w.path.name for w in self.shared.written if w.run == run]
        states = {r.name: r.state for r in self.bk.files(run=run)}
        return bool(mine) and all(states.get(n) in STORED_OR_LATER for n in mine)

    def _final_stage(self) -> None:
        """Per run, once all its files are stored: classify, filter, pack (once), then transfer
        and verify every few seconds until every final file is verified."""
        from farmtools.final import stages
        from farmtools.final.catalog import FinalCatalog, FinalState
        from farmtools.monitor.attention import BufferSampler, buffer_of
        from farmtools.monitor.queries import FarmQueries

        cat = FinalCatalog(self.bk)
        sampler = BufferSampler(self.cfg.monitor.rate_window_s)
        queries = FarmQueries(self.bk.engine)
        packed: set[int] = set()
        last_sample = 0.0
        while not self.stop.is_set():
            if time.monotonic() - last_sample >= 2.0:
                last_sample = time.monotonic()
                try:
                    b = buffer_of(self.cfg, queries, sampler)
                    self.final.buffer.append(
                        {
                            "at_s": round(self.elapsed(), 2),
                            "link_down": not self.outage_over,
                            "used_bytes": b.used_bytes,
                            "free_bytes": b.free_bytes,
                            "rate_bytes_s": b.rate_bytes_s,
                            "change_bytes_s": b.change_bytes_s,
                            "seconds_to_full": b.seconds_to_full,
                        }
                    )
                except Exception:
                    self.final.errors.append("buffer: " + traceback.format_exc(limit=2))
            for run in self.run_numbers:
                if run in self.final.done_runs:
                    continue
                try:
                    if run not in packed:
                        if not self._run_stored(run):
                            continue
                        self.final.stored_at.setdefault(run, self.elapsed())
                        self._timed("classify", stages.classify_run, self.cfg, self.bk, run)
                        self._timed("filter", stages.filter_run, self.cfg, self.bk, run)
                        finals = self._timed("format", stages.pack_run, self.cfg, self.bk, run)
                        self.final.bytes["format"] = self.final.bytes.get("format", 0) + sum(
                            f.size for f in finals
                        )
                        packed.add(run)
                    sent = self._timed("transfer", stages.transfer_run, self.cfg, self.bk, run)
                    self.final.bytes["transfer"] = self.final.bytes.get("transfer", 0) + sum(
                        f.size for f in sent
                    )
                    self._timed("verify", stages.verify_run, self.cfg, self.bk, run)
                    finals_all = cat.finals(run)
                    if all(f.state == FinalState.VERIFIED for f in finals_all):
                        self.final.done_runs.add(run)
                        self.final.verified_at[run] = self.elapsed()
                except Exception:
                    self.final.errors.append(f"run {run}: " + traceback.format_exc(limit=3))
            self.stop.wait(FINAL_POLL_S)

    def settled(self, snap: dict[str, Any]) -> bool:
        base = super().settled(snap)
        return base and self.outage_over and self.final.done_runs >= set(self.run_numbers)

    # -- report -----------------------------------------------------------------------------
    def gather(self, started: datetime, finished: datetime) -> dict[str, Any]:
        from farmtools.challenge.report666 import chain_report, judge

        report = super().gather(started, finished)
        report["chain_6x6x6"] = chain_report(self, report)
        return judge(report)

    def settings_json(self) -> dict[str, Any]:
        out = super().settings_json()
        out["beam"] = {k: v for k, v in vars(self.s.beam).items() if k != "gain_maps"}
        return out


def run_challenge_666(
    settings: Settings666, console: Console | None = None
) -> Any:  # ChallengeResult
    """Run one 6x6x6 data challenge; see :class:`Challenge666`."""
    return Challenge666(settings, console).run()


def settings_for(preset: Preset666, **kw: Any) -> Settings666:
    """The settings of ``preset`` with the command line's values (None: the preset's)."""
    base = Settings666(
        files=preset.files,
        events=preset.events,
        interval_s=preset.interval_s,
        beam=preset.beam,
        outage=preset.outage,
        preset=preset.name,
    )
    return replace(base, **{k: v for k, v in kw.items() if v is not None})
