"""The node's long-lived reconstruction worker (``farmtools reco-worker --socket S``).

Every reconstruction process pays ~0.7 s on a quiet machine (2.5 s loaded) before its first
event: importing numpy, numba, uproot and awkward, loading numba's cached machine code at each
kernel's first call, uproot's first write.  A 10-event file spends most of its job there.  The
worker pays it once per node: it imports everything and reconstructs a warm-up file (emulated
on the spot, one compressed and one uncompressed event) at its start, then serves jobs over a
unix socket (the light client :mod:`farmtools.job.recoclient` runs in the batch job).

Each job is a ``fork`` of the warmed-up worker: the child starts with every module and compiled
kernel in place, runs exactly ``farmtools reco ARGS`` (the same command, options, exit codes and
messages) in the job's working directory and environment, writing to the job's own stdout and
stderr (descriptors passed over the socket), and its exit status and ``rusage`` (CPU time, peak
memory) go back to the client, so the accounting and the failure classes stay per file.  A child
that crashes takes only its file's job with it; a job that goes away (cancelled, over its wall
time) closes the connection and its child is killed; a worker that dies takes its children
with it (``PR_SET_PDEATHSIG``) and the clients end their jobs with a retryable code.

The socket is the account's alone (mode 0600) and a peer of another uid is refused
(``SO_PEERCRED``): the worker runs what it is handed as the production account.

One thread, ``selectors`` over the listening socket, the connections and a self-pipe woken by
SIGCHLD; no thread is ever started in the worker itself, so forking it is safe.  SIGTERM stops
accepting (the socket is removed: new jobs reconstruct in-process) and lets running jobs end.

Imports the standard library; the reconstruction and the CLI are imported by :func:`warm_up`.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import logging
import os
import selectors
import signal
import socket
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("farmtools.job")

#: seconds a client has to send its request once connected
REQUEST_TIMEOUT_S = 10.0
#: ``prctl`` option: the signal a process gets when its parent dies
PR_SET_PDEATHSIG = 1


def warm_up(raws: list[Path] | None = None, detector: str = "3x1x1") -> float:
    """Import the reconstruction and reconstruct ``raws`` of ``detector`` (default: two
    emulated one-event 3x1x1 files, compressed and not) in this process; the seconds it took.

    A 6x6x6 farm gives a 6x6x6 file (``--warm RAW --detector 6x6x6``): its kernels are then
    loaded once here too, not in every job's child.
    """
    t0 = time.perf_counter()
    import farmtools.cli  # noqa: F401 (the children run the CLI: import it once, here)
    from farmtools.detector import geometry
    from farmtools.reco.driver import reconstruct_file

    with tempfile.TemporaryDirectory(prefix="farmtools-warm-") as tmp:
        work = Path(tmp)
        files = list(raws) if raws else _emulated(work)
        geo = geometry(detector if raws else "3x1x1")
        for i, raw in enumerate(files):
            reconstruct_file(raw, work / f"warm{i}.root", geo, threads=1)
    return time.perf_counter() - t0


def _emulated(work: Path) -> list[Path]:
    """One-event 3x1x1 files, compressed and uncompressed (fixed seeds), under ``work``."""
    from farmtools.emulator.daq import RunPlan, emulate_run
    from farmtools.emulator.settings import EmulatorSettings

    files = []
    for run, compress in ((999_001, True), (999_002, False)):
        plan = RunPlan(run=run, events_per_file=1, compress=compress)
        (info,) = emulate_run(work / str(run), EmulatorSettings(seed=run), plan)
        files.append(info.path)
    return files


@dataclass
class _Job:
    """A running child: its connection (None once the client went away) and start."""

    conn: socket.socket | None
    started: float
    argv: list[str] = field(default_factory=list)


class RecoWorker:
    """Serves ``farmtools reco`` jobs on the unix socket ``path`` by forking this process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.jobs: dict[int, _Job] = {}
        self.stopping = False
        self.served = 0
        self.listener = self._bind(path)

    @staticmethod
    def _bind(path: Path) -> socket.socket:
        """Listen on ``path``; a stale socket (nobody listening) is replaced, a live one is not."""
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        else:
            raise RuntimeError(f"a reconstruction worker already listens at {path}")
        finally:
            probe.close()
        path.parent.mkdir(parents=True, exist_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket is the account's alone (srw-------)
        try:
            listener.bind(str(path))
        finally:
            os.umask(old_umask)
        listener.listen(64)
        listener.setblocking(False)
        return listener

    def serve(self) -> None:
        """Serve until SIGTERM/SIGINT, then let the running jobs end."""
        sel = selectors.DefaultSelector()
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        old_wakeup = signal.set_wakeup_fd(wake_w)
        old = {s: signal.getsignal(s) for s in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT)}
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        sel.register(self.listener, selectors.EVENT_READ, "accept")
        sel.register(wake_r, selectors.EVENT_READ, "wake")
        listening = True
        log.info("reconstruction worker %d listening at %s", os.getpid(), self.path)
        try:
            while listening or self.jobs:
                if self.stopping and listening:
                    sel.unregister(self.listener)
                    self._close_listener()
                    listening = False
                    log.info("stopping: %d job(s) still running", len(self.jobs))
                    continue
                for key, _ in sel.select(timeout=1.0):
                    if key.data == "accept":
                        self._accept(sel, wake_r, wake_w)
                    elif key.data == "wake":
                        with contextlib.suppress(BlockingIOError):
                            os.read(wake_r, 4096)
                    else:
                        self._client_event(sel, key.fileobj)  # type: ignore[arg-type]
                self._reap(sel)
        finally:
            if listening:
                self._close_listener()
            signal.set_wakeup_fd(old_wakeup)
            for s, handler in old.items():
                signal.signal(s, handler)
            os.close(wake_r)
            os.close(wake_w)
            sel.close()

    def _stop(self, signum: int, _frame: Any) -> None:
        self.stopping = True

    def _close_listener(self) -> None:
        self.listener.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _accept(self, sel: selectors.BaseSelector, *pipe: int) -> None:
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        conn.settimeout(REQUEST_TIMEOUT_S)
        try:
            _check_peer(conn)
            request, fds = _read_request(conn)
        except (OSError, ValueError) as exc:
            log.warning("a bad request on %s: %s", self.path, exc)
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps({"exit": 2, "error": str(exc)}).encode() + b"\n")
            conn.close()
            return
        sys.stdout.flush()
        sys.stderr.flush()
        # the collector would touch every object of the warmed-up heap in the child, copying
        # its pages (copy-on-write): frozen objects are never scanned
        gc.freeze()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            others = [self.listener.fileno(), *pipe]
            others += [j.conn.fileno() for j in self.jobs.values() if j.conn is not None]
            _child(conn, request, fds, others)
        for fd in fds:
            os.close(fd)
        conn.setblocking(False)
        self.jobs[pid] = _Job(conn, time.monotonic(), list(request["argv"]))
        sel.register(conn, selectors.EVENT_READ, pid)

    def _client_event(self, sel: selectors.BaseSelector, conn: socket.socket) -> None:
        """The client sends nothing after its request: readable means it went away."""
        with contextlib.suppress(BlockingIOError):
            if conn.recv(1):
                return
        pid = sel.get_key(conn).data
        sel.unregister(conn)
        conn.close()
        job = self.jobs.get(pid)
        if job is not None:
            job.conn = None
            log.warning("job of pid %d went away: its child is killed", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _reap(self, sel: selectors.BaseSelector) -> None:
        while self.jobs:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            job = self.jobs.pop(pid, None)
            if job is None:
                continue
            self.served += 1
            code = os.waitstatus_to_exitcode(status)
            result = {
                "exit": code if code >= 0 else None,
                "signal": -code if code < 0 else None,
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "user_s": usage.ru_utime,
                "sys_s": usage.ru_stime,
                "max_rss_kb": usage.ru_maxrss,
                "wall_s": time.monotonic() - job.started,
                "pid": pid,
                "host": socket.gethostname(),
            }
            log.info("pid %d (%s): %s", pid, " ".join(job.argv), json.dumps(result))
            if job.conn is not None:
                sel.unregister(job.conn)
                with contextlib.suppress(OSError):
                    job.conn.setblocking(True)
                    job.conn.sendall(json.dumps(result).encode() + b"\n")
                job.conn.close()


def _check_peer(conn: socket.socket) -> None:
    """Only this account's processes may hand the worker a job (it runs it as this account)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    if uid != os.getuid():
        raise ValueError(f"uid {uid} is not this worker's account ({os.getuid()})")


def _read_request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """The client's stdout/stderr descriptors and its JSON request line."""
    _msg, fds, _flags, _addr = socket.recv_fds(conn, 1, 2)
    try:
        if len(fds) != 2:
            raise ValueError(f"expected 2 descriptors (stdout, stderr), got {len(fds)}")
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                raise ValueError("the request ended before its end of line")
            data += chunk
        request = json.loads(data)
        if not isinstance(request, dict) or not isinstance(request.get("argv"), list):
            raise ValueError("the request has no argv list")
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return request, fds


def _child(conn: socket.socket, request: dict[str, Any], fds: list[int], others: list[int]) -> None:
    """Run ``farmtools reco ARGV`` as the job asked, then ``_exit`` with its code."""
    code = 70  # EX_SOFTWARE, if anything below raises
    try:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        for s in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(s, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        for fd in others:
            with contextlib.suppress(OSError):
                os.close(fd)
        conn.close()  # the parent answers; the child writes to the job's stdout and stderr
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for fd in fds:
            os.close(fd)
        os.chdir(request.get("cwd") or "/")
        env = request.get("env")
        if isinstance(env, dict):
            os.environ.clear()
            os.environ.update({str(k): str(v) for k, v in env.items()})
        from farmtools.cli import app

        try:
            app(args=["reco", *map(str, request["argv"])], prog_name="farmtools")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # the child must reach _exit whatever happens
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def serve(
    path: Path, warm: list[Path] | None = None, do_warm: bool = True, detector: str = "3x1x1"
) -> int:
    """Warm up, then serve at ``path`` until stopped; the number of jobs served."""
    if do_warm:
        log.info("warming up (imports, kernels, a reconstruction)")
        log.info("warm in %.1f s", warm_up(warm, detector))
    worker = RecoWorker(path)
    worker.serve()
    return worker.served
