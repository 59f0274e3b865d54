"""What a 1-event file's job costs beyond its file: its own process against the node worker.

Issue 22 target: a 1-event file's job costs <= 0.2 s beyond its event's cost.  Both ways of
running a processing job's ``farmtools reco`` on the same one-event compressed 3x1x1 file,
alternating, in the same run (:func:`farmtools.challenge.recocost.run_reco`):

* **baseline, the job's own process**: ``python -m farmtools reco`` (imports, numba's first
  calls, uproot's first write, then the file);
* **through the node worker**: the light client a job runs with
  ``processing.reco_worker_socket`` (``python -m farmtools.job.recoclient``), handing the file
  to a warmed-up ``farmtools reco-worker`` started here; its CPU is the client's and the
  worker child's (``rusage`` from ``wait4``).

The event's cost is what the job's ``--status`` line says the file took inside a warmed-up
process (CPU from opening the raw file to the closed ROOT output, least over the worker's
rounds); a job's CPU beyond it is its start-up tax.  CPU times (user + system) are compared, the least of the rounds for each (a
short job's CPU varies by 2 x on a shared machine), and wall times are printed beside them.
Then where the own process's start-up goes: the CPU of importing the command line, the
reconstruction (numba) and uproot, each in a fresh interpreter.

    .venv/bin/python benchmarks/bench_jobstart.py [--rounds 5] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from farmtools.challenge import recocost

TARGET_S = 0.2

IMPORTS = {
    "python + the farmtools command line (typer, every stage's CLI)": "import farmtools.cli",
    "+ the reconstruction (numpy, numba, kernels)": "import farmtools.cli, farmtools.reco.driver",
    "+ uproot, awkward": "import farmtools.cli, farmtools.reco.driver, uproot",
}


def import_cpu(statement: str) -> float:
    """CPU seconds of a fresh interpreter running ``statement`` (least of three)."""
    best = float("inf")
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", statement])
        _pid, _status, usage = os.wait4(proc.pid, 0)
        best = min(best, usage.ru_utime + usage.ru_stime)
    return best


def one_event_file(directory: Path) -> Path:
    from farmtools.emulator.daq import RunPlan, emulate_run
    from farmtools.emulator.settings import EmulatorSettings

    path = directory / "warm" / "run335003-seq0.dat"  # recocost.full_files' one-event file
    if not path.exists():
        plan = RunPlan(run=335_003, events_per_file=1, compress=True)
        (info,) = emulate_run(path.parent, EmulatorSettings(seed=335_003), plan)
        path = info.path
    return path


def describe(name: str, runs: list[recocost.JobRun], event_s: float) -> recocost.JobRun:
    best = min(runs, key=lambda r: r.cpu_s)
    print(
        f"{name}: job cpu {best.cpu_s:.3f} s (least of {len(runs)}; median "
        f"{statistics.median(r.cpu_s for r in runs):.3f}), the file inside it "
        f"{best.files_cpu_s:.3f} s, beyond the event {best.cpu_s - event_s:.3f} s; wall least "
        f"{min(r.wall_s for r in runs):.2f} s, median {statistics.median(r.wall_s for r in runs):.2f}"
    )
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()) / "farmtools-bench-reco"
    )
    args = ap.parse_args()
    raw = one_event_file(args.dir)
    print(
        f"bench_jobstart: a 1-event compressed 3x1x1 job, {args.rounds} rounds each way, "
        f"alternating; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory(prefix="bench-jobstart-") as tmp:
        work = Path(tmp)
        recocost.run_reco([raw], work / "warm")  # numba's cache and the page cache
        own: list[recocost.JobRun] = []
        via: list[recocost.JobRun] = []
        with recocost.node_worker(work / "reco.sock", warm=raw) as sock:
            for _ in range(args.rounds):
                own.append(recocost.run_reco([raw], work / "own"))
                via.append(recocost.run_reco([raw], work / "via", worker=sock))
        same = recocost.same_output(
            work / "own" / f"0-{raw.stem}.root", work / "via" / f"0-{raw.stem}.root"
        )
    # the event's cost: the file's CPU in a warmed-up process (in its own process the file's
    # figure also holds numba's first calls, which the start-up is made of)
    event_s = min(r.files_cpu_s for r in via)
    print(f"the event's cost (the file in a warmed-up process, least): {event_s:.3f} s cpu")
    a = describe("own process (baseline)", own, event_s)
    b = describe("node worker          ", via, event_s)
    over_a, over_b = a.cpu_s - event_s, b.cpu_s - event_s
    print(
        f"start-up tax: {over_a:.3f} s -> {over_b:.3f} s per job (x{over_a / max(over_b, 1e-6):.0f}"
        f" less); job cpu x{a.cpu_s / b.cpu_s:.1f} less; outputs "
        f"{'identical' if same else 'DIFFERENT'}; target <= {TARGET_S} s beyond the event: "
        f"{'met' if over_b <= TARGET_S else 'MISSED'}"
    )
    print("where the own process's start-up goes (CPU of imports in a fresh interpreter):")
    previous = import_cpu("pass")
    print(f"  python alone {previous:.3f} s")
    for what, statement in IMPORTS.items():
        cpu = import_cpu(statement)
        print(f"  {what}: {cpu:.3f} s (+{cpu - previous:.3f})")
        previous = cpu
    print(
        f"  the rest of the job's {over_a:.3f} s beyond its event: numba's first calls (loading "
        "the cached kernels, its CPU target), uproot's first write"
    )


if __name__ == "__main__":
    main()
