"""The final stage on the real chain's files: emulated L1 streams (spills, a missing fragment),
the L2 builder, then classify, filter, pack, transfer, verify, deletable, checked against the
emulator's truth."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from pathlib import Path

from farmtools.bookkeeping import Bookkeeping, Event, FileState
from farmtools.config import FarmConfig
from farmtools.detector import geometry
from farmtools.emulator.beam import BeamSettings
from farmtools.emulator.l1streams import Faults, L1Plan, emulate_l1_run
from farmtools.emulator.pddp_truth import load_physics_truth
from farmtools.emulator.settings import EmulatorSettings
from farmtools.evb.builder import BuilderSettings, L2Builder
from farmtools.final.catalog import FinalCatalog
from farmtools.final.stages import (
    classify_run,
    deletable_run,
    filter_run,
    pack_run,
    transfer_run,
    verify_run,
)
from farmtools.rawdata.pddp_reader import PDDPFile
from farmtools.storage.checksum import adler32_hex
from tests.states import walk

GEO = geometry("6x6x6:200")
RUN = 21


def test_emulated_run_through_the_builder_is_classified_by_its_truth(tmp_path: Path) -> None:
    beam = BeamSettings(spill_s=0.02, spill_period_s=0.05, beam_rate_hz=300.0,
                        cosmic_trigger_hz=300.0)  # fmt: skip
    plan = L1Plan(run=RUN, events=8, fragments_per_file=8, faults=Faults(missing=((1, 5),)))
    emulate_l1_run(tmp_path / "l1", GEO, plan,
                   EmulatorSettings(seed=4, muon_flux_per_m2_s=5.0), seed=4, beam=beam)  # fmt: skip
    truth = load_physics_truth(tmp_path / "l1", RUN)
    bs = BuilderSettings(in_dir=tmp_path / "l1", out_dir=tmp_path / "storage" / f"run{RUN}",
                         setaside_dir=tmp_path / "aside", geometry=GEO, builder_id="a",
                         builders=("a",))  # fmt: skip
    L2Builder(bs).drain()
    cfg = FarmConfig.model_validate(
        {
            "farm": {"home": str(tmp_path), "detector": f"6x6x6:{GEO.samples}"},
            "final": {"cosmic": "prescale:2"},
            "base_dir": tmp_path,
        }
    )
    bk = Bookkeeping(cfg.database_url)
    built = sorted((tmp_path / "storage" / f"run{RUN}").iterdir())
    for path in built:
        data = path.read_bytes()
        bk.register_file(path.name, source_path=path.name, run=RUN, seq=0, size=len(data),
                         daq_write_time=datetime.now(UTC))  # fmt: skip
        walk(bk, path.name, FileState.STORED, Event.VERIFIED,
             fields={"adler32": adler32_hex(zlib.adler32(data)), "storage_path": str(path)})  # fmt: skip

    rep = classify_run(cfg, bk, RUN)
    assert rep.events == 8 and not rep.failed
    events = FinalCatalog(bk).events(RUN)
    for e in events:
        if e.trigger == 5:
            assert e.klass == "incomplete"
        else:  # each event holds its triggering particle: charge and a flash
            want = "beam" if truth[e.trigger]["trigger"] == "BEAM" else "cosmic"
            assert e.klass == want, (e.trigger, e.reason)
    assert {e.klass for e in events} == {"beam", "cosmic", "incomplete"}

    flt = filter_run(cfg, bk, RUN)
    n = {k: sum(c.values()) for k, c in flt.counts.items()}
    assert sum(n.values()) == 8 and flt.counts["cosmic"]["kept"] == (n["cosmic"] + 1) // 2
    finals = pack_run(cfg, bk, RUN)
    assert sum(f.events for f in finals) == flt.kept
    # the kept events decode to the built ones, sample for sample
    work = tmp_path / "final" / f"run{RUN}"
    with PDDPFile(built[0], GEO) as raw:
        index = {raw.entries[i].trigger_number: i for i in range(raw.n_events)}
        for f in finals:
            with PDDPFile(work / f.name, GEO) as out:
                for i in range(out.n_events):
                    ev = out.event_daq(i)
                    assert (ev.adc == raw.event_daq(index[ev.entry.trigger_number]).adc).all()
    transfer_run(cfg, bk, RUN)
    assert all(r.ok for _f, r in verify_run(cfg, bk, RUN))
    assert [d.allowed for d in deletable_run(cfg, bk, RUN)] == [True] * len(built)
