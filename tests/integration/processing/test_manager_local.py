"""The processing manager on the local backend, with a real SMTP server and a real HTTP webhook."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from farmtools.bookkeeping import Bookkeeping, FileState
from farmtools.config import FarmConfig
from farmtools.processing.jobs import JobStore
from farmtools.processing.manager import Manager
from tests.eventually import eventually
from tests.processing_farm import drive, make_cfg, state_of, store
from tests.servers.process import free_port
from tests.servers.smtp import SmtpServer


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP server on loopback that keeps the JSON bodies POSTed to it."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def _cfg(tmp_path: Path, **kw: dict[str, Any]) -> tuple[FarmConfig, Bookkeeping]:
    cfg = make_cfg(tmp_path / "farm", **kw)
    return cfg, Bookkeeping.from_config(cfg)


def test_stored_files_are_reconstructed_with_story_job_log_and_archived_script(
    tmp_path: Path,
) -> None:
    cfg, bk = _cfg(tmp_path)
    names = [store(bk, cfg, 12, seq) for seq in range(3)]
    manager = Manager(cfg, bk=bk)
    drive(manager, lambda: all(state_of(bk, n) == FileState.RECONSTRUCTED for n in names))
    story = [e.event for e in bk.story(names[0])]
    assert story[-5:] == ["queued", "submitted", "started", "ended", "reconstructed"] or story[
        -4:
    ] == ["queued", "submitted", "ended", "reconstructed"]  # too fast to see it run
    job = JobStore(bk).of_file(names[0])[0]
    assert job.state == "done" and job.exit_code == 0 and job.cpu_s is not None
    assert job.script is not None and job.job_log is not None and job.stdout is not None
    assert Path(job.script).parent == cfg.home / "processing/scripts/run12"
    log = Path(job.job_log).read_text()
    assert Path(job.job_log).parent == cfg.home / "all_logs/batch/run12"
    assert "exit code        : 0\n" in log and "Job Name         : reco_run12-seq0\n" in log
    assert "run 12, 3 events" in Path(job.stdout).read_text()  # the job read the whole file


@pytest.mark.smtp
def test_corrupt_input_is_parked_at_once_with_email_and_webhook(
    tmp_path: Path, smtp_server: SmtpServer, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, posts = webhook
    cfg, bk = _cfg(
        tmp_path,
        notify={"email_to": ["prod@localhost"], "smtp_port": smtp_server.port, "webhook_url": url},
    )
    bad = store(bk, cfg, 13, 0, corrupt=True)
    manager = Manager(cfg, bk=bk)
    drive(manager, lambda: state_of(bk, bad) == FileState.FAILED)
    jobs = JobStore(bk).of_file(bad)
    assert len(jobs) == 1, "corrupt input must not be resubmitted"
    assert jobs[0].failure == "corrupt_input" and jobs[0].exit_code == 65
    rec = bk.get(bad)
    assert rec is not None and "corrupt input" in (rec.last_error or "")
    assert any(a.kind == "corrupt_input" for a in bk.alarms())
    msg = smtp_server.wait_for(1)[0]
    assert msg["Subject"] == f"[farmtools] processing failed: {bad}"
    assert msg["X-Envelope-To"] == "prod@localhost"
    assert "corrupt_input" in msg.get_payload()
    assert posts and posts[0]["file"] == bad and posts[0]["failure"] == "corrupt_input"


@pytest.mark.smtp
def test_a_systematic_failure_mails_once_then_one_digest_with_host_and_error_lines(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    cfg, bk = _cfg(tmp_path, notify={"email_to": ["prod@localhost"], "smtp_port": smtp_server.port})
    bad = [store(bk, cfg, 16, seq, corrupt=True) for seq in range(3)]
    manager = Manager(cfg, bk=bk)
    drive(manager, lambda: all(state_of(bk, n) == FileState.FAILED for n in bad))
    assert manager.digest.flush(force=True) == []  # what `process once` does at its end
    mails = smtp_server.wait_for(2)
    assert len(mails) == 2, [m["Subject"] for m in mails]  # not one per file
    first, digest = mails
    (mailed,) = [n for n in bad if first["Subject"] == f"[farmtools] processing failed: {n}"]
    others = [n for n in bad if n != mailed]  # the jobs end in any order
    body = str(first.get_payload())
    assert f"manager on {socket.gethostname()}" in body
    assert "Last 20 lines of the job's error output:" in body
    assert "corrupt" in body.split("error output:")[1].lower()  # the job's own words
    job = JobStore(bk).of_file(mailed)[0]
    assert Path(job.stderr or "").read_text().rstrip().endswith(body.rstrip().splitlines()[-1])
    assert digest["Subject"] == "[farmtools] processing corrupt_input: 2 more in 10 min"
    assert all(n in str(digest.get_payload()) for n in others)


def test_out_of_memory_is_resubmitted_with_more_memory(tmp_path: Path) -> None:
    # one 80 MB event: the job holds it whole, as the reconstruction would
    cfg, bk = _cfg(tmp_path, batch={"memory_mb": 64})
    name = store(bk, cfg, 14, 0, events=1, payload=80_000_000)
    manager = Manager(cfg, bk=bk)
    drive(manager, lambda: state_of(bk, name) in (FileState.RECONSTRUCTED, FileState.FAILED))
    jobs = JobStore(bk).of_file(name)
    assert [j.failure for j in jobs] == ["out_of_memory", None]
    assert [j.memory_mb for j in jobs] == [64, 128]
    assert state_of(bk, name) == FileState.RECONSTRUCTED
    retry = [e for e in bk.story(name) if e.event == "retry"]
    assert retry and retry[0].details is not None and retry[0].details["memory_mb"] == 128


@pytest.mark.smtp
def test_transient_failures_are_bounded_then_parked(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    # the storage path vanished: the job exits 66 (no input), a transient class, three tries
    cfg, bk = _cfg(tmp_path, notify={"email_to": ["prod@localhost"], "smtp_port": smtp_server.port})
    name = store(bk, cfg, 15, 0)
    bk.update_fields(name, storage_path=str(tmp_path / "gone" / name))
    manager = Manager(cfg, bk=bk)
    drive(manager, lambda: state_of(bk, name) == FileState.FAILED)
    jobs = JobStore(bk).of_file(name)
    assert [j.try_number for j in jobs] == [1, 2, 3]
    assert {j.failure for j in jobs} == {"nonzero_exit"}
    body = smtp_server.wait_for(1)[0].get_payload()
    assert "reason  : exit code 66" in body and "tries   : 3" in body
    # the operator fixes the cause and retries
    bk.update_fields(name, storage_path=str(cfg.path(cfg.storage.input) / "run15" / name))
    assert manager.retry(name)
    assert [a.kind for a in bk.alarms()] == ["nonzero_exit"]  # back in the queue: not fixed yet
    drive(manager, lambda: state_of(bk, name) == FileState.RECONSTRUCTED)
    assert bk.alarms() == []  # reconstructed: its alarm closed by itself
    assert [e.event for e in bk.story(name)][-1] == "alarm_cleared"


def test_daemon_claims_new_files_and_survives_a_restart(tmp_path: Path) -> None:
    cfg, bk = _cfg(tmp_path)
    stop = threading.Event()
    first = Manager(cfg, bk=bk)
    t = threading.Thread(target=first.run, args=(stop,))
    t.start()
    try:
        a = store(bk, cfg, 16, 0)
        eventually(
            lambda: state_of(bk, a),
            30,
            f"{a} taken up by the running manager",
            until=lambda s: s not in (FileState.STORED, FileState.QUEUED),
        )
    finally:
        stop.set()
        t.join()
    # the first manager is gone with its job submitted or running; a new one finishes it
    second = Manager(cfg, bk=Bookkeeping.from_config(cfg))
    drive(second, lambda: state_of(bk, a) == FileState.RECONSTRUCTED)
    assert len(JobStore(bk).of_file(a)) == 1  # picked up, not resubmitted


def test_cancel_parks_the_file(tmp_path: Path) -> None:
    cfg, bk = _cfg(tmp_path, batch={"slots": 1})
    # the first job holds the only slot (a 200 MB file to read), the second waits in the pool
    first = store(bk, cfg, 17, 0, events=4, payload=50_000_000)
    second = store(bk, cfg, 17, 1)
    manager = Manager(cfg, bk=bk)
    manager.run_once()
    job = JobStore(bk).of_file(second)[0]
    assert job.state == "submitted"
    assert "cancel" in manager.cancel(job.id)
    drive(manager, lambda: state_of(bk, second) == FileState.FAILED)
    assert JobStore(bk).of_file(second)[-1].failure == "cancelled"
    assert len(JobStore(bk).of_file(second)) == 1  # a cancelled job is not resubmitted
    drive(manager, lambda: state_of(bk, first) == FileState.RECONSTRUCTED)
