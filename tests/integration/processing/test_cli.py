"""``farmtools process once`` and ``farmtools jobs ...`` on a farm directory (local backend)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from farmtools.bookkeeping import Bookkeeping, FileState
from farmtools.cli import app
from tests.eventually import eventually
from tests.processing_farm import make_cfg, state_of, store


def test_process_once_and_jobs_commands(tmp_path: Path) -> None:
    home = tmp_path / "farm"
    (tmp_path / "farm.toml").write_text(
        f'[farm]\nhome = "{home}"\n[processing]\ncooloff_s = 0.0\nmax_tries = 1\nprogram = "check"\n'
    )
    cfg = make_cfg(home)
    bk = Bookkeeping.from_config(cfg)
    good = store(bk, cfg, 31, 0)
    bad = store(bk, cfg, 31, 1, corrupt=True)
    runner = CliRunner(env={"COLUMNS": "250"})  # rich tables are not cut
    conf = ["--config", str(tmp_path / "farm.toml")]
    first = runner.invoke(app, ["process", "once", *conf])
    assert first.exit_code == 0, first.output
    assert "claimed 2, submitted 2" in first.output

    def process_once() -> None:
        assert runner.invoke(app, ["process", "once", *conf]).exit_code == 0

    eventually(
        lambda: {state_of(bk, good), state_of(bk, bad)},
        60,
        "one file reconstructed, the corrupt one failed",
        until=lambda v: v == {FileState.RECONSTRUCTED, FileState.FAILED},
        step=process_once,
        interval=0.1,
    )
    listed = runner.invoke(app, ["jobs", "list", *conf])
    assert listed.exit_code == 0 and "corrupt_input" in listed.output and "done" in listed.output
    shown = runner.invoke(app, ["jobs", "show", bad, *conf])
    assert shown.exit_code == 0 and "exit code        : 65" in shown.output
    assert runner.invoke(app, ["jobs", "retry", good, *conf]).exit_code == 1  # not failed
    retried = runner.invoke(app, ["jobs", "retry", bad, *conf])
    assert retried.exit_code == 0 and state_of(bk, bad) == FileState.STORED
    assert runner.invoke(app, ["jobs", "cancel", "999", *conf]).exit_code == 1
