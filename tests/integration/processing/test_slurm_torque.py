"""Slurm and TORQUE backends against a real one-node Slurm with slurmdbd (tests/servers/slurm.py).

TORQUE is driven through Slurm's qsub/qstat/qdel wrappers (slurm-wlm-torque); what they cannot
show (exit_status, resources_used) is covered by tests/unit/batch/test_parsers.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from farmtools.batch.base import BatchUnavailable, Ending, JobSpec, JobStatus
from farmtools.batch.slurm import SlurmBatch
from farmtools.batch.torque import TorqueBatch
from farmtools.bookkeeping import Bookkeeping, Event, FileState
from farmtools.job.recoclient import read_usage
from farmtools.processing.jobs import JobStore
from farmtools.processing.manager import Manager
from tests.eventually import eventually
from tests.processing_farm import drive, make_cfg, state_of, store, wait_job
from tests.servers.process import free_port
from tests.servers.slurm import SlurmCluster
from tests.states import walk

pytestmark = pytest.mark.slurm


def _spec(tmp: Path, name: str, body: str) -> JobSpec:
    script = tmp / f"{name}.sh"
    script.write_text("#!/bin/bash\n" + body + "\n")
    return JobSpec(
        name,
        script,
        tmp / f"{name}.out",
        tmp / f"{name}.err",
        queue="prod",
        walltime_s=120,
        memory_mb=500,
        workdir=tmp,
    )


def _accounting(batch: Any, job_id: str, timeout: float = 90.0) -> Any:
    def state_and_accounting() -> tuple[JobStatus, Any]:
        state = batch.states([job_id])[job_id]
        return state, batch.accounting(job_id) if state is JobStatus.FINISHED else None

    _, acc = eventually(
        state_and_accounting,
        timeout,
        f"accounting of job {job_id}",
        until=lambda sa: sa[1] is not None,
        interval=0.2,
    )
    return acc


def test_slurm_exit_code_cpu_and_max_rss_from_sacct(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    batch = SlurmBatch(slurm_cluster.env)
    assert batch.available()
    burn = (
        "python3 -c 'import time; b = bytearray(120_000_000); t = time.process_time(); "
        'exec("while time.process_time() - t < 1.2: pass"); time.sleep(1.5)\''
    )
    job = batch.submit(_spec(tmp_path, "reco_run1-seq0", f"echo hello; {burn}; exit 3"))
    assert job.isdigit()
    acc = _accounting(batch, job)
    assert acc.ending is Ending.COMPLETED and acc.exit_code == 3
    assert acc.cpu_s is not None and acc.cpu_s >= 1.0
    assert acc.max_rss_kb is not None and acc.max_rss_kb > 100_000  # sampled by jobacct_gather
    assert acc.node and acc.started and acc.ended and acc.walltime_s >= 2
    assert (tmp_path / "reco_run1-seq0.out").read_text() == "hello\n"


def test_a_slurm_job_does_not_inherit_the_submitters_secrets(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    """sbatch exports its whole environment to the job: the manager's password must not go."""
    env = {**slurm_cluster.env, "FARMTOOLS_DB_PASSWORD": "s3cret-db", "PLAIN_VAR": "kept"}
    batch = SlurmBatch(env)
    job = batch.submit(_spec(tmp_path, "env", "env"))
    assert _accounting(batch, job).exit_code == 0
    out = (tmp_path / "env.out").read_text()
    assert "PLAIN_VAR=kept" in out and "s3cret" not in out


