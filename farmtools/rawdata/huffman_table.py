"""The table-driven decoder of the compressed payload: one 13-bit code packet per step.

Packets are fixed-size (13 bits), so the position of the next packet never depends on what the
current one says, and the 12 code bits of a packet decode to the same differences whatever came
before, except in two ways: the zeros left over from the previous packet (which only lengthen
its *first* code) and, for a packet that starts with repeat codes, the last difference.  So a
table indexed by the packet (and by "no zeros left over", which decides whether a leading ``1``
is a repeat) gives the whole run of samples a packet encodes as ``prev + v * M[j] + F[j]``:
``v`` is the packet's first difference (or the repeated last one), known only at run time, ``M``
and ``F`` come from the table.  A packet's first 16 samples (a typical packet holds 2-4 at
1-2 ADC of noise) are then one vector expression of 16-bit lanes (:func:`_run16`: ``M`` and
``F`` as 16 bytes each, ``v`` and ``prev`` broadcast), whatever their number, instead of a
branch per code; a packet of more than 16 (repeats, at low noise) takes two more.

The table loop runs until the packet that completes the channel (it is cut short by the
padding to a byte boundary, and what follows it is the next channel); that packet is walked
code by code, as the reference walk does.  Faults are not tested per packet: the samples'
range is checked once per channel (an OR of the row), and an impossible difference (a repeat
after a raw sample, more than 7 zeros: ``NO_DIFF``) puts the packet's first sample far out of
range.  The kernel only says *that* a stream is bad; the reference walk in
:mod:`farmtools.rawdata.huffman` says where and why.

Measured choices (benchmarks/bench_rawdata.py, 2026-12-07/08): no helper that takes an array is
called per packet (numba counts references on every call: it cost 3 x); the two candidate
entries of a packet are loaded before "zeros left over" is known and each is used twice
(LLVM turns a selection between two single-use loads into a load from the selected address,
which puts the load into the loop's chain of dependencies); few live values, so that nothing
in the chain is spilled to the stack (the loop was 110 instructions per packet, now ~80); the
packet is one unaligned big-endian 8-byte load from a payload copy with zeros behind it.

Tables are built on first use by a compiled builder (cached on disk like every kernel here), so
importing this module costs nothing.  Imports nothing from farmtools.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import numba
import numpy as np
import numpy.typing as npt
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

U8 = npt.NDArray[np.uint8]
U16 = npt.NDArray[np.uint16]
I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]

#: Entries: the 12 code bits of a packet, plus 4096 when no zeros are left over from before;
#: the last one, ``RAW``, stands for a raw packet.
N_ENTRIES = (1 << 13) + 1
RAW = 1 << 13
#: Samples a table row can hold: a leading repeat and eleven more (4 + 11 * 4).
ROW = 48
#: Samples of a packet written by one vector expression (:func:`_run16`); more are looped.
RUN = 16
#: Columns of the scalar table, one byte each, read as one int64 per entry (``_field``).
C_N, C_LZ, C_REP, C_TZ, C_LV, C_LF, C_EM, C_EF = range(8)
#: Biases that keep the signed columns (last difference, end offset) non-negative bytes.
LF_BIAS, EF_BIAS = 8, 128
#: ``C_LZ`` of a packet holding an invalid code (more than 7 zeros before a one): its first
#: difference is then ``NO_DIFF`` (``_DZ``), its ``C_N`` 0 and its ``C_EM`` 1.
BAD_ZEROS = 32
#: A bit no entry sets (in the ``C_REP`` byte, a 0 or 1).
NEVER = 0x40 << (8 * C_REP)
#: The difference of no difference: a repeat with nothing to repeat, or more than 7 zeros.
#: A packet that uses it starts on a sample far outside 0..4095 (its first sample is always
#: ``start + v``, also in 16-bit lanes), which is how it is caught.
NO_DIFF = 1 << 15
#: The raw packet's entry (one sample, no difference, none carried over), as a constant.
S_RAW = (1 << (8 * C_N) | LF_BIAS << (8 * C_LF) | EF_BIAS << (8 * C_EF)) - (1 << 64)
#: Difference coded by k leading zeros (k = 1..7); index 0 is the repeat code, 8 invalid.
_DIFF_OF_ZEROS = np.array([0, 0, -1, 1, -2, 2, -3, 3, 0], dtype=np.int64)
#: The same for any count of zeros the decoder can meet (up to 16 left over + 12).
_DZ = np.full(64, NO_DIFF, dtype=np.int64)
_DZ[1:8] = _DIFF_OF_ZEROS[1:8]


def _splat16(builder: ir.IRBuilder, value: ir.Value) -> ir.Value:  # pragma: no cover - codegen
    """LLVM IR: the 16-bit ``value`` in every one of the ``RUN`` lanes of a vector."""
    vec16 = ir.VectorType(ir.IntType(16), RUN)
    one = builder.insert_element(
        ir.Constant(vec16, ir.Undefined), value, ir.Constant(ir.IntType(64), 0)
    )
    return builder.shuffle_vector(one, one, ir.Constant(ir.VectorType(ir.IntType(32), RUN), None))


@intrinsic
def _run16_intrinsic(typingctx, row, index, tab, m_at, f_at, v, start):  # type: ignore[no-untyped-def]  # pragma: no cover
    """``row[index:index + 16] = start + v * M + F``, ``M`` and ``F`` 16 int8 at ``tab[m_at]``,
    ``tab[f_at]``.

    One vector expression of 16-bit lanes (two or one SIMD registers): the samples a code packet
    encodes, whatever their number up to 16, from its first difference ``v`` (or the repeated
    last one) and the sample before it.  Lanes past the packet's samples are overwritten by the
    next packet; the caller keeps ``index + 16`` inside the row.
    """
    i8, i16 = ir.IntType(8), ir.IntType(16)
    vec8, vec16 = ir.VectorType(i8, RUN), ir.VectorType(i16, RUN)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        out = context.make_array(sig.args[0])(context, builder, args[0])
        tab = context.make_array(sig.args[2])(context, builder, args[2])
        m_ptr = builder.bitcast(builder.gep(tab.data, [args[3]]), vec8.as_pointer())
        f_ptr = builder.bitcast(builder.gep(tab.data, [args[4]]), vec8.as_pointer())
        m = builder.sext(builder.load(m_ptr, align=1), vec16)
        f = builder.sext(builder.load(f_ptr, align=1), vec16)
        vv = _splat16(builder, builder.trunc(args[5], i16))
        ss = _splat16(builder, builder.trunc(args[6], i16))
        value = builder.add(builder.add(builder.mul(vv, m), f), ss)
        dst = builder.bitcast(builder.gep(out.data, [args[1]]), vec16.as_pointer())
        builder.store(value, dst, align=1)
        return context.get_dummy_value()

    return types.void(row, index, tab, m_at, f_at, v, start), codegen


_run16 = cast("Callable[[U16, int, I8, int, int, int, int], None]", _run16_intrinsic)


@intrinsic
def _load_pair_intrinsic(typingctx, tab, index):  # type: ignore[no-untyped-def]  # pragma: no cover
    """``(tab[index], tab[index + 1])`` as one 16-byte load.

    The two candidate entries of a code packet, loaded before it is known which one applies:
    LLVM turns a selection between two loaded values into a load from the selected address,
    which puts the load's latency into the packet loop's chain of dependencies.
    """
    pair = types.UniTuple(types.int64, 2)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        vec = ir.VectorType(ir.IntType(64), 2)
        ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), vec.as_pointer())
        both = builder.load(ptr, align=8)
        first = builder.extract_element(both, ir.Constant(ir.IntType(32), 0))
        second = builder.extract_element(both, ir.Constant(ir.IntType(32), 1))
        return context.make_tuple(builder, pair, [first, second])

    return pair(tab, index), codegen


_load_pair = cast("Callable[[I64, int], tuple[int, int]]", _load_pair_intrinsic)


@intrinsic
def _store_be64_intrinsic(typingctx, buf, index, word):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Store ``word`` big-endian at ``buf[index:index + 8]`` (one unaligned store)."""

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), ir.IntType(64).as_pointer())
        bswap = builder.module.declare_intrinsic("llvm.bswap", [ir.IntType(64)])
        builder.store(builder.call(bswap, [args[2]]), ptr, align=1)
        return context.get_dummy_value()

    return types.void(buf, index, word), codegen


