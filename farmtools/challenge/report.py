"""The data-challenge report: what happened to every file, built from the bookkeeping story.

Pure functions over records (no database, no clock): :func:`build_report` takes the files,
their stories and what the challenge measured on the side (jobs per worker, ROOT outputs,
integrity checks, analysis results against the injected truth, injected faults) and returns one
JSON-ready dictionary.  :func:`render_text` and :func:`render_html` present it; the HTML page is
self-contained (plotly's JavaScript inlined) because farm networks are closed.

A file counts as *complete* only when its story holds every stage the challenge expected of it
(the Tier-0 rule: done means what was expected matches what arrived).  Files the challenge
corrupted on purpose are expected to end quarantined or failed with a reason instead.
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from farmtools.bookkeeping import Event, FileState
from farmtools.bookkeeping.db import FileRecord, StoryEvent
from farmtools.challenge.report666 import chain_lines

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
    :func:`farmtools.challenge.collect.expected_workers` found (``nodes``, ``source``): the
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


# --- presentation ----------------------------------------------------------------------------
def render_text(report: Mapping[str, Any]) -> str:
    """A terminal summary: counts, latencies, workers, integrity, analyses, faults, verdict."""
    lines = [f"Data challenge: {report['verdict']}"]
    dur = report.get("duration_s")
    lines.append(f"  duration {dur:.1f} s" if dur else "  duration ?")
    c = report["counts"]
    lines.append(
        "  files: written {written}, stored {stored}, reconstructed {reconstructed}, "
        "analysed {analysed}, archived {archived}".format(**c)
    )
    if report["bad_on_purpose"]:
        lines.append(f"  corrupt files injected: {len(report['bad_on_purpose'])}")
    lines.append("  latency from written (s):   median     p90     p99     max")
    for stage, p in report["latency_s"].items():
        if "p50" in p:
            lines.append(
                f"    {stage:<14} {p['p50']:>12.3f} {p['p90']:>7.3f} {p['p99']:>7.3f} {p['max']:>7.3f}"
            )
    t = report["throughput"]
    if t.get("MBps") is not None:
        lines.append(f"  throughput {t['MBps']:.1f} MB/s, {t['files_per_min']:.1f} files/min")
    if report["jobs_per_worker"]:
        jobs = ", ".join(f"{k}: {v}" for k, v in sorted(report["jobs_per_worker"].items()))
        lines.append(f"  jobs per worker: {jobs}")
    lines.extend(_worker_lines(report.get("workers") or {}))
    if report["failures_by_class"]:
        classes = sorted(report["failures_by_class"].items())
        lines.append("  failures by class: " + ", ".join(f"{k} {n}" for k, n in classes))
    roots = report["root_outputs"]
    if roots:
        ok = sum(1 for r in roots if r.get("ok"))
        lines.append(
            f"  ROOT outputs opened: {ok}/{len(roots)}, entries {sum(r.get('entries', 0) for r in roots)}"
        )
    integ = report["integrity"]
    lines.append(
        "  lost {}, duplicated {}, corrupt {}".format(
            len(integ.get("lost", [])),
            len(integ.get("duplicated", [])),
            len(integ.get("corrupt", [])),
        )
    )
    analyses = report["analyses"]
    for a in analyses[:4]:
        lines.append("  " + a.get("summary_line", json.dumps(a)[:150]))
    if len(analyses) > 4:
        lines.append(f"  ... {len(analyses) - 4} more analysis groups (in the JSON and HTML)")
    lines.extend(_analysis_totals(analyses))
    rule = report.get("analysis_rule") or {}
    if rule.get("measured_nothing"):
        n = len(rule["measured_nothing"])
        how = (
            "a failure"
            if rule.get("judged")
            else f"not judged: {rule.get('events_per_group')} events per group, "
            f"fewer than {rule.get('min_events_judged')}"
        )
        lines.append(f"  analyses that measured no lifetime: {n}/{rule['groups']} ({how})")
    for f in report["faults"]:
        at = f.get("done_at_s") if f.get("done_at_s") is not None else f.get("at_s", 0)
        flag = "fault injected" if f.get("injected", True) else "fault NOT injected"
        lines.append(
            f"  {flag}: {at:.1f} s {f.get('kind')} {f.get('target', '')}: {f.get('details', '')}"
        )
    for name, d in (report.get("daemons") or {}).items():
        lines.append(
            f"  daemon {name}: {d['cpu_s']:.2f} s CPU over {d['alive_s']:.1f} s "
            f"({d['cpu_percent_of_one_core']} % of one core), started {d['starts']}x, "
            f"SIGKILLed {d['sigkills']}x"
        )
    lines.extend(_run_lines(report.get("runs") or []))
    lines.extend(chain_lines(report.get("chain_6x6x6")))
    for name in report["incomplete"][:20]:
        o = next(o for o in report["files"] if o["name"] == name)
        lines.append(f"  INCOMPLETE {name!r}: missing {', '.join(o['missing'])}")
    if len(report["incomplete"]) > 20:
        lines.append(f"  ... and {len(report['incomplete']) - 20} more incomplete files")
    return "\n".join(lines)


def _run_lines(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per run's ledger (``farmtools runs``), then its problems."""
    lines = []
    for r in runs:
        expected = r.get("expected_files")
        files = f"{r['detected']}/{expected}" if expected is not None else str(r["detected"])
        lines.append(
            f"  run {r['run']}: {r['status']}"
            + (f" ({r['close_reason']})" if r.get("close_reason") else "")
            + f", flag {r['flag']}, files {files}, stored {r['stored']}, reconstructed "
            f"{r['reconstructed']}, analysed {r['analysed']}, archived {r['archived']} "
            f"(planned {r['archive_planned']}), events {r.get('expected_events')}"
        )
        lines.extend(f"    problem: {p}" for p in r.get("problems") or [])
    return lines


