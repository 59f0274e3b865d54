"""The 3x1x1 raw data files: names, byte layout, 12-bit packing, Huffman compression, reader and writer.

Lowest layer after :mod:`farmtools.detector`: imports nothing else from farmtools.

The public names are loaded lazily (PEP 562): ``farmtools.rawdata.format`` and ``.naming`` are
pure standard library, while the reader and writer pull in numpy and numba (~100 MB of address
space).  A batch job that only walks the framing, or the ingest daemon that only parses names,
must not pay for the codecs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from farmtools.rawdata.errors import RawDataError
    from farmtools.rawdata.format import EventHeader, TriggerType
    from farmtools.rawdata.naming import RawName, parse_raw_name
    from farmtools.rawdata.reader import Event, RawFile, ValidationReport, read_events
    from farmtools.rawdata.writer import RawFileWriter

_WHERE = {
    "RawDataError": "errors",
    "EventHeader": "format",
    "TriggerType": "format",
    "RawName": "naming",
    "parse_raw_name": "naming",
    "Event": "reader",
    "RawFile": "reader",
    "ValidationReport": "reader",
    "read_events": "reader",
    "RawFileWriter": "writer",
}

__all__ = [
    "Event",
    "EventHeader",
    "RawDataError",
    "RawFile",
    "RawFileWriter",
    "RawName",
    "TriggerType",
    "ValidationReport",
    "parse_raw_name",
    "read_events",
]


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first use."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
