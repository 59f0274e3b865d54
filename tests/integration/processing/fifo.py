"""Jobs that run exactly as long as a test wants: their input is a named pipe (FIFO).

A job's program (``python -m farmtools.batch.readcheck``) blocks in ``open()`` on a FIFO until a
writer comes, as it would on a storage that hangs; :func:`feed` then writes a valid raw file of
zero events (a FIFO has size 0, so the checker reads the run header and the footer only), and
the job ends with exit code 0.  Nothing is mocked: the job, its supervisor and the pool are real.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from farmtools.rawdata.format import FOOTER, FOOTER_MAGIC, RUN_HEADER


def make_fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


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
