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

The steps live in their own modules: :mod:`.submission` (job rows, scripts, exactly-once
submission), :mod:`.polling` (following jobs, accounting, job logs), :mod:`.resubmission` (the
decision after a failed try); :mod:`.recovery` (what a kill between two writes left half done); this
one runs the loops, claims files and takes the operator's actions.  Every transition goes into the file's story.  Errors about one file are recorded and never stop
the loop.  Imports the bookkeeping, the batch backends, notify, config and rawdata naming (and
the analysis pipeline lazily, when it runs: it loads uproot and the fitting libraries).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path

from farmtools.batch import BatchSystem, make_batch
from farmtools.bookkeeping import Bookkeeping, Event, FileState
from farmtools.bookkeeping.changes import ChangeWatch
from farmtools.bookkeeping.errors import database_unavailable, first_line
from farmtools.bookkeeping.heartbeat import Heartbeat
from farmtools.config import FarmConfig
from farmtools.notify.digest import Digest
from farmtools.processing import nodeworker
from farmtools.processing.analyser import AnalysisProcess, analyse_ready
from farmtools.processing.jobs import ACTIVE, JobState, JobStore
from farmtools.processing.passes import PassSummary
from farmtools.processing.polling import ACCOUNTING_GRACE_S, Poller, with_worker_usage
from farmtools.processing.recovery import recover
from farmtools.processing.resubmission import FailedJobs
from farmtools.processing.script import JobPaths
from farmtools.processing.submission import LocalJobError, Submitter
from farmtools.rawdata.naming import parse_raw_name

__all__ = [
    "ACCOUNTING_GRACE_S",
    "ANALYSIS_RESCAN_S",
    "LocalJobError",
    "Manager",
    "PassSummary",
    "with_worker_usage",
]

log = logging.getLogger("farmtools.processing")

#: the daemon looks for complete groups at least this often, even when none of its own jobs
#: ended: files reconstructed before a restart or by another manager, groups an error left
ANALYSIS_RESCAN_S = 30.0


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
        batch = batch or make_batch(cfg)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.claim_limit = claim_limit
        #: mails about parked files: the first of a failure class at once, then a digest
        self.digest = Digest(cfg, "processing")
        self.failed_jobs = FailedJobs(
            cfg, self.bk, self.jobs, self.digest, lambda *a, **k: self.submitter.new_job(*a, **k)
        )
        self.submitter = Submitter(cfg, self.bk, self.jobs, batch, self.failed_jobs)
        self.poller = Poller(cfg, self.bk, self.jobs, batch, self.failed_jobs)
        #: the daemon's change watch (None in ``run_once``: every step runs unconditionally)
        self._watch: ChangeWatch | None = None
        self._next_claim = 0.0
        self._next_check = 0.0
        self._dirty = True

    @property
    def batch(self) -> BatchSystem:
        """The batch system jobs go to (settable: the submitter and the poller follow)."""
        return self.submitter.batch

    @batch.setter
    def batch(self, batch: BatchSystem) -> None:
        self.submitter.batch = batch
        self.poller.batch = batch

    # -- the loops ------------------------------------------------------------------------------
    def run_once(self) -> PassSummary:
        """One full pass: recover, claim, submit, poll (what cron's ``process once`` runs)."""
        s = PassSummary()
        self.recover()
        self.claim(s)
        self.submit_due(s)
        self.poll(s)
        s.analysed = len(self.analyse())
        self.failed_jobs.notify_errors(
            self.digest.flush()
        )  # `process once` sends the rest at its end
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
                    if time.monotonic() >= next_poll and (self.poller.in_flight or self._dirty):
                        self._dirty = False
                        self.poll(s)
                        next_poll = time.monotonic() + self.cfg.processing.poll_s
                    failures = 0
                except Exception as exc:  # a database outage or a bug must not end the daemon
                    failures += 1
                    self._pass_failed(exc, failures)
                    self._next_claim = self.submitter.next_due = 0.0  # a full pass next time
                    self._dirty = True
                if s.succeeded:
                    wake.set()
                self.failed_jobs.notify_errors(self.digest.flush())
                stop.wait(self._pause(failures))
        finally:
            if node is not None:
                node.stop()
            self.failed_jobs.notify_errors(self.digest.flush(force=True))
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
        if changed or s.claimed or t >= self.submitter.next_due:
            self.submit_due(s)

    def submit_due(self, s: PassSummary) -> None:
        """Submit the ``new`` jobs that are due (:meth:`Submitter.submit_due`)."""
        before = s.submitted
        self.submitter.submit_due(s)
        if s.submitted > before:
            self.poller.in_flight = True

    def poll(self, s: PassSummary) -> None:
        """Follow the active jobs; the daemon claims and submits between two of them when due."""
        self.poller.poll(s, self._between_jobs if self._watch is not None else None)

    def _between_jobs(self, s: PassSummary) -> None:
        if time.monotonic() >= self._next_check:
            self._claim_and_submit(s)

    # -- analyse ------------------------------------------------------------------------------
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

    # -- claim and recovery -----------------------------------------------------------------
    def recover(self) -> None:
        """Finish what a manager killed between two writes left half done (at start; see
        :func:`~.recovery.recover`)."""
        recover(self.bk, self.jobs, self.submitter, self.poller, self.failed_jobs, self.worker)

    def claim(self, s: PassSummary) -> None:
        while True:
            # 311 files and 6x6x6 event files (``<run>_<seq>_<id>.dat``) alike: ``farmtools
            # reco`` tells them apart
            got = self.bk.claim(
                FileState.STORED,
                FileState.QUEUED,
                limit=self.claim_limit,
                worker=self.worker,
                event=Event.QUEUED,
            )
            for f in got:
                self.submitter.new_job(f)
            s.claimed += len(got)
            if len(got) < self.claim_limit:
                return

    # -- operator actions -------------------------------------------------------------------
    def cancel(self, job_id: int) -> str:
        """Cancel a job: a pending submission at once, a submitted one through the batch system."""
        job = self.jobs.get(job_id)
        if job is None:
            raise KeyError(f"no job {job_id}")
        if job.state == JobState.NEW:
            raw = parse_raw_name(job.file)
            if job.submit_key and raw is not None:  # a killed manager may have submitted it
                spec = self.submitter.spec(job, JobPaths.of(self.cfg, raw, job.id), job.submit_key)
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
