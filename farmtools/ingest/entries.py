"""What the ingest daemon learns about a DAQ directory's entries without opening a file.

Directory walks (``scandir``: names and inode numbers), the kind of an entry that is not a
regular file, whether a new entry was written here, and whether this daemon may read a file.
Shared by the per-file pipeline (:mod:`farmtools.ingest.pipeline`) and the scheduler that
hands it paths (:mod:`farmtools.ingest.service`).
"""

from __future__ import annotations

import getpass
import logging
import os
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from farmtools.bookkeeping.names import db_text

log = logging.getLogger("farmtools.ingest")


def utc(ts: float) -> datetime:
    """A file time (``st_mtime``) as the database stores times."""
    return datetime.fromtimestamp(ts, tz=UTC)


def written_here(st: os.stat_result) -> bool:
    """Whether a new entry (IN_CREATE) is a file created by a writer in this directory.

    A regular file with one link whose data is as new as its inode's last change: created
    with ``open(O_CREAT)`` and only written since (a write sets mtime and ctime alike).  Its
    writer's close-write will come here.  Not so for a hard link (two links, or a ctime
    newer than the data: ``link()`` changes the ctime only) of a file written elsewhere,
    nor for a symbolic link, FIFO, device or socket: no close-write comes for those.
    """
    return stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_mtime_ns == st.st_ctime_ns


def entry_ino(entry: os.DirEntry[str]) -> int | None:
    """The inode number of ``entry`` as ``lstat`` gives it (None if it is gone)."""
    try:
        return entry.stat(follow_symlinks=False).st_ino
    except OSError:
        return None


def entry_kind(path: Path, st: os.stat_result) -> str:
    """What a non-regular entry is, for its ``ignored`` reason (never opened, never followed)."""
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        try:
            target = db_text(os.fsdecode(os.readlink(path)))
        except OSError as exc:
            target = f"? ({exc.strerror})"
        return f"a symbolic link to {target} (not followed)"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe; never opened)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "character" if stat.S_ISCHR(mode) else "block"
        dev = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
        return f"a {kind} device node {dev} (never opened)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return f"file type {stat.S_IFMT(mode):o}"


def permission_problem(path: Path) -> str | None:
    """Why this process may not read ``path`` (a permission problem), or None if it may."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except PermissionError as exc:
        try:
            st = path.stat()
            whose = (
                f"owner uid {st.st_uid}, group gid {st.st_gid}, mode {stat.filemode(st.st_mode)}"
            )
        except OSError:
            whose = "its directory cannot be searched"
        return (
            f"{db_text(os.fsdecode(path))}: permission denied ({exc.strerror}) for this daemon "
            f"(user {current_user()}, uid {os.geteuid()}; the file: {whose}); not corrupt: "
            "it is taken by itself once readable"
        )
    except OSError:
        return None  # another problem: the raw-file check names it
    os.close(fd)
    return None


def walk_entries(
    top: Path, on_dir: Callable[[Path], None] | None = None, *, ordered: bool = True
) -> Iterator[os.DirEntry[str]]:
    """Every non-directory entry below ``top`` (subdirectories included), errors skipped;
    ``on_dir`` is called with each directory before it is listed; by name in each directory
    unless ``ordered`` is False."""
    stack = [top]
    while stack:
        d = stack.pop()
        if on_dir is not None:
            on_dir(d)
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except OSError as exc:
            log.warning("%s: cannot list: %s", db_text(os.fsdecode(d)), exc)
            continue
        for e in sorted(entries, key=lambda e: e.name) if ordered else entries:
            if e.is_dir(follow_symlinks=False):
                stack.append(Path(e.path))
            else:
                yield e


def walk_files(top: Path) -> Iterator[Path]:
    """:func:`walk_entries` as paths."""
    return (Path(e.path) for e in walk_entries(top))


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return str(os.getuid())
