"""From what a challenge observed (plain data) and the farm's evidence to the report dictionary.

:class:`Observations` is what the challenge saw on its side (the files the emulator wrote,
the faults, the daemons' statistics, its settings); :func:`gather_report` reads the rest from
the farm (:mod:`.evidence`), decides what each file was expected to go through (a good file:
every stage; archived when the archive stage ran), compares the analyses with the emulator's
truth (:mod:`.truth`), and calls :func:`~farmtools.challenge.report.build_report`.  Nothing here
knows the challenge's threads or daemons.  Imports the challenge's report modules only (the
ledger lazily).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farmtools.bookkeeping import Bookkeeping, Event, FileState
from farmtools.challenge import evidence
from farmtools.challenge.report import build_report
from farmtools.challenge.truth import analyses_vs_truth
from farmtools.config import FarmConfig

if TYPE_CHECKING:
    from farmtools.emulator.daq import EmulatedFile


@dataclass
class Observations:
    """What a challenge saw on its side, for its report (plain data, copied at the end)."""

    #: the report's ``settings`` (what was asked for and the farm it ran on)
    settings: dict[str, Any]
    run_numbers: list[int]
    events_per_file: int
    interval_s: float
    group_size: int
    #: whether the archive stage ran (then every good file is expected archived)
    archive: bool
    written: list[EmulatedFile] = field(default_factory=list)
    #: names of the files corrupted on purpose
    bad_files: list[str] = field(default_factory=list)
    #: each fault as :meth:`~.chaos.Fault.to_json` gives it
    faults: list[dict[str, Any]] = field(default_factory=list)
    #: daemons that died by themselves: daemon, exit, at_s, log
    crashes: list[dict[str, Any]] = field(default_factory=list)
    #: daemon name -> :meth:`~.daemons.Daemon.stats`
    daemons: dict[str, dict[str, Any]] = field(default_factory=dict)
    analysis_outputs: list[Path] = field(default_factory=list)
    archive_reports: list[dict[str, Any]] = field(default_factory=list)
    emulator_error: str | None = None
    stage_errors: list[str] = field(default_factory=list)
    monitor_url: str | None = None
    interrupted: bool = False
    timed_out: bool = False

    @property
    def good(self) -> list[str]:
        return [w.path.name for w in self.written]


BASE_STAGES = ("written", "detected", "stored", "submitted", "started", "ended", "reconstructed")


def expected_stages(
    good: Sequence[str],
    states: dict[str, str],
    analysed: set[str],
    *,
    analysis: bool,
    archive: bool,
    group_size: int,
    excuse_leftover: bool = True,
) -> dict[str, list[str]]:
    """Per good file, the stages it must have reached to count as complete.

    With ``excuse_leftover``, reconstructed files that were not analysed are excused from
    ``analysed`` when there are fewer of them than one analysis group (a run's last, incomplete
    group, for a farm that does not close its runs).  The challenge itself does not excuse
    them: each of its runs ends with an end-of-run record, and the close analyses the remainder.
    """
    leftover = [n for n in good if n not in analysed and states.get(n) == FileState.RECONSTRUCTED]
    excused = set(leftover) if excuse_leftover and len(leftover) < group_size else set()
    out = {}
    for n in good:
        stages = list(BASE_STAGES)
        if analysis and n not in excused:
            stages.append("analysed")
        if archive:
            stages.append("archived")
        out[n] = stages
    return out


def analysis_summaries(story_map: dict[str, list[Any]], outputs: Sequence[Path] = ()) -> list[Path]:
    """Every analysis summary of the challenge's files, whoever ran the analysis.

    The ``analysed`` story events name their summary: the processing daemon may analyse a
    group itself (``[analysis] auto``) before the challenge's own loop gets to it, and the
    report must compare those results with the truth too.  ``outputs`` (what the challenge's
    loop wrote) are kept, in order, then the summaries only the stories know.
    """
    seen: dict[str, Path] = {str(p): Path(p) for p in outputs}
    for story in story_map.values():
        for ev in story:
            summary = (ev.details or {}).get("summary") if ev.event == Event.ANALYSED else None
            if summary and str(summary) not in seen:
                seen[str(summary)] = Path(str(summary))
    return list(seen.values())


def run_ledgers(cfg: FarmConfig, bk: Bookkeeping, runs: Sequence[int]) -> list[dict[str, Any]]:
    """The ledger of each run of the challenge (``farmtools run N --json`` without the files)."""
    from farmtools.bookkeeping.ledger import run_ledger
    from farmtools.listing import jsonable

    out = []
    for run in runs:
        led = run_ledger(bk, run, stuck_after_s=cfg.monitor.stuck_after_s)
        if led is not None:
            out.append(jsonable(led.to_json()))
    return out


def gather_report(
    cfg: FarmConfig, bk: Bookkeeping, obs: Observations, started: datetime, finished: datetime
) -> dict[str, Any]:
    """The report of a challenge on farm ``cfg`` (see the module docstring)."""
    good, bad = obs.good, list(obs.bad_files)
    names = good + bad
    story_map = evidence.stories(bk, names)
    recs = evidence.records(bk, names)
    states = {r.name: str(r.state) for r in recs}
    analysed = {n for n, st in story_map.items() if any(ev.event == "analysed" for ev in st)}
    stages = expected_stages(
        good,
        states,
        analysed,
        analysis=True,
        archive=obs.archive,
        group_size=obs.group_size,
        excuse_leftover=False,
    )
    jobs = evidence.jobs_summary(bk, names)
    written = {w.path.name: w for w in obs.written}
    outputs = evidence.root_outputs(jobs["jobs"], {n: w.events for n, w in written.items()})
    integrity = evidence.integrity(
        cfg,
        good,
        {n: w.path for n, w in written.items()},
        recs,
        jobs["done_per_file"],
        outputs,
    )
    failures: dict[str, int] = {}
    for part in (jobs["job_failures"], evidence.story_failures(story_map)):
        for k, v in part.items():
            failures[k] = failures.get(k, 0) + v
    truth_paths = [w.truth for w in obs.written if w.truth is not None]
    analyses = analyses_vs_truth(analysis_summaries(story_map, obs.analysis_outputs), truth_paths)
    faults = list(obs.faults)
    for c in obs.crashes:
        faults.append(
            {
                "at_s": c["at_s"],
                "kind": "crash (not injected)",
                "target": c["daemon"],
                "details": f"exit {c['exit']}: {c['log'][-400:]}",
                "injected": False,
            }
        )
    measured = evidence.measured(
        story_map,
        good,
        recs,
        jobs=jobs["jobs"],
        files=len(good),
        interval_s=obs.interval_s,
        events_per_file=obs.events_per_file,
        workers=cfg.batch.slots,
        group_size=obs.group_size,
    )
    report = build_report(
        settings=obs.settings,
        expected_files=names,
        records=recs,
        stories=story_map,
        expected_stages=stages,
        bad_files=bad,
        jobs_per_worker=jobs["jobs_per_worker"],
        expected_workers=evidence.expected_workers(cfg),
        failures_by_class=failures,
        root_outputs=outputs,
        integrity=integrity,
        analyses=analyses,
        faults=faults,
        measured=measured,
        started=started,
        finished=finished,
        events_per_group=obs.events_per_file * obs.group_size,
    )
    report["daemons"] = dict(obs.daemons)
    report["errors"] = {"emulator": obs.emulator_error, "stages": obs.stage_errors[-10:]}
    report["archives"] = obs.archive_reports[-3:]
    report["monitor_url"] = obs.monitor_url
    report["emulator_files"] = [
        {"name": w.path.name, "events": w.events, "bytes": w.size, "truth": str(w.truth)}
        for w in obs.written
    ]
    report["analysis_outputs"] = [str(p) for p in obs.analysis_outputs]
    report["analysis_summaries"] = [a["summary"] for a in analyses]
    report["runs"] = run_ledgers(cfg, bk, obs.run_numbers)
    return _problems(report, obs)


def _problems(report: dict[str, Any], obs: Observations) -> dict[str, Any]:
    """A PASS turns FAIL, with the reasons, when the challenge itself did not run through."""
    problems = []
    if obs.interrupted:
        problems.append("interrupted")
    if obs.timed_out:
        problems.append("timed out")
    if obs.emulator_error:
        problems.append("emulator failed")
    unfinished = [r["run"] for r in report["runs"] if r["status"] != "finished"]
    if unfinished and not obs.emulator_error:
        problems.append(f"runs not closed and finished: {', '.join(map(str, unfinished))}")
    if problems:
        report["verdict"] = (
            report["verdict"] if report["verdict"] != "PASS" else "FAIL"
        ) + f" ({', '.join(problems)})"
    return report
