"""The data-challenge report: what happened to every file, built from the bookkeeping story.

Pure functions over records (no database, no clock): :func:`build_report` takes the files,
their stories and what the challenge measured on the side (jobs per worker, ROOT outputs,
integrity checks, analysis results against the injected truth, injected faults) and returns one
JSON-ready dictionary, the report's model (its JSON is what is kept); the rules that make the
verdict are here too.  :mod:`.render` presents it (text, HTML).

A file counts as *complete* only when its story holds every stage the challenge expected of it
(the Tier-0 rule: done means what was expected matches what arrived).  Files the challenge
corrupted on purpose are expected to end quarantined or failed with a reason instead.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from farmtools.bookkeeping import Event, FileState
from farmtools.bookkeeping.db import FileRecord, StoryEvent

#: Report stages and the story events that mark them (the first occurrence counts).
STAGE_EVENTS: dict[str, tuple[str, ...]] = {
    "written": (Event.WRITTEN,),
    "detected": (Event.DETECTED,),
    "stored": (Event.VERIFIED, Event.ALREADY_STORED),
    "submitted": (Event.SUBMITTED,),
    "started": (Event.STARTED,),
    "ended": (Event.ENDED,),
    "reconstructed": (Event.RECONSTRUCTED,),
    "analysed": (Event.ANALYSED,),
    "archived": (Event.ARCHIVED,),
}
#: Stages whose latency (from ``written``) the report gives percentiles for.
LATENCY_STAGES = ("detected", "stored", "submitted", "started", "ended", "analysed")


def stage_times(story: Iterable[StoryEvent]) -> dict[str, datetime]:
    """First time each report stage appears in a story."""
    by_event: dict[str, datetime] = {}
    for ev in story:
        by_event.setdefault(ev.event, ev.time)
    out: dict[str, datetime] = {}
    for stage, names in STAGE_EVENTS.items():
        times = [by_event[n] for n in names if n in by_event]
        if times:
            out[stage] = min(times)
    return out


def percentiles(values: Sequence[float], qs: Sequence[int] = (50, 90, 99)) -> dict[str, float]:
    """Nearest-rank percentiles plus min, max and count; empty input gives only the count."""
    out: dict[str, float] = {"n": float(len(values))}
    if not values:
        return out
    ordered = sorted(values)
    for q in qs:
        rank = max(1, math.ceil(q / 100 * len(ordered)))
        out[f"p{q}"] = ordered[rank - 1]
    out["min"] = ordered[0]
    out["max"] = ordered[-1]
    return out


def file_outcome(
    record: FileRecord,
    story: Sequence[StoryEvent],
    expected_stages: Sequence[str],
    bad_on_purpose: bool,
) -> dict[str, Any]:
    """One file's line of the report: its stage times, what is missing, and whether it is complete."""
    times = stage_times(story)
    missing = [s for s in expected_stages if s not in times]
    if bad_on_purpose:
        handled = record.state in (FileState.QUARANTINED, FileState.FAILED, FileState.IGNORED)
        complete = handled and bool(record.last_error)
        missing = (
            [] if complete else [f"expected quarantined/failed with a reason, is {record.state}"]
        )
    else:
        complete = not missing
    return {
        "name": record.name,
        "run": record.run,
        "seq": record.seq,
        "state": str(record.state),
        "bad_on_purpose": bad_on_purpose,
        "complete": complete,
        "missing": missing,
        "tries": record.tries,
        "last_error": record.last_error,
        "stages": {k: v.isoformat() for k, v in times.items()},
        "retries": sum(1 for ev in story if ev.event == Event.RETRY),
    }


