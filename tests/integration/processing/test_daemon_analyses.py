"""The processing daemon analyses complete groups by itself (issue 5, ``[analysis] auto``).

``farmtools process run`` runs as a real child process on a farm with program=reco: four
emulated raw files of one run are reconstructed by real ``farmtools reco`` jobs on the local
backend, then analysed by the daemon without anyone calling ``farmtools analyse ready``.  A run
whose ROOT outputs are garbage is analysed first and must not take the daemon down.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from farmtools.bookkeeping import Bookkeeping, Event, FileState
from farmtools.config import FarmConfig
from farmtools.processing.manager import Manager
from tests.integration.processing.daemon import Daemon, wait_until, write_farm
from tests.processing_farm import state_of, store
from tests.states import walk

RUN = 61


def _store_emulated(bk: Bookkeeping, cfg: FarmConfig, run: int, files: int) -> list[str]:
    """Emulated physics files written into the farm storage and recorded as verified."""
    from farmtools.emulator.daq import RunPlan, emulate_run
    from farmtools.emulator.settings import EmulatorSettings

    out = cfg.path(cfg.storage.input) / f"run{run}"
    written = emulate_run(
        out, EmulatorSettings(lifetime_ms=3.0, seed=5), RunPlan(run, files, events_per_file=8)
    )
    names = []
    for f in written:
        bk.register_file(
            f.path.name,
            source_path=f"/evb/{f.path.name}",
            run=run,
            seq=f.seq,
            size=f.path.stat().st_size,
            daq_write_time=datetime.now(UTC),
        )
        walk(
            bk, f.path.name, FileState.STORED, Event.VERIFIED, fields={"storage_path": str(f.path)}
        )
        names.append(f.path.name)
    return names


def _garbage_group(bk: Bookkeeping, tmp_path: Path, run: int) -> list[str]:
    """Four files already reconstructed whose ROOT outputs are not ROOT files (bad input)."""
    bad = tmp_path / "garbage.root"
    bad.write_bytes(b"\0not a root file" * 64)
    names = []
    for seq in range(4):
        name = f"run{run}-seq{seq}.dat"
        bk.register_file(
            name, source_path=f"/evb/{name}", run=run, seq=seq, size=1, daq_write_time=None
        )
        walk(bk, name, FileState.RECONSTRUCTED, Event.RECONSTRUCTED, {"output": str(bad)})
        names.append(name)
    return names


def test_process_run_analyses_reconstructed_groups_by_itself(tmp_path: Path) -> None:
    config, cfg = write_farm(tmp_path / "farm", {"processing.program": "reco"})
    bk = Bookkeeping.from_config(cfg)
    garbage = _garbage_group(bk, tmp_path, RUN - 1)
    names = _store_emulated(bk, cfg, RUN, 4)
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        wait_until(
            lambda: all(state_of(bk, n) == FileState.ANALYSED for n in names),
            "the run analysed by the daemon",
            240,
            daemon,
        )
        assert daemon.alive()
    finally:
        assert daemon.stop() == 0, daemon.output()[-3000:]
    # bad input: the first file of the garbage group is parked with an alarm, the daemon went on
    assert state_of(bk, garbage[0]) == FileState.FAILED
    assert any(a.source == "analysis" and a.kind == "unreadable_output" for a in bk.alarms())

    (row,) = bk.analyses(run=RUN)
    assert row.files == names and row.first_seq == 0 and row.last_seq == 3
    assert row.lifetime_us is not None and row.lifetime_err_us is not None
    assert all(v is not None for v in row.lifetimes_us)
    assert sorted(row.gains) == list(range(1, 13))
    summary = Path(row.summary)
    assert summary.parent == cfg.path(cfg.analysis.summary_dir) / f"run{RUN}"
    assert summary.exists() and summary.with_suffix(".json").exists()
    doc = json.loads(summary.with_suffix(".json").read_text())
    assert doc["run"] == RUN
    assert row.outputs == [
        str(cfg.path(cfg.storage.output) / f"run{RUN}" / f"recotask_run{RUN}-seq{s}.root")
        for s in range(4)
    ]
    story = [e for e in bk.story(names[0]) if e.event == Event.ANALYSED]
    assert len(story) == 1 and story[0].details is not None
    assert story[0].details["summary"] == row.summary
    # the fits ran in the daemon's analysis child, not in the daemon (its CPU is accounted apart)
    submitted = [e for e in bk.story(names[0]) if e.event == Event.SUBMITTED]
    assert submitted[0].pid == daemon.proc.pid
    assert story[0].pid != daemon.proc.pid and story[0].host == submitted[0].host
    assert "analyses run in child process" in daemon.output()
    bk.close()


def test_process_once_analyses_and_auto_false_does_not(tmp_path: Path) -> None:
    """``process once`` analyses at the end of its pass; ``auto = false`` leaves it to others."""
    _, cfg = write_farm(tmp_path / "farm", {"processing.program": "reco", "analysis.auto": False})
    bk = Bookkeeping.from_config(cfg)
    garbage = _garbage_group(bk, tmp_path, 70)
    assert Manager(cfg, bk=bk).run_once().analysed == 0
    assert {state_of(bk, n) for n in garbage} == {FileState.RECONSTRUCTED}
    on = cfg.model_copy(update={"analysis": cfg.analysis.model_copy(update={"auto": True})})
    s = Manager(on, bk=bk).run_once()  # a garbage group: no summary, and no exception either
    assert s.analysed == 0 and state_of(bk, garbage[0]) == FileState.FAILED
    store(bk, cfg, 71, 0)  # the pass still did its processing work
    assert Manager(on, bk=bk).run_once().claimed == 1
    bk.close()


@pytest.mark.xrootd
def test_outputs_on_xrootd_are_read_through_the_client(tmp_path: Path, xrootd_server: Any) -> None:
    """An ``output`` that is a root:// URL is fetched and read; a missing one is named."""
    from farmtools.analysis.hits import RecoFileError, read_reco_file
    from farmtools.analysis.pipeline import read_output
    from farmtools.detector import WA105_3X1X1
    from farmtools.emulator.daq import RunPlan, emulate_run
    from farmtools.emulator.settings import EmulatorSettings
    from farmtools.reco.driver import reconstruct_file
    from farmtools.storage.xrootd import XRootDStorage

    (raw,) = emulate_run(tmp_path, EmulatorSettings(seed=9), RunPlan(72, 1, events_per_file=2))
    local = tmp_path / "recotask_run72-seq0.root"
    reconstruct_file(raw.path, local, WA105_3X1X1)
    storage = XRootDStorage(xrootd_server.url, "/analysis-test")
    put = storage.put(local, "run72/recotask_run72-seq0.root")
    assert put.url.startswith("root://")
    got, want = read_output(put.url), read_reco_file(local)
    assert set(got) == set(want)
    for k in want:  # NaN where a hit has no track: equal_nan
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    assert want["view"].size > 0
    with pytest.raises(RecoFileError, match=r"run72/nosuch\.root"):
        read_output(storage.url("run72/nosuch.root"))
