"""Helpers shared by the server fixtures: free loopback ports, waiting for a port, stopping by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess

from tests.eventually import NeverHappened, eventually


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int,
    host: str = "127.0.0.1",
    timeout: float = 30.0,
    proc: subprocess.Popen[bytes] | None = None,
    log: str | None = None,
) -> None:
    """Block until something accepts connections on ``host:port``; fail with the server's log."""

    def listening() -> bool:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"server exited with {proc.returncode} before listening on {port}"
                + (f"\n--- log ---\n{_tail(log)}" if log else "")
            )
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            return s.connect_ex((host, port)) == 0

    eventually(
        listening,
        timeout,
        f"a server listening on {host}:{port}",
        interval=0.02,
        details=lambda: f"--- log ---\n{_tail(log)}" if log else "",
    )


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; a PID that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with contextlib.suppress(ChildProcessError):
            return os.waitpid(pid, os.WNOHANG)[0] == pid
        return False

    try:
        eventually(gone, timeout, f"pid {pid} gone after SIGTERM")
    except NeverHappened:  # not a test failure: the process is killed for good
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _tail(path: str | None, lines: int = 40) -> str:
    if not path or not os.path.exists(path):
        return "(no log)"
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])
