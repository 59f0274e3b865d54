"""The challenge's expected workers on a real Slurm: the nodes ``sinfo`` lists for the partition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from farmtools.challenge.evidence import expected_workers
from farmtools.config import BatchSection, FarmConfig
from tests.servers.slurm import HOST, PARTITION

pytestmark = pytest.mark.slurm


def test_expected_workers_are_the_partition_nodes(
    tmp_path: Path, slurm_cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in slurm_cluster.env.items():  # sinfo finds the test cluster through SLURM_CONF
        monkeypatch.setenv(k, v)
    cfg = FarmConfig(batch=BatchSection(backend="slurm", queue=PARTITION), base_dir=tmp_path)
    assert expected_workers(cfg) == {
        "nodes": [HOST],
        "source": f"slurm: sinfo, partition {PARTITION}",
    }
    missing = FarmConfig(batch=BatchSection(backend="slurm", queue="nosuch"), base_dir=tmp_path)
    found = expected_workers(missing)
    assert found["nodes"] is None and "nosuch" in found["source"]  # named, never guessed
