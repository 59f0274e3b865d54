"""The monitoring tasks the farm ships: purity, LEM gain, asymmetry, charge, pedestals, data flow.

Each is a :class:`~farmtools.monitor.tasks.MonTask` in a module of its own, registered on import
(importing this package registers them all); they read the analysis results
(:class:`~farmtools.monitor.summary.SummaryStore`), the reconstruction's ROOT files
(:mod:`farmtools.monitor.recofiles`) and the bookkeeping
(:class:`~farmtools.monitor.queries.FarmQueries`), and draw plotly figure dicts.  May import the
monitor's sibling modules, :mod:`farmtools.detector` and the config.
"""

# ruff: noqa: I001  (the order of these imports is the order of the tasks on the page)
from farmtools.monitor.builtin.purity import Purity
from farmtools.monitor.builtin.gain import LemGain
from farmtools.monitor.builtin.asymmetry import Asymmetry
from farmtools.monitor.builtin.charge import ChargePerLem
from farmtools.monitor.builtin.pedestals import Pedestals
from farmtools.monitor.builtin.dataflow import STATE_ORDER, DataFlow

__all__ = ["STATE_ORDER", "Asymmetry", "ChargePerLem", "DataFlow", "LemGain", "Pedestals", "Purity"]
