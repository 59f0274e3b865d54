"""``/metrics`` for Prometheus: the farm's counts, read from the bookkeeping at scrape time.

Owns :class:`FarmCollector`, a prometheus_client custom collector on its own registry (no
process-global state, so several monitors can live in one test process).  Counters that need
full-table scans come from the :class:`~farmtools.monitor.queries.Totals` snapshot (refreshed
every ``monitor.totals_s``); queue depths and latencies are read live through indexed queries.
The Grafana dashboard that plots these series is ``roles/monitoring/files/farmtools.json``.

Imports prometheus_client and the monitor's queries/summary modules.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from farmtools.monitor.attention import BufferForecast, buffer_of

if TYPE_CHECKING:
    from farmtools.config import FarmConfig
    from farmtools.monitor.checkstore import CheckStore
    from farmtools.monitor.queries import FarmQueries, Totals
    from farmtools.monitor.store import SummaryStore


class FarmCollector(Collector):
    """Every farmtools_* series; see docs/monitor.md for the list."""

    def __init__(
        self,
        cfg: FarmConfig,
        queries: FarmQueries | None,
        totals: Totals | None,
        results: SummaryStore,
        checks: CheckStore | None = None,
    ) -> None:
        self.cfg = cfg
        self.queries = queries
        self.totals = totals
        self.results = results
        self.checks = checks

    def collect(self) -> Iterator[Metric]:
        if self.checks is not None:
            yield from self._checks(self.checks)
        latest = self.results.latest()
        if latest is not None:
            tau = GaugeMetricFamily(
                "farmtools_electron_lifetime_us",
                "Latest electron lifetime per view (us)",
                labels=["view"],
            )
            for v in (0, 1):
                tau.add_metric([str(v)], latest.lifetime_us[v])
            yield tau
        with_gain = self.results.latest(with_lems=True)
        if with_gain is not None:
            gain = GaugeMetricFamily(
                "farmtools_lem_gain", "Latest effective gain per LEM", labels=["lem"]
            )
            for lem, r in sorted(with_gain.lems.items()):
                gain.add_metric([str(lem)], r.gain)
            yield gain
        yield GaugeMetricFamily(
            "farmtools_summary_errors",
            "Summary files that could not be read",
            value=len(self.results.errors),
        )
        q = self.queries
        if q is None:
            return
        snap = self.totals.snapshot if self.totals is not None else None
        if snap is not None and snap.taken is not None:
            yield _labelled(
                GaugeMetricFamily,
                "farmtools_files",
                "Raw files per bookkeeping state",
                "state",
                snap.files_by_state,
            )
            yield CounterMetricFamily(
                "farmtools_ingested_files",
                "Raw files ingested (verified on farm storage)",
                value=snap.files_ingested,
            )
            yield CounterMetricFamily(
                "farmtools_ingested_bytes", "Bytes of raw data ingested", value=snap.bytes_ingested
            )
            yield _labelled(
                GaugeMetricFamily,
                "farmtools_jobs",
                "Batch jobs per state",
                "state",
                snap.jobs_by_state,
            )
            yield _labelled(
                CounterMetricFamily,
                "farmtools_job_failures",
                "Failed batch job attempts per failure class",
                "failure",
                snap.failures_by_class,
            )
            yield _labelled(
                GaugeMetricFamily,
                "farmtools_failed_files",
                "Files with at least one failed job attempt, per failure class",
                "failure",
                snap.failed_files_by_class,
            )
            arch = GaugeMetricFamily("farmtools_archives", "Archives per state", labels=["state"])
            for state, (n, _) in sorted(snap.archives_by_state.items()):
                arch.add_metric([state], n)
            yield arch
            yield GaugeMetricFamily(
                "farmtools_totals_age_seconds",
                "Age of the totals snapshot",
                value=0.0 if snap.taken is None else _age(snap.taken),
            )
        depth = GaugeMetricFamily(
            "farmtools_queue_depth", "Files waiting per active state (live)", labels=["state"]
        )
        for state, n in q.active_counts().items():
            depth.add_metric([state], n)
        yield depth
        active = GaugeMetricFamily(
            "farmtools_jobs_active", "Jobs new/submitted/running (live)", labels=["state"]
        )
        for state, n in q.active_jobs().items():
            active.add_metric([state], n)
        yield active
        lat = [x.seconds for x in q.recent_latencies(500)]
        g = GaugeMetricFamily(
            "farmtools_transfer_latency_seconds",
            "DAQ write to verified on farm storage, newest 500 files",
            labels=["quantile"],
        )
        if lat:
            for qq in (0.5, 0.95, 1.0):
                g.add_metric([str(qq)], float(np.quantile(lat, qq)))
        yield g
        stuck, _ = q.stuck_files(self.cfg.monitor.stuck_after_s, limit=1)
        yield GaugeMetricFamily(
            "farmtools_stuck_files", "Files in an active state for too long", value=stuck
        )
        yield from _buffer_metrics(buffer_of(self.cfg, q))
        evb = q.evb_counts(self.cfg.monitor.runs_shown)
        if evb:
            frag = GaugeMetricFamily(
                "farmtools_evb_fragments_in",
                "6x6x6 L1 fragments read by the L2 builders, per run and L1 stream",
                labels=["run", "stream"],
            )
            kinds = GaugeMetricFamily(
                "farmtools_evb_count",
                "6x6x6 event building per run: events built/incomplete, fragments set aside "
                "(duplicates, mismatches, late, truncated, corrupt) and pending",
                labels=["run", "kind"],
            )
            for run, c in sorted(evb.items()):
                for k in (0, 1):
                    frag.add_metric([str(run), str(k)], c[f"fragments_in{k}"])
                for kind in ("built", "incomplete", "duplicates", "mismatches", "late", "truncated",
                             "corrupt", "pending", "files"):  # fmt: skip
                    kinds.add_metric([str(run), kind], c[kind])
            yield frag
            yield kinds
        al = GaugeMetricFamily(
            "farmtools_alarms_open", "Unacknowledged alarms per source", labels=["source"]
        )
        per: dict[str, int] = {}
        for a in q.open_alarms(limit=10000):
            per[a["source"]] = per.get(a["source"], 0) + 1
        for src, n in sorted(per.items()):
            al.add_metric([src], n)
        yield al
        beat = GaugeMetricFamily(
            "farmtools_daemon_beat_age_seconds",
            "Seconds since each running daemon's last heartbeat (alert above "
            "monitor.daemon_silent_s)",
            labels=["daemon", "host"],
        )
        for daemon, host, t in q.running_daemons():
            beat.add_metric([daemon, host], _age(t))
        yield beat

    @staticmethod
    def _checks(store: CheckStore) -> Iterator[Metric]:
        """The check states of the newest judged run and of the farm-wide window."""
        from farmtools.monitor.checks import worst

        run = store.latest_run()
        rows = (store.for_run(run) if run is not None else []) + store.window()
        g = GaugeMetricFamily(
            "farmtools_check_state",
            "Data-quality check state per task item (0 none, 1 good, 2 too few, 3 warning, "
            "4 error), of the newest judged run or the farm-wide window",
            labels=["task", "item", "scope"],
        )
        for r in rows:
            g.add_metric([r.task, r.item, r.scope], int(r.state))
        yield g
        yield GaugeMetricFamily(
            "farmtools_check_worst",
            "The worst data-quality check state (0 none .. 4 error)",
            value=int(worst(r.state for r in rows)),
        )
        if run is not None:
            yield GaugeMetricFamily("farmtools_check_run", "The newest judged run", value=run)


def _labelled(
    family: type[GaugeMetricFamily] | type[CounterMetricFamily],
    name: str,
    doc: str,
    label: str,
    values: dict[str, int],
) -> GaugeMetricFamily | CounterMetricFamily:
    """A family of one label, a sample per key of ``values`` (sorted)."""
    out = family(name, doc, labels=[label])
    for key, n in sorted(values.items()):
        out.add_metric([key], n)
    return out


def _age(t: datetime) -> float:
    return (datetime.now(UTC) - t).total_seconds()


def make_registry(collector: FarmCollector) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector)
    return reg


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def _buffer_metrics(b: BufferForecast) -> Iterator[GaugeMetricFamily]:
    """The buffer's occupancy and forecast (``farmtools status``'s), where they are known."""
    if b.used_bytes is not None:
        yield GaugeMetricFamily(
            "farmtools_buffer_used_bytes", "Bytes used on the farm storage's file system",
            value=b.used_bytes,
        )  # fmt: skip
    yield GaugeMetricFamily(
        "farmtools_buffer_incoming_bytes_per_second",
        "Raw data written by the DAQ per second (monitor.rate_window_s)",
        value=b.rate_bytes_s,
    )
    if b.seconds_to_full is not None:
        yield GaugeMetricFamily(
            "farmtools_buffer_seconds_to_full", "Time until the buffer is full at that rate",
            value=b.seconds_to_full,
        )  # fmt: skip
