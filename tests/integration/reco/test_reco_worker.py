"""The node's reconstruction worker and the light client a job runs (issue 22, start-up tax).

A real ``farmtools reco-worker`` process serves real ``python -m farmtools.job.recoclient``
jobs over a unix socket: the output is the in-process one, the job's stdout and stderr get the
reconstruction's lines, the exit codes keep their failure classes, the child's CPU and memory
come back per file; with no worker the client reconstructs in the job itself; a child that
dies, a job that goes away and a worker that dies are each one clear, retryable outcome.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from farmtools.challenge.recocost import same_output
from farmtools.job.exitcodes import EX_DATAERR
from farmtools.job.recoclient import EX_TEMPFAIL, read_usage, usage_path
from tests.eventually import eventually

RECO = ["--detector", "3x1x1", "--threads", "1"]


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-event compressed 3x1x1 file."""
    from farmtools.emulator.daq import RunPlan, emulate_run
    from farmtools.emulator.settings import EmulatorSettings

    out = tmp_path_factory.mktemp("raw")
    plan = RunPlan(run=771, events_per_file=1, compress=True)
    (info,) = emulate_run(out, EmulatorSettings(seed=771), plan)
    return info.path


def _start_worker(socket_path: Path, *options: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "farmtools", "reco-worker", "--socket", str(socket_path), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    eventually(
        lambda: socket_path.is_socket() or proc.poll() is not None, 120, "the worker listening"
    )
    assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    return out.decode()


@pytest.fixture(scope="module")
def worker(raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A warmed-up worker (on ``raw``) shared by the tests that leave it running."""
    socket_path = tmp_path_factory.mktemp("worker") / "reco.sock"
    proc = _start_worker(socket_path, "--warm", str(raw))
    yield socket_path
    log = _stop(proc)
    assert proc.returncode == 0, log
    assert not socket_path.exists()  # removed at the stop: new jobs reconstruct in-process


def _client(
    socket_path: Path, args: list[str], workdir: Path, usage: Path | None = None
) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "farmtools.job.recoclient", "--socket", str(socket_path)]
    if usage is not None:
        argv += ["--usage", str(usage)]
    return subprocess.Popen(
        [*argv, "--", *args, *RECO],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its new parent to reap it does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def test_a_job_through_the_worker_is_the_in_process_job(
    worker: Path, raw: Path, tmp_path: Path
) -> None:
    # a relative output: the child works in the job's directory
    status = tmp_path / "job.status"
    proc = _client(worker, [str(raw), "-o", "out.root"], tmp_path, usage=usage_path(status))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"{raw}: 1 events" in out  # the reconstruction's summary, in the job's own stdout
    assert "reconstructed by the worker" in out
    alone = tmp_path / "alone.root"
    subprocess.run(
        [sys.executable, "-m", "farmtools", "reco", str(raw), "-o", str(alone), *RECO, "-q"],
        check=True,
    )
    assert same_output(tmp_path / "out.root", alone)
    assert worker.stat().st_mode & 0o777 == 0o600  # the account's alone
    usage = read_usage(status)
    assert usage is not None
    assert usage["exit"] == 0 and usage["cpu_s"] > 0 and usage["max_rss_kb"] > 0
    assert usage["pid"] not in (proc.pid, os.getpid())


def test_a_corrupt_file_keeps_its_exit_code_and_message(
    worker: Path, raw: Path, tmp_path: Path
) -> None:
    bad = tmp_path / raw.name
    bad.write_bytes(raw.read_bytes()[: raw.stat().st_size // 2])
    proc = _client(worker, [str(bad), "-o", str(tmp_path / "bad.root")], tmp_path)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EX_DATAERR
    assert "corrupt input" in err and f"{bad}', event 0" in err
    assert not (tmp_path / "bad.root").exists()


def test_without_a_worker_the_job_reconstructs_itself(raw: Path, tmp_path: Path) -> None:
    proc = _client(tmp_path / "nobody.sock", [str(raw), "-o", "out.root"], tmp_path)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert "no reconstruction worker at" in out and f"{raw}: 1 events" in out
    assert (tmp_path / "out.root").stat().st_size > 0


def test_a_child_that_dies_fails_its_job_only(raw: Path, tmp_path: Path) -> None:
    socket_path = tmp_path / "reco.sock"
    server = _start_worker(socket_path, "--no-warm")  # cold: a child runs for seconds
    try:
        job = _client(socket_path, [str(raw), "-o", "out.root"], tmp_path)
        (child,) = eventually(lambda: _children(server.pid), 60, "the job's child")
        os.kill(child, signal.SIGKILL)
        _, err = job.communicate(timeout=60)
        assert job.returncode == 128 + signal.SIGKILL
        assert f"the worker's process for {raw} was killed by SIGKILL" in err
        # the worker serves the next job
        again = _client(socket_path, [str(raw), "-o", "again.root"], tmp_path)
        _, err = again.communicate(timeout=240)
        assert again.returncode == 0, err
    finally:
        log = _stop(server)
    assert server.returncode == 0, log


def test_a_job_that_goes_away_takes_its_child_with_it(raw: Path, tmp_path: Path) -> None:
    socket_path = tmp_path / "reco.sock"
    server = _start_worker(socket_path, "--no-warm")
    try:
        job = _client(socket_path, [str(raw), "-o", "out.root"], tmp_path)
        (child,) = eventually(lambda: _children(server.pid), 60, "the job's child")
        job.kill()  # scancel, wall-time: the batch system kills the job's processes
        job.communicate(timeout=60)
        eventually(lambda: child not in _children(server.pid), 30, "the child killed")
        assert server.poll() is None
    finally:
        _stop(server)
    assert not (tmp_path / "out.root").exists()


def test_a_worker_that_dies_ends_its_jobs_retryably(raw: Path, tmp_path: Path) -> None:
    socket_path = tmp_path / "reco.sock"
    server = _start_worker(socket_path, "--no-warm")
    job = _client(socket_path, [str(raw), "-o", "out.root"], tmp_path, usage=tmp_path / "u")
    (child,) = eventually(lambda: _children(server.pid), 60, "the job's child")
    server.kill()
    _stop(server)
    _, err = job.communicate(timeout=60)
    assert job.returncode == EX_TEMPFAIL
    assert "went away during the job" in err and str(raw) in err
    eventually(lambda: not _alive(child), 30, "the orphan child gone")
    assert not (tmp_path / "u").exists()  # nothing to add to the job's accounting
