"""``farmtools challenge run``: the whole chain driven by the emulator, to completion, then a report.

On the embedded default (no ``--config``) the challenge builds a farm of its own below ``--home``
(local storage, local batch, SQLite, a ``farm.toml`` rendered from the one template) and starts:

* the DAQ emulator (a thread: it writes ``run<N>-seq<M>.dat`` into ``daq.watch_dir`` at the
  requested interval, with the truth sidecars);
* the daemons as child processes (:mod:`.daemons`): ``farmtools ingest watch``,
  ``farmtools process run`` and ``farmtools monitor serve`` on loopback (a free port);
* the archive in a thread of this process, as the farm's timer would (``Archiver.run_ready``
  every few seconds, forced for the last partial archive once processing is over); the
  analyses are the processing daemon's (``[analysis] auto``), as on the farm, and run here in
  that thread only when a configuration switches them off there;
* with ``--chaos``, the fault injector (:mod:`.chaos`) in another thread.

It waits until every file reached a final state (analysed and archived; or failed / quarantined
with a reason), or until the timeout, or Ctrl-C; then stops everything (fault undone first,
daemons SIGTERM then SIGKILL, local jobs cancelled when interrupted) and writes the report
(JSON, text, HTML) below ``<home>/reports/``.  With ``--config`` naming a deployed farm
(XRootD, Slurm, PostgreSQL), ``--no-daemons`` uses the farm's own services instead of starting
them.

May import every stage (it sits on top of them).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from farmtools.bookkeeping import Bookkeeping, FileState
from farmtools.challenge.assemble import Observations, gather_report
from farmtools.challenge.chaos import Fault, StorageOutage, plan_faults
from farmtools.challenge.daemons import Daemon, farm_daemons, restart_crashed, wait_healthz
from farmtools.challenge.inject import FaultContext, run_faults
from farmtools.challenge.progress import Bars, past_reconstruction, snapshot
from farmtools.challenge.render import write_report
from farmtools.challenge.timers import FarmTimers
from farmtools.config import FarmConfig, load_config

#: States after which nothing more happens to a file by itself.
FINAL_BAD = frozenset({FileState.FAILED, FileState.QUARANTINED, FileState.IGNORED})


@dataclass
class ChallengeSettings:
    """Everything ``challenge run`` was asked for (recorded in the report).

    The defaults are a full-size challenge (50 files of 335 events, one every 10 s: the
    seed's cadence and full-size files); the demo and the tests pass their small values.
    """

    files: int = 50
    interval_s: float = 10.0
    events: int = 335
    compress: bool = False
    workers: int = 2
    run: int | None = None
    #: runs of ``files`` files each, one after the other, each ended by its end-of-run record
    runs: int = 1
    config: Path | None = None
    home: Path = Path("challenge-farm")
    chaos: bool = False
    chaos_seed: int = 1
    corrupt_files: int = 2
    seed: int = 2016
    lifetime_ms: float = 7.0
    gain: float = 20.0
    timeout_s: float | None = None
    monitor: bool = True
    archive: bool = True
    daemons: bool = True
    preset: str | None = None
    progress: bool = True

    def default_timeout(self) -> float:
        """Data taking plus a generous allowance for the reconstruction of the last files."""
        files = self.files * self.runs
        return files * self.interval_s + 180.0 + 2.0 * files * self.events / self.workers


@dataclass
class ChallengeResult:
    """What the command prints at the end."""

    report: dict[str, Any]
    json_path: Path
    html_path: Path
    text_path: Path
    monitor_url: str | None
    config_path: Path | None


# --- what is installed ---------------------------------------------------------------------------
def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def embedded_config(
    settings: ChallengeSettings, program: str, port: int, extra: dict[str, Any] | None = None
) -> tuple[FarmConfig, Path]:
    """Write ``<home>/farm.toml`` for a one-machine farm tuned for a challenge, and load it
    (``extra``: more template overrides, e.g. the 6x6x6 challenge's detector and builder)."""
    from farmtools.deploy.farmtoml import render_farm_toml

    home = settings.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, Any] = {
        "farm.home": ".",
        "batch.backend": "local",
        "batch.slots": settings.workers,
        "storage.backend": "local",
        # an outage of a few seconds must delay files, not quarantine them
        "storage.retries": 8,
        "storage.backoff_s": 0.5,
        "storage.backoff_max_s": 4.0,
        "ingest.settle_s": 2.0,
        "processing.program": program,
        "processing.cooloff_s": 2.0,
        "processing.poll_s": 0.5,
        "processing.claim_s": 0.2,
        "processing.batch_retry_s": 2.0,
        "archive.target_size": "2GB",
        "archive.min_size": "1MB",
        "archive.destination": "central",
        "monitor.host": "127.0.0.1",
        "monitor.port": port,
        "monitor.poll_s": 2.0,
        **(extra or {}),
    }
    path = home / "farm.toml"
    path.write_text(render_farm_toml(overrides, rendered_by="farmtools challenge run"))
    return load_config(path), path


# --- the orchestrator ----------------------------------------------------------------------------
@dataclass
class _Shared:
    """State the threads share with the main loop (each field written by one thread)."""

    written: list[Any] = field(default_factory=list)  # EmulatedFile
    emulator_done: bool = False
    emulator_error: str | None = None
    chaos_done: bool = True
    faults: list[Fault] = field(default_factory=list)
    bad_files: dict[str, str] = field(default_factory=dict)
    stage_errors: list[str] = field(default_factory=list)
    crashes: list[dict[str, Any]] = field(default_factory=list)


class Challenge:
    """One data challenge; see the module docstring.  ``run()`` does everything.

    The parts live beside it: the daemons (:mod:`.daemons`), the faults (:mod:`.inject`),
    the archive and analyses (:mod:`.timers`), the progress (:mod:`.progress`), the report
    (:mod:`.assemble` from :meth:`observations`, :mod:`.render`).
    """

    def __init__(self, settings: ChallengeSettings, console: Console | None = None) -> None:
        self.s = settings
        self.console = console or Console()
        self.stop = threading.Event()
        self.shared = _Shared()
        self.daemons: dict[str, Daemon] = {}
        self.threads: list[threading.Thread] = []
        self.t0 = 0.0
        self.monitor_url: str | None = None
        self.interrupted = False
        self.timed_out = False
        self._lock = threading.Lock()

    # -- setup ------------------------------------------------------------------------------
    def prepare(self) -> None:
        port = free_port()
        if self.s.config is None:
            self.cfg, self.config_path = embedded_config(self.s, "reco", port, self.overrides())
            self.embedded = True
        else:
            self.cfg, self.config_path = load_config(self.s.config), self.s.config.resolve()
            self.embedded = False
        self.bk = Bookkeeping.from_config(self.cfg)
        self.watch_dir = self.cfg.path(self.cfg.daq.watch_dir)
        self.watch_dir.mkdir(parents=True, exist_ok=True)
        self.input_dir = self.cfg.path(self.cfg.storage.input)
        if self.cfg.storage.backend == "local":
            self.input_dir.mkdir(parents=True, exist_ok=True)
            left = StorageOutage.leftover(self.input_dir, self._outage_marker())
            if left is not None:
                self.console.print(f"[yellow]{left}[/yellow]")
        self.report_dir = self.cfg.home / "reports"
        self.report_dir.mkdir(parents=True, exist_ok=True)
        self.run_number = self.s.run if self.s.run is not None else self._next_run()
        self.run_numbers = [self.run_number + k for k in range(self.s.runs)]
        self.log_dir = self.cfg.home / "challenge" / f"run{self.run_number}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.group_size = self.cfg.analysis.group_size
        self.program = self.cfg.processing.program
        self.timers = FarmTimers(
            self.cfg, self.bk, self.run_numbers, self.s.archive, self.shared.stage_errors
        )

    def overrides(self) -> dict[str, Any]:
        """What this kind of challenge changes in the embedded ``farm.toml`` (none here)."""
        return {}

    def _next_run(self) -> int:
        from farmtools.emulator.daq import run_files

        highest = max((r.run for r in self.bk.runs()), default=0)
        run = max(1, highest + 1)
        while any(run_files(self.watch_dir, r) for r in range(run, run + self.s.runs)):
            run += 1
        return run

    # -- daemons ----------------------------------------------------------------------------
    def start_daemons(self) -> None:
        if not self.s.daemons:
            return
        at = (self.cfg.monitor.host, self.cfg.monitor.port) if self.s.monitor else None
        self.daemons.update(farm_daemons(self.config_path, self.log_dir, at))
        if at is not None:
            self.monitor_url = f"http://{at[0]}:{at[1]}"
        for d in self.daemons.values():
            d.start()
        if "monitor" in self.daemons and self.monitor_url is not None:
            why = wait_healthz(self.daemons["monitor"], self.monitor_url)
            if why is not None:
                self.shared.stage_errors.append(why)

    def _watch_daemons(self) -> None:
        """Restart a daemon that died by itself (a crash is a finding: the report lists it)."""
        with self._lock:  # the chaos thread kills and restarts under the same lock
            self.shared.crashes += restart_crashed(self.daemons.values(), self.elapsed())

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    # -- threads ----------------------------------------------------------------------------
    def _emulate(self) -> None:
        """The runs one after the other; each ends with its end-of-run record, as the DAQ's."""
        from farmtools.emulator.daq import RunPlan, emulate_run, end_run
        from farmtools.emulator.settings import EmulatorSettings

        try:
            for run in self.run_numbers:
                emulate_run(
                    self.watch_dir,
                    EmulatorSettings(
                        lifetime_ms=self.s.lifetime_ms, gain=self.s.gain, seed=self.s.seed
                    ),
                    RunPlan(
                        run=run,
                        files=self.s.files,
                        events_per_file=self.s.events,
                        interval_s=self.s.interval_s,
                        compress=self.s.compress,
                    ),
                    geometry=self.cfg.geometry,
                    on_file=self.shared.written.append,
                    should_stop=self.stop.is_set,
                )
                if self.stop.is_set():
                    break
                end_run(self.watch_dir, run, geometry=self.cfg.geometry)
        except Exception as exc:
            self.shared.emulator_error = f"{type(exc).__name__}: {exc}"
        finally:
            self.shared.emulator_done = True

    def _outage_marker(self) -> Path:
        """Where a storage outage notes its mount (see :class:`~.chaos.StorageOutage`)."""
        return self.cfg.home / "challenge" / "storage-outage.mounted"

    def _chaos(self, faults: list[Fault]) -> None:
        ctx = FaultContext(
            cfg=self.cfg,
            stop=self.stop,
            elapsed=self.elapsed,
            daemons=self.daemons,
            lock=self._lock,
            input_dir=self.input_dir,
            outage_marker=self._outage_marker(),
            watch_dir=self.watch_dir,
            written=self.shared.written,
            bad_files=self.shared.bad_files,
            done=self.shared.faults,
            run_number=self.run_number,
            files=self.s.files,
            seed=self.s.chaos_seed,
        )
        try:
            run_faults(ctx, faults)
        finally:
            self.shared.chaos_done = True

    # -- progress ---------------------------------------------------------------------------
    def names(self) -> tuple[list[str], list[str]]:
        good = [w.path.name for w in self.shared.written]
        return good, list(self.shared.bad_files)

    def snapshot(self) -> dict[str, Any]:
        """Files of this challenge per state, and per story stage (:func:`~.progress.snapshot`)."""
        return snapshot(self.bk, self.run_numbers, *self.names())

    def settled(self, snap: dict[str, Any]) -> bool:
        """True when nothing more will happen by itself (see the module docstring)."""
        if not (self.shared.emulator_done and self.shared.chaos_done):
            return False
        self.timers.processing_done = past_reconstruction(snap)
        if not self.timers.processing_done:
            return False
        return self.timers.analysis_settled and self.timers.archive_settled

    def run(self) -> ChallengeResult:
        """Set up, run to completion (or timeout / Ctrl-C), stop, report."""
        self.prepare()
        started = datetime.now(UTC)
        self.t0 = time.monotonic()
        timeout = self.s.timeout_s or self.s.default_timeout()
        self._banner()
        with interrupts_stop():
            try:
                self.start_daemons()
                self._spawn(self._emulate, "emulator")
                if self.s.chaos:
                    faults = plan_faults(
                        self.s.chaos_seed,
                        self.s.files * self.s.interval_s,
                        list(self.daemons),
                        corrupt=self.s.corrupt_files,
                        storage=self.cfg.storage.backend == "local",
                        batch=self.cfg.batch.backend == "local",
                    )
                    self.shared.chaos_done = False
                    self._spawn(lambda: self._chaos(faults), "chaos")
                self._spawn(lambda: self.timers.loop(self.stop), "stages")
                self._loop(timeout)
            except KeyboardInterrupt:
                self.interrupted = True
                self.console.print("[yellow]interrupted: stopping everything cleanly[/yellow]")
            finally:
                self.shutdown()
        return self.finish(started)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=target, name=f"challenge-{name}", daemon=True)
        t.start()
        self.threads.append(t)

    def _banner(self) -> None:
        self.console.print(
            banner(self.s, self.run_numbers)
            + f"\n  farm: {self.cfg.home} (config {self.config_path}); jobs run "
            f"program={self.program}"
        )

    def _loop(self, timeout: float) -> None:
        total = self.s.files * self.s.runs
        with Bars(self.console, total, enabled=self.s.progress) as bars:
            while True:
                self._watch_daemons()
                snap = self.snapshot()
                bars.show(snap, self.shared.faults)
                if self.settled(snap):
                    return
                if self.elapsed() > timeout:
                    self.timed_out = True
                    bars.print(f"[red]timeout after {timeout:.0f} s[/red]")
                    return
                time.sleep(0.5)

    # -- stop -------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop threads (faults undone), then the daemons; cancel local jobs if interrupted."""
        old = signal.signal(signal.SIGINT, signal.SIG_IGN) if _main_thread() else None
        try:
            self.stop.set()
            for t in self.threads:
                t.join(timeout=60)
            if self.interrupted or self.timed_out:
                cancel_local_jobs(self.cfg, self.bk)
            # the chain's head first (a subclass's own daemons, e.g. an event builder, after)
            first = ("processing", "ingest", "monitor")
            for name in [*first, *(n for n in self.daemons if n not in first)]:
                d = self.daemons.get(name)
                if d is not None:
                    d.stop()
        finally:
            if old is not None:
                signal.signal(signal.SIGINT, old)

    # -- report -----------------------------------------------------------------------------
    def finish(self, started: datetime) -> ChallengeResult:
        report = self.gather(started, datetime.now(UTC))
        paths = write_report(report, self.report_dir / f"challenge-run{self.run_number}")
        json_path, text_path, html_path = paths
        return ChallengeResult(
            report, json_path, html_path, text_path, self.monitor_url, self.config_path
        )

    def gather(self, started: datetime, finished: datetime) -> dict[str, Any]:
        """The report dictionary (:func:`~.assemble.gather_report`; a subclass adds its part)."""
        return gather_report(self.cfg, self.bk, self.observations(), started, finished)

    def observations(self) -> Observations:
        """What this challenge saw, as plain data for its report."""
        return Observations(
            settings=self.settings_json(),
            run_numbers=list(self.run_numbers),
            events_per_file=self.s.events,
            interval_s=self.s.interval_s,
            group_size=self.group_size,
            archive=self.s.archive,
            written=list(self.shared.written),
            bad_files=list(self.shared.bad_files),
            faults=[f.to_json() for f in self.shared.faults],
            crashes=list(self.shared.crashes),
            daemons={name: d.stats() for name, d in self.daemons.items()},
            analysis_outputs=list(self.timers.analysis_outputs),
            archive_reports=list(self.timers.archive_reports),
            emulator_error=self.shared.emulator_error,
            stage_errors=list(self.shared.stage_errors),
            monitor_url=self.monitor_url,
            interrupted=self.interrupted,
            timed_out=self.timed_out,
        )

    def settings_json(self) -> dict[str, Any]:
        out = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self.s).items()}
        out.update(
            run=self.run_number,
            program=self.program,
            config=str(self.config_path),
            home=str(self.cfg.home),
            storage=self.cfg.storage.backend,
            batch=self.cfg.batch.backend,
            database=self.bk.dialect,
            group_size=self.group_size,
            run_numbers=self.run_numbers,
            interrupted=self.interrupted,
            timed_out=self.timed_out,
        )
        return out


