"""The daemons' logs under a pipe or in a file, as systemd's journal gets them (issue 21, 4).

``farmtools ingest watch`` and ``farmtools process run`` run as real child processes whose
output is not a terminal; every line must be one whole message (ISO-8601 UTC time, logger,
level), a message longer than 80 columns included, and ``--log-json`` one JSON object per line.
The formats themselves are in ``tests/unit/test_logsetup.py``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from farmtools.bookkeeping import Bookkeeping, FileState
from tests.eventually import eventually
from tests.integration.ingest.conftest import WatchProcess, make_config, write_raw
from tests.integration.processing.daemon import Daemon, wait_until, write_farm
from tests.logcheck import log_records
from tests.processing_farm import state_of, store

#: a directory name that alone makes its "new directory ...: watching it" line over 80 columns
LONG = "run40-a-directory-whose-name-alone-makes-the-log-line-longer-than-eighty-columns"


@pytest.mark.parametrize("json_lines", [False, True], ids=["plain", "json"])
def test_ingest_watch_logs_one_line_per_message_under_a_pipe(
    tmp_path: Path, json_lines: bool
) -> None:
    cfg = make_config(tmp_path)
    daq = cfg.path(cfg.daq.watch_dir)
    daq.mkdir(parents=True)
    bk = Bookkeeping.from_config(cfg)
    watch = WatchProcess(cfg, tmp_path)  # its farm.toml and start check, the output in a pipe
    exe = shutil.which("farmtools", path=os.path.dirname(sys.executable))
    assert exe
    fmt = ["--log-json"] if json_lines else []
    proc = subprocess.Popen(
        [exe, "ingest", "watch", "--config", str(watch.toml), *fmt],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    watch.proc = proc
    try:
        watch.wait_started(bk)
        (daq / LONG).mkdir()
        write_raw(daq / LONG / "run40-seq0.dat", 40)
        eventually(
            lambda: (rec := bk.get("run40-seq0.dat")) is not None and rec.state == FileState.STORED,
            60,
            "run40-seq0.dat stored",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        bk.close()
    text = out.decode()
    records = log_records(text, json_lines=json_lines)
    assert {r["logger"] for r in records} >= {"farmtools.ingest"}
    assert any(r["message"] == "signal 15: stopping" for r in records), text
    (line,) = [ln for ln in text.splitlines() if f"{LONG}: watching it" in ln]
    assert len(line) > 80 + len(LONG)


@pytest.mark.parametrize("json_lines", [False, True], ids=["plain", "json"])
def test_process_run_logs_one_line_per_message_in_a_file(tmp_path: Path, json_lines: bool) -> None:
    config, cfg = write_farm(tmp_path / "farm", {})
    bk = Bookkeeping.from_config(cfg)
    name = store(bk, cfg, 41, 0)
    # bad input: the check fails with a reason naming the file, a message over 80 columns
    raw = cfg.path(cfg.storage.input) / "run41" / name
    raw.write_bytes(raw.read_bytes()[:-100])
    daemon = Daemon(config, tmp_path / "process.log", *(["--log-json"] if json_lines else []))
    try:
        wait_until(lambda: state_of(bk, name) == FileState.FAILED, f"{name} failed", 60, daemon)
    finally:
        assert daemon.stop() == 0, daemon.output()[-3000:]
        bk.close()
    records = log_records(daemon.output(), json_lines=json_lines)
    assert "farmtools.processing" in {r["logger"] for r in records}
    assert any(len(r["message"]) > 80 for r in records), daemon.output()
