"""``farmtools analyse`` by hand: the detector of the files decides the settings (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from farmtools.analysis.hits import RecoFileError
from farmtools.analysis.pipeline import output_geometry, threshold_loss
from farmtools.analysis.purity import THRESHOLD_LOSS_6X6X6
from farmtools.cli import app
from farmtools.detector import PDDP_6X6X6, WA105_3X1X1
from farmtools.reco.output import RecoWriter


def _output(path: Path, n_channels: int) -> Path:
    """A reconstructed file without events: its trees and its per-channel histograms."""
    with RecoWriter(path, n_channels):
        pass
    return path


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("outputs")
    return (
        _output(d / "recotask_7_0_a.root", PDDP_6X6X6.n_channels),
        _output(d / "run7-seq0.root", WA105_3X1X1.n_channels),
    )


def test_the_files_channel_count_names_the_detector(outputs: tuple[Path, Path]) -> None:
    pddp, small = outputs
    geo = output_geometry([pddp])
    assert (geo.drift_length_cm, geo.n_lems) == (600.0, 144)
    assert threshold_loss(geo) == THRESHOLD_LOSS_6X6X6
    assert output_geometry([small]) == WA105_3X1X1
    assert output_geometry([small], "6x6x6:100").n_lems == 144  # named: wins over the files
    with pytest.raises(RecoFileError, match="not a 6x6x6 output"):
        output_geometry([pddp, small])


def test_analyse_purity_by_hand_uses_the_6x6x6_settings_on_its_outputs(
    outputs: tuple[Path, Path],
) -> None:
    pddp = outputs[0]
    res = CliRunner().invoke(app, ["analyse", "purity", str(pddp)])
    assert "detector: 6x6x6-anode (144 LEMs, the files' channel count)" in res.stderr
    bad = CliRunner().invoke(app, ["analyse", "purity", str(pddp), "--detector", "4x4x4"])
    assert bad.exit_code == 2 and "unknown detector geometry '4x4x4'" in bad.stderr
