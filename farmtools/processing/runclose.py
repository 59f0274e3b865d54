"""End of run: close each run once the DAQ said so (or it went quiet), then finish it.

:func:`closing_pass` is one step of the processing daemon's analysis pass
(:func:`farmtools.processing.analyser.analyse_ready`, every ``ANALYSIS_RESCAN_S`` and after each
reconstruction), of ``process once``, and of ``farmtools runs close`` for cron.  Two stages,
each a compare-and-set on ``run_status`` so that two daemons never do them twice:

**close** (:func:`close_runs`), an open run is closed when

* the DAQ's end-of-run record (``run<N>.eor.json``, stored by ingest) was received and every file
  it names is detected (``end_of_run``), or ``[runs] quiet_s`` after the record when some are
  not: they are then missing;
* without a record, a later run has started and no file of this run arrived for
  ``[runs] quiet_s`` (``quiet``).

At close the ledger's problems (gaps in the sequence numbers, files the record names and never
seen, size or adler32 disagreements) raise one alarm each (source ``runs``, kinds of
:mod:`farmtools.bookkeeping.ledger`) naming what is missing, and the run's completeness flag is
set bad when there is one.

**finish** (:func:`finish_runs`), a closed run whose files have all gone through reconstruction
(none left before it): the remainder that does not fill an analysis group is analysed all the
same and flagged partial; the run's summary (lifetime and gains from all its files) is written
in the seed's format and JSON; its files are planned into archives without waiting for more data
(``[runs] archive_at_close``); problems found since the close (checksums known only once copied,
files that failed) raise their alarms; the completeness flag becomes good or bad.

Never raises for one run: an error is logged and the run is tried again at the next pass.
Imports the bookkeeping and the config (the analysis pipeline and the archive lazily).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from farmtools.bookkeeping import schema
from farmtools.bookkeeping.errors import log_pass_error
from farmtools.bookkeeping.ledger import FAILED, RunLedger, run_ledger
from farmtools.bookkeeping.registry import BAD, GOOD, set_auto_flag
from farmtools.bookkeeping.schema import events, files, now, run_status
from farmtools.bookkeeping.states import BEFORE_RECO, Event, FileState

if TYPE_CHECKING:
    from farmtools.bookkeeping.db import Bookkeeping
    from farmtools.config import FarmConfig

log = logging.getLogger("farmtools.processing")

#: ``alarms.source`` of the alarms raised here; ``run_flags.source`` of the completeness flag.
SOURCE = "runs"
COMPLETENESS = "completeness"
END_OF_RUN, QUIET = "end_of_run", "quiet"


@dataclass
class ClosingReport:
    """What one :func:`closing_pass` did."""

    closed: list[int] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)
    partial: list[Path] = field(default_factory=list)
    summaries: list[Path] = field(default_factory=list)
    archives: list[str] = field(default_factory=list)


def _open_runs(bk: Bookkeeping) -> list[int]:
    """Runs with files or an end-of-run record and not closed yet."""
    rs = run_status
    closed = select(rs.c.run).where(rs.c.closed.is_not(None))
    with bk.engine.connect() as conn:
        with_files = set(
            conn.execute(select(schema.runs.c.run).where(schema.runs.c.run.not_in(closed)))
            .scalars()
            .all()
        )
        with_eor = set(
            conn.execute(select(rs.c.run).where(rs.c.closed.is_(None), rs.c.eor.is_not(None)))
            .scalars()
            .all()
        )
    return sorted(with_files | with_eor)


def _last_arrival(bk: Bookkeeping, run: int) -> datetime | None:
    """When the newest file of ``run`` was written or detected."""
    q = (
        select(func.max(events.c.time))
        .join(files, files.c.id == events.c.file_id)
        .where(files.c.run == run, events.c.event.in_((Event.WRITTEN, Event.DETECTED)))
    )
    with bk.engine.connect() as conn:
        t = conn.execute(q).scalar()
    return t if isinstance(t, datetime) else None


def _eor_received(bk: Bookkeeping, run: int) -> datetime | None:
    with bk.engine.connect() as conn:
        return conn.execute(
            select(run_status.c.eor_received).where(run_status.c.run == run)
        ).scalar()


def close_reason(
    cfg: FarmConfig, bk: Bookkeeping, led: RunLedger, later_run: bool, t: datetime
) -> str | None:
    """Why ``led`` closes now (:data:`END_OF_RUN`, :data:`QUIET`), or None: it stays open."""
    quiet = timedelta(seconds=cfg.runs.quiet_s)
    received = _eor_received(bk, led.run)
    if received is not None:
        expected = led.expected_files or 0
        if not led.missing and led.detected >= expected:
            return END_OF_RUN
        return END_OF_RUN if t - received >= quiet else None
    if not later_run:
        return None
    last = _last_arrival(bk, led.run)
    return QUIET if last is None or t - last >= quiet else None


def _alarm_new(bk: Bookkeeping, led: RunLedger, already: Sequence[str]) -> list[str]:
    """Raise one alarm per problem not alarmed before (failed files have their own); the
    problems now."""
    for kind, text in led.issues:
        if text not in already and kind != FAILED:
            bk.raise_alarm(None, SOURCE, kind, text)
            log.error("%s", text)
    return led.problems


def close_runs(cfg: FarmConfig, bk: Bookkeeping, *, t: datetime | None = None) -> list[int]:
    """Close the runs that are over (see the module docstring); the runs closed now."""
    t = t or now()
    open_runs = _open_runs(bk)
    if not open_runs:
        return []
    with bk.engine.connect() as conn:
        newest = conn.execute(select(func.max(schema.runs.c.run))).scalar() or 0
        newest_eor = conn.execute(select(func.max(run_status.c.run))).scalar() or 0
    newest = max(newest, newest_eor)
    closed = []
    for run in open_runs:
        try:
            if newest <= run and _eor_received(bk, run) is None:
                continue  # the last run, and the DAQ has not said it is over
            led = run_ledger(bk, run, stuck_after_s=cfg.monitor.stuck_after_s)
            if led is None:
                continue
            reason = close_reason(cfg, bk, led, newest > run, t)
            if reason is None or not bk.close_run(run, reason, led.problems):
                continue
            log.info("run %d closed (%s): %s", run, reason, "; ".join(led.problems) or "complete")
            _alarm_new(bk, led, ())
            if led.problems:
                set_auto_flag(bk, run, COMPLETENESS, BAD, "; ".join(led.problems))
            closed.append(run)
        except Exception:
            log.exception("run %d: closing failed; tried again at the next pass", run)
    return closed


def _closed_unfinished(bk: Bookkeeping) -> list[tuple[int, list[str]]]:
    rs = run_status
    q = (
        select(rs.c.run, rs.c.problems)
        .where(rs.c.closed.is_not(None), rs.c.finished.is_(None))
        .order_by(rs.c.run)
    )
    with bk.engine.connect() as conn:
        return [(r, list(p or [])) for r, p in conn.execute(q)]


#: runs finished per pass at most: a database upgraded with years of runs (all open) works its
#: backlog off a few runs a pass, between the group analyses of the data coming in
FINISH_PER_PASS = 5


def finish_runs(
    cfg: FarmConfig,
    bk: Bookkeeping,
    report: ClosingReport | None = None,
    *,
    limit: int = FINISH_PER_PASS,
) -> list[int]:
    """Finish the closed runs whose files all went through reconstruction (at most ``limit``,
    oldest first); the runs finished."""
    report = report if report is not None else ClosingReport()
    for run, alarmed in _closed_unfinished(bk):
        if len(report.finished) >= limit:
            break
        try:
            if _finish(cfg, bk, run, alarmed, report):
                report.finished.append(run)
        except Exception:
            log.exception("run %d: finishing failed; tried again at the next pass", run)
    return report.finished


def _finish(
    cfg: FarmConfig, bk: Bookkeeping, run: int, alarmed: list[str], report: ClosingReport
) -> bool:
    led = run_ledger(bk, run, stuck_after_s=cfg.monitor.stuck_after_s)
    if led is None or any(f.state in BEFORE_RECO for f in led.files):
        return False
    reco = cfg.processing.program == "reco" and cfg.analysis.auto
    summary: Path | None = None
    if reco:
        from farmtools.analysis.pipeline import analyse_group, analyse_run

        left = bk.files(run=run, state=FileState.RECONSTRUCTED)
        if len(left) >= cfg.analysis.group_size:
            return False  # a whole group: the group pass takes it first
        if left:
            out = analyse_group(cfg, bk, left, partial=True)
            if out is None:
                return False  # an output could not be read (file failed) or raced: next pass
            report.partial.append(out)
        summary = analyse_run(cfg, bk, run)
        if summary is not None:
            report.summaries.append(summary)
    if cfg.runs.archive_at_close:
        report.archives += _plan_archives(cfg, bk, run)
    led = run_ledger(bk, run, stuck_after_s=cfg.monitor.stuck_after_s) or led
    problems = _alarm_new(bk, led, alarmed)
    if not bk.finish_run(run, problems, str(summary) if summary is not None else None):
        return False
    if problems:
        set_auto_flag(bk, run, COMPLETENESS, BAD, "; ".join(problems))
    else:
        set_auto_flag(bk, run, COMPLETENESS, GOOD, "complete: every file analysed")
    log.info("run %d finished: %s", run, "; ".join(problems) or "complete")
    return True


def late_remainders(cfg: FarmConfig, bk: Bookkeeping, report: ClosingReport) -> None:
    """Files that arrived after their run finished and do not fill a group: analysed too.

    (A whole group of them is the group pass's.)  Their run stays finished; the ledger shows
    them.
    """
    if cfg.processing.program != "reco" or not cfg.analysis.auto:
        return
    from farmtools.analysis.pipeline import analyse_group

    q = (
        select(files.c.run)
        .join(run_status, run_status.c.run == files.c.run)
        .where(files.c.state == str(FileState.RECONSTRUCTED), run_status.c.finished.is_not(None))
        .distinct()
    )
    with bk.engine.connect() as conn:
        late = conn.execute(q).scalars().all()
    for run in late:
        try:
            if any(f.state in BEFORE_RECO for f in bk.files(run=run)):
                continue
            left = bk.files(run=run, state=FileState.RECONSTRUCTED)
            if 0 < len(left) < cfg.analysis.group_size:
                out = analyse_group(cfg, bk, left, partial=True)
                if out is not None:
                    report.partial.append(out)
        except Exception:
            log.exception("run %d: late files not analysed; tried again at the next pass", run)


def _plan_archives(cfg: FarmConfig, bk: Bookkeeping, run: int) -> list[str]:
    """Plan the run's stored, unarchived files into archives now, small or not."""
    from farmtools.archive.planner import DEFAULT_TAG, PlanError
    from farmtools.archive.service import Archiver

    svc = Archiver(cfg, bk)
    try:
        plan = svc.plan(runs=[run], tag=DEFAULT_TAG)
    except PlanError:
        return []  # nothing left to archive (all archived already)
    return [a.name for a in svc.record_plan(plan)]


def closing_pass(cfg: FarmConfig, bk: Bookkeeping) -> ClosingReport:
    """Close what is over, finish what is closed (see the module docstring); never raises."""
    report = ClosingReport()
    try:
        report.closed = close_runs(cfg, bk)
        finish_runs(cfg, bk, report)
        late_remainders(cfg, bk, report)
    except Exception as exc:
        log_pass_error(log, "closing runs", exc)
    return report


def describe(report: ClosingReport) -> dict[str, Any]:
    """The report as JSON-able numbers and names (``runs close``)."""
    return {
        "closed": report.closed,
        "finished": report.finished,
        "partial": [str(p) for p in report.partial],
        "summaries": [str(p) for p in report.summaries],
        "archives": report.archives,
    }
