"""Is a file still open for writing?  Ingest never copies a file some process may still extend.

Two ways of knowing, tried in order:

1. **A read lease probe** (``fcntl(F_SETLEASE, F_RDLCK)`` on a read-only descriptor, released at
   once).  The kernel grants a read lease only when *no* descriptor or shared writable mapping
   holds the inode open for writing, whoever owns it: an exact, O(1) answer covering every
   process of this host, other users included.  It needs the file's owner or CAP_LEASE, and a
   file system that supports leases (local ones do; NFS and some FUSE ones do not).
2. **A scan of ``/proc/<pid>/fd``**: every descriptor pointing at the file is looked up in
   ``/proc/<pid>/fdinfo/<fd>``, whose ``flags`` tell its access mode.  Processes whose ``fd``
   directory cannot be read (other users, when not root) make the answer *unknown*.

:func:`open_for_writing` returns True, False, or None (unknown); with None the caller applies
``ingest.settle_s`` (the file must be that long unmodified).  Writers on *other hosts* (a DAQ
writing over NFS) are invisible to both ways: there the close-write event itself and
``settle_s`` are what protect.  Imports only the standard library.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

#: Lease probe errors that mean "leases unusable here", not "open for writing".
_NO_LEASE = {errno.EINVAL, errno.ENOLCK, errno.EPERM, errno.EACCES, errno.ENOTSUP}


def _lease_probe(path: Path) -> bool | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        try:
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                return True
            if exc.errno in _NO_LEASE:
                return None
            return None
        # Released at once: holding it would block a writer's open() for lease-break-time.
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)


def _proc_scan(path: Path, proc: Path = Path("/proc")) -> bool | None:
    """Look for a descriptor of ``path`` opened O_WRONLY or O_RDWR in any process."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    target = os.fsencode(os.path.realpath(path))
    me = os.getpid()
    unknown = False
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        fd_dir = os.path.join(entry.path, "fd")
        try:
            fds = os.listdir(fd_dir)
        except FileNotFoundError:
            continue  # the process exited
        except PermissionError:
            unknown = unknown or int(entry.name) != me
            continue
        for fd in fds:
            try:
                link = os.readlink(os.path.join(os.fsencode(fd_dir), os.fsencode(fd)))
            except OSError:
                continue
            if link != target and not link.startswith(target + b" ("):
                continue
            try:
                fst = os.stat(os.path.join(fd_dir, fd))
                if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
                    continue
                with open(os.path.join(entry.path, "fdinfo", fd)) as info:
                    flags = next(
                        (int(ln.split()[1], 8) for ln in info if ln.startswith("flags:")), 0
                    )
            except OSError:
                continue
            if flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR):
                return True
    return None if unknown else False


def open_for_writing(path: str | os.PathLike[str]) -> bool | None:
    """True if some process of this host holds ``path`` open for writing, False if none, None if unknown."""
    p = Path(path)
    answer = _lease_probe(p)
    if answer is not None:
        return answer
    return _proc_scan(p)
