"""Local batch jobs survive a ``kill -9`` of the manager (issue 4: "jobs surviving a restart").

A real ``farmtools process run`` child submits two jobs whose inputs are FIFOs (fifo.py), so
both are running when the daemon is SIGKILLed: no clean shutdown, no ``finally``.  Job A is fed
while no manager is up (it ends, its supervisor writes the accounting alone); the daemon is
started again, then job B is fed.  Each job's accounting (exit code, CPU, RSS, times) must be
collected exactly once, each file reconstructed once, and no job submitted twice.
"""

from __future__ import annotations

import time
from pathlib import Path

from farmtools.bookkeeping import Bookkeeping, Event, FileState
from farmtools.processing.jobs import JobStore
from tests.eventually import eventually
from tests.integration.processing.daemon import Daemon, wait_until, write_farm
from tests.integration.processing.fifo import feed, make_fifo
from tests.processing_farm import state_of, store

RUN = 51


def test_sigkilled_daemon_restarts_and_collects_each_job_once(tmp_path: Path) -> None:
    config, cfg = write_farm(tmp_path / "farm", {"batch.slots": 2})
    bk = Bookkeeping.from_config(cfg)
    names = [store(bk, cfg, RUN, seq) for seq in range(2)]
    fifos = []
    for name in names:
        fifos.append(make_fifo(tmp_path / "fifo" / name))
        bk.update_fields(name, storage_path=str(fifos[-1]))
    a, b = names

    first = Daemon(config, tmp_path / "first.log")
    try:
        wait_until(
            lambda: {state_of(bk, n) for n in names} == {FileState.RUNNING},
            "both jobs running",
            60,
            first,
        )
    finally:
        first.kill()
    assert first.proc.returncode == -9

    # A ends while no manager exists: its detached supervisor still records it
    feed(fifos[0], RUN)
    job_a = JobStore(bk).of_file(a)[0]
    assert job_a.status_file is not None
    status_a = Path(job_a.status_file)
    eventually(status_a.exists, 30, "job A ended without its manager (its status file)")
    assert state_of(bk, a) == FileState.RUNNING  # nobody collected it yet

    second = Daemon(config, tmp_path / "second.log")
    try:
        wait_until(lambda: state_of(bk, a) == FileState.RECONSTRUCTED, "A collected", 60, second)
        assert state_of(bk, b) == FileState.RUNNING  # B still runs, followed by batch id
        feed(fifos[1], RUN)
        wait_until(lambda: state_of(bk, b) == FileState.RECONSTRUCTED, "B collected", 60, second)
        # a few more polls in which a second collection would show (what is tested: no event
        # to wait for, as nothing may happen)
        time.sleep(1.0)
    finally:
        assert second.stop() == 0, second.output()[-3000:]

    store_ = JobStore(bk)
    assert len(store_.list(None, None, 100)) == 2  # no duplicate job
    for name in names:
        (job,) = store_.of_file(name)
        assert job.state == "done" and job.try_number == 1 and job.failure is None
        assert job.exit_code == 0
        assert job.cpu_s is not None and job.cpu_s > 0
        assert job.max_rss_kb is not None and job.max_rss_kb > 1000  # a Python process
        assert job.submitted and job.started and job.ended
        assert job.submitted <= job.started <= job.ended
        assert job.walltime_used_s is not None and job.walltime_used_s > 0
        story = [e.event for e in bk.story(name)]
        assert story.count(Event.SUBMITTED) == 1
        assert story.count(Event.ENDED) == 1 and story.count(Event.RECONSTRUCTED) == 1
        assert story.count(Event.RETRY) == 0
        ended = next(e for e in bk.story(name) if e.event == Event.ENDED)
        assert ended.details is not None
        assert ended.details["exit_code"] == 0 and ended.details["cpu_s"] == job.cpu_s
        assert job.job_log is not None
        log = Path(job.job_log).read_text()  # the seed job log, written once with the numbers
        assert log.count("exit code        : 0\n") == 1
        assert f"Job ID           : {job.batch_id}\n" in log
    bk.close()
