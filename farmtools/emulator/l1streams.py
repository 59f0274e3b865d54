"""The two 6x6x6 L1 event builders: fragment streams ``<run>_<seq>_l1evb<k>.frag``, faults on demand.

Each trigger gives one fragment per L1 builder (builder ``k`` holds crates ``6k..6k+5``: half the
channels), appended to that builder's current stream file, which rolls every
``fragments_per_file`` fragments; files are written in place and grow fragment by fragment, as
the DAQ wrote (docs/protodune-dp.md).  The fragment header is filled as the real L1 builder
did: run number, run flags (compression), the White-Rabbit trigger record (type, number, time:
the wall clock, strictly increasing), the data-quality flag with the builder's count of
non-instrumented cards, the event number (= trigger number), LRO and CRO sizes.

Physics (:mod:`farmtools.emulator.pddp_event`): the whole drift volume under its four CRPs,
beam triggers during SPS spills and cosmic triggers outside (:mod:`farmtools.emulator.beam`),
beam particles and the cosmic muons overlapping each event, tracks crossing CRP boundaries; the
LRO segment (builder 0 only) carries a flash per particle at its t0 and the PMTs' dark counts.
The header's trigger time is the run's start (wall clock) plus the trigger's schedule time, so
the spills show in the data; the physics truth goes to ``<run>_<seq>_physics.json`` beside the
streams (:mod:`farmtools.emulator.pddp_truth`).  ``physics=False`` writes one pedestal event's
bytes under every header at wall-clock times (replays, benchmarks), with one pulse per PMT.

Faults (:class:`Faults`), each recorded in the truth ``<run>_l1truth.json``: a fragment missing
from one stream, a stream late by seconds, two fragments out of order, a duplicated trigger
number, a fragment with a wrong run number, an L1 file truncated inside its last fragment.
The truth gives what a correct L2 builder must count, so the tests compare counts exactly.

May import :mod:`farmtools.detector`, :mod:`farmtools.rawdata` and the emulator modules.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from farmtools import pddp_layout
from farmtools.detector import Geometry
from farmtools.emulator.beam import BeamSettings, TriggerSchedule
from farmtools.emulator.pddp_truth import jsonable, physics_truth_path, write_physics_truth
from farmtools.emulator.settings import EmulatorSettings
from farmtools.rawdata.format import TriggerType
from farmtools.rawdata.pddp_format import LRO_PMTS, FragmentHeader, LroPulse, pack_lro
from farmtools.rawdata.pddp_naming import L1Name
from farmtools.rawdata.pddp_writer import Fragment, make_fragment

Key = tuple[int, int]  # (L1 builder, trigger number)


@dataclass(frozen=True)
class Faults:
    """Faults to inject; triggers are numbers within the run, streams 0 or 1."""

    missing: tuple[Key, ...] = ()
    #: (stream, seconds): that stream's fragments are written this much later than the other's.
    late: tuple[int, float] | None = None
    #: (stream, trigger): the fragments of ``trigger`` and ``trigger + 1`` are written swapped.
    out_of_order: tuple[Key, ...] = ()
    #: (stream, trigger): the fragment is written twice.
    duplicate: tuple[Key, ...] = ()
    #: (stream, trigger): the fragment carries run number + 1.
    run_mismatch: tuple[Key, ...] = ()
    #: (stream, L1 file sequence): the file ends half-way into its last fragment.
    truncated: tuple[Key, ...] = ()

    def check(self) -> None:
        """Faults must touch distinct fragments, so that the truth is a plain count of each."""
        seen: set[Key] = set()
        for key in (*self.missing, *self.out_of_order, *self.duplicate, *self.run_mismatch):
            if key in seen:
                raise ValueError(f"fragment {key} (stream, trigger) is given two faults")
            seen.add(key)


@dataclass(frozen=True)
class L1Plan:
    """One emulated run of the two L1 streams."""

    run: int
    events: int
    fragments_per_file: int = 100
    compress: bool = False
    rate_hz: float = 0.0
    physics: bool = True
    first_trigger: int = 0
    faults: Faults = field(default_factory=Faults)
    #: Threads per physics event (one CRP each; the data are the same for any number).
    workers: int = 1


def parse_faults(specs: list[str]) -> Faults:
    """Faults from ``KIND:STREAM:VALUE`` strings (the CLI's ``--fault``); ValueError names a bad one."""
    lists: dict[str, list[Key]] = {
        "missing": [],
        "out-of-order": [],
        "duplicate": [],
        "run-mismatch": [],
        "truncated": [],
    }
    late: tuple[int, float] | None = None
    for spec in specs:
        kind, _, rest = spec.partition(":")
        stream, _, value = rest.partition(":")
        try:
            s = int(stream)
            if s not in (0, 1):
                raise ValueError
            if kind == "late":
                late = (s, float(value))
            elif kind in lists:
                lists[kind].append((s, int(value)))
            else:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"fault {spec!r}: expected KIND:STREAM:VALUE, KIND one of late, {', '.join(lists)}"
            ) from None
    return Faults(
        missing=tuple(lists["missing"]),
        late=late,
        out_of_order=tuple(lists["out-of-order"]),
        duplicate=tuple(lists["duplicate"]),
        run_mismatch=tuple(lists["run-mismatch"]),
        truncated=tuple(lists["truncated"]),
    )


