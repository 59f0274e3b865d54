"""The local backend against the real OS: detached supervisors, wait4 accounting, limits."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TypedDict, Unpack

import pytest

from farmtools.batch.base import Ending, JobSpec, JobStatus
from farmtools.batch.local import LocalBatch
from tests.eventually import eventually
from tests.processing_farm import wait_job


class _Limits(TypedDict, total=False):
    """The resource limits a test may set; the others keep :class:`JobSpec`'s defaults."""

    walltime_s: int
    memory_mb: int


def _spec(tmp: Path, name: str, body: str, **limits: Unpack[_Limits]) -> JobSpec:
    script = tmp / f"{name}.sh"
    script.write_text("#!/bin/bash\n" + body + "\n")
    return JobSpec(name, script, tmp / f"{name}.out", tmp / f"{name}.err", workdir=tmp, **limits)


def _wait(batch: LocalBatch, ids: list[str], timeout: float = 60.0) -> None:
    eventually(
        lambda: batch.states(ids),
        timeout,
        f"jobs {ids} finished",
        until=lambda states: all(s is JobStatus.FINISHED for s in states.values()),
    )


def test_exit_code_cpu_rss_and_output(tmp_path: Path) -> None:
    batch = LocalBatch(tmp_path / "pool", slots=2)
    burn = "python3 -c 'b = bytearray(60_000_000); s = sum(range(2_000_000))'"
    ok = batch.submit(_spec(tmp_path, "ok", f"echo hello; {burn}"))
    bad = batch.submit(_spec(tmp_path, "bad", "echo oops >&2; exit 3"))
    _wait(batch, [ok, bad])
    a, b = batch.accounting(ok), batch.accounting(bad)
    assert a is not None and b is not None
    assert (a.ending, a.exit_code) == (Ending.COMPLETED, 0)
    assert (b.ending, b.exit_code) == (Ending.COMPLETED, 3)
    assert a.max_rss_kb is not None and a.max_rss_kb > 60_000  # the child's bytearray counts
    assert a.cpu_s is not None and a.cpu_s > 0
    assert a.started is not None and a.ended is not None and a.submitted is not None
    assert a.submitted <= a.started <= a.ended
    assert (tmp_path / "ok.out").read_text() == "hello\n"
    assert (tmp_path / "bad.err").read_text() == "oops\n"


def test_signal_walltime_and_memory_limits(tmp_path: Path) -> None:
    batch = LocalBatch(tmp_path / "pool", slots=3)
    sig = batch.submit(_spec(tmp_path, "sig", "kill -SEGV $$"))
    wall = batch.submit(_spec(tmp_path, "wall", "sleep 30", walltime_s=1))
    mem = batch.submit(
        _spec(
            tmp_path,
            "mem",
            "python3 -c 'import time; b = bytearray(200_000_000); time.sleep(30)'",
            memory_mb=64,
        )
    )
    _wait(batch, [sig, wall, mem])
    s, w, m = (batch.accounting(i) for i in (sig, wall, mem))
    assert s is not None and s.ending is Ending.SIGNALLED and s.signal == signal.SIGSEGV
    assert w is not None and w.ending is Ending.TIMEOUT and w.walltime_s is not None
    assert w.walltime_s < 30
    assert m is not None and m.ending is Ending.OUT_OF_MEMORY
    assert m.max_rss_kb is not None and m.max_rss_kb > 64 * 1024


def test_a_memory_peak_shorter_than_the_poll_is_still_out_of_memory(tmp_path: Path) -> None:
    # allocate and exit at once: the peak often lasts less than the supervisor's tick (the
    # poll may or may not see it; the reaped rusage always does).  A cgroup or TORQUE limit on
    # the farm would have killed this job, so the pool must not pass it either.
    batch = LocalBatch(tmp_path / "pool", slots=1)
    spike = "python3 -c 'b = bytearray(150_000_000)'"
    job = batch.submit(_spec(tmp_path, "spike", spike, memory_mb=64))
    _wait(batch, [job])
    acc = batch.accounting(job)
    assert acc is not None and acc.ending is Ending.OUT_OF_MEMORY
    assert acc.exit_code in (0, None)  # ran to its end, or killed by the poll
    assert acc.max_rss_kb is not None and acc.max_rss_kb > 64 * 1024


