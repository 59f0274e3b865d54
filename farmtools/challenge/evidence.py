"""What the report needs, read from the farm after a challenge: stories, jobs, outputs, checks.

Each function reads one kind of evidence and returns plain data for
:func:`farmtools.challenge.report.build_report`:

* :func:`stories` - the story of every file of the challenge (bookkeeping);
* :func:`jobs_summary` - successful jobs per worker node and failures by class (jobs table,
  stories);
* :func:`expected_workers` - the worker nodes the batch system has (the local host, or the
  nodes of the Slurm partition), for the seed's rule that every worker ran at least one job;
* :func:`root_outputs` - every reconstruction output opened with uproot, entries counted per
  tree, the ``events`` tree checked against the events the emulator wrote;
* :func:`integrity` - lost (not in the database, or not on the storage), duplicated (reconstructed
  or published twice), corrupt (the stored bytes' adler32 differs from the DAQ file's);
* :func:`measured` - the medians the simulator is calibrated with.

Nothing here changes the farm.  Imports the bookkeeping, processing's job store, storage and
uproot (lazily).
"""

from __future__ import annotations

import re
import shutil
import socket
import statistics
import subprocess
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from farmtools.bookkeeping import Bookkeeping, Event, FileRecord
from farmtools.bookkeeping.db import StoryEvent
from farmtools.config import FarmConfig
from farmtools.rawdata.naming import parse_raw_name
from farmtools.storage.checksum import adler32_file, adler32_hex


def stories(bk: Bookkeeping, names: Iterable[str]) -> dict[str, list[StoryEvent]]:
    """The story of each name (empty list for a name the database does not know)."""
    return {n: bk.story(n) for n in names}


def records(bk: Bookkeeping, names: Iterable[str]) -> list[FileRecord]:
    """The bookkeeping rows of the names it knows."""
    out = []
    for n in names:
        rec = bk.get(n)
        if rec is not None:
            out.append(rec)
    return out


def jobs_summary(bk: Bookkeeping, names: Iterable[str]) -> dict[str, Any]:
    """Jobs per worker (successful ones), failures by class, and every job's key figures."""
    from farmtools.processing.jobs import JobStore

    store = JobStore(bk)
    per_worker: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    done_per_file: Counter[str] = Counter()
    jobs: list[dict[str, Any]] = []
    for name in names:
        for j in store.of_file(name):
            jobs.append(
                {
                    "id": j.id,
                    "file": j.file,
                    "try": j.try_number,
                    "state": j.state,
                    "node": j.node,
                    "walltime_s": j.walltime_used_s,
                    "cpu_s": j.cpu_s,
                    "failure": j.failure,
                    "output": j.output,
                    **reco_timing(j.stdout),
                }
            )
            if j.state == "done":
                per_worker[j.node or "?"] += 1
                done_per_file[j.file] += 1
            elif j.failure:
                failures[f"job:{j.failure}"] += 1
    return {
        "jobs_per_worker": dict(per_worker),
        "job_failures": dict(failures),
        "done_per_file": dict(done_per_file),
        "jobs": jobs,
    }


def expected_workers(cfg: FarmConfig) -> dict[str, Any]:
    """The worker nodes jobs could run on: ``nodes`` (None when unknown) and their ``source``.

    The names are those the jobs table records as a job's node, so the two can be compared:
    the local backend's supervisor records ``socket.gethostname()`` (one worker, its
    ``batch.slots`` running side by side); Slurm's accounting records the node names that
    ``sinfo`` lists for the partition ``batch.queue``.  TORQUE and HTCondor are not looked up
    (their node lists are not reachable here): the rule is then reported as unknown.
    """
    backend = cfg.batch.backend
    if backend == "local":
        return {
            "nodes": [socket.gethostname()],
            "source": f"local batch: this host, {cfg.batch.slots} slots",
        }
    if backend == "slurm":
        return _slurm_nodes(cfg.batch.queue)
    return {"nodes": None, "source": f"{backend}: the node list is not looked up"}


def _slurm_nodes(partition: str) -> dict[str, Any]:
    """Nodes of a Slurm partition, one name per line of ``sinfo -N`` (the env's SLURM_CONF)."""
    if shutil.which("sinfo") is None:
        return {"nodes": None, "source": "slurm: no sinfo command"}
    argv = ["sinfo", "-h", "-N", "-p", partition, "-o", "%N"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"nodes": None, "source": f"slurm: {' '.join(argv)} failed: {exc}"}
    if done.returncode != 0:
        why = done.stderr.strip() or f"exit {done.returncode}"
        return {"nodes": None, "source": f"slurm: {' '.join(argv)}: {why}"}
    nodes = sorted({line.strip() for line in done.stdout.splitlines() if line.strip()})
    if not nodes:
        return {"nodes": None, "source": f"slurm: partition {partition!r} lists no node"}
    return {"nodes": nodes, "source": f"slurm: sinfo, partition {partition}"}


