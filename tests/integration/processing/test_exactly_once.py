"""Every file reconstructed once across kills: of the manager inside the submission window, of a
local job's supervisor while its job runs on (issue 13).

The window: the batch system has the job, the bookkeeping does not have its batch id yet.  A
manager dying there used to leave the job ``new``, and the next manager submitted it again: two
batch jobs for one file.  Now the job's idempotency key is recorded first and the next manager
adopts the job it finds under that key.  The death is simulated in-process (an exception no
handler of the manager catches, raised right after ``submit`` returned) with the real local
pool, and as a real SIGKILL of ``farmtools process once`` through the fault hook.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from farmtools.batch import BatchSystem, JobSpec
from farmtools.batch.local import pid_alive
from farmtools.bookkeeping import Bookkeeping, Event, FileState
from farmtools.bookkeeping.schema import now
from farmtools.config import FarmConfig
from farmtools.faults import FAULT_ENV
from farmtools.processing.jobs import JobStore
from farmtools.processing.manager import Manager
from tests.eventually import eventually
from tests.integration.processing.daemon import FARMTOOLS, write_farm
from tests.integration.processing.fifo import feed, make_fifo
from tests.processing_farm import drive, make_cfg, state_of, store


class _Killed(BaseException):
    """The manager's death: nothing in it catches a BaseException that is not an Exception."""


def _die_after_submit(batch: BatchSystem, monkeypatch: pytest.MonkeyPatch) -> None:
    real = batch.submit

    def submit_then_die(spec: JobSpec) -> str:
        real(spec)
        raise _Killed

    monkeypatch.setattr(batch, "submit", submit_then_die)


def _until_reconstructed(manager: Manager, names: list[str], timeout: float = 60.0) -> None:
    drive(
        manager,
        lambda: {state_of(manager.bk, n) for n in names} == {FileState.RECONSTRUCTED},
        timeout,
        f"{names} reconstructed",
    )


def _farm(tmp_path: Path, run: int) -> tuple[FarmConfig, Bookkeeping, str, Manager]:
    """A farm with one stored file of ``run`` and the manager that will be killed."""
    cfg = make_cfg(tmp_path / "farm")
    bk = Bookkeeping.from_config(cfg)
    name = store(bk, cfg, run, 0)
    return cfg, bk, name, Manager(cfg, bk=bk)


def _pool_jobs(pool: Path) -> list[Path]:
    return sorted(p for p in (pool / "jobs").iterdir() if (p / "spec.json").exists())


def test_a_job_submitted_before_the_kill_is_adopted_not_submitted_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, bk, name, first = _farm(tmp_path, 61)
    _die_after_submit(first.batch, monkeypatch)
    with pytest.raises(_Killed):
        first.run_once()
    (job,) = JobStore(bk).of_file(name)
    assert job.state == "new" and job.batch_id is None and job.submit_key  # the intent only
    pool = cfg.path(cfg.batch.local_dir)
    assert len(_pool_jobs(pool)) == 1

    second = Manager(cfg, bk=bk)  # the restarted manager
    _until_reconstructed(second, [name])
    assert len(_pool_jobs(pool)) == 1  # no second batch job
    (job,) = JobStore(bk).of_file(name)
    assert job.state == "done" and job.batch_id == _pool_jobs(pool)[0].name
    submitted = [e for e in bk.story(name) if e.event == Event.SUBMITTED]
    assert len(submitted) == 1 and submitted[0].details is not None
    assert submitted[0].details["adopted"] is True
    assert [e.event for e in bk.story(name)].count(Event.RETRY) == 0
    bk.close()


def test_a_key_the_batch_system_never_got_is_submitted_after_the_settle_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # killed after recording the intent but before the batch system had the job: nothing to
    # adopt.  While a submission command of the dead manager might still land (settle_s), the
    # job waits; then it is submitted once, under a new key.
    cfg, bk, name, first = _farm(tmp_path, 62)

    def die(spec: JobSpec) -> str:
        raise _Killed

    monkeypatch.setattr(first.batch, "submit", die)
    with pytest.raises(_Killed):
        first.run_once()
    (job,) = JobStore(bk).of_file(name)
    old_key = job.submit_key
    assert old_key is not None

    second = Manager(cfg, bk=bk)
    monkeypatch.setattr(second.batch, "settle_s", 3600.0)  # as if sbatch could still land
    second.run_once()
    (job,) = JobStore(bk).of_file(name)
    assert job.state == "new" and job.submit_key == old_key  # waits, not resubmitted
    assert job.due > now() + timedelta(seconds=3000)
    pool = cfg.path(cfg.batch.local_dir)
    assert _pool_jobs(pool) == []

    monkeypatch.setattr(second.batch, "settle_s", 0.0)
    JobStore(bk).update(job.id, due=now())
    _until_reconstructed(second, [name])
    (job,) = JobStore(bk).of_file(name)
    assert job.state == "done" and job.submit_key != old_key
    assert len(_pool_jobs(pool)) == 1
    bk.close()


