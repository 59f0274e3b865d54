"""What needs attention now: the one view of ``farmtools status`` and of the monitoring page.

Owns :func:`collect` (a :class:`ShiftStatus` from the bookkeeping and the storage), the command
that resolves each kind of alarm (:func:`resolve_command`), and the buffer forecast
(:func:`buffer_forecast`, :func:`incoming_rate`): how full the storage is and the time until it
is full at the current rate, reusable by any buffer-occupancy view.

Every query is bounded by an index (open alarms, the failed/active states, the newest files by
primary key, the run ledger of the runs that can be incomplete only), so the view costs about
the same with a year of data as with a day.
What needs a person (:attr:`ShiftStatus.attention`): an open alarm, a silent daemon, more stuck
files than ``monitor.stuck_max``, a buffer full within ``monitor.buffer_warn_h`` hours (the
monitor also raises it as the alarm ``buffer_full``, which clears by itself).  Failed
files whose alarm was acknowledged, incomplete runs and the jobs are shown, not counted: someone
took note, or they are the farm's normal work in progress.

Imports SQLAlchemy, the bookkeeping and the monitor's queries.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from farmtools.bookkeeping import schema
from farmtools.bookkeeping.heartbeat import silent
from farmtools.bookkeeping.schema import files, now
from farmtools.monitor.queries import FarmQueries, StuckFile

if TYPE_CHECKING:
    from farmtools.bookkeeping.db import AlarmRecord, Bookkeeping, HeartbeatRecord
    from farmtools.config import FarmConfig

#: Files shown per list (the counts are complete).
SHOWN = 20

#: The systemd unit of each daemon (roles/*/defaults/main.yml): what ``systemctl restart`` takes.
UNITS = {
    "ingest": "farmtools-ingest.service",
    "processing": "farmtools-processing.service",
    "monitor": "farmtools-monitor.service",
}


def daemon_unit(daemon: str) -> str:
    """The systemd unit of ``daemon`` (``evb-a`` -> ``farmtools-evb-a.service``)."""
    return UNITS.get(daemon, f"farmtools-{daemon}.service")


def resolve_command(
    source: str, kind: str, file: str | None = None, alarm_id: int = 0, message: str = ""
) -> str:
    """The command a shift runs to resolve an alarm of ``source``/``kind`` (about ``file``).

    After fixing the cause: the retry of the stage that raised it.  Alarms that describe a
    value (a low lifetime, a gain) or a state that a person judges are acknowledged; a run's
    alarm (a gap, a missing file at its close: docs/runs.md) after a look at the run.
    """
    what = file or "FILE"
    ack = f"farmtools monitor ack {alarm_id or 'ID'}"
    if source == "runs":
        found = re.search(r"\brun (\d+)", message)
        return f"farmtools run {found.group(1) if found else 'N'}, then {ack}"
    if source == "ingest":
        return f"farmtools ingest retry {what}" if file else "farmtools ingest retry --all-failed"
    if source == "processing":
        return f"farmtools jobs retry {what}"
    if source == "analysis":
        return "farmtools analyse ready"
    if source == "archive":
        return "farmtools archive create && farmtools archive transfer && farmtools archive verify"
    if source == "final":  # docs/final.md: every step skips what is done
        found = re.search(r"\brun (\d+)|\b(\d+)_\d+_[A-Za-z0-9]\.dat", message)
        run = next((g for g in found.groups() if g), "N") if found else "N"
        return f"farmtools final all {run}"
    if source == "monitor" and kind.startswith("daemon_silent:"):
        daemon, _, host = kind.split(":", 1)[1].partition("@")
        return f"ssh {host} sudo systemctl restart {daemon_unit(daemon)}"
    if source == "monitor" and kind == "buffer_full":
        return "farmtools status (storage), then farmtools archive transfer, or free the storage"
    if source == "monitor" and kind == "stuck_files":
        return "farmtools status (stuck files), then farmtools story FILE"
    return ack


@dataclass(frozen=True)
class AlarmGroup:
    """Open alarms of one source and kind: how many, the newest, and what resolves them."""

    source: str
    kind: str
    count: int
    newest: datetime
    message: str  # of the newest
    ids: list[int]
    files: list[str]
    command: str


@dataclass(frozen=True)
class DaemonBeat:
    """A daemon's heartbeat as the shift reads it."""

    daemon: str
    host: str
    pid: int
    started: datetime
    beat: datetime
    age_s: float
    stopped: datetime | None
    silent: bool
    detail: str
    command: str


@dataclass(frozen=True)
class BufferForecast:
    """How full a storage is and when it will be full at the current incoming rate.

    ``seconds_to_full`` is None when nothing comes in (or the capacity is unknown).
    """

    path: str
    total_bytes: int | None
    used_bytes: int | None
    free_bytes: int | None
    rate_bytes_s: float
    rate_window_s: float
    seconds_to_full: float | None
    #: the measured rate of change of the used bytes (what came in minus what was freed, by
    #: anyone) between the samples of a :class:`BufferSampler`; None without two samples
    change_bytes_s: float | None = None

    @property
    def used_fraction(self) -> float | None:
        if not self.total_bytes or self.used_bytes is None:
            return None
        return self.used_bytes / self.total_bytes


