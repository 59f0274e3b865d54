"""Tiny 6x6x6 event files of known classes for the final stage's tests (no emulator physics).

Each event is a pedestal with white noise on the instrumented channels, plus what its class
needs: a block of charge on some CRPs and a flash at the trigger (beam, cosmic), nothing
(empty), a wide noise (noisy), a bad LRO segment (corrupt), or one L1 fragment only
(incomplete, written as the L2 builder writes it, with its placeholder).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from farmtools.detector import Geometry, geometry
from farmtools.rawdata.format import TriggerType
from farmtools.rawdata.pddp_format import DQ_EVENT_INCOMPLETE, LroPulse, pack_lro
from farmtools.rawdata.pddp_writer import Fragment, make_fragment, write_pddp_file

SAMPLES = 64
GEO = geometry(f"6x6x6:{SAMPLES}")
T0_NS = 1_700_000_000_000_000_000


def daq_adc(
    geo: Geometry, rng: np.random.Generator, crps: tuple[int, ...] = (), noise: float = 2.0
) -> npt.NDArray[np.uint16]:
    """DAQ-order samples: pedestal 400, white noise, 200 ADC on 40 channels of each of ``crps``."""
    view = np.clip(rng.normal(400.0, noise, (geo.n_channels, geo.samples)), 0, 4095)
    inst_view = geo.instrumented[geo.view_to_daq]
    per = geo.n_channels // geo.n_crps
    for c in crps:
        chans = np.flatnonzero(inst_view[c * per : (c + 1) * per])[:40] + c * per
        view[chans, 20:24] += 200.0
    daq = np.empty(view.shape, dtype=np.uint16)
    daq[geo.view_to_daq] = view.astype(np.uint16)
    daq[~geo.instrumented] = 0
    return daq


def lro(rng: np.random.Generator, flash: bool, dark: int = 20) -> bytes:
    pulses = [LroPulse(p, 0, 40.0) for p in range(10)] if flash else []
    pulses += [
        LroPulse(int(rng.integers(36)), int(rng.integers(-3_000_000, 4_000_000)), 1.0)
        for _ in range(dark)
    ]
    pulses.sort(key=lambda p: p.time_ns)
    return pack_lro(pulses)


def event(
    kind: str, trigger: int, rng: np.random.Generator, *, run: int = 5, compress: bool = False
) -> tuple[list[Fragment], bool]:
    """The fragments of an event of ``kind`` (beam, cosmic, empty, noisy, corrupt, incomplete)."""
    g = GEO
    ttype = TriggerType.BEAM if kind == "beam" else TriggerType.PMT
    crps = {"beam": (0, 3), "cosmic": (1,), "incomplete": (1,)}.get(kind, ())
    adc = daq_adc(g, rng, crps, noise=60.0 if kind == "noisy" else 2.0)
    light = lro(rng, flash=kind in ("beam", "cosmic", "incomplete"))
    if kind == "corrupt":
        light = b"XX" + light[2:]
    fc = g.fragment_channels
    frags = [
        make_fragment(
            adc[k * fc : (k + 1) * fc],
            run=run,
            trigger_type=int(ttype),
            trigger_number=trigger,
            time_ns=T0_NS + trigger * 1000,
            event_number=trigger,
            missing_cards=g.missing_cards(k),
            compress=compress,
            lro=light if k == 0 else b"",
        )
        for k in range(g.l1_builders)
    ]
    if kind != "incomplete":
        return frags, False
    present = frags[0]
    head = present.header
    inc = Fragment(replace(head, dq_flag=head.dq_flag | DQ_EVENT_INCOMPLETE), present.body)
    hole = Fragment(head.placeholder_for(60), b"\x00")
    return [inc, hole], True


def write_run(
    path: Path, kinds: list[str], *, run: int = 5, first_trigger: int = 0, seed: int = 1
) -> Path:
    """An L2 event file of events of ``kinds`` (trigger numbers from ``first_trigger``)."""
    rng = np.random.default_rng(seed)
    built = [event(k, first_trigger + i, rng, run=run) for i, k in enumerate(kinds)]
    write_pddp_file(path, run, [f for f, _i in built], incomplete=[i for _f, i in built])
    return path
