"""6x6x6 event files through the chain: L1 streams -> evb -> ingest -> bookkeeping -> archive.

Processing leaves them stored (their reconstruction is issue 15) instead of failing them.
"""

from __future__ import annotations

from pathlib import Path

from farmtools.archive.service import Archiver
from farmtools.bookkeeping import Bookkeeping, FileState
from farmtools.config import FarmConfig
from farmtools.detector import geometry
from farmtools.emulator.l1streams import Faults, L1Plan, emulate_l1_run
from farmtools.evb.builder import BuilderSettings, L2Builder
from farmtools.ingest.service import IngestService
from farmtools.storage import LocalStorage

DET = "6x6x6:40"


def test_built_files_are_ingested_recorded_archived_and_not_reconstructed(tmp_path: Path) -> None:
    cfg = FarmConfig.model_validate(
        {
            "farm": {"home": str(tmp_path), "detector": DET},
            "ingest": {"settle_s": 0.0},
            "archive": {"target_size": "1MB", "min_size": "1kB"},
            "base_dir": tmp_path,
        }
    )
    geo = geometry(DET)
    emulate_l1_run(
        cfg.path(cfg.evb.l1_dir),
        geo,
        L1Plan(run=61, events=6, physics=False, faults=Faults(missing=((1, 2),))),
    )
    builder = L2Builder(
        BuilderSettings(
            in_dir=cfg.path(cfg.evb.l1_dir),
            out_dir=cfg.path(cfg.daq.watch_dir),
            setaside_dir=cfg.path(cfg.evb.setaside_dir),
            geometry=geo,
            roll_bytes=3 * (2 * geo.fragment_bytes + 1000),
        )
    )
    builder.drain()
    built = sorted(cfg.path(cfg.daq.watch_dir).iterdir())
    assert [p.name for p in built] == ["61_0_a.dat", "61_1_a.dat"]
    bk = Bookkeeping(cfg.database_url)
    storage = LocalStorage(cfg.path(cfg.storage.input))
    svc = IngestService(cfg, bk, storage)
    assert [svc.ingest(p) for p in built] == [FileState.STORED, FileState.STORED]
    rec = bk.get("61_0_a.dat")
    assert rec is not None and (rec.run, rec.seq) == (61, 0)
    assert rec.storage_path is not None and rec.storage_path.endswith("run61/61_0_a.dat")
    # a corrupt event file is quarantined with the reader's reason, as a bad 311 file is
    bad = cfg.path(cfg.daq.watch_dir) / "61_7_b.dat"
    bad.write_bytes(built[0].read_bytes()[:-5])
    assert svc.ingest(bad) == FileState.QUARANTINED
    assert "truncated" in (bk.get("61_7_b.dat").last_error or "")  # type: ignore[union-attr]
    # processing takes 311 files only: nothing to claim, the 6x6x6 files stay stored
    assert (
        bk.claim(FileState.STORED, FileState.QUEUED, worker="t", event="queued", name_prefix="run")
        == []
    )
    assert {f.state for f in bk.files(run=61) if f.name != "61_7_b.dat"} == {FileState.STORED}
    reports = Archiver(cfg, bk).run_ready(force=True)
    assert reports["verify"].done and not reports["verify"].failed
