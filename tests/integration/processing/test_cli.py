"""``farmtools process once`` and ``farmtools jobs ...`` on a farm directory (local backend)."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from typer.testing import CliRunner

from farmtools.bookkeeping import Bookkeeping, FileState
from farmtools.cli import app
from farmtools.processing.jobs import JobRecord, JobStore
from tests.eventually import eventually
from tests.processing_farm import make_cfg, state_of, store
from tests.states import walk_job


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


def test_jobs_list_and_show_json_and_piped(tmp_path: Path) -> None:
    """Piped, `jobs list` keeps a long file name whole (a rich table cut it at 80 columns);
    --json gives the documented fields, an object for a job id, a list for a file."""
    home = tmp_path / "farm"
    toml = tmp_path / "farm.toml"
    toml.write_text(f'[farm]\nhome = "{home}"\n')
    bk = Bookkeeping.from_config(make_cfg(home))
    long = "run7-seq12-" + "long" * 30 + ".dat"
    bk.register_file(long, source_path="x", run=7, seq=12, size=1, daq_write_time=None)
    jobs = JobStore(bk)
    job = jobs.add(
        file=long, try_number=1, backend="local", name="j", queue="q", memory_mb=1, walltime_s=9
    )
    log = tmp_path / "job.log"
    log.write_text("exit code        : 65\n")
    walk_job(jobs, job.id, "failed", exit_code=65, cpu_s=1.5, job_log=str(log))
    conf = ["--config", str(toml)]
    listed = CliRunner().invoke(app, ["jobs", "list", *conf])
    assert listed.exit_code == 0, listed.output
    assert [ln.split()[:2] for ln in listed.output.splitlines()[2:]] == [[str(job.id), long]]
    assert "…" not in listed.output and "│" not in listed.output
    (row,) = json.loads(CliRunner().invoke(app, ["jobs", "list", "--json", *conf]).output)
    assert set(row) == {f.name for f in fields(JobRecord)}
    assert (row["file"], row["state"], row["exit_code"], row["cpu_s"]) == (long, "failed", 65, 1.5)
    assert row["created"].endswith("Z") and row["submitted"] is None
    shown = json.loads(
        CliRunner().invoke(app, ["jobs", "show", str(job.id), "--json", *conf]).output
    )
    assert shown == row | {"log": "exit code        : 65\n"}
    of_file = json.loads(CliRunner().invoke(app, ["jobs", "show", long, "--json", *conf]).output)
    assert of_file == [shown]
