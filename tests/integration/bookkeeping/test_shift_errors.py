"""Issue 13, section 4: the shift's commands when something around them is wrong.

A database that is down (a real PostgreSQL, stopped) or unreadable (SQLite), no configuration
at all, a wrong option: each is one line saying what is wrong and a documented exit code
(``farmtools/cli.py``), never a traceback, never an empty table that looks like "no data", and
never a password.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from farmtools.bookkeeping import Bookkeeping, FileState
from farmtools.cli import app
from farmtools.cliopts import EXIT_DATABASE, EXIT_USAGE
from tests.servers.postgres import own_postgres_server

runner = CliRunner()

#: Every shift command that reads the bookkeeping database, with its arguments.
SHIFT_COMMANDS: list[list[str]] = [
    ["runs"],
    ["story", "run1-seq0.dat"],
    ["files"],
    ["files", "--json"],
    ["alarms"],
    ["jobs", "list"],
    ["jobs", "list", "--json"],
    ["jobs", "show", "1"],
    ["jobs", "retry", "run1-seq0.dat"],
    ["jobs", "cancel", "1"],
    ["ingest", "retry", "run1-seq0.dat"],
    ["archive", "list"],
    ["archive", "verify"],
    ["monitor", "ack", "1"],
    ["status"],
    ["status", "--nagios"],  # exit 3: Nagios' UNKNOWN
    ["logs", "export", "exported"],
]

PASSWORD = "pw-never-printed"


def _invoke(cfg: Path | None, args: list[str]) -> tuple[int, str]:
    res = runner.invoke(app, [*args, *(["--config", str(cfg)] if cfg else [])])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, res.output


def _assert_one_line(out: str, *expected: str) -> None:
    assert "Traceback" not in out and PASSWORD not in out, out
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    for text in expected:
        assert text in lines[0], out


@pytest.fixture(scope="module")
def stopped_postgres_and_open_bk(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, Bookkeeping]]:
    """farm.toml naming a database (with a password in its URL) on a PostgreSQL now stopped,
    and a Bookkeeping opened on it while it was up."""
    tmp_path = tmp_path_factory.mktemp("pg-down")
    with own_postgres_server() as server:
        user, rest = server.create_db().split("://", 1)[1].split("@", 1)
        url = f"postgresql+psycopg://{user}:{PASSWORD}@{rest}"
        bk = Bookkeeping(url)  # a real farm database, schema and all (trust: any password)
        server.stop()
        cfg = tmp_path / "farm.toml"
        cfg.write_text(f'[farm]\nhome = "{tmp_path}"\n[database]\nurl = "{url}"\n')
        yield cfg, bk
        bk.close()


@pytest.fixture
def stopped_postgres(stopped_postgres_and_open_bk: tuple[Path, Bookkeeping]) -> Path:
    return stopped_postgres_and_open_bk[0]


@pytest.mark.postgres
def test_database_lost_after_opening_is_named_too(
    stopped_postgres_and_open_bk: tuple[Path, Bookkeeping],
) -> None:
    """The database going away in the middle of a command: the error still names it, masked."""
    from sqlalchemy.exc import OperationalError

    from farmtools.bookkeeping.errors import database_failure

    _, bk = stopped_postgres_and_open_bk
    with pytest.raises(OperationalError) as caught:
        bk.runs()
    message = database_failure(caught.value)
    assert message is not None and PASSWORD not in message
    assert message.startswith("bookkeeping database postgresql+psycopg://postgres:***@127.0.0.1:")
    assert "unavailable" in message


@pytest.mark.postgres
@pytest.mark.parametrize("args", SHIFT_COMMANDS, ids=" ".join)
def test_database_down_is_one_line_and_exit_3(stopped_postgres: Path, args: list[str]) -> None:
    code, out = _invoke(stopped_postgres, args)
    assert code == EXIT_DATABASE == 3, out
    _assert_one_line(out, "bookkeeping database postgresql+psycopg://postgres:***@127.0.0.1:")


@pytest.mark.parametrize("args", SHIFT_COMMANDS, ids=" ".join)
def test_unreadable_sqlite_is_one_line_and_exit_3(tmp_path: Path, args: list[str]) -> None:
    cannot = tmp_path / "a-directory.sqlite"  # exists, but no SQLite can open it
    cannot.mkdir()
    cfg = tmp_path / "farm.toml"
    cfg.write_text(f'[farm]\nhome = "{tmp_path}"\n[database]\nurl = "sqlite:///{cannot}"\n')
    code, out = _invoke(cfg, args)
    assert code == EXIT_DATABASE, out
    _assert_one_line(out, f"bookkeeping database sqlite:///{cannot}: ", "unable to open")


@pytest.mark.parametrize("args", SHIFT_COMMANDS, ids=" ".join)
def test_without_configuration_nothing_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """Not an empty farm/bookkeeping.sqlite and empty tables: which config, and how to give one."""
    monkeypatch.delenv("FARMTOOLS_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    code, out = _invoke(None, args)
    assert code == EXIT_DATABASE, out
    _assert_one_line(
        out,
        f"{tmp_path}/farm/bookkeeping.sqlite: no such database file (nothing created)",
        f"no configuration found ($FARMTOOLS_CONFIG not set, no farm.toml in {tmp_path})",
        "--config FILE or set FARMTOOLS_CONFIG",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_configuration_naming_a_missing_database_says_which(tmp_path: Path) -> None:
    cfg = tmp_path / "farm.toml"
    cfg.write_text(f'[farm]\nhome = "{tmp_path}/elsewhere"\n')
    code, out = _invoke(cfg, ["runs"])
    assert code == EXIT_DATABASE
    _assert_one_line(out, "no such database file", f"configuration {cfg}")
    assert not (tmp_path / "elsewhere").exists()
    # the commands that build a farm still create it from nothing
    code, out = _invoke(cfg, ["db", "upgrade"])
    assert code == 0, out
    assert (tmp_path / "elsewhere" / "bookkeeping.sqlite").exists()
    assert _invoke(cfg, ["runs"])[0] == 0


def test_options_and_names_are_checked(tmp_path: Path) -> None:
    cfg = tmp_path / "farm.toml"
    cfg.write_text(f'[farm]\nhome = "{tmp_path}"\n')
    bk = Bookkeeping(f"sqlite:///{tmp_path}/bookkeeping.sqlite")
    bk.register_file("run1-seq0.dat", source_path="x", run=1, seq=0, size=1, daq_write_time=None)
    code, out = _invoke(cfg, ["jobs", "list", "--state", "bogus"])
    assert code == EXIT_USAGE
    _assert_one_line(out, "--state 'bogus': not one of new, submitted, running, done, failed")
    code, out = _invoke(cfg, ["jobs", "list", "--state", "failed"])
    assert code == 0, out
    code, out = _invoke(cfg, ["jobs", "retry", "nosuch.dat"])
    assert code == 1
    _assert_one_line(out, "nosuch.dat: no such file in the bookkeeping database")
    code, out = _invoke(cfg, ["jobs", "retry", "run1-seq0.dat"])
    assert code == 1
    _assert_one_line(out, f"run1-seq0.dat: in state '{FileState.DETECTED}', not 'failed'")
    code, out = _invoke(cfg, ["files", "--run", "999"])
    assert code == 1
    _assert_one_line(out, "--run 999: no such run")
    bk.close()


def test_password_file_of_another_account_is_one_line(tmp_path: Path) -> None:
    """A shift account cannot read secrets.env: it is told whose file it is, not a traceback."""
    cfg = tmp_path / "farm.toml"
    cfg.write_text(
        '[database]\nurl = "postgresql+psycopg://prod@127.0.0.1:1/farmtools"\n'
        f'password_env = "FT_TEST_UNSET_PW"\npassword_file = "{tmp_path / "secrets.env"}"\n'
    )
    code, out = _invoke(cfg, ["runs"])
    assert code == EXIT_USAGE
    _assert_one_line(out, "database.password_file", "run the command as prod")
