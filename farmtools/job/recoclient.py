"""``python -m farmtools.job.recoclient --socket S [--usage U] -- RECO-ARGS``: a job's light start.

What a reconstruction job runs when ``processing.reco_worker_socket`` is set.  It hands the
job to the node's long-lived reconstruction worker (:mod:`farmtools.job.recoserver`) over the
unix socket ``S``: the ``farmtools reco`` arguments, the job's working directory and
environment, and its stdout and stderr as file descriptors (``SCM_RIGHTS``), so the summary
line and any error land in the job's own files as with an in-process run.  The worker forks a
warmed-up child for the job, so the job pays neither the imports nor numba's first calls
(~0.7-2.5 s, more under load); this module imports only the standard library.

When no worker listens on ``S`` (no socket, connection refused, a socket of another account)
the client ``exec``s ``farmtools reco RECO-ARGS`` in the job itself: the job works exactly as
before, only slower.

Nothing is lost when the worker fails: the child's exit code is the job's (the same failure
classes: 65 corrupt input, 66 no input, 73 output not written); a child killed by a signal
ends the job with 128 + the signal (as bash reports a killed in-process program) and a line
naming the file; a worker that goes away during the job ends it with :data:`EX_TEMPFAIL`.
Both are retried by the processing manager like any failure that is not corrupt input.  A
job that is killed (cancel, wall-time) closes the connection, and the worker kills the child.

The per-file accounting stays per file: the child's CPU time and peak memory (its own
``rusage``, from the worker's ``wait4``) are printed and written as JSON to ``U`` (the job's
status file + :data:`USAGE_SUFFIX`), which the processing manager adds to the batch
system's figures of the job (:func:`read_usage`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

#: the worker went away during the job (sysexits' EX_TEMPFAIL: transient, retried)
EX_TEMPFAIL = 75
#: exit code of a usage error (as argparse and ``farmtools`` use)
EX_USAGE = 2
#: the file beside the job's status file where the worker's figures of the job go
USAGE_SUFFIX = ".worker.json"


def usage_path(status_file: str | Path) -> Path:
    """Where the client of the job with ``status_file`` writes the worker's figures."""
    return Path(f"{status_file}{USAGE_SUFFIX}")


def read_usage(status_file: str | Path | None) -> dict[str, Any] | None:
    """The worker's figures of a job (``cpu_s``, ``max_rss_kb``, ...), None if it ran none."""
    if not status_file:
        return None
    try:
        data = json.loads(usage_path(status_file).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def send_request(sock: socket.socket, argv: list[str]) -> None:
    """The job: stdout and stderr as descriptors (one byte), then one JSON line."""
    socket.send_fds(sock, [b"J"], [sys.stdout.fileno(), sys.stderr.fileno()])
    request = {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}
    sock.sendall(json.dumps(request).encode() + b"\n")


def read_result(sock: socket.socket) -> dict[str, Any] | None:
    """The worker's one-line answer, None if the connection ended without one."""
    data = b""
    while not data.endswith(b"\n"):
        try:
            chunk = sock.recv(65536)
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    result = json.loads(data)
    return result if isinstance(result, dict) else None


def _describe(argv: list[str]) -> str:
    """The input files of a ``farmtools reco`` argument list, for a message."""
    outputs = sum(a in ("-o", "--output") or a.startswith("--output=") for a in argv)
    first = next((a for a in argv if not a.startswith("-")), "?")
    return first + (f" (+{outputs - 1} more)" if outputs > 1 else "")


def run(socket_path: str, argv: list[str], usage: str | None, farmtools: list[str]) -> int:
    """Run the job through the worker at ``socket_path``; exec ``farmtools`` if none listens."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(socket_path)
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError, PermissionError) as e:
        sock.close()
        print(
            f"no reconstruction worker at {socket_path} ({e.strerror}): reconstructing in this job",
            flush=True,
        )
        sys.stderr.flush()
        os.execv(farmtools[0], [*farmtools, "reco", *argv])  # noqa: S606 (our own program)
    sys.stdout.flush()
    sys.stderr.flush()
    with sock:
        send_request(sock, argv)
        result = read_result(sock)
    if result is None:
        print(
            f"farmtools reco: the reconstruction worker at {socket_path} went away during the "
            f"job of {_describe(argv)}; the file is to be retried",
            file=sys.stderr,
        )
        return EX_TEMPFAIL
    if usage:
        Path(usage).write_text(json.dumps(result) + "\n")
    print(
        f"reconstructed by the worker at {socket_path} (pid {result.get('pid')}): "
        f"cpu {result.get('cpu_s', 0.0):.2f} s, peak {result.get('max_rss_kb', 0) / 1024:.0f} MB, "
        f"wall {result.get('wall_s', 0.0):.2f} s",
        flush=True,
    )
    sig = result.get("signal")
    if sig:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        print(
            f"farmtools reco: the worker's process for {_describe(argv)} was killed by {name}",
            file=sys.stderr,
        )
        return 128 + int(sig)
    return int(result.get("exit", EX_TEMPFAIL))


def main(args: list[str] | None = None) -> int:
    """``--socket S [--usage U] [--farmtools EXE] -- RECO-ARGS`` (argparse is not imported)."""
    args = sys.argv[1:] if args is None else args
    options: dict[str, str] = {}
    while args and args[0] != "--":
        if len(args) < 2 or args[0] not in ("--socket", "--usage", "--farmtools"):
            break
        options[args[0]] = args[1]
        args = args[2:]
    if not args or args[0] != "--" or "--socket" not in options:
        print(
            "usage: python -m farmtools.job.recoclient --socket S [--usage U] "
            "[--farmtools EXE] -- RECO-ARGS",
            file=sys.stderr,
        )
        return EX_USAGE
    farmtools = (
        [options["--farmtools"]]
        if "--farmtools" in options
        else [sys.executable, "-m", "farmtools"]
    )
    return run(options["--socket"], args[1:], options.get("--usage"), farmtools)


if __name__ == "__main__":
    sys.exit(main())
