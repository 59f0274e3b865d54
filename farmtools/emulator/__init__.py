"""The DAQ emulator: cosmic-muon events with known physics, written as the 3x1x1 DAQ wrote them.

Modules, bottom up: ``settings`` (what is injected), ``muons`` (tracks and trigger), ``deposit``
(energy loss to charge on strips), ``signal`` (shaping, noise, ADC), ``event`` (one event),
``truth`` (the JSON sidecar), ``daq`` (files, schedule, template copies), ``cli``.
Conventions are in docs/emulator.md.  May import :mod:`farmtools.detector` and
:mod:`farmtools.rawdata`; nothing above them.  Names are imported lazily so that importing the
package (e.g. for the CLI) does not load numba.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from farmtools.emulator.daq import EmulatedFile, RunPlan, copy_template, emulate_run
    from farmtools.emulator.event import EventGenerator, EventTruth
    from farmtools.emulator.settings import EmulatorSettings, load_gain_map

__all__ = [
    "EmulatedFile",
    "EmulatorSettings",
    "EventGenerator",
    "EventTruth",
    "RunPlan",
    "copy_template",
    "emulate_run",
    "load_gain_map",
]

_WHERE = {
    "EmulatedFile": "daq",
    "RunPlan": "daq",
    "copy_template": "daq",
    "emulate_run": "daq",
    "EventGenerator": "event",
    "EventTruth": "event",
    "EmulatorSettings": "settings",
    "load_gain_map": "settings",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"farmtools.emulator.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'farmtools.emulator' has no attribute {name!r}")