#: (for the encoder in :mod:`farmtools.rawdata.huffman`)
store_be64 = cast("Callable[[U8, int, int], None]", _store_be64_intrinsic)


@intrinsic
def _load_be64_intrinsic(typingctx, buf, index):  # type: ignore[no-untyped-def]  # pragma: no cover
    """The 8 bytes at ``buf[index:index + 8]`` as a big-endian int64 (one unaligned load)."""

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), ir.IntType(64).as_pointer())
        bswap = builder.module.declare_intrinsic("llvm.bswap", [ir.IntType(64)])
        return builder.call(bswap, [builder.load(ptr, align=1)])

    return types.int64(buf, index), codegen


_load_be64 = cast("Callable[[U8, int], int]", _load_be64_intrinsic)


def _ld64_codegen(big_endian: bool):  # type: ignore[no-untyped-def]
    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        word = builder.load(builder.inttoptr(args[0], ir.IntType(64).as_pointer()), align=1)
        if big_endian:
            bswap = builder.module.declare_intrinsic("llvm.bswap", [ir.IntType(64)])
            word = builder.call(bswap, [word])
        return word

    return codegen


@intrinsic
def _ld64_intrinsic(typingctx, addr):  # type: ignore[no-untyped-def]  # pragma: no cover
    """The 8 bytes at address ``addr`` as a little-endian int64."""
    return types.int64(addr), _ld64_codegen(False)