def banner(s: ChallengeSettings, run_numbers: list[int]) -> str:
    """The challenge's first line: its runs, files, cadence and workers."""
    return (
        f"[bold]data challenge[/bold] run {run_numbers[0]}"
        + (f"-{run_numbers[-1]}: {s.runs} runs of" if s.runs > 1 else ":")
        + f" {s.files} files x {s.events} "
        f"events, one every {s.interval_s:g} s, {'compressed' if s.compress else 'uncompressed'}"
        f", {s.workers} workers{', CHAOS' if s.chaos else ''}"
    )


def cancel_local_jobs(cfg: FarmConfig, bk: Bookkeeping) -> None:
    """Cancel the active jobs of a local batch pool (a challenge that did not run through)."""
    if cfg.batch.backend != "local":
        return
    from farmtools.batch.local import LocalBatch
    from farmtools.processing.jobs import JobStore

    batch = LocalBatch(cfg.path(cfg.batch.local_dir), cfg.batch.slots)
    for job in JobStore(bk).active():
        if job.batch_id:
            with contextlib.suppress(Exception):
                batch.cancel(job.batch_id)


@contextlib.contextmanager
def interrupts_stop() -> Iterator[None]:
    """While inside: SIGTERM (a CI timeout, systemd) stops as cleanly as Ctrl-C, and Ctrl-C
    works even when the shell started us in the background with SIGINT ignored (both raise
    KeyboardInterrupt; main thread only, the handlers restored after)."""
    if not _main_thread():
        yield
        return
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)


def _raise_interrupt(_sig: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def run_challenge(settings: ChallengeSettings, console: Console | None = None) -> ChallengeResult:
    """Run one data challenge; see :class:`Challenge`."""
    return Challenge(settings, console).run()