def test_slurm_refuses_an_unknown_partition(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    from farmtools.batch.base import SubmissionRefused

    spec = _spec(tmp_path, "x", "true")
    bad = JobSpec(
        spec.name, spec.script, spec.stdout, spec.stderr, queue="nosuchqueue", workdir=tmp_path
    )
    with pytest.raises(SubmissionRefused, match=r"nosuchqueue|partition"):
        SlurmBatch(slurm_cluster.env).submit(bad)


def test_torque_wrappers_submit_poll_and_cancel(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    batch = TorqueBatch(slurm_cluster.env)
    assert batch.available()
    done = batch.submit(_spec(tmp_path, "reco_run2-seq0", "echo from-torque"))
    slow = batch.submit(_spec(tmp_path, "reco_run2-seq1", "sleep 60"))
    acc = _accounting(batch, done)
    assert acc.ending is Ending.COMPLETED
    assert acc.exit_code is None  # the wrappers have no exit_status: the manager's status file
    assert (tmp_path / "reco_run2-seq0.out").read_text() == "from-torque\n"
    wait_job(batch, slow, JobStatus.RUNNING)
    batch.cancel(slow)
    wait_job(batch, slow, JobStatus.FINISHED)


def test_a_job_asking_for_two_cores_gets_them_from_slurm_and_the_torque_wrappers(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    """JobSpec.cores reaches the real batch system: Slurm accepts --cpus-per-task and says
    so to the job; the TORQUE wrappers accept nodes=1:ppn=N (they make it N tasks)."""
    show = 'echo "cpus=${SLURM_CPUS_PER_TASK:-} tasks=${SLURM_NTASKS:-}"'
    jobs = []
    for batch in (SlurmBatch(slurm_cluster.env), TorqueBatch(slurm_cluster.env)):
        spec = JobSpec(**{**_spec(tmp_path, f"cores_{batch.name}", show).__dict__, "cores": 2})
        jobs.append((batch, batch.submit(spec)))
    for batch, job in jobs:
        assert _accounting(batch, job).ending is Ending.COMPLETED
    assert "cpus=2" in (tmp_path / "cores_slurm.out").read_text().split()
    assert "tasks=2" in (tmp_path / "cores_torque.out").read_text().split()


@pytest.mark.parametrize("backend", ["slurm", "torque"])
def test_manager_on_slurm_and_torque(
    slurm_cluster: SlurmCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    for k, v in slurm_cluster.env.items():
        monkeypatch.setenv(k, v)
    cfg = make_cfg(tmp_path / "farm", batch={"backend": backend, "queue": "prod"})
    bk = Bookkeeping.from_config(cfg)
    good = store(bk, cfg, 21, 0)
    bad = store(bk, cfg, 21, 1, corrupt=True)
    manager = Manager(cfg, bk=bk)
    drive(
        manager,
        lambda: (
            {state_of(bk, good), state_of(bk, bad)} == {FileState.RECONSTRUCTED, FileState.FAILED}
        ),
        120,
        "one file reconstructed, the corrupt one failed",
    )
    assert state_of(bk, good) == FileState.RECONSTRUCTED
    j_good, j_bad = JobStore(bk).of_file(good)[0], JobStore(bk).of_file(bad)[0]
    assert j_good.exit_code == 0 and j_bad.exit_code == 65 and j_bad.failure == "corrupt_input"
    assert j_good.backend == backend and j_good.batch_id
    if backend == "slurm":
        assert j_good.cpu_s is not None and j_good.node
    assert j_good.job_log is not None
    log = Path(j_good.job_log).read_text()
    assert f"Job ID           : {j_good.batch_id}\n" in log
    assert "exit code        : 0\n" in log


def test_batch_down_then_up_loses_nothing(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    # a slurm.conf naming a controller port nobody listens on: the real sbatch fails to connect
    conf = Path(slurm_cluster.env["SLURM_CONF"]).read_text()
    down_conf = tmp_path / "down" / "slurm.conf"
    down_conf.parent.mkdir()
    lines = [
        f"SlurmctldPort={free_port()}" if ln.startswith("SlurmctldPort=") else ln
        for ln in conf.splitlines()
    ]
    lines.append("MessageTimeout=2")
    down_conf.write_text("\n".join(lines) + "\n")
    down_env = {**slurm_cluster.env, "SLURM_CONF": str(down_conf)}
    cfg = make_cfg(tmp_path / "farm", batch={"backend": "slurm"}, processing={"batch_retry_s": 0.1})
    bk = Bookkeeping.from_config(cfg)
    names = [store(bk, cfg, 22, s) for s in range(2)]
    down = SlurmBatch(down_env, timeout=20)
    with pytest.raises(BatchUnavailable):
        down.submit(_spec(tmp_path, "x", "true"))
    manager = Manager(cfg, bk=bk, batch=down)
    s = manager.run_once()
    assert s.batch_down and s.submitted == 0
    assert {state_of(bk, n) for n in names} == {FileState.QUEUED}
    assert any(e.event == "error" for e in bk.story(names[0]))
    manager.batch = SlurmBatch(slurm_cluster.env)  # the controller is back
    # the retry is due after batch_retry_s: drive() passes until then
    drive(manager, lambda: {state_of(bk, n) for n in names} == {FileState.RECONSTRUCTED}, 120)
    assert all(len(JobStore(bk).of_file(n)) == 1 for n in names)


@pytest.mark.parametrize("backend", [SlurmBatch, TorqueBatch])
def test_a_job_is_found_again_by_its_idempotency_key(
    slurm_cluster: SlurmCluster, tmp_path: Path, backend: type[SlurmBatch | TorqueBatch]
) -> None:
    # what a manager killed between submit and recording the batch id relies on (issue 13)
    batch = backend(slurm_cluster.env)
    base = _spec(tmp_path, "reco_run3-seq0", "sleep 1")
    spec = JobSpec(**{**base.__dict__, "key": f"17-{batch.name}"})  # one cluster for both
    other = JobSpec(**{**base.__dict__, "key": f"18-{batch.name}"})
    assert batch.find(spec) is None
    job = batch.submit(spec)
    assert batch.find(spec) == job.split(".")[0]  # pending or running
    _accounting(batch, job)
    assert batch.find(spec) == job.split(".")[0]  # and once it has ended
    assert batch.find(other) is None


def test_slurm_jobs_hand_their_files_to_the_node_worker(
    slurm_cluster: SlurmCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22: with processing.reco_worker_socket, the reconstruction jobs Slurm runs on a
    node hand their files to that node's worker; accounting and failure classes stay per file."""
    from farmtools.challenge.recocost import node_worker
    from farmtools.emulator.daq import RunPlan, emulate_run
    from farmtools.emulator.settings import EmulatorSettings

    for k, v in slurm_cluster.env.items():
        monkeypatch.setenv(k, v)
    sock = tmp_path / "node" / "reco.sock"
    cfg = make_cfg(
        tmp_path / "farm",
        batch={"backend": "slurm", "queue": "prod"},
        processing={"program": "reco", "reco_worker_socket": str(sock)},
    )
    bk = Bookkeeping.from_config(cfg)
    (raw,) = emulate_run(
        cfg.path(cfg.storage.input) / "run23",
        EmulatorSettings(seed=23),
        RunPlan(23, 1, events_per_file=2),
    )
    bk.register_file(
        raw.path.name,
        source_path=f"/evb/{raw.path.name}",
        run=23,
        seq=0,
        size=raw.path.stat().st_size,
        daq_write_time=None,
    )
    good = raw.path.name
    walk(bk, good, FileState.STORED, Event.VERIFIED, fields={"storage_path": str(raw.path)})
    bad = store(bk, cfg, 23, 1, corrupt=True)
    with node_worker(sock, warm=raw.path):
        drive(
            Manager(cfg, bk=bk),
            lambda: (
                {state_of(bk, good), state_of(bk, bad)}
                == {FileState.RECONSTRUCTED, FileState.FAILED}
            ),
            180,
            "the emulated file reconstructed, the corrupt one failed",
        )
    j_good, j_bad = JobStore(bk).of_file(good)[0], JobStore(bk).of_file(bad)[0]
    assert j_bad.exit_code == 65 and j_bad.failure == "corrupt_input"
    assert j_good.exit_code == 0 and j_good.stdout is not None
    assert "reconstructed by the worker at" in Path(j_good.stdout).read_text()
    usage = read_usage(j_good.status_file)
    assert usage is not None and j_good.cpu_s is not None and j_good.max_rss_kb is not None
    assert j_good.cpu_s >= usage["cpu_s"] and j_good.max_rss_kb >= usage["max_rss_kb"]
