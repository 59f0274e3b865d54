"""Parsers of batch system output: TORQUE ``qstat -f``, Slurm ``sacct -P``, HTCondor job ads.

TORQUE and HTCondor inputs are recorded-format samples (tests/data/*/README.md); the sacct lines
are the output of the real Slurm 22.05 of tests/servers/slurm.py for a job that exited 3.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from farmtools.batch.base import Ending, JobSpec, parse_duration
from farmtools.batch.htcondor import accounting_from_ad, status_from_ad, submit_description
from farmtools.batch.slurm import parse_sacct, parse_size_kb, sbatch_command
from farmtools.batch.torque import (
    accounting_from_attrs,
    parse_qstat_full,
    qsub_command,
    short_id,
)

DATA = Path(__file__).resolve().parents[2] / "data"


def test_qstat_full_of_a_completed_job_gives_the_seed_log_figures() -> None:
    jobs = parse_qstat_full((DATA / "torque" / "qstat_f_completed.txt").read_text())
    attrs = jobs["322.wa105cpu0003.cern.ch"]
    # wrapped values are joined back
    assert attrs["Error_Path"].endswith("/all_logs/batch/run1/reco_run1-seq0.e322")
    assert "PBS_O_WORKDIR=/home/prod/processing/work" in attrs["Variable_List"]
    acc = accounting_from_attrs(attrs)
    assert acc is not None
    assert acc.ending is Ending.COMPLETED and acc.exit_code == 0
    assert acc.cpu_s == 310 and acc.walltime_s == 314
    assert acc.mem_kb == 108876 and acc.vmem_kb == 342436
    assert acc.node == "wa105cpu0004.cern.ch"
    assert acc.extra["session"] == 4351 and acc.extra["group"] == "wa105-comp"
    assert acc.started is not None and acc.ended is not None
    assert (acc.ended - acc.started).total_seconds() == 313
    assert "cput=00:05:10" in acc.extra["resources_used"]


@pytest.mark.parametrize(
    ("job", "ending", "code", "signal"),
    [
        ("401", Ending.TIMEOUT, None, None),  # JOB_EXEC_OVERLIMIT_WT
        ("402", Ending.OUT_OF_MEMORY, None, 9),  # SIGKILL with all of Resource_List.mem used
        ("403", Ending.COMPLETED, 65, None),  # corrupt input exit code
        ("404", Ending.NODE_FAIL, None, None),  # JOB_EXEC_RETRY: the mom failed
    ],
)
def test_qstat_full_failures(
    job: str, ending: Ending, code: int | None, signal: int | None
) -> None:
    jobs = {
        short_id(k): v
        for k, v in parse_qstat_full((DATA / "torque" / "qstat_f_mixed.txt").read_text()).items()
    }
    acc = accounting_from_attrs(jobs[job])
    assert acc is not None
    assert (acc.ending, acc.exit_code, acc.signal) == (ending, code, signal)


def test_qstat_full_running_and_queued_jobs_have_no_accounting() -> None:
    jobs = {
        short_id(k): v
        for k, v in parse_qstat_full((DATA / "torque" / "qstat_f_mixed.txt").read_text()).items()
    }
    assert jobs["405"]["job_state"] == "R" and accounting_from_attrs(jobs["405"]) is None
    assert jobs["406"]["job_state"] == "Q" and accounting_from_attrs(jobs["406"]) is None


def test_qstat_full_joins_wrapped_values_and_never_reads_a_continuation_as_a_key() -> None:
    jobs = parse_qstat_full((DATA / "torque" / "qstat_f_mixed.txt").read_text())
    attrs = jobs["407.wa105cpu0003.cern.ch"]
    assert attrs["exec_host"] == "+".join(f"wa105cpu0005.cern.ch/{i}" for i in range(4))
    # the continuation "\teads = 4 ..." looks like an attribute but is the rest of a value
    assert "eads" not in attrs
    assert attrs["submit_args"].endswith(
        "RECO_COMMENT=threads set with threads = 4 /home/prod/processing/scripts/run7/"
        "reco_run7-seq9.sh"
    )
    acc = accounting_from_attrs(attrs)
    assert acc is not None and acc.node == "wa105cpu0005.cern.ch" and acc.exit_code == 0
    assert acc.cpu_s == 20 * 60 + 44 and acc.walltime_s == 5 * 60 + 21
    assert acc.started is not None and acc.started.strftime("%a %b %d %H:%M:%S %Y") == (
        "Thu Oct 27 13:55:05 2016"
    )


def test_qstat_full_layout_of_the_samples() -> None:
    """Every sample line is a header, a 4-space attribute, a tab continuation or blank."""
    for sample in (DATA / "torque").glob("*.txt"):
        for n, line in enumerate(sample.read_text().splitlines(), 1):
            assert (
                not line
                or line.startswith(("Job Id: ", "\t"))
                or (line.startswith("    ") and " = " in line and line[4] != " ")
            ), f"{sample.name}:{n}: {line!r}"


def test_qstat_full_in_the_layout_of_slurms_qstat_wrapper() -> None:
    """``slurm-wlm-torque``'s qstat prints ``Job Id:\\t`` and tab-indented attributes."""
    text = (
        "Job Id:\t12\n\tJob_Name = reco_run2-seq0\n\tjob_state = C\n\tqueue = prod\n"
        "\texec_host = node1\n\tResource_List.walltime = 00:02:00\n\n"
        "Job Id:\t13\n\tJob_Name = reco_run2-seq1\n\tjob_state = R\n"
    )
    jobs = parse_qstat_full(text)
    assert jobs["12"]["job_state"] == "C" and jobs["12"]["exec_host"] == "node1"
    assert jobs["12"]["Resource_List.walltime"] == "00:02:00"
    assert jobs["13"] == {"Job_Name": "reco_run2-seq1", "job_state": "R"}
    acc = accounting_from_attrs(jobs["12"])
    assert acc is not None and acc.exit_code is None  # the wrapper has no exit_status


