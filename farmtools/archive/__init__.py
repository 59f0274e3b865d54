"""Archives for central storage: ~5 GB tar files of raw files, with a manifest and a log.

Owns the archive planner (pure), the streaming tar writer and reader, the transfer to central
storage, verification, single-file restore and the one command that may delete raw files from
the event builder (:mod:`farmtools.archive.cleanup`).  May import :mod:`farmtools.rawdata`,
:mod:`farmtools.config`, :mod:`farmtools.bookkeeping` and :mod:`farmtools.storage`; nothing
imports it except the CLI and the data challenge.
"""
