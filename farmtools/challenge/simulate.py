"""A discrete-event model of the farm, to predict queues and latencies before buying machines.

The model follows one raw file through the same stages as the real chain (the bookkeeping
story's events): the DAQ writes it (``written`` when closed), the watcher sees it after a
detection delay, the transfer stage copies and verifies it at a given bandwidth (a limited number
of parallel transfers), the processing manager submits a job after a submission delay, the job
waits for a free core, runs for ``events x seconds per event`` plus a start-up cost, and once
``group_size`` files of a run are reconstructed an analysis runs in the analysis service (its own
slots, not a batch core: the analyses are a farm service here, as the seed's were).

It is pure: :func:`simulate` takes a :class:`FarmModel` and returns a :class:`SimulationResult`;
no I/O, no clock.  :func:`calibrate` derives a model from a measured data-challenge report so
that the prediction can be compared with what happened (the model is trusted for sizing only
once it reproduces a real run here).  SimPy does the event scheduling.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import simpy

#: Stages a file passes through, in order; latencies are measured from ``written``.
STAGES: tuple[str, ...] = (
    "written",
    "detected",
    "stored",
    "submitted",
    "started",
    "ended",
    "analysed",
)


@dataclass(frozen=True)
class FarmModel:
    """Parameters of the farm and its input; every time is in seconds, every size in bytes."""

    n_files: int = 50
    file_interval_s: float = 10.0
    events_per_file: int = 335
    event_bytes: float = 3_200_675.0
    compression: float = 1.0
    #: Seconds from a file being closed to the watcher reacting (inotify: milliseconds).
    detect_delay_s: float = 0.005
    #: Verified-copy bandwidth of one transfer (read, checksum, write, verify).
    transfer_bandwidth_Bps: float = 400e6
    parallel_transfers: int = 1
    #: Seconds from ``stored`` to the job being accepted by the batch system.
    submit_delay_s: float = 0.2
    #: Seconds from a core being free to the job being seen running (batch start-up, polling).
    start_delay_s: float = 0.0
    workers: int = 2
    reco_s_per_event: float = 0.06
    job_startup_s: float = 1.0
    group_size: int = 4
    analysis_s: float = 5.0
    #: Analyses run one at a time by the analysis service, not on the batch cores (as here).
    analysis_slots: int = 1
    files_per_run: int = 0  # 0: every file belongs to one run
    #: Beam spills: files come every ``file_interval_s`` only during ``burst_on_s`` out of every
    #: ``burst_period_s`` (0: continuous data taking).
    burst_on_s: float = 0.0
    burst_period_s: float = 0.0

    def arrival_s(self, i: int) -> float:
        """When file ``i`` starts being written."""
        if self.burst_on_s <= 0 or self.burst_period_s <= self.burst_on_s:
            return i * self.file_interval_s
        per_burst = max(1, int(self.burst_on_s / self.file_interval_s))
        return (i // per_burst) * self.burst_period_s + (i % per_burst) * self.file_interval_s

    @property
    def mean_interval_s(self) -> float:
        """Average seconds between files (spills included)."""
        if self.burst_on_s <= 0 or self.burst_period_s <= self.burst_on_s:
            return self.file_interval_s
        per_burst = max(1, int(self.burst_on_s / self.file_interval_s))
        return self.burst_period_s / per_burst

    @property
    def file_bytes(self) -> float:
        return self.events_per_file * self.event_bytes / self.compression

    @property
    def job_s(self) -> float:
        return self.job_startup_s + self.events_per_file * self.reco_s_per_event

    @property
    def data_rate_Bps(self) -> float:
        return self.file_bytes / self.mean_interval_s

    @property
    def utilisation(self) -> float:
        """Fraction of the cores the reconstruction needs at this input rate (>= 1: it falls behind)."""
        return self.job_s / (self.mean_interval_s * self.workers)


@dataclass
class SimulationResult:
    """Per-file stage times and the summary a person reads."""

    model: FarmModel
    times: list[dict[str, float]] = field(default_factory=list)
    max_batch_queue: int = 0
    max_transfer_queue: int = 0
    makespan_s: float = 0.0

    def latencies(self, stage: str, since: str = "written") -> list[float]:
        """Seconds from ``since`` to ``stage`` for every file that reached both."""
        return [t[stage] - t[since] for t in self.times if stage in t and since in t]

    def median_latency(self, stage: str, since: str = "written") -> float:
        values = self.latencies(stage, since)
        return statistics.median(values) if values else math.nan

    def summary(self) -> dict[str, Any]:
        """Medians and 95th percentiles per stage, queue peaks, utilisation: JSON-ready."""
        stages: dict[str, dict[str, float]] = {}
        for stage in STAGES[1:]:
            values = sorted(self.latencies(stage))
            if values:
                stages[stage] = {
                    "median_s": statistics.median(values),
                    "p95_s": values[min(len(values) - 1, math.ceil(0.95 * len(values)) - 1)],
                    "max_s": values[-1],
                }
        return {
            "model": asdict(self.model),
            "utilisation": self.model.utilisation,
            "data_rate_MBps": self.model.data_rate_Bps / 1e6,
            "latency": stages,
            "max_batch_queue": self.max_batch_queue,
            "max_transfer_queue": self.max_transfer_queue,
            "makespan_s": self.makespan_s,
        }


def simulate(model: FarmModel) -> SimulationResult:
    """Run the model to completion (every file analysed or left in an incomplete group)."""
    env = simpy.Environment()
    transfer = simpy.Resource(env, capacity=model.parallel_transfers)
    cores = simpy.Resource(env, capacity=model.workers)
    analysers = simpy.Resource(env, capacity=model.analysis_slots)
    result = SimulationResult(model=model, times=[{} for _ in range(model.n_files)])
    reconstructed: dict[int, list[int]] = {}
    per_run = model.files_per_run or model.n_files
    write_s = min(model.file_interval_s, model.file_bytes / 2e9)  # the DAQ writes at ~2 GB/s

    def note_queues() -> None:
        result.max_batch_queue = max(result.max_batch_queue, len(cores.queue))
        result.max_transfer_queue = max(result.max_transfer_queue, len(transfer.queue))

    def analysis(files: list[int]) -> simpy.events.ProcessGenerator:
        with analysers.request() as slot:
            yield slot
            yield env.timeout(model.analysis_s)
        for i in files:
            result.times[i]["analysed"] = env.now

    def one_file(i: int) -> simpy.events.ProcessGenerator:
        t = result.times[i]
        yield env.timeout(model.arrival_s(i) + write_s)
        t["written"] = env.now
        yield env.timeout(model.detect_delay_s)
        t["detected"] = env.now
        with transfer.request() as req:
            note_queues()
            yield req
            yield env.timeout(model.file_bytes / model.transfer_bandwidth_Bps)
        t["stored"] = env.now
        yield env.timeout(model.submit_delay_s)
        t["submitted"] = env.now
        with cores.request() as slot:
            note_queues()
            yield slot
            yield env.timeout(model.start_delay_s)
            t["started"] = env.now
            yield env.timeout(model.job_s)
        t["ended"] = env.now
        run = i // per_run
        done = reconstructed.setdefault(run, [])
        done.append(i)
        if len(done) % model.group_size == 0:
            env.process(analysis(done[-model.group_size :]))

    for i in range(model.n_files):
        env.process(one_file(i))
    env.run()
    result.makespan_s = env.now
    return result


def calibrate(report: Mapping[str, Any], base: FarmModel | None = None) -> FarmModel:
    """A model whose rates are those measured in a data-challenge report.

    Uses the report's ``measured`` block: median copy duration and bytes (transfer bandwidth),
    median job run time and events (reconstruction time per event, start-up from the smallest
    job), median submission and detection delays, the analysis duration, the workers, the file
    interval and counts.  Anything absent keeps the value of ``base``.
    """
    m = report.get("measured", {})
    model = base or FarmModel()
    updates: dict[str, Any] = {}
    simple = {
        "n_files": "files",
        "file_interval_s": "interval_s",
        "events_per_file": "events_per_file",
        "workers": "workers",
        "group_size": "group_size",
        "detect_delay_s": "detect_delay_median_s",
        "submit_delay_s": "submit_delay_median_s",
        "start_delay_s": "start_delay_median_s",
        "analysis_s": "analysis_median_s",
    }
    for key, source in simple.items():
        if m.get(source) is not None:
            updates[key] = type(getattr(model, key))(m[source])
    if m.get("copy_median_s") and m.get("file_bytes_median"):
        updates["transfer_bandwidth_Bps"] = m["file_bytes_median"] / max(m["copy_median_s"], 1e-6)
        updates["event_bytes"] = m["file_bytes_median"] / max(m.get("events_per_file", 1), 1)
        updates["compression"] = 1.0
    if m.get("job_run_median_s") is not None and m.get("events_per_file"):
        startup = float(m.get("job_startup_s") or model.job_startup_s)
        per_event = (m["job_run_median_s"] - startup) / m["events_per_file"]
        updates["reco_s_per_event"] = max(per_event, 0.0)
        updates["job_startup_s"] = startup
    return replace(model, **updates)


def compare(
    predicted: SimulationResult, measured_medians: Mapping[str, float]
) -> dict[str, dict[str, float]]:
    """Predicted versus measured median latency (from ``written``) per stage, with the ratio."""
    out: dict[str, dict[str, float]] = {}
    for stage, measured in measured_medians.items():
        pred = predicted.median_latency(stage)
        if math.isnan(pred) or measured <= 0:
            continue
        out[stage] = {"predicted_s": pred, "measured_s": measured, "ratio": pred / measured}
    return out


# --- the 6x6x6 -------------------------------------------------------------------------------
#: Sizes of one 6x6x6 event: 7680 channels x 10000 samples x 12 bits (spec section 1).
EVENT_BYTES_6X6X6 = 7680 * 10000 * 3 // 2
#: How much more work one 6x6x6 event is than one 3x1x1 event (channels x samples).
WORK_RATIO_6X6X6 = (7680 * 10000) / (1280 * 1667)


@dataclass(frozen=True)
class SizingCase:
    """One line of the 6x6x6 sizing table (``spill_on_s`` 0: continuous data taking)."""

    name: str
    trigger_hz: float
    compression: float
    why: str
    spill_on_s: float = 0.0
    spill_period_s: float = 0.0


SIZING_CASES: Sequence[SizingCase] = (
    SizingCase(
        "cosmics, CRT-like trigger", 3.0, 2.0, "steep muons through a 36 m2 CRP, as the 3x1x1 took"
    ),
    SizingCase(
        "beam, SPS spills",
        100.0,
        2.0,
        "100 Hz during a 4.8 s spill every 20 s (20 Hz on average): the data files come in bursts",
        4.8,
        20.0,
    ),
    SizingCase(
        "beam, SPS spills, uncompressed",
        100.0,
        1.0,
        "the same with compression off (noise too high): twice the files",
        4.8,
        20.0,
    ),
    SizingCase(
        "100 Hz continuous (upper bound)",
        100.0,
        2.0,
        "the design's peak trigger rate without a pause between spills: the upper bound",
    ),
)


#: Seconds a job pays before its first event when nothing was measured (a guess).
DEFAULT_JOB_S = 5.0


def size_6x6x6(
    reco_s_per_event_3x1x1: float,
    cores: int = 384,
    bandwidth_Bps: float = 20e9,
    file_bytes: float = 1 << 30,
    minutes: float = 20.0,
    job_s: float = DEFAULT_JOB_S,
    reco_s_per_event_compressed_3x1x1: float | None = None,
    reco_s_per_event_6x6x6: float | None = None,
) -> list[dict[str, Any]]:
    """Run the model for each :data:`SIZING_CASES` entry over ``minutes`` of data taking.

    The reconstruction time per 6x6x6 event is the 3x1x1 time measured here scaled by
    :data:`WORK_RATIO_6X6X6` (the fast reconstruction is linear in channels x samples): the
    uncompressed figure for uncompressed cases, ``reco_s_per_event_compressed_3x1x1`` (when
    given) for compressed ones, whose events are decoded first.  ``job_s`` is what every job
    pays once before its first event (imports, numba's first calls), not scaled: both are
    measured on full-size files by ``bench_challenge.py costs``.

    ``reco_s_per_event_6x6x6`` (CPU s of one uncompressed 6x6x6 event, measured by
    ``benchmarks/bench_reco666.py``: 70-100 cosmics, CRPs, flashes and all) replaces the scaled
    figure; compressed events then add the decoding the 3x1x1 measured (compressed minus
    uncompressed, scaled), since bench_reco666 reads uncompressed events.
    """
    rows = []
    for case in SIZING_CASES:
        per_3x1x1 = (
            reco_s_per_event_compressed_3x1x1
            if case.compression > 1.0 and reco_s_per_event_compressed_3x1x1 is not None
            else reco_s_per_event_3x1x1
        )
        per_event = per_3x1x1 * WORK_RATIO_6X6X6
        if reco_s_per_event_6x6x6 is not None:
            decode = (
                (reco_s_per_event_compressed_3x1x1 - reco_s_per_event_3x1x1) * WORK_RATIO_6X6X6
                if case.compression > 1.0 and reco_s_per_event_compressed_3x1x1 is not None
                else 0.0
            )
            per_event = reco_s_per_event_6x6x6 + max(decode, 0.0)
        event_bytes = EVENT_BYTES_6X6X6 / case.compression
        events_per_file = max(1, int(file_bytes // event_bytes))
        interval = events_per_file / case.trigger_hz
        probe = FarmModel(
            file_interval_s=interval,
            burst_on_s=case.spill_on_s,
            burst_period_s=case.spill_period_s,
        )
        n_files = max(8, int(minutes * 60 / probe.mean_interval_s))
        model = FarmModel(
            n_files=n_files,
            file_interval_s=interval,
            events_per_file=events_per_file,
            event_bytes=EVENT_BYTES_6X6X6,
            compression=case.compression,
            transfer_bandwidth_Bps=bandwidth_Bps / 8,
            parallel_transfers=8,
            workers=cores,
            reco_s_per_event=per_event,
            job_startup_s=job_s,
            group_size=4,
            burst_on_s=case.spill_on_s,
            burst_period_s=case.spill_period_s,
        )
        res = simulate(model)
        ended = sorted(res.latencies("ended"))
        rows.append(
            {
                "case": case.name,
                "why": case.why,
                "trigger_hz": case.trigger_hz,
                "data_rate_GBps": model.data_rate_Bps / 1e9,
                "events_per_file": events_per_file,
                "file_interval_s": model.mean_interval_s,
                "core_utilisation": model.utilisation,
                "reco_s_per_event": per_event,
                "job_s": model.job_s,
                "cores_needed": math.ceil(model.job_s / model.mean_interval_s),
                "median_written_to_ended_s": res.median_latency("ended"),
                "p95_written_to_ended_s": ended[max(0, math.ceil(0.95 * len(ended)) - 1)]
                if ended
                else math.nan,
                "max_batch_queue": res.max_batch_queue,
                "keeps_up": model.utilisation < 1.0,
            }
        )
    return rows
