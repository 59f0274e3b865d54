"""The farm's raw-file storage as the configuration names it (``storage.backend``).

Kept apart from :mod:`farmtools.storage.base`, which every backend imports: the interface must
not import its implementations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from farmtools.storage.base import Storage
from farmtools.storage.local import LocalStorage
from farmtools.storage.xrootd import XRootDStorage

if TYPE_CHECKING:  # a reconstruction job imports the storage, not the configuration's model
    from farmtools.config import FarmConfig


def storage_from_config(cfg: FarmConfig) -> Storage:
    """The raw-file storage (``storage.input``) of the farm configuration."""
    storage: Storage
    if cfg.storage.backend == "xrootd":
        storage = XRootDStorage(cfg.storage.url, cfg.storage.input)
    else:
        storage = LocalStorage(cfg.path(cfg.storage.input))
    storage.max_rate = cfg.ingest.max_rate_mb_s * 1e6
    return storage
