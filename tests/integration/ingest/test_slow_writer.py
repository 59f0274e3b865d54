"""A raw file written slowly by another process, over more than a minute, then closed.

The DAQ writes a file event by event; ingest must not take it before its last writer closed it,
even when, meanwhile, close-write events fire for it (another descriptor closed) and a
reconciliation pass runs.  The writer is a real process, the watcher uses real inotify.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest

from farmtools.bookkeeping.states import Event
from farmtools.storage import adler32_file, adler32_hex
from tests.integration.ingest.conftest import Farm, wait_for, write_raw

#: 16 pieces, 4.5 s apart: the file stays open for ~72 s (the whole test: ~75 s).
PIECES = 16
PAUSE_S = 4.5

_WRITER = """
import sys, time
path, template, pieces, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
data = open(template, "rb").read()
step = -(-len(data) // pieces)
f = open(path, "wb")
for i in range(pieces):
    f.write(data[i * step : (i + 1) * step])
    f.flush()
    print("piece", i, flush=True)
    time.sleep(pause)  # the slow writer's pace: what is tested
f.close()
print("closed", time.time(), flush=True)
sys.stdin.read()  # stay alive until the test is done: a live process that no longer writes
"""


@pytest.mark.slow
def test_a_file_written_over_a_minute_is_copied_only_after_close(farm: Farm) -> None:
    farm.start_watch()
    template = write_raw(farm.daq.parent / "template.dat", 70, events=PIECES * 2, payload=20_000)
    path = farm.daq / "run70-seq0.dat"
    dest = farm.cfg.path(farm.cfg.storage.input) / "run70"
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), str(template), str(PIECES), str(PAUSE_S)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None and writer.stdin is not None
    try:
        started = datetime.now(UTC)
        for i in range(PIECES):
            assert writer.stdout.readline().split() == ["piece", str(i)]
            if i % 4 == 1:
                # a second writer opens and closes it: IN_CLOSE_WRITE fires, the first writer
                # still holds it open
                with open(path, "ab"):
                    pass
            if i == PIECES // 2:
                assert farm.service().reconcile() == 0
            if i % 4 == 3:
                farm.raw(f"run70-seq{i}.dat", 70)  # the watcher is awake and working meanwhile
                farm.wait_state(f"run70-seq{i}.dat", "stored")
            assert farm.bk.get(path.name) is None, f"taken while open (after piece {i})"
            assert not (dest / path.name).exists() and not (dest / f".{path.name}.part").exists()
        word, when = writer.stdout.readline().split()
        assert word == "closed"
        closed = datetime.fromtimestamp(float(when), tz=UTC)
        assert (closed - started).total_seconds() > 60, "the writer was not slow"
        wait_for(lambda: farm.state(path.name) == "stored", 30, "stored after close")
    finally:
        writer.stdin.close()
        writer.wait(timeout=10)
    story = farm.bk.story(path.name)
    starts = [e.time for e in story if e.event == Event.COPY_STARTED]
    assert len(starts) == 1 and starts[0] >= closed, (starts, closed)
    assert path.read_bytes() == template.read_bytes()
    rec = farm.bk.get(path.name)
    assert rec is not None and rec.size == template.stat().st_size
    assert rec.adler32 == adler32_hex(adler32_file(template))
    assert (dest / path.name).read_bytes() == template.read_bytes()
