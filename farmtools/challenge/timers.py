"""The farm's timers, run in a thread of the challenge: the archive, and the analyses if needed.

On the farm a systemd timer runs ``farmtools archive`` every few minutes and the processing
daemon analyses complete groups (``[analysis] auto``).  The challenge runs the archive here
every few seconds, forced once processing and analysis are over (the last, partial archive),
and the analyses and run closing only when the configuration switched them off in the daemon.
:class:`FarmTimers` also tells the challenge when these stages have settled.

Imports the archive, the analysis pipeline, the processing's run closing and the bookkeeping.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farmtools.analysis.pipeline import run_ready_analyses
from farmtools.archive.service import Archiver
from farmtools.bookkeeping import Bookkeeping, FileState
from farmtools.config import FarmConfig
from farmtools.processing.runclose import closing_pass


@dataclass
class FarmTimers:
    """The stages' loop and what it found (see the module docstring).

    ``processing_done`` is set by the challenge (every file past reconstruction); the loop
    sets ``analysis_settled`` and then ``archive_settled``.
    """

    cfg: FarmConfig
    bk: Bookkeeping
    run_numbers: list[int]
    archive: bool
    #: where a stage's traceback goes (the challenge's list of stage errors)
    errors: list[str]
    processing_done: bool = False
    analysis_settled: bool = False
    archive_settled: bool = False
    analysis_outputs: list[Path] = field(default_factory=list)
    archive_reports: list[dict[str, Any]] = field(default_factory=list)

    def pending_analysis(self) -> bool:
        """Whether a complete group still waits for the daemon's analysis pass, or a run for
        its end-of-run step (closed, remainder analysed, summary written, archives planned)."""
        for run in self.run_numbers:
            waiting = len(self.bk.files(run=run, state=FileState.RECONSTRUCTED))
            if waiting >= self.cfg.analysis.group_size:
                return True
        return not self.runs_finished()

    def runs_finished(self) -> bool:
        from farmtools.bookkeeping.ledger import FINISHED, run_ledger

        for run in self.run_numbers:
            led = run_ledger(self.bk, run)
            if led is None or led.status != FINISHED:
                return False
        return True

    def loop(self, stop: threading.Event) -> None:
        """Archives every few seconds (and analyses, if the daemon does not), until ``stop``."""
        in_process = not self.cfg.analysis.auto  # else `process run` analyses, as on the farm
        archiver = Archiver(self.cfg, self.bk) if self.archive else None
        last_archive = 0.0
        while not stop.is_set():
            processing_done = self.processing_done
            new = self._analyse() if in_process else []
            if processing_done and not new and not self.pending_analysis():
                self.analysis_settled = True
            if archiver is not None and (
                time.monotonic() - last_archive > 5.0
                or (self.analysis_settled and not self.archive_settled)
            ):
                force = self.analysis_settled
                try:
                    rep = archiver.run_ready(force=force)
                    self.archive_reports.append(
                        {k: {"done": v.done, "failed": v.failed} for k, v in rep.items()}
                    )
                except Exception:
                    self.errors.append("archive: " + traceback.format_exc(limit=3))
                last_archive = time.monotonic()
                if force:
                    self.archive_settled = True
            elif archiver is None and self.analysis_settled:
                self.archive_settled = True
            stop.wait(1.0)

    def _analyse(self) -> list[Path]:
        """One pass of the analyses and run closing, as ``process run`` would do it."""
        new: list[Path] = []
        try:
            new = run_ready_analyses(self.cfg, self.bk)
            report = closing_pass(self.cfg, self.bk)
            new += report.partial + report.summaries
        except Exception:
            self.errors.append("analysis: " + traceback.format_exc(limit=3))
        self.analysis_outputs.extend(new)
        return new
