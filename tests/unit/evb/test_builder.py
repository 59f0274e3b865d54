"""The L2 event builder on emulated L1 streams with every fault: counts match the injected truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from farmtools.detector import geometry
from farmtools.emulator.l1streams import Faults, L1Plan, emulate_l1_run
from farmtools.evb.builder import BuilderSettings, L2Builder
from farmtools.rawdata.pddp_naming import parse_l1_name, parse_l2_name
from farmtools.rawdata.pddp_reader import PDDPFile
from tests.unit.evb import pddp_oracle

GEO = geometry("6x6x6").with_samples(20)
FAULTS = Faults(
    missing=((1, 3),),
    late=(1, 0.2),
    out_of_order=((0, 5),),
    duplicate=((1, 10),),
    run_mismatch=((0, 14),),
    truncated=((1, 2),),
)


def _settings(tmp: Path, builder: str = "a", builders: tuple[str, ...] = ("a",)) -> BuilderSettings:
    return BuilderSettings(
        in_dir=tmp / "l1",
        out_dir=tmp / "l2",
        setaside_dir=tmp / "aside",
        geometry=GEO,
        builder_id=builder,
        builders=builders,
        roll_bytes=5 * 2 * GEO.fragment_bytes,
    )


def _l1_fragments(l1: Path) -> dict[tuple[int, int], list[pddp_oracle.OracleFragment]]:
    """Every whole fragment of the L1 files, split by the oracle: (stream, trigger) -> copies."""
    out: dict[tuple[int, int], list[pddp_oracle.OracleFragment]] = {}
    for path in sorted(l1.iterdir()):
        name = parse_l1_name(path.name)
        if name is None:
            continue
        data = path.read_bytes()
        pos = 0
        while pos + 44 <= len(data):
            size = 44 + int.from_bytes(data[pos + 36 : pos + 40], "little")
            size += int.from_bytes(data[pos + 40 : pos + 44], "little") + 1
            if pos + size > len(data):
                break
            (frag,) = pddp_oracle._split(data[pos : pos + size]).fragments
            out.setdefault((name.builder, frag.trigger_number), []).append(frag)
            pos += size
    return out


@pytest.mark.parametrize("physics", [False, True])
def test_every_fault_counted_as_injected(tmp_path: Path, physics: bool) -> None:
    events = 30 if not physics else 6
    faults = FAULTS if not physics else Faults(missing=((0, 2),), duplicate=((1, 4),))
    geo = GEO if not physics else geometry("6x6x6").with_samples(600)
    plan = L1Plan(run=77, events=events, fragments_per_file=8, physics=physics, faults=faults)
    truth = emulate_l1_run(tmp_path / "l1", geo, plan, seed=3)
    s = _settings(tmp_path)
    s = BuilderSettings(**{**s.__dict__, "geometry": geo})
    builder = L2Builder(s)
    builder.drain()
    c = builder.counts[77]
    exp = truth["expected"]
    assert (c.built, c.incomplete, c.duplicates, c.mismatches, c.truncated) == (
        exp["built"], exp["incomplete"], exp["duplicates"], exp["mismatches"], exp["truncated"],
    )  # fmt: skip
    assert c.fragments_in == truth["emitted"]
    set_aside = c.duplicates + c.mismatches + c.truncated + c.late + c.corrupt
    assert 2 * c.built + c.incomplete + set_aside == sum(truth["emitted"])
    assert c.pending == 0
    # the oracle reads the built files: every event's samples are the L1 fragments' samples
    sent = _l1_fragments(tmp_path / "l1")
    triggers = []
    for path in sorted((tmp_path / "l2").iterdir()):
        assert parse_l2_name(path.name) is not None
        for ev in pddp_oracle.read_file(str(path)):
            t = ev.fragments[0].trigger_number
            triggers.append(t)
            for k, frag in enumerate(ev.fragments):
                if frag.flag & 0x80:
                    assert not frag.cro and not ev.good
                    continue
                original = sent[(k, t)][0]
                assert pddp_oracle.unpack_cro(frag.cro, geo.samples).tolist() == (
                    pddp_oracle.unpack_cro(original.cro, geo.samples).tolist()
                )
                assert frag.lro == original.lro
    assert sorted(triggers) == sorted(set(triggers))
    assert len(triggers) == exp["built"] + exp["incomplete"]


def test_farmtools_reader_reads_built_physics_in_view_order(tmp_path: Path) -> None:
    geo = geometry("6x6x6-full").with_samples(600)
    emulate_l1_run(tmp_path / "l1", geo, L1Plan(run=5, events=2), seed=1)
    s = BuilderSettings(**{**_settings(tmp_path).__dict__, "geometry": geo})
    L2Builder(s).drain()
    path = sorted((tmp_path / "l2").iterdir())[0]
    with PDDPFile.open(path, geo) as f:
        ev = f.event(0)
        assert ev.good and ev.expected_missing == 0  # the full detector misses no card
        crp0 = ev.adc[:1920].astype(np.int32)
        # the emulator put charge somewhere above the pedestal in the first CRP
        assert int((crp0 - np.median(crp0, axis=1, keepdims=True)).max()) > 20


def test_two_builders_share_the_triggers_and_restart_loses_nothing(tmp_path: Path) -> None:
    plan = L1Plan(
        run=9, events=20, fragments_per_file=6, physics=False, faults=Faults(duplicate=((0, 7),))
    )
    truth = emulate_l1_run(tmp_path / "l1", GEO, plan)
    ids = ("a", "b")
    a = L2Builder(_settings(tmp_path, "a", ids))
    a.drain()
    b = L2Builder(_settings(tmp_path, "b", ids))
    b.step()  # half way: some events may be pending, nothing written twice
    b = L2Builder(_settings(tmp_path, "b", ids))  # a restart
    b.drain()
    again = L2Builder(_settings(tmp_path, "a", ids))
    again.drain()  # nothing new for a: the streams are read again, every fragment known
    assert again.counts[9] == a.counts[9]
    seen = []
    for path in (tmp_path / "l2").iterdir():
        name = parse_l2_name(path.name)
        assert name is not None
        with PDDPFile.open(path, GEO) as f:
            for e in f.entries:
                assert e.trigger_number % 2 == ids.index(name.builder)
                seen.append(e.trigger_number)
    assert sorted(seen) == list(range(20))
    total = a.counts[9].built + b.counts[9].built
    assert total == truth["expected"]["built"] == 20
    assert a.counts[9].duplicates + b.counts[9].duplicates == 1


def test_event_files_cleaned_from_the_daq_disk_are_not_built_again(tmp_path: Path) -> None:
    truth = emulate_l1_run(tmp_path / "l1", GEO, L1Plan(run=4, events=6, physics=False))
    first = L2Builder(_settings(tmp_path))
    first.drain()
    written = sorted((tmp_path / "l2").iterdir())
    assert written
    for path in written:  # what the archive clean-up does once the files are archived and verified
        path.unlink()
    again = L2Builder(_settings(tmp_path))
    again.drain()
    assert list((tmp_path / "l2").iterdir()) == []
    assert again.counts[4] == first.counts[4]
    assert again.counts[4].built == truth["expected"]["built"] == 6
