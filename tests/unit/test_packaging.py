"""The wheel a farm node installs carries what farmtools needs at run time (found on the mock farm:
a manager installed from the wheel could not render a job script without the templates)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_carries_the_templates_where_resources_finds_them(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("farmtools-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data = {n.split("/data/", 1)[1] for n in names if ".data/data/" in n}
    expected = {f"share/farmtools/templates/{p.name}" for p in (ROOT / "templates").glob("*.j2")}
    assert expected and expected <= data, sorted(data)
    # and the package data of the monitor page (its HTML and the local plotly) is in too
    assert any(n.startswith("farmtools/monitor/static/") for n in names)
