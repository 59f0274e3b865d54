"""The farm's daemons as child processes of the data challenge: start, SIGKILL, restart, stop.

Why subprocesses and not threads: a fault injected with SIGKILL must hit a real process, as it
would on the farm (no ``finally`` runs, no lock is released politely), and each daemon's own CPU
time can be read from the kernel.  Each daemon runs ``farmtools <stage> <verb> --config F`` in
its own session (Ctrl-C in the terminal reaches the challenge only, which then stops the
daemons in order), with its output appended to ``<log_dir>/<name>.log``.

CPU accounting: :meth:`Daemon.sample` reads the process's own user+system time (psutil), and
the time of incarnations that were killed or stopped is kept, so :attr:`Daemon.cpu_s` covers
the whole challenge (``count_children`` adds the children it waited for, for a baseline shell
loop).  Jobs of the local batch run under detached supervisors, not as children
of the manager, so reconstruction is never counted here.

Imports the standard library and psutil only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def farmtools_argv() -> list[str]:
    """How to run ``farmtools`` with this interpreter (works without the console script)."""
    return [sys.executable, "-m", "farmtools"]


def farm_daemons(
    config: Path, log_dir: Path, monitor_at: tuple[str, int] | None
) -> dict[str, Daemon]:
    """The farm's daemons on ``config``, not started: ingest, processing, and the monitor on
    ``monitor_at`` (host, port) unless None."""
    cfg = ["--config", str(config)]
    ft = farmtools_argv()
    daemons = {
        "ingest": Daemon("ingest", [*ft, "ingest", "watch", *cfg], log_dir),
        "processing": Daemon("processing", [*ft, "process", "run", *cfg], log_dir),
    }
    if monitor_at is not None:
        host, port = monitor_at
        daemons["monitor"] = Daemon(
            "monitor", [*ft, "monitor", "serve", "--host", host, "--port", str(port), *cfg], log_dir
        )
    return daemons


class Daemon:
    """One long-running ``farmtools`` command, restartable."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_dir: Path,
        env: dict[str, str] | None = None,
        *,
        count_children: bool = False,
    ) -> None:
        self.name = name
        self.count_children = count_children
        self.argv = list(argv)
        self.log_path = log_dir / f"{name}.log"
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0
        self._cpu_done = 0.0
        self._cpu_current = 0.0
        self.started_at = 0.0
        self.alive_s_done = 0.0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def cpu_s(self) -> float:
        """User + system seconds of every incarnation so far (sampled)."""
        return self._cpu_done + self._cpu_current

    @property
    def alive_s(self) -> float:
        """Seconds the daemon has been running, over every incarnation."""
        current = time.monotonic() - self.started_at if self.alive else 0.0
        return self.alive_s_done + current

    def start(self) -> None:
        """Start an incarnation (a no-op when one is running)."""
        if self.alive:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts + 1}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(self.env or {})},
            )
        self.starts += 1
        self._cpu_current = 0.0
        self.started_at = time.monotonic()

    def sample(self) -> None:
        """Read the running incarnation's CPU time (call often: a SIGKILL loses what is unread)."""
        import psutil

        if not self.alive or self.proc is None:
            return
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(self.proc.pid).cpu_times()
            self._cpu_current = t.user + t.system
            if self.count_children:  # waited-for children only (a shell loop's commands)
                self._cpu_current += t.children_user + t.children_system

    def _reaped(self) -> None:
        self._cpu_done += self._cpu_current
        self._cpu_current = 0.0
        self.alive_s_done += time.monotonic() - self.started_at

    def kill(self) -> None:
        """SIGKILL the whole session of the running incarnation (a fault, not a stop)."""
        if not self.alive or self.proc is None:
            return
        self.sample()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.kills += 1
        self._reaped()
        self.proc = None  # down on purpose: not a crash

    def crashed(self) -> int | None:
        """The exit status when the incarnation ended by itself (then reaped), else None."""
        if self.proc is None or self.proc.poll() is None:
            return None
        code = self.proc.returncode
        self._reaped()
        self.proc = None
        return code

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.sample()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self._reaped()
        return self.proc.returncode

    def tail(self, lines: int = 20) -> str:
        """The last lines of the daemon's log (for a report when it died on its own)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stats(self) -> dict[str, Any]:
        """The report's line for this daemon: CPU over its life, starts, SIGKILLs, its log."""
        return {
            "cpu_s": round(self.cpu_s, 3),
            "alive_s": round(self.alive_s, 3),
            "cpu_percent_of_one_core": (
                round(100 * self.cpu_s / self.alive_s, 3) if self.alive_s else None
            ),
            "starts": self.starts,
            "sigkills": self.kills,
            "log": str(self.log_path),
        }


def restart_crashed(daemons: Iterable[Daemon], at_s: float) -> list[dict[str, Any]]:
    """Sample every daemon's CPU and restart those that died by themselves; returns the crashes
    (daemon, exit, at_s, the log's tail), which the report lists as findings."""
    crashes = []
    for d in daemons:
        d.sample()
        code = d.crashed()
        if code is not None:
            crashes.append({"daemon": d.name, "exit": code, "at_s": at_s, "log": d.tail(15)})
            d.start()
    return crashes


def wait_healthz(daemon: Daemon, url: str, timeout: float = 30.0) -> str | None:
    """Wait until ``url``/healthz answers; None when it did, else why not (the log's tail)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not daemon.alive:
            break
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"{url}/healthz", timeout=1).close()  # noqa: S310
            return None
        time.sleep(0.2)
    return f"{daemon.name} did not answer /healthz: " + daemon.tail(5)
