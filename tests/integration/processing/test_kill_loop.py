"""The kill loop of issue 13: every stored file reconstructed exactly once while the daemons die.

``farmtools ingest watch`` and ``farmtools process run`` run as real processes and are SIGKILLed
at random while ~100 tiny raw files arrive in the DAQ directory.  Some manager incarnations
are killed deterministically inside the submission window (``FARMTOOLS_FAULT=submit-window:
kill``: the job is in the local pool, its batch id not yet recorded); the others pause there
for a moment (``submit-window:<s>``), so that a random kill often lands in it too.

The job program is a stand-in for ``farmtools reco`` (``processing.farmtools``): it writes a
small output to the target it is given and appends to a ledger when it starts and when it has
written its output completely.  The end state is checked from what is on disk, independently of
farmtools' own bookkeeping: one output per file, no partial output left, the ledger shows each
file's job ran to completion exactly once; then the bookkeeping must agree (no failed file).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

from farmtools.bookkeeping import Bookkeeping, FileState
from farmtools.faults import FAULT_ENV
from tests.eventually import NeverHappened, eventually
from tests.integration.ingest.conftest import write_raw
from tests.integration.processing.daemon import FARMTOOLS, write_farm
from tests.processing_farm import state_of

FILES = 100
#: manager incarnations killed (every third one by the fault hook inside the window)
INCARNATIONS = 9
RUN = 77
#: the fake reconstruction: argv is ``reco INPUT -o TARGET`` (see processing.script.job_command)
FAKE_RECO = """#!/bin/bash
name=$(basename -- "$2")
echo "start $name $$" >> {ledger}
[ -s "$2" ] || {{ echo "no input $2" >&2; exit 66; }}
sleep 0.0$((RANDOM % 10))
printf 'reco of %s\\n' "$name" > "$4"
echo "done $name $$" >> {ledger}
"""


class _Proc:
    """One incarnation after another of a ``farmtools`` daemon; SIGKILL or SIGTERM by its pid."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.argv = argv
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self, env: dict[str, str] | None = None) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.kills += 1
        if self.proc is not None:
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def test_every_file_is_reconstructed_once_while_the_daemons_are_killed(tmp_path: Path) -> None:
    rng = random.Random(13)
    ledger = tmp_path / "ledger.txt"
    fake = tmp_path / "fake-reco"
    fake.write_text(FAKE_RECO.format(ledger=ledger))
    fake.chmod(0o755)
    config, cfg = write_farm(
        tmp_path / "farm",
        {
            "batch.slots": 4,
            "daq.watch_dir": "daq",
            "ingest.settle_s": 0.0,
            "processing.program": "reco",
            "processing.farmtools": str(fake),
            "processing.rescan_s": 1.0,
            "processing.max_tries": 3,
            "analysis.auto": False,
        },
    )
    daq = cfg.path(cfg.daq.watch_dir)
    daq.mkdir(parents=True)
    staging = tmp_path / "staging"
    staging.mkdir()
    watcher = _Proc([FARMTOOLS, "ingest", "watch", "--config", str(config)], tmp_path / "w.log")
    manager = _Proc([FARMTOOLS, "process", "run", "--config", str(config)], tmp_path / "m.log")
    names = [f"run{RUN}-seq{seq}.dat" for seq in range(FILES)]

    def drop() -> None:  # the DAQ: a file every 0.2 s, written elsewhere and renamed in
        for name in names:
            os.rename(write_raw(staging / name, RUN), daq / name)
            time.sleep(0.2)

    pool_jobs = cfg.path(cfg.batch.local_dir) / "jobs"

    def count(directory: Path) -> int:
        return len(os.listdir(directory)) if directory.is_dir() else 0

    def until_submitted(jobs: int, timeout: float) -> None:
        # A soft wait on purpose: the kill comes whether or not this manager got that far (one
        # that is slow to start is killed as it starts, which is a case worth having too).
        with contextlib.suppress(NeverHappened):
            eventually(lambda: count(pool_jobs), timeout, "pool jobs", until=lambda n: n >= jobs)

    dropper = threading.Thread(target=drop, name="daq", daemon=True)
    window_kills = 0
    t0 = time.monotonic()
    try:
        dropper.start()
        # Kills follow progress, not the clock: a daemon starts in seconds on a loaded machine,
        # and one killed before it did anything tests nothing.
        for incarnation in range(1, INCARNATIONS + 1):
            if count(pool_jobs) >= FILES:
                break
            if not watcher.alive():
                watcher.start()
            if incarnation % 3 == 0:  # dies by itself at its first submission
                manager.start({FAULT_ENV: "submit-window:kill"})
                assert manager.proc is not None
                with contextlib.suppress(subprocess.TimeoutExpired):
                    manager.proc.wait(30)
                if manager.proc.returncode == -signal.SIGKILL:
                    window_kills += 1
            else:  # killed after a few submissions, often inside the window it pauses in
                manager.start({FAULT_ENV: "submit-window:0.05"})
                target = min(FILES, count(pool_jobs) + rng.randint(1, 8))
                until_submitted(target, 30)
                time.sleep(rng.uniform(0.0, 0.1))
            manager.kill()
            if rng.random() < 0.5:
                watcher.kill()
        loop_s = time.monotonic() - t0
        # the last incarnations live: everything must end reconstructed
        if not watcher.alive():
            watcher.start()
        manager.start()
        bk = Bookkeeping.from_config(cfg)

        def states() -> Counter[FileState | None]:
            now = Counter(r.state if (r := bk.get(n)) else None for n in names)
            assert FileState.FAILED not in now, now
            assert manager.alive() and watcher.alive(), (tmp_path / "m.log").read_text()[-3000:]
            return now

        eventually(
            states,
            120,
            "every file reconstructed",
            until=lambda now: set(now) == {FileState.RECONSTRUCTED},
            interval=0.2,
        )
        time.sleep(1.0)  # a few more passes: nothing may run a second time
    finally:
        manager.stop()
        watcher.stop()
    duration = time.monotonic() - t0

    # -- the end state from the disk, independent of the bookkeeping --------------------------
    done = Counter(
        line.split()[1] for line in ledger.read_text().splitlines() if line[:4] == "done"
    )
    duplicates = {n: c for n, c in done.items() if c > 1}
    assert duplicates == {}, f"jobs that ran to completion twice: {duplicates}"
    assert sorted(done) == sorted(names)  # every file's job ran to its end once
    out_dir = cfg.path(cfg.storage.output) / f"run{RUN}"
    outputs = sorted(p.name for p in out_dir.iterdir())
    assert outputs == sorted(f"recotask_run{RUN}-seq{seq}.root" for seq in range(FILES))
    for seq in range(FILES):  # one whole output each, from its own file
        text = (out_dir / f"recotask_run{RUN}-seq{seq}.root").read_text()
        assert text == f"reco of run{RUN}-seq{seq}.dat\n"
    stored = sorted(p.name for p in (cfg.path(cfg.storage.input) / f"run{RUN}").iterdir())
    assert stored == sorted(names)
    # -- and the bookkeeping agrees -----------------------------------------------------------
    assert {state_of(bk, n) for n in names} == {FileState.RECONSTRUCTED}
    kills = (manager.kills, window_kills, watcher.kills)
    assert kills[0] >= 4 and kills[1] >= 2 and kills[2] >= 2, f"kills {kills} in {loop_s:.0f} s"
    print(
        f"kill loop: {FILES} files, manager killed {manager.kills} times at random and "
        f"{window_kills} times inside the submission window, watcher killed {watcher.kills} "
        f"times, duplicates 0; {loop_s:.0f} s of kills, {duration:.0f} s in all"
    )
    bk.close()