@intrinsic
def _ld64be_intrinsic(typingctx, addr):  # type: ignore[no-untyped-def]  # pragma: no cover
    """The 8 bytes at address ``addr`` as a big-endian int64."""
    return types.int64(addr), _ld64_codegen(True)


_ld64 = cast("Callable[[int], int]", _ld64_intrinsic)


@intrinsic
def _ld_pair_intrinsic(typingctx, addr):  # type: ignore[no-untyped-def]  # pragma: no cover
    """The two int64 at address ``addr`` as one 16-byte load (see :func:`_load_pair_intrinsic`)."""
    pair = types.UniTuple(types.int64, 2)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        vec = ir.VectorType(ir.IntType(64), 2)
        both = builder.load(builder.inttoptr(args[0], vec.as_pointer()), align=8)
        first = builder.extract_element(both, ir.Constant(ir.IntType(32), 0))
        second = builder.extract_element(both, ir.Constant(ir.IntType(32), 1))
        return context.make_tuple(builder, pair, [first, second])

    return pair(addr), codegen


_ld_pair = cast("Callable[[int], tuple[int, int]]", _ld_pair_intrinsic)
_ld64be = cast("Callable[[int], int]", _ld64be_intrinsic)


@intrinsic
def _run16_at_intrinsic(typingctx, dst, m_at, f_at, v, start):  # type: ignore[no-untyped-def]  # pragma: no cover
    """``dst[0:16] = start + v * M + F`` (uint16 lanes), M, F 16 int8 each at ``m_at``, ``f_at``."""
    i8, i16 = ir.IntType(8), ir.IntType(16)
    vec8, vec16 = ir.VectorType(i8, RUN), ir.VectorType(i16, RUN)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        m = builder.sext(builder.load(builder.inttoptr(args[1], vec8.as_pointer()), align=1), vec16)
        f = builder.sext(builder.load(builder.inttoptr(args[2], vec8.as_pointer()), align=1), vec16)
        vv = _splat16(builder, builder.trunc(args[3], i16))
        ss = _splat16(builder, builder.trunc(args[4], i16))
        value = builder.add(builder.add(builder.mul(vv, m), f), ss)
        builder.store(value, builder.inttoptr(args[0], vec16.as_pointer()), align=1)
        return context.get_dummy_value()

    return types.void(dst, m_at, f_at, v, start), codegen


_run16_at = cast("Callable[[int, int, int, int, int], None]", _run16_at_intrinsic)


#: The state a packet step carries: samples so far, the last sample, the last difference, the
#: zeros left over, the entries used (OR-ed: an invalid code), both candidate entries (OR-ed).
State = tuple[int, int, int, int, int, int]