def build_report(
    *,
    settings: Mapping[str, Any],
    expected_files: Sequence[str],
    records: Sequence[FileRecord],
    stories: Mapping[str, Sequence[StoryEvent]],
    expected_stages: Sequence[str] | Mapping[str, Sequence[str]],
    bad_files: Sequence[str] = (),
    jobs_per_worker: Mapping[str, int] | None = None,
    expected_workers: Mapping[str, Any] | None = None,
    failures_by_class: Mapping[str, int] | None = None,
    root_outputs: Sequence[Mapping[str, Any]] = (),
    integrity: Mapping[str, Any] | None = None,
    analyses: Sequence[Mapping[str, Any]] = (),
    faults: Sequence[Mapping[str, Any]] = (),
    measured: Mapping[str, Any] | None = None,
    started: datetime | None = None,
    finished: datetime | None = None,
    events_per_group: int | None = None,
) -> dict[str, Any]:
    """Assemble the whole report; see the module docstring.

    ``expected_files`` are the raw file names the emulator wrote: a name absent from the
    database is reported as *lost*.  ``expected_stages`` is one list for every file, or a
    mapping from file name to its own list (a file left out of an analysis group is not
    expected to be analysed).  ``integrity`` carries the end-of-run checks (``lost``,
    ``duplicated``, ``corrupt`` lists).  ``expected_workers`` is what
    :func:`farmtools.challenge.evidence.expected_workers` found (``nodes``, ``source``): the
    seed's rule that every worker ran at least one job is judged against it
    (:func:`worker_rule`).  ``events_per_group`` (events of one analysis group) decides
    whether an analysis that measured nothing fails the challenge (:func:`analysis_rule`).
    """
    by_name = {r.name: r for r in records}
    bad = set(bad_files)
    outcomes: list[dict[str, Any]] = []
    for name in expected_files:
        rec = by_name.get(name)
        if rec is None:
            outcomes.append(
                {"name": name, "complete": False, "missing": ["not in the database"], "lost": True}
            )
            continue
        stages = (
            expected_stages.get(name, ())
            if isinstance(expected_stages, Mapping)
            else expected_stages
        )
        outcomes.append(file_outcome(rec, stories.get(name, ()), stages, name in bad))
    unexpected = sorted(set(by_name) - set(expected_files))

    good = [o for o in outcomes if not o.get("bad_on_purpose") and not o.get("lost")]
    counts: dict[str, int] = {"written": len(expected_files) - len(bad)}
    for stage in ("stored", "reconstructed", "analysed", "archived"):
        counts[stage] = sum(1 for o in good if stage in o.get("stages", {}))
    latencies: dict[str, dict[str, float]] = {}
    for stage in LATENCY_STAGES:
        values = []
        for o in good:
            st = o.get("stages", {})
            if stage in st and "written" in st:
                dt = datetime.fromisoformat(st[stage]) - datetime.fromisoformat(st["written"])
                values.append(dt.total_seconds())
        latencies[stage] = percentiles(values)

    duration = (finished - started).total_seconds() if started and finished else None
    total_bytes = sum(r.size or 0 for r in records if r.name in set(expected_files))
    integrity_checks: dict[str, Any] = dict(integrity or {})
    incomplete = [o["name"] for o in outcomes if not o["complete"]]
    workers = worker_rule(expected_workers, jobs_per_worker or {}, len(good))
    analysis = analysis_rule(analyses, events_per_group)
    return {
        "settings": dict(settings),
        "started": started.isoformat() if started else None,
        "finished": finished.isoformat() if finished else None,
        "duration_s": duration,
        "counts": counts,
        "bad_on_purpose": sorted(bad),
        "incomplete": incomplete,
        "unexpected_names": unexpected,
        "latency_s": latencies,
        "throughput": {
            "bytes": total_bytes,
            "MBps": total_bytes / duration / 1e6 if duration else None,
            "files_per_min": len(good) / duration * 60 if duration else None,
        },
        "jobs_per_worker": dict(jobs_per_worker or {}),
        "workers": workers,
        "failures_by_class": dict(failures_by_class or {}),
        "root_outputs": list(root_outputs),
        "integrity": integrity_checks,
        "analyses": list(analyses),
        "analysis_rule": analysis,
        "faults": list(faults),
        "measured": dict(measured or {}),
        "files": outcomes,
        "verdict": verdict(incomplete, integrity_checks, workers, analysis),
    }