def truth_path(out_dir: str | os.PathLike[str], run: int) -> Path:
    return Path(out_dir) / f"{run}_l1truth.json"


def daq_order(
    geometry: Geometry,
    view_adc: npt.NDArray[np.uint16],
    out: npt.NDArray[np.uint16] | None = None,
) -> npt.NDArray[np.uint16]:
    """An event in DAQ order, non-instrumented channels zero (what the L1 builders send); into
    ``out`` when given (a reused buffer spares 154 MB of fresh pages per 6x6x6 event)."""
    daq = np.empty_like(view_adc) if out is None else out
    daq[geometry.view_to_daq] = view_adc
    daq[~geometry.instrumented] = 0
    return daq


def flash_lro(rng: np.random.Generator) -> bytes:
    """The trigger's flash: one pulse per PMT at the trigger time [choice]."""
    charges = rng.gamma(4.0, 25.0, size=LRO_PMTS)
    return pack_lro([LroPulse(p, 0, float(q)) for p, q in enumerate(charges)])


class _StreamFile:
    """The current file of one L1 stream: appends fragments, rolls, truncates on demand."""

    def __init__(
        self, out: Path, run: int, builder: int, per_file: int, truncate: set[int]
    ) -> None:
        self.out, self.run, self.builder, self.per_file = out, run, builder, per_file
        self.truncate = truncate
        self.seq = -1
        self.count = 0
        self.fh: Any = None
        self.files: list[str] = []
        self.truncated_triggers: list[int] = []

    def write(self, frag: Fragment) -> None:
        if self.fh is None or self.count == self.per_file:
            self.close()
            self.seq += 1
            path = self.out / L1Name(self.run, self.seq, self.builder).filename
            self.fh = path.open("xb")
            self.files.append(path.name)
            self.count = 0
        assert frag.body is not None
        data = frag.header.pack() + frag.body
        self.count += 1
        if self.count == self.per_file and self.seq in self.truncate:
            data = data[: len(data) // 2]
            self.truncated_triggers.append(frag.header.trigger_number)
        self.fh.write(data)
        self.fh.flush()

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def emulate_l1_run(
    out_dir: str | os.PathLike[str],
    geometry: Geometry,
    plan: L1Plan,
    settings: EmulatorSettings | None = None,
    *,
    seed: int = 0,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    on_event: Callable[[int], None] | None = None,
    beam: BeamSettings | None = None,
) -> dict[str, Any]:
    """Write the run's two L1 streams into ``out_dir``; returns (and writes) the truth."""
    if geometry.l1_builders != 2:
        raise ValueError(f"the {geometry.name} has no two L1 event builders")
    settings = settings or EmulatorSettings(seed=seed)
    beam = beam or BeamSettings()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    faults = plan.faults
    faults.check()
    rng = np.random.default_rng([seed, plan.run])
    physics = _PhysicsRun(out, geometry, settings, beam, plan, seed) if plan.physics else None
    fc = geometry.fragment_channels
    streams = [
        _StreamFile(
            out, plan.run, k, plan.fragments_per_file, {s for b, s in faults.truncated if b == k}
        )
        for k in (0, 1)
    ]
    template: list[bytes] = []
    if physics is None:
        pedestal = np.full((geometry.n_channels, geometry.samples), 400, dtype=np.uint16)
        ped = daq_order(geometry, pedestal)
        template = [
            make_fragment(ped[k * fc : (k + 1) * fc], run=plan.run, trigger_type=0, trigger_number=0,
                          time_ns=0, event_number=0, compress=plan.compress).body or b""
            for k in (0, 1)
        ]  # fmt: skip
    late_stream, late_s = faults.late if faults.late is not None else (-1, 0.0)
    held: list[tuple[float, Fragment]] = []  # fragments of the late stream, with their due time
    swap: dict[int, Fragment] = {}
    last_ns = 0
    start = clock()
    emitted = [0, 0]
    for i in range(plan.events):
        trigger = plan.first_trigger + i
        due = start + (i / plan.rate_hz if plan.rate_hz > 0 else 0.0)
        if due > clock():
            sleep(due - clock())
        now_ns = max(int(clock() * 1e9), last_ns + 1)
        if physics is not None:
            event = physics.next_event(i, trigger, start)
            daq = daq_order(geometry, event.adc, physics.daq_buffer)
            ttype, lro, now_ns = event.trigger_type, event.lro, max(event.time_ns, last_ns + 1)
        else:
            lro = flash_lro(rng)
        last_ns = now_ns
        for k in (0, 1):
            if (k, trigger) in faults.missing:
                continue
            run = plan.run + 1 if (k, trigger) in faults.run_mismatch else plan.run
            if physics is not None:
                frag = make_fragment(
                    daq[k * fc : (k + 1) * fc],
                    run=run,
                    trigger_type=ttype,
                    trigger_number=trigger,
                    time_ns=now_ns,
                    event_number=trigger,
                    missing_cards=geometry.missing_cards(k),
                    compress=plan.compress,
                    lro=lro if k == 0 else b"",
                )
            else:
                frag = _reheader(template[k], run, trigger, now_ns, geometry.missing_cards(k), plan.compress,
                                 lro if k == 0 else b"")  # fmt: skip
            copies = 2 if (k, trigger) in faults.duplicate else 1
            for _ in range(copies):
                emitted[k] += 1
                if k == late_stream:
                    held.append((clock() + late_s, frag))
                elif (k, trigger) in faults.out_of_order:
                    swap[k] = frag
                elif k in swap:
                    streams[k].write(frag)
                    streams[k].write(swap.pop(k))
                else:
                    streams[k].write(frag)
        while held and held[0][0] <= clock():
            streams[late_stream].write(held.pop(0)[1])
        if on_event is not None:
            on_event(i + 1)
    for k, frag in swap.items():
        streams[k].write(frag)
    for due_s, frag in held:
        if due_s > clock():
            sleep(due_s - clock())
        streams[late_stream].write(frag)
    for s in streams:
        s.close()
    if physics is not None:
        physics.flush()
    truth = _truth(
        plan, geometry, emitted, [s.truncated_triggers for s in streams], [s.files for s in streams]
    )
    truth["physics_truth"] = physics.files if physics is not None else []
    tmp = truth_path(out, plan.run).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(truth, indent=1))
    os.replace(tmp, truth_path(out, plan.run))
    return truth


