"""The data-challenge report presented: a terminal summary, a self-contained HTML page, files.

:func:`render_text` and :func:`render_html` take the report dictionary that
:func:`~farmtools.challenge.report.build_report` made (and the challenge completed) and nothing
else; the HTML page is self-contained (plotly's JavaScript inlined) because farm networks are
closed.  :func:`write_report` writes the JSON, text and HTML files of a challenge.  Imports the
report model (plotly lazily).
"""

from __future__ import annotations

import contextlib
import html
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from farmtools.challenge.report import LATENCY_STAGES


def write_report(report: Mapping[str, Any], stem: Path) -> tuple[Path, Path, Path]:
    """``<stem>.json``, ``.txt`` and ``.html``, and ``latest.html`` beside them pointing to the
    page; returns the three paths (json, text, html)."""
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps(report, indent=1, default=str))
    text_path = stem.with_suffix(".txt")
    text_path.write_text(render_text(report) + "\n")
    html_path = stem.with_suffix(".html")
    html_path.write_text(render_html(report))
    latest = stem.parent / "latest.html"
    with contextlib.suppress(OSError):
        latest.unlink()
    with contextlib.suppress(OSError):
        latest.symlink_to(html_path.name)
    return json_path, text_path, html_path


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


def chain_lines(chain: Mapping[str, Any] | None) -> list[str]:
    """The 6x6x6 part of the terminal summary."""
    if not chain:
        return []
    c = chain["counts"]
    lines = [
        f"  6x6x6 chain ({chain['detector']}, preset {chain['preset']}):",
        f"    fragments: emitted {c['fragments_emitted']}, read {c['fragments_read']}, "
        f"set aside {c['set_aside']}",
        f"    events: emitted {c['emitted']}, built {c['built']}, incomplete {c['incomplete']}, "
        f"in event files {c['in_event_files']}, stored {c['stored']}, "
        f"reconstructed {c['reconstructed']}",
    ]
    if c["classified"] is None:
        lines.append("    filtering, formatting, transfer: not run")
    else:
        lines.append(
            f"    filter: classified {c['classified']} = kept {c['kept']} + prescaled out "
            f"{c['prescaled_out']} + dropped {c['dropped']}; kept in verified final files "
            f"{c['in_verified_finals']} ({len(chain['final_files'])} final files)"
        )
        classes = ", ".join(
            f"{k} " + "/".join(str(v.get(d, 0)) for d in ("kept", "prescaled_out", "dropped"))
            for k, v in sorted(chain["by_class"].items())
        )
        lines.append(f"    by class (kept/prescaled out/dropped): {classes}")
    acc = chain["accounting"]
    for name, v in acc["identities"].items():
        lines.append(f"    {'ok  ' if v['holds'] else 'FAIL'} {name}: {v['left']} = {v['right']}")
    lines.append(f"    lost: {acc['lost_total']}")
    lines.append("    stage                   latency median / max (s)   events/s     MB/s")
    for name, s in chain["stages"].items():
        lat = s["latency"]
        la = (
            f"{lat['median_s']:>8.2f} / {lat['max_s']:<8.2f}"
            if lat.get("median_s") is not None
            else f"{'-':>8} / {'-':<8}"
        )
        eps = f"{s['events_per_s']:>10.2f}" if s.get("events_per_s") is not None else f"{'-':>10}"
        mbs = f"{s['MB_per_s']:>8.2f}" if s.get("MB_per_s") is not None else f"{'-':>8}"
        note = " (not run)" if s.get("not_run") else " (busy time)" if s.get("busy") else ""
        lines.append(f"    {name:<22} {la:>26} {eps} {mbs}{note}")
    b = chain["buffer"]
    if chain.get("outage"):
        o = chain["outage"]
        lines.append(
            f"    link to central storage down {o.get('duration_s')} s "
            f"({'injected' if o.get('injected') else 'NOT injected'}: {o.get('details')}); "
            f"final files verified after it: {sum(f['state'] == 'verified' for f in chain['final_files'])}"
            f"/{len(chain['final_files'])}; the final stage's alarms: {chain['transfer_failures']}"
        )
    if b["samples"]:
        last = b["samples"][-1]
        h, hd = b["min_hours_to_full"], b["min_hours_to_full_link_down"]
        covers = {True: "covers", False: "does NOT cover", None: "covers"}[b["covers_warn_h"]]
        lines.append(
            f"    buffer: full in {h} h at the highest rate seen"
            + (f" ({hd} h while the link was down)" if hd is not None else "")
            + f": it {covers} the {b['warn_h']:g} h outage it must (alarm below); "
            f"now used {(last['used_bytes'] or 0) / 1e9:.1f} GB"
        )
    for e in chain["errors"]:
        lines.append(f"    ERROR {e.splitlines()[-1] if e else e}")
    return lines
