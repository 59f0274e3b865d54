"""``challenge run --config`` on a farm naming XRootD, Slurm and PostgreSQL (real servers).

The same command drives a farm whose storage is a real XRootD server (adler32 enabled), whose
jobs run on a real one-node Slurm cluster with slurmdbd, and whose bookkeeping is a real
PostgreSQL, all started on loopback by the fixtures.  The jobs read their input through
``root://`` URLs; integrity is checked through the XRootD storage's own checksum query.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from farmtools.challenge.run import ChallengeSettings, free_port, run_challenge
from farmtools.deploy.farmtoml import render_farm_toml

pytestmark = [pytest.mark.xrootd, pytest.mark.postgres, pytest.mark.slurm]


def test_challenge_on_xrootd_slurm_and_postgres(
    tmp_path: Path,
    xrootd_server: Any,
    postgres_url: str,
    slurm_cluster: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for k, v in slurm_cluster.env.items():  # the daemons and their sbatch inherit these
        monkeypatch.setenv(k, v)
    home = tmp_path / "farm"
    home.mkdir()
    config = home / "farm.toml"
    config.write_text(
        render_farm_toml(
            {
                "farm.home": ".",
                "storage.backend": "xrootd",
                "storage.url": xrootd_server.url,
                "storage.input": "/storage/input",
                "storage.backoff_s": 0.5,
                "database.url": postgres_url,
                "batch.backend": "slurm",
                "batch.queue": "prod",
                "processing.program": "reco",
                "processing.poll_s": 0.5,
                "processing.cooloff_s": 2.0,
                "archive.target_size": "2GB",
                "archive.min_size": "1MB",
                "monitor.port": free_port(),
            }
        )
    )
    settings = ChallengeSettings(
        files=4, events=2, interval_s=0.5, config=config, progress=False, timeout_s=240.0
    )
    rep = run_challenge(settings, Console(quiet=True)).report
    assert rep["settings"]["storage"] == "xrootd"
    assert rep["settings"]["database"] == "postgresql"
    assert rep["settings"]["batch"] == "slurm"
    assert rep["verdict"] == "PASS", (rep["incomplete"], rep["errors"], rep["files"])
    assert rep["counts"]["stored"] == 4 and rep["counts"]["reconstructed"] == 4
    assert rep["integrity"]["checked_bytes_of"] == 4
    assert all(o["stages"].get("stored") for o in rep["files"])
    assert sum(rep["jobs_per_worker"].values()) == 4  # nodes as sacct names them
    # every node of the partition (sinfo) ran a job, under the name sacct gives it
    assert rep["workers"]["expected"] == sorted(rep["jobs_per_worker"])
    assert rep["workers"]["every_worker_ran_a_job"] is True
    # the outputs live on the XRootD server (published by the jobs, verified), opened there
    outputs = rep["root_outputs"]
    assert len(outputs) == 4 and all(o["ok"] for o in outputs), outputs
    assert all(o["output"].startswith(xrootd_server.url + "//") for o in outputs)
    on_server = sorted(p.name for p in (xrootd_server.root / "storage" / "output").rglob("*.root"))
    assert on_server == sorted(o["output"].rsplit("/", 1)[1] for o in outputs)
