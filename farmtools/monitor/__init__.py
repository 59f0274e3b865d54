"""Data-quality monitoring: the shift crew's web page, alarms, and /metrics for Prometheus.

Modules: :mod:`.tasks` (the MonTask plugin interface), :mod:`.summary` (the readers of the
analysis results), :mod:`.store` (the summary directory kept up to date), :mod:`.queries`
(read-only bookkeeping queries), :mod:`.builtin` (the farm's tasks, one module each),
:mod:`.recofiles` (the reconstruction outputs as the page reads them, cached), :mod:`.alarms`,
:mod:`.metrics`, :mod:`.app` (Starlette), :mod:`.server` (in-process server thread),
:mod:`.cli`.  May import the bookkeeping, the config, the detector geometry and
farmtools.notify; only the top of the chain (the CLI, the data challenge) imports the monitor.
See docs/monitor.md.
"""
