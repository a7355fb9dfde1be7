"""LZ4 as the kernel's boot decompressor reads it: the legacy frame (magic 0x184C2102, then
blocks of [u32 compressed size][LZ4 block], each expanding to at most 8 MiB, until the input
ends or a size is not a block's).  Debian's cloud kernels compress vmlinux this way.

Pure Python: the block format is a sequence of (token, literals, match offset, match length);
a match may overlap its own output (offset < length), which is copied in offset-sized steps.
"""
from __future__ import annotations

import struct

LEGACY_MAGIC = b"\x02\x21\x4c\x18"
LEGACY_BLOCK = 8 << 20


class Lz4Error(ValueError):
    pass


def _more(src, i: int, length: int, what: str) -> tuple[int, int]:
    """A length of 15 continues in the following bytes, each added, until one is not 255."""
    while True:
        if i >= len(src):
            raise Lz4Error(f"truncated {what}")
        b = src[i]
        i += 1
        length += b
        if b != 255:
            return length, i


def decompress_block(src: bytes | memoryview, out: bytearray) -> None:
    """Append the decompression of one LZ4 block to ``out``."""
    i, n = 0, len(src)
    while i < n:
        token = src[i]
        i += 1
        lit = token >> 4
        if lit == 15:
            lit, i = _more(src, i, lit, "literal length")
        if i + lit > n:
            raise Lz4Error("literals run past the block")
        out += src[i:i + lit]
        i += lit
        if i >= n:                              # the last sequence has literals only
            break
        if i + 2 > n:
            raise Lz4Error("truncated match offset")
        off = src[i] | (src[i + 1] << 8)
        i += 2
        if off == 0 or off > len(out):
            raise Lz4Error("match offset outside the output")
        mlen = token & 15
        if mlen == 15:
            mlen, i = _more(src, i, mlen, "match length")
        mlen += 4
        start = len(out) - off
        if off >= mlen:
            out += out[start:start + mlen]
        else:                                   # overlapping: repeat the last ``off`` bytes
            chunk = bytes(out[start:])
            reps, rest = divmod(mlen, off)
            out += chunk * reps + chunk[:rest]


def decompress_legacy(data: bytes) -> bytes:
    """The concatenated output of an LZ4 legacy frame starting at ``data[0]``."""
    if data[:4] != LEGACY_MAGIC:
        raise Lz4Error("not an LZ4 legacy frame")
    mv = memoryview(data)
    out = bytearray()
    pos = 4
    while pos + 4 <= len(data):
        (size,) = struct.unpack_from("<I", data, pos)
        if size == int.from_bytes(LEGACY_MAGIC, "little"):      # a second frame follows
            pos += 4
            continue
        if size > LEGACY_BLOCK + LEGACY_BLOCK // 255 + 16 or pos + 4 + size > len(data):
            break                               # trailing bytes (the kernel's size field)
        decompress_block(mv[pos + 4:pos + 4 + size], out)
        pos += 4 + size
    return bytes(out)
