"""Fast reconstruction of 3x1x1 events: pedestals, noise, hits, 2D tracks, view matching, dQ/ds.

The numerical core (:mod:`.signal`, :mod:`.tracks`, :mod:`.event`) is pure functions over numpy
arrays with no I/O; :mod:`.output` writes ROOT files with uproot and :mod:`.driver` streams a raw
file through the core.  May import :mod:`farmtools.detector`, :mod:`farmtools.rawdata` and
:mod:`farmtools.config`; nothing from the higher stages.
"""
