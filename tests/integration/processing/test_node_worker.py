"""The local pool's jobs hand their files to the node's reconstruction worker (issue 22).

``farmtools process run`` as a real child process on a farm with program=reco and
``processing.reco_worker_socket``: the daemon starts the node's ``farmtools reco-worker``, real
local-pool jobs run the light client, the files are reconstructed by the worker's children, and
each job's accounting holds the child's CPU and memory; the daemon's stop stops the worker.
"""

from __future__ import annotations

from pathlib import Path

from farmtools.bookkeeping import Bookkeeping, Event, FileState
from farmtools.job.recoclient import read_usage
from farmtools.processing.script import JobPaths
from farmtools.rawdata.naming import parse_raw_name
from tests.eventually import eventually
from tests.integration.processing.daemon import Daemon, wait_until, write_farm
from tests.integration.processing.test_daemon_analyses import _store_emulated
from tests.processing_farm import state_of

RUN = 62


def test_local_pool_jobs_go_through_the_node_worker(tmp_path: Path) -> None:
    config, cfg = write_farm(
        tmp_path / "farm",
        {
            "processing.program": "reco",
            "processing.reco_worker_socket": "run/reco.sock",
            "analysis.auto": False,
        },
    )
    sock = cfg.path("run/reco.sock")
    bk = Bookkeeping.from_config(cfg)
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        # the files arrive once the worker listens: the jobs are then all the worker's
        eventually(sock.is_socket, 180, "the node worker listening", details=daemon.output)
        names = _store_emulated(bk, cfg, RUN, 2)
        wait_until(
            lambda: all(state_of(bk, n) == FileState.RECONSTRUCTED for n in names),
            "the files reconstructed",
            240,
            daemon,
        )
    finally:
        assert daemon.stop() == 0, daemon.output()[-3000:]
    assert "reconstruction worker" in daemon.output()
    eventually(lambda: not sock.exists(), 60, "the worker stopped with the daemon")
    outs = sorted(cfg.path(cfg.processing.logs_dir).rglob("*.out"))
    assert len(outs) == 2
    for out in outs:
        text = out.read_text()
        assert "reconstructed by the worker at" in text and " 8 events" in text
    for name in names:
        (ended,) = [e for e in bk.story(name) if e.event == Event.ENDED]
        assert ended.details is not None
        raw = parse_raw_name(name)
        assert raw is not None
        paths = JobPaths.of(cfg, raw, ended.details["job"])
        usage = read_usage(paths.status_file)
        assert usage is not None and usage["exit"] == 0
        # the job's accounting holds its worker child's figures (the client's CPU added)
        assert ended.details["cpu_s"] >= usage["cpu_s"] > 0
        assert ended.details["max_rss_kb"] >= usage["max_rss_kb"] > 0
    bk.close()
