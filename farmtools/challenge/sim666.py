"""The 6x6x6 chain's capacity model, L2 building to verification, calibrated on a 6x6x6 challenge.

:mod:`.simulate` models one raw file from ``written`` to ``analysed`` (the 3x1x1 chain).  The
6x6x6 chain has a head and a tail more: the L2 builder turns the triggers into event files, and
once a run's files are stored the final stage filters (classifies) its events, formats the kept
ones into Huffman-compressed final files, transfers them to central storage and verifies them.
:class:`ChainCosts` holds each stage's cost per event or per byte; :func:`calibrate_chain` reads
them from the ``chain_6x6x6`` part of a challenge report (its ``model_inputs`` block and the
``measured`` medians); :func:`simulate_chain` replays the same input (each file's triggers,
events and bytes, the workers) through a SimPy model of the chain and returns each stage's
latency and throughput as the report measures them; :func:`compare_chain` sets them side by side
(the model is fit for sizing when every stage is within 20 %), or, given the costs calibrated
on another run, predicts this one.

:func:`full_size_costs` turns a calibrated chain into costs of full-size events (its CPU per
byte, floored by the full-size benchmarks' figures); :func:`size_chain` is the sizing
arithmetic at full size (10,000 samples, 115 MB events): the
cores each stage needs at a trigger rate (its CPU seconds per event times the rate), the local
bandwidth the chain's reads and writes take, how long the local buffer holds the data when the
link to central storage is down, and the link rate that catches up after an outage.  Pure: no
I/O, no clock.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import simpy

from farmtools.challenge.report666 import STAGES as REPORT_STAGES

#: The stages the chain report shows and the model predicts, in order (the emulator is input).
CHAIN_STAGES = tuple(s for s in REPORT_STAGES if s != "L1 emulation")
TOLERANCE = 0.20


@dataclass(frozen=True)
class ChainCosts:
    """Each stage's cost, as measured on one 6x6x6 challenge (wall seconds, this machine).

    The final stage's costs are per byte: of event data for filtering, of the kept events for
    formatting (``final_ratio`` = final bytes / kept bytes), of final files for transfer and
    verification.  ``*_cpu_s_per_B`` are the thread-CPU seconds of the same steps, the figure
    the sizing scales (the wall seconds of a loaded machine are not a core's work).
    """

    samples: int
    event_bytes: float
    #: the builder writes a file once it holds ``roll_events`` events (when the next event
    #: arrives that would not fit) or once its first event is ``flush_s`` old, ``build_delay_s``
    #: later (its pass every half second, the write and sync)
    roll_events: int
    flush_s: float
    build_delay_s: float
    detect_delay_s: float
    ingest_Bps: float
    submit_delay_s: float
    start_delay_s: float
    reco_s_per_event: float
    job_startup_s: float
    analysis_s: float
    group_size: int
    filter_s_per_B: float
    format_s_per_B: float
    final_ratio: float
    transfer_Bps: float
    verify_Bps: float
    keep_fraction: float
    final_poll_s: float = 1.0
    filter_cpu_s_per_B: float | None = None
    format_cpu_s_per_B: float | None = None


@dataclass(frozen=True)
class FileIn:
    """One event file as the triggers made it: its first and last trigger and the next file's
    first (None: the run's last file), seconds since the start; its events and bytes."""

    first_trigger_s: float
    last_trigger_s: float
    next_trigger_s: float | None
    events: int
    bytes: int


@dataclass(frozen=True)
class ChainInput:
    """What the chain was fed: the event files, the workers."""

    files: tuple[FileIn, ...]
    workers: int
    first_trigger_s: float = 0.0


def build_due_s(f: FileIn, roll_events: int, flush_s: float) -> float:
    """When the builder's rule makes it write ``f`` (before its own delay): the next event
    arriving once it is full, or its first event ``flush_s`` old, whichever comes first."""
    due = f.first_trigger_s + flush_s
    if f.events >= roll_events and f.next_trigger_s is not None:
        due = min(due, f.next_trigger_s)
    return max(due, f.last_trigger_s)


@dataclass
class ChainResult:
    """Per-file stage times (s since the start) and the final stage's busy seconds."""

    times: list[dict[str, float]] = field(default_factory=list)
    busy: dict[str, float] = field(default_factory=dict)
    #: when the final stage started on the run (its look after the last file stored)
    stored_all_s: float = math.nan
    verified_s: float = math.nan
    events: int = 0
    kept: float = 0.0


def simulate_chain(costs: ChainCosts, feed: ChainInput) -> ChainResult:
    """One run through the chain: build, ingest, reconstruction on ``workers`` cores, analyses
    in groups of ``group_size`` (the last partial group once every file is reconstructed), and
    the final stage once every file is stored (it looks every ``final_poll_s``: half of it on
    average)."""
    env = simpy.Environment()
    copier = simpy.Resource(env, capacity=1)
    cores = simpy.Resource(env, capacity=feed.workers)
    analyser = simpy.Resource(env, capacity=1)
    n = len(feed.files)
    res = ChainResult(times=[{} for _ in range(n)], events=sum(f.events for f in feed.files))
    ended: list[int] = []
    stored: list[int] = []
    c = costs

    def analysis(files: list[int]) -> simpy.events.ProcessGenerator:
        with analyser.request() as slot:
            yield slot
            yield env.timeout(c.analysis_s)
        for i in files:
            res.times[i]["analysed"] = env.now

    def final_stage() -> simpy.events.ProcessGenerator:
        yield env.timeout(c.final_poll_s / 2)
        res.stored_all_s = env.now  # the report counts from the stage's look, as here
        total = sum(f.bytes for f in feed.files)
        kept_bytes = c.keep_fraction * total
        final_bytes = kept_bytes * c.final_ratio
        res.kept = c.keep_fraction * res.events
        res.busy = {
            "filtering": total * c.filter_s_per_B,
            "formatting": kept_bytes * c.format_s_per_B,
            "transfer": final_bytes / c.transfer_Bps,
            "verification": final_bytes / c.verify_Bps,
        }
        yield env.timeout(sum(res.busy.values()))
        res.verified_s = env.now

    def one_file(i: int) -> simpy.events.ProcessGenerator:
        f = feed.files[i]
        events, nbytes = f.events, f.bytes
        t = res.times[i]
        t["trigger"] = f.last_trigger_s
        yield env.timeout(build_due_s(f, c.roll_events, c.flush_s) + c.build_delay_s)
        t["written"] = env.now
        yield env.timeout(c.detect_delay_s)
        with copier.request() as req:
            yield req
            yield env.timeout(nbytes / c.ingest_Bps)
        t["stored"] = env.now
        stored.append(i)
        if len(stored) == n:
            env.process(final_stage())
        yield env.timeout(c.submit_delay_s)
        t["submitted"] = env.now
        with cores.request() as slot:
            yield slot
            yield env.timeout(c.start_delay_s)
            t["started"] = env.now
            yield env.timeout(c.job_startup_s + events * c.reco_s_per_event)
        t["reconstructed"] = env.now
        ended.append(i)
        if len(ended) % c.group_size == 0:
            env.process(analysis(ended[-c.group_size :]))
        elif len(ended) == n:
            env.process(analysis(ended[-(n % c.group_size) :]))

    for i in range(n):
        env.process(one_file(i))
    env.run()
    return res


def _median_from(times: Sequence[Mapping[str, float]], stage: str, since: str) -> float | None:
    values = [t[stage] - t[since] for t in times if stage in t and since in t]
    return statistics.median(values) if values else None


def chain_figures(
    times: Sequence[Mapping[str, float]],
    events: float,
    kept: float,
    busy: Mapping[str, float],
    first_trigger_s: float,
    final_latency_s: float | None,
) -> dict[str, dict[str, float | None]]:
    """Latency median and events/s per stage, defined as the chain report defines them:
    latencies from the file written (L2 building: from its last trigger), throughput over the
    stage's span from the first trigger (building) or the first file written; the final stage's
    over its busy time, its latency from the run's last file stored to every final file
    verified."""
    out: dict[str, dict[str, float | None]] = {}
    written = [t["written"] for t in times if "written" in t]
    first_written = min(written) if written else None
    for stage, story in (
        ("L2 building", "written"),
        ("ingest", "stored"),
        ("reconstruction (t0)", "reconstructed"),
        ("purity/gain", "analysed"),
    ):
        reached = [t[story] for t in times if story in t]
        start = first_trigger_s if stage == "L2 building" else first_written
        span = max(reached) - start if reached and start is not None else None
        since = "trigger" if stage == "L2 building" else "written"  # the file's last trigger
        out[stage] = {
            "latency_median_s": _median_from(times, story, since),
            "events_per_s": events / span if span else None,
        }
    for stage in ("filtering", "formatting", "transfer", "verification"):
        n = events if stage == "filtering" else kept
        b = busy.get(stage)
        out[stage] = {
            "latency_median_s": final_latency_s if stage == "verification" else None,
            "events_per_s": n / b if b else None,
        }
    return out


def measured_figures(report: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """The chain report's own figures per stage, keyed as :func:`chain_figures`'."""
    stages = report["chain_6x6x6"]["stages"]
    return {
        name: {
            "latency_median_s": (stages[name].get("latency") or {}).get("median_s"),
            "events_per_s": stages[name].get("events_per_s"),
        }
        for name in CHAIN_STAGES
        if name in stages
    }


def _sum(values: Mapping[str, float], *keys: str) -> float:
    return sum(float(values.get(k, 0.0)) for k in keys)


#: what the model needs of each event file in ``model_inputs``
_FILE_KEYS = ("events", "bytes", "first_trigger_s", "last_trigger_s", "next_trigger_s")


def calibrate_chain(report: Mapping[str, Any]) -> tuple[ChainCosts, ChainInput]:
    """The costs and the input of the 6x6x6 challenge in ``report`` (its ``chain_6x6x6``'s
    ``model_inputs`` and the 3x1x1 part's ``measured`` medians).

    * L2 building: the roll (the most events a file got), the flush age, and the median of
      (file written - when the builder's rule made it due) over the files;
    * ingest: the detection delay, and the verified copy's bandwidth: median file bytes over
      the median written -> stored less that delay (the median of the sum the report shows,
      not the sum of two medians, which drift apart when a loaded machine slows both at once);
    * reconstruction: the submission delay, the least submitted -> started (a core free), the
      jobs' own seconds per event (``farmtools reco``'s stdout) and, as start-up, the median of
      each job's run time minus its events' time (event files hold different numbers of events);
    * purity/gain: the median analysis after its group's last file reconstructed;
    * the final stage: its wall seconds per byte of what each step reads (thread CPU apart),
      the final files' bytes over the kept events' bytes, the kept fraction of the events.
    """
    chain = report["chain_6x6x6"]
    mi = chain["model_inputs"]
    lacks = [k for k in ("flush_s", "files") if mi.get(k) in (None, [])]
    lacks += sorted(
        {f"files[].{k}" for f in mi.get("files") or [] for k in _FILE_KEYS if k not in f}
    )
    if lacks:
        raise ValueError(
            f"chain_6x6x6.model_inputs lacks {', '.join(lacks)} (a report written before the "
            "chain model, or a run that built no file): run the 6x6x6 challenge again"
        )
    m = report.get("measured", {})
    files = [f for f in mi["files"] if f.get("last_trigger_s") is not None]
    feed = ChainInput(
        files=tuple(
            FileIn(
                f["first_trigger_s"],
                f["last_trigger_s"],
                f.get("next_trigger_s"),
                int(f["events"]),
                int(f["bytes"]),
            )
            for f in files
        ),
        workers=int(m.get("workers") or report["settings"]["workers"]),
        first_trigger_s=float(mi.get("first_trigger_s") or 0.0),
    )
    stories = {f["name"]: f.get("stages", {}) for f in report["files"]}
    by_name = {f["name"]: f for f in files}
    roll = max(f.events for f in feed.files)
    flush = float(mi["flush_s"])
    build = [
        f["written_s"] - build_due_s(fi, roll, flush)
        for f, fi in zip(files, feed.files, strict=True)
        if f.get("written_s") is not None
    ]
    start_waits, runs = [], []

    def at(st: Mapping[str, str], k: str) -> datetime | None:
        return datetime.fromisoformat(st[k]) if k in st else None

    per_event = float(m.get("reco_s_per_event_median") or 0.0)
    detect = float(m.get("detect_delay_median_s") or 0.0)
    ingest_s = []
    for name, st in stories.items():
        wr, sd = at(st, "written"), at(st, "stored")
        if wr and sd and name in by_name:
            ingest_s.append((sd - wr).total_seconds())
        sub, sta, end = at(st, "submitted"), at(st, "started"), at(st, "ended")
        if sub and sta:
            start_waits.append((sta - sub).total_seconds())
        if sta and end and name in by_name:
            runs.append((end - sta).total_seconds() - per_event * by_name[name]["events"])
    copy_s = statistics.median(ingest_s) - detect if ingest_s else float(m["copy_median_s"])
    total_events = sum(f["events"] for f in files) or 1
    total_bytes = sum(f["bytes"] for f in files) or 1
    counts = chain["counts"]
    keep = counts["kept"] / max(counts["classified"] or total_events, 1)
    kept_bytes = max(keep * total_bytes, 1.0)
    wall, cpu = mi["final_wall_s"], mi.get("final_cpu_s") or {}
    final_bytes = max(float(mi["final_bytes"]), 1.0)
    costs = ChainCosts(
        samples=int(mi["samples"]),
        event_bytes=float(mi["event_bytes"]),
        roll_events=roll,
        flush_s=flush,
        build_delay_s=statistics.median(build) if build else 0.0,
        detect_delay_s=detect,
        ingest_Bps=statistics.median(f["bytes"] for f in files) / max(copy_s, 1e-6),
        submit_delay_s=float(m.get("submit_delay_median_s") or 0.0),
        start_delay_s=min(start_waits) if start_waits else 0.0,
        reco_s_per_event=per_event,
        job_startup_s=max(statistics.median(runs), 0.0) if runs else 0.0,
        analysis_s=float(m.get("analysis_median_s") or 0.0),
        group_size=int(m.get("group_size") or 4),
        filter_s_per_B=_sum(wall, "classify", "filter") / total_bytes,
        format_s_per_B=_sum(wall, "format") / kept_bytes,
        final_ratio=final_bytes / kept_bytes,
        transfer_Bps=final_bytes / max(_sum(wall, "transfer"), 1e-6),
        verify_Bps=final_bytes / max(_sum(wall, "verify"), 1e-6),
        keep_fraction=keep,
        final_poll_s=float(mi.get("final_poll_s") or 1.0),
        filter_cpu_s_per_B=_sum(cpu, "classify", "filter") / total_bytes if cpu else None,
        format_cpu_s_per_B=_sum(cpu, "format") / kept_bytes if cpu else None,
    )
    return costs, feed


def compare_chain(
    report: Mapping[str, Any], tolerance: float = TOLERANCE, costs: ChainCosts | None = None
) -> dict[str, Any]:
    """Calibrate on ``report``, replay its input, set every stage's measured and simulated
    latency and throughput side by side (ratio simulated / measured).

    ``costs`` calibrated on another run make it a prediction: that run's costs per event and
    per byte, this run's input (triggers, files, workers) and its own settings (the filter's
    kept fraction, the builder's roll and flush, the analysis groups)."""
    own, feed = calibrate_chain(report)
    if costs is None:
        costs = own
    else:
        costs = replace(
            costs,
            keep_fraction=own.keep_fraction,
            roll_events=own.roll_events,
            flush_s=own.flush_s,
            group_size=own.group_size,
        )
    res = simulate_chain(costs, feed)
    final_latency = res.verified_s - res.stored_all_s
    sim = chain_figures(
        res.times, res.events, res.kept, res.busy, feed.first_trigger_s, final_latency
    )
    meas = measured_figures(report)
    rows = []
    for stage in CHAIN_STAGES:
        for quantity in ("latency_median_s", "events_per_s"):
            mv = (meas.get(stage) or {}).get(quantity)
            sv = sim.get(stage, {}).get(quantity)
            if mv is None or sv is None or mv <= 0:
                continue
            ratio = sv / mv
            rows.append(
                {
                    "stage": stage,
                    "quantity": "latency median (s)"
                    if quantity == "latency_median_s"
                    else "throughput (events/s)",
                    "measured": mv,
                    "simulated": sv,
                    "ratio": ratio,
                    "within": abs(ratio - 1.0) <= tolerance,
                }
            )
    return {
        "costs": costs,
        "input": feed,
        "rows": rows,
        "tolerance": tolerance,
        "within_20_percent": bool(rows) and all(r["within"] for r in rows),
    }


def markdown_comparison(check: Mapping[str, Any]) -> str:
    """The comparison as a markdown table."""
    lines = [
        "| stage | figure | measured | simulated | ratio | within 20 % |",
        "|---|---|---:|---:|---:|:---:|",
    ]
    for r in check["rows"]:
        lines.append(
            f"| {r['stage']} | {r['quantity']} | {r['measured']:.3f} | {r['simulated']:.3f} | "
            f"{r['ratio']:.3f} | {'yes' if r['within'] else 'NO'} |"
        )
    return "\n".join(lines)


# --- sizing at full size ------------------------------------------------------------------------
@dataclass(frozen=True)
class FullSizeCosts:
    """CPU seconds of each stage for full-size 6x6x6 events (10,000 samples, 115 MB of 12-bit
    samples), per byte where the stage's work follows the bytes, per event where it does not.
    Where each figure comes from is the caller's (``bench_challenge.py chain666`` prints it)."""

    build_s_per_B: float  # L2 building, per byte of event written
    copy_s_per_B: float  # a verified copy: ingest, formatting a compressed event, transfer
    filter_s_per_B: float  # classification's scan, per byte of 12-bit samples
    decode_s_per_event: float  # Huffman decoding of one compressed event (filter and reco)
    reco_s_per_event: float  # an uncompressed event, flash t0 and all
    job_s: float  # what a reconstruction job pays once, before its first event
    analysis_s_per_event: float  # purity/gain
    encode_s_per_B: float  # formatting an uncompressed event: Huffman coding, per raw byte


#: Full-size figures measured by the other benchmarks (GB per CPU s; the README's benchmark
#: table): the floor under the chain's own per-byte costs, which a small-sample challenge
#: measures with its per-event overheads but without the cache misses of 115 MB events.
BUILD_GB_PER_CPU_S = 1.45  # bench_evb.py: L2 building 1.42-1.49
CLASSIFY_GB_PER_CPU_S = 2.3  # bench_final.py: classification 2.28-2.59 (uncompressed events)
FORMAT_GB_PER_CPU_S = 0.16  # bench_final.py: formatting (Huffman coding) 0.148-0.181
COPY_GB_PER_CPU_S = 1.38  # bench_challenge.py chain666: LocalStorage.put of 256 MB
#: the 6x6x6 event measured on full events (bench_reco666.py), its decoding (the 3x1x1's
#: compressed - uncompressed per event in bench_reco.py, (5.76 - 3.37 s) / 335, x36 channels x
#: samples), and what
#: a job pays through the node worker (bench_challenge.py costs)
RECO_S_PER_EVENT_6X6X6 = 1.18
DECODE_S_PER_EVENT_6X6X6 = 0.26
JOB_S = 0.26


def full_size_costs(
    c: ChainCosts,
    events_per_file: float,
    *,
    reco_s_per_event: float = RECO_S_PER_EVENT_6X6X6,
    decode_s_per_event: float = DECODE_S_PER_EVENT_6X6X6,
    job_s: float = JOB_S,
    copy_s_per_B: float = 1 / (COPY_GB_PER_CPU_S * 1e9),
) -> FullSizeCosts:
    """Full-size costs from a calibrated chain: its CPU per byte for filtering and formatting,
    never below the full-size benchmarks' (a floor, so that a small-sample challenge does not
    undersize), its analysis seconds per event; building from bench_evb; the reconstruction of
    a full event as measured on full events (not extrapolated from a few hundred samples)."""
    return FullSizeCosts(
        build_s_per_B=1 / (BUILD_GB_PER_CPU_S * 1e9),
        copy_s_per_B=copy_s_per_B,
        filter_s_per_B=max(c.filter_cpu_s_per_B or 0.0, 1 / (CLASSIFY_GB_PER_CPU_S * 1e9)),
        decode_s_per_event=decode_s_per_event,
        reco_s_per_event=reco_s_per_event,
        job_s=job_s,
        analysis_s_per_event=c.analysis_s / (c.group_size * max(events_per_file, 1e-9)),
        encode_s_per_B=max(c.format_cpu_s_per_B or 0.0, 1 / (FORMAT_GB_PER_CPU_S * 1e9)),
    )


@dataclass(frozen=True)
class ChainCase:
    """A data-taking case: trigger rate, spills (0: continuous), the DAQ's compression."""

    name: str
    trigger_hz: float
    compressed: bool = True
    spill_on_s: float = 0.0
    spill_period_s: float = 0.0
    keep: float = 1.0

    @property
    def mean_hz(self) -> float:
        if self.spill_on_s <= 0 or self.spill_period_s <= self.spill_on_s:
            return self.trigger_hz
        return self.trigger_hz * self.spill_on_s / self.spill_period_s


#: The README's cases: SPS spills and the continuous 100 Hz upper bound, compressed, every
#: event kept (the filter only lowers the load after it); the spills uncompressed for comparison.
CHAIN_CASES: tuple[ChainCase, ...] = (
    ChainCase("beam, SPS spills (100 Hz in 4.8 s every 20 s)", 100.0, True, 4.8, 20.0),
    ChainCase("100 Hz continuous (upper bound)", 100.0, True),
    ChainCase("beam, SPS spills, uncompressed", 100.0, False, 4.8, 20.0),
)
#: The stages that take cores, in the chain's order (verification is the destination's read).
CORE_STAGES = CHAIN_STAGES[:-1]


def size_chain(
    costs: FullSizeCosts,
    cases: Sequence[ChainCase] = CHAIN_CASES,
    *,
    event_bytes: float = 7680 * 10000 * 3 / 2,
    compression: float = 2.0,
    file_bytes: float = float(1 << 30),
    cores: int = 384,
    bandwidth_Bps: float = 20e9,
    buffer_bytes: float = 1e15,
    outage_h: float = 72.0,
    catch_up_h: Sequence[float] = (24.0, 72.0),
) -> list[dict[str, Any]]:
    """Per case: the cores each stage needs at the mean trigger rate (CPU s per event x events
    per s; spills are absorbed by the buffer, so the mean is what must keep up), the local
    storage's read+write rate, how long the buffer holds everything when the link to central
    storage is down (raw files stay until their kept events are in verified final files, and
    the final files wait too), and the link rate that sends the backlog of an ``outage_h``
    outage within each of ``catch_up_h`` while the data taking goes on.

    Bytes per event: ``event_bytes / compression`` for compressed raw events, the same for the
    final files (the DAQ's Huffman codec, kept events only: ``keep``).  Local reads and writes
    per event: L2 building writes it, ingest reads and writes it, filtering and reconstruction
    read it, formatting reads the kept event and writes its final copy, transfer reads that.
    """
    c = costs
    final_b = event_bytes / compression
    rows = []
    for case in cases:
        raw_b = final_b if case.compressed else event_bytes
        hz = case.mean_hz
        decode = c.decode_s_per_event if case.compressed else 0.0
        per_file = max(1, int(file_bytes // raw_b))
        cpu = {
            "L2 building": c.build_s_per_B * raw_b,
            "ingest": c.copy_s_per_B * raw_b,
            "filtering": c.filter_s_per_B * event_bytes + decode,
            "reconstruction (t0)": c.reco_s_per_event + decode + c.job_s / per_file,
            "purity/gain": c.analysis_s_per_event,
            "formatting": case.keep
            * (c.copy_s_per_B * raw_b if case.compressed else c.encode_s_per_B * event_bytes),
            "transfer": case.keep * c.copy_s_per_B * final_b,
        }
        stage_cores = {k: hz * v for k, v in cpu.items()}
        local_b = raw_b * (1 + 2 + 1 + 1) + case.keep * (raw_b + 2 * final_b)
        fill_Bps = hz * (raw_b + case.keep * final_b)
        link_Bps = hz * case.keep * final_b
        hours = buffer_bytes / fill_Bps / 3600 if fill_Bps > 0 else math.inf
        total = sum(stage_cores.values())
        rows.append(
            {
                "case": case.name,
                "trigger_hz": case.trigger_hz,
                "mean_hz": hz,
                "compressed": case.compressed,
                "raw_GBps": hz * raw_b / 1e9,
                "cpu_s_per_event": cpu,
                "cores": {k: math.ceil(v) for k, v in stage_cores.items()},
                "cores_total": math.ceil(total),
                "cores_fit": total <= cores,
                "local_GBps": hz * local_b / 1e9,
                "local_fit": hz * local_b <= bandwidth_Bps,
                "max_hz_local": bandwidth_Bps / local_b,
                "buffer_fill_GBps": fill_Bps / 1e9,
                "buffer_hours": hours,
                "covers_outage": hours >= outage_h,
                "link_GBps": link_Bps / 1e9,
                "catch_up_GBps": {
                    h: link_Bps * (1 + min(outage_h, hours) / h) / 1e9 for h in catch_up_h
                },
            }
        )
    return rows


def markdown_chain_sizing(
    rows: Sequence[Mapping[str, Any]],
    cores: int = 384,
    bandwidth_gb_s: float = 20.0,
    buffer_pb: float = 1.0,
    outage_h: float = 72.0,
) -> str:
    """The README's two 6x6x6 tables: cores per stage, then bandwidth, buffer and link."""
    short = {
        "L2 building": "L2 build",
        "ingest": "ingest",
        "filtering": "filter",
        "reconstruction (t0)": "reco (t0)",
        "purity/gain": "purity/gain",
        "formatting": "format",
        "transfer": "transfer",
    }
    head = " | ".join(short[s] for s in CORE_STAGES)
    lines = [
        f"| case | mean trigger (Hz) | {head} | cores needed (of {cores}) |",
        "|---|---:|" + "---:|" * len(CORE_STAGES) + "---:|",
    ]
    for r in rows:
        cells = " | ".join(
            f"{r['cores'][s]} ({r['cpu_s_per_event'][s]:.3g} s)" for s in CORE_STAGES
        )
        lines.append(
            f"| {r['case']} | {r['mean_hz']:g} | {cells} | {r['cores_total']} "
            f"{'fits' if r['cores_fit'] else 'DOES NOT fit'} |"
        )
    catch = list(rows[0]["catch_up_GBps"]) if rows else []
    lines += [
        "",
        f"| case | raw data (GB/s) | local reads + writes (GB/s, of {bandwidth_gb_s:g}) | "
        f"highest mean rate the {bandwidth_gb_s:g} GB/s carries (Hz) | buffer fills at (GB/s, "
        f"link down) | {buffer_pb:g} PB holds | covers a {outage_h / 24:g}-day outage | "
        "link to central storage, nominal (GB/s) | "
        + " | ".join(f"to catch up within {h:g} h (GB/s)" for h in catch)
        + " |",
        "|---|---:|---:|---:|---:|---:|:---:|---:|" + "---:|" * len(catch),
    ]
    for r in rows:
        h = r["buffer_hours"]
        lines.append(
            f"| {r['case']} | {r['raw_GBps']:.2f} | {r['local_GBps']:.1f}"
            f"{'' if r['local_fit'] else ' (**over**)'} | {r['max_hz_local']:.0f} | "
            f"{r['buffer_fill_GBps']:.2f} | {h:.0f} h = {h / 24:.1f} days | "
            f"{'yes' if r['covers_outage'] else '**no**'} | {r['link_GBps']:.2f} | "
            + " | ".join(f"{v:.2f}" for v in r["catch_up_GBps"].values())
            + " |"
        )
    return "\n".join(lines)
