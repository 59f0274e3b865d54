"""``farmtools reco root://...``: a raw file on a real XRootD server, as jobs get it with EOS."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import uproot
from typer.testing import CliRunner

from farmtools.cli import app
from farmtools.emulator.daq import RunPlan, emulate_run
from farmtools.emulator.settings import EmulatorSettings
from farmtools.job.exitcodes import EX_DATAERR, EX_NOINPUT
from farmtools.storage.xrootd import XRootDStorage
from tests.servers.xrootd import XRootDServer

pytestmark = pytest.mark.xrootd
runner = CliRunner()


def test_reco_reads_an_xrootd_url(xrootd_server: XRootDServer, tmp_path: Path) -> None:
    (info,) = emulate_run(tmp_path, EmulatorSettings(seed=2), RunPlan(run=4, events_per_file=2))
    store = XRootDStorage(xrootd_server.url, f"/tests/{uuid.uuid4().hex}/input")
    url = store.put(info.path, "run4/run4-seq0.dat").url
    assert url.startswith("root://")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = tmp_path / "recotask_run4-seq0.root"
    res = runner.invoke(app, ["reco", url, "-o", str(out), "--scratch", str(scratch)])
    assert res.exit_code == 0, res.output
    assert res.output.startswith(f"{url}: 2 events")
    with uproot.open(out) as f:
        assert f["events"].num_entries == 2
    assert list(scratch.iterdir()) == []  # the scratch copy is gone

    # a corrupt file on the storage: 65, named by its URL
    data = info.path.read_bytes()
    bad = tmp_path / "run4-seq1.dat"
    bad.write_bytes(data[: len(data) // 2])
    bad_url = store.put(bad, "run4/run4-seq1.dat").url
    res = runner.invoke(app, ["reco", bad_url, "-o", str(tmp_path / "x.root")])
    assert res.exit_code == EX_DATAERR
    assert bad_url in res.output and "truncated" in res.output

    # absent on the server: 66 (the storage, not the data)
    res = runner.invoke(app, ["reco", url + ".absent", "-o", str(tmp_path / "y.root")])
    assert res.exit_code == EX_NOINPUT, res.output
    assert "cannot read input" in res.output
