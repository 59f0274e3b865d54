"""The processing manager: stored raw files -> reconstruction jobs on the batch system -> results.

Owns :class:`Manager`, the loop behind ``farmtools process run`` (daemon) and ``process once``
(one pass, for cron).  One pass:

1. **claim** stored files (``stored -> queued``: a file is taken the moment ingest verified it,
   not at the next cron tick) and give each a ``new`` job row.  The daemon checks every
   ``processing.claim_s`` whether the database changed (:mod:`farmtools.bookkeeping.changes`,
   no query) and claims only then, or at the ``processing.rescan_s`` fallback;
2. **submit** due jobs: render the script from ``templates/job.sh.j2``, archive it under
   ``processing/scripts/run<N>/``, submit (``queued -> submitted``).  A batch system that does
   not answer leaves the job ``new``: it is submitted when the system is back, nothing is lost;
3. **poll** active jobs (every ``processing.poll_s``, only while some are in flight): ``submitted -> running`` when it starts;
   when it ends, read the accounting, write the seed job log under ``all_logs/batch/run<N>/``,
   classify (:mod:`farmtools.processing.failures`), then ``-> reconstructed``, or a new try
   after the cool-off (more memory / walltime when that was the cause), or ``-> failed`` with an
   alarm and a notification (:mod:`farmtools.notify`);
4. **analyse** (``[analysis] auto``, on by default): every complete group of reconstructed files
   of a run is analysed (:func:`farmtools.analysis.pipeline.run_ready_analyses`), results to the
   summary directory the monitor reads and to the ``analyses`` table.  The daemon does this in a
   child process (:mod:`farmtools.processing.analyser`) driven by a thread of its own, woken
   when a job succeeded (and every :data:`ANALYSIS_RESCAN_S`), so that a minute of fits never
   delays the next submission and their CPU is not the manager's; ``process once`` does it at
   the end of its pass, in-process.  The same pass closes and finishes runs
   (:mod:`farmtools.processing.runclose`: end of run, remainder groups, run summaries, archive
   plans).  An analysis error is logged and recorded by the pipeline, never fatal to the daemon.

Every transition goes into the file's story.  Errors about one file are recorded and never stop
the loop.  Imports the bookkeeping, the batch backends, notify, config and rawdata naming (and
the analysis pipeline lazily, when it runs: it loads uproot and the fitting libraries).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from farmtools.batch import (
    BatchSystem,
    BatchUnavailable,
    Ending,
    JobAccounting,
    JobSpec,
    JobStatus,
    SubmissionRefused,
    make_batch,
)
from farmtools.batch.base import parse_duration
from farmtools.bookkeeping import Bookkeeping, Event, FileRecord, FileState
from farmtools.bookkeeping.changes import ChangeWatch
from farmtools.bookkeeping.errors import database_unavailable, first_line
from farmtools.bookkeeping.heartbeat import Heartbeat
from farmtools.bookkeeping.schema import now
from farmtools.config import FarmConfig
from farmtools.faults import fault_point
from farmtools.job.recoclient import read_usage
from farmtools.notify.digest import Digest, tail_lines
from farmtools.processing import nodeworker
from farmtools.processing.analyser import AnalysisProcess, analyse_ready
from farmtools.processing.failures import Failure, classify, decide
from farmtools.processing.joblog import format_job_log, write_job_log
from farmtools.processing.jobs import ACTIVE, JobRecord, JobState, JobStore
from farmtools.processing.script import JobPaths, render_job_script
from farmtools.rawdata.naming import parse_raw_name

log = logging.getLogger("farmtools.processing")

#: how long a finished job may lack accounting (sacct lag, forgotten by qstat) before it is lost
ACCOUNTING_GRACE_S = 120.0

#: the daemon looks for complete groups at least this often, even when none of its own jobs
#: ended: files reconstructed before a restart or by another manager, groups an error left
ANALYSIS_RESCAN_S = 30.0


def with_worker_usage(acc: JobAccounting, usage: dict[str, Any] | None) -> JobAccounting:
    """The job's accounting with the node worker's figures of its reconstruction added.

    A job that handed its file to the node's reconstruction worker (see
    :mod:`farmtools.job.recoclient`) used little CPU itself: the batch system counts the
    client, the worker counts the child that did the work.  CPU adds up; the peak memory is
    the larger of the two (the failure classes read it: an out-of-memory stays one).
    """
    if not usage:
        return acc
    cpu = usage.get("cpu_s")
    rss = usage.get("max_rss_kb")
    return replace(
        acc,
        cpu_s=(acc.cpu_s or 0.0) + float(cpu) if cpu is not None else acc.cpu_s,
        max_rss_kb=max(acc.max_rss_kb or 0, int(rss)) if rss is not None else acc.max_rss_kb,
        extra={**acc.extra, "reco_worker": usage},
    )


class LocalJobError(OSError):
    """This machine could not prepare a job (write its script, create a log directory).

    Carries the path and the OS error: ``cannot write <path>: [Errno 28] No space left on device``.
    """

    def __init__(self, path: Path, exc: OSError) -> None:
        super().__init__(exc.errno, f"cannot write {path}: {exc.strerror or exc}")
        self.path = path

    def __str__(self) -> str:
        return f"cannot write {self.path}: [Errno {self.errno}] {self.strerror}"


@dataclass
class PassSummary:
    """What one pass did (for ``process once`` and the benchmarks)."""

    claimed: int = 0
    submitted: int = 0
    started: int = 0
    succeeded: int = 0
    retried: int = 0
    failed: int = 0
    #: summary files written by the analyses of this pass (``process once`` only)
    analysed: int = 0
    batch_down: bool = False
    errors: list[str] = field(default_factory=list)


class Manager:
    """The processing manager of the farm ``cfg`` (see the module docstring).

    >>> Manager(cfg).run_once()                      # doctest: +SKIP
    >>> stop = threading.Event(); Manager(cfg).run(stop)   # until stop.set()
    """

    def __init__(
        self,
        cfg: FarmConfig,
        *,
        batch: BatchSystem | None = None,
        bk: Bookkeeping | None = None,
        claim_limit: int = 100,
    ) -> None:
        self.cfg = cfg
        self.bk = bk or Bookkeeping.from_config(cfg)
        self.jobs = JobStore(self.bk)
        self.batch = batch or make_batch(cfg)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.claim_limit = claim_limit
        self._down_until = 0.0
        self._down_reported: set[int] = set()
        self._no_accounting_since: dict[int, float] = {}
        #: keys whose submission command this process saw end (none can land any more)
        self._settled: set[str] = set()
        self.default_walltime_s = round(parse_duration(cfg.batch.walltime))
        #: monotonic time at which the earliest ``new`` job is due (inf: none waits)
        self._next_due = 0.0
        #: whether jobs may be in flight on the batch system (False only after a poll saw none)
        self._in_flight = True
        #: the daemon's change watch (None in ``run_once``: every step runs unconditionally)
        self._watch: ChangeWatch | None = None
        self._next_claim = 0.0
        self._next_check = 0.0
        self._dirty = True
        #: mails about parked files: the first of a failure class at once, then a digest
        self.digest = Digest(cfg, "processing")

    # -- the loops ------------------------------------------------------------------------------
    def run_once(self) -> PassSummary:
        """One full pass: recover, claim, submit, poll (what cron's ``process once`` runs)."""
        s = PassSummary()
        self.recover()
        self.claim(s)
        self.submit_due(s)
        self.poll(s)
        s.analysed = len(self.analyse())
        self._notify_errors(self.digest.flush())  # `process once` sends the rest at its end
        return s

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set: every ``claim_s`` a pass that works only on a change.

        Each pass asks the bookkeeping's change watch (SQLite ``PRAGMA data_version``,
        PostgreSQL ``NOTIFY`` on ``stored``: microseconds, no table read) and runs the claim
        query only when the database changed, submissions only when a job is due (claimed now,
        or its cool-off / the batch system's back-off is over), and polls the batch system every
        ``poll_s`` only while jobs are in flight (or the database changed, in case another
        process submitted some).  At least every ``rescan_s`` it does all three anyway, the
        fallback for a change it was not told about.  Idle at the seed's 10 s cadence, this is
        what keeps the daemon's own CPU far under 1 % of a core, with the claim latency of a
        ``claim_s`` poll.  The analyses run in a second thread (see the module docstring),
        stopped with the loop.  With the local backend and ``processing.reco_worker_socket``
        the node's reconstruction worker runs beside the loop (:mod:`.nodeworker`).
        """
        self.recover()
        wake = threading.Event()
        wake.set()  # groups completed while no daemon was running
        analyser = None
        if self.cfg.analysis.auto:
            analyser = threading.Thread(
                target=self._analysis_loop, args=(stop, wake), name="analyses", daemon=True
            )
            analyser.start()
        self._watch = self.bk.watch(FileState.STORED)
        heartbeat = Heartbeat(self.bk, "processing", self.cfg.monitor.heartbeat_s)
        node = nodeworker.LocalRecoWorker(self.cfg) if nodeworker.wanted(self.cfg) else None
        next_poll = 0.0
        failures = 0
        try:
            while not stop.is_set():
                heartbeat.beat("failing passes" if failures else "")
                if node is not None:
                    node.keep_running()
                s = PassSummary()
                try:
                    self._claim_and_submit(s)
                    if time.monotonic() >= next_poll and (self._in_flight or self._dirty):
                        self._dirty = False
                        self.poll(s)
                        next_poll = time.monotonic() + self.cfg.processing.poll_s
                    failures = 0
                except Exception as exc:  # a database outage or a bug must not end the daemon
                    failures += 1
                    self._pass_failed(exc, failures)
                    self._next_claim = self._next_due = 0.0  # a full pass next time
                    self._dirty = True
                if s.succeeded:
                    wake.set()
                self._notify_errors(self.digest.flush())
                stop.wait(self._pause(failures))
        finally:
            if node is not None:
                node.stop()
            self._notify_errors(self.digest.flush(force=True))
            heartbeat.stop()
            wake.set()
            self._watch.close()
            self._watch = None
            if analyser is not None:
                analyser.join()

    def _claim_and_submit(self, s: PassSummary) -> None:
        """Claim and submit what the change watch (or the clock) says there may be.

        Without a watch (``run_once``) both steps run.  Called between the jobs of a long poll
        too (sacct per finished job on Slurm), so that a file verified meanwhile waits for one
        job's accounting at most, not for the whole poll.
        """
        t = time.monotonic()
        self._next_check = t + self.cfg.processing.claim_s
        changed = self._watch is None or self._watch.changed()
        self._dirty = self._dirty or changed
        if changed or t >= self._next_claim:
            self.claim(s)
            self._next_claim = t + self.cfg.processing.rescan_s
            self._dirty = True
        if changed or s.claimed or t >= self._next_due:
            self.submit_due(s)

    # -- analyse ----------------------------------------------------------------------------------
    def analyse(self, bk: Bookkeeping | None = None) -> list[Path]:
        """Analyse every complete group of reconstructed files (``[analysis] auto``); never raises.

        In this process (``process once``); the daemon uses its analysis child instead.
        """
        if not self.cfg.analysis.auto:
            return []
        return analyse_ready(self.cfg, bk or self.bk)

    def _analysis_loop(self, stop: threading.Event, wake: threading.Event) -> None:
        """The daemon's analysis thread: a pass when woken (a job succeeded) or every rescan.

        The pass itself runs in a child process (:class:`AnalysisProcess`: the fits are
        analysis work, accounted apart from the manager's); this thread only waits for it.
        With a job program that makes no ROOT output there is nothing to analyse
        (:func:`farmtools.analysis.pipeline.run_ready_analyses`), so no child is started: the
        end-of-run step (:mod:`farmtools.processing.runclose`) runs in this thread.
        """
        if self.cfg.processing.program != "reco":
            # no fits: only the end-of-run step, light enough for this thread
            while not stop.is_set():
                wake.wait(ANALYSIS_RESCAN_S)
                wake.clear()
                if not stop.is_set():
                    analyse_ready(self.cfg, self.bk)
            return
        worker = AnalysisProcess(self.cfg, self.bk.url)
        try:
            while not stop.is_set():
                wake.wait(ANALYSIS_RESCAN_S)
                wake.clear()
                if stop.is_set():
                    return
                worker.run_pass()
        finally:
            worker.close()

    def _pause(self, failures: int) -> float:
        """Seconds to the next pass: ``claim_s``, doubling per failed pass up to a minute.

        A database that is away is not hammered five times a second, and one that comes back
        is seen within a minute.
        """
        if failures == 0:
            return self.cfg.processing.claim_s
        return min(60.0, self.cfg.processing.claim_s * 2.0 ** min(failures, 16))

    def _pass_failed(self, exc: Exception, failures: int) -> None:
        """Say why a pass failed: one line while the database is away, a traceback for a bug
        (the first time; then one line per failure, so a long outage does not flood the log)."""
        wait = self._pause(failures)
        if database_unavailable(exc):
            log.warning(
                "processing waits for the bookkeeping database (pass %d failed, again in "
                "%.1f s): %s",
                failures,
                wait,
                first_line(exc),
            )
        elif failures == 1:
            log.exception("processing pass failed; trying again in %.1f s", wait)
        else:
            log.error("processing pass failed again (%d, again in %.1f s): %s", failures, wait, exc)

    # -- claim ------------------------------------------------------------------------------------
    def recover(self) -> None:
        """Finish what a manager killed between two writes left half done (at start).

        A job's row and its file's state are written in two transactions; a SIGKILL between
        them leaves them apart, and a file left so would wait for ever or be processed again:

        - a queued file without a job row gets one (story ``resumed``);
        - a queued file whose job is already on the batch system (killed after recording the
          batch id, before moving the file) moves to ``submitted``;
        - a file in flight whose last job is ``done`` is ``reconstructed``; one whose last job
          ``failed`` gets the failure decision (retry or park) it never got.
        """
        open_files = self.jobs.files_with_open_jobs()
        for f in self.bk.files(state=FileState.QUEUED):
            last = self._last_job(f.name)
            if f.name not in open_files and (last is None or last.state != JobState.DONE):
                self._new_job(f)
                self.bk.record(f.name, Event.RESUMED, {"by": self.worker, "what": "queued file"})
            elif last is not None and last.state in ACTIVE:
                self.bk.transition(
                    f.name,
                    FileState.QUEUED,
                    FileState.SUBMITTED,
                    Event.SUBMITTED,
                    {"job": last.id, "batch_id": last.batch_id, "resumed": True},
                )
        for state in (FileState.QUEUED, FileState.SUBMITTED, FileState.RUNNING):
            for f in self.bk.files(state=state):
                last = self._last_job(f.name)
                if f.name in open_files or last is None:
                    continue
                if last.state == JobState.DONE:
                    log.warning("%s: its job %s was done: reconstructed", f.name, last.id)
                    self._reconstructed(last)
                elif last.state == JobState.FAILED and last.failure and state != FileState.QUEUED:
                    log.warning("%s: its job %s had failed: deciding now", f.name, last.id)
                    failure = Failure(last.failure)
                    self._failed(
                        last,
                        failure,
                        last.reason or str(failure),
                        None,
                        PassSummary(),
                        state_done=True,
                    )

    def _last_job(self, file: str) -> JobRecord | None:
        jobs = self.jobs.of_file(file)
        return jobs[-1] if jobs else None

    def _reconstructed(self, job: JobRecord) -> bool:
        """Move ``job``'s file to ``reconstructed`` (its job succeeded)."""
        return self.bk.transition(
            job.file,
            [FileState.QUEUED, FileState.SUBMITTED, FileState.RUNNING],
            FileState.RECONSTRUCTED,
            Event.RECONSTRUCTED,
            {"job": job.id, "output": job.output},
            fields={"tries": job.try_number, "last_error": None},
        )

    def claim(self, s: PassSummary) -> None:
        while True:
            # 311 files and 6x6x6 event files (``<run>_<seq>_<id>.dat``) alike: ``farmtools
            # reco`` tells them apart (issue 15)
            got = self.bk.claim(
                FileState.STORED,
                FileState.QUEUED,
                limit=self.claim_limit,
                worker=self.worker,
                event=Event.QUEUED,
            )
            for f in got:
                self._new_job(f)
            s.claimed += len(got)
            if len(got) < self.claim_limit:
                return

    def _new_job(
        self,
        f: FileRecord,
        memory_mb: int | None = None,
        walltime_s: int | None = None,
        delay_s: float = 0.0,
    ) -> JobRecord:
        raw = parse_raw_name(f.name)
        name = raw.job_name if raw else f"reco_{f.name}"
        self._due_in(delay_s)
        return self.jobs.add(
            file=f.name,
            try_number=f.tries + 1,
            backend=self.batch.name,
            name=name,
            queue=self.cfg.batch.queue,
            memory_mb=memory_mb or self.cfg.batch.memory_mb,
            walltime_s=walltime_s or self.default_walltime_s,
            due=now() + timedelta(seconds=delay_s),
        )

    # -- submit -----------------------------------------------------------------------------------
    def _due_in(self, delay_s: float) -> None:
        """A job becomes due in ``delay_s``: the daemon's next submission pass is then at latest."""
        self._next_due = min(self._next_due, time.monotonic() + max(delay_s, 0.0))

    def submit_due(self, s: PassSummary) -> None:
        """Submit the ``new`` jobs that are due, then note when the next one will be."""
        if time.monotonic() < self._down_until:
            s.batch_down = True
            self._next_due = self._down_until
            return
        try:
            self._submit_due(s)
        finally:
            self._next_due = float("inf")
            upcoming = self.jobs.next_due()
            if upcoming is not None:
                self._due_in((upcoming - now()).total_seconds())
            if time.monotonic() < self._down_until:  # went down in this pass: ask it again then
                self._next_due = max(self._next_due, self._down_until)

    def _submit_due(self, s: PassSummary) -> None:
        for job in self.jobs.due():
            try:
                self._submit(job, s)
            except BatchUnavailable as exc:
                self._batch_down(job, str(exc), s)
                return
            except OSError as exc:
                # Writing the script or creating a log directory failed here (disk full, NFS
                # away, permissions): the batch system never saw the job.  Transient and not the
                # file's fault, so it costs no try; the job waits and goes through once fixed.
                self._local_error(job, exc, s)
            except Exception as exc:  # a bug or a database error: one file must not stop others
                log.exception("%s: cannot submit", job.file)
                reason = f"cannot prepare the job of {job.file}: {type(exc).__name__}: {exc}"
                s.errors.append(reason)
                self._finish_failed(job, Failure.LOCAL, reason, s)

    def _local_error(self, job: JobRecord, exc: OSError, s: PassSummary) -> None:
        """Record a local error preparing ``job`` (once per job and message) and retry it later."""
        reason = f"cannot prepare the job of {job.file}: {exc}"
        s.errors.append(reason)
        log.error("%s; trying again in %.0f s", reason, self.cfg.processing.batch_retry_s)
        if job.reason != reason:  # one story line per distinct error, not one per retry
            with contextlib.suppress(KeyError):
                self.bk.record(
                    job.file,
                    Event.ERROR,
                    {"failure": Failure.LOCAL, "message": reason, "job": job.id},
                )
        self.jobs.update(
            job.id,
            reason=reason,
            due=now() + timedelta(seconds=self.cfg.processing.batch_retry_s),
        )

    def _batch_down(self, job: JobRecord, message: str, s: PassSummary) -> None:
        s.batch_down = True
        self._down_until = time.monotonic() + self.cfg.processing.batch_retry_s
        if job.id not in self._down_reported:  # one story line per job, not one per retry
            self._down_reported.add(job.id)
            with contextlib.suppress(KeyError):
                self.bk.record(
                    job.file,
                    Event.ERROR,
                    {"failure": Failure.UNREACHABLE, "message": message, "job": job.id},
                )
        self.jobs.update(job.id, reason=f"batch system unreachable: {message}")
        log.warning("batch system unreachable (%s); submissions wait", message)

    @staticmethod
    def _write_script(paths: JobPaths, text: str) -> None:
        """Create the script and log directories and write the script; LocalJobError if not.

        The error names the path it is about: ``write()`` failing with ENOSPC or EIO carries
        no file name of its own, and "No space left on device" alone tells nobody which disk.
        """
        target = paths.script.parent
        try:
            target.mkdir(parents=True, exist_ok=True)
            target = paths.stdout.parent
            target.mkdir(parents=True, exist_ok=True)
            target = paths.script
            paths.script.write_text(text)
            paths.script.chmod(0o755)
        except OSError as exc:
            raise LocalJobError(target, exc) from exc

    def _submit(self, job: JobRecord, s: PassSummary) -> None:
        """Submit ``job`` exactly once, even if this process is killed half-way.

        The order is what makes it so: (1) the job's idempotency key and the time are recorded
        in its row (the intent), (2) the batch system is given the job, named by that key,
        (3) its batch id is recorded.  A manager killed between (1) and (3) leaves a ``new`` job
        with a key: the next pass asks the batch system for that key (:meth:`_reconcile`) and
        adopts the job it finds rather than submitting a second one.
        """
        f = self.bk.get(job.file)
        raw = parse_raw_name(job.file)
        if f is None or raw is None:
            self.jobs.set_state(
                job.id,
                [JobState.NEW],
                JobState.FAILED,
                failure=Failure.REFUSED,
                reason="not a raw file of the bookkeeping",
            )
            return
        paths = JobPaths.of(self.cfg, raw, job.id)
        if job.submit_key and self._reconcile(job, paths, s):
            return
        input_path = f.storage_path or str(
            self.cfg.path(self.cfg.storage.input) / raw.run_dir / f.name
        )
        text = render_job_script(
            self.cfg,
            raw,
            input_path,
            paths,
            backend=self.batch.name,
            try_number=job.try_number,
            memory_mb=job.memory_mb,
            walltime_s=job.walltime_s,
            generated=now(),
        )
        self._write_script(paths, text)
        key = f"{job.id}-{secrets.token_hex(4)}"
        self.jobs.update(
            job.id,
            script=str(paths.script),
            stdout=str(paths.stdout),
            stderr=str(paths.stderr),
            status_file=str(paths.status_file),
            output=str(paths.output),
            job_log=str(paths.job_log),
            submit_key=key,
            submit_intent=now(),
        )
        spec = self._spec(job, paths, key)
        try:
            batch_id = self.batch.submit(spec)
        except SubmissionRefused as exc:
            self._failed(job, Failure.REFUSED, str(exc), None, s)
            return
        finally:
            self._settled.add(key)  # no command of this process can still deliver it
        fault_point("submit-window")
        self._submitted(job, batch_id, paths, s)

    def _spec(self, job: JobRecord, paths: JobPaths, key: str) -> JobSpec:
        return JobSpec(
            name=paths.name,
            script=paths.script,
            stdout=paths.stdout,
            stderr=paths.stderr,
            queue=job.queue,
            walltime_s=job.walltime_s,
            memory_mb=job.memory_mb,
            workdir=paths.stdout.parent,
            key=key,
        )

    def _reconcile(self, job: JobRecord, paths: JobPaths, s: PassSummary) -> bool:
        """A ``new`` job with a recorded key: adopt its batch job if the batch system has one.

        True when the job was adopted, or when it must wait: its intent is younger than the
        backend's :attr:`~farmtools.batch.BatchSystem.settle_s` and a submission command of a
        killed manager may still deliver it.  False: the batch system never got it, submit it.
        BatchUnavailable goes up (the job waits for the batch system, as any submission).
        """
        assert job.submit_key is not None
        batch_id = self.batch.find(self._spec(job, paths, job.submit_key))
        if batch_id is not None:
            log.warning(
                "%s: adopting %s job %s, submitted under key %s by a manager that could not "
                "record it",
                job.file,
                self.batch.name,
                batch_id,
                job.submit_key,
            )
            self._submitted(job, batch_id, paths, s, adopted=True)
            return True
        if job.submit_key not in self._settled and job.submit_intent is not None:
            settles = job.submit_intent + timedelta(seconds=self.batch.settle_s)
            if settles > now():
                self.jobs.update(job.id, due=settles)
                self._due_in((settles - now()).total_seconds())
                return True
        log.warning(
            "%s: submission %s never reached %s; submitting it again",
            job.file,
            job.submit_key,
            self.batch.name,
        )
        return False

    def _submitted(
        self, job: JobRecord, batch_id: str, paths: JobPaths, s: PassSummary, adopted: bool = False
    ) -> None:
        """Record that ``job`` is on the batch system as ``batch_id`` (and in the file's story).

        A job cancelled meanwhile (``jobs cancel`` while it was being submitted) is no longer
        ``new``: its batch job is cancelled too, or it would run with nobody following it.
        """
        if not self.jobs.set_state(
            job.id,
            [JobState.NEW],
            JobState.SUBMITTED,
            batch_id=batch_id,
            submitted=now(),
            reason=None,
        ):
            log.warning(
                "%s: job %s was cancelled while submitted; cancelling it", job.file, batch_id
            )
            self.batch.cancel(batch_id)
            return
        self._down_reported.discard(job.id)
        details: dict[str, Any] = {
            "job": job.id,
            "batch_id": batch_id,
            "backend": self.batch.name,
            "try": job.try_number,
            "script": str(paths.script),
            "memory_mb": job.memory_mb,
            "walltime_s": job.walltime_s,
        }
        if adopted:
            details["adopted"] = True
        self.bk.transition(
            job.file, FileState.QUEUED, FileState.SUBMITTED, Event.SUBMITTED, details
        )
        self._in_flight = True
        s.submitted += 1
        log.info(
            "%s: submitted as %s job %s (try %d)",
            job.file,
            self.batch.name,
            batch_id,
            job.try_number,
        )

    # -- poll -------------------------------------------------------------------------------
    def poll(self, s: PassSummary) -> None:
        active = self.jobs.active()
        self._in_flight = bool(active)
        if not active:
            return
        try:
            states = self.batch.states([j.batch_id for j in active if j.batch_id])
        except BatchUnavailable as exc:
            s.batch_down = True
            log.warning("cannot poll the batch system: %s", exc)
            return
        for job in active:
            status = states.get(job.batch_id or "", JobStatus.UNKNOWN)
            try:
                if status is JobStatus.RUNNING and job.state == JobState.SUBMITTED:
                    self._started(job, s)
                elif status in (JobStatus.FINISHED, JobStatus.UNKNOWN):
                    self._ended(job, status, s)
            except BatchUnavailable as exc:
                s.batch_down = True
                log.warning("cannot read accounting: %s", exc)
                return
            except Exception as exc:
                log.exception("%s: cannot follow job %s", job.file, job.batch_id)
                s.errors.append(f"{job.file}: {exc}")
            if self._watch is not None and time.monotonic() >= self._next_check:
                self._claim_and_submit(s)

    def _started(self, job: JobRecord, s: PassSummary) -> None:
        if self.jobs.set_state(job.id, [JobState.SUBMITTED], JobState.RUNNING, started=now()):
            self.bk.transition(
                job.file,
                FileState.SUBMITTED,
                FileState.RUNNING,
                Event.STARTED,
                {"job": job.id, "batch_id": job.batch_id},
            )
            s.started += 1

    def _ended(self, job: JobRecord, status: JobStatus, s: PassSummary) -> None:
        acc = self.batch.accounting(job.batch_id or "") if status is JobStatus.FINISHED else None
        if acc is None:
            first = self._no_accounting_since.setdefault(job.id, time.monotonic())
            if time.monotonic() - first < ACCOUNTING_GRACE_S:
                return  # sacct lags behind the end of a job: ask again at the next poll
            acc = self._without_accounting(job, status)
        self._no_accounting_since.pop(job.id, None)
        acc = with_worker_usage(acc, read_usage(job.status_file))
        acc = self._node_fail_checked(job, acc)
        exit_code = acc.exit_code
        if exit_code is None and acc.ending is Ending.COMPLETED:
            exit_code = self._status_file_code(job)
        failure = classify(acc, exit_code, self.cfg.processing.program)
        self._job_log(job, acc, exit_code)
        values: dict[str, Any] = {
            "ended": acc.ended or now(),
            "exit_code": exit_code,
            "signal": acc.signal,
            "cpu_s": acc.cpu_s,
            "max_rss_kb": acc.max_rss_kb,
            "walltime_used_s": acc.walltime_s,
            "node": acc.node,
        }
        if acc.started:
            values["started"] = acc.started
        details = {
            "job": job.id,
            "batch_id": job.batch_id,
            "exit_code": exit_code,
            "signal": acc.signal,
            "ending": str(acc.ending),
            "cpu_s": acc.cpu_s,
            "max_rss_kb": acc.max_rss_kb,
            "walltime_s": acc.walltime_s,
            "node": acc.node,
            "batch_state": acc.raw_state,
        }
        if failure is None:
            if not self.jobs.set_state(job.id, ACTIVE, JobState.DONE, **values):
                return
            self.bk.record(job.file, Event.ENDED, details)
            self._reconstructed(job)
            s.succeeded += 1
            log.info("%s: job %s done", job.file, job.batch_id)
            return
        reason = self._reason(failure, acc, exit_code, job)
        # failure and reason in the same write: a manager killed right after it leaves what
        # recover() needs to take the decision
        values.update(failure=str(failure), reason=reason)
        if not self.jobs.set_state(job.id, ACTIVE, JobState.FAILED, **values):
            return
        self.bk.record(job.file, Event.ENDED, details)
        self._failed(job, failure, reason, acc, s, state_done=True)

    def _node_fail_checked(self, job: JobRecord, acc: JobAccounting) -> JobAccounting:
        """A node failure whose job wrote its status file is a completed job with that code.

        The script writes the file as its last act: whatever died afterwards (the local pool's
        supervisor killed while its job ran on, a node lost after the script's end), the job
        itself ran to its end.  Declaring it a node failure resubmitted it (the file was
        reconstructed twice) or parked it as failed with its output on disk.
        """
        if acc.ending is not Ending.NODE_FAIL:
            return acc
        code = self._status_file_code(job)
        if code is None:
            return acc
        log.warning(
            "%s: job %s reported as a node failure (%s), but the job ended by itself with "
            "exit code %d",
            job.file,
            job.batch_id,
            acc.extra.get("error") or acc.raw_state,
            code,
        )
        return replace(
            acc,
            ending=Ending.COMPLETED,
            exit_code=code,
            raw_state=f"{acc.raw_state}; status file: exit code {code}",
        )

    def _without_accounting(self, job: JobRecord, status: JobStatus) -> JobAccounting:
        """How a job ended when the accounting stayed empty for :data:`ACCOUNTING_GRACE_S`.

        Declaring it lost means resubmitting it, so first ask what else knows: the controller
        (``scontrol`` keeps finished jobs for MinJobAge), then the status file the job script
        writes as its last act (it ran to its end, with that exit code).  Only when neither
        knows is the job a node failure.
        """
        if job.batch_id:
            try:
                known = self.batch.final_record(job.batch_id)
            except BatchUnavailable as exc:
                log.warning("%s: no final record of job %s: %s", job.file, job.batch_id, exc)
                known = None
            if known is not None:
                log.warning(
                    "%s: no accounting for job %s after %.0f s; the controller says %s",
                    job.file,
                    job.batch_id,
                    ACCOUNTING_GRACE_S,
                    known.raw_state,
                )
                return known
        code = self._status_file_code(job)
        if code is not None:
            return JobAccounting(
                ending=Ending.COMPLETED,
                exit_code=code,
                raw_state=f"no accounting after {ACCOUNTING_GRACE_S:.0f} s; status file",
            )
        return JobAccounting(ending=Ending.NODE_FAIL, raw_state=f"lost ({status})")

    def _status_file_code(self, job: JobRecord) -> int | None:
        """The exit code the script wrote itself (TORQUE wrappers report none)."""
        if not job.status_file:
            return None
        try:
            return int(Path(job.status_file).read_text().strip())
        except (OSError, ValueError):
            return None

    @staticmethod
    def _reason(failure: Failure, acc: JobAccounting, code: int | None, job: JobRecord) -> str:
        if failure is Failure.EXIT:
            return f"exit code {code}"
        if failure is Failure.CORRUPT_INPUT:
            return f"corrupt input (exit code {code}); see {job.stderr}"
        if failure is Failure.SIGNAL:
            return f"killed by signal {acc.signal}"
        if failure is Failure.OUT_OF_MEMORY:
            return f"out of memory ({job.memory_mb} MB requested, peak {acc.max_rss_kb} kB)"
        if failure is Failure.WALLTIME:
            return f"walltime of {job.walltime_s} s exceeded"
        return f"{failure} ({acc.raw_state})"

    # -- failures ---------------------------------------------------------------------------------
    def _failed(
        self,
        job: JobRecord,
        failure: Failure,
        reason: str,
        acc: JobAccounting | None,
        s: PassSummary,
        *,
        state_done: bool = False,
    ) -> None:
        p = self.cfg.processing
        d = decide(
            failure,
            job.try_number,
            p.max_tries,
            job.memory_mb,
            job.walltime_s,
            p.memory_factor,
            p.walltime_factor,
        )
        if not state_done:
            self.jobs.set_state(job.id, [JobState.NEW, *ACTIVE], JobState.FAILED)
        self.jobs.update(job.id, failure=str(failure), reason=reason)
        if not d.retry:
            self._park(job, failure, reason, s)
            return
        f = self.bk.get(job.file)
        if f is None:
            return
        moved = self.bk.transition(
            job.file,
            [FileState.QUEUED, FileState.SUBMITTED, FileState.RUNNING],
            FileState.QUEUED,
            Event.RETRY,
            {
                "job": job.id,
                "failure": str(failure),
                "reason": reason,
                "next_try": job.try_number + 1,
                "memory_mb": d.memory_mb,
                "walltime_s": d.walltime_s,
                "cooloff_s": p.cooloff_s,
            },
            fields={"tries": job.try_number, "last_error": reason},
        )
        if moved:
            rec = self.bk.get(job.file)
            assert rec is not None
            self._new_job(rec, d.memory_mb, d.walltime_s, delay_s=p.cooloff_s)
            s.retried += 1
            log.info(
                "%s: %s, try %d after %.0f s", job.file, reason, job.try_number + 1, p.cooloff_s
            )

    def _finish_failed(self, job: JobRecord, failure: Failure, reason: str, s: PassSummary) -> None:
        self._failed(job, failure, reason, None, s)

    def _park(self, job: JobRecord, failure: Failure, reason: str, s: PassSummary) -> None:
        message = f"{job.file}: {reason} after {job.try_number} tries ({failure})"
        moved = self.bk.transition(
            job.file,
            [FileState.QUEUED, FileState.SUBMITTED, FileState.RUNNING],
            FileState.FAILED,
            Event.FAILED,
            {"job": job.id, "failure": str(failure), "reason": reason, "tries": job.try_number},
            fields={"tries": job.try_number, "last_error": reason},
            alarm=("processing", str(failure), message),
        )
        if not moved:
            return
        s.failed += 1
        log.error("%s: parked as failed: %s", job.file, reason)
        n_lines = self.cfg.notify.error_lines
        stderr = tail_lines(job.stderr, n_lines)
        body = (
            f"The processing of {job.file} was given up.\n\n"
            f"failure : {failure}\nreason  : {reason}\ntries   : {job.try_number}\n"
            f"node    : {job.node or 'unknown'} (the job's), manager on {self.digest.host}\n"
            f"script  : {job.script}\nstdout  : {job.stdout}\nstderr  : {job.stderr}\n"
            f"job log : {job.job_log}\n\n"
            f"After fixing the cause: farmtools jobs retry {job.file}\n"
        )
        if stderr:
            body += f"\nLast {n_lines} lines of the job's error output:\n\n{stderr}\n"
        errors = self.digest.add(
            str(failure),
            f"[farmtools] processing failed: {job.file}",
            body,
            {
                "file": job.file,
                "failure": str(failure),
                "reason": reason,
                "tries": job.try_number,
                "node": job.node,
                "host": self.digest.host,
            },
        )
        for e in errors:
            self.bk.record(job.file, Event.ERROR, {"notify": e})

    def _notify_errors(self, errors: list[str]) -> None:
        """Mail failures of a digest (of many files: logged, not written into one's story)."""
        for e in errors:
            log.error("notification failed: %s", e)

    def _job_log(self, job: JobRecord, acc: JobAccounting, exit_code: int | None) -> None:
        if not job.job_log:
            return
        text = format_job_log(
            acc,
            job_id=job.batch_id or "",
            name=job.name,
            user=str(acc.extra.get("user") or self.cfg.farm.account),
            group=str(acc.extra.get("group") or self.cfg.farm.group),
            queue=str(acc.extra.get("queue") or job.queue),
            exit_code=exit_code,
        )
        write_job_log(Path(job.job_log), text)

    # -- operator actions -------------------------------------------------------------------
    def cancel(self, job_id: int) -> str:
        """Cancel a job: a pending submission at once, a submitted one through the batch system."""
        job = self.jobs.get(job_id)
        if job is None:
            raise KeyError(f"no job {job_id}")
        if job.state == JobState.NEW:
            raw = parse_raw_name(job.file)
            if job.submit_key and raw is not None:  # a killed manager may have submitted it
                spec = self._spec(job, JobPaths.of(self.cfg, raw, job.id), job.submit_key)
                batch_id = self.batch.find(spec)
                if batch_id is not None:
                    self.batch.cancel(batch_id)
            if self.jobs.set_state(
                job.id, [JobState.NEW], JobState.CANCELLED, reason="cancelled by operator"
            ):
                self.bk.transition(
                    job.file,
                    FileState.QUEUED,
                    FileState.FAILED,
                    Event.FAILED,
                    {"job": job.id, "failure": "cancelled"},
                    fields={"last_error": "cancelled by operator"},
                )
            return "cancelled before submission"
        if job.state in ACTIVE and job.batch_id:
            self.batch.cancel(job.batch_id)
            return f"asked {self.batch.name} to cancel {job.batch_id}"
        return f"job {job_id} is {job.state}: nothing to cancel"

    def retry(self, file: str) -> bool:
        """Put a failed file back to ``stored`` with its try count reset (operator's decision)."""
        return self.bk.transition(
            file,
            FileState.FAILED,
            FileState.STORED,
            Event.RETRY,
            {"by": "operator"},
            fields={"tries": 0, "not_before": None},
        )
