"""Alarms of the monitor: values that left their band (thresholds in ``[monitor]``).

Owns :func:`evaluate` (pure: an analysis result or farm counts in, a list of :class:`Breach`
out) and :class:`AlarmChecker`, which after each new result raises the breaches in the
bookkeeping's ``alarms`` table (``source = "monitor"``; the page shows every unacknowledged
alarm, of any stage) and sends them through :func:`farmtools.notify.notify`.  One alarm per kind
(e.g. ``lifetime_low:view0``) stays open until someone acknowledges it (``farmtools monitor
ack``): a run of bad results gives one message, not one per result.  The farm's conditions
(stuck files, a silent daemon: ``daemon_silent:<daemon>@<host>``) close their alarm by
themselves once they clear.

The data-quality checks (:mod:`farmtools.monitor.overview`) run in the same pass: a check that
turns ``error`` raises ``check:TASK/ITEM`` (unless a threshold alarm above already names that
fault: :attr:`~farmtools.monitor.checks.CheckResult.covers`); when it is judged good (or
warning) again, its open alarms are cleared (closed as "cleared" by farmtools, with a log
line), so the banner shows what is wrong now.

The other stages (ingest, archive, final, runs) raise their alarms in the bookkeeping only: the
checker also mails every alarm they raised since it started (:meth:`AlarmChecker.relay`, one
digest per source, by kind), so a quarantined file or a failed transfer reaches the shift by mail
like the monitor's own alarms.  Run one monitor per farm with mail on (two would mail twice).

Imports the monitor's summary/queries modules, the bookkeeping and farmtools.notify (each new
alarm through a :class:`~farmtools.notify.digest.Digest`: one mail per family and interval).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from farmtools.monitor.attention import BufferForecast, BufferSampler, buffer_breach_message
from farmtools.monitor.checks import State
from farmtools.monitor.summary import INFINITE_US, AnalysisResult
from farmtools.notify.digest import Digest

if TYPE_CHECKING:
    from farmtools.bookkeeping import Bookkeeping
    from farmtools.config import FarmConfig, MonitorSection
    from farmtools.monitor.checkstore import StoredCheck
    from farmtools.monitor.overview import CheckRunner
    from farmtools.monitor.queries import FarmQueries
    from farmtools.monitor.store import SummaryStore

log = logging.getLogger("farmtools.monitor")

SOURCE = "monitor"


@dataclass(frozen=True)
class Breach:
    """A value outside its band: ``kind`` identifies what (one open alarm per kind)."""

    kind: str
    message: str


def evaluate(result: AnalysisResult, m: MonitorSection) -> list[Breach]:
    """The breaches of one analysis result against the thresholds of ``[monitor]``."""
    out: list[Breach] = []
    for v in (0, 1):
        tau, err = result.lifetime_us[v], result.lifetime_err_us[v]
        if math.isfinite(tau) and tau < INFINITE_US and tau < m.lifetime_min_us:
            out.append(
                Breach(
                    f"lifetime_low:view{v}",
                    f"run {result.run}: electron lifetime view {v} = {tau:.0f} +- {err:.0f} us, "
                    f"below {m.lifetime_min_us:.0f} us ({result.source})",
                )
            )
    for lem, r in sorted(result.lems.items()):
        if math.isfinite(r.gain) and not m.gain_min <= r.gain <= m.gain_max:
            side = "low" if r.gain < m.gain_min else "high"
            out.append(
                Breach(
                    f"gain_{side}:lem{lem}",
                    f"run {result.run}: LEM {lem} gain {r.gain:.2f} outside [{m.gain_min}, {m.gain_max}] "
                    f"({result.source})",
                )
            )
        if math.isfinite(r.asymmetry) and abs(r.asymmetry) > m.asymmetry_max:
            out.append(
                Breach(
                    f"asymmetry:lem{lem}",
                    f"run {result.run}: LEM {lem} view asymmetry {r.asymmetry:+.3f} beyond "
                    f"+-{m.asymmetry_max} ({result.source})",
                )
            )
    return out


def evaluate_channels(run: int, dead: int, noisy: int, m: MonitorSection) -> list[Breach]:
    """Too many dead + noisy channels in a run's reconstruction."""
    if dead + noisy > m.bad_channels_max:
        return [
            Breach(
                "bad_channels",
                f"run {run}: {dead} dead and {noisy} noisy channels "
                f"(more than {m.bad_channels_max})",
            )
        ]
    return []


