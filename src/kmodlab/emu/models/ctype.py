"""lib/ctype.c: ``_ctype``, the 256-byte character class table behind <linux/ctype.h>'s
isalpha/isdigit/isspace/... macros (ASCII classes plus the kernel's Latin-1 upper half).

Bits: upper 0x01, lower 0x02, digit 0x04, control 0x08, punctuation 0x10, white space 0x20,
hex digit 0x40, hard space 0x80.  Bytes 128-159 have no class; 160 (no-break space) is a hard
space; 161-191, 215 and 247 are punctuation; 192-222 but 215 upper, 223-255 but 247 lower.
"""
from __future__ import annotations

from ..registry import data

U, L, D, C, P, S, X, SP = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80


def _cls(c: int) -> int:
    if c < 128:
        ch = chr(c)
        if ch == " ":
            return S | SP
        if c < 32 or c == 127:
            return C | (S if 9 <= c <= 13 else 0)
        if ch.isdigit():
            return D
        if ch.isupper():
            return U | (X if ch <= "F" else 0)
        if ch.islower():
            return L | (X if ch <= "f" else 0)
        return P
    if c < 160:
        return 0
    if c == 160:
        return S | SP
    if c < 192 or c in (215, 247):
        return P
    return U if c < 223 else L


TABLE = bytes(_cls(c) for c in range(256))


@data("_ctype", 256)
def ctype_table(emu):
    return TABLE
