"""An independent reading of the ProtoDUNE-DP files and channel map, from the public decoder's logic.

Written only from what ``PDDPRawInputDriver`` and ``PDDPChannelMap`` (LArSoft, dunetpc) do,
step by step as they do it, without farmtools' own format modules: the oracle the tests hold
farmtools' reader, writer and event builder to.  Slow and literal on purpose.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

HEADER = 44
GOOD_MISSING = 0x19


def channel_map_walk(cards_real: list[int]) -> list[tuple[int, int, int, int, bool]]:
    """(seqn, crp, view, view channel, exists) of the 7680 channels, walked as the public map does."""
    kel_nor = [8 * (i // 8) + 7 - i % 8 for i in range(32)]
    kel_inv = [24 - 8 * (i // 8) + i % 8 for i in range(32)]
    counters = [0] * 8
    out = []
    seqn = 0
    for crate in range(12):
        for card in range(10):
            view = 0 if crate < 6 else 1
            if crate < 3:
                crp = 2 if card >= 5 else 1
            elif crate < 6:
                crp = 3 if card >= 5 else 0
            elif crate < 9:
                crp = 1 if card >= 5 else 0
            else:
                crp = 2 if card >= 5 else 3
            kel = kel_nor if view == 0 else kel_inv
            top_first = view == 1
            k = view * 4 + crp
            exists = crate < len(cards_real) and card < cards_real[crate]
            if top_first:
                counters[k] += 32
            for connector in range(2):
                for idx in range(32):
                    vch = counters[k] + kel[idx]
                    if view == 1:
                        vch = 959 - vch
                    out.append((seqn, crp, view, vch, exists))
                    seqn += 1
                if connector == 0:
                    counters[k] += -32 if top_first else 32
            counters[k] += 64 if top_first else 32
    return out


@dataclass
class OracleFragment:
    run: int
    run_flags: int
    trigger_type: int
    trigger_number: int
    seconds: int
    nanoseconds: int
    flag: int
    event_number: int
    lro: bytes
    cro: bytes


@dataclass
class OracleEvent:
    fragments: list[OracleFragment] = field(default_factory=list)
    good: bool = True


def read_file(path: str) -> list[OracleEvent]:
    """Every event of a ProtoDUNE-DP file, as the public decoder splits it (whole file in memory)."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack_from("<I", data, 4)[0]
    assert n > 0, "the decoder refuses a file without events"
    sizes = [struct.unpack_from("<I", data, 8 + 16 * i + 4)[0] for i in range(n)]
    pos = 8 + 16 * n
    events = []
    for size in sizes:
        buf = data[pos : pos + size]
        assert len(buf) == size, "event runs past the end of the file"
        pos += size
        events.append(_split(buf))
    assert pos == len(data), "bytes after the last event"
    return events


def _split(buf: bytes) -> OracleEvent:
    event = OracleEvent()
    idx = 0
    while idx < len(buf):
        assert buf[idx] == 0xFF and buf[idx + 1] == 0xFF, "event delimiting word not found"
        run = struct.unpack_from("<I", buf, idx + 2)[0]
        flags = buf[idx + 6]
        # the trigger record, a C struct in host order: uint8, 3 padding, uint32, timespec
        ttype = buf[idx + 7]
        tnum = struct.unpack_from("<I", buf, idx + 11)[0]
        sec, nsec = struct.unpack_from("<qq", buf, idx + 15)
        flag = buf[idx + 31]
        evnum, nlro, ncro = struct.unpack_from("<III", buf, idx + 32)
        body = idx + HEADER
        frag = OracleFragment(
            run, flags, ttype, tnum, sec, nsec, flag, evnum,
            buf[body : body + nlro], buf[body + nlro : body + nlro + ncro],
        )  # fmt: skip
        idx = body + nlro + ncro + 1
        assert idx <= len(buf), "fragment runs past the end of the event"
        if event.fragments:
            first = event.fragments[0]
            if first.run != frag.run or first.event_number != frag.event_number:
                continue
        event.fragments.append(frag)
        event.good = event.good and (flag & 0x3F) == GOOD_MISSING
    return event


def unpack_cro(cro: bytes, samples: int) -> npt.NDArray[np.uint16]:
    """12-bit samples, three bytes for two, channel after channel: (channels, samples)."""
    b = np.frombuffer(cro, dtype=np.uint8).reshape(-1, 3).astype(np.uint16)
    v1 = ((b[:, 0] << 4) + ((b[:, 1] >> 4) & 0xF)) & 0xFFF
    v2 = (((b[:, 1] & 0xF) << 8) + b[:, 2]) & 0xFFF
    return np.stack([v1, v2], axis=1).reshape(-1, samples)
