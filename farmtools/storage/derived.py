"""Publishing a derived file (a reconstruction output) to its place on the farm storage, verified.

A job writes its ROOT output to local scratch first (uproot needs a seekable local file), then
the output is published where the farm keeps outputs: ``<storage.output>/run<N>/...`` on the
XRootD server (EOS) or in a local directory.  Publishing is :meth:`Storage.put`, the copy
ingest uses: written under a hidden temporary name, its adler32 checked at the destination, and
only then renamed to the final name, so a half-written output never carries the name.

One difference from raw files, on purpose: a raw file is never replaced (``put`` refuses
different bytes), but a derived one may be.  A job retried after it had published its output
but before its exit status reached the manager (a killed node, say) finds the earlier try's
output; the new try's output replaces it.  The manager's claims keep one job per raw file at a
time, so nobody else writes that name meanwhile.  Never call this for raw files.

Imports the storage backends, :mod:`farmtools.storage.location` and (types only) the
configuration and the raw-file names.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from farmtools.storage.base import DestinationConflict, PutResult, Storage
from farmtools.storage.location import is_url, split_url

if TYPE_CHECKING:
    from farmtools.config import FarmConfig
    from farmtools.rawdata.naming import RawName

log = logging.getLogger(__name__)


def storage_of(target: str) -> tuple[Storage, str]:
    """The storage holding ``target``'s directory and the name inside it.

    ``target`` is ``root://host:port//dir/name`` or a local path.
    """
    from farmtools.storage.local import LocalStorage
    from farmtools.storage.xrootd import XRootDStorage

    if is_url(target):
        server, path = split_url(target)
        directory, _, name = path.rpartition("/")
        return XRootDStorage(server, directory or "/"), name
    p = Path(target)
    return LocalStorage(p.parent), p.name


def publish_output(local: Path, target: str) -> PutResult:
    """Copy the finished output ``local`` to ``target``, verified; replace an earlier try's."""
    storage, name = storage_of(target)
    storage.mkdir("")  # the run directory, on demand
    try:
        return storage.put(local, name)
    except DestinationConflict:
        log.warning("%s: replacing the output of an earlier try", storage.url(name))
        storage._discard(name)  # same package: the backend's own removal of one file
        return storage.put(local, name)


def output_location(cfg: FarmConfig, raw: RawName) -> str:
    """Where the reconstruction output of ``raw`` lives: the farm's one layout rule.

    ``<storage.output>/run<N>/recotask_run<N>-seq<M>.root`` on the farm storage: a
    ``root://host:port//path`` URL with XRootD storage (jobs publish it there from scratch), a
    local path otherwise.  A string, not a Path, whose folding would break the URL's ``//``.
    """
    rel = f"{raw.run_dir}/{raw.reco_filename}"
    if cfg.storage.backend == "xrootd":
        return f"{cfg.storage.url.rstrip('/')}//{cfg.storage.output.strip('/')}/{rel}"
    return str(cfg.path(cfg.storage.output) / rel)
