"""The checks of the built-in monitoring tasks: pure functions of what the tasks' ``read`` returns.

Each judges one item's data (and the reference run's, when one is pinned) against the limits of
``[monitor]`` (docs/monitor.md, "Checks") and returns a :class:`~farmtools.monitor.checks.CheckResult`.
The tasks of :mod:`farmtools.monitor.builtin` call them from their ``check`` method.  Imports
:mod:`farmtools.monitor.checks` and, for types, the config and the queries.
"""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING, Any

from farmtools.monitor.checks import CheckResult, State, channel_text

if TYPE_CHECKING:
    from farmtools.config import MonitorSection
    from farmtools.monitor.queries import FarmQueries

#: the threshold alarms (farmtools.monitor.alarms) that already name these checks' errors
LIFETIME = ("lifetime_low:",)
ASYMMETRY = ("asymmetry:",)
BAD_CHANNELS = ("bad_channels",)
STUCK = ("stuck_files",)

GOOD = State.GOOD
TOO_FEW = State.TOO_FEW
WARNING = State.WARNING
ERROR = State.ERROR


def _finite(values: list[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


# -- electron lifetime -------------------------------------------------------------------------
def lifetime(data: Any, reference: Any | None, m: MonitorSection) -> CheckResult:
    """Error below ``lifetime_min_us``; warning when it fell by ``lifetime_drop_frac`` or more
    from the reference run's (or, without a reference, from the median of the trend)."""
    if data is None or data.get("selected") is None:
        run = f" of run {data['run']}" if data and data.get("run") is not None else ""
        return CheckResult(TOO_FEW, f"no lifetime result{run} yet")
    run = data["run"]
    taus = data["selected"]
    if not _finite(taus):
        return CheckResult(
            GOOD, f"run {run}: no attenuation seen (lifetime above range)", covers=LIFETIME
        )
    low = [v for v, t in enumerate(taus) if t is not None and t < m.lifetime_min_us]
    if low:
        v = low[0]
        return CheckResult(
            ERROR,
            f"run {run}: lifetime view {v} = {taus[v]:.0f} us, below {m.lifetime_min_us:.0f} us",
            {"views": low},
            LIFETIME,
        )
    if reference is not None and reference.get("selected") is not None:
        base = list(reference["selected"])
        against = f"reference run {reference['run']}"
    else:
        base = [statistics.median(_finite(data["tau"][v]) or [math.nan]) for v in (0, 1)]
        against = "the trend's median"
    for v in (0, 1):
        t, b = taus[v], base[v]
        if (
            t is not None
            and b is not None
            and math.isfinite(b)
            and t < (1 - m.lifetime_drop_frac) * b
        ):
            return CheckResult(
                WARNING,
                f"run {run}: lifetime view {v} fell to {t:.0f} us from {b:.0f} us ({against})",
                {"views": [v]},
                LIFETIME,
            )
    shown = ", ".join(f"{t:.0f}" if t is not None else "inf" for t in taus)
    return CheckResult(GOOD, f"run {run}: lifetime {shown} us", covers=LIFETIME)


# -- LEM gain ------------------------------------------------------------------------------------
def gains(
    run: int, gain: dict[int, float], ref: dict[int, float], ref_run: int | None, m: MonitorSection
) -> CheckResult:
    """Per LEM: error outside [gain_min, gain_max] or off the reference by ``gain_rel_error``;
    warning off the reference by ``gain_rel_warn``.  An error of the band alone is the threshold
    alarm's (gain_low/gain_high); one off the reference raises the check's own."""
    if not gain:
        return CheckResult(TOO_FEW, f"run {run}: no LEM with a gain yet")
    out_band = sorted(k for k, g in gain.items() if not m.gain_min <= g <= m.gain_max)
    off: dict[int, float] = {}
    for k, g in gain.items():
        r = ref.get(k)
        if r is not None and r > 0:
            off[k] = g / r - 1
    err = sorted(set(out_band) | {k for k, d in off.items() if abs(d) > m.gain_rel_error})
    warn = sorted(k for k, d in off.items() if abs(d) > m.gain_rel_warn and k not in err)
    details = {"lems_error": err, "lems_warning": warn, "off": {str(k): d for k, d in off.items()}}

    def says(lems: list[int]) -> str:
        parts = []
        for k in lems:
            if k in off:
                parts.append(f"LEM {k} {gain[k]:.1f} ({off[k]:+.0%} vs run {ref_run})")
            else:
                parts.append(f"LEM {k} {gain[k]:.1f} (outside [{m.gain_min:g}, {m.gain_max:g}])")
        return ", ".join(parts)

    band = ("gain_low:", "gain_high:")
    if err:
        by_ref = any(abs(off.get(k, 0.0)) > m.gain_rel_error for k in err)
        return CheckResult(
            ERROR, f"run {run}: gain off: {says(err)}", details, () if by_ref else band
        )
    if warn:
        return CheckResult(WARNING, f"run {run}: gain drifting: {says(warn)}", details, band)
    against = f" within {m.gain_rel_warn:.0%} of run {ref_run}" if off else " in band"
    return CheckResult(GOOD, f"run {run}: {len(gain)} LEM gains{against}", details, band)


def gain_map(data: Any, reference: Any | None) -> tuple[dict[int, float], dict[int, float]]:
    """The gains of the LemGain "map" item's data (and its reference) by LEM number."""

    def lems(d: Any) -> dict[int, float]:
        if d is None:
            return {}
        out = {}
        for ix in range(2):
            for iy in range(6):
                g = d["z"][ix][iy]
                if g is not None and math.isfinite(g):
                    out[1 + ix + 2 * iy] = g
        return out

    return lems(data), lems(reference)


# -- view asymmetry ------------------------------------------------------------------------------
def asymmetry(data: Any, m: MonitorSection) -> CheckResult:
    """Per LEM: error beyond ``asymmetry_max``, warning beyond ``asymmetry_warn``."""
    if data is None:
        return CheckResult(TOO_FEW, "no LEM result yet")
    asym = {k: a for k, a in zip(data["lems"], data["asym"], strict=True) if math.isfinite(a)}
    if not asym:
        return CheckResult(TOO_FEW, f"run {data['run']}: no asymmetry measured yet")
    err = sorted(k for k, a in asym.items() if abs(a) > m.asymmetry_max)
    warn = sorted(k for k, a in asym.items() if m.asymmetry_warn < abs(a) <= m.asymmetry_max)
    worst_lem = max(asym, key=lambda k: abs(asym[k]))
    say = f"LEM {worst_lem} A = {asym[worst_lem]:+.2f}"
    details = {"lems_error": err, "lems_warning": warn}
    if err:
        return CheckResult(
            ERROR,
            f"run {data['run']}: {len(err)} LEMs beyond +-{m.asymmetry_max:g}, {say}",
            details,
            ASYMMETRY,
        )
    if warn:
        return CheckResult(
            WARNING,
            f"run {data['run']}: {len(warn)} LEMs beyond +-{m.asymmetry_warn:g}, {say}",
            details,
            ASYMMETRY,
        )
    return CheckResult(GOOD, f"run {data['run']}: largest {say}", details, ASYMMETRY)


# -- channels: pedestal shift, noise ---------------------------------------------------------
def pedestal_shift(data: Any, reference: Any | None, m: MonitorSection) -> CheckResult:
    """Channels whose pedestal moved more than ``pedestal_shift_adc`` from the reference run's;
    error when more than ``bad_channels_max`` moved, warning when any did."""
    if data is None:
        return CheckResult(TOO_FEW, "no reconstructed file yet")
    if reference is None:
        return CheckResult(
            State.NONE, f"run {data['run']}: no reference run pinned to compare with"
        )
    vals, ref = data["values"], reference["values"]
    if len(vals) != len(ref):
        return CheckResult(
            ERROR,
            f"run {data['run']}: {len(vals)} channels, reference run {reference['run']} {len(ref)}",
        )
    moved = [
        i
        for i, (a, b) in enumerate(zip(vals, ref, strict=True))
        if math.isfinite(a) and math.isfinite(b) and abs(a - b) > m.pedestal_shift_adc
    ]
    where = channel_text(moved, data["view0"])
    details = {"channels": moved, "text": where}
    vs = f"more than {m.pedestal_shift_adc:g} ADC from run {reference['run']}"
    if len(moved) > m.bad_channels_max:
        return CheckResult(
            ERROR, f"run {data['run']}: {len(moved)} pedestals moved {vs}: {where}", details
        )
    if moved:
        return CheckResult(
            WARNING, f"run {data['run']}: {len(moved)} pedestals moved {vs}: {where}", details
        )
    return CheckResult(
        GOOD,
        f"run {data['run']}: pedestals within {m.pedestal_shift_adc:g} ADC of run {reference['run']}",
        details,
    )


def noise(data: Any, reference: Any | None, m: MonitorSection) -> CheckResult:
    """Dead and noisy channels (RMS below ``dead_rms_adc`` / above ``noisy_rms_adc``), listed by
    view and channel.  Channels already bad in the reference run are known and not counted;
    error when more than ``bad_channels_max`` are bad, warning when any is."""
    if data is None:
        return CheckResult(TOO_FEW, "no reconstructed file yet")
    if len(data["values"]) < m.min_entries:
        return CheckResult(TOO_FEW, f"run {data['run']}: {len(data['values'])} channels read")
    known = set(reference["dead"]) | set(reference["noisy"]) if reference is not None else set()
    dead = [c for c in data["dead"] if c not in known]
    noisy = [c for c in data["noisy"] if c not in known]
    view0 = data["view0"]
    parts = []
    if dead:
        parts.append(f"{len(dead)} dead ({channel_text(dead, view0)})")
    if noisy:
        parts.append(f"{len(noisy)} noisy ({channel_text(noisy, view0)})")
    new = " new" if reference is not None else ""
    details = {
        "dead": dead,
        "noisy": noisy,
        "dead_text": channel_text(dead, view0),
        "noisy_text": channel_text(noisy, view0),
        "known": len(known),
    }
    said = f"run {data['run']}: " + " and ".join(parts) + new if parts else ""
    if len(dead) + len(noisy) > m.bad_channels_max:
        return CheckResult(ERROR, said, details, BAD_CHANNELS)
    if parts:
        return CheckResult(WARNING, said, details, BAD_CHANNELS)
    ref = (
        f" beyond the {len(known)} known in run {reference['run']}" if reference is not None else ""
    )
    return CheckResult(
        GOOD, f"run {data['run']}: no dead or noisy channel{ref}", details, BAD_CHANNELS
    )


# -- data flow -------------------------------------------------------------------------------
def latency(data: Any, m: MonitorSection) -> CheckResult:
    """p95 of the transfer latency of the newest files against ``latency_warn_s``/``_error_s``."""
    s = data["s"] if data is not None else []
    if len(s) < m.min_entries:
        return CheckResult(TOO_FEW, f"{len(s)} files transferred recently")
    p95 = statistics.quantiles(s, n=20, method="inclusive")[-1]
    said = f"transfer latency p95 {p95:.0f} s over the newest {len(s)} files"
    if p95 > m.latency_error_s:
        return CheckResult(ERROR, f"{said} (above {m.latency_error_s:.0f} s)", {"p95_s": p95})
    if p95 > m.latency_warn_s:
        return CheckResult(WARNING, f"{said} (above {m.latency_warn_s:.0f} s)", {"p95_s": p95})
    return CheckResult(GOOD, said, {"p95_s": p95})


def failed_files(queries: FarmQueries | None, m: MonitorSection) -> CheckResult:
    """Failed FILES among the newest ``check_window_files`` (not attempts: a file retried 7 times
    is one file): error above ``failed_files_max``, warning from one."""
    if queries is None:
        return CheckResult(State.NONE, "no bookkeeping database")
    files, attempts, names = queries.failed_files(m.check_window_files)
    tried = f" ({attempts} failed attempts)" if attempts else ""
    details = {"files": files, "attempts": attempts, "names": names}
    said = f"{files} failed files in the newest {m.check_window_files}{tried}"
    if files > m.failed_files_max:
        return CheckResult(ERROR, said, details)
    if files:
        return CheckResult(WARNING, said + ": " + ", ".join(names[:3]), details)
    return CheckResult(GOOD, said, details)


def backlog(data: Any, queries: FarmQueries | None, m: MonitorSection) -> CheckResult:
    """Stuck files (error above ``stuck_max``) and the files waiting (warning above ``backlog_warn``)."""
    if data is None or queries is None:
        return CheckResult(State.NONE, "no bookkeeping database")
    waiting = sum(queries.active_counts().values())
    details = {"stuck": data["count"], "waiting": waiting}
    if data["count"] > m.stuck_max:
        first = f": {data['rows'][0][0]} ({data['rows'][0][1]})" if data["rows"] else ""
        return CheckResult(
            ERROR,
            f"{data['count']} files stuck more than {m.stuck_after_s:.0f} s{first}",
            details,
            STUCK,
        )
    if waiting > m.backlog_warn:
        return CheckResult(
            WARNING, f"{waiting} files waiting (backlog above {m.backlog_warn})", details
        )
    return CheckResult(GOOD, f"{waiting} files on their way, none stuck", details, STUCK)
