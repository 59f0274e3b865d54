"""Farm storage backends behind one narrow interface: :class:`Storage`, :class:`LocalStorage`, :class:`XRootDStorage`.

Owns copying a file onto the storage with a one-pass adler32, verification at the destination
and the "final name only when complete" rule.  Imports nothing from other farmtools stages except
the configuration type (:func:`storage_from_config`).
"""

from farmtools.storage.base import (
    ChecksumMismatch,
    DestinationConflict,
    PutResult,
    SourceChanged,
    StatInfo,
    Storage,
    StorageError,
    TransientStorageError,
)
from farmtools.storage.checksum import adler32, adler32_file, adler32_hex
from farmtools.storage.factory import storage_from_config
from farmtools.storage.local import LocalStorage
from farmtools.storage.xrootd import XRootDStorage

__all__ = [
    "ChecksumMismatch",
    "DestinationConflict",
    "LocalStorage",
    "PutResult",
    "SourceChanged",
    "StatInfo",
    "Storage",
    "StorageError",
    "TransientStorageError",
    "XRootDStorage",
    "adler32",
    "adler32_file",
    "adler32_hex",
    "storage_from_config",
]