@numba.njit(inline="always")
def _step(
    p: int, st: State, sc_at: int, runs_at: int, mf_at: int, row_at: int
) -> State:  # pragma: no cover - compiled
    """One packet ``p`` of the unrolled block loop of :func:`decode_channels`: the table loop's
    packet step, on addresses (tables, the row), so that nothing counts references.

    Unlike the table loop's step, the zeros left over for the next packet are read from the
    entry of this packet's 12 bits (``s0``, the same for both readings of a leading ``1``),
    not from the entry selected: no chain of dependencies runs through them from packet to
    packet.  An all-zero packet is an entry too (no sample, 12 zeros left over); an entry with
    an invalid code is flagged in ``C_LZ`` (``BAD_ZEROS``) and found in the OR of the entries.
    """
    count, prev, last, z, used, both = st
    raw = p < 4096
    w = p & 0xFFF
    s0, s1 = _ld_pair(sc_at + 16 * w)
    both |= s0 | s1  # (the loads' second use: a selection between them stays a cmov)
    zf = z == 0
    s = s1 if zf else s0
    s = S_RAW if raw else s
    e = w | 4096 if zf else w
    e = RAW if raw else e
    start = p if raw else prev
    n = _field(s, C_N)
    dk = _DZ[z + _field(s, C_LZ)]
    rep = -_field(s, C_REP)
    v = dk ^ ((dk ^ last) & rep)
    at = runs_at + 2 * RUN * e
    _run16_at(row_at + 2 * count, at, at + RUN, v, start)
    if n > RUN:
        r = mf_at + 2 * ROW * e
        _run16_at(row_at + 2 * (count + RUN), r + RUN, r + ROW + RUN, v, start)
        _run16_at(row_at + 2 * (count + 2 * RUN), r + 2 * RUN, r + ROW + 2 * RUN, v, start)
    prev = start + v * _field(s, C_EM) + _field(s, C_EF) - EF_BIAS
    count += n
    last = v if _field(s, C_LV) else _field(s, C_LF) - LF_BIAS
    last = NO_DIFF if raw else last
    z = 0 if raw else _field(s0, C_TZ)
    return count, prev, last, z, used | s, both


@numba.njit(inline="always")
def _packet(at: int, j: int) -> int:  # pragma: no cover - compiled
    """Packet ``j`` (a constant) of the 8 that start at bit 5 of the byte at address ``at``.

    A channel starts on a byte and its first packet is raw, so its packets from the second on
    start at bit 5 of a byte every 13 bytes (8 packets): their shifts are constants.
    """
    b = 5 + 13 * j
    return (_ld64be(at + (b >> 3)) >> (51 - (b & 7))) & 0x1FFF


@numba.njit(inline="always")
def _count_step(
    p: int, st: tuple[int, int, bool], counts_at: int
) -> tuple[int, int, bool]:  # pragma: no cover - compiled
    """One packet of :func:`channel_starts`' unrolled blocks: (samples so far, zeros left
    over, a code packet last)."""
    count, z, _ = st
    code = p >> 12  # (arithmetic, not a selection: LLVM made those branches, as good as random)
    keep = -code
    w = p & 0xFFF
    n = _ld64(counts_at + 2 * w + int(z == 0)) & 0xFF
    count += (n & keep) + 1 - code
    z = _ld64(counts_at + 2 * 4096 + w) & 0xFF & keep  # (from w alone: no chain through z)
    return count, z, code == 1


@numba.njit(cache=True, nogil=True)
def _build(scal: U8, mf: I8, diff_of_zeros: I64) -> None:  # pragma: no cover - compiled
    """Fill the scalar columns and the ``M`` (``mf[:, :ROW]``) and ``F`` rows of every entry."""
    scal[RAW, C_N] = 1
    scal[RAW, C_LF] = LF_BIAS
    scal[RAW, C_EF] = EF_BIAS
    for e in range(RAW):
        w = e & 0xFFF
        if w == 0:  # all zeros: no sample, the last difference kept, 12 zeros left over
            scal[e, C_REP] = 1
            scal[e, C_TZ] = 12
            scal[e, C_LV] = 1
            scal[e, C_LF] = LF_BIAS
            scal[e, C_EF] = EF_BIAS
            continue
        lz = 0
        while not (w >> (11 - lz)) & 1:
            lz += 1
        rep = lz == 0 and (e >> 12) == 1
        n = 4 if rep else 1
        for j in range(n):
            mf[e, j] = j + 1
        msum, fsum = n, 0
        cur_is_v, cur = True, 0
        zeros = 0
        bad = False
        for b in range(lz + 1, 12):
            if not (w >> (11 - b)) & 1:
                zeros += 1
                continue
            if zeros > 7:
                bad = True
                break
            for _ in range(4 if zeros == 0 else 1):
                if zeros != 0:
                    cur = diff_of_zeros[zeros]
                    cur_is_v = False
                    fsum += cur
                elif cur_is_v:
                    msum += 1
                else:
                    fsum += cur
                mf[e, n] = msum
                mf[e, ROW + n] = fsum
                n += 1
            zeros = 0
        scal[e, C_LZ] = BAD_ZEROS if bad else lz
        scal[e, C_REP] = 1 if rep else 0
        scal[e, C_EM] = 1
        scal[e, C_EF] = EF_BIAS
        if not bad:
            scal[e, C_N] = n
            scal[e, C_TZ] = zeros
            scal[e, C_LV] = 1 if cur_is_v else 0
            scal[e, C_LF] = cur + LF_BIAS
            scal[e, C_EM] = mf[e, n - 1]
            scal[e, C_EF] = mf[e, ROW + n - 1] + EF_BIAS


