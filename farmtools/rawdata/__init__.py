"""The 3x1x1 raw data files: names, byte layout, 12-bit packing, Huffman compression, reader and writer.

Lowest layer after :mod:`farmtools.detector`: imports nothing else from farmtools.
"""

from farmtools.rawdata.errors import RawDataError
from farmtools.rawdata.format import EventHeader, TriggerType
from farmtools.rawdata.naming import RawName, parse_raw_name
from farmtools.rawdata.reader import Event, RawFile, ValidationReport, read_events
from farmtools.rawdata.writer import RawFileWriter

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
