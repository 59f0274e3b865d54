"""templates/farm.toml.j2 renders files that farmtools.config.load_config accepts."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from farmtools.cli import app
from farmtools.config import ConfigError, FarmConfig, load_config
from farmtools.deploy.farmtoml import render_farm_toml, template_variable
from farmtools.resources import templates_dir


def _load(tmp_path: Path, text: str) -> FarmConfig:
    path = tmp_path / "farm.toml"
    path.write_text(text)
    return load_config(path)


def test_template_without_variables_gives_the_schema_defaults(tmp_path: Path) -> None:
    cfg = _load(tmp_path, render_farm_toml())
    assert cfg.model_dump() == FarmConfig().model_dump()


def test_template_lists_every_key_of_the_schema() -> None:
    """A key added to config.py must be added to the template, or Ansible cannot set it."""
    data = tomllib.loads(render_farm_toml())
    for section, field in FarmConfig.model_fields.items():
        if section == "base_dir":
            continue
        keys = set(getattr(field.annotation, "model_fields", {}))
        assert section in data, f"[{section}] missing from templates/farm.toml.j2"
        assert set(data[section]) == keys, f"[{section}] keys differ from farmtools/config.py"


def test_mockfarm_values_reach_the_configuration(tmp_path: Path) -> None:
    overrides = {
        "farm.home": "/home/prod",
        "storage.backend": "xrootd",
        "storage.url": "root://storage:1094",
        "database.url": 'postgresql+psycopg://prod:pa"ss\\word@head:5432/farmtools',
        "batch.backend": "slurm",
        "batch.slots": 16,
        "monitor.host": "0.0.0.0",
        "processing.cooloff_s": 2.5,
        "notify.email_to": ["prod@wa105.cern.ch", "shift@wa105.cern.ch"],
    }
    cfg = _load(tmp_path, render_farm_toml(overrides))
    assert cfg.home == Path("/home/prod")
    assert cfg.storage.backend == "xrootd"
    assert cfg.storage.url == "root://storage:1094"
    # quotes and backslashes survive: tojson escapes them for TOML
    assert cfg.database.url == overrides["database.url"]
    assert cfg.batch.backend == "slurm"
    assert cfg.batch.slots == 16
    assert cfg.monitor.host == "0.0.0.0"
    assert cfg.processing.cooloff_s == 2.5
    assert cfg.notify.email_to == ["prod@wa105.cern.ch", "shift@wa105.cern.ch"]


def test_invalid_value_is_caught_by_the_schema(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"batch\.backend"):
        _load(tmp_path, render_farm_toml({"batch.backend": "lsf"}))


def test_unknown_key_names_itself() -> None:
    with pytest.raises(KeyError, match=r"storage\.bakend"):
        template_variable("storage.bakend")
    with pytest.raises(KeyError, match="nosuch"):
        template_variable("nosuch.key")
    assert template_variable("monitor.port") == "farmtools_monitor_port"


def test_ansible_inventories_name_only_template_variables() -> None:
    """Every farmtools_<section>_<key> the inventories set is one the template reads."""
    root = templates_dir().parent
    template = (templates_dir() / "farm.toml.j2").read_text()
    import yaml

    sections = set(FarmConfig.model_fields) - {"base_dir"}
    seen = 0
    for path in sorted(root.glob("inventories/*/group_vars/*.yml")):
        for name in yaml.safe_load(path.read_text()) or {}:
            parts = name.split("_")
            if parts[0] == "farmtools" and len(parts) > 2 and parts[1] in sections:
                seen += 1
                assert name in template, f"{path}: {name} is not read by farm.toml.j2"
    assert seen > 0


def test_cli_writes_a_loadable_file_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "farm.toml"
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "deploy",
            "config",
            "-o",
            str(out),
            "--set",
            "batch.backend=slurm",
            "--set",
            "monitor.port=9000",
            "--set",
            "storage.url=root://eos:1094",
        ],
    )
    assert result.exit_code == 0, result.output
    cfg = load_config(out)
    assert (cfg.batch.backend, cfg.monitor.port, cfg.storage.url) == (
        "slurm",
        9000,
        "root://eos:1094",
    )
    again = runner.invoke(app, ["deploy", "config", "-o", str(out)])
    assert again.exit_code == 1
    assert load_config(out).monitor.port == 9000
    bad = runner.invoke(
        app, ["deploy", "config", "-o", str(tmp_path / "b.toml"), "--set", "batch.slots=0"]
    )
    assert bad.exit_code == 1
    assert not (tmp_path / "b.toml").exists()
