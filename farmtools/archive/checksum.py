"""adler32 arithmetic the archive code needs beyond :func:`zlib.adler32`.

:func:`adler32_combine` joins the checksums of two byte strings into the checksum of their
concatenation (zlib has it in C, Python's ``zlib`` does not expose it).  The tar writer uses
it so that every byte is summed once: a member's data is summed while it is read, and the
archive's own checksum absorbs that sum instead of reading the same bytes again.
Imports nothing from farmtools.
"""

from __future__ import annotations

_MOD = 65521  # largest prime below 2**16, the adler32 modulus


def adler32_combine(first: int, second: int, second_len: int) -> int:
    """adler32 of ``a + b`` from ``adler32(a)``, ``adler32(b)`` and ``len(b)``.

    With A = 1 + sum of bytes and B = sum of the running A values: appending ``b`` after ``a``
    adds ``A(a) - 1`` to each of ``len(b)`` running sums, hence B = B(a) + B(b) + len(b)(A(a) - 1).
    """
    a1, b1 = first & 0xFFFF, first >> 16
    a2, b2 = second & 0xFFFF, second >> 16
    a = (a1 + a2 - 1) % _MOD
    b = (b1 + b2 + (second_len % _MOD) * (a1 - 1)) % _MOD
    return (b << 16) | a
