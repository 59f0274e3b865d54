"""From a finished :class:`~farmtools.challenge.run.Challenge` to the report dictionary.

Reads the evidence (:mod:`.collect`), decides what each file was expected to go through (a good
file: every stage; analysed only when its analysis group filled up; archived when the archive
stage ran), compares the analyses with the emulator's truth (:mod:`.truth`), and calls
:func:`~farmtools.challenge.report.build_report`.  Imports the challenge modules only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farmtools.bookkeeping import Event, FileState
from farmtools.challenge import collect
from farmtools.challenge.report import build_report
from farmtools.challenge.truth import analyses_vs_truth

if TYPE_CHECKING:
    from farmtools.challenge.run import Challenge

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
    group, for a farm that does not close its runs).  The challenge itself no longer excuses
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


def run_ledgers(ch: Challenge) -> list[dict[str, Any]]:
    """The ledger of each run of the challenge (``farmtools run N --json`` without the files)."""
    from farmtools.bookkeeping.ledger import run_ledger
    from farmtools.listing import jsonable

    out = []
    for run in getattr(ch, "run_numbers", []):
        led = run_ledger(ch.bk, run, stuck_after_s=ch.cfg.monitor.stuck_after_s)
        if led is not None:
            out.append(jsonable(led.to_json()))
    return out


def gather_report(ch: Challenge, started: datetime, finished: datetime) -> dict[str, Any]:
    """The report of challenge ``ch`` (see the module docstring)."""
    good, bad = ch.names() if hasattr(ch, "shared") else ([], [])
    bk = ch.bk
    names = good + bad
    story_map = collect.stories(bk, names)
    recs = collect.records(bk, names)
    states = {r.name: str(r.state) for r in recs}
    analysed = {n for n, st in story_map.items() if any(ev.event == "analysed" for ev in st)}
    stages = expected_stages(
        good,
        states,
        analysed,
        analysis=True,
        archive=ch.s.archive,
        group_size=ch.group_size,
        excuse_leftover=False,
    )
    jobs = collect.jobs_summary(bk, names)
    written = {w.path.name: w for w in ch.shared.written}
    outputs = collect.root_outputs(jobs["jobs"], {n: w.events for n, w in written.items()})
    integrity = collect.integrity(
        ch.cfg,
        good,
        {n: w.path for n, w in written.items()},
        recs,
        jobs["done_per_file"],
        outputs,
    )
    failures: dict[str, int] = {}
    for part in (jobs["job_failures"], collect.story_failures(story_map)):
        for k, v in part.items():
            failures[k] = failures.get(k, 0) + v
    truth_paths = [w.truth for w in ch.shared.written if w.truth is not None]
    analyses = analyses_vs_truth(
        analysis_summaries(story_map, ch.shared.analysis_outputs), truth_paths
    )
    faults = [f.to_json() for f in ch.shared.faults]
    for c in ch.shared.crashes:
        faults.append(
            {
                "at_s": c["at_s"],
                "kind": "crash (not injected)",
                "target": c["daemon"],
                "details": f"exit {c['exit']}: {c['log'][-400:]}",
                "injected": False,
            }
        )
    measured = collect.measured(
        story_map,
        good,
        recs,
        jobs=jobs["jobs"],
        files=len(good),
        interval_s=ch.s.interval_s,
        events_per_file=ch.s.events,
        workers=ch.cfg.batch.slots,
        group_size=ch.group_size,
    )
    daemons = {
        name: {
            "cpu_s": round(d.cpu_s, 3),
            "alive_s": round(d.alive_s, 3),
            "cpu_percent_of_one_core": round(100 * d.cpu_s / d.alive_s, 3) if d.alive_s else None,
            "starts": d.starts,
            "sigkills": d.kills,
            "log": str(d.log_path),
        }
        for name, d in ch.daemons.items()
    }
    report = build_report(
        settings=ch.settings_json(),
        expected_files=names,
        records=recs,
        stories=story_map,
        expected_stages=stages,
        bad_files=bad,
        jobs_per_worker=jobs["jobs_per_worker"],
        expected_workers=collect.expected_workers(ch.cfg),
        failures_by_class=failures,
        root_outputs=outputs,
        integrity=integrity,
        analyses=analyses,
        faults=faults,
        measured=measured,
        started=started,
        finished=finished,
        events_per_group=ch.s.events * ch.group_size,
    )
    report["daemons"] = daemons
    report["errors"] = {
        "emulator": ch.shared.emulator_error,
        "stages": ch.shared.stage_errors[-10:],
    }
    report["archives"] = ch.shared.archive_reports[-3:]
    report["monitor_url"] = ch.monitor_url
    report["emulator_files"] = [
        {"name": w.path.name, "events": w.events, "bytes": w.size, "truth": str(w.truth)}
        for w in ch.shared.written
    ]
    report["analysis_outputs"] = [str(p) for p in ch.shared.analysis_outputs]
    report["analysis_summaries"] = [a["summary"] for a in analyses]
    report["runs"] = run_ledgers(ch)
    problems = []
    if ch.interrupted:
        problems.append("interrupted")
    if ch.timed_out:
        problems.append("timed out")
    if ch.shared.emulator_error:
        problems.append("emulator failed")
    unfinished = [r["run"] for r in report["runs"] if r["status"] != "finished"]
    if unfinished and not ch.shared.emulator_error:
        problems.append(f"runs not closed and finished: {', '.join(map(str, unfinished))}")
    if problems:
        report["verdict"] = (
            report["verdict"] if report["verdict"] != "PASS" else "FAIL"
        ) + f" ({', '.join(problems)})"
    return report
