"""Failure classes end to end through the manager, with real jobs (tests/unit covers classify).

Walltime exceeded, killed by a signal and cancelled through ``farmtools jobs cancel`` on the
local backend (jobs blocked on a FIFO input, see fifo.py); a submission the real Slurm refuses;
a local error (a full disk: the job script is written to ``/dev/full``, a real ENOSPC) that must
not be taken for a refusal; and slurmdbd lagging behind a job that the controller saw complete.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from farmtools.batch.slurm import SlurmBatch
from farmtools.bookkeeping import Bookkeeping, FileState
from farmtools.cli import app
from farmtools.processing import manager as manager_module
from farmtools.processing import polling
from farmtools.processing.jobs import JobRecord, JobStore
from farmtools.processing.manager import Manager
from farmtools.processing.script import JobPaths
from farmtools.rawdata.naming import parse_raw_name
from tests.eventually import eventually
from tests.integration.processing.daemon import write_farm
from tests.integration.processing.fifo import job_pid, make_fifo
from tests.processing_farm import drive, make_cfg, record_of, state_of, store, wait_job
from tests.servers.slurm import SlurmCluster


def _job(bk: Bookkeeping, name: str, index: int = -1) -> JobRecord:
    return JobStore(bk).of_file(name)[index]


def _stdout(job: JobRecord) -> Path:
    assert job.stdout is not None, job
    return Path(job.stdout)


def _first_failed(bk: Bookkeeping, name: str) -> bool:
    jobs = JobStore(bk).of_file(name)
    return bool(jobs) and jobs[0].state == "failed"


def _hanging(bk: Bookkeeping, tmp_path: Path, name: str) -> Path:
    """Point ``name``'s storage path at a FIFO: its job blocks until the FIFO is fed."""
    fifo = make_fifo(tmp_path / "fifo" / name)
    bk.update_fields(name, storage_path=str(fifo))
    return fifo


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_walltime_exceeded_is_resubmitted_with_more_walltime(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path / "farm", batch={"walltime": "00:00:01"}, processing={"cooloff_s": 0.2})
    bk = Bookkeeping.from_config(cfg)
    name = store(bk, cfg, 41, 0)
    real = record_of(bk, name).storage_path
    assert real is not None
    _hanging(bk, tmp_path, name)  # the first try hangs on its input past its 1 s
    manager = Manager(cfg, bk=bk)
    drive(manager, lambda: _first_failed(bk, name))
    bk.update_fields(name, storage_path=real)  # the storage answers again
    drive(manager, lambda: state_of(bk, name) == FileState.RECONSTRUCTED)
    first, second = JobStore(bk).of_file(name)
    assert first.failure == "walltime" and first.reason == "walltime of 1 s exceeded"
    assert first.walltime_used_s is not None and first.walltime_used_s >= 1.0
    assert first.signal == signal.SIGKILL  # the supervisor killed it
    assert second.walltime_s == 2 and second.failure is None and second.exit_code == 0
    retry = next(e for e in bk.story(name) if e.event == "retry")
    assert retry.details is not None
    assert retry.details["failure"] == "walltime" and retry.details["walltime_s"] == 2


def test_a_job_killed_by_a_signal_is_classified_and_resubmitted(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path / "farm", processing={"cooloff_s": 0.2})
    bk = Bookkeeping.from_config(cfg)
    name = store(bk, cfg, 42, 0)
    real = record_of(bk, name).storage_path
    assert real is not None
    _hanging(bk, tmp_path, name)
    manager = Manager(cfg, bk=bk)
    drive(manager, lambda: state_of(bk, name) == FileState.RUNNING)
    stdout = _stdout(_job(bk, name))
    drive(manager, lambda: stdout.exists() and "started" in stdout.read_text())
    pid = job_pid(stdout)
    os.killpg(pid, signal.SIGKILL)  # somebody (an OOM killer, a person) kills the job
    drive(manager, lambda: _first_failed(bk, name))
    bk.update_fields(name, storage_path=real)
    drive(manager, lambda: state_of(bk, name) == FileState.RECONSTRUCTED)
    first, second = JobStore(bk).of_file(name)
    assert first.failure == "signal" and first.signal == signal.SIGKILL
    assert first.reason == f"killed by signal {int(signal.SIGKILL)}"
    assert first.exit_code is None and second.exit_code == 0
    assert first.job_log is not None
    log = Path(first.job_log).read_text()  # the seed job log of the killed try is written
    assert f"Job ID           : {first.batch_id}\n" in log


def test_jobs_cancel_through_the_cli_stops_a_running_job(tmp_path: Path) -> None:
    config, cfg = write_farm(tmp_path / "farm", {})
    bk = Bookkeeping.from_config(cfg)
    name = store(bk, cfg, 43, 0)
    _hanging(bk, tmp_path, name)
    runner = CliRunner(env={"COLUMNS": "250"})
    conf = ["--config", str(config)]

    def process_once() -> None:
        assert runner.invoke(app, ["process", "once", *conf]).exit_code == 0

    eventually(
        lambda: state_of(bk, name),
        60,
        f"{name} running",
        until=lambda v: v == FileState.RUNNING,
        step=process_once,
    )
    job = _job(bk, name)
    stdout = _stdout(job)
    eventually(
        lambda: stdout.exists() and "started" in stdout.read_text(),
        60,
        "the job started (its stdout)",
    )
    pid = job_pid(stdout)
    assert _alive(pid)
    res = runner.invoke(app, ["jobs", "cancel", str(job.id), *conf])
    assert res.exit_code == 0 and f"asked local to cancel {job.batch_id}" in res.output
    eventually(
        lambda: bk.get(name),
        60,
        f"{name} failed (cancelled)",
        until=lambda r: r is not None and r.state == FileState.FAILED,
        step=process_once,
    )
    assert not _alive(pid)  # the job's processes are gone, not just forgotten
    jobs = JobStore(bk).of_file(name)
    assert len(jobs) == 1 and jobs[0].failure == "cancelled"  # not resubmitted
    last_error = record_of(bk, name).last_error
    assert last_error is not None and "cancelled" in last_error
    listed = runner.invoke(app, ["jobs", "list", "--file", name, *conf])
    assert "cancelled" in listed.output


