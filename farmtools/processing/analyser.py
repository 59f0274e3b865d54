"""The daemon's analyses in a child process of their own: ``python -m farmtools.processing.analyser``.

Owns :func:`analyse_ready` (one guarded pass of
:func:`farmtools.analysis.pipeline.run_ready_analyses`, shared by ``process once`` and the child)
and :class:`AnalysisProcess`, the handle ``farmtools process run`` keeps on its child.

Why a process: the fits (and reading the ROOT outputs with uproot) are analysis work, as
reconstruction is job work; in a thread of the manager they were more than half of the daemon's
CPU at the seed's 10 s cadence, and mixed with the bookkeeping loop they cannot be told apart.
In a child they are accounted on their own (``benchmarks/bench_challenge.py cpu`` prints them
on their own line), a crash in a native fitting library cannot take the manager down, and the
imports happen once, in the child.  The child is started at the first pass and lives as long as
the manager: it waits for a request on its stdin, runs one pass with its own
:class:`~farmtools.bookkeeping.Bookkeeping`, and answers with the summaries written.  When the
manager goes away (even by SIGKILL), the child reads end-of-file and exits after the pass in
progress, whose results are recorded in one transaction per group as before.

Protocol: JSON lines over the child's stdin/stdout.  First the set-up (the configuration as
``model_dump(mode="json")``, its ``base_dir``, which the dump excludes, and the database URL),
then ``"go"`` per pass, answered by the list of summaries written; end of input ends the child.
The child's fd 1 is moved to stderr, so nothing a library prints reaches the pipe.

Imports the bookkeeping and the config (the pipeline lazily, in the child or in ``process once``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING

from farmtools.bookkeeping.errors import log_pass_error

if TYPE_CHECKING:
    from farmtools.bookkeeping import Bookkeeping
    from farmtools.config import FarmConfig

log = logging.getLogger("farmtools.processing")

#: how long the manager waits, when it stops, for a pass in progress to end
STOP_TIMEOUT_S = 60.0


def analyse_ready(cfg: FarmConfig, bk: Bookkeeping) -> list[Path]:
    """One analysis pass that never raises: the summaries written (an error is logged).

    Complete groups first, then the end-of-run step
    (:func:`farmtools.processing.runclose.closing_pass`: runs closed, their remainder groups
    analysed, their summaries written, their files planned into archives).  The next pass tries
    again; the pipeline itself parks files whose output cannot be read.
    """
    written: list[Path] = []
    try:
        from farmtools.analysis.pipeline import run_ready_analyses

        written = run_ready_analyses(cfg, bk)
    except Exception as exc:
        log_pass_error(log, "analyses", exc)
    from farmtools.processing.runclose import closing_pass

    report = closing_pass(cfg, bk)
    return written + report.partial + report.summaries


class AnalysisProcess:
    """The manager's handle on its analysis child (started at the first :meth:`run_pass`)."""

    def __init__(self, cfg: FarmConfig, database_url: str) -> None:
        self.cfg = cfg
        self.database_url = database_url
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def _start(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "farmtools.processing.analyser"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
            start_new_session=True,  # a Ctrl-C of the manager's terminal does not cut a fit
        )
        setup = {
            "config": self.cfg.model_dump(mode="json"),
            "base_dir": str(self.cfg.base_dir),
            "database_url": self.database_url,
        }
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(setup).encode() + b"\n")
        proc.stdin.flush()
        log.info("analyses run in child process %d", proc.pid)
        return proc

    def run_pass(self) -> list[Path]:
        """Ask the child for one pass and wait for it; [] (and a restart next time) if it died."""
        try:
            if self.proc is None or self.proc.poll() is not None:
                self.proc = self._start()
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write(b'"go"\n')
            self.proc.stdin.flush()
            answer = self.proc.stdout.readline()
            if not answer:
                raise EOFError("no answer")
            return [Path(p) for p in json.loads(answer)]
        except (OSError, EOFError, ValueError) as exc:
            code = self.proc.poll() if self.proc is not None else None
            log.error(
                "the analysis process died (exit %s: %s); restarted at the next pass", code, exc
            )
            self.close()
            return []

    def close(self) -> None:
        """End the child: end of input, then wait for the pass in progress (kill after a minute)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("analysis process %d did not stop; killed", proc.pid)
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """The child's loop: read the set-up, then one pass per request, until end of input."""
    from farmtools.bookkeeping import Bookkeeping
    from farmtools.config import FarmConfig

    line = requests.readline()
    if not line:
        return
    setup = json.loads(line)
    cfg = FarmConfig.model_validate({**setup["config"], "base_dir": Path(setup["base_dir"])})
    bk = Bookkeeping(setup["database_url"])
    try:
        while requests.readline():  # end of input: the manager stopped or died
            written = analyse_ready(cfg, bk)
            for path in written:
                log.info("analysis written: %s", path)
            answers.write(json.dumps([str(p) for p in written]).encode() + b"\n")
            answers.flush()
    finally:
        bk.close()


def main() -> None:
    from farmtools.logsetup import setup_logging

    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # what a library prints goes to the daemon's log, not into the protocol
    setup_logging()  # plain or JSON lines, as the manager that started it
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        _serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()
