"""After a manager was killed: what it left half done between two writes, finished.

A job's row and its file's state are written in two transactions; :func:`recover` (run when a
manager starts) brings the two together again.  Imports the bookkeeping and processing's own
job store, submitter, poller and failure decision.
"""

from __future__ import annotations

import logging

from farmtools.bookkeeping import Bookkeeping, Event, FileState
from farmtools.processing.failures import Failure
from farmtools.processing.jobs import ACTIVE, JobRecord, JobState, JobStore
from farmtools.processing.passes import PassSummary
from farmtools.processing.polling import Poller
from farmtools.processing.resubmission import FailedJobs
from farmtools.processing.submission import Submitter

log = logging.getLogger("farmtools.processing")


def recover(
    bk: Bookkeeping,
    jobs: JobStore,
    submitter: Submitter,
    poller: Poller,
    failed_jobs: FailedJobs,
    worker: str,
) -> None:
    """Finish what a manager killed between two writes left half done (at its start).

    A job's row and its file's state are written in two transactions; a SIGKILL between
    them leaves them apart, and a file left so would wait for ever or be processed again:

    - a queued file without a job row gets one (story ``resumed``);
    - a queued file whose job is already on the batch system (killed after recording the
      batch id, before moving the file) moves to ``submitted``;
    - a file in flight whose last job is ``done`` is ``reconstructed``; one whose last job
      ``failed`` gets the failure decision (retry or park) it never got.
    """
    open_files = jobs.files_with_open_jobs()
    for f in bk.files(state=FileState.QUEUED):
        last = _last_job(jobs, f.name)
        if f.name not in open_files and (last is None or last.state != JobState.DONE):
            submitter.new_job(f)
            bk.record(f.name, Event.RESUMED, {"by": worker, "what": "queued file"})
        elif last is not None and last.state in ACTIVE:
            bk.transition(
                f.name,
                FileState.QUEUED,
                FileState.SUBMITTED,
                Event.SUBMITTED,
                {"job": last.id, "batch_id": last.batch_id, "resumed": True},
            )
    for state in (FileState.QUEUED, FileState.SUBMITTED, FileState.RUNNING):
        for f in bk.files(state=state):
            last = _last_job(jobs, f.name)
            if f.name in open_files or last is None:
                continue
            if last.state == JobState.DONE:
                log.warning("%s: its job %s was done: reconstructed", f.name, last.id)
                poller.reconstructed(last)
            elif last.state == JobState.FAILED and last.failure and state != FileState.QUEUED:
                log.warning("%s: its job %s had failed: deciding now", f.name, last.id)
                failure = Failure(last.failure)
                failed_jobs.failed(
                    last,
                    failure,
                    last.reason or str(failure),
                    None,
                    PassSummary(),
                    state_done=True,
                )


def _last_job(jobs: JobStore, file: str) -> JobRecord | None:
    of_file = jobs.of_file(file)
    return of_file[-1] if of_file else None
