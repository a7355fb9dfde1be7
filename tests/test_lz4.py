"""The LZ4 legacy-frame reader the importer uses for Debian's cloud kernels (LZ4 vmlinuz)."""
import struct

import pytest

from kmodlab.profile.lz4 import LEGACY_MAGIC, Lz4Error, decompress_block, decompress_legacy


def test_block_with_overlapping_match_and_long_lengths():
    out = bytearray()
    # "abc", then a match 3 back of length 9 (overlaps itself), then literal "Z"
    decompress_block(bytes([0x35]) + b"abc" + b"\x03\x00" + bytes([0x10]) + b"Z", out)
    assert out == b"abcabcabcabcZ"
    out = bytearray()
    # 20 literals (15 + 5), match of 4 + 15 + 3 = 22 at offset 1, no trailing literals
    decompress_block(bytes([0xFF, 5]) + b"x" * 20 + b"\x01\x00" + bytes([3]) + bytes([0x00]), out)
    assert out == b"x" * 42


def test_legacy_frame_of_two_blocks():
    blk = bytes([0x50]) + b"hello"
    frame = LEGACY_MAGIC + struct.pack("<I", len(blk)) + blk + struct.pack("<I", len(blk)) + blk
    assert decompress_legacy(frame + b"\x10\x00\x00\x00") == b"hellohello"


@pytest.mark.parametrize("bad", [bytes([0x35]) + b"ab", bytes([0x10]) + b"a\x09\x00",
                                 bytes([0x1F]) + b"a\x01"])
def test_damaged_blocks_raise_lz4error(bad):
    with pytest.raises(Lz4Error):
        decompress_block(bad, bytearray())
