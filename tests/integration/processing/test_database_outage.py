"""``farmtools process run`` through a PostgreSQL outage: it keeps running, backs off, recovers.

A real daemon against its own PostgreSQL server (not the session's, which other tests share),
stopped by PID and started again on the same port.  While the database is away nothing can be
claimed or recorded; the daemon must stay up, say so in one line per failed pass (no traceback
flood, fewer tries as the outage lasts), and afterwards process both the file stored before the
outage and one stored after it, through its LISTEN/NOTIFY wake-up reopened on a new connection.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from farmtools.bookkeeping import Bookkeeping, FileState
from farmtools.processing.jobs import JobStore
from tests.integration.processing.daemon import Daemon, wait_until, write_farm
from tests.processing_farm import state_of, store
from tests.servers.postgres import PostgresServer, own_postgres_server

RUN = 61


@pytest.mark.postgres
def test_the_manager_outlives_a_database_outage(tmp_path: Path) -> None:
    with own_postgres_server() as server:
        _process_through_an_outage(server, tmp_path)


def _process_through_an_outage(server: PostgresServer, tmp_path: Path) -> None:
    daemon: Daemon | None = None
    try:
        config, cfg = write_farm(tmp_path / "farm", {"database.url": server.create_db()})
        bk = Bookkeeping.from_config(cfg)
        before = store(bk, cfg, RUN, 0)
        daemon = Daemon(config, tmp_path / "process.log")
        wait_until(
            lambda: state_of(bk, before) == FileState.RECONSTRUCTED, "first file", 60, daemon
        )

        server.stop()
        outage = 6.0
        time.sleep(outage)  # the outage itself, what is tested: how often the daemon retries in it
        assert daemon.alive(), daemon.output()[-3000:]
        text = daemon.output()
        fails = [
            int(n) for n in re.findall(r"waits for the bookkeeping database \(pass (\d+)", text)
        ]
        assert fails and fails == list(range(1, len(fails) + 1)), text[-3000:]
        # claim_s is 0.05 s: a fixed pause would have tried ~120 times; the doubling far fewer
        assert len(fails) < 20, len(fails)
        assert "Traceback" not in text, text[-3000:]

        server.start()  # same cluster, same port
        after = store(bk, cfg, RUN, 1)
        wait_until(
            lambda: state_of(bk, after) == FileState.RECONSTRUCTED, "file after", 120, daemon
        )
        for name in (before, after):
            (job,) = JobStore(bk).of_file(name)  # each file once, not resubmitted
            assert job.state == "done" and job.exit_code == 0
        assert daemon.stop() == 0, daemon.output()[-3000:]
        daemon = None
        bk.close()
    finally:
        if daemon is not None:
            daemon.stop()
