"""Fast reconstruction of 3x1x1 events: pedestals, noise, hits, 2D tracks, view matching, dQ/ds.

The numerical core (:mod:`.signal`, :mod:`.tracks`, :mod:`.event`) is pure functions over numpy
arrays with no I/O; :mod:`.output` writes ROOT files with uproot and :mod:`.driver` streams a raw
file through the core (:mod:`.decode`: a faster decoder of compressed payloads).  :mod:`.cli`
holds ``farmtools reco`` and ``farmtools verify-output`` (:mod:`.verify`); :mod:`.stage` copies
a ``root://`` input to local scratch.  May import :mod:`farmtools.detector`,
:mod:`farmtools.rawdata`, :mod:`farmtools.config`, :mod:`farmtools.job.exitcodes` and
:mod:`farmtools.storage.location` (which imports nothing from farmtools); nothing else from
the higher stages.
"""