@functools.cache
def tables() -> tuple[I64, I8, I8]:
    """The tables of the kernel, built once per process (a few ms).

    * the scalar columns of each entry packed in one int64 (``_field`` reads one), the two
      entries of a packet's 12 bits side by side (``w`` at ``2 w``, ``w | 4096`` at
      ``2 w + 1``), ``RAW`` last;
    * ``M[0:16]`` and ``F[0:16]`` of each entry as 32 bytes, for :func:`_run16`;
    * ``M`` and ``F`` of all 48 samples as bytes, for the packets that encode more than 16.
    """
    scal = np.zeros((N_ENTRIES, 8), np.uint8)
    mf = np.zeros((N_ENTRIES, 2 * ROW), np.int8)
    _build(scal, mf, _DIFF_OF_ZEROS)
    runs = np.concatenate([mf[:, :RUN], mf[:, ROW : ROW + RUN]], axis=1)
    sc = scal.view("<i8")[:, 0]
    pairs = np.concatenate([np.stack([sc[:4096], sc[4096:RAW]], axis=1).ravel(), sc[RAW:]])
    return pairs, np.ascontiguousarray(runs).ravel(), mf.ravel()


@numba.njit(inline="always")
def _field(s: int, col: int) -> int:  # pragma: no cover - compiled
    return (s >> (8 * col)) & 0xFF


@numba.njit(inline="always")
def _diff(zeros: int) -> int:  # pragma: no cover - compiled
    """The difference coded by 1..7 zeros (0, -1, +1, -2, +2, -3, +3), without a table."""
    neg = (zeros & 1) - 1  # -1 for an even count (a negative difference), else 0
    return ((zeros >> 1) ^ neg) - neg


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _tail(
    buf: U8,
    nbits: int,
    row: U16,
    count: int,
    pos: int,
    z: int,
    last: int,
    last_valid: bool,
    prev: int,
    chk: int,
) -> tuple[int, int]:  # pragma: no cover - compiled
    """The last packets of a channel, code by code (the one that completes it is cut short).

    Returns the bit position after the channel's last code (before its padding) and ``chk``
    with the samples written OR-ed in, or (-1, chk) for an invalid stream.  Called once per
    channel (numba counts references to ``row`` on every call: not in the packet loop).
    """
    ns = row.shape[0]
    while count < ns:
        if pos >= nbits:
            return -1, chk
        p = (_load_be64(buf, pos >> 3) >> (51 - (pos & 7))) & 0x1FFF
        if p < 4096:
            row[count] = p
            prev = p
            count += 1
            pos += 13
            z = 0
            last_valid = False
            continue
        zeros = z
        done = 12
        for b in range(12):
            if not (p >> (11 - b)) & 1:
                zeros += 1
                continue
            if zeros > 7:
                return -1, chk
            if zeros == 0:
                if not last_valid or count + 4 > ns:
                    return -1, chk
                for _ in range(4):
                    prev += last
                    row[count] = prev
                    chk |= prev
                    count += 1
            else:
                last = _diff(zeros)
                last_valid = True
                prev += last
                row[count] = prev
                chk |= prev
                count += 1
            zeros = 0
            if count == ns:
                done = b + 1
                break
        z = min(zeros, 16)
        pos += 1 + done
    return pos, chk