def check_kind(r: StoredCheck) -> str:
    """The alarm kind of a check: ``check:TASK/ITEM`` (one open alarm per item)."""
    return f"check:{r.task}/{r.item}"


def evaluate_check(r: StoredCheck) -> list[Breach]:
    """An error verdict of a check as a breach (warnings and too few raise nothing)."""
    if r.state < State.ERROR or r.covers:
        return []
    of = f"run {r.run}: " if r.run is not None and f"run {r.run}" not in r.reason else ""
    ref = f" (reference run {r.reference})" if r.reference is not None else ""
    return [Breach(check_kind(r), f"{r.task}/{r.item}: {of}{r.reason}{ref}")]


def _matches(kind: str, patterns: tuple[str, ...]) -> bool:
    """A pattern ending in ":" matches every kind it starts (``gain_low:``), others exactly."""
    return any(kind == p or (p.endswith(":") and kind.startswith(p)) for p in patterns)


def evaluate_stuck(count: int, m: MonitorSection) -> list[Breach]:
    if count > m.stuck_max:
        return [
            Breach(
                "stuck_files",
                f"{count} files kept their state more than "
                f"{m.stuck_after_s:.0f} s (see the data-flow page)",
            )
        ]
    return []


def evaluate_buffer(b: BufferForecast, m: MonitorSection) -> list[Breach]:
    """The buffer full sooner than ``buffer_warn_h`` at the current incoming rate."""
    why = buffer_breach_message(b, m.buffer_warn_h)
    return [Breach("buffer_full", why)] if why else []


