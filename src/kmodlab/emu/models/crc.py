"""CRC helpers of lib/crc32.c: pure functions of their arguments, computed here.

``crc32_le`` is the reflected CRC-32 (polynomial 0xEDB88320), ``__crc32c_le`` the reflected
Castagnoli CRC (0x82F63B78), ``crc32_be`` the non-reflected CRC-32 (0x04C11DB7); like the
kernel's, they take the running value and apply no final inversion (callers pass ~0 and invert
themselves where their format wants it).
"""
from __future__ import annotations

from ..registry import model


def _table(poly: int, reflected: bool) -> list[int]:
    out = []
    for i in range(256):
        if reflected:
            c = i
            for _ in range(8):
                c = (c >> 1) ^ (poly if c & 1 else 0)
        else:
            c = i << 24
            for _ in range(8):
                c = ((c << 1) ^ (poly if c & 0x80000000 else 0)) & 0xFFFFFFFF
        out.append(c)
    return out


_LE, _C, _BE = _table(0xEDB88320, True), _table(0x82F63B78, True), _table(0x04C11DB7, False)


def crc_le(table: list[int], crc: int, data: bytes) -> int:
    crc &= 0xFFFFFFFF
    for b in data:
        crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
    return crc


def crc_be(crc: int, data: bytes) -> int:
    crc &= 0xFFFFFFFF
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _BE[((crc >> 24) ^ b) & 0xFF]
    return crc


@model("crc32_le")
def crc32_le(emu, crc, p, length):
    return crc_le(_LE, crc, emu.read(p, length))


@model("__crc32c_le")
def __crc32c_le(emu, crc, p, length):
    return crc_le(_C, crc, emu.read(p, length))


@model("crc32_be")
def crc32_be(emu, crc, p, length):
    return crc_be(crc, emu.read(p, length))