@dataclass
class ShiftStatus:
    """Everything ``farmtools status`` shows; :attr:`attention` lists what needs a person."""

    time: datetime
    alarms: list[AlarmGroup] = field(default_factory=list)
    failed_count: int = 0
    failed: list[StuckFile] = field(default_factory=list)
    stuck_count: int = 0
    stuck: list[StuckFile] = field(default_factory=list)
    incomplete_runs: list[dict[str, Any]] = field(default_factory=list)
    daemons: list[DaemonBeat] = field(default_factory=list)
    buffer: BufferForecast | None = None
    jobs: dict[str, int] = field(default_factory=dict)
    attention: list[str] = field(default_factory=list)

    @property
    def needs_person(self) -> bool:
        return bool(self.attention)

    def to_json(self) -> dict[str, Any]:
        """The ``status --json`` document (fields in docs/shift.md)."""
        doc = asdict(self)
        doc["needs_person"] = self.needs_person
        if self.buffer is not None:
            doc["buffer"]["used_fraction"] = self.buffer.used_fraction
        return doc


# -- the buffer ------------------------------------------------------------------------------
def disk_usage(path: Path) -> tuple[int, int, int] | None:
    """(total, used, free) bytes of the file system holding ``path`` (or its nearest existing
    parent: the storage directory may not exist before the first file); None when unknown."""
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        u = shutil.disk_usage(p)
    except OSError:
        return None
    return u.total, u.used, u.free


def buffer_forecast(
    path: str, usage: tuple[int, int, int] | None, rate_bytes_s: float, rate_window_s: float
) -> BufferForecast:
    """The forecast for a storage of ``usage`` (total, used, free) filling at ``rate_bytes_s``."""
    total, used, free = usage if usage is not None else (None, None, None)
    to_full = free / rate_bytes_s if free is not None and rate_bytes_s > 0 else None
    return BufferForecast(path, total, used, free, rate_bytes_s, rate_window_s, to_full)


