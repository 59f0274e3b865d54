"""Job scripts (evil names stay data), the read-check program, failure rules, the seed job log."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from farmtools.batch.base import Ending, JobAccounting
from farmtools.config import FarmConfig
from farmtools.job.exitcodes import EX_DATAERR, EX_NOINPUT
from farmtools.job.recoclient import read_usage
from farmtools.processing.failures import Failure, classify, decide
from farmtools.processing.joblog import format_job_log
from farmtools.processing.polling import with_worker_usage
from farmtools.processing.script import JobPaths, job_command, render_job_script
from farmtools.rawdata.naming import RawName
from tests.processing_farm import make_cfg, write_raw

EVIL = [
    "$(touch PWNED)",
    "`touch PWNED`",
    "a'b\"c; touch PWNED #",
    "spaces  and\ttabs",
    "new\nline; touch PWNED",
    "-rf --",
]


@pytest.mark.parametrize("evil", EVIL)
@pytest.mark.parametrize("backend", ["local", "slurm", "torque"])
def test_evil_paths_are_data_never_shell(tmp_path: Path, evil: str, backend: str) -> None:
    home = tmp_path / evil / "home"
    cfg = make_cfg(home, batch={"backend": backend}, storage={"output": f"out {evil}"})
    raw = RawName(5, 2)
    storage = tmp_path / f"storage {evil}" / "run5" / raw.filename
    write_raw(storage, 5)
    paths = JobPaths.of(cfg, raw, 1)
    text = render_job_script(
        cfg,
        raw,
        str(storage),
        paths,
        backend=backend,
        try_number=1,
        memory_mb=100,
        walltime_s=60,
        generated=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert text.startswith("#!/bin/bash\n")
    paths.script.parent.mkdir(parents=True)
    paths.status_file.parent.mkdir(parents=True)
    paths.script.write_text(text)
    proc = subprocess.run(
        ["bash", str(paths.script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{storage}: run 5, 3 events" in proc.stdout  # the program read the evil path
    assert paths.status_file.read_text() == "0\n"
    assert not list(tmp_path.rglob("PWNED")), "a file name ran as shell"


def _backend_script(tmp_path: Path, backend: str, **processing: object) -> list[str]:
    """The lines of a first try's script of run 1 on ``backend`` (2048 MB, 1 h 30)."""
    raw = RawName(1, 0)
    cfg = make_cfg(tmp_path, batch={"backend": backend}, processing=processing)
    return render_job_script(
        cfg,
        raw,
        "/s/run1-seq0.dat",
        JobPaths.of(cfg, raw, 1),
        backend=backend,
        try_number=1,
        memory_mb=2048,
        walltime_s=5400,
        generated=datetime.now(UTC),
    ).splitlines()


def test_headers_per_backend(tmp_path: Path) -> None:
    for backend, header in (
        ("slurm", "#SBATCH --job-name=reco_run1-seq0"),
        ("torque", "#PBS -N reco_run1-seq0"),
    ):
        lines = _backend_script(tmp_path, backend)
        assert header in lines
        text = "\n".join(lines)
        assert ("01:30:00" in text) and ("2048" in text)


def test_the_cores_asked_for_are_in_the_headers_and_the_job_s_environment(
    tmp_path: Path,
) -> None:
    for cores in (1, 3):
        texts = {b: _backend_script(tmp_path, b, cores=cores) for b in ("slurm", "torque", "local")}
        assert f"#SBATCH --cpus-per-task={cores}" in texts["slurm"]
        assert f"#PBS -l walltime=01:30:00,mem=2048mb,nodes=1:ppn={cores}" in texts["torque"]
        for lines in texts.values():
            # one core: nothing exported, the job runs as before (the local pool's slot decides)
            assert ("export FARMTOOLS_THREADS=3" in lines) == (cores == 3)


