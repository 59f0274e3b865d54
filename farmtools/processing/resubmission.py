"""A failed reconstruction try: the decision (a new try, or the file parked) and its record.

:mod:`farmtools.processing.failures` holds the rules (which failure classes are worth a new
try, with how much more memory or walltime); this module applies them to a job of the
bookkeeping: the file back to ``queued`` with a new job after the cool-off, or ``failed`` with
an alarm and a notification (the first of a class at once, then a digest).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from farmtools.batch import JobAccounting
from farmtools.bookkeeping import Bookkeeping, Event, FileState
from farmtools.config import FarmConfig
from farmtools.notify.digest import Digest, tail_lines
from farmtools.processing.failures import Failure, decide
from farmtools.processing.jobs import ACTIVE, JobRecord, JobState, JobStore
from farmtools.processing.passes import PassSummary

log = logging.getLogger("farmtools.processing")


def failure_reason(failure: Failure, acc: JobAccounting, code: int | None, job: JobRecord) -> str:
    """The line a failed job's row, story and mail give as its reason."""
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


class FailedJobs:
    """Takes the decision after each failed try of a job, and records it."""

    def __init__(
        self,
        cfg: FarmConfig,
        bk: Bookkeeping,
        jobs: JobStore,
        digest: Digest,
        new_job: Callable[..., JobRecord],
    ) -> None:
        self.cfg = cfg
        self.bk = bk
        self.jobs = jobs
        #: mails about parked files: the first of a failure class at once, then a digest
        self.digest = digest
        #: gives a file its next job (``new_job(record, memory_mb, walltime_s, delay_s=)``)
        self._new_job: Callable[..., JobRecord] = new_job

    def failed(
        self,
        job: JobRecord,
        failure: Failure,
        reason: str,
        acc: JobAccounting | None,
        s: PassSummary,
        *,
        state_done: bool = False,
    ) -> None:
        """Decide after a failed try: a new try (more memory or walltime when that was the
        cause) after the cool-off, or the file parked as failed with an alarm and a mail."""
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
            self.park(job, failure, reason, s)
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

    def park(self, job: JobRecord, failure: Failure, reason: str, s: PassSummary) -> None:
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

    def notify_errors(self, errors: list[str]) -> None:
        """Mail failures of a digest (of many files: logged, not written into one's story)."""
        for e in errors:
            log.error("notification failed: %s", e)
