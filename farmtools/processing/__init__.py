"""Processing: from a stored raw file to a reconstruction job on a batch system, and its result.

Owns the manager (:mod:`~farmtools.processing.manager`), the ``jobs`` table access
(:mod:`~farmtools.processing.jobs`), job scripts (:mod:`~farmtools.processing.script`), the seed
job log (:mod:`~farmtools.processing.joblog`) and failure handling
(:mod:`~farmtools.processing.failures`).  Imports bookkeeping, batch, notify, config and rawdata;
nothing below imports it.
"""