def _local_script(cfg: FarmConfig, raw: RawName, input_path: str, paths: JobPaths) -> str:
    """The script of a first try on the local backend (100 MB, 60 s)."""
    return render_job_script(
        cfg,
        raw,
        input_path,
        paths,
        backend="local",
        try_number=1,
        memory_mb=100,
        walltime_s=60,
        generated=datetime.now(UTC),
    )


def test_reco_output_path_and_partial_output(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, processing={"program": "reco"})
    paths = JobPaths.of(cfg, RawName(1014, 2), 7)
    assert paths.output == str(tmp_path / "storage/output/run1014/recotask_run1014-seq2.root")
    assert paths.script == tmp_path / "processing/scripts/run1014/reco_run1014-seq2.7.sh"
    assert paths.job_log.parent == tmp_path / "all_logs/batch/run1014"
    text = _local_script(cfg, RawName(1014, 2), "/s/x.dat", paths)
    assert 'reco /s/x.dat -o "$partial"' in text  # written under a partial name, then mv
    assert f'partial={paths.partial}".$(hostname).$$"' in text  # this run's own
    assert 'mv -f -- "$partial" "$output"' in text


def test_two_runs_of_one_job_script_never_clobber_each_others_output(tmp_path: Path) -> None:
    # A manager killed between submitting and recording used to submit the job again: two runs
    # of one script shared one partial name, and the second one's ``rm -f "$partial"`` removed
    # the first one's half-written output (or one published the other's).  The fake program
    # writes its pid to its target, waits until the other run has started (and so done its
    # clean-up), then checks its own bytes are still there.
    fake = tmp_path / "fake-farmtools"
    fake.write_text(
        "#!/bin/bash\n"  # argv: reco INPUT -o TARGET
        'echo "$$" > "$4"; touch "$RUNS/started.$RUN"\n'
        'for _ in $(seq 300); do [ "$(ls "$RUNS" | wc -l)" -ge 2 ] && break; sleep 0.02; done\n'
        '[ "$(cat "$4" 2>/dev/null)" = "$$" ] || { echo "lost my partial" >&2; exit 1; }\n'
    )
    fake.chmod(0o755)
    cfg = make_cfg(tmp_path, processing={"program": "reco", "farmtools": str(fake)})
    paths = JobPaths.of(cfg, RawName(3, 1), 9)
    text = _local_script(cfg, RawName(3, 1), "/s/in.dat", paths)
    script = tmp_path / "job.sh"
    script.write_text(text)
    paths.status_file.parent.mkdir(parents=True)
    runs = tmp_path / "runs"
    runs.mkdir()
    env = {"PATH": "/usr/bin:/bin", "RUNS": str(runs)}
    first = subprocess.Popen(["/bin/bash", script], env={**env, "RUN": "1"})
    for _ in range(500):  # the second run starts once the first one's partial exists
        if (runs / "started.1").exists():
            break
        first.poll()
        subprocess.run(["sleep", "0.02"])
    second = subprocess.Popen(["/bin/bash", script], env={**env, "RUN": "2"})
    assert (first.wait(60), second.wait(60)) == (0, 0)
    out = Path(paths.output)
    assert out.read_text().strip().isdigit()  # one run's whole output
    assert not list(out.parent.glob(out.name + ".part*"))  # each run published its own