@numba.njit(cache=True, nogil=True, boundscheck=False)
def decode_channels(
    buf: U8, nbytes: int, out: U16, ch0: int, ch1: int, pos: int, sc: I64, runs: I8, mf: I8
) -> int:  # pragma: no cover - compiled
    """Decode channels ``ch0 .. ch1-1`` of ``out`` from bit ``pos`` of a payload of ``nbytes``.

    ``buf`` holds the payload and at least 8 more zero bytes (every packet is one unaligned
    8-byte load).  Returns the bit position after the last channel's byte padding, or -1 if
    the stream is invalid (including one that runs past its end: the padding reads as zeros,
    which is caught by the position).

    Two loops per channel: the table loop until the packet that completes the channel, then a
    code-by-code walk of that packet (:func:`_tail`).  The table loop is written for the
    branch predictor and for few instructions per packet (it was 110 with register spills):
    whether a packet is raw, and whether zeros are left over, are as good as random, so both
    are selections (cmov), never branches; the two candidate entries of a code packet are one
    16-byte load before z is known (and each used twice, see the module's notes); a packet's
    first 16 samples are one vector expression (:func:`_run16`); and faults are not tested per
    packet: an impossible difference (``NO_DIFF``: a repeat with no difference before it, more
    than 7 zeros, an entry holding an invalid code) puts the packet's first sample out of
    range, and the samples' range is checked once per channel.
    """
    nbits = nbytes * 8
    ns = out.shape[1]
    sc_at, runs_at, mf_at = sc.ctypes.data, runs.ctypes.data, mf.ctypes.data
    buf_at = buf.ctypes.data
    for ch in range(ch0, ch1):
        row = out[ch]
        if ns == 0:
            continue
        if pos >= nbits:  # (every read is at most 8 bytes from the payload's end)
            return -1
        p = (_load_be64(buf, pos >> 3) >> (51 - (pos & 7))) & 0x1FFF
        if p >= 4096:  # a channel starts with a raw packet
            return -1
        row[0] = p
        prev = p
        count = 1
        pos += 13
        z = 0  # zeros left over from the previous code packet
        last = NO_DIFF
        both = 0
        used = 0
        row_at = out.ctypes.data + 2 * ns * ch
        # unrolled blocks of 8 packets while even 8 packets of 48 samples stay in the row
        while count + 8 * ROW + RUN < ns:
            at = buf_at + (pos >> 3)
            st = (count, prev, last, z, used, both)
            st = _step(_packet(at, 0), st, sc_at, runs_at, mf_at, row_at)
            st = _step(_packet(at, 1), st, sc_at, runs_at, mf_at, row_at)
            st = _step(_packet(at, 2), st, sc_at, runs_at, mf_at, row_at)
            st = _step(_packet(at, 3), st, sc_at, runs_at, mf_at, row_at)
            st = _step(_packet(at, 4), st, sc_at, runs_at, mf_at, row_at)
            st = _step(_packet(at, 5), st, sc_at, runs_at, mf_at, row_at)
            st = _step(_packet(at, 6), st, sc_at, runs_at, mf_at, row_at)
            st = _step(_packet(at, 7), st, sc_at, runs_at, mf_at, row_at)
            count, prev, last, z, used, both = st
            pos += 104
        while count + ROW < ns:  # then one at a time while a packet cannot complete the row
            p = (_load_be64(buf, pos >> 3) >> (51 - (pos & 7))) & 0x1FFF
            pos += 13
            count, prev, last, z, used, both = _step(
                p, (count, prev, last, z, used, both), sc_at, runs_at, mf_at, row_at
            )
        while count + RUN < ns:  # (past the payload: zeros, raw samples, see padded())
            p = (_load_be64(buf, pos >> 3) >> (51 - (pos & 7))) & 0x1FFF
            pos += 13
            if p == 4096:  # an all-zero code packet (never written by an encoder)
                z = min(z + 12, 16)
                continue
            raw = p < 4096  # a raw packet: zeros left over were padding
            w = p & 0xFFF
            s0, s1 = _load_pair(sc, 2 * w)
            both |= s0 | s1  # (the loads' second use, see above)
            zf = z == 0
            s = s1 if zf else s0
            s = S_RAW if raw else s
            e = w | 4096 if zf else w
            e = RAW if raw else e
            start = p if raw else prev
            n = _field(s, C_N)
            if (count + n >= ns) | ((n > RUN) & (count + ROW >= ns)):
                pos -= 13  # the packet that completes the channel: walked code by code
                break
            # the packet's first difference: its first code (z + lz zeros), or the last one
            dk = _DZ[z + _field(s, C_LZ)]
            rep = -_field(s, C_REP)  # (all ones for a repeat: no branch on it)
            v = dk ^ ((dk ^ last) & rep)
            _run16(row, count, runs, 2 * RUN * e, 2 * RUN * e + RUN, v, start)
            if n > RUN:  # (repeats: at most 48 samples, written 16 by 16)
                r = 2 * ROW * e
                _run16(row, count + RUN, mf, r + RUN, r + ROW + RUN, v, start)
                _run16(row, count + 2 * RUN, mf, r + 2 * RUN, r + ROW + 2 * RUN, v, start)
            prev = start + v * _field(s, C_EM) + _field(s, C_EF) - EF_BIAS
            count += n
            last = v if _field(s, C_LV) else _field(s, C_LF) - LF_BIAS
            last = NO_DIFF if raw else last
            z = _field(s, C_TZ)
            used |= s
        if pos > nbits or both & NEVER or used & (BAD_ZEROS << (8 * C_LZ)):
            return -1
        pos, chk = _tail(buf, nbits, row, count, pos, z, last, last != NO_DIFF, prev, 0)
        if pos < 0:
            return -1
        for j in range(count):  # (vectorised: the range of every sample of the table loop)
            chk |= row[j]
        if chk >> 12 != 0:
            return -1
        pos = (pos + 7) & ~7
        if pos > nbits:
            return -1
    return pos


