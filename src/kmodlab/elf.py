"""Our own ELF64 little-endian reader: headers, sections, symbols and relocations in bulk.

The kernel's *checks* live in kernel/module/elf_validity.py; this file only decodes.  Layouts are
built once (``struct.Struct``), section headers are small mutable records because the load path
rewrites ``sh_addr``/``sh_flags``/``sh_entsize`` exactly as the kernel does, and the large tables
(symbols, relocations) are decoded in one go as numpy structured arrays (numpy is imported only
when a caller asks for those tables, so ``modinfo`` never pays for it).

Every read of the image goes through :func:`range_valid` (libkmod's ``elf_range_valid``).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")      # Elf64_Ehdr, 64 bytes
SHDR = struct.Struct("<IIQQQQIIQQ")            # Elf64_Shdr, 64 bytes
SYM = struct.Struct("<IBBHQQ")                 # Elf64_Sym, 24 bytes
RELA = struct.Struct("<QQq")                   # Elf64_Rela, 24 bytes

ELFMAG = b"\x7fELF"
ET_REL = 1
EM_X86_64 = 62

SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA = 0, 1, 2, 3, 4
SHT_NOTE, SHT_NOBITS, SHT_REL = 7, 8, 9

SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4
SHF_RELA_LIVEPATCH = 0x00100000
SHF_RO_AFTER_INIT = 0x00200000           # kernel-internal flag (module.h)

SHN_UNDEF = 0
SHN_LIVEPATCH = 0xFF20
SHN_ABS = 0xFFF1
SHN_COMMON = 0xFFF2

STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION, STT_FILE = 0, 1, 2, 3, 4


@dataclass(slots=True)
class ElfHeader:
    ident: bytes
    type: int
    machine: int
    version: int
    entry: int
    phoff: int
    shoff: int
    flags: int
    ehsize: int
    phentsize: int
    phnum: int
    shentsize: int
    shnum: int
    shstrndx: int


@dataclass(slots=True)
class Section:
    """One Elf64_Shdr, plus its resolved name (filled in once the name table is trusted)."""
    name_off: int
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    info: int
    addralign: int
    entsize: int
    name: str = ""


def range_valid(length: int, offset: int, size: int) -> bool:
    """True when [offset, offset+size) lies inside a buffer of ``length`` bytes (no overflow)."""
    return 0 <= offset <= length and 0 <= size <= length - offset


def parse_header(buf: bytes | memoryview) -> ElfHeader:
    """Decode the 64-byte ELF header; the caller checked that ``len(buf) >= 64``."""
    return ElfHeader(*EHDR.unpack_from(buf, 0))


def parse_sections(buf: bytes | memoryview, shoff: int, shnum: int) -> list[Section]:
    """Decode ``shnum`` section headers at ``shoff`` (the caller checked the bounds)."""
    return [Section(*f) for f in SHDR.iter_unpack(bytes(buf[shoff:shoff + shnum * SHDR.size]))]


def cstring(buf: bytes, offset: int, limit: int | None = None) -> str:
    """The NUL-terminated string at ``offset`` (up to ``limit``), decoded as latin-1."""
    end = buf.find(b"\0", offset, limit if limit is not None else len(buf))
    if end < 0:
        end = limit if limit is not None else len(buf)
    return bytes(buf[offset:end]).decode("latin-1")


def name_sections(buf: bytes, sections: list[Section], shstrndx: int) -> None:
    """Fill ``Section.name`` from the section-name table (bounds already validated)."""
    st = sections[shstrndx]
    lo, hi = st.offset, st.offset + st.size
    for s in sections:
        s.name = cstring(buf, lo + s.name_off, hi) if s.name_off < st.size else ""


def section_bytes(buf: bytes | memoryview, sec: Section) -> bytes:
    """The file bytes of a section (empty for SHT_NOBITS)."""
    if sec.type == SHT_NOBITS:
        return b""
    return bytes(buf[sec.offset:sec.offset + sec.size])


def find_section(sections: list[Section], name: str, need_flags: int = 0) -> int:
    """Index of the first section called ``name`` carrying ``need_flags`` (0 if none), like find_sec."""
    for i, s in enumerate(sections):
        if i and s.name == name and (s.flags & need_flags) == need_flags:
            return i
    return 0


# ---- bulk tables (numpy, imported lazily) ---------------------------------------------------

def sym_dtype():
    import numpy as np
    return np.dtype([("st_name", "<u4"), ("st_info", "u1"), ("st_other", "u1"),
                     ("st_shndx", "<u2"), ("st_value", "<u8"), ("st_size", "<u8")])


def rela_dtype():
    import numpy as np
    return np.dtype([("r_offset", "<u8"), ("r_info", "<u8"), ("r_addend", "<i8")])


def symbols(buf: bytes, sec: Section):
    """The symbol table as a writable numpy structured array (a copy: the load path edits it)."""
    import numpy as np
    n = sec.size // SYM.size
    return np.frombuffer(buf, dtype=sym_dtype(), count=n, offset=sec.offset).copy()


def relocations(buf: bytes, sec: Section):
    """A RELA section as a read-only numpy structured array."""
    import numpy as np
    n = sec.size // RELA.size
    return np.frombuffer(buf, dtype=rela_dtype(), count=n, offset=sec.offset)


def relocation_words(buf: bytes, sec: Section):
    """A RELA section as a read-only (n, 3) uint64 array: r_offset, r_info, r_addend (as u64)."""
    import numpy as np
    n = sec.size // RELA.size
    return np.frombuffer(buf, dtype="<u8", count=3 * n, offset=sec.offset).reshape(n, 3)


def parse_modinfo(data: bytes) -> list[tuple[str, str]]:
    """Split a .modinfo section into (tag, value) pairs, in section order, skipping NUL padding."""
    out = []
    for raw in data.split(b"\0"):
        if not raw:
            continue
        s = raw.decode("utf-8", "replace")
        tag, eq, value = s.partition("=")
        out.append((tag, value) if eq else (tag, ""))
    return out
