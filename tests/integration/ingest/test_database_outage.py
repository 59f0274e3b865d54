"""The watcher daemon through a PostgreSQL outage: it keeps running and loses nothing.

A real ``farmtools ingest watch`` process against its own PostgreSQL server (not the session's,
which other tests share), stopped by PID while raw files keep arriving and started again on the
same port.  What closes during the outage cannot even be registered; it must be stored, verified
and recorded once the database is back, with nothing copied twice and no restart of the daemon,
and the log must say which files wait for the database (one line per try, backing off), not
print a traceback per file per try.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from farmtools.bookkeeping import Bookkeeping
from farmtools.storage import adler32_file
from tests.integration.ingest.conftest import WatchProcess, make_config, wait_for, write_raw
from tests.servers.postgres import PostgresServer, own_postgres_server


@pytest.mark.postgres
def test_the_watcher_outlives_a_database_outage_and_loses_nothing(tmp_path: Path) -> None:
    with own_postgres_server() as server:
        _watch_through_an_outage(server, tmp_path)


def _watch_through_an_outage(server: PostgresServer, tmp_path: Path) -> None:
    watcher: WatchProcess | None = None
    try:
        cfg = make_config(tmp_path, server.create_db())
        daq = cfg.path(cfg.daq.watch_dir)
        daq.mkdir(parents=True)
        store = cfg.path(cfg.storage.input)
        bk = Bookkeeping.from_config(cfg)
        watcher = WatchProcess(cfg, tmp_path)
        pid = watcher.start(bk)

        def state(name: str) -> str | None:
            rec = bk.get(name)
            return None if rec is None else str(rec.state)

        def stored(name: str) -> bool:
            return state(name) == "stored"

        write_raw(daq / "run30-seq0.dat", 30)
        wait_for(partial(stored, "run30-seq0.dat"), what="the first file stored")

        server.stop()
        during = [write_raw(daq / f"run30-seq{i}.dat", 30) for i in (1, 2, 3)]
        log = watcher.log
        wait_for(
            lambda: "run30-seq3.dat" in log.read_text(errors="replace"),
            what="the watcher meeting the outage with the file named in its log",
        )
        wait_for(  # a few rounds of retries against the dead server
            lambda: (
                "run30-seq3.dat: ingest waits for the bookkeeping database (try 3,"
                in log.read_text(errors="replace")
            ),
            what="the third try of run30-seq3.dat in the watcher's log",
        )
        assert watcher.alive(), log.read_text(errors="replace")[-3000:]
        text = log.read_text(errors="replace")
        # one line per file and try, naming the file and what it waits for; no traceback flood
        waiting = [line for line in text.splitlines() if "waits for the bookkeeping" in line]
        assert any("run30-seq3.dat" in line and "try 1," in line for line in waiting), text[-3000:]
        assert "Traceback" not in text, text[-3000:]

        server.start()  # same cluster, same port
        for src in during:
            wait_for(partial(stored, src.name), 90, f"{src.name} stored after")
        assert watcher.alive() and watcher.proc is not None and watcher.proc.pid == pid
        for src in [daq / "run30-seq0.dat", *during]:
            rec = bk.get(src.name)
            assert rec is not None and rec.adler32 == f"{adler32_file(src):08x}"
            assert (store / "run30" / src.name).read_bytes() == src.read_bytes()
            story = [e.event for e in bk.story(src.name)]
            assert story.count("verified") == 1, (src.name, story)  # copied and recorded once
        assert sorted(p.name for p in (store / "run30").iterdir()) == [
            f"run30-seq{i}.dat" for i in range(4)
        ]  # no temporary file left behind
        bk.close()
    finally:
        if watcher is not None:
            watcher.stop()
