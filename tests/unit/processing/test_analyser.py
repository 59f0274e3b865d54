"""The daemon's analysis child (a real ``python -m farmtools.processing.analyser``): passes,
a child that died is restarted at the next pass, and it ends with its input."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from farmtools.bookkeeping import Bookkeeping
from farmtools.processing.analyser import AnalysisProcess
from tests.processing_farm import make_cfg


def test_passes_restart_after_a_crash_and_end_with_the_input(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, processing={"program": "reco"})
    Bookkeeping.from_config(cfg).close()  # an empty farm: nothing to analyse
    worker = AnalysisProcess(cfg, cfg.database_url)
    try:
        assert worker.run_pass() == []
        first = worker.pid
        assert first is not None and first != os.getpid()
        assert worker.run_pass() == [] and worker.pid == first  # one child for every pass
        os.kill(first, signal.SIGKILL)
        assert worker.run_pass() == []  # the pass is lost, not the manager
        assert worker.run_pass() == []
        assert worker.pid not in (None, first)  # started again
        proc = worker.proc
    finally:
        worker.close()
    assert proc is not None and proc.returncode == 0  # end of input: a clean exit