#: Fewest events per analysis group for which a lifetime is expected: the 100-event closure
#: study (docs/analysis.md) measured k to ~11 % at 7 ms with honest errors; below that a
#: group may legitimately measure nothing, and the challenge does not judge it.
MIN_EVENTS_JUDGED = 100


def analysis_rule(
    analyses: Sequence[Mapping[str, Any]], events_per_group: int | None
) -> dict[str, Any]:
    """Which analysis groups measured no lifetime, and whether that counts against the verdict.

    Judged when each group had at least :data:`MIN_EVENTS_JUDGED` events (unknown: judged);
    an entry counts as measuring nothing when ``lifetime_measured`` is False
    (:func:`farmtools.challenge.truth.measured_lifetime`).
    """
    nothing = [str(a.get("summary", "?")) for a in analyses if a.get("lifetime_measured") is False]
    judged = events_per_group is None or events_per_group >= MIN_EVENTS_JUDGED
    return {
        "groups": len(analyses),
        "measured_nothing": nothing,
        "events_per_group": events_per_group,
        "min_events_judged": MIN_EVENTS_JUDGED,
        "judged": judged,
    }


def worker_rule(
    expected: Mapping[str, Any] | None, jobs_per_worker: Mapping[str, int], good_files: int
) -> dict[str, Any]:
    """The seed's check that every worker ran at least one job, with the idle ones by name.

    ``expected`` holds the worker nodes the batch system has (``nodes``, None when they could
    not be found out) and where that came from (``source``).  ``every_worker_ran_a_job`` is
    None when the nodes are unknown; ``judged`` says whether an idle worker fails the
    challenge: only when there were at least as many good files as workers, since a challenge
    of 4 files on a 7-node farm leaves nodes idle without anything being wrong.
    """
    nodes = None if expected is None else expected.get("nodes")
    ran = sorted(k for k, v in jobs_per_worker.items() if v > 0)
    out: dict[str, Any] = {
        "expected": None if nodes is None else sorted(nodes),
        "source": (expected or {}).get("source", "not looked up"),
        "ran_jobs": ran,
        "idle": None,
        "unexpected": None,
        "every_worker_ran_a_job": None,
        "judged": False,
    }
    if nodes is not None:
        idle = sorted(set(nodes) - set(ran))
        out.update(
            idle=idle,
            unexpected=sorted(set(ran) - set(nodes)),
            every_worker_ran_a_job=not idle,
            judged=good_files >= len(set(nodes)) > 0,
        )
    return out


def verdict(
    incomplete: Sequence[str],
    integrity: Mapping[str, Any],
    workers: Mapping[str, Any] | None = None,
    analysis: Mapping[str, Any] | None = None,
) -> str:
    """``PASS`` when every file is complete, nothing was lost, duplicated or corrupted,
    (when judged, see :func:`worker_rule`) every worker ran at least one job, and (when judged,
    see :func:`analysis_rule`) every analysis group measured a lifetime."""
    problems = [k for k in ("lost", "duplicated", "corrupt") if integrity.get(k)]
    idle = (workers or {}).get("idle") if (workers or {}).get("judged") else None
    nothing = (analysis or {}).get("measured_nothing") if (analysis or {}).get("judged") else None
    if incomplete or problems or idle or nothing:
        parts = [f"{len(incomplete)} incomplete"] if incomplete else []
        parts += [f"{len(integrity[k])} {k}" for k in problems]
        if idle:
            parts.append(f"{len(idle)} idle workers")
        if nothing:
            parts.append(f"{len(nothing)} analyses measured no lifetime")
        return "FAIL: " + ", ".join(parts)
    return "PASS"


def failures_from_stories(stories: Mapping[str, Sequence[StoryEvent]]) -> dict[str, int]:
    """Count failure classes recorded in story details (``failure`` or ``class`` keys)."""
    c: Counter[str] = Counter()
    for story in stories.values():
        for ev in story:
            details = ev.details or {}
            cls = details.get("failure") or details.get("failure_class")
            if cls and ev.event in (Event.ENDED, Event.FAILED, Event.RETRY, Event.ERROR):
                c[str(cls)] += 1
    return dict(c)