def test_a_real_sigkill_inside_the_submission_window(tmp_path: Path) -> None:
    config, cfg = write_farm(tmp_path / "farm", {"batch.slots": 2})
    bk = Bookkeeping.from_config(cfg)
    names = [store(bk, cfg, 63, seq) for seq in range(2)]
    env = {**os.environ, FAULT_ENV: "submit-window:kill"}
    once = [FARMTOOLS, "process", "once", "--config", str(config)]
    proc = subprocess.run(once, env=env, capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    pool = cfg.path(cfg.batch.local_dir)
    assert len(_pool_jobs(pool)) == 1  # the first job reached the pool, then the kill

    manager = Manager(cfg, bk=bk)
    _until_reconstructed(manager, names)
    jobs = [j for n in names for j in JobStore(bk).of_file(n)]
    assert [j.state for j in jobs] == ["done", "done"]
    assert len(_pool_jobs(pool)) == 2  # one batch job per file
    assert sorted(j.batch_id or "" for j in jobs) == sorted(p.name for p in _pool_jobs(pool))
    bk.close()


def test_a_job_whose_supervisor_died_is_collected_once_not_a_node_failure(tmp_path: Path) -> None:
    # The local pool's supervisor is SIGKILLed while its job runs on and then ends with status
    # 0.  It used to be a node failure at the next poll: the file was resubmitted (reconstructed
    # twice) while the first job still ran, outside the slot count.
    cfg = make_cfg(tmp_path / "farm", batch={"backend": "local", "slots": 1})
    bk = Bookkeeping.from_config(cfg)
    name = store(bk, cfg, 64, 0)
    fifo = make_fifo(tmp_path / "fifo" / name)
    bk.update_fields(name, storage_path=str(fifo))
    manager = Manager(cfg, bk=bk)
    drive(manager, lambda: state_of(bk, name) == FileState.RUNNING, 60, f"{name} running")
    pool = cfg.path(cfg.batch.local_dir)
    (jobdir,) = _pool_jobs(pool)
    eventually(lambda: (jobdir / "started.json").exists(), 60, "the supervisor started")
    supervisor = json.loads((jobdir / "started.json").read_text())["supervisor"]
    os.kill(supervisor, signal.SIGKILL)
    eventually(lambda: not pid_alive(supervisor), 60, f"supervisor {supervisor} gone")
    for _ in range(5):  # polls while the orphan runs on: still running, nothing resubmitted
        manager.run_once()
        assert state_of(bk, name) == FileState.RUNNING
    feed(fifo, 64)
    _until_reconstructed(manager, [name])
    (job,) = JobStore(bk).of_file(name)
    assert job.state == "done" and job.exit_code == 0 and job.try_number == 1
    assert len(_pool_jobs(pool)) == 1
    story = [e.event for e in bk.story(name)]
    assert story.count(Event.RETRY) == 0 and story.count(Event.RECONSTRUCTED) == 1
    bk.close()


@pytest.mark.parametrize("window", ["file not yet submitted", "file not yet reconstructed"])
def test_a_kill_between_the_job_row_and_the_file_state_is_finished_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, window: str
) -> None:
    # The job's row and its file's state are two transactions.  Killed between them, the file
    # stayed queued (or running) with a job already done: it waited for ever, or a later
    # restart gave it a new job (reconstructed twice).  The kill loop found the first one.
    cfg, bk, name, first = _farm(tmp_path, 65)
    if window == "file not yet submitted":
        real = first.bk.transition

        def transition(*args: object, **kw: object) -> bool:
            if args[2] == FileState.SUBMITTED:
                raise _Killed
            return real(*args, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(first.bk, "transition", transition)
    else:

        def reconstructed(job: object) -> bool:
            raise _Killed

        monkeypatch.setattr(first.poller, "reconstructed", reconstructed)
    with pytest.raises(
        _Killed
    ):  # passes until the injected kill; a wait that ends without it fails
        eventually(lambda: False, 60, "the injected kill", step=first.run_once)
    monkeypatch.undo()
    second = Manager(cfg, bk=bk)
    _until_reconstructed(second, [name])
    (job,) = JobStore(bk).of_file(name)  # one job, not a second one
    assert job.state == "done"
    assert len(_pool_jobs(cfg.path(cfg.batch.local_dir))) == 1
    assert [e.event for e in bk.story(name)].count(Event.RECONSTRUCTED) == 1
    bk.close()


def test_cancelling_a_job_its_killed_manager_had_submitted_cancels_the_batch_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the job row is ``new`` (its batch id never recorded) but the pool has the job: a cancel
    # must reach it, or it would run with nobody following it
    cfg, bk, name, first = _farm(tmp_path, 66)
    first.batch.pool.slots = 0  # type: ignore[attr-defined]  # it stays queued in the pool
    _die_after_submit(first.batch, monkeypatch)
    with pytest.raises(_Killed):
        first.run_once()
    (job,) = JobStore(bk).of_file(name)
    answer = Manager(cfg, bk=bk).cancel(job.id)
    assert answer == "cancelled before submission"
    (jobdir,) = _pool_jobs(cfg.path(cfg.batch.local_dir))
    assert json.loads((jobdir / "accounting.json").read_text())["ending"] == "cancelled"
    assert state_of(bk, name) == FileState.FAILED
    bk.close()


def test_a_job_cancelled_while_it_was_being_submitted_is_cancelled_on_the_batch_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, bk, name, manager = _farm(tmp_path, 67)
    manager.batch.pool.slots = 0  # type: ignore[attr-defined]  # it stays queued in the pool
    real = manager.batch.submit

    def submit_while_cancelled(spec: JobSpec) -> str:
        batch_id = real(spec)
        (job,) = JobStore(bk).of_file(name)
        assert JobStore(bk).set_state(job.id, ["new"], "cancelled")  # `jobs cancel` meanwhile
        return batch_id

    monkeypatch.setattr(manager.batch, "submit", submit_while_cancelled)
    manager.run_once()
    (jobdir,) = _pool_jobs(cfg.path(cfg.batch.local_dir))
    assert json.loads((jobdir / "accounting.json").read_text())["ending"] == "cancelled"
    (job,) = JobStore(bk).of_file(name)
    assert job.state == "cancelled" and job.batch_id is None
    bk.close()
