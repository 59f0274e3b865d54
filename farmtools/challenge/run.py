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
import json
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from farmtools.analysis.pipeline import run_ready_analyses
from farmtools.archive.service import Archiver
from farmtools.bookkeeping import Bookkeeping, Event, FileState
from farmtools.bookkeeping.states import BEFORE_RECO
from farmtools.challenge.chaos import (
    BatchPause,
    Fault,
    StorageOutage,
    drop_corrupt,
    plan_faults,
    start_outage,
)
from farmtools.challenge.daemons import Daemon, farmtools_argv
from farmtools.config import FarmConfig, load_config
from farmtools.processing.runclose import closing_pass

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
    processing_done: bool = False
    analysis_settled: bool = False
    archive_settled: bool = False
    analysis_outputs: list[Path] = field(default_factory=list)
    analysis_calls: list[float] = field(default_factory=list)
    stage_errors: list[str] = field(default_factory=list)
    crashes: list[dict[str, Any]] = field(default_factory=list)
    archive_reports: list[dict[str, Any]] = field(default_factory=list)


class Challenge:
    """One data challenge; see the module docstring.  ``run()`` does everything."""

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
        cfg = ["--config", str(self.config_path)]
        ft = farmtools_argv()
        self.daemons["ingest"] = Daemon("ingest", [*ft, "ingest", "watch", *cfg], self.log_dir)
        self.daemons["processing"] = Daemon(
            "processing", [*ft, "process", "run", *cfg], self.log_dir
        )
        if self.s.monitor:
            host, port = self.cfg.monitor.host, self.cfg.monitor.port
            self.daemons["monitor"] = Daemon(
                "monitor",
                [*ft, "monitor", "serve", "--host", host, "--port", str(port), *cfg],
                self.log_dir,
            )
            self.monitor_url = f"http://{host}:{port}"
        for d in self.daemons.values():
            d.start()
        if "monitor" in self.daemons:
            self._wait_monitor()

    def _wait_monitor(self, timeout: float = 30.0) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.daemons["monitor"].alive:
                break
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{self.monitor_url}/healthz", timeout=1).close()  # noqa: S310
                return
            time.sleep(0.2)
        self.shared.stage_errors.append(
            "monitor did not answer /healthz: " + self.daemons["monitor"].tail(5)
        )

    def _watch_daemons(self) -> None:
        """Restart a daemon that died by itself (a crash is a finding: the report lists it)."""
        with self._lock:  # the chaos thread kills and restarts under the same lock
            for d in self.daemons.values():
                d.sample()
                code = d.crashed()
                if code is not None:
                    self.shared.crashes.append(
                        {"daemon": d.name, "exit": code, "at_s": self.elapsed(), "log": d.tail(15)}
                    )
                    d.start()

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
        try:
            for k, fault in enumerate(faults):
                if self.stop.wait(max(0.0, fault.at_s - self.elapsed())):
                    break
                self._inject(fault, k)
                self.shared.faults.append(fault)
        finally:
            self.shared.chaos_done = True

    def _inject(self, f: Fault, k: int) -> None:
        import random

        rng = random.Random(self.s.chaos_seed * 1000 + k)
        f.done_at_s = round(self.elapsed(), 2)
        try:
            if f.kind == "kill":
                d = self.daemons.get(f.target)
                if d is None or not d.alive:
                    f.details = f"{f.target} is not running here: nothing to kill"
                    return
                with self._lock:
                    pid = d.pid
                    d.kill()
                pause = round(rng.uniform(0.5, 3.0), 2)
                f.injected = True
                f.duration_s = pause
                if self.stop.wait(pause):
                    f.details = f"SIGKILL pid {pid}; not restarted: the challenge was stopping"
                    return
                with self._lock:
                    d.start()
                f.details = f"SIGKILL pid {pid}; restarted after {pause} s as pid {d.pid}"
            elif f.kind == "storage_outage":
                if self.cfg.storage.backend != "local":
                    f.details = "storage is XRootD: not this challenge's to stop"
                    return
                outage = StorageOutage(self.input_dir, self._outage_marker())
                if not start_outage(outage, f):
                    return
                f.extra["read_only_at_s"] = round(self.elapsed(), 2)
                try:
                    self.stop.wait(f.duration_s)
                finally:
                    if (why := outage.end()) is not None:
                        f.details += f"; NOT undone: {why}"
                    f.extra["writable_at_s"] = round(self.elapsed(), 2)
            elif f.kind == "batch_pause":
                if self.cfg.batch.backend != "local":
                    f.details = f"batch is {self.cfg.batch.backend}: not this challenge's to stop"
                    return
                pool = BatchPause(self.cfg.path(self.cfg.batch.local_dir))
                for _ in range(50):  # up to 10 s for a running job, so that there is one to stop
                    if pool.running_groups():
                        break
                    if self.stop.wait(0.2):
                        return
                try:
                    f.details = pool.start()
                except RuntimeError as exc:
                    f.details = f"not injected: {exc}"
                    return
                f.injected = True
                # the effect, for the report: which running jobs were stopped, and when exactly
                # (done_at_s is when the fault was taken up: it may wait for a running job)
                f.extra.update(
                    stopped_jobs=list(pool.stopped_jobs), paused_at_s=round(self.elapsed(), 2)
                )
                try:
                    self.stop.wait(f.duration_s)
                finally:
                    pool.end()
                    f.extra["resumed_at_s"] = round(self.elapsed(), 2)
            elif f.kind == "corrupt_file":
                seq = self.s.files + sum(1 for x in self.shared.faults if x.kind == "corrupt_file")
                name = f"run{self.run_number}-seq{seq}.dat"
                while f.target == "truncated" and not self.shared.written:
                    if self.stop.wait(0.2):  # a truncated copy needs a good file first
                        return
                good = self.shared.written[0].path if self.shared.written else None
                what = drop_corrupt(self.watch_dir / name, f.target, good, seed=k)
                self.shared.bad_files[name] = f.target
                f.injected = True
                f.target = f"{name} ({f.target})"
                f.details = what
        except Exception as exc:
            f.details = f"injection failed: {type(exc).__name__}: {exc}"
        finally:
            f.ended_at_s = round(self.elapsed(), 2)

    def _pending_analysis(self) -> bool:
        """Whether a complete group still waits for the daemon's analysis pass, or a run for
        its end-of-run step (closed, remainder analysed, summary written, archives planned)."""
        for run in self.run_numbers:
            waiting = len(self.bk.files(run=run, state=FileState.RECONSTRUCTED))
            if waiting >= self.group_size:
                return True
        return not self._runs_finished()

    def _runs_finished(self) -> bool:
        from farmtools.bookkeeping.ledger import FINISHED, run_ledger

        for run in self.run_numbers:
            led = run_ledger(self.bk, run)
            if led is None or led.status != FINISHED:
                return False
        return True

    def _stages(self) -> None:
        """Archives every few seconds (and analyses, if the daemon does not), as timers would."""
        in_process = not self.cfg.analysis.auto  # else `process run` analyses, as on the farm
        archiver = Archiver(self.cfg, self.bk) if self.s.archive else None
        last_archive = 0.0
        while not self.stop.is_set():
            processing_done = self.shared.processing_done
            new: list[Path] = []
            if in_process:
                t = time.monotonic()
                try:
                    new = run_ready_analyses(self.cfg, self.bk)
                    report = closing_pass(self.cfg, self.bk)
                    new += report.partial + report.summaries
                except Exception:
                    self.shared.stage_errors.append("analysis: " + traceback.format_exc(limit=3))
                if new:
                    self.shared.analysis_outputs.extend(new)
                    self.shared.analysis_calls.append(time.monotonic() - t)
            if processing_done and not new and not self._pending_analysis():
                self.shared.analysis_settled = True
            if archiver is not None and (
                time.monotonic() - last_archive > 5.0
                or (self.shared.analysis_settled and not self.shared.archive_settled)
            ):
                force = self.shared.analysis_settled
                try:
                    rep = archiver.run_ready(force=force)
                    self.shared.archive_reports.append(
                        {k: {"done": v.done, "failed": v.failed} for k, v in rep.items()}
                    )
                except Exception:
                    self.shared.stage_errors.append("archive: " + traceback.format_exc(limit=3))
                last_archive = time.monotonic()
                if force:
                    self.shared.archive_settled = True
            elif archiver is None and self.shared.analysis_settled:
                self.shared.archive_settled = True
            self.stop.wait(1.0)

    # -- progress ---------------------------------------------------------------------------
    def names(self) -> tuple[list[str], list[str]]:
        good = [w.path.name for w in self.shared.written]
        return good, list(self.shared.bad_files)

    def snapshot(self) -> dict[str, Any]:
        """Files of this run per state, and per story stage (one query each)."""
        from sqlalchemy import func, select

        from farmtools.bookkeeping.schema import events, files

        good, bad = self.names()
        goodset = set(good)
        states: dict[str, str] = {}
        for run in self.run_numbers:
            for rec in self.bk.files(run=run):
                states[rec.name] = str(rec.state)
        q = (
            select(events.c.event, func.count(func.distinct(events.c.file_id)))
            .join(files, files.c.id == events.c.file_id)
            .where(
                files.c.run.in_(self.run_numbers),
                files.c.name.in_(good),
                events.c.event.in_(
                    [
                        Event.VERIFIED,
                        Event.ALREADY_STORED,
                        Event.RECONSTRUCTED,
                        Event.ANALYSED,
                        "archived",
                    ]
                ),
            )
            .group_by(events.c.event)
        )
        with self.bk.engine.connect() as conn:
            per_event = {e: int(n) for e, n in conn.execute(q)}
        archived_q = (
            select(files.c.name)
            .join(events, files.c.id == events.c.file_id)
            .where(files.c.run.in_(self.run_numbers), events.c.event == "archived")
            .distinct()
        )
        with self.bk.engine.connect() as conn:
            archived = {r[0] for r in conn.execute(archived_q)} & goodset
        return {
            "states": states,
            "good": good,
            "bad": bad,
            "stored": per_event.get(Event.VERIFIED, 0),
            "reconstructed": per_event.get(Event.RECONSTRUCTED, 0),
            "analysed": per_event.get(Event.ANALYSED, 0),
            "archived": archived,
        }

    def settled(self, snap: dict[str, Any]) -> bool:
        """True when nothing more will happen by itself (see the module docstring)."""
        if not (self.shared.emulator_done and self.shared.chaos_done):
            return False
        states = snap["states"]
        names = snap["good"] + snap["bad"]
        if any(states.get(n) is None or states[n] in BEFORE_RECO for n in names):
            self.shared.processing_done = False
            return False
        self.shared.processing_done = True
        return self.shared.analysis_settled and self.shared.archive_settled

    def run(self) -> ChallengeResult:
        """Set up, run to completion (or timeout / Ctrl-C), stop, report."""
        self.prepare()
        started = datetime.now(UTC)
        self.t0 = time.monotonic()
        timeout = self.s.timeout_s or self.s.default_timeout()
        self._banner()
        old_term = old_int = None
        if _main_thread():
            # SIGTERM (a CI timeout, systemd) stops as cleanly as Ctrl-C; and Ctrl-C works even
            # when the shell started us in the background with SIGINT ignored
            old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
            old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
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
            self._spawn(self._stages, "stages")
            self._loop(timeout)
        except KeyboardInterrupt:
            self.interrupted = True
            self.console.print("[yellow]interrupted: stopping everything cleanly[/yellow]")
        finally:
            self.shutdown()
            if old_term is not None:
                signal.signal(signal.SIGTERM, old_term)
            if old_int is not None:
                signal.signal(signal.SIGINT, old_int)
        return self.finish(started)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=target, name=f"challenge-{name}", daemon=True)
        t.start()
        self.threads.append(t)

    def _banner(self) -> None:
        s = self.s
        self.console.print(
            f"[bold]data challenge[/bold] run {self.run_number}"
            + (f"-{self.run_numbers[-1]}: {s.runs} runs of" if s.runs > 1 else ":")
            + f" {s.files} files x {s.events} "
            f"events, one every {s.interval_s:g} s, {'compressed' if s.compress else 'uncompressed'}"
            f", {s.workers} workers{', CHAOS' if s.chaos else ''}\n"
            f"  farm: {self.cfg.home} (config {self.config_path}); jobs run program={self.program}"
        )

    def _loop(self, timeout: float) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        columns = (
            TextColumn("{task.description:<14}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.console, disable=not self.s.progress) as bar:
            tasks = {
                k: bar.add_task(k, total=self.s.files * self.s.runs)
                for k in ("written", "stored", "reconstructed", "analysed", "archived")
            }
            reported_faults = 0
            while True:
                self._watch_daemons()
                snap = self.snapshot()
                bar.update(tasks["written"], completed=len(snap["good"]))
                for k in ("stored", "reconstructed", "analysed"):
                    bar.update(tasks[k], completed=snap[k])
                bar.update(tasks["archived"], completed=len(snap["archived"]))
                for f in self.shared.faults[reported_faults:]:
                    bar.console.print(
                        f"  [magenta]fault[/magenta] {f.done_at_s:.1f} s {f.kind} {f.target}: "
                        f"{f.details}"
                    )
                reported_faults = len(self.shared.faults)
                if self.settled(snap):
                    return
                if self.elapsed() > timeout:
                    self.timed_out = True
                    bar.console.print(f"[red]timeout after {timeout:.0f} s[/red]")
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
                self._cancel_jobs()
            # the chain's head first (a subclass's own daemons, e.g. an event builder, after)
            first = ("processing", "ingest", "monitor")
            for name in [*first, *(n for n in self.daemons if n not in first)]:
                d = self.daemons.get(name)
                if d is not None:
                    d.stop()
        finally:
            if old is not None:
                signal.signal(signal.SIGINT, old)

    def _cancel_jobs(self) -> None:
        if self.cfg.batch.backend != "local":
            return
        from farmtools.batch.local import LocalBatch
        from farmtools.processing.jobs import JobStore

        batch = LocalBatch(self.cfg.path(self.cfg.batch.local_dir), self.cfg.batch.slots)
        for job in JobStore(self.bk).active():
            if job.batch_id:
                with contextlib.suppress(Exception):
                    batch.cancel(job.batch_id)

    # -- report -----------------------------------------------------------------------------
    def finish(self, started: datetime) -> ChallengeResult:
        from farmtools.challenge.report import render_html, render_text

        finished = datetime.now(UTC)
        report = self.gather(started, finished)
        stem = self.report_dir / f"challenge-run{self.run_number}"
        json_path = stem.with_suffix(".json")
        json_path.write_text(json.dumps(report, indent=1, default=str))
        text_path = stem.with_suffix(".txt")
        text = render_text(report)
        text_path.write_text(text + "\n")
        html_path = stem.with_suffix(".html")
        html_path.write_text(render_html(report))
        latest = self.report_dir / "latest.html"
        with contextlib.suppress(OSError):
            latest.unlink()
        with contextlib.suppress(OSError):
            latest.symlink_to(html_path.name)
        return ChallengeResult(
            report, json_path, html_path, text_path, self.monitor_url, self.config_path
        )

    def gather(self, started: datetime, finished: datetime) -> dict[str, Any]:
        """The report dictionary (:func:`~.gather.gather_report`; a subclass adds its part)."""
        from farmtools.challenge.gather import gather_report

        return gather_report(self, started, finished)

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


def _raise_interrupt(_sig: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def run_challenge(settings: ChallengeSettings, console: Console | None = None) -> ChallengeResult:
    """Run one data challenge; see :class:`Challenge`."""
    return Challenge(settings, console).run()