#: The line ``farmtools reco`` prints at the end: "<raw>: 10 events, ... in 3.1 s (...".
_RECO_LINE = re.compile(r": (\d+) events, .* in ([0-9.]+) s \(")


def reco_timing(stdout: str | None) -> dict[str, float]:
    """Events and seconds the reconstruction itself reported in a job's stdout (else empty)."""
    if not stdout:
        return {}
    try:
        text = Path(stdout).read_text(errors="replace")
    except OSError:
        return {}
    found = _RECO_LINE.findall(text)
    if not found:
        return {}
    events, seconds = found[-1]
    return {"reco_events": float(events), "reco_s": float(seconds)}


def story_failures(story_map: Mapping[str, Sequence[StoryEvent]]) -> dict[str, int]:
    """Failures the stories record that the jobs table does not, by class.

    ``ingest:<kind>`` for ingest errors and quarantines, ``processing:<failure>`` for errors the
    manager recorded outside a job's end (batch system unreachable...), ``<stage>:failed`` for
    files another stage parked (analysis).  Job failures come from the jobs table instead, so
    they are not counted twice.
    """
    c: Counter[str] = Counter()
    for story in story_map.values():
        for ev in story:
            d = ev.details or {}
            if ev.event in (Event.ERROR, Event.QUARANTINED) and d.get("kind"):
                suffix = " (quarantined)" if ev.event == Event.QUARANTINED else ""
                c[f"ingest:{d['kind']}{suffix}"] += 1
            elif ev.event == Event.ERROR and d.get("failure"):
                c[f"processing:{d['failure']}"] += 1
            elif ev.event == Event.FAILED and d.get("stage"):
                c[f"{d['stage']}:failed"] += 1
    return dict(c)


def root_outputs(
    jobs: Sequence[Mapping[str, Any]], expected_events: Mapping[str, int]
) -> list[dict[str, Any]]:
    """Open the output of every successful job with uproot and count the entries of each tree."""
    from farmtools.storage.location import open_root

    out = []
    for j in jobs:
        if j["state"] != "done" or not j.get("output"):
            continue
        location = str(j["output"])  # a path, or a root:// URL with XRootD storage
        item: dict[str, Any] = {"file": j["file"], "output": location, "ok": False}
        try:
            with open_root(location) as f:
                trees = {
                    k.split(";")[0]: int(f[k].num_entries)
                    for k, cls in f.classnames().items()
                    if cls == "TTree"
                }
            item["trees"] = trees
            item["entries"] = trees.get("events", 0)
            want = expected_events.get(j["file"])
            item["expected_events"] = want
            item["ok"] = want is None or item["entries"] == want
            if not item["ok"]:
                item["error"] = f"events tree has {item['entries']} entries, raw file had {want}"
        except Exception as exc:
            item["error"] = f"{type(exc).__name__}: {exc}"
        out.append(item)
    return out


def integrity(
    cfg: FarmConfig,
    good: Sequence[str],
    sources: Mapping[str, Path],
    recs: Sequence[FileRecord],
    done_per_file: Mapping[str, int],
    outputs: Sequence[Mapping[str, Any]],
    verify_bytes: bool = True,
) -> dict[str, Any]:
    """Lost, duplicated and corrupt files among the good ones; see the module docstring."""
    from farmtools.storage import storage_from_config

    storage = storage_from_config(cfg)
    by_name = {r.name: r for r in recs}
    lost: list[str] = []
    duplicated: list[str] = []
    corrupt: list[str] = []
    notes: dict[str, str] = {}
    checked = 0
    for name in good:
        rec = by_name.get(name)
        raw = parse_raw_name(name)
        if rec is None or raw is None:
            lost.append(name)
            notes[name] = "not in the database"
            continue
        if done_per_file.get(name, 0) > 1:
            duplicated.append(name)
            notes[name] = f"reconstructed {done_per_file[name]} times"
        if rec.adler32 is None:
            continue  # never stored: reported as incomplete, not as corrupt
        rel = f"{raw.run_dir}/{name}"
        try:
            st = storage.stat(rel)
        except Exception as exc:
            notes[name] = f"storage stat failed: {exc}"
            lost.append(name)
            continue
        if st is None:
            lost.append(name)
            notes[name] = f"recorded as stored ({rec.adler32}) but absent from {storage.url(rel)}"
            continue
        if not verify_bytes:
            continue
        stored = storage.checksum(rel)
        src = sources.get(name)
        source_sum = adler32_hex(adler32_file(src)) if src is not None and src.exists() else None
        checked += 1
        stored_hex = adler32_hex(stored) if stored is not None else None
        if stored_hex != rec.adler32 or (source_sum is not None and source_sum != rec.adler32):
            corrupt.append(name)
            notes[name] = (
                f"adler32 source {source_sum}, database {rec.adler32}, storage {stored_hex}"
            )
    for o in outputs:
        if not o.get("ok") and o["file"] in good and o["file"] not in corrupt:
            corrupt.append(o["file"])
            notes[o["file"]] = f"ROOT output: {o.get('error')}"
    return {
        "lost": sorted(set(lost)),
        "duplicated": sorted(set(duplicated)),
        "corrupt": sorted(set(corrupt)),
        "checked_bytes_of": checked,
        "notes": notes,
    }


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _first(story: Sequence[StoryEvent], *names: str) -> datetime | None:
    for ev in story:
        if ev.event in names:
            return ev.time
    return None