def test_slots_limit_parallel_jobs_and_the_queue_drains_without_a_manager(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    batch = LocalBatch(pool, slots=2)
    marks = tmp_path / "marks"
    marks.mkdir()
    # each job records how many jobs run beside it
    body = (
        f"touch {marks}/$FARMTOOLS_JOB_ID; sleep 0.4; ls {marks} | wc -l > "
        f"{tmp_path}/seen.$FARMTOOLS_JOB_ID; rm {marks}/$FARMTOOLS_JOB_ID"
    )
    ids = [batch.submit(_spec(tmp_path, f"j{i}", body)) for i in range(5)]
    states = batch.states(ids)
    assert list(states.values()).count(JobStatus.PENDING) >= 3
    del batch  # the "manager" goes away: supervisors start the pending jobs themselves
    eventually(
        lambda: len(list(pool.glob("jobs/*/accounting.json"))),
        60,
        "5 jobs accounted without a manager",
        until=lambda n: n == 5,
    )
    again = LocalBatch(pool, slots=2)  # a new manager picks the jobs up by id
    assert set(again.states(ids).values()) == {JobStatus.FINISHED}
    seen = [int((tmp_path / f"seen.{i}").read_text()) for i in ids]
    assert max(seen) <= 2
    assert all(a is not None and a.exit_code == 0 for a in map(again.accounting, ids))


def test_cancel_pending_and_running(tmp_path: Path) -> None:
    batch = LocalBatch(tmp_path / "pool", slots=1)
    running = batch.submit(_spec(tmp_path, "r", "sleep 30"))
    pending = batch.submit(_spec(tmp_path, "p", "echo never"))
    wait_job(batch, running, JobStatus.RUNNING, 30)
    _wait_started(tmp_path / "pool" / "jobs" / running)
    batch.cancel(pending)
    batch.cancel(running)
    _wait(batch, [running, pending])
    for i in (running, pending):
        acc = batch.accounting(i)
        assert acc is not None and acc.ending is Ending.CANCELLED
    assert not (tmp_path / "p.out").exists() or (tmp_path / "p.out").read_text() == ""


def test_a_cancel_between_dispatch_and_start_is_not_lost(tmp_path: Path) -> None:
    # The window: the pool has taken the job out of the queue and given it a slot, but its
    # supervisor has not written started.json yet (Python start-up, 100-300 ms), so its pid is
    # unknown.  A cancel sent then used to do nothing and the job ran to its end (seen on CI).
    # The window is made by hand here, as _schedule() makes it, and the real supervisor started.
    batch = LocalBatch(tmp_path / "pool", slots=0)  # no slot: the job stays queued
    job = batch.submit(_spec(tmp_path, "c", "echo ran > ran.txt"))
    pool = tmp_path / "pool"
    (pool / "run" / job).touch()
    (pool / "queue" / job).unlink()
    assert batch.states([job]) == {job: JobStatus.RUNNING}
    batch.cancel(job)
    subprocess.run([sys.executable, "-m", "farmtools.batch.supervisor", str(pool / "jobs" / job)])
    _wait(batch, [job])
    acc = batch.accounting(job)
    assert acc is not None and acc.ending is Ending.CANCELLED and acc.exit_code is None
    assert not (tmp_path / "ran.txt").exists()  # the script never started
    assert not (pool / "run" / job).exists()  # and its slot is free


def test_a_cancel_request_stops_a_running_job_without_a_signal(tmp_path: Path) -> None:
    # the supervisor reads the request at every tick, whether or not a SIGTERM reached it
    from farmtools.batch.jobdir import CANCEL_FILE

    batch = LocalBatch(tmp_path / "pool", slots=1)
    job = batch.submit(_spec(tmp_path, "r", "sleep 30"))
    jobdir = tmp_path / "pool" / "jobs" / job
    _wait_started(jobdir)
    (jobdir / CANCEL_FILE).touch()
    _wait(batch, [job], timeout=20)
    acc = batch.accounting(job)
    assert acc is not None and acc.ending is Ending.CANCELLED
    assert acc.walltime_s is not None and acc.walltime_s < 20


def _wait_started(jobdir: Path) -> None:
    eventually((jobdir / "started.json").exists, 30, f"{jobdir.name}'s supervisor started")


def test_a_dead_supervisor_is_a_node_failure(tmp_path: Path) -> None:
    batch = LocalBatch(tmp_path / "pool", slots=1)
    job = batch.submit(_spec(tmp_path, "x", "sleep 30"))
    _wait_started(tmp_path / "pool" / "jobs" / job)
    info = json.loads((tmp_path / "pool" / "jobs" / job / "started.json").read_text())
    os.kill(info["supervisor"], signal.SIGKILL)  # the "machine" loses the supervisor
    os.killpg(info["pid"], signal.SIGKILL)
    _wait(batch, [job])
    acc = batch.accounting(job)
    assert acc is not None and acc.ending is Ending.NODE_FAIL


def test_a_supervisor_that_never_started_frees_its_slot(tmp_path: Path) -> None:
    # a slot taken at launch whose supervisor vanished before writing started.json (a reboot,
    # a kill in its first second): after the grace the job is a node failure and the next runs
    from farmtools.batch import local

    batch = LocalBatch(tmp_path / "pool", slots=1)
    lost = batch.submit(_spec(tmp_path, "lost", "sleep 30"))
    _wait_started(tmp_path / "pool" / "jobs" / lost)
    jobdir = tmp_path / "pool" / "jobs" / lost
    info = json.loads((jobdir / "started.json").read_text())
    os.kill(info["supervisor"], signal.SIGKILL)
    os.killpg(info["pid"], signal.SIGKILL)
    (jobdir / "started.json").unlink()  # as if it had died before writing it
    (jobdir / "supervisor.pid").unlink()  # or its pid (else it is known dead at once)
    nxt = batch.submit(_spec(tmp_path, "next", "true"))
    assert batch.states([lost, nxt]) == {lost: JobStatus.RUNNING, nxt: JobStatus.PENDING}
    marker = tmp_path / "pool" / "run" / lost
    old = time.time() - local.START_GRACE_S - 1
    os.utime(marker, (old, old))
    _wait(batch, [lost, nxt])
    acc = batch.accounting(lost)
    assert acc is not None and acc.ending is Ending.NODE_FAIL
    assert "never started" in str(acc.extra["error"])
    done = batch.accounting(nxt)
    assert done is not None and done.ending is Ending.COMPLETED and done.exit_code == 0


def test_an_empty_next_id_is_recovered_from_the_job_directories(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A manager SIGKILLed inside write_text() left next_id empty; every later submission raised
    # ValueError and cost its file a try.  Now the highest job directory says where to go on.
    pool = tmp_path / "pool"
    batch = LocalBatch(pool, slots=0)  # nothing runs: only the ids matter
    first = [batch.submit(_spec(tmp_path, f"a{i}", "true")) for i in range(3)]
    (pool / "next_id").write_text("")
    with caplog.at_level(logging.WARNING, logger="farmtools.batch"):
        after_empty = batch.submit(_spec(tmp_path, "b", "true"))
    assert after_empty == "4" and first == ["1", "2", "3"]
    assert "next_id is unreadable" in caplog.text
    (pool / "next_id").write_text("2")  # an old copy: ids 3 and 4 are taken
    assert batch.submit(_spec(tmp_path, "c", "true")) == "5"
    (pool / "next_id").unlink()
    assert batch.submit(_spec(tmp_path, "d", "true")) == "6"
    assert json.loads((pool / "jobs" / "6" / "spec.json").read_text())["name"] == "d"


def test_an_unreadable_slots_file_runs_one_job_at_a_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from farmtools.batch.local import LocalPool

    LocalBatch(tmp_path / "pool", slots=3)
    assert LocalPool(tmp_path / "pool").slots == 3  # what a supervisor reads
    (tmp_path / "pool" / "slots").write_text("")
    with caplog.at_level(logging.WARNING, logger="farmtools.batch"):
        assert LocalPool(tmp_path / "pool").slots == 1
    assert "slots is unreadable" in caplog.text


def test_state_files_are_replaced_never_rewritten_in_place(tmp_path: Path) -> None:
    # the proof of atomicity that does not depend on timing: a reader holding the old file
    # keeps the old inode (a rename replaced it), and no temporary file is left behind
    pool = tmp_path / "pool"
    batch = LocalBatch(pool, slots=0)
    batch.submit(_spec(tmp_path, "a", "true"))
    before = (pool / "next_id").stat().st_ino
    slots_before = (pool / "slots").stat().st_ino
    batch.submit(_spec(tmp_path, "b", "true"))
    LocalBatch(pool, slots=0)
    assert (pool / "next_id").stat().st_ino != before
    assert (pool / "slots").stat().st_ino != slots_before
    assert (pool / "next_id").read_text() == "2"
    assert not [p for p in pool.rglob("*.tmp")]


def test_a_job_is_found_by_its_key_and_one_never_queued_is_queued(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    batch = LocalBatch(pool, slots=1)
    spec = _spec(tmp_path, "k", "echo ran")
    keyed = JobSpec(**{**spec.__dict__, "key": "5-0badcafe"})
    assert batch.find(keyed) is None
    job = batch.submit(keyed)
    assert batch.find(keyed) == job
    _wait(batch, [job])
    assert batch.find(keyed) == job  # ended jobs too
    # a submitter killed between the key's link and the queue marker: the job is in no state
    held = LocalBatch(pool, slots=0)
    limbo = held.submit(JobSpec(**{**spec.__dict__, "key": "6-0badcafe"}))
    (pool / "queue" / limbo).unlink()
    again = LocalBatch(pool, slots=1)
    assert again.find(JobSpec(**{**spec.__dict__, "key": "6-0badcafe"})) == limbo
    _wait(again, [limbo])
    acc = again.accounting(limbo)
    assert acc is not None and acc.exit_code == 0


def _kill_supervisor(pid: int) -> None:
    """SIGKILL a supervisor and wait until it is dead (a zombie until init reaps it)."""
    from farmtools.batch.local import pid_alive

    os.kill(pid, signal.SIGKILL)
    eventually(lambda: not pid_alive(pid), 30, f"supervisor {pid} gone after SIGKILL")


def test_an_orphan_keeps_its_slot_and_is_collected_when_it_ends(tmp_path: Path) -> None:
    # The supervisor is killed while its job runs on.  That job is not a node failure while it
    # runs: it stays RUNNING and holds its slot (the next job waits), and it is collected once
    # its session has ended.  It used to be declared node_fail at once and its slot given away.
    pool = tmp_path / "pool"
    batch = LocalBatch(pool, slots=1)
    gate = tmp_path / "gate"
    orphan = batch.submit(
        _spec(tmp_path, "o", f"while [ ! -e {gate} ]; do sleep 0.05; done; echo ran > o.txt")
    )
    jobdir = pool / "jobs" / orphan
    _wait_started(jobdir)
    info = json.loads((jobdir / "started.json").read_text())
    _kill_supervisor(info["supervisor"])
    nxt = batch.submit(_spec(tmp_path, "n", "true"))
    for _ in range(5):  # several polls while the orphan runs on
        assert batch.states([orphan, nxt]) == {
            orphan: JobStatus.RUNNING,
            nxt: JobStatus.PENDING,
        }
        time.sleep(0.05)  # the polls' spacing is what is tested, not a wait for something
    assert (jobdir / "orphan").exists()
    gate.touch()
    _wait(batch, [orphan, nxt])
    assert (tmp_path / "o.txt").read_text() == "ran\n"  # it ran to its end
    acc = batch.accounting(orphan)
    assert acc is not None and acc.ending is Ending.NODE_FAIL  # the pool has no exit code
    assert "ran on and ended" in str(acc.extra["error"])
    done = batch.accounting(nxt)
    assert done is not None and done.started is not None and acc.ended is not None
    assert done.started >= acc.ended  # never beside the orphan


def test_cancelling_an_orphan_stops_its_job(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    batch = LocalBatch(pool, slots=1)
    job = batch.submit(_spec(tmp_path, "o", "sleep 60"))
    jobdir = pool / "jobs" / job
    _wait_started(jobdir)
    info = json.loads((jobdir / "started.json").read_text())
    _kill_supervisor(info["supervisor"])
    assert batch.states([job]) == {job: JobStatus.RUNNING}
    batch.cancel(job)
    _wait(batch, [job], timeout=20)
    acc = batch.accounting(job)
    assert acc is not None and acc.ending is Ending.CANCELLED
    assert acc.walltime_s is None or acc.walltime_s < 20
    from farmtools.batch.local import session_alive

    assert not session_alive(info["pid"], info["pid_created"])  # its sleep 60 was stopped


def test_a_supervisor_killed_before_it_recorded_the_start_leaves_an_orphan_not_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The supervisor is killed between starting the script and writing started.json (the fault
    # hook kills it right there).  Its script runs on in the supervisor's session: the job is an
    # orphan, running and holding its slot, not a node failure after the start grace.
    from farmtools.faults import FAULT_ENV

    pool = tmp_path / "pool"
    gate = tmp_path / "gate"
    monkeypatch.setenv(FAULT_ENV, "supervisor-started:kill")  # inherited by the supervisor
    batch = LocalBatch(pool, slots=1)
    job = batch.submit(
        _spec(tmp_path, "o", f"while [ ! -e {gate} ]; do sleep 0.05; done; echo ran > o.txt")
    )
    monkeypatch.delenv(FAULT_ENV)
    jobdir = pool / "jobs" / job

    def orphan_seen() -> bool:
        assert batch.states([job]) == {job: JobStatus.RUNNING}
        return (jobdir / "orphan").exists()

    eventually(orphan_seen, 30, "the orphan seen by the pool")
    assert not (jobdir / "started.json").exists()
    nxt = batch.submit(_spec(tmp_path, "n", "true"))
    assert batch.states([job, nxt]) == {job: JobStatus.RUNNING, nxt: JobStatus.PENDING}
    gate.touch()
    _wait(batch, [job, nxt])
    assert (tmp_path / "o.txt").read_text() == "ran\n"
    acc = batch.accounting(job)
    assert acc is not None and acc.ending is Ending.NODE_FAIL
    assert "ran on and ended" in str(acc.extra["error"])


def test_a_job_does_not_inherit_the_daemons_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manager holds the bookkeeping password in its environment; its jobs must not."""
    monkeypatch.setenv("FARMTOOLS_DB_PASSWORD", "s3cret-db")
    monkeypatch.setenv("FARMTOOLS_SMTP_TOKEN", "s3cret-mail")
    monkeypatch.setenv("FARMTOOLS_TEST_PLAIN", "kept")
    batch = LocalBatch(tmp_path / "pool", slots=1)
    job = batch.submit(_spec(tmp_path, "env", "env"))
    _wait(batch, [job])
    env = (tmp_path / "env.out").read_text()
    assert "FARMTOOLS_TEST_PLAIN=kept" in env and "FARMTOOLS_JOB_ID=" in env
    assert "s3cret" not in env