def test_a_full_disk_while_writing_the_script_is_a_local_error_and_retried(
    tmp_path: Path,
) -> None:
    cfg = make_cfg(tmp_path / "farm", processing={"batch_retry_s": 0.2})
    bk = Bookkeeping.from_config(cfg)
    name = store(bk, cfg, 44, 0)
    manager = Manager(cfg, bk=bk)
    s = manager_module.PassSummary()
    manager.claim(s)
    job = _job(bk, name)
    raw = parse_raw_name(name)
    assert raw is not None
    script = JobPaths.of(cfg, raw, job.id).script
    script.parent.mkdir(parents=True)
    script.symlink_to("/dev/full")  # every write to it fails with ENOSPC, from the kernel
    manager.submit_due(s)
    manager.submit_due(s)  # due later: not tried again at once, not recorded twice
    job = _job(bk, name)
    assert job.state == "new" and job.failure is None, job
    assert job.reason is not None
    assert str(script) in job.reason and "No space left on device" in job.reason
    rec = record_of(bk, name)
    assert rec.state == FileState.QUEUED and rec.tries == 0
    errors = [e for e in bk.story(name) if e.event == "error"]
    assert len(errors) == 1 and errors[0].details is not None
    assert errors[0].details["failure"] == "local_error"
    assert s.errors and str(script) in s.errors[0]
    assert not any(a.kind == "submission_refused" for a in bk.alarms())
    script.unlink()  # space freed: the retry is due after batch_retry_s, drive() passes until then
    drive(manager, lambda: state_of(bk, name) == FileState.RECONSTRUCTED)
    (only,) = JobStore(bk).of_file(name)  # the same job, one try
    assert only.try_number == 1 and only.exit_code == 0


@pytest.mark.slurm
def test_slurm_refusing_the_submission_parks_the_file(
    slurm_cluster: SlurmCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in slurm_cluster.env.items():
        monkeypatch.setenv(k, v)
    cfg = make_cfg(
        tmp_path / "farm",
        batch={"backend": "slurm", "queue": "nosuchqueue"},
        processing={"max_tries": 2},
    )
    bk = Bookkeeping.from_config(cfg)
    name = store(bk, cfg, 45, 0)
    manager = Manager(cfg, bk=bk)
    drive(manager, lambda: state_of(bk, name) == FileState.FAILED)
    jobs = JobStore(bk).of_file(name)
    assert [j.failure for j in jobs] == ["submission_refused"] * 2
    assert all(j.batch_id is None for j in jobs)
    reason = jobs[0].reason
    assert reason is not None and "sbatch exited" in reason and "partition" in reason.lower()
    assert any(a.kind == "submission_refused" for a in bk.alarms())


class _SlowSacct(SlurmBatch):
    """The real Slurm, but sacct never has the final line yet (slurmdbd lagging behind).

    Exactly what ``parse_sacct`` returns while the job's record has not reached slurmdbd.
    """

    def accounting(self, job_id: str) -> None:
        return None


@pytest.mark.slurm
def test_a_completed_job_is_not_resubmitted_when_sacct_lags(
    slurm_cluster: SlurmCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(polling, "ACCOUNTING_GRACE_S", 1.0)
    cfg = make_cfg(tmp_path / "farm", batch={"backend": "slurm", "queue": "prod"})
    bk = Bookkeeping.from_config(cfg)
    good, bad = store(bk, cfg, 46, 0), store(bk, cfg, 46, 1, corrupt=True)
    manager = Manager(cfg, bk=bk, batch=_SlowSacct(slurm_cluster.env))
    drive(
        manager,
        lambda: (
            {state_of(bk, good), state_of(bk, bad)} == {FileState.RECONSTRUCTED, FileState.FAILED}
        ),
        timeout=120,
    )
    (j_good,) = JobStore(bk).of_file(good)  # one job each: nothing declared lost
    (j_bad,) = JobStore(bk).of_file(bad)
    assert j_good.exit_code == 0 and j_good.failure is None and j_good.node
    assert j_bad.exit_code == 65 and j_bad.failure == "corrupt_input"  # scontrol's exit code
    ended = next(e for e in bk.story(good) if e.event == "ended")
    assert ended.details is not None and "scontrol" in ended.details["batch_state"]


@pytest.mark.slurm
def test_scontrol_final_record_of_a_real_job(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    from farmtools.batch.base import Ending, JobSpec, JobStatus

    batch = SlurmBatch(slurm_cluster.env)
    script = tmp_path / "x.sh"
    script.write_text("#!/bin/bash\nexit 3\n")
    job = batch.submit(
        JobSpec("x", script, tmp_path / "x.out", tmp_path / "x.err", workdir=tmp_path)
    )
    wait_job(batch, job, JobStatus.FINISHED)
    # COMPLETING for a moment
    rec = eventually(
        lambda: batch.final_record(job),
        60,
        f"scontrol's final record of {job}",
        until=lambda r: r is not None,
        interval=0.2,
    )
    assert rec is not None
    assert rec.ending is Ending.COMPLETED and rec.exit_code == 3 and rec.node
    assert rec.started and rec.ended and rec.cpu_s is None
    assert batch.final_record("987654") is None  # unknown to the controller