def measured(
    story_map: Mapping[str, Sequence[StoryEvent]],
    good: Sequence[str],
    recs: Sequence[FileRecord],
    *,
    jobs: Sequence[Mapping[str, Any]] = (),
    files: int,
    interval_s: float,
    events_per_file: int,
    workers: int,
    group_size: int,
) -> dict[str, Any]:
    """Medians of each step, for :func:`farmtools.challenge.simulate.calibrate`.

    ``copy_median_s`` is detected -> stored (the model's transfer step includes the checks and
    the claim); ``start_delay_median_s`` and ``job_run_median_s`` come from the story's
    submitted/started/ended, as the report's latencies do; ``analysis_median_s`` is the time from
    the last ``ended`` of an analysis group to its ``analysed``; ``reco_s_per_event_median``
    is what ``farmtools reco`` reported in the jobs' stdout, and ``job_startup_s`` the rest of
    the job's run time (interpreter, imports, compiled kernels loading).
    """
    size_by = {r.name: r.size for r in recs if r.size}

    def diffs(a: tuple[str, ...], b: tuple[str, ...]) -> list[float]:
        out = []
        for name in good:
            st = story_map.get(name, [])
            ta, tb = _first(st, *a), _first(st, *b)
            if ta is not None and tb is not None:
                out.append((tb - ta).total_seconds())
        return out

    stored = (Event.VERIFIED, Event.ALREADY_STORED)
    groups: dict[str, list[datetime]] = {}
    analysed_at: dict[str, datetime] = {}
    for name in good:
        st = story_map.get(name, [])
        for ev in st:
            if ev.event == Event.ANALYSED:
                key = str(
                    (ev.details or {}).get("group") or (ev.details or {}).get("summary") or ev.time
                )
                ended = _first(st, Event.ENDED)
                if ended is not None:
                    groups.setdefault(key, []).append(ended)
                    analysed_at[key] = ev.time
                break
    analysis = [(analysed_at[k] - max(v)).total_seconds() for k, v in groups.items()]
    sizes = [float(s) for n, s in size_by.items() if n in set(good) and s]
    per_event = [
        j["reco_s"] / j["reco_events"]
        for j in jobs
        if j.get("state") == "done" and j.get("reco_events")
    ]
    job_run = _median(diffs((Event.STARTED,), (Event.ENDED,)))
    reco_per_event = _median(per_event)
    startup = (
        max(0.0, job_run - reco_per_event * events_per_file)
        if job_run is not None and reco_per_event is not None
        else None
    )
    return {
        "files": files,
        "interval_s": interval_s,
        "events_per_file": events_per_file,
        "workers": workers,
        "group_size": group_size,
        "detect_delay_median_s": _median(diffs((Event.WRITTEN,), (Event.DETECTED,))),
        "copy_median_s": _median(diffs((Event.DETECTED,), stored)),
        "file_bytes_median": _median(sizes),
        "submit_delay_median_s": _median(diffs(stored, (Event.SUBMITTED,))),
        "start_delay_median_s": _median(diffs((Event.SUBMITTED,), (Event.STARTED,))),
        "job_run_median_s": job_run,
        "reco_s_per_event_median": reco_per_event,
        "job_startup_s": startup,
        "analysis_median_s": _median(analysis),
    }