SACCT = (
    "1|reco_x|FAILED|3:0|00:00:02|00:00.250||vm|2026-11-28T15:41:50|2026-11-28T15:41:53|"
    "2026-11-28T15:41:55\n"
    "1.batch|batch|FAILED|3:0|00:00:02|00:00.250|94644K|vm|2026-11-28T15:41:53|"
    "2026-11-28T15:41:53|2026-11-28T15:41:55\n"
)


def test_sacct_job_line_and_batch_step() -> None:
    acc = parse_sacct(SACCT, "1")
    assert acc is not None
    assert acc.ending is Ending.COMPLETED and acc.exit_code == 3
    assert acc.max_rss_kb == 94644 and acc.cpu_s == pytest.approx(0.25)
    assert acc.walltime_s == 2 and acc.node == "vm"


def test_sacct_states() -> None:
    line = (
        "7|j|{state}|{code}|00:01:00|00:30.000||vm|2026-01-01T00:00:00|2026-01-01T00:00:01|"
        "2026-01-01T00:01:01\n"
    )
    assert parse_sacct(line.format(state="RUNNING", code="0:0"), "7") is None
    timeout = parse_sacct(line.format(state="TIMEOUT", code="0:15"), "7")
    oom = parse_sacct(line.format(state="OUT_OF_MEMORY", code="0:125"), "7")
    cancelled = parse_sacct(line.format(state="CANCELLED by 0", code="0:15"), "7")
    killed = parse_sacct(line.format(state="FAILED", code="0:9"), "7")
    assert timeout is not None and timeout.ending is Ending.TIMEOUT
    assert oom is not None and oom.ending is Ending.OUT_OF_MEMORY
    assert cancelled is not None and cancelled.ending is Ending.CANCELLED
    assert killed is not None and killed.ending is Ending.SIGNALLED and killed.signal == 9
    assert parse_sacct(line.format(state="COMPLETED", code="0:0"), "8") is None  # other job


def test_sizes_and_durations() -> None:
    assert parse_size_kb("1.5M") == 1536 and parse_size_kb("2G") == 2097152
    assert parse_size_kb("") is None
    assert parse_duration("1-02:03:04") == 93784 and parse_duration("05:10") == 310


def test_htcondor_history_ads() -> None:
    classad2 = pytest.importorskip("classad2")
    ads = {
        int(a["ClusterId"]): dict(a)
        for a in classad2.parseAds((DATA / "htcondor" / "history.ads").read_text())
    }
    ok = accounting_from_ad(ads[5121])
    assert ok is not None and ok.ending is Ending.COMPLETED and ok.exit_code == 0
    assert ok.cpu_s == 310 and ok.max_rss_kb == 342436 and ok.node == "wn03.cern.ch"
    assert ok.walltime_s == 314
    segv = accounting_from_ad(ads[5122])
    assert segv is not None and segv.ending is Ending.SIGNALLED and segv.signal == 11
    wall = accounting_from_ad(ads[5123])
    assert wall is not None and wall.ending is Ending.TIMEOUT
    bad = accounting_from_ad(ads[5124])
    assert bad is not None and bad.exit_code == 65
    assert accounting_from_ad(ads[5125]) is None
    assert str(status_from_ad(ads[5125])) == "running"


def test_htcondor_submit_description_is_accepted_by_the_bindings(tmp_path: Path) -> None:
    htcondor = pytest.importorskip("htcondor2")
    evil = tmp_path / "run 1 $(touch x)" / "reco.sh"
    spec = JobSpec(
        "reco_run1-seq0",
        evil,
        tmp_path / "o.txt",
        tmp_path / "e.txt",
        walltime_s=3600,
        memory_mb=2000,
        workdir=tmp_path,
        key="7-0badcafe",
    )
    desc = submit_description(spec)
    sub = htcondor.Submit(desc)
    assert sub["executable"] == str(evil)  # a value, not a command line
    # the idempotency key in the name and as the ad attribute HTCondorBatch.find asks for
    assert sub["batch_name"] == "reco_run1-seq0.7-0badcafe"
    assert sub["MY.FarmtoolsKey"] == '"7-0badcafe"'
    assert sub["request_memory"] == "2000"
    assert "3600" in sub["periodic_remove"]
    assert "queue" in str(sub)


@pytest.mark.parametrize("cores", [1, 4])
def test_every_backend_asks_for_the_job_s_cores(tmp_path: Path, cores: int) -> None:
    """JobSpec.cores reaches each batch system's own request (a job given N cores is told N)."""
    spec = JobSpec("reco_run1-seq0", tmp_path / "s.sh", tmp_path / "o", tmp_path / "e", cores=cores)
    assert f"--cpus-per-task={cores}" in sbatch_command(spec)
    limits = qsub_command(spec)[qsub_command(spec).index("-l") + 1]
    assert f"nodes=1:ppn={cores}" in limits.split(",") and "mem=1500mb" in limits.split(",")
    assert submit_description(spec)["request_cpus"] == str(cores)
    assert JobSpec("x", tmp_path, tmp_path, tmp_path).cores == 1  # the default: one, as before
