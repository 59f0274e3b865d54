"""Processing claims 6x6x6 event files as it claims 3x1x1 files (issue 15), each its own job."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from farmtools.bookkeeping import Bookkeeping, Event, FileState
from farmtools.processing.jobs import JobStore
from farmtools.processing.manager import Manager, PassSummary
from farmtools.processing.script import JobPaths
from farmtools.rawdata.naming import parse_raw_name
from tests.processing_farm import make_cfg, state_of, store
from tests.states import walk


def test_claim_takes_the_311_file_and_the_6x6x6_files_each_with_its_own_paths(
    tmp_path: Path,
) -> None:
    cfg = make_cfg(tmp_path / "farm")
    bk = Bookkeeping.from_config(cfg)
    names = ["12_1_a.dat", "12_1_b.dat"]  # two L2 builders, the same run and sequence
    for name in names:
        bk.register_file(
            name,
            source_path=f"/evb/{name}",
            run=12,
            seq=1,
            size=10,
            daq_write_time=datetime.now(UTC),
        )
        walk(bk, name, FileState.STORED, Event.VERIFIED)
    raw = store(bk, cfg, 12, 1)
    manager = Manager(cfg, bk=bk)
    summary = PassSummary()
    manager.claim(summary)
    assert summary.claimed == 3
    assert {state_of(bk, n) for n in [raw, *names]} == {FileState.QUEUED}
    jobs = [JobStore(bk).of_file(n)[0] for n in [raw, *names]]
    assert [j.name for j in jobs] == ["reco_run12-seq1", "reco_12_1_a", "reco_12_1_b"]
    paths = [JobPaths.of(cfg, parse_raw_name(j.file), j.id) for j in jobs]  # type: ignore[arg-type]
    assert len({p.output for p in paths}) == 3 and len({p.script for p in paths}) == 3
    assert paths[1].output.endswith("run12/recotask_12_1_a.root")