class BufferSampler:
    """The used bytes of a storage sampled over time: its measured rate of change.

    A long-running process (the monitor) keeps one and samples at each pass; the rate is taken
    between the oldest sample within ``window_s`` and the newest, so one busy minute does not
    make the forecast.  Bounded: samples older than the window are dropped.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._samples: list[tuple[float, int]] = []
        self._lock = threading.Lock()  # the page and the alarm pass sample from two threads

    def add(self, t: float, used_bytes: int) -> float | None:
        """Record ``used_bytes`` at monotonic time ``t``; the rate of change (bytes/s) or None."""
        with self._lock:
            self._samples.append((t, used_bytes))
            self._samples = [s for s in self._samples if t - s[0] <= self.window_s]
            t0, u0 = self._samples[0]
        return (used_bytes - u0) / (t - t0) if t > t0 else None


def buffer_of(
    cfg: FarmConfig, queries: FarmQueries, sampler: BufferSampler | None = None
) -> BufferForecast:
    """The forecast of the farm's buffer (``storage.input``) at the current incoming rate;
    with a ``sampler``, also its measured rate of change."""
    rate, span = incoming_rate(queries, cfg.monitor.rate_window_s)
    local = cfg.storage.backend == "local"
    where = cfg.path(cfg.storage.input)
    usage = disk_usage(where) if local else None
    b = buffer_forecast(str(where) if local else cfg.storage.url, usage, rate, span)
    if sampler is not None and usage is not None:
        b = replace(b, change_bytes_s=sampler.add(time.monotonic(), usage[1]))
    return b


def buffer_breach_message(b: BufferForecast, warn_h: float) -> str | None:
    """Why the buffer needs a person: full sooner than ``warn_h`` hours (None: it does not)."""
    if b.seconds_to_full is None or b.seconds_to_full >= warn_h * 3600:
        return None
    return (
        f"storage {b.path} full in {b.seconds_to_full / 3600:.1f} h at the current rate "
        f"({b.rate_bytes_s / 1e6:.2f} MB/s in), below the {warn_h:g} h it must cover"
    )


def incoming_rate(queries: FarmQueries, window_s: float, newest: int = 5000) -> tuple[float, float]:
    """(bytes/s, seconds measured): raw data written by the DAQ over the last ``window_s``.

    Read from the ``newest`` files by primary key (bounded); when all of them lie in the window
    the rate is taken over their own span instead, so a busy farm is not under-estimated.
    """
    t = now()
    cut = t - timedelta(seconds=window_s)
    recent = select(files.c.size, files.c.daq_write_time).order_by(files.c.id.desc()).limit(newest)
    sub = recent.subquery()
    q = select(
        func.coalesce(func.sum(sub.c.size), 0), func.min(sub.c.daq_write_time), func.count()
    ).where(sub.c.daq_write_time >= cut, sub.c.size.is_not(None))
    with queries.engine.connect() as conn:
        nbytes, oldest, n = conn.execute(q).one()
    span = window_s
    if n >= newest and oldest is not None:
        span = max(1.0, (t - _aware(oldest)).total_seconds())
    return float(nbytes) / span, span


def _aware(t: datetime) -> datetime:
    from datetime import UTC

    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


# -- the parts -------------------------------------------------------------------------------
def alarm_groups(alarms: Sequence[AlarmRecord]) -> list[AlarmGroup]:
    """Open alarms grouped by (source, kind), the newest group first."""
    by: dict[tuple[str, str], list[AlarmRecord]] = {}
    for a in alarms:
        by.setdefault((a.source, a.kind), []).append(a)
    groups = []
    for (source, kind), items in by.items():
        items.sort(key=lambda a: a.id, reverse=True)
        named = [a.file for a in items if a.file]
        single = items[0].file if len(items) == 1 else None
        newest = items[0]
        command = resolve_command(
            source, kind, single, newest.id if len(items) == 1 else 0, newest.message
        )
        if len(named) > 1 and source in ("ingest", "processing"):
            command = resolve_command(source, kind, " ".join(named[:SHOWN]))
        groups.append(
            AlarmGroup(
                source,
                kind,
                len(items),
                items[0].time,
                items[0].message,
                [a.id for a in items],
                named[:SHOWN],
                command,
            )
        )
    groups.sort(key=lambda g: g.newest, reverse=True)
    return groups


def daemon_beats(beats: Sequence[HeartbeatRecord], silent_after_s: float) -> list[DaemonBeat]:
    t = now()
    return [
        DaemonBeat(
            hb.daemon,
            hb.host,
            hb.pid,
            hb.started,
            hb.beat,
            (t - hb.beat).total_seconds(),
            hb.stopped,
            silent(hb, silent_after_s, t),
            hb.detail,
            f"ssh {hb.host} sudo systemctl restart {daemon_unit(hb.daemon)}",
        )
        for hb in beats
    ]


def incomplete_runs(
    bk: Bookkeeping, queries: FarmQueries, stuck_after_s: float, n: int
) -> list[dict[str, Any]]:
    """The newest ``n`` runs the run ledger calls incomplete, as ``runs --json`` shows them.

    :func:`farmtools.bookkeeping.ledger.incomplete_runs` builds the ledger of every run (every
    file read: 16 s with a month of files, minutes with a year); here only the runs that can be
    incomplete get theirs: closed and not finished, or finished with problems or a failed file
    (``run_status``, the state index), or holding a stuck file.  The same selection (a test
    compares the two).
    """
    from farmtools.bookkeeping.ledger import CLOSED, OPEN, run_ledger

    rs = schema.run_status
    with bk.engine.connect() as conn:
        closed = conn.execute(
            select(rs.c.run, rs.c.finished, rs.c.problems).where(rs.c.closed.is_not(None))
        ).all()
    failed = queries.runs_with(failed=True)
    candidates = {
        run for run, finished, problems in closed if finished is None or problems or run in failed
    }
    candidates |= queries.runs_with(stuck_s=stuck_after_s)  # open runs count only if stuck
    out: list[dict[str, Any]] = []
    for run in sorted(candidates, reverse=True):
        r = run_ledger(bk, run, stuck_after_s=stuck_after_s)
        # the predicate of ledger.incomplete_runs
        if r is not None and ((r.problems and r.status != OPEN) or r.status == CLOSED or r.stuck):
            out.append(r.to_json())
            if len(out) == n:
                break
    return out


def collect(cfg: FarmConfig, bk: Bookkeeping, sampler: BufferSampler | None = None) -> ShiftStatus:
    """Everything the shift needs to see now (see the module docstring); ``sampler``: the
    monitor's, for the buffer's measured rate of change."""
    m = cfg.monitor
    queries = FarmQueries(bk.engine)
    st = ShiftStatus(time=now())
    st.alarms = alarm_groups(bk.alarms())
    st.failed_count, st.failed = queries.failed_files(limit=SHOWN)
    st.stuck_count, st.stuck = queries.stuck_files(m.stuck_after_s, limit=SHOWN)
    st.incomplete_runs = incomplete_runs(bk, queries, m.stuck_after_s, m.runs_shown)
    st.daemons = daemon_beats(bk.heartbeats(), m.daemon_silent_s)
    st.buffer = buffer_of(cfg, queries, sampler)
    st.jobs = queries.active_jobs()
    st.attention = attention(st, cfg)
    return st


def attention(st: ShiftStatus, cfg: FarmConfig) -> list[str]:
    """One line per condition that needs a person (empty: nothing does)."""
    m = cfg.monitor
    out = []
    n_alarms = sum(g.count for g in st.alarms)
    if n_alarms:
        out.append(f"{n_alarms} open alarm(s) of {len(st.alarms)} kind(s)")
    for d in st.daemons:
        if d.silent:
            out.append(f"daemon {d.daemon} on {d.host} silent for {d.age_s:.0f} s")
    if st.stuck_count > m.stuck_max:
        out.append(f"{st.stuck_count} file(s) stuck more than {m.stuck_after_s:.0f} s")
    if st.buffer is not None and (why := buffer_breach_message(st.buffer, m.buffer_warn_h)):
        out.append(why)
    return out