@dataclass
class _Emitted:
    adc: npt.NDArray[np.uint16]
    lro: bytes
    trigger_type: int
    time_ns: int


class _PhysicsRun:
    """The run's trigger schedule, 6x6x6 events and their truth sidecars (one per sequence)."""

    def __init__(
        self,
        out: Path,
        geometry: Geometry,
        settings: EmulatorSettings,
        beam: BeamSettings,
        plan: L1Plan,
        seed: int,
    ) -> None:
        from farmtools.emulator.pddp_event import PddpEventGenerator

        self.gen = PddpEventGenerator(geometry, settings, beam, seed, plan.workers)
        self.schedule = TriggerSchedule(beam, np.random.default_rng([seed, plan.run, 0x5B]))
        self.out, self.plan = out, plan
        g = self.gen
        self.head: dict[str, Any] = {
            "run": plan.run,
            "geometry": geometry.name,
            "samples": geometry.samples,
            "seed": seed,
            "constants": {
                "tick_us": geometry.tick_us,
                "drift_velocity_mm_per_us": geometry.drift_velocity_mm_per_us,
                "drift_length_cm": geometry.drift_length_cm,
                "window_us": g.window_us,
                "full_drift_us": round(g.drift_us, 4),
                "lro_window_ns": list(g.lro_window),
                "mean_cosmics": round(g.mean_cosmics, 4),
            },
            "injected": {
                **jsonable(settings),
                **{k: v for k, v in jsonable(beam).items() if k != "gain_maps"},
                "lem_gains": [[gains[lem] for lem in sorted(gains)] for gains in g.gains],
            },
            "pmts_cm": pddp_layout.pmt_positions_cm().tolist(),
        }
        self.events: list[dict[str, Any]] = []
        self.daq_buffer = np.empty((geometry.n_channels, geometry.samples), dtype=np.uint16)
        self.files: list[str] = []
        self.seq = 0
        self.start_ns = 0

    def next_event(self, i: int, trigger_number: int, start_s: float) -> _Emitted:
        if i == 0:
            self.start_ns = int(start_s * 1e9)
        trig = self.schedule.next()
        ev = self.gen.event(trig)
        time_ns = self.start_ns + round(trig.time_s * 1e9)
        self.events.append(
            {"trigger_number": trigger_number, "event_number": trigger_number,
             "time_ns": time_ns, **ev.truth}
        )  # fmt: skip
        if len(self.events) == self.plan.fragments_per_file:
            self.flush()
        return _Emitted(ev.adc, ev.lro, ev.trigger_type, time_ns)

    def flush(self) -> None:
        """Write the current sequence's sidecar (nothing when it has no event)."""
        if not self.events:
            return
        path = physics_truth_path(self.out, self.plan.run, self.seq)
        write_physics_truth(path, {**self.head, "seq": self.seq, "events": self.events})
        self.files.append(path.name)
        self.events = []
        self.seq += 1


