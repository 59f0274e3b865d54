"""``farmtools process run`` as a real child process, on a farm directory with a farm.toml.

The farm.toml is rendered from the one template (``templates/farm.toml.j2``), as Ansible does;
the daemon is the installed ``farmtools`` console script next to this Python.  Helpers stop it
by its PID only (SIGTERM, or SIGKILL to simulate a crash).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from farmtools.config import FarmConfig, load_config
from farmtools.deploy.farmtoml import render_farm_toml
from tests.eventually import eventually

FARMTOOLS = str(Path(sys.executable).with_name("farmtools"))


def write_farm(home: Path, overrides: dict[str, Any]) -> tuple[Path, FarmConfig]:
    """``home/farm.toml`` (fast polling, local backend, program=check unless overridden)."""
    home.mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = {
        "farm.home": ".",
        "batch.backend": "local",
        "batch.slots": 2,
        "processing.program": "check",
        "processing.cooloff_s": 0.0,
        "processing.poll_s": 0.1,
        "processing.claim_s": 0.05,
        **overrides,
    }
    path = home / "farm.toml"
    path.write_text(render_farm_toml(values, rendered_by="tests"))
    return path, load_config(path)


class Daemon:
    """One ``farmtools process run --config farm.toml [args]`` child with its output in ``log``
    (a file, not a terminal: one line per message, see :mod:`farmtools.logsetup`)."""

    def __init__(self, config: Path, log: Path, *args: str) -> None:
        self.log = log
        self._out = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [FARMTOOLS, "process", "run", "--config", str(config), *args],
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the daemon dies at once, as in a crash or an OOM kill."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._out.close()

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait; the exit code (a clean stop is 0)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._out.close()
        return self.proc.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_until(cond: Callable[[], bool], what: str, timeout: float, daemon: Daemon) -> None:
    """Poll ``cond`` until true; fail naming ``what`` (and the daemon's output) otherwise,
    at once if the daemon died."""

    def holds() -> bool:
        if cond():
            return True
        assert daemon.alive(), f"daemon died while waiting for {what}:\n{daemon.output()[-3000:]}"
        return False

    eventually(holds, timeout, what, interval=0.1, details=lambda: daemon.output()[-3000:])
