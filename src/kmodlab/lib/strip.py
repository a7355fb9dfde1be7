"""What `insmod -f` does to an image it passes to init_module (libkmod's kmod_elf_strip_*):
drop SHF_ALLOC from ``__versions`` and blank the ``vermagic=`` string in ``.modinfo``."""
from __future__ import annotations

import struct

from .. import elf


def strip_for_force(image: bytes) -> bytes:
    buf = bytearray(image)
    if len(buf) < elf.EHDR.size or buf[:4] != elf.ELFMAG:
        return image
    hdr = elf.parse_header(buf)
    if not elf.range_valid(len(buf), hdr.shoff, hdr.shnum * elf.SHDR.size) or hdr.shstrndx >= hdr.shnum:
        return image
    secs = elf.parse_sections(bytes(buf), hdr.shoff, hdr.shnum)
    elf.name_sections(bytes(buf), secs, hdr.shstrndx)
    for i, s in enumerate(secs):
        if s.name == "__versions":
            flags_off = hdr.shoff + i * elf.SHDR.size + 8
            struct.pack_into("<Q", buf, flags_off, s.flags & ~elf.SHF_ALLOC)
        elif s.name == ".modinfo" and elf.range_valid(len(buf), s.offset, s.size):
            data = bytes(buf[s.offset:s.offset + s.size])
            pos = 0
            while pos < len(data):
                end = data.find(b"\0", pos)
                end = len(data) if end < 0 else end
                if data.startswith(b"vermagic=", pos):
                    buf[s.offset + pos:s.offset + end] = bytes(end - pos)
                pos = end + 1
    return bytes(buf)
