"""Getting jobs onto the batch system, each exactly once.

A claimed file gets a ``new`` job row (:meth:`Submitter.new_job`); due jobs are submitted: the
script rendered from ``templates/job.sh.j2`` and archived, the intent recorded with an
idempotency key, then the submission, then the batch id (a manager killed in between adopts
the job at its next pass instead of submitting it twice).  A batch system that does not answer
leaves the job ``new`` (nothing is lost); a local error (disk full) costs no try.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from farmtools.batch import BatchSystem, BatchUnavailable, JobSpec, SubmissionRefused
from farmtools.batch.base import parse_duration
from farmtools.bookkeeping import Bookkeeping, Event, FileRecord, FileState
from farmtools.bookkeeping.schema import now
from farmtools.config import FarmConfig
from farmtools.faults import fault_point
from farmtools.processing.failures import Failure
from farmtools.processing.jobs import JobRecord, JobState, JobStore
from farmtools.processing.passes import PassSummary
from farmtools.processing.resubmission import FailedJobs
from farmtools.processing.script import JobPaths, render_job_script
from farmtools.rawdata.naming import parse_raw_name

log = logging.getLogger("farmtools.processing")


class LocalJobError(OSError):
    """This machine could not prepare a job (write its script, create a log directory).

    Carries the path and the OS error: ``cannot write <path>: [Errno 28] No space left on device``.
    """

    def __init__(self, path: Path, exc: OSError) -> None:
        super().__init__(exc.errno, f"cannot write {path}: {exc.strerror or exc}")
        self.path = path

    def __str__(self) -> str:
        return f"cannot write {self.path}: [Errno {self.errno}] {self.strerror}"


class Submitter:
    """Creates and submits the jobs of one manager."""

    def __init__(
        self,
        cfg: FarmConfig,
        bk: Bookkeeping,
        jobs: JobStore,
        batch: BatchSystem,
        failed_jobs: FailedJobs,
    ) -> None:
        self.cfg = cfg
        self.bk = bk
        self.jobs = jobs
        self.batch = batch
        self._failed_jobs = failed_jobs
        self.default_walltime_s = round(parse_duration(cfg.batch.walltime))
        #: monotonic time before which the batch system is taken as down (no submission)
        self._down_until = 0.0
        self._down_reported: set[int] = set()
        #: keys whose submission command this process saw end (none can land any more)
        self._settled: set[str] = set()
        #: monotonic time at which the earliest ``new`` job is due (inf: none waits)
        self.next_due = 0.0

    def new_job(
        self,
        f: FileRecord,
        memory_mb: int | None = None,
        walltime_s: int | None = None,
        delay_s: float = 0.0,
    ) -> JobRecord:
        """A ``new`` job for file ``f`` (its next try), due after ``delay_s``."""
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

    def _due_in(self, delay_s: float) -> None:
        """A job becomes due in ``delay_s``: the daemon's next submission pass is then at latest."""
        self.next_due = min(self.next_due, time.monotonic() + max(delay_s, 0.0))

    def submit_due(self, s: PassSummary) -> None:
        """Submit the ``new`` jobs that are due, then note when the next one will be."""
        if time.monotonic() < self._down_until:
            s.batch_down = True
            self.next_due = self._down_until
            return
        try:
            self._submit_due(s)
        finally:
            self.next_due = float("inf")
            upcoming = self.jobs.next_due()
            if upcoming is not None:
                self._due_in((upcoming - now()).total_seconds())
            if time.monotonic() < self._down_until:  # went down in this pass: ask it again then
                self.next_due = max(self.next_due, self._down_until)

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
                self._failed_jobs.failed(job, Failure.LOCAL, reason, None, s)

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
        spec = self.spec(job, paths, key)
        try:
            batch_id = self.batch.submit(spec)
        except SubmissionRefused as exc:
            self._failed_jobs.failed(job, Failure.REFUSED, str(exc), None, s)
            return
        finally:
            self._settled.add(key)  # no command of this process can still deliver it
        fault_point("submit-window")
        self._submitted(job, batch_id, paths, s)

    def spec(self, job: JobRecord, paths: JobPaths, key: str) -> JobSpec:
        """What the batch system is given for ``job``, named by its idempotency ``key``."""
        return JobSpec(
            name=paths.name,
            script=paths.script,
            stdout=paths.stdout,
            stderr=paths.stderr,
            queue=job.queue,
            walltime_s=job.walltime_s,
            memory_mb=job.memory_mb,
            cores=self.cfg.processing.cores,
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
        batch_id = self.batch.find(self.spec(job, paths, job.submit_key))
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
        s.submitted += 1
        log.info(
            "%s: submitted as %s job %s (try %d)",
            job.file,
            self.batch.name,
            batch_id,
            job.try_number,
        )