def _reheader(
    body_tail: bytes, run: int, trigger: int, time_ns: int, missing: int, compress: bool, lro: bytes
) -> Fragment:
    """A pedestal fragment's CRO bytes under a new header (``physics=False``)."""
    cro = body_tail[:-1]
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    header = FragmentHeader(run, 1 if compress else 0, int(TriggerType.PMT), trigger, seconds, nanos,
                            missing & 0x3F, trigger, len(lro), len(cro))  # fmt: skip
    return Fragment(header, lro + body_tail)


def _truth(
    plan: L1Plan,
    geometry: Geometry,
    emitted: list[int],
    truncated: list[list[int]],
    files: list[list[str]],
) -> dict[str, Any]:
    """What a correct L2 builder must find: counts per outcome, from the faults injected."""
    f = plan.faults
    triggers = range(plan.first_trigger, plan.first_trigger + plan.events)
    bad: dict[Key, str] = {}
    for key in f.missing:
        bad[key] = "missing"
    for key in f.run_mismatch:
        bad[key] = "mismatch"
    for k, trigs in enumerate(truncated):
        for t in trigs:
            bad[(k, t)] = "truncated"
    built = incomplete = 0
    for t in triggers:
        ok = sum(1 for k in (0, 1) if (k, t) not in bad)
        built += ok == 2
        incomplete += ok == 1
    dup = len(f.duplicate)
    return {
        "format": "farmtools-l1-truth/1",
        "run": plan.run,
        "geometry": geometry.name,
        "samples": geometry.samples,
        "plan": {k: v for k, v in asdict(plan).items() if k != "faults"},
        "faults": asdict(f),
        "emitted": emitted,
        "files": files,
        "expected": {
            "built": built,
            "incomplete": incomplete,
            "duplicates": dup,
            "mismatches": len(f.run_mismatch),
            "truncated": sum(len(t) for t in truncated),
        },
    }
