"""The local pool's node reconstruction worker, kept running by the processing daemon.

With the local backend the pool's slots are on this machine, so the daemon (``farmtools process
run``) can start this node's ``farmtools reco-worker`` itself when ``processing.program`` is
``reco`` and ``processing.reco_worker_socket`` is set: started with the daemon, restarted (at
most every :data:`RESTART_S`) when it died, asked to stop (SIGTERM) with the daemon.  It runs
in its own session, so a stop lets its running jobs end while new jobs reconstruct in-process
(the socket is gone); a job never depends on it being there.  On a Slurm/TORQUE/HTCondor farm
each worker node runs its own (systemd, see docs/deployment.md).

Imports the standard library and the configuration's type only.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from farmtools.config import FarmConfig

log = logging.getLogger("farmtools.processing")

#: the least seconds between two starts of a worker that keeps dying
RESTART_S = 30.0


def wanted(cfg: FarmConfig) -> bool:
    """Whether this daemon runs the node's worker (local pool, reco jobs, a socket named)."""
    p = cfg.processing
    return cfg.batch.backend == "local" and p.program == "reco" and bool(p.reco_worker_socket)


class LocalRecoWorker:
    """The daemon's handle on ``farmtools reco-worker --socket <processing.reco_worker_socket>``."""

    def __init__(self, cfg: FarmConfig) -> None:
        self.socket = cfg.path(cfg.processing.reco_worker_socket)
        self.farmtools = cfg.processing.farmtools or str(
            Path(sys.executable).with_name("farmtools")
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self._last_start = -RESTART_S

    def keep_running(self) -> None:
        """Start the worker if it is not running (not more often than every RESTART_S)."""
        if self.proc is not None and self.proc.poll() is None:
            return
        if time.monotonic() - self._last_start < RESTART_S:
            return
        if self.proc is not None:
            log.warning(
                "reconstruction worker %d ended with %s: restarted",
                self.proc.pid,
                self.proc.returncode,
            )
        self._last_start = time.monotonic()
        self.proc = subprocess.Popen(
            [self.farmtools, "reco-worker", "--socket", str(self.socket)],
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C of the daemon's terminal does not cut jobs
        )
        log.info("reconstruction worker %d serves %s", self.proc.pid, self.socket)

    def stop(self) -> None:
        """SIGTERM: the worker removes its socket and ends when its running jobs have."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
