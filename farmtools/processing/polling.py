"""Following the jobs on the batch system: started, ended, their accounting and job logs.

Every active job is asked for at each poll; an ended one gets its accounting (with the node
worker's figures when it used one), the seed's job log, a failure class
(:func:`farmtools.processing.failures.classify`) and then ``reconstructed`` or the decision of
:class:`farmtools.processing.resubmission.FailedJobs`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from farmtools.batch import BatchSystem, BatchUnavailable, Ending, JobAccounting, JobStatus
from farmtools.bookkeeping import Bookkeeping, Event, FileState
from farmtools.bookkeeping.schema import now
from farmtools.config import FarmConfig
from farmtools.job.recoclient import read_usage
from farmtools.processing.failures import classify
from farmtools.processing.joblog import format_job_log, write_job_log
from farmtools.processing.jobs import ACTIVE, JobRecord, JobState, JobStore
from farmtools.processing.passes import PassSummary
from farmtools.processing.resubmission import FailedJobs, failure_reason

log = logging.getLogger("farmtools.processing")

#: how long a finished job may lack accounting (sacct lag, forgotten by qstat) before it is lost
ACCOUNTING_GRACE_S = 120.0


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


class Poller:
    """Follows the active jobs of one manager on its batch system."""

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
        #: whether jobs may be in flight on the batch system (False only after a poll saw none)
        self.in_flight = True
        self._no_accounting_since: dict[int, float] = {}

    def poll(self, s: PassSummary, between: Callable[[PassSummary], None] | None = None) -> None:
        """Follow every active job: started, or ended (accounting, job log, classification).

        ``between`` runs after each job (the daemon claims and submits there when its clock
        says so: sacct per finished job makes a long poll).
        """
        active = self.jobs.active()
        self.in_flight = bool(active)
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
            if between is not None:
                between(s)

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
            self.reconstructed(job)
            s.succeeded += 1
            log.info("%s: job %s done", job.file, job.batch_id)
            return
        reason = failure_reason(failure, acc, exit_code, job)
        # failure and reason in the same write: a manager killed right after it leaves what
        # recover() needs to take the decision
        values.update(failure=str(failure), reason=reason)
        if not self.jobs.set_state(job.id, ACTIVE, JobState.FAILED, **values):
            return
        self.bk.record(job.file, Event.ENDED, details)
        self._failed_jobs.failed(job, failure, reason, acc, s, state_done=True)

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

    def reconstructed(self, job: JobRecord) -> bool:
        """Move ``job``'s file to ``reconstructed`` (its job succeeded)."""
        return self.bk.transition(
            job.file,
            [FileState.QUEUED, FileState.SUBMITTED, FileState.RUNNING],
            FileState.RECONSTRUCTED,
            Event.RECONSTRUCTED,
            {"job": job.id, "output": job.output},
            fields={"tries": job.try_number, "last_error": None},
        )
