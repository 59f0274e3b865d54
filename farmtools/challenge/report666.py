"""The 6x6x6 challenge's part of the report: every fragment and every event accounted for, each
stage's latency and throughput, the buffer forecast.

:func:`chain_report` reads the evidence of a finished :class:`~.run666.Challenge666` (the L1
truth, the builder's counts in the bookkeeping, the event files, the final stage's catalog)
and :func:`accounting` (pure) checks the 6x6x6 chain's accounting identities:

* fragments: emitted per L1 stream = read by the builder; read = 2 x built + incomplete + set
  aside;
* events: emitted = built + incomplete (the event files' events); every event of the files
  classified; classified = kept + prescaled out + dropped; kept = in final files verified at the
  destination; and the event files stored and reconstructed whole.

Each shortfall is named (``lost``) and fails the verdict (:func:`judge`);
:func:`~farmtools.challenge.render.chain_lines` prints it.  Imports the bookkeeping and the
final stage's catalog.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from farmtools.challenge.run666 import Challenge666

#: The chain's stages in order, as the report shows them.
STAGES = (
    "L1 emulation",
    "L2 building",
    "ingest",
    "filtering",
    "reconstruction (t0)",
    "purity/gain",
    "formatting",
    "transfer",
    "verification",
)


def accounting(counts: Mapping[str, Any]) -> dict[str, Any]:
    """The identities over ``counts`` (see the module docstring): each with both sides and
    whether it holds, and ``lost``: every shortfall by name (empty: nothing lost)."""
    c = counts
    frag_in = list(c["fragments_read"])
    identities = {
        "fragments emitted = read by the builder (per stream)": (
            list(c["fragments_emitted"]),
            frag_in,
        ),
        "fragments read = 2 x built + incomplete + set aside": (
            sum(frag_in),
            2 * c["built"] + c["incomplete"] + c["set_aside"],
        ),
        "events emitted = built + incomplete": (c["emitted"], c["built"] + c["incomplete"]),
        "built + incomplete = events in the event files": (
            c["built"] + c["incomplete"],
            c["in_event_files"],
        ),
        "events in the event files = stored": (c["in_event_files"], c["stored"]),
        "events stored = reconstructed": (c["stored"], c["reconstructed"]),
    }
    if c.get("classified") is not None:
        identities["events in the event files = classified"] = (
            c["in_event_files"],
            c["classified"],
        )
        identities["classified = kept + prescaled out + dropped"] = (
            c["classified"],
            c["kept"] + c["prescaled_out"] + c["dropped"],
        )
        identities["kept = in verified final files"] = (c["kept"], c["in_verified_finals"])
    out = {k: {"left": a, "right": b, "holds": a == b} for k, (a, b) in identities.items()}
    lost = {k: _shortfall(v["left"], v["right"]) for k, v in out.items() if not v["holds"]}
    return {"identities": out, "lost": lost, "lost_total": sum(lost.values())}


def _shortfall(a: Any, b: Any) -> int:
    if isinstance(a, list):
        return sum(abs(x - y) for x, y in zip(a, b, strict=True))
    return abs(int(a) - int(b))


def _span_rate(n: float, nbytes: float, seconds: float | None) -> dict[str, Any]:
    if not seconds or seconds <= 0:
        return {"events_per_s": None, "MB_per_s": None, "seconds": seconds}
    return {
        "events_per_s": round(n / seconds, 3),
        "MB_per_s": round(nbytes / seconds / 1e6, 3),
        "seconds": round(seconds, 3),
    }


def _lat(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"median_s": None, "max_s": None, "n": 0}
    return {
        "median_s": round(statistics.median(values), 3),
        "max_s": round(max(values), 3),
        "n": len(values),
    }


def _story_stage(
    files: Sequence[Mapping[str, Any]], stage: str, started: datetime
) -> tuple[list[float], list[float]]:
    """(latency from written, time since the start) of ``stage`` for each file that reached it."""
    lat, at = [], []
    for f in files:
        st = f.get("stages", {})
        if stage in st and "written" in st:
            t = datetime.fromisoformat(st[stage])
            lat.append((t - datetime.fromisoformat(st["written"])).total_seconds())
            at.append((t - started).total_seconds())
    return lat, at


def chain_report(ch: Challenge666, report: Mapping[str, Any]) -> dict[str, Any]:
    """The ``chain_6x6x6`` part of the report of ``ch`` (see the module docstring)."""
    from farmtools.final.catalog import FinalCatalog, FinalState

    started = datetime.fromisoformat(report["started"])
    cat = FinalCatalog(ch.bk)
    evb = ch.bk.evb_counts()
    counts: dict[str, Any] = {
        "fragments_emitted": [0, 0],
        "fragments_read": [0, 0],
        "emitted": 0,
        "built": 0,
        "incomplete": 0,
        "set_aside": 0,
        "in_event_files": sum(w.events for w in ch.shared.written),
        "stored": 0,
        "reconstructed": sum(r.get("entries", 0) for r in report["root_outputs"] if r.get("ok")),
        "classified": None,
        "kept": 0,
        "prescaled_out": 0,
        "dropped": 0,
        "in_verified_finals": 0,
    }
    by_class: dict[str, dict[str, int]] = {}
    finals: list[dict[str, Any]] = []
    filtered = True
    for run in ch.run_numbers:
        truth = ch.l1_truth.get(run)
        if truth is not None:
            counts["emitted"] += int(truth["plan"]["events"])
            for k in (0, 1):
                counts["fragments_emitted"][k] += int(truth["emitted"][k])
        e = evb.get(run, {})
        counts["fragments_read"][0] += e.get("fragments_in0", 0)
        counts["fragments_read"][1] += e.get("fragments_in1", 0)
        counts["built"] += e.get("built", 0)
        counts["incomplete"] += e.get("incomplete", 0)
        counts["set_aside"] += sum(
            e.get(k, 0) for k in ("duplicates", "mismatches", "late", "truncated", "corrupt")
        )
        flt = cat.filter_record(run)
        if flt is None:
            filtered = False
            continue
        counts["classified"] = (counts["classified"] or 0) + len(cat.events(run))
        for klass, d in flt.counts.items():
            row = by_class.setdefault(klass, {})
            for decision, n in d.items():
                row[decision] = row.get(decision, 0) + n
                counts[decision] = counts.get(decision, 0) + n
        for f in cat.finals(run):
            finals.append(
                {"name": f.name, "stream": f.stream, "events": f.events, "bytes": f.size,
                 "state": str(f.state), "destination": f.destination}
            )  # fmt: skip
            if f.state == FinalState.VERIFIED:
                counts["in_verified_finals"] += f.events
    if not filtered:
        counts["classified"] = None
    stored_names = {f["name"] for f in report["files"] if "stored" in f.get("stages", {})}
    counts["stored"] = sum(w.events for w in ch.shared.written if w.path.name in stored_names)
    acc = accounting(counts)

    # -- latency and throughput per stage ---------------------------------------------------
    written = {w.path.name: w for w in ch.shared.written}
    event_bytes = 2 * ch.cfg.geometry.fragment_bytes
    total_events = counts["in_event_files"]
    total_bytes = sum(w.size for w in written.values())
    stages: dict[str, dict[str, Any]] = {}
    times = [t for run in ch.run_numbers for t in ch.emitted_at.get(run, [])]
    stages["L1 emulation"] = {
        **_span_rate(len(times), len(times) * event_bytes, (times[-1] - times[0]) if times else None),
        "latency": _lat([]),
    }  # fmt: skip
    build_lat, build_at = [], []
    for f in report["files"]:
        w = written.get(f["name"])
        wt = f.get("stages", {}).get("written")
        emitted = ch.emitted_at.get(w.run, []) if w is not None else []
        if w is None or wt is None or w.last_trigger >= len(emitted):
            continue
        at = (datetime.fromisoformat(wt) - started).total_seconds()
        build_at.append(at)
        build_lat.append(at - emitted[w.last_trigger])
    stages["L2 building"] = {
        **_span_rate(total_events, total_bytes, (max(build_at) - times[0]) if build_at and times else None),
        "latency": _lat(build_lat),
        "latency_from": "the file's last trigger emitted",
    }  # fmt: skip
    for name, story in (
        ("ingest", "stored"),
        ("reconstruction (t0)", "reconstructed"),
        ("purity/gain", "analysed"),
    ):
        lat, reached = _story_stage(report["files"], story, started)
        first = min(build_at) if build_at else None
        span = (max(reached) - first) if reached and first is not None else None
        stages[name] = {
            **_span_rate(total_events if reached else 0, total_bytes if reached else 0, span),
            "latency": _lat(lat),
            "latency_from": "the event file written",
        }
    fc = ch.final.calls
    finals_bytes = sum(f["bytes"] for f in finals)
    for name, keys, n, nbytes in (
        ("filtering", ("classify", "filter"), counts["classified"] or 0, total_bytes),
        ("formatting", ("format",), counts["kept"], finals_bytes),
        ("transfer", ("transfer",), counts["kept"], finals_bytes),
        ("verification", ("verify",), counts["kept"], finals_bytes),
    ):
        busy = sum(sum(fc.get(k, [])) for k in keys) if any(k in fc for k in keys) else None
        stages[name] = {
            **_span_rate(n, nbytes, busy),
            "busy": True,
            "calls": len(fc.get(keys[0], [])),
        }
    final_lat = [
        ch.final.verified_at[r] - ch.final.stored_at[r]
        for r in ch.run_numbers
        if r in ch.final.verified_at and r in ch.final.stored_at
    ]
    for name in ("filtering", "formatting", "transfer", "verification"):
        stages[name]["latency"] = _lat(final_lat if name == "verification" else [])
    stages["verification"]["latency_from"] = "the run's last event file stored"
    if not filtered:
        for name in ("filtering", "formatting", "transfer", "verification"):
            stages[name]["not_run"] = True

    inputs = model_inputs(ch, report, build_at, times, finals)
    buffer = ch.final.buffer
    down = [b for b in buffer if b["link_down"]]
    to_full = [b["seconds_to_full"] for b in down if b["seconds_to_full"] is not None]
    to_full_any = [b["seconds_to_full"] for b in buffer if b["seconds_to_full"] is not None]
    worst_h = round(min(to_full_any) / 3600, 2) if to_full_any else None
    outage = ch.outage_fault.to_json() if ch.outage_fault is not None else None
    final_alarms = [
        a.message for a in ch.bk.alarms(include_acknowledged=True) if a.source == "final"
    ]
    return {
        "detector": ch.s.detector,
        "preset": ch.s.preset,
        "counts": counts,
        "by_class": by_class,
        "accounting": acc,
        "stages": {k: stages[k] for k in STAGES if k in stages},
        "final_files": finals,
        "transfer_failures": len(final_alarms),
        "final_alarms": final_alarms[:10],
        "outage": outage,
        "buffer": {
            "samples": buffer[-200:],
            "min_hours_to_full_link_down": round(min(to_full) / 3600, 2) if to_full else None,
            "min_hours_to_full": worst_h,
            # the design's question: does the buffer cover the outage it must (warn_h) at the
            # highest rate seen? (None: nothing came in, it fills never)
            "covers_warn_h": None if worst_h is None else worst_h >= ch.cfg.monitor.buffer_warn_h,
            "peak_used_bytes": max((b["used_bytes"] or 0 for b in buffer), default=None),
            "warn_h": ch.cfg.monitor.buffer_warn_h,
        },
        "errors": ch.final.errors[-10:],
        "model_inputs": inputs,
    }


def model_inputs(
    ch: Challenge666,
    report: Mapping[str, Any],
    written_at: Sequence[float],
    triggers: Sequence[float],
    finals: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """What the chain's capacity model (:mod:`.sim666`) is fed and calibrated on: each event
    file's events, bytes, last trigger and written time (seconds since the start), the final
    stage's wall and thread-CPU seconds per step, and the event/kept/final bytes."""
    from farmtools.challenge.run666 import FINAL_POLL_S

    started = datetime.fromisoformat(report["started"])
    stories = {f["name"]: f.get("stages", {}) for f in report["files"]}
    files = []

    def trigger_s(run: int, k: int) -> float | None:
        emitted = ch.emitted_at.get(run, [])
        return round(emitted[k], 4) if 0 <= k < len(emitted) else None

    for w in ch.shared.written:
        wt = stories.get(w.path.name, {}).get("written")
        last_of_run = not any(o.run == w.run and o.seq > w.seq for o in ch.shared.written)
        files.append(
            {
                "name": w.path.name,
                "run": w.run,
                "events": w.events,
                "bytes": w.size,
                "first_trigger_s": trigger_s(w.run, w.first_trigger),
                "last_trigger_s": trigger_s(w.run, w.last_trigger),
                # the event after the file's last: the builder writes a full file when it comes
                "next_trigger_s": None if last_of_run else trigger_s(w.run, w.last_trigger + 1),
                "written_s": (
                    round((datetime.fromisoformat(wt) - started).total_seconds(), 4) if wt else None
                ),
            }
        )
    return {
        "samples": ch.cfg.geometry.samples,
        "event_bytes": 2 * ch.cfg.geometry.fragment_bytes,
        "flush_s": ch.cfg.evb.flush_s,
        "first_trigger_s": round(triggers[0], 4) if triggers else None,
        "last_written_s": round(max(written_at), 4) if written_at else None,
        "files": files,
        "final_files": len(finals),
        "final_bytes": sum(f["bytes"] for f in finals),
        "final_wall_s": {k: round(sum(v), 4) for k, v in ch.final.calls.items()},
        "final_cpu_s": {k: round(sum(v), 4) for k, v in ch.final.cpu.items()},
        "final_poll_s": FINAL_POLL_S,
        "builder_cpu_s": (report.get("daemons") or {}).get("evb", {}).get("cpu_s"),
    }


def judge(report: dict[str, Any]) -> dict[str, Any]:
    """The verdict fails when an identity does not hold (something lost) or the final stage did
    not run or failed.  An outage that could not be injected (not root) is reported with its
    reason, as the 3x1x1 challenge's faults are, and does not fail it."""
    chain = report["chain_6x6x6"]
    problems = []
    if chain["accounting"]["lost_total"]:
        problems.append(f"{chain['accounting']['lost_total']} fragments/events unaccounted for")
    if chain["counts"]["classified"] is None:
        problems.append("filtering and formatting did not run")
    if chain["errors"]:
        problems.append("final stage errors")
    if problems:
        v = report["verdict"]
        report["verdict"] = (v if v != "PASS" else "FAIL") + f" ({', '.join(problems)})"
    return report