@numba.njit(cache=True, nogil=True, boundscheck=False)
def channel_starts(
    buf: U8, nbytes: int, ch0: int, ch1: int, ns: int, sc: I64, counts: U8, starts: I64
) -> bool:  # pragma: no cover - compiled
    """The bit position where each channel ``ch0 .. ch1`` starts (``starts[ch1]``: where
    ``ch1 - 1`` ends), from ``starts[ch0]``, counting samples packet by packet without decoding
    them; False if the stream is found invalid on the way.

    What lets channel blocks be decoded in parallel, so it must cost little beside decoding:
    the packets of a channel are counted 8 at a time like :func:`decode_channels` decodes them,
    from :func:`count_table` (12 KB: it stays in the first-level cache), with no test of the
    codes on the way.  The counts are only as good as the stream: :func:`decode` checks that
    each block, decoded, ends where the next one starts, and a block's first channel starts
    where the one before ends only if that one was decoded from its true start.
    """
    nbits = nbytes * 8
    scratch = np.empty(ns, np.uint16)
    pos = starts[ch0]
    buf_at, counts_at = buf.ctypes.data, counts.ctypes.data
    for ch in range(ch0, ch1):
        starts[ch] = pos
        if ns == 0:
            continue
        if pos >= nbits:
            return False
        count = 1
        pos += 13
        z = 0
        last_valid = False
        while count + 8 * ROW < ns:
            at = buf_at + (pos >> 3)
            st = (count, z, last_valid)
            st = _count_step(_packet(at, 0), st, counts_at)
            st = _count_step(_packet(at, 1), st, counts_at)
            st = _count_step(_packet(at, 2), st, counts_at)
            st = _count_step(_packet(at, 3), st, counts_at)
            st = _count_step(_packet(at, 4), st, counts_at)
            st = _count_step(_packet(at, 5), st, counts_at)
            st = _count_step(_packet(at, 6), st, counts_at)
            st = _count_step(_packet(at, 7), st, counts_at)
            count, z, last_valid = st
            pos += 104
        while count + ROW < ns and pos < nbits:
            p = (_load_be64(buf, pos >> 3) >> (51 - (pos & 7))) & 0x1FFF
            pos += 13
            if p == 4096:
                z = min(z + 12, 16)
                continue
            raw = p < 4096
            w = p & 0xFFF
            s0 = sc[2 * w]
            s1 = sc[2 * w + 1]
            s = s1 if z == 0 else s0
            s = S_RAW if raw else s
            n = _field(s, C_N)
            # (a second use of both loads, see decode_channels; NEVER is never set)
            if (_field(s, C_LZ) == BAD_ZEROS) | ((s0 | s1) & NEVER != 0):
                return False
            count += n
            last_valid = not raw
            z = _field(s, C_TZ)
        pos, _ = _tail(buf, nbits, scratch, count, pos, z, 0, last_valid, 0, 0)
        if pos < 0:
            return False
        pos = (pos + 7) & ~7
    starts[ch1] = pos
    return pos <= nbits


