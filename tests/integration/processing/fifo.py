"""Jobs that run exactly as long as a test wants: their input is a named pipe (FIFO).

A job's program (``python -m farmtools.job.readcheck``) blocks in ``open()`` on a FIFO until a
writer comes, as it would on a storage that hangs; :func:`feed` then writes a valid raw file of
zero events (a FIFO has size 0, so the checker reads the run header and the footer only), and
the job ends with exit code 0.  Nothing is mocked: the job, its supervisor and the pool are real.

A test that fails before it feeds its FIFO would leave the job blocked in ``open()`` for ever (a
process of its own session, outliving pytest): :func:`release_fifos` (run after every test of
this package by its ``conftest.py``) wakes such readers with an empty write end and removes the
FIFOs, so a job started later fails at once instead of blocking.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

from farmtools.rawdata.format import FOOTER, FOOTER_MAGIC, RUN_HEADER

#: FIFOs made by this test session and not yet released.
_MADE: list[Path] = []


def make_fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    _MADE.append(path)
    return path


def release_fifos() -> None:
    """Wake every job still waiting on a FIFO of this session and remove the FIFOs.

    Holding both ends (``O_RDWR`` never blocks on Linux) completes every ``open()`` waiting for
    a writer; the name is removed while the ends are held, so a reader that resolved it just
    before is woken too; closing them gives every reader end-of-file.
    """
    while _MADE:
        fifo = _MADE.pop()
        try:
            fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        except FileNotFoundError:
            continue
        try:
            fifo.unlink()
            time.sleep(0.05)
        finally:
            os.close(fd)


def feed(fifo: Path, run: int, timeout: float = 30.0) -> None:
    """Write a zero-event raw file of ``run`` into ``fifo`` (its reader must be there)."""
    data = RUN_HEADER.pack(run, 0) + FOOTER.pack(FOOTER_MAGIC, 0)
    done = threading.Event()

    def write() -> None:
        with open(fifo, "wb") as f:  # blocks until the job opened its end
            f.write(data)
        done.set()

    threading.Thread(target=write, daemon=True).start()
    assert done.wait(timeout), f"{fifo}: no job read it"


def job_pid(stdout: Path) -> int:
    """The PID the job script printed on its first line (``job <host> pid <N> started``)."""
    m = re.search(r"^job \S+ pid (\d+) started", stdout.read_text(), re.M)
    assert m, f"{stdout}: no start line"
    return int(m.group(1))
