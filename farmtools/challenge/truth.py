"""The analyses' results beside what the emulator injected (its truth sidecars).

The analysis stage writes one summary per group of reconstructed files, the seed's text and its
JSON twin (``.json`` next to the ``.txt``); this module reads the JSON and pulls out what can be compared with the
truth: the combined electron lifetime (``tau_us`` of a ``combined`` block) and the effective gain
per LEM (objects with ``lem`` and ``gain``, or a ``gains`` mapping).  It is deliberately lenient
about the layout, so a summary with more fields still compares; a summary it cannot read is
listed with the reason, never dropped.  Pure functions over files; imports the standard library.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any


def injected(truth_paths: Iterable[Path]) -> dict[str, Any]:
    """The injected lifetime (us) and gain map from the first readable truth sidecar."""
    for p in truth_paths:
        try:
            doc = json.loads(Path(p).read_text())
        except (OSError, ValueError):
            continue
        inj = doc.get("injected", {})
        life_ms = inj.get("lifetime_ms")
        return {
            "lifetime_us": None if life_ms is None else float(life_ms) * 1000.0,
            "gain_map": {str(k): float(v) for k, v in (inj.get("gain_map") or {}).items()},
            "asymmetry": inj.get("asymmetry"),
        }
    return {}


def _walk(obj: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, (*path, str(k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, (*path, str(i)))


def extract(doc: Any) -> dict[str, Any]:
    """Combined lifetime (us, error), gain per LEM and its fit error, found anywhere in a summary.

    The errors are kept so that a comparison with the truth can be judged against what the
    sample allows (a dozen events give a lifetime to ~30 %), not against a fixed band.  ``k``
    is the fitted parameter, 1/tau per us with its error, where the summary gives it: see
    :func:`lifetime_pull` for why the comparison is made there.
    """
    lifetime: tuple[float, float | None] | None = None
    k: tuple[float, float] | None = None
    status: str | None = None
    gains: dict[str, float] = {}
    gain_errors: dict[str, float] = {}
    for path, obj in _walk(doc):
        if not isinstance(obj, dict):
            continue
        if "tau_us" in obj and (lifetime is None or "combined" in path):
            tau = obj.get("tau_us")
            st = obj.get("status")
            status = st if isinstance(st, str) else status
            if isinstance(tau, int | float):
                err = obj.get("error_us")
                lifetime = (float(tau), float(err) if isinstance(err, int | float) else None)
                kk, ke = obj.get("k_per_us"), obj.get("k_error")
                k = None
                if isinstance(kk, int | float) and isinstance(ke, int | float) and ke > 0:
                    k = (float(kk), float(ke))
        if "lem" in obj:
            g = obj.get("gain", obj.get("effective_gain"))
            if isinstance(g, int | float) and math.isfinite(g):
                gains[str(obj["lem"])] = float(g)
                e = obj.get("gain_err")
                if isinstance(e, int | float) and math.isfinite(e):
                    gain_errors[str(obj["lem"])] = float(e)
        if isinstance(obj.get("gains"), dict):
            for k, v in obj["gains"].items():
                if isinstance(v, int | float):
                    gains[str(k)] = float(v)
    return {
        "lifetime": lifetime,
        "k": k,
        "lifetime_status": status,
        "gains": gains,
        "gain_errors": gain_errors,
    }


def measured_lifetime(found: Mapping[str, Any], truth_us: float | None) -> bool:
    """Whether a summary measured a lifetime at all.

    Not when it gives none (``status`` "none", no ``tau_us``; older summaries: the 100000 us
    dummy without k), nor when the error on k is as large as the injected k: such a result
    cannot tell the injected lifetime from pure argon (the seed's ``100000 +- 100000 us``).
    """
    k = found.get("k")
    lt = found.get("lifetime")
    if found.get("lifetime_status") == "none" or lt is None:
        return False
    if k is None:
        return bool(lt[1]) and lt[0] < 100000.0
    return not (truth_us and math.isfinite(truth_us) and k[1] >= 1.0 / truth_us)


def lifetime_pull(found: Mapping[str, Any], truth_us: float) -> float | None:
    """(measured - injected) / error of the lifetime: positive when tau came out longer.

    Judged in k = 1/tau, the parameter the fit determines with a Gaussian error, when the
    summary gives it.  In tau the error is not symmetric once it is more than ~10 % (a small
    group: 40 events give ~15 % at 7 ms): 1/k stretches upward fluctuations and squeezes
    downward ones, so a tau pull computed with the symmetric error k_err / k^2 exaggerates
    every low lifetime (the demo's 5350 +- 782 us against 7000: -2.1 in tau, -1.6 in k).  On
    40 independent 100-event runs through the whole chain the k pulls had RMS 0.9.
    """
    k = found.get("k")
    if k is not None:
        return (1.0 / truth_us - k[0]) / k[1]
    lt = found.get("lifetime")
    if lt is not None and lt[1]:
        return (lt[0] - truth_us) / lt[1]
    return None


def _tau_error(k: tuple[float, float] | None, tau: float, err: float | None) -> str:
    """`` +540 -470`` from k and its error where given (tau's error is not symmetric)."""
    if k is not None and k[0] > 0:
        hi = k[0] - k[1]
        up = f"+{1.0 / hi - tau:.0f}" if hi > 0 else "+inf"
        return f" {up} -{tau - 1.0 / (k[0] + k[1]):.0f}"
    return f" +- {err:.0f}" if err is not None else ""


def analyses_vs_truth(outputs: Sequence[Path], truth_paths: Sequence[Path]) -> list[dict[str, Any]]:
    """One entry per analysis summary: its numbers, the truth, and a one-line comparison."""
    truth = injected(truth_paths)
    out: list[dict[str, Any]] = []
    for p in outputs:
        p = Path(p).with_suffix(".json")  # the seed text summary's JSON twin
        entry: dict[str, Any] = {"summary": str(p), "truth": truth}
        try:
            found = extract(json.loads(p.read_text()))
        except (OSError, ValueError) as exc:
            entry["summary_line"] = f"{p.name}: unreadable ({exc})"
            out.append(entry)
            continue
        entry.update(found)
        parts = [p.name + ":"]
        lt = found["lifetime"]
        want = truth.get("lifetime_us")
        entry["lifetime_measured"] = measured_lifetime(found, want)
        if not entry["lifetime_measured"]:
            parts.append(
                "lifetime: no measurement" + (f" (injected {want:.0f} us)" if want else "")
            )
        elif lt is not None:
            tau, err = lt
            text = f"lifetime {tau:.0f}" + _tau_error(found.get("k"), tau, err) + " us"
            if want:
                text += f" (injected {want:.0f} us, {100 * (tau / want - 1):+.1f} %)"
                entry["lifetime_bias"] = tau / want - 1
                pull = lifetime_pull(found, want)
                if pull is not None:
                    entry["lifetime_pull"] = pull
            parts.append(text)
        g = found["gains"]
        gmap = truth.get("gain_map") or {}
        if g:
            ratios = [v / gmap[k] for k, v in g.items() if gmap.get(k)]
            text = f"gain over {len(g)} LEMs mean {sum(g.values()) / len(g):.2f}"
            if ratios:
                mean_bias = sum(ratios) / len(ratios) - 1
                worst = max(abs(r - 1) for r in ratios)
                entry["gain_bias_mean"] = mean_bias
                entry["gain_bias_worst"] = worst
                text += f" (vs injected: mean {100 * mean_bias:+.1f} %, worst {100 * worst:.1f} %)"
            parts.append(text)
        if len(parts) == 1:
            parts.append("no lifetime or gain found")
        entry["summary_line"] = " ".join(parts)
        out.append(entry)
    return out
