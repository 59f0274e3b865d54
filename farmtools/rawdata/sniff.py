"""Which raw format a file is in: the 3x1x1's ``311`` or the 6x6x6's ProtoDUNE-DP, by name then content.

A name decides when it is one of the two conventions (``run<N>-seq<M>.dat`` or
``<run>_<seq>_<id>.<ext>``); otherwise the first bytes do: a 311 file has its first event's
``0xFFFF`` right after the 5-byte run header, a ProtoDUNE-DP file right after its event table.

Pure standard library.
"""

from __future__ import annotations

import os
import struct
from typing import Literal

from farmtools.rawdata.naming import parse_raw_name
from farmtools.rawdata.pddp_naming import parse_l2_name

RawFormat = Literal["311", "pddp"]


def format_by_name(path: str | os.PathLike[str]) -> RawFormat | None:
    if parse_l2_name(path) is not None:
        return "pddp"
    if parse_raw_name(path) is not None:
        return "311"
    return None


def format_by_content(path: str | os.PathLike[str]) -> RawFormat | None:
    """The format the first bytes show, or None (unreadable, or neither)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) >= 7 and head[5:7] == b"\xff\xff":
                return "311"
            if len(head) == 8:
                n = struct.unpack_from("<I", head, 4)[0]
                f.seek(8 + 16 * n)
                if n and f.read(2) == b"\xff\xff":
                    return "pddp"
    except OSError:
        return None
    return None


def raw_format(path: str | os.PathLike[str]) -> RawFormat | None:
    """By name, else by content."""
    return format_by_name(path) or format_by_content(path)
