"""Bit searches (lib/find_bit.c): ``_find_first_bit``, ``_find_next_bit`` and their zero /
and-ed / last variants, which ``for_each_set_bit`` and the cpumask iterators compile to.

Each reads the bitmap one 64-bit word at a time, only the words below ``size`` bits (so a
cpumask walk bounded by nr_cpu_ids reads its first word only) and returns the bit's index, or
``size`` when there is none (``_find_last_bit``: ``size`` too).  One model serves the family:
the export name says whether bits are inverted, whether a second bitmap is and-ed in, and
whether the search starts at an offset.
"""
from __future__ import annotations

from ..registry import model

BITS = 64


def _word(emu, addr: int, i: int, invert: bool, and_addr: int) -> int:
    w = emu.read_u(addr + 8 * i, 8)
    if and_addr:
        w &= emu.read_u(and_addr + 8 * i, 8)
    return ~w & (2 ** BITS - 1) if invert else w


def find_bit(emu, addr: int, size: int, offset: int, invert: bool = False,
             and_addr: int = 0) -> int:
    """The first bit set (clear, with ``invert``) at or after ``offset``, below ``size``."""
    if offset >= size:
        return size
    i = offset // BITS
    w = _word(emu, addr, i, invert, and_addr) & ~((1 << (offset % BITS)) - 1)
    while True:
        if w:
            return min(i * BITS + (w & -w).bit_length() - 1, size)
        i += 1
        if i * BITS >= size:
            return size
        w = _word(emu, addr, i, invert, and_addr)


@model("_find_first_bit")
def _find_first_bit(emu, addr, size):
    return find_bit(emu, addr, size, 0)


@model("_find_first_zero_bit")
def _find_first_zero_bit(emu, addr, size):
    return find_bit(emu, addr, size, 0, invert=True)


@model("_find_next_bit")
def _find_next_bit(emu, addr, size, offset):
    return find_bit(emu, addr, size, offset)


@model("_find_next_zero_bit")
def _find_next_zero_bit(emu, addr, size, offset):
    return find_bit(emu, addr, size, offset, invert=True)


@model("_find_next_and_bit")
def _find_next_and_bit(emu, addr1, addr2, size, offset):
    return find_bit(emu, addr1, size, offset, and_addr=addr2)


@model("_find_first_and_bit")
def _find_first_and_bit(emu, addr1, addr2, size):
    return find_bit(emu, addr1, size, 0, and_addr=addr2)


@model("_find_last_bit")
def _find_last_bit(emu, addr, size):
    i = (size - 1) // BITS if size else -1
    while i >= 0:
        w = emu.read_u(addr + 8 * i, 8)
        if i == (size - 1) // BITS and size % BITS:
            w &= (1 << (size % BITS)) - 1
        if w:
            return i * BITS + w.bit_length() - 1
        i -= 1
    return size


@model("__bitmap_weight")
def __bitmap_weight(emu, addr, bits):
    """The number of bits set below ``bits``."""
    n = 0
    for i in range((bits + BITS - 1) // BITS):
        w = emu.read_u(addr + 8 * i, 8)
        if (i + 1) * BITS > bits:
            w &= (1 << (bits % BITS)) - 1
        n += bin(w).count("1")
    return n


# --- lib/hweight.c, lib/math/int_sqrt.c: pure arithmetic -----------------------------------------
@model("__sw_hweight8")
def __sw_hweight8(emu, w):
    return bin(w & 0xFF).count("1")


@model("__sw_hweight16")
def __sw_hweight16(emu, w):
    return bin(w & 0xFFFF).count("1")


@model("__sw_hweight32")
def __sw_hweight32(emu, w):
    return bin(w & 0xFFFFFFFF).count("1")


@model("__sw_hweight64")
def __sw_hweight64(emu, w):
    return bin(w & 0xFFFFFFFFFFFFFFFF).count("1")


@model("int_sqrt")
def int_sqrt(emu, x):
    """The kernel's bit-by-bit square root: floor(sqrt(x)) for every unsigned long."""
    import math
    return math.isqrt(x & 0xFFFFFFFFFFFFFFFF)


@model("int_sqrt64")
def int_sqrt64(emu, x):
    import math
    return math.isqrt(x & 0xFFFFFFFFFFFFFFFF) & 0xFFFFFFFF
