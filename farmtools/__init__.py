"""farmtools: the online storage and processing farm of the WA105 dual-phase LAr TPC.

Stages live in subpackages named after what they are (rawdata, emulator, ingest, storage,
bookkeeping, batch, processing, reco, analysis, monitor, archive, challenge); lower layers
(``detector``, ``rawdata``, ``bookkeeping``'s schema) import nothing from higher ones.
"""

__version__ = "0.1.0"
