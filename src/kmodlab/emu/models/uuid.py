"""UUIDs and GUIDs (lib/uuid.c): ``guid_parse``, ``uuid_parse``, ``uuid_is_valid``, and the
constants ``guid_null``/``uuid_null``.

``uuid_is_valid(s)``: 36 characters, '-' at 8, 13, 18 and 23, hex digits (the kernel's
isxdigit: 0-9, a-f, A-F) elsewhere.  ``guid_parse``/``uuid_parse`` return -EINVAL for an
invalid string, else fill the 16 bytes: the byte at string offset si[i] (two hex digits) is
byte i, with ``guid_index`` = {3,2,1,0,5,4,7,6,8,9,10,11,12,13,14,15} (the first three fields
little-endian, as a GUID stores them) and ``uuid_index`` = 0..15 (big-endian).  The digits are
read at si = {0,2,4,6,9,11,14,16,19,21,24,26,28,30,32,34}.
"""
from __future__ import annotations

from ..registry import data, model

EINVAL = 22
SI = (0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34)
GUID_INDEX = (3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15)
UUID_INDEX = tuple(range(16))
HEX = frozenset(b"0123456789abcdefABCDEF")
UUID_STRING_LEN = 36


def is_valid(s: bytes) -> bool:
    if len(s) < UUID_STRING_LEN:
        return False
    for i in range(UUID_STRING_LEN):
        if i in (8, 13, 18, 23):
            if s[i] != 0x2D:
                return False
        elif s[i] not in HEX:
            return False
    return True


def parse(s: bytes, index: tuple[int, ...]) -> bytes | None:
    if not is_valid(s):
        return None
    out = bytearray(16)
    for i in range(16):
        out[index[i]] = int(s[SI[i]:SI[i] + 2], 16)
    return bytes(out)


def _string(emu, p: int) -> bytes:
    return emu.cstr(p, UUID_STRING_LEN)


@model("uuid_is_valid")
def uuid_is_valid(emu, s):
    return int(is_valid(_string(emu, s)))


@model("guid_parse")
def guid_parse(emu, s, guid):
    raw = parse(_string(emu, s), GUID_INDEX)
    if raw is None:
        return -EINVAL
    emu.write(guid, raw)
    return 0


@model("uuid_parse")
def uuid_parse(emu, s, uuid):
    raw = parse(_string(emu, s), UUID_INDEX)
    if raw is None:
        return -EINVAL
    emu.write(uuid, raw)
    return 0


@data("guid_null", 16)
def guid_null(emu) -> bytes:
    return bytes(16)


@data("uuid_null", 16)
def uuid_null(emu) -> bytes:
    return bytes(16)


def _gen_common(emu) -> bytearray:
    """__uuid_gen_common: 16 random bytes with the DCE variant (b[8] = 10xxxxxx)."""
    from .random import random_bytes
    b = bytearray(random_bytes(emu, 16))
    b[8] = (b[8] & 0x3F) | 0x80
    return b


@model("uuid_gen")
def uuid_gen(emu, bu):
    """A version-4 (random) UUID: the version in the high nibble of b[6]."""
    b = _gen_common(emu)
    b[6] = (b[6] & 0x0F) | 0x40
    emu.write(bu, bytes(b))


@model("guid_gen")
def guid_gen(emu, lu):
    """A version-4 GUID: its version nibble is in b[7] (little-endian fields)."""
    b = _gen_common(emu)
    b[7] = (b[7] & 0x0F) | 0x40
    emu.write(lu, bytes(b))
