"""The monitor's index of reconstruction outputs sees the 6x6x6's, and their absent channels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import uproot

from farmtools.config import FarmConfig, FarmSection
from farmtools.detector import geometry
from farmtools.monitor.builtin.pedestals import Pedestals
from farmtools.monitor.recofiles import raw_of_output, reco_files
from farmtools.monitor.store import SummaryStore
from farmtools.monitor.tasks import Context
from farmtools.roothist import th1d

NAMES = [
    "recotask_run5-seq1.root",
    "recotask_5_2_b.root",
    "recotask_5_0_a.root",
    "recotask_5_2_a.root",
    "recotask_run05-seq3.root",  # not as the farm names it: not an output
    "recotask_5_2_ab.root",
    "recotask_6_0_a.root",  # another run's, in the wrong folder
]


def _cfg(home: Path, detector: str) -> FarmConfig:
    return FarmConfig(farm=FarmSection(home=home, detector=detector), base_dir=home)


def test_the_index_lists_both_detectors_outputs_in_sequence_order(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "3x1x1")
    run5 = cfg.path(cfg.storage.output) / "run5"
    run5.mkdir(parents=True)
    for n in NAMES:
        (run5 / n).write_bytes(b"")
    got = [p.name for p in reco_files(cfg, 5)]
    assert got == [
        "recotask_5_0_a.root",
        "recotask_run5-seq1.root",
        "recotask_5_2_a.root",
        "recotask_5_2_b.root",
    ]
    assert [p.name for p in reco_files(cfg, None, pddp=False)] == ["recotask_run5-seq1.root"]
    assert len(reco_files(cfg, 5, pddp=True)) == 3
    name = raw_of_output("recotask_5_2_b.root")
    assert name is not None and (name.run, name.seq, name.builder) == (5, 2, "b")


def test_the_6x6x6s_absent_cards_are_not_dead_channels(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "6x6x6")
    g = geometry("6x6x6")
    inst = g.instrumented[g.view_to_daq]
    rms = np.where(inst, 3.0, 0.0)  # no card, no noise
    rms[np.flatnonzero(inst)[:2]] = 0.0  # two read-out channels that are dead
    run5 = cfg.path(cfg.storage.output) / "run5"
    run5.mkdir(parents=True)
    edges = np.arange(g.n_channels + 1, dtype=np.float64) - 0.5
    with uproot.recreate(run5 / "recotask_5_0_a.root") as f:
        f["pedestal"] = th1d("pedestal", "", np.full(g.n_channels, 400.0), edges, "", "ADC")
        f["rms"] = th1d("rms", "", rms, edges, "", "ADC")
    ctx = Context(cfg, None, SummaryStore(tmp_path / "summaries"), None)
    out = Pedestals().read(ctx, "bad_channels", None)
    assert out["file"] == "recotask_5_0_a.root"
    assert out["dead"] == [int(c) for c in np.flatnonzero(inst)[:2]]
    assert out["labels"][0].startswith("CRP 0 view 0")
