"""Online analyses of reconstructed files: electron lifetime (purity) and LEM gain.

:mod:`.estimators`, :mod:`.purity`, :mod:`.gain`, :mod:`.summary` and :mod:`.lem` are pure
functions over numpy arrays; :mod:`.hits` reads the reconstruction's ROOT files with uproot,
:mod:`.pipeline` is the hook the processing manager calls and :mod:`.cli` the commands.  May
import :mod:`farmtools.detector`, :mod:`farmtools.config` and :mod:`farmtools.reco` (for the
column names of its output); nothing from the daemons.
"""