def padded(payload: U8, n_samples: int) -> U8:
    """A copy of the payload followed by zeros, as :func:`decode_channels` reads it.

    8 bytes for the last packet's 8-byte load, and a channel's worth of raw packets: the table
    loop does not test for the payload's end, it reads zeros (raw samples) past it until its
    channel is full, and the position says afterwards that the stream was short.
    """
    buf = np.zeros(payload.size + 16 + n_samples * 13 // 8, np.uint8)
    buf[: payload.size] = payload
    return buf


@functools.cache
def count_table() -> U8:
    """:func:`channel_starts`' table: the samples of each packet's 12 bits read with zeros left
    over and without (at ``2 w``, ``2 w + 1``, as the pairs of :func:`tables`), then the zeros
    each leaves over (at ``8192 + w``), one byte each; 8 bytes of slack (read 8 at a time)."""
    pairs = tables()[0][:RAW]
    return np.concatenate(
        [pairs & 0xFF, (pairs[0::2] >> (8 * C_TZ)) & 0xFF, np.zeros(8, np.int64)]
    ).astype(np.uint8)


#: Counting a channel's samples (:func:`channel_starts`) costs about this share of decoding it
#: (0.36-0.39 measured on the loaded machine, 2026-12-08, counting 8 packets at a time).
SCAN_SHARE = 0.4


def block_bounds(nch: int, threads: int, scan: float = SCAN_SHARE) -> list[int]:
    """First channel of each of ``threads`` blocks (and ``nch``), so that all finish together.

    Block 0 is decoded at once; block k only once the channels before it are counted, which
    takes ``scan`` of their decoding time: so earlier blocks are larger.  Found by bisection
    on the common finishing time, in units of the whole event's decoding time.
    """
    lo, hi = 1.0 / threads, 1.0
    for _ in range(40):
        finish = (lo + hi) / 2
        b = 0.0
        for _ in range(threads):
            b += finish - scan * b  # this block starts after counting the channels before it
        lo, hi = (finish, hi) if b < 1.0 else (lo, finish)
    bounds, b = [0], 0.0
    for _ in range(threads - 1):
        b += hi - scan * b
        bounds.append(min(nch, max(bounds[-1] + 1, round(b * nch))))
    return [*bounds, nch]


def decode(payload: U8, out: U16, threads: int = 1) -> bool:
    """Decode a whole payload into ``out`` (channels, samples); False for an invalid stream.

    With ``threads`` > 1, block 0 of the channels is decoded on a thread at once while this
    thread counts where the next blocks start (:func:`channel_starts`), handing each to a
    thread as soon as its start is known (the kernels release the GIL).  Each block must end
    where the next starts, and the last where the payload does.
    """
    sc, runs, mf = tables()
    buf = padded(payload, out.shape[1])
    nbytes = payload.size
    nch, ns = out.shape
    if threads <= 1 or nch < 2 * threads:
        return bool(decode_channels(buf, nbytes, out, 0, nch, 0, sc, runs, mf) == nbytes * 8)
    bounds = block_bounds(nch, threads)
    counts = count_table()
    starts = np.zeros(nch + 1, np.int64)
    starts[nch] = nbytes * 8

    def block(k: int) -> int:
        c0, c1 = bounds[k], bounds[k + 1]
        return int(decode_channels(buf, nbytes, out, c0, c1, int(starts[c0]), sc, runs, mf))

    with ThreadPoolExecutor(threads) as pool:  # (leaving it waits for the blocks running)
        blocks = [pool.submit(block, 0)]
        for k in range(1, threads):
            if not channel_starts(buf, nbytes, bounds[k - 1], bounds[k], ns, sc, counts, starts):
                return False
            blocks.append(pool.submit(block, k))
        ends = [f.result() for f in blocks]
    return all(end == starts[bounds[k + 1]] for k, end in enumerate(ends))