def test_with_a_node_worker_socket_the_job_runs_the_light_client(tmp_path: Path) -> None:
    # no worker listens at the socket: the client hands the same reco arguments to the
    # in-process program (here a fake farmtools that writes them to its target), and the
    # script publishes the output as before
    fake = tmp_path / "fake-farmtools"
    fake.write_text('#!/bin/bash\necho "$@" > "$4"\n')  # argv: reco INPUT -o TARGET
    fake.chmod(0o755)
    sock = tmp_path / "run/reco.sock"
    cfg = make_cfg(
        tmp_path,
        processing={"program": "reco", "farmtools": str(fake), "reco_worker_socket": str(sock)},
    )
    paths = JobPaths.of(cfg, RawName(3, 1), 9)
    text = _local_script(cfg, RawName(3, 1), "/s/in.dat", paths)
    assert f"-m farmtools.job.recoclient --socket {sock}" in text
    assert f"--usage {paths.status_file}.worker.json" in text
    script = tmp_path / "job.sh"
    script.write_text(text)
    paths.status_file.parent.mkdir(parents=True)
    done = subprocess.run(["/bin/bash", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "no reconstruction worker at" in done.stdout
    assert Path(paths.output).read_text().startswith("reco /s/in.dat -o ")
    assert read_usage(paths.status_file) is None  # the job's accounting is the batch system's


def test_the_worker_s_figures_are_added_to_the_job_s_accounting() -> None:
    acc = JobAccounting(Ending.COMPLETED, exit_code=0, cpu_s=0.05, max_rss_kb=12_000)
    assert with_worker_usage(acc, None) is acc
    usage = {"exit": 0, "cpu_s": 1.25, "max_rss_kb": 180_000, "pid": 4}
    merged = with_worker_usage(acc, usage)
    assert merged.cpu_s == pytest.approx(1.30)
    assert merged.max_rss_kb == 180_000  # the larger: an out-of-memory stays one
    assert merged.extra["reco_worker"] == usage


def test_xrootd_output_is_a_url_that_reco_publishes(tmp_path: Path) -> None:
    """With XRootD storage the output lives on the server: reco is given its URL, no local mv."""
    cfg = make_cfg(
        tmp_path,
        processing={"program": "reco"},
        storage={
            "backend": "xrootd",
            "url": "root://storage:1094",
            "input": "/wa105/storage/input",
            "output": "/wa105/storage/output",
        },
    )
    paths = JobPaths.of(cfg, RawName(1014, 2), 7)
    url = "root://storage:1094//wa105/storage/output/run1014/recotask_run1014-seq2.root"
    assert paths.output == url and paths.partial == ""
    text = render_job_script(
        cfg,
        RawName(1014, 2),
        "root://storage:1094//wa105/storage/input/run1014/run1014-seq2.dat",
        paths,
        backend="slurm",
        try_number=1,
        memory_mb=100,
        walltime_s=60,
        generated=datetime.now(UTC),
    )
    assert f"-o {url}" in text
    assert "mv -f" not in text and "mkdir -p" not in text


def test_readcheck_exit_codes(tmp_path: Path) -> None:
    good = write_raw(tmp_path / "good.dat", 3, events=2)
    bad = write_raw(tmp_path / "bad.dat", 3, corrupt=True)
    truncated = tmp_path / "trunc.dat"
    truncated.write_bytes(good.read_bytes()[:-100])

    def run(p: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "farmtools.job.readcheck", str(p)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert run(good).returncode == 0
    r = run(bad)
    assert r.returncode == EX_DATAERR and "footer says 4 events, file holds 3" in r.stderr
    r = run(truncated)
    assert r.returncode == EX_DATAERR and "file ends inside" in r.stderr
    assert str(truncated) in r.stderr
    assert run(tmp_path / "missing.dat").returncode == EX_NOINPUT


@pytest.mark.parametrize(
    ("acc", "code", "program", "failure"),
    [
        (JobAccounting(Ending.COMPLETED, exit_code=0), 0, "check", None),
        (JobAccounting(Ending.COMPLETED, exit_code=2), 2, "check", Failure.EXIT),
        (JobAccounting(Ending.COMPLETED, exit_code=65), 65, "reco", Failure.CORRUPT_INPUT),
        (JobAccounting(Ending.COMPLETED, exit_code=1), 1, "inspect", Failure.CORRUPT_INPUT),
        (JobAccounting(Ending.COMPLETED, exit_code=1), 1, "reco", Failure.EXIT),
        (JobAccounting(Ending.SIGNALLED, signal=11), None, "reco", Failure.SIGNAL),
        (JobAccounting(Ending.OUT_OF_MEMORY), None, "reco", Failure.OUT_OF_MEMORY),
        (JobAccounting(Ending.TIMEOUT), None, "reco", Failure.WALLTIME),
        (JobAccounting(Ending.NODE_FAIL), None, "reco", Failure.NODE),
        (JobAccounting(Ending.COMPLETED), None, "reco", Failure.NODE),  # nobody knows the code
    ],
)
def test_classify(
    acc: JobAccounting, code: int | None, program: str, failure: Failure | None
) -> None:
    assert classify(acc, code, program) == failure


def test_decide() -> None:
    oom = decide(Failure.OUT_OF_MEMORY, 1, 3, 1000, 3600, 2.0, 1.5)
    assert (oom.retry, oom.memory_mb, oom.walltime_s) == (True, 2000, 3600)
    wall = decide(Failure.WALLTIME, 2, 3, 1000, 3600, 2.0, 1.5)
    assert (wall.retry, wall.memory_mb, wall.walltime_s) == (True, 1000, 5400)
    assert not decide(Failure.WALLTIME, 3, 3, 1000, 3600, 2.0, 1.5).retry  # last try
    assert not decide(Failure.CORRUPT_INPUT, 1, 3, 1000, 3600, 2.0, 2.0).retry  # deterministic
    assert decide(Failure.REFUSED, 1, 3, 1000, 3600, 2.0, 2.0).retry


def test_job_log_has_the_seed_layout() -> None:
    local = datetime(2016, 10, 25, 16, 12, 37).astimezone()
    acc = JobAccounting(
        Ending.COMPLETED,
        exit_code=0,
        submitted=local,
        started=local.replace(second=38),
        ended=local.replace(minute=17, second=51),
        cpu_s=310,
        mem_kb=108876,
        vmem_kb=342436,
        walltime_s=314,
        extra={
            "session": 4351,
            "resources_used": "cput=00:05:10,mem=108876kb,vmem=342436kb,walltime=00:05:14",
        },
    )
    text = format_job_log(
        acc,
        job_id="322.wa105cpu0003.cern.ch",
        name="reco_run1-seq0",
        user="prod",
        group="wa105-comp",
        queue="prod",
        exit_code=0,
    )
    assert text == (
        "job submitted on : 2016-10-25 16:12:37\n"
        "job started on   : 2016-10-25 16:12:38\n"
        "job ended on     : 2016-10-25 16:17:51\n"
        "exit code        : 0\n"
        "CPU              : 00:05:10\n"
        "memory(MB)       : 106.32\n"
        "max memory(MB)   : 334.41\n"
        "walltime         : 00:05:14\n"
        "Job ID           : 322.wa105cpu0003.cern.ch\n"
        "User ID          : prod\n"
        "Group ID         : wa105-comp\n"
        "Job Name         : reco_run1-seq0\n"
        "Session ID       : 4351\n"
        "Resources Used   : cput=00:05:10,mem=108876kb,vmem=342436kb,walltime=00:05:14\n"
        "Queue Name       : prod\n"
    )


@pytest.mark.parametrize(
    ("detector", "name", "extra"),
    [
        ("6x6x6:100", "12_1_a.dat", ["--detector", "6x6x6:100"]),  # the job cannot know it
        ("6x6x6", "12_1_a.dat", []),  # the name says the full 6x6x6
        ("6x6x6:100", "run12-seq1.dat", []),  # a 3x1x1 file keeps its own geometry
        ("3x1x1", "run12-seq1.dat", []),
    ],
)
def test_a_shortened_6x6x6_geometry_is_given_to_the_reco_job(
    tmp_path: Path, detector: str, name: str, extra: list[str]
) -> None:
    cfg = FarmConfig.model_validate(
        {"farm": {"home": str(tmp_path), "detector": detector}, "base_dir": tmp_path}
    )
    argv = job_command(cfg, f"/farm/storage/input/run12/{name}", "out.root.part1")
    assert argv[1:5] == ["reco", f"/farm/storage/input/run12/{name}", "-o", "out.root.part1"]
    assert argv[5:] == extra
