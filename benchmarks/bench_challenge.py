"""The farm daemons' own CPU at the seed's 10 s cadence, and the highest verified-ingest file rate.

1. **Daemon CPU** (issue 9 target: < 2 % of one core).  An embedded farm (local storage, local
   batch running ``farmtools reco``, SQLite) with its three daemons as real processes
   (``ingest watch``, ``process run``, ``monitor serve``); once they have started (imports
   done), one-event raw files arrive every 10 s (copies of one emulated file: the emulator's CPU
   is not the farm's).  Each daemon's user+system CPU over the data-taking window is read from the
   kernel (psutil), divided by the window.  Reconstruction runs in detached batch jobs and is not
   counted; the copy is inside the ingest daemon, so its measured copy seconds (story
   ``copy_ended``, wall time: an upper bound of its CPU) are subtracted.  The analyses (uproot
   reads and fits, analysis work like reconstruction) run in the manager's child process
   ``python -m farmtools.processing.analyser``: its CPU is printed on a line of its own, read
   the same way, and not in the daemons' sum.  The farm runs with the
   schema's defaults (``processing.claim_s`` 0.2 s, ``poll_s`` 1 s, ``monitor.poll_s`` 5 s), not
   the challenge's faster polling.  Baseline, same window, same machine: a seed-style cron loop
   (``find`` over the storage every 10 s in bash, its children counted) measured the same way.

2. **Verified-ingest file rate** to local storage.  Only the ingest daemon runs; N raw files
   written beforehand are moved into the DAQ directory at once (a backlog, as after a stop), and
   the rate is the number of files verified per second between the 10th and the last
   ``verified`` story event (sustained, not the start-up burst).  Baseline in the same run: plain
   ``cp`` + ``sync`` (one process each per file) of the same files to the same disk.

3. **Simulator calibration** (issue 9: predicted median latencies within 20 % of the measured
   ones).  A real challenge on the embedded default (``--calib-files`` 16 files x 10 events,
   one every 5 s, 2 workers: the farm about 60 % busy, so queues form and drain), then the
   model is calibrated on that report's ``measured`` block, replays the same run, and the
   measured and predicted medians are printed per stage with their ratio.  This is the proof
   the model is fit for sizing; the unit test that calibrates the model on its own prediction
   only shows the calibration code is consistent.

4. **Reconstruction costs for the sizing** (issue 22): the per-event cost on full-size
   335-event files (uncompressed and compressed) and the per-job cost, apart
   (:mod:`farmtools.challenge.recocost`: CPU of real ``farmtools reco`` processes), and the
   ``farmtools challenge simulate --size-6x6x6`` options that use them.  The files are
   emulated once into ``--reco-dir`` (the same as ``bench_reco.py --dir``) and kept.  The
   per-job cost is measured twice: a job in its own process, and a job handed to the node's
   reconstruction worker (``farmtools reco-worker``, how the farm runs with
   ``processing.reco_worker_socket``).  ``sizing`` measures the costs and prints the README's
   6x6x6 sizing table from them (the one command that regenerates it; the per-job cost is the
   worker's, the 6x6x6 event's cost ``--reco-s-per-event-6x6x6`` from ``bench_reco666.py``).

5. **The 6x6x6 chain model** (issue 16): ``chain666`` runs ``challenge run --detector
   6x6x6:N --preset beam`` for each ``--chain-samples`` N (100 and 400: a few minutes each on a
   loaded machine), calibrates :mod:`farmtools.challenge.sim666` on each report, replays the
   same input and prints every stage's measured and simulated latency and throughput with the
   ratio (exit 1 if one is more than 20 % off); then the per-stage costs of each run, the
   full-size costs (the chain's per-byte costs of the largest run, floored by the full-size
   benchmarks' figures; the 6x6x6 event's reconstruction from bench_reco666; the verified
   copy's CPU measured here) and the README's 6x6x6 chain sizing tables.

    .venv/bin/python benchmarks/bench_challenge.py [cpu|rate|calibrate|costs|sizing|chain666|all]
        [--cadence-files 9] [--rate-files 200] [--calib-files 16] [--reco-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from farmtools.bookkeeping import Bookkeeping
from farmtools.challenge import recocost
from farmtools.challenge.daemons import Daemon, farmtools_argv
from farmtools.challenge.run import ChallengeSettings, embedded_config, free_port
from farmtools.config import FarmConfig, load_config
from farmtools.deploy.farmtoml import render_farm_toml

#: the README's 6x6x6 farm: cores and storage bandwidth (GB/s)
SIZING_CORES = 384
SIZING_GB_S = 20.0


def _template(dir_: Path, events: int) -> Path:
    from farmtools.emulator.daq import RunPlan, emulate_run
    from farmtools.emulator.settings import EmulatorSettings

    out = emulate_run(dir_, EmulatorSettings(seed=1), RunPlan(run=999, events_per_file=events))
    return out[0].path


def _drop(template: Path, watch: Path, run: int, files: int = 1) -> None:
    """``files`` copies of the template as run ``run`` (next sequences), as fast as possible."""
    from farmtools.emulator.daq import RunPlan, copy_template

    copy_template(template, watch, RunPlan(run=run, files=files))


def _wait(bk: Bookkeeping, state_count: int, states: tuple[str, ...], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = bk.counts_by_state()
        if sum(counts.get(s, 0) for s in states) >= state_count:
            return
        time.sleep(0.2)
    raise TimeoutError(f"only {bk.counts_by_state()} after {timeout} s")


def _default_farm(home: Path) -> tuple[FarmConfig, Path]:
    """A one-machine farm with the schema's defaults (the daemons' production polling)."""
    home.mkdir(parents=True)
    path = home / "farm.toml"
    path.write_text(
        render_farm_toml(
            {"farm.home": ".", "processing.program": "reco", "monitor.port": free_port()}
        )
    )
    return load_config(path), path


class AnalysisChild:
    """The CPU of the processing daemon's analysis child(ren), sampled like a Daemon's."""

    def __init__(self, manager: Daemon) -> None:
        self.manager = manager
        self.seen: dict[int, float] = {}

    def sample(self) -> None:
        import psutil

        if manager_pid := self.manager.pid:
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(manager_pid).children():
                    with contextlib.suppress(psutil.Error):
                        if "farmtools.processing.analyser" in " ".join(child.cmdline()):
                            t = child.cpu_times()
                            self.seen[child.pid] = t.user + t.system

    @property
    def cpu_s(self) -> float:
        return sum(self.seen.values())


def daemon_cpu(work: Path, files: int, cadence_s: float = 10.0) -> None:
    cfg, path = _default_farm(work / "cadence")
    bk = Bookkeeping.from_config(cfg)
    template = _template(work / "template", 1)
    watch = cfg.path(cfg.daq.watch_dir)
    watch.mkdir(parents=True, exist_ok=True)
    logs = work / "cadence-logs"
    ft, c = farmtools_argv(), ["--config", str(path)]
    daemons = [
        Daemon("ingest", [*ft, "ingest", "watch", *c], logs),
        Daemon("processing", [*ft, "process", "run", *c], logs),
        Daemon(
            "monitor",
            [*ft, "monitor", "serve", "--port", str(cfg.monitor.port), *c],
            logs,
        ),
    ]
    cron = Daemon(
        "seed-cron",
        count_children=True,
        argv=[
            "bash",
            "-c",
            f"while sleep {cadence_s}; do find {cfg.path(cfg.storage.input)} -name '*.dat' "
            ">/dev/null; done",
        ],
        log_dir=logs,
    )
    analyses = AnalysisChild(daemons[1])
    sampled: list[Daemon | AnalysisChild] = [*daemons, cron, analyses]
    for d in [*daemons, cron]:
        d.start()
    try:
        time.sleep(8.0)  # imports and start-up are not the steady state
        for x in sampled:
            x.sample()
        cpu0 = {d.name: d.cpu_s for d in [*daemons, cron]}
        analyses0 = analyses.cpu_s
        t0 = time.monotonic()
        for seq in range(files):
            _drop(template, watch, 1)
            deadline = t0 + (seq + 1) * cadence_s
            while time.monotonic() < deadline:
                for x in sampled:
                    x.sample()
                time.sleep(0.5)
        _wait(bk, files, ("reconstructed", "analysed"), 120)
        for x in sampled:
            x.sample()
        wall = time.monotonic() - t0
        copy_s = 0.0
        for rec in bk.files(run=1):
            for ev in bk.story(rec.name):
                if ev.event == "copy_ended":
                    copy_s += float((ev.details or {}).get("seconds", 0.0))
        print(
            f"== daemons' own CPU at a {cadence_s:g} s cadence: {files} files, {wall:.1f} s window"
        )
        total = 0.0
        for d in daemons:
            used = d.cpu_s - cpu0[d.name]
            total += used
            print(f"  {d.name:<11} {used:7.3f} s CPU = {100 * used / wall:6.3f} % of one core")
        base = cron.cpu_s - cpu0[cron.name]
        print(f"  all three   {total:7.3f} s CPU = {100 * total / wall:6.3f} % of one core")
        fits = analyses.cpu_s - analyses0
        print(
            f"    analyses in the manager's child process (uproot reads + fits, analysis work, "
            f"not counted above): {fits:.3f} s CPU = {100 * fits / wall:.3f} % of one core"
        )
        ingest_cpu = daemons[0].cpu_s - cpu0["ingest"]
        copy_cpu = min(copy_s, ingest_cpu)  # wall seconds of the copies bound their CPU
        print(f"    verified copying inside ingest: {copy_s:.3f} s wall (story copy_ended)")
        print(
            f"  farmtools daemons without copying: >= {100 * (total - copy_cpu) / wall:.3f} % of one"
            f" core (target < 2 %: ratio to target {(total - copy_cpu) / wall / 0.02:.3f})"
        )
        print(
            f"  baseline seed-style cron loop: {base:.3f} s = {100 * base / wall:.3f} % "
            f"(ratio farmtools/baseline {total / base if base > 0 else float('inf'):.1f})"
        )
    finally:
        for d in [*daemons, cron]:
            d.stop()


def ingest_rate(work: Path, files: int, events: int) -> None:
    settings = ChallengeSettings(home=work / f"rate{events}", workers=1)
    cfg, path = embedded_config(settings, "check", free_port())
    bk = Bookkeeping.from_config(cfg)
    template = _template(work / f"template{events}", events)
    size = template.stat().st_size
    watch = cfg.path(cfg.daq.watch_dir)
    watch.mkdir(parents=True, exist_ok=True)
    ingest = Daemon(
        "ingest", [*farmtools_argv(), "ingest", "watch", "--config", str(path)], work / "rate-logs"
    )
    stage = watch.parent / "stage"
    _drop(template, stage, 2, files)  # written first: the DAQ's disk work is not measured
    subprocess.run(["sync"], check=True)
    ingest.start()
    try:
        time.sleep(5.0)
        for f in sorted(stage.glob("run2-seq*.dat")):
            f.rename(watch / f.name)  # all complete at once (IN_MOVED_TO): a backlog to drain
        _wait(bk, files, ("stored",), 600)
        times = sorted(
            ev.time
            for rec in bk.files(run=2)
            for ev in bk.story(rec.name)
            if ev.event == "verified"
        )
    finally:
        ingest.stop()
    first = min(10, len(times) - 2)
    span = (times[-1] - times[first]).total_seconds()
    rate = (len(times) - 1 - first) / span
    # baseline: plain cp + sync of the same source files to the same disk
    dst = work / f"cp-dst{events}"
    dst.mkdir()
    t = time.monotonic()
    for seq in range(files):
        subprocess.run(["cp", str(watch / f"run2-seq{seq}.dat"), str(dst)], check=True)
        subprocess.run(["sync", str(dst / f"run2-seq{seq}.dat")], check=True)
    cp_rate = files / (time.monotonic() - t)
    print(
        f"== verified ingest to local storage, {files} files of {events} events "
        f"({size / 1e6:.1f} MB): {rate:.1f} files/s sustained = {rate * size / 1e6:.0f} MB/s; "
        f"plain cp+sync {cp_rate:.1f} files/s; ratio ingest/cp {rate / cp_rate:.2f}"
    )
    gaps = [
        (b - a).total_seconds() for a, b in zip(times[first:], times[first + 1 :], strict=False)
    ]
    print(f"   median gap between verified files {1000 * statistics.median(gaps):.1f} ms")


def calibrate(work: Path, files: int, events: int = 10, interval_s: float = 5.0) -> bool:
    """A real challenge, then the model calibrated on its report; True when within 20 %."""
    from rich.console import Console

    from farmtools.challenge.run import run_challenge
    from farmtools.challenge.simtable import calibration_check, markdown_summary

    settings = ChallengeSettings(
        files=files,
        events=events,
        interval_s=interval_s,
        workers=2,
        home=work / "calibrate",
        progress=False,
    )
    t = time.monotonic()
    result = run_challenge(settings, Console(quiet=True))
    rep = result.report
    print(
        f"== simulator calibration on a real challenge: {files} files x {events} events every "
        f"{interval_s:g} s, 2 workers: {rep['verdict']} in {time.monotonic() - t:.0f} s "
        f"(report {result.json_path})"
    )
    m = rep["measured"]
    print(
        "   measured: detect {detect_delay_median_s:.4f} s, copy {copy_median_s:.4f} s, submit "
        "{submit_delay_median_s:.3f} s, start {start_delay_median_s:.3f} s, job "
        "{job_run_median_s:.2f} s (reco {reco_s_per_event_median:.3f} s/event + start-up "
        "{job_startup_s:.2f} s), analysis {analysis_median_s:.2f} s".format(
            **{k: (v if v is not None else float("nan")) for k, v in m.items()}
        )
    )
    check = calibration_check(rep)
    print(markdown_summary(check))
    worst = max((abs(v["ratio"] - 1) for v in check["stages"].values()), default=float("nan"))
    print(
        f"   within 20 % at every stage: {'yes' if check['within_20_percent'] else 'NO'} "
        f"(worst stage {100 * worst:.1f} % off)"
    )
    return bool(check["within_20_percent"])


def reco_costs(reco_dir: Path, work: Path, events: int = 335) -> recocost.RecoCosts:
    """Per-event (full files) and per-job reconstruction costs, and the sizing options."""
    full, full_c, one = recocost.full_files(reco_dir, events)
    costs = recocost.measure(full, full_c, one, events, work / "costs")
    worker = (
        f"; through the node's reconstruction worker {costs.per_job_worker_s:.3f} s per job"
        if costs.per_job_worker_s is not None
        else ""
    )
    print(
        f"== reconstruction costs, CPU of real `farmtools reco` jobs on one core ({events}-event"
        " files; CPU time, the figure the machine's load does not change):\n"
        f"   per event {costs.per_event_s:.4f} s uncompressed, "
        f"{costs.per_event_compressed_s:.4f} s compressed; per job {costs.per_job_s:.2f} s "
        f"before its first event in its own process{worker}; per extra file in a job given "
        f"several {costs.per_extra_file_s:.3f} s\n"
        f"   farmtools challenge simulate --size-6x6x6 {costs.simulate_args()}"
    )
    return costs


def sizing(costs: recocost.RecoCosts, per_event_6x6x6: float | None) -> None:
    """The README's 6x6x6 sizing table from these costs (the per-job cost: the node worker's)."""
    from farmtools.challenge import simulate as sim
    from farmtools.challenge.simtable import markdown_sizing

    job_s = costs.per_job_worker_s if costs.per_job_worker_s is not None else costs.per_job_s
    rows = sim.size_6x6x6(
        costs.per_event_s,
        cores=SIZING_CORES,
        bandwidth_Bps=SIZING_GB_S * 1e9,
        job_s=job_s,
        reco_s_per_event_compressed_3x1x1=costs.per_event_compressed_s,
        reco_s_per_event_6x6x6=per_event_6x6x6,
    )
    six = f" --reco-s-per-event-6x6x6 {per_event_6x6x6:g}" if per_event_6x6x6 else ""
    print(f"\n```bash\nfarmtools challenge simulate --size-6x6x6 {costs.simulate_args()}{six}\n```")
    print()
    print(
        markdown_sizing(
            rows,
            costs.per_event_s,
            SIZING_CORES,
            SIZING_GB_S,
            job_s=job_s,
            per_event_compressed_3x1x1=costs.per_event_compressed_s,
            per_event_6x6x6=per_event_6x6x6,
        )
    )


def verified_copy_cpu(work: Path, mb: int = 256) -> float:
    """CPU seconds per byte of the farm's verified copy (``LocalStorage.put``: copy, adler32,
    fsync, read back, rename), the copy ingest and transfer make, on a ``mb`` MB file (least
    of three); the file is deleted after."""
    import os

    from farmtools.storage.local import LocalStorage

    src = work / "copy-src.dat"
    block = os.urandom(1 << 20)
    with src.open("wb") as f:
        for _ in range(mb):
            f.write(block)
    store = LocalStorage(work / "copy-dst")
    best = float("inf")
    try:
        for i in range(3):
            c = time.process_time()
            store.put(src, f"copy{i}.dat")
            best = min(best, time.process_time() - c)
            (work / "copy-dst" / f"copy{i}.dat").unlink()
    finally:
        src.unlink()
    return best / (mb << 20)


def chain666(
    work: Path,
    samples: list[int],
    preset: str,
    reco_s_6x6x6: float,
    decode_s_6x6x6: float,
    job_s: float,
    predict: str | None = None,
    keep_reports: Path | None = None,
) -> bool:
    """6x6x6 challenges at each drift window, the chain model calibrated on each and compared
    with it stage by stage; with ``predict``, one more challenge of that preset at the largest
    window, predicted with the costs calibrated there (its own input); then the README's 6x6x6
    sizing from the largest one's costs."""
    import os

    from rich.console import Console

    from farmtools.challenge import sim666
    from farmtools.challenge.run666 import get_preset_666, run_challenge_666, settings_for

    ok = True
    calibrated: dict[int, tuple[sim666.ChainCosts, dict]] = {}
    runs: list[tuple[int, str, int | None]] = [(n, preset, None) for n in samples]
    if predict:
        runs.append((max(samples), predict, max(samples)))
    for n, pre, costs_of in runs:
        settings = settings_for(
            get_preset_666(pre),
            home=work / f"chain{n}-{pre}",
            detector=f"6x6x6:{n}",
            progress=False,
            monitor=False,
        )
        load0, t, c0 = os.getloadavg()[0], time.monotonic(), time.process_time()
        result = run_challenge_666(settings, Console(quiet=True))
        rep = result.report
        if keep_reports is not None:  # the work directory goes at the end
            keep_reports.mkdir(parents=True, exist_ok=True)
            shutil.copy(result.json_path, keep_reports / f"chain{n}-{pre}.json")
        given = calibrated[costs_of][0] if costs_of is not None else None
        check = sim666.compare_chain(rep, costs=given)
        ok = ok and rep["verdict"] == "PASS"
        if given is None:  # the prediction is information: the calibration must hold
            ok = ok and bool(check["within_20_percent"])
        mi = rep["chain_6x6x6"]["model_inputs"]
        how = (
            f"PREDICTED with the costs calibrated on the {preset} run above"
            if given is not None
            else "calibrated on it"
        )
        print(
            f"\n== 6x6x6 chain model {how}: --detector 6x6x6:{n} --preset {pre} "
            f"({len(mi['files'])} event files, {sum(f['events'] for f in mi['files'])} events of "
            f"{mi['event_bytes'] / 1e6:.2f} MB, {rep['settings']['workers']} workers): "
            f"{rep['verdict']} in {time.monotonic() - t:.0f} s (load {load0:.1f} -> "
            f"{os.getloadavg()[0]:.1f}; report {result.json_path})"
        )
        print(sim666.markdown_comparison(check))
        worst = max((abs(r["ratio"] - 1) for r in check["rows"]), default=float("nan"))
        print(
            f"   within 20 % at every stage: {'yes' if check['within_20_percent'] else 'NO'} "
            f"(worst {100 * worst:.1f} % off); the challenge's own process "
            f"{time.process_time() - c0:.1f} s CPU"
        )
        if given is None:
            calibrated[n] = (check["costs"], mi)
    print("\n== per-stage costs measured in the chain (wall on this loaded machine; CPU: thread)")
    print(
        "| samples | event MB | build delay (s) | ingest MB/s | reco s/event (jobs) | job "
        "start-up (s) | analysis s/group | filter CPU s/GB | format CPU s/GB (coding) | "
        "transfer CPU s/GB | final/kept bytes |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, (c, mi) in calibrated.items():
        tr = mi["final_cpu_s"].get("transfer", 0.0) / max(mi["final_bytes"], 1) * 1e9
        print(
            f"| {n} | {c.event_bytes / 1e6:.2f} | {c.build_delay_s:.2f} | {c.ingest_Bps / 1e6:.0f} "
            f"| {c.reco_s_per_event:.3f} | {c.job_startup_s:.2f} | {c.analysis_s:.2f} | "
            f"{(c.filter_cpu_s_per_B or 0) * 1e9:.2f} | {(c.format_cpu_s_per_B or 0) * 1e9:.2f} "
            f"| {tr:.2f} | {c.final_ratio:.2f} |"
        )
    top = max(calibrated)
    c, mi = calibrated[top]
    per_event_files = statistics.mean(f["events"] for f in mi["files"])
    copy = verified_copy_cpu(work)
    full = sim666.full_size_costs(
        c,
        per_event_files,
        reco_s_per_event=reco_s_6x6x6,
        decode_s_per_event=decode_s_6x6x6,
        job_s=job_s,
        copy_s_per_B=copy,
    )
    print(
        f"\n== full-size costs (10,000 samples, 115.2 MB events): building "
        f"{sim666.BUILD_GB_PER_CPU_S} GB per CPU s (bench_evb); verified copy "
        f"{1 / full.copy_s_per_B / 1e9:.2f} GB per CPU s (LocalStorage.put of 256 MB here); "
        f"classification {1 / full.filter_s_per_B / 1e9:.2f} GB per CPU s (the slower of the "
        f"chain's {1 / (c.filter_cpu_s_per_B or 1) / 1e9:.2f} and bench_final's "
        f"{sim666.CLASSIFY_GB_PER_CPU_S}); Huffman coding {1 / full.encode_s_per_B / 1e9:.3f} GB per CPU s "
        f"(the slower of the chain's {1 / (c.format_cpu_s_per_B or 1) / 1e9:.3f} and bench_final's "
        f"{sim666.FORMAT_GB_PER_CPU_S}); decoding {decode_s_6x6x6} s per event; reconstruction "
        f"{reco_s_6x6x6} s per event (bench_reco666) + {job_s} s per job; purity/gain "
        f"{full.analysis_s_per_event:.3f} s per event (the chain's {c.analysis_s:.2f} s per group "
        f"of {c.group_size} files, wall)"
    )
    print()
    print(sim666.markdown_chain_sizing(sim666.size_chain(full), SIZING_CORES, SIZING_GB_S))
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "mode",
        nargs="?",
        default="all",
        choices=("all", "cpu", "rate", "calibrate", "costs", "sizing", "chain666"),
        help="cpu: daemon CPU at the 10 s cadence; rate: verified-ingest rate; calibrate: the "
        "simulator against a real challenge; costs: reconstruction per event (full files) and "
        "per job; sizing: costs, then the README's 6x6x6 sizing table from them; chain666: "
        "6x6x6 challenges, the chain model calibrated on each and compared stage by stage, "
        "the README's 6x6x6 chain sizing; all: the first four",
    )
    ap.add_argument(
        "--reco-s-per-event-6x6x6",
        type=float,
        default=1.18,
        help="sizing: CPU s of one 6x6x6 event (bench_reco666.py; default the README's); 0: "
        "scale the 3x1x1 figure",
    )
    ap.add_argument(
        "--decode-s-per-event-6x6x6",
        type=float,
        default=0.26,  # sim666.DECODE_S_PER_EVENT_6X6X6
        help="chain666: CPU s to decode one compressed 6x6x6 event (the 3x1x1's compressed "
        "minus uncompressed per-event cost in bench_reco.py, (5.76 - 3.37 s) / 335, x36 "
        "channels x samples)",
    )
    ap.add_argument(
        "--job-s", type=float, default=0.26, help="chain666: per job (node worker; `costs`)"
    )
    ap.add_argument(
        "--chain-samples",
        type=int,
        nargs="+",
        default=[100, 400],
        help="chain666: drift windows of the challenges (6x6x6:N)",
    )
    ap.add_argument("--chain-preset", default="beam", help="chain666: the 6x6x6 preset")
    ap.add_argument(
        "--chain-reports", type=Path, help="chain666: keep the challenges' JSON reports here"
    )
    ap.add_argument(
        "--chain-predict",
        default="cosmics",
        help="chain666: a further challenge of this preset predicted with the costs calibrated "
        "at the largest window ('' : none)",
    )
    ap.add_argument(
        "--reco-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "farmtools-bench-reco",
        help="where the full-size files are emulated once and kept (costs)",
    )
    ap.add_argument("--cadence-files", type=int, default=9)
    ap.add_argument("--rate-files", type=int, default=200)
    ap.add_argument("--calib-files", type=int, default=16)
    ap.add_argument("--skip-cadence", action="store_true")
    ap.add_argument("--skip-rate", action="store_true")
    args = ap.parse_args()
    run_cpu = args.mode in ("all", "cpu") and not args.skip_cadence
    run_rate = args.mode in ("all", "rate") and not args.skip_rate
    with tempfile.TemporaryDirectory(prefix="bench-challenge-") as tmp:
        work = Path(tmp)
        if run_cpu:
            daemon_cpu(work, args.cadence_files)
        if run_rate:
            ingest_rate(work, args.rate_files, 1)
            ingest_rate(work, max(20, args.rate_files // 5), 10)
        if args.mode in ("all", "costs"):
            reco_costs(args.reco_dir, work)
        if args.mode == "sizing":
            sizing(reco_costs(args.reco_dir, work), args.reco_s_per_event_6x6x6 or None)
        if args.mode in ("all", "calibrate") and not calibrate(work, args.calib_files):
            sys.exit(1)
        if args.mode == "chain666" and not chain666(
            work,
            args.chain_samples,
            args.chain_preset,
            args.reco_s_per_event_6x6x6,
            args.decode_s_per_event_6x6x6,
            args.job_s,
            args.chain_predict or None,
            args.chain_reports,
        ):
            sys.exit(1)


if __name__ == "__main__":
    main()