class AlarmChecker:
    """Checks new analysis results and the farm counts; raises and notifies each new breach."""

    def __init__(
        self,
        cfg: FarmConfig,
        bk: Bookkeeping | None,
        queries: FarmQueries | None,
        results: SummaryStore,
        runner: CheckRunner | None = None,
    ) -> None:
        self.cfg = cfg
        self.runner = runner
        self.bk = bk
        self.queries = queries
        self.results = results
        self._checked: set[tuple[object, ...]] = set()
        self._started = False
        self._last_reco: tuple[str, int] | None = None
        #: breaches raised by this process when there is no database (shown on the page)
        self.local: dict[str, Breach] = {}
        self.notify_errors: list[str] = []
        #: the run each check alarm was last raised for, by kind (None: the farm-wide window)
        self._alarmed: dict[str, int | None] = {}
        self.digest = Digest(cfg, SOURCE)
        #: the other stages' alarms: one digest per source, and the last alarm id mailed (None
        #: before the first pass, which takes the newest id: a restart mails nothing of the past)
        self._relays: dict[str, Digest] = {}
        self._relayed: int | None = None
        #: the buffer's used bytes at each pass: its measured rate of change (page and alarm)
        self.buffer_sampler = BufferSampler(cfg.monitor.rate_window_s)

    def check(self) -> list[Breach]:
        """One pass: returns the breaches that were NEW (raised and notified now)."""
        self.results.refresh()
        breaches: list[Breach] = []
        results = self.results.results()
        if not self._started:
            # First pass: only the current state (the newest result, and the newest with LEMs)
            # is judged; a restart must not mail again about every bad result of the past.
            self._started = True
            current = (self.results.latest(), self.results.latest(with_lems=True))
            keep = {r.fingerprint for r in current if r is not None}
            self._checked.update(r.fingerprint for r in results if r.fingerprint not in keep)
        for res in results:
            if res.fingerprint in self._checked:
                continue
            self._checked.add(res.fingerprint)
            breaches.extend(evaluate(res, self.cfg.monitor))
        # only the store's window can bring a result again: forget the rest (a year of
        # analyses must not pile up here)
        self._checked = {r.fingerprint for r in results}
        breaches.extend(self._check_channels())
        breaches.extend(self._check_farm())
        if self.runner is not None:
            breaches.extend(self._judge_checks())
        new = [b for b in breaches if self._raise(b)]
        self.relay()
        self.flush()
        return new

    def relay(self) -> int:
        """Mail the alarms the other stages raised since the last pass; how many.

        They write their alarms only to the bookkeeping (a daemon per node, several without a
        mail set-up); the monitor, which watches the whole farm, sends them on, digested per
        source and kind like its own.
        """
        if self.queries is None:
            return 0
        if self._relayed is None:
            self._relayed = self.queries.last_alarm_id()
            return 0
        found = self.queries.alarms_after(self._relayed, not_from=SOURCE)
        for a in found:
            self._relayed = a["id"]
            digest = self._relays.setdefault(a["source"], Digest(self.cfg, a["source"]))
            about = f" ({a['name']})" if a["name"] else ""
            self._notify_errors(
                digest.add(
                    a["kind"].split(":", 1)[0],
                    f"[farmtools {a['source']}] {a['kind']}{about}",
                    a["message"],
                    {"source": a["source"], "kind": a["kind"], "message": a["message"]},
                )
            )
        return len(found)

    def _check_farm(self) -> list[Breach]:
        """Conditions of the farm whose alarm closes by itself once they clear: stuck files,
        the buffer full too soon (``buffer_full``), silent daemons
        (``daemon_silent:<daemon>@<host>``)."""
        if self.bk is None or self.queries is None:
            return []
        from farmtools.bookkeeping.db import CLEARED_BY
        from farmtools.bookkeeping.heartbeat import silent
        from farmtools.monitor.attention import buffer_of, daemon_unit

        m = self.cfg.monitor
        count, _ = self.queries.stuck_files(m.stuck_after_s, limit=1)
        breaches = evaluate_stuck(count, m)
        clear: dict[str, str] = {}
        if not breaches:
            clear["stuck_files"] = f"{count} file(s) stuck now"
        buffer = buffer_of(self.cfg, self.queries, self.buffer_sampler)
        full = evaluate_buffer(buffer, m)
        breaches.extend(full)
        if not full:
            left = buffer.seconds_to_full
            clear["buffer_full"] = (
                "nothing coming in" if left is None else f"full in {left / 3600:.1f} h now"
            )
        for hb in self.bk.heartbeats():
            kind = f"daemon_silent:{hb.daemon}@{hb.host}"
            if silent(hb, m.daemon_silent_s):
                breaches.append(
                    Breach(
                        kind,
                        f"daemon {hb.daemon} on {hb.host} (pid {hb.pid}) silent since "
                        f"{hb.beat:%Y-%m-%d %H:%M:%S} UTC; restart it: ssh {hb.host} "
                        f"sudo systemctl restart {daemon_unit(hb.daemon)}",
                    )
                )
            else:
                clear[kind] = "stopped cleanly" if hb.stopped else "beats again"
        for kind, alarm_id in self.queries.open_alarm_ids(SOURCE).items():
            if kind in clear and self.bk.close_alarm(alarm_id, "cleared", CLEARED_BY, clear[kind]):
                log.info("alarm %s cleared: %s", kind, clear[kind])
        return breaches

    def _judge_checks(self) -> list[Breach]:
        """The checks of the current run and the window: an error this checker has not alarmed
        yet for that run (or since the window was last fine) is a breach, so an acknowledged
        alarm comes back with the next bad run, not every pass; a good verdict (or a warning)
        clears the open alarms it stands for, "too few" and "none" clear nothing.

        Judged on the verdicts themselves, not on what the store found changed: a verdict stored
        by someone else first (the page judging a run on demand, a cron ``monitor check``) is
        still alarmed here.
        """
        assert self.runner is not None
        results, _ = self.runner.run()
        open_kinds = (
            self.queries.open_alarm_kinds(SOURCE) if self.queries is not None else set(self.local)
        )
        out: list[Breach] = []
        for r in results:
            kind = check_kind(r)
            if r.state >= State.ERROR:
                if kind not in self._alarmed or self._alarmed[kind] != r.run:
                    self._alarmed[kind] = r.run
                    out.extend(evaluate_check(r))
                continue
            self._alarmed.pop(kind, None)
            if r.state < State.GOOD or r.state == State.TOO_FEW:
                continue  # nothing judged yet (a new run's first minutes): no reason to clear
            stale = sorted(k for k in open_kinds if _matches(k, (kind, *r.covers)))
            if stale:
                self._clear(stale, r.reason)
        return out

    def _clear(self, kinds: list[str], why: str) -> None:
        """Close the open alarms of ``kinds`` as cleared: the check behind them is no longer an
        error (recorded in ``alarm_closures`` like every alarm that closes by itself)."""
        from farmtools.bookkeeping.db import CLEARED_BY

        for kind in kinds:
            if self.bk is not None and self.queries is not None:
                for alarm_id in self.queries.open_alarm_ids_of(SOURCE, kind):
                    self.bk.close_alarm(alarm_id, "cleared", CLEARED_BY, why)
            else:
                self.local.pop(kind, None)
            log.info("alarm %s cleared: %s", kind, why)

    def _check_channels(self) -> list[Breach]:
        """Dead/noisy channels of the newest reconstruction output, once per file."""
        from farmtools.monitor.recofiles import (
            read_channels,
            read_out,
            reading_geometry,
            reco_files,
        )

        paths = reco_files(self.cfg, None)
        if not paths:
            return []
        path = paths[-1]
        key = (str(path), path.stat().st_mtime_ns)
        if key == self._last_reco:  # only the newest file counts: remember just that one
            return []
        self._last_reco = key
        run = int(path.parent.name[3:])
        try:
            reading = read_channels(path, run)
        except Exception as exc:  # a half-written or foreign file must not stop the checks
            log.error("%s: cannot read pedestal/rms histograms: %s", path, exc)
            return []
        m = self.cfg.monitor
        inst = read_out(reading_geometry(len(reading.rms), self.cfg.geometry))
        dead = sum(1 for r, on in zip(reading.rms, inst, strict=True) if on and r < m.dead_rms_adc)
        noisy = sum(
            1 for r, on in zip(reading.rms, inst, strict=True) if on and r > m.noisy_rms_adc
        )
        return evaluate_channels(run, dead, noisy, m)

    def _raise(self, b: Breach) -> bool:
        if self.bk is not None and self.queries is not None:
            if b.kind in self.queries.open_alarm_kinds(SOURCE):
                return False
            self.bk.raise_alarm(None, SOURCE, b.kind, b.message)
        else:
            if b.kind in self.local:
                return False
            self.local[b.kind] = b
        log.warning("alarm %s: %s", b.kind, b.message)
        # digested by family (lifetime_low, daemon_silent...): five silent daemons, two mails
        errors = self.digest.add(
            b.kind.split(":", 1)[0],
            f"[farmtools monitor] {b.kind}",
            b.message,
            {"source": SOURCE, "kind": b.kind, "message": b.message},
        )
        self._notify_errors(errors)
        return True

    def _notify_errors(self, errors: list[str]) -> None:
        for e in errors:
            log.error("notification failed: %s", e)
        self.notify_errors.extend(errors)

    def flush(self, force: bool = False) -> None:
        """Send the digests that are due (all of them with ``force``: the monitor stops)."""
        for digest in (self.digest, *self._relays.values()):
            self._notify_errors(digest.flush(force))