def _worker_lines(w: Mapping[str, Any]) -> list[str]:
    """The "every worker ran at least one job" line, idle workers by name."""
    if not w:
        return []
    if w.get("expected") is None:
        return [f"  every worker ran a job: unknown (workers not found: {w.get('source')})"]
    n = len(w["expected"])
    if w["every_worker_ran_a_job"]:
        line = f"  every worker ran a job: yes, {n}/{n} ({w['source']})"
    else:
        idle = ", ".join(w["idle"])
        note = "" if w.get("judged") else "; fewer files than workers, not a failure"
        line = (
            f"  every worker ran a job: NO, {n - len(w['idle'])}/{n}; idle workers: {idle} "
            f"({w['source']}{note})"
        )
    lines = [line]
    if w.get("unexpected"):
        lines.append(f"  jobs ran on workers not in the list: {', '.join(w['unexpected'])}")
    return lines


def _analysis_totals(analyses: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line over every analysis group: lifetime pulls against the truth, gain biases."""
    pulls = [a["lifetime_pull"] for a in analyses if a.get("lifetime_pull") is not None]
    gains = [a["gain_bias_mean"] for a in analyses if a.get("gain_bias_mean") is not None]
    if not pulls and not gains:
        return []
    parts = [f"  analyses vs truth over {len(analyses)} groups:"]
    if pulls:
        within = sum(1 for p in pulls if abs(p) <= 2)
        parts.append(
            f"lifetime pull (in 1/tau) mean {sum(pulls) / len(pulls):+.2f}, "
            f"{within}/{len(pulls)} within 2 sigma;"
        )
    if gains:
        parts.append(f"LEM gain bias mean {100 * sum(gains) / len(gains):+.1f} %")
    return [" ".join(parts)]


def render_html(report: Mapping[str, Any]) -> str:
    """A self-contained HTML page with the summary and plots (plotly inlined)."""
    from plotly.offline import get_plotlyjs

    figures = _figures(report)
    divs = []
    scripts = []
    for i, fig in enumerate(figures):
        divs.append(f'<div id="fig{i}" class="fig"></div>')
        scripts.append(
            f"Plotly.newPlot('fig{i}', {json.dumps(fig['data'])}, {json.dumps(fig['layout'])});"
        )
    rows = "".join(
        "<tr class='{cls}'><td>{name}</td><td>{state}</td><td>{stages}</td><td>{missing}</td></tr>".format(
            cls="ok" if o["complete"] else "bad",
            name=html.escape(o["name"]),
            state=html.escape(str(o.get("state", "?"))),
            stages=html.escape(", ".join(o.get("stages", {}))),
            missing=html.escape("; ".join(o["missing"])),
        )
        for o in report["files"]
    )
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>farmtools data challenge: {html.escape(report["verdict"])}</title>
<script>{get_plotlyjs()}</script>
<style>body{{font-family:sans-serif;margin:1em 2em}} .fig{{width:48%;display:inline-block;height:360px}}
pre{{background:#f4f4f4;padding:1em}} tr.bad td{{background:#fdd}} td{{padding:2px 6px;font-size:12px}}</style>
</head><body><h1>Data challenge: {html.escape(report["verdict"])}</h1>
<pre>{html.escape(render_text(report))}</pre>
{"".join(divs)}
<h2>Every file</h2><table><tr><th>file</th><th>state</th><th>stages</th><th>missing</th></tr>{rows}</table>
<script>{"".join(scripts)}</script></body></html>"""


def _figures(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    figs: list[dict[str, Any]] = []
    good = [o for o in report["files"] if o.get("stages") and not o.get("bad_on_purpose")]
    traces = []
    for stage in LATENCY_STAGES:
        xs = []
        for o in good:
            st = o["stages"]
            if stage in st and "written" in st:
                xs.append(
                    (
                        datetime.fromisoformat(st[stage]) - datetime.fromisoformat(st["written"])
                    ).total_seconds()
                )
        if xs:
            traces.append({"type": "box", "name": stage, "y": xs})
    figs.append(
        {
            "data": traces,
            "layout": {"title": {"text": "latency from written (s)"}, "yaxis": {"type": "log"}},
        }
    )
    timeline = []
    for stage in ("written", "stored", "ended", "analysed"):
        ts = sorted(o["stages"][stage] for o in good if stage in o["stages"])
        timeline.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": stage,
                "x": ts,
                "y": list(range(1, len(ts) + 1)),
            }
        )
    layout: dict[str, Any] = {"title": {"text": "files through each stage (dotted: faults)"}}
    if report.get("started") and report.get("faults"):
        t0 = datetime.fromisoformat(report["started"])
        shapes, notes = [], []
        for f in report["faults"]:
            at = f.get("done_at_s") if f.get("done_at_s") is not None else f.get("at_s")
            if at is None or not f.get("injected", True):
                continue
            x = (t0 + timedelta(seconds=float(at))).isoformat()
            shapes.append(
                {
                    "type": "line",
                    "x0": x,
                    "x1": x,
                    "yref": "paper",
                    "y0": 0,
                    "y1": 1,
                    "line": {"dash": "dot", "width": 1, "color": "#a0a"},
                }
            )
            label = f"{f.get('kind')} {str(f.get('target', '')).split(' ')[0]}"
            notes.append(
                {
                    "x": x,
                    "yref": "paper",
                    "y": 1,
                    "text": label,
                    "textangle": -60,
                    "showarrow": False,
                }
            )
        layout.update(shapes=shapes, annotations=notes)
    figs.append({"data": timeline, "layout": layout})
    jobs = dict(report.get("jobs_per_worker") or {})
    idle = (report.get("workers") or {}).get("idle") or []
    jobs.update({name: 0 for name in idle})  # an idle worker is a bar of height 0, by name
    figs.append(
        {
            "data": [{"type": "bar", "x": list(jobs), "y": list(jobs.values())}],
            "layout": {
                "title": {
                    "text": "jobs per worker" + (f" (idle: {', '.join(idle)})" if idle else "")
                }
            },
        }
    )
    analyses = [a for a in report.get("analyses", []) if a.get("lifetime")]
    if analyses:
        truth = analyses[0].get("truth", {}).get("lifetime_us")
        names = [str(a["summary"]).rsplit("/", 1)[-1].removesuffix(".json") for a in analyses]
        data: list[dict[str, Any]] = [
            {
                "type": "scatter",
                "mode": "markers",
                "name": "measured",
                "x": names,
                "y": [a["lifetime"][0] for a in analyses],
                "error_y": {"type": "data", "array": [a["lifetime"][1] or 0 for a in analyses]},
            }
        ]
        if truth:
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "name": "injected",
                    "x": names,
                    "y": [truth] * len(names),
                }
            )
        figs.append(
            {"data": data, "layout": {"title": {"text": "electron lifetime (us) vs injected"}}}
        )
    gains = [a for a in report.get("analyses", []) if a.get("gains")]
    if gains:
        a = gains[-1]
        lems = sorted(a["gains"], key=lambda k: int(k) if k.isdigit() else 0)
        gmap = a.get("truth", {}).get("gain_map", {})
        figs.append(
            {
                "data": [
                    {
                        "type": "bar",
                        "name": "measured",
                        "x": lems,
                        "y": [a["gains"][k] for k in lems],
                    },
                    {
                        "type": "scatter",
                        "mode": "markers",
                        "name": "injected",
                        "x": lems,
                        "y": [gmap.get(k) for k in lems],
                    },
                ],
                "layout": {"title": {"text": "LEM effective gain vs injected (last group)"}},
            }
        )
    for a in report.get("analyses", []):
        if a.get("plot"):
            figs.append(a["plot"])
    return figs
