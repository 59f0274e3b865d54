"""Issue 13, section 3: the database password is never in farm.toml and never printed.

farm.toml (readable by the shift accounts) names the database user only; the password comes from
``database.password_env`` (the daemons' environment, from secrets.env) or ``password_file``
(secrets.env itself, readable by the production account alone).  URLs are printed masked.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from farmtools.config import ConfigError, load_config, masked_url
from farmtools.deploy.farmtoml import render_farm_toml
from farmtools.resources import templates_dir

URL = "postgresql+psycopg://prod@head:5432/farmtools"


def _cfg(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "farm.toml"
    path.write_text(f'[database]\nurl = "{URL}"\npassword_env = "FT_TEST_DB_PW"\n{extra}')
    return path


def test_password_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FT_TEST_DB_PW", "p@ss/w:rd")
    cfg = load_config(_cfg(tmp_path))
    assert cfg.database_url == "postgresql+psycopg://prod:p%40ss%2Fw%3Ard@head:5432/farmtools"
    assert masked_url(cfg.database_url) == "postgresql+psycopg://prod:***@head:5432/farmtools"


def test_password_from_the_secrets_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FT_TEST_DB_PW", raising=False)
    secrets = tmp_path / "secrets.env"
    # as the farmtools role writes it: shell-quoted values (Ansible's quote filter)
    secrets.write_text("# managed\nFARMTOOLS_MONITOR_PASSWORD='x'\nFT_TEST_DB_PW='it'\"'\"'s'\n")
    cfg = load_config(_cfg(tmp_path, f'password_file = "{secrets}"\n'))
    assert cfg.database_password == "it's"
    assert cfg.database_url == "postgresql+psycopg://prod:it%27s@head:5432/farmtools"
    # not readable (a shift account): one line saying whose file it is and what to do
    cfg = load_config(_cfg(tmp_path, f'password_file = "{tmp_path / "nosuch.env"}"\n'))
    with pytest.raises(ConfigError, match=r"database\.password_file .*nosuch\.env: .*run the"):
        _ = cfg.database_url
    # neither: the URL as written (a trust or peer login)
    assert load_config(_cfg(tmp_path)).database_url == URL


def test_masked_url_hides_any_password() -> None:
    assert masked_url("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    assert masked_url("sqlite:////farm/bookkeeping.sqlite") == "sqlite:////farm/bookkeeping.sqlite"
    assert "secret" not in masked_url("not a url://u:secret@h")


def test_inventories_put_no_password_in_farm_toml(monkeypatch: pytest.MonkeyPatch) -> None:
    """The database URL of every inventory names no password; the secret goes to secrets.env."""
    root = templates_dir().parent
    monkeypatch.setenv("FARMTOOLS_DB_PASSWORD", "from-the-operator")
    paths = sorted(root.glob("inventories/*/group_vars/all.yml"))
    assert paths
    for path in paths:
        values = yaml.safe_load(path.read_text())
        url = values["farmtools_database_url"]
        assert "lookup(" not in url and "FARMTOOLS_DB_PASSWORD" not in url, path
        rendered = render_farm_toml({"database.url": url})
        assert "from-the-operator" not in rendered and "password_env" in rendered
        assert "FARMTOOLS_DB_PASSWORD" in values["farmtools_secrets"], path
    defaults = yaml.safe_load((root / "roles/farmtools/defaults/main.yml").read_text())
    assert defaults["farmtools_database_password_file"] == "{{ farmtools_secrets_path }}"
