"""What an archive holds: the manifest inside it (JSON, last member) and the log beside it (text).

The manifest travels with the tar, so an archive found on tape years later still says which
runs and files it holds, their sizes and adler32 checksums and where each file's bytes start,
with the tag and creation time; it cannot hold the archive's own checksum (that changes as it
is written), so the log beside the archive repeats every member line and ends with it, as the
seed's "log with every archive" did.  Pure data and formatting; imports only
:mod:`farmtools.storage.checksum`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from farmtools.storage.checksum import adler32_hex, parse_adler32

FORMAT = "farmtools-archive/1"
MANIFEST_SUFFIX = ".manifest.json"


class ManifestError(ValueError):
    """A manifest or an archive log cannot be read; the message names the archive."""


@dataclass(frozen=True)
class MemberInfo:
    """One raw file inside an archive.

    ``offset`` is where its data start in the tar file (after its header), so a single file
    can be read back with one ranged read, even from remote storage.
    """

    name: str  # raw file name, run<N>-seq<M>.dat
    member: str  # path inside the tar, run<N>/run<N>-seq<M>.dat (the farm storage layout)
    run: int
    seq: int
    size: int
    adler32: int
    offset: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "member": self.member,
            "run": self.run,
            "seq": self.seq,
            "size": self.size,
            "adler32": adler32_hex(self.adler32),
            "offset": self.offset,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MemberInfo:
        return cls(
            str(d["name"]),
            str(d["member"]),
            int(d["run"]),
            int(d["seq"]),
            int(d["size"]),
            parse_adler32(str(d["adler32"])),
            int(d["offset"]),
        )


@dataclass(frozen=True)
class Manifest:
    """Everything an archive holds, written as its last member."""

    archive: str
    tag: str
    created: str  # ISO 8601, UTC
    members: tuple[MemberInfo, ...]

    @property
    def runs(self) -> tuple[int, ...]:
        return tuple(sorted({m.run for m in self.members}))

    @property
    def member_name(self) -> str:
        """Name of the manifest inside the tar."""
        return self.archive + MANIFEST_SUFFIX

    def to_bytes(self) -> bytes:
        doc = {
            "format": FORMAT,
            "archive": self.archive,
            "tag": self.tag,
            "created": self.created,
            "runs": list(self.runs),
            "total_size": sum(m.size for m in self.members),
            "files": [m.to_json() for m in self.members],
        }
        return (json.dumps(doc, indent=1) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Manifest:
        """Parse a manifest; ``where`` names the archive in errors."""
        try:
            doc = json.loads(data)
            if doc.get("format") != FORMAT:
                raise ManifestError(f"{where}: manifest format {doc.get('format')!r}, not {FORMAT}")
            members = tuple(MemberInfo.from_json(d) for d in doc["files"])
            return cls(str(doc["archive"]), str(doc["tag"]), str(doc["created"]), members)
        except (ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, ManifestError):
                raise
            raise ManifestError(f"{where}: manifest is not valid: {exc}") from None


def log_text(manifest: Manifest, size: int, adler32: int) -> str:
    """The log beside the archive: a header, one line per member, the archive checksum last.

    Member lines are ``adler32 size offset member`` so that ``sort``/``awk`` work on them.
    """
    lines = [
        f"# archive {manifest.archive}.tar tag {manifest.tag} created {manifest.created}",
        f"# runs {' '.join(str(r) for r in manifest.runs)}",
        "# adler32 size offset member",
    ]
    lines += [f"{adler32_hex(m.adler32)} {m.size} {m.offset} {m.member}" for m in manifest.members]
    lines.append(f"archive {manifest.archive}.tar size {size} adler32 {adler32_hex(adler32)}")
    return "\n".join(lines) + "\n"


def parse_log_checksum(text: str, where: str) -> tuple[int, int]:
    """(size, adler32) of the archive from the last line of its log."""
    last = text.rstrip("\n").rsplit("\n", 1)[-1].split()
    if len(last) != 6 or last[0] != "archive" or last[2] != "size" or last[4] != "adler32":
        raise ManifestError(f"{where}: last line is not 'archive <name> size <n> adler32 <hex>'")
    return int(last[3]), parse_adler32(last[5])


def members_by_name(members: Sequence[MemberInfo]) -> dict[str, MemberInfo]:
    return {m.name: m for m in members}
