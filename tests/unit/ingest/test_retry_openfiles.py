"""Back-off delays, the open-for-writing probe (both methods) and database-safe names."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

from farmtools.bookkeeping.names import db_text
from farmtools.ingest import openfiles
from farmtools.retry import Backoff


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    b = Backoff(1.0, 10.0, rng=random.Random(3))
    assert [b.ceiling(n) for n in range(6)] == [0.0, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert b.ceiling(10_000) == 10.0  # no overflow in a week-long outage
    delays = [b.delay(4) for _ in range(500)]
    assert all(0.5 <= d <= 8.0 for d in delays)
    assert max(delays) - min(delays) > 3.0, "no jitter"
    assert b.delay(0) == 0.0


def test_open_for_writing_lease_and_proc(tmp_path: Path) -> None:
    p = tmp_path / "f.dat"
    with open(p, "wb") as f:
        f.write(b"x")
        assert openfiles.open_for_writing(p) is True
        assert openfiles._proc_scan(p) is True
    assert openfiles.open_for_writing(p) is False
    assert openfiles._proc_scan(p) is False
    with open(p, "rb"):
        assert openfiles.open_for_writing(p) is False, "a reader is not a writer"
        assert openfiles._proc_scan(p) is False


def test_open_for_writing_by_another_process(tmp_path: Path) -> None:
    p = tmp_path / "g.dat"
    p.write_bytes(b"")
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys; f = open({str(p)!r}, 'r+b'); print('open', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"open\n"
        assert openfiles._proc_scan(p) is True
        assert openfiles.open_for_writing(p) is True
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=10)
    assert openfiles.open_for_writing(p) is False


def test_db_text_keeps_undecodable_bytes_visible() -> None:
    name = (b"caf\xe9 \xff.dat").decode("utf-8", "surrogateescape")
    assert db_text(name) == "caf\\xe9 \\xff.dat"
    assert db_text("run1-seq0.dat") == "run1-seq0.dat"
    db_text(name).encode("utf-8")  # storable
