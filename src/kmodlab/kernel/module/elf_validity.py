"""elf_validity_check: the ELF sanity checks of Linux 6.1 (kernel/module/main.c), in its order.

Every failure is -ENOEXEC with the kernel's log text (reference §2.2).  What 6.1 does *not* check
(program headers, e_entry, EI_CLASS/EI_DATA, relocation sh_info, duplicate names, st_name bounds)
is deliberately not checked here either.
"""
from __future__ import annotations

from ... import elf
from ...errors import ENOEXEC
from .internal import LoadError, LoadInfo


def elf_validity_check(info: LoadInfo) -> None:
    """Check the header, the section header table and every section's bounds.

    Preconditions: ``info.len`` is the ELF length (signature already split off).
    Sets ``info.hdr``, ``info.sechdrs`` (names resolved) and ``info.secstrings``.
    Errors: -ENOEXEC, with the kernel's pr_err text.
    """
    def fail(msg: str):
        raise LoadError(ENOEXEC, "elf_validity_check", msg)

    buf, length = info.image, info.len
    if length < elf.EHDR.size:
        fail(f"Invalid ELF header len {length}")
    hdr = elf.parse_header(buf)
    if hdr.ident[:4] != elf.ELFMAG:
        fail("Invalid ELF header magic: != \\x7fELF")
    if hdr.type != elf.ET_REL:
        fail(f"Invalid ELF header type: {hdr.type} != {elf.ET_REL}")
    if hdr.machine != elf.EM_X86_64:            # x86-64 elf_check_arch: the machine only
        fail(f"Invalid architecture in ELF header: {hdr.machine}")
    if hdr.shentsize != elf.SHDR.size:
        fail("Invalid ELF section header size")
    if hdr.shoff >= length or hdr.shnum * elf.SHDR.size > length - hdr.shoff:
        fail("Invalid ELF section header overflow")
    if hdr.shstrndx == 0 or hdr.shstrndx >= hdr.shnum:
        fail(f"Invalid ELF section name index: {hdr.shstrndx} || e_shstrndx ({hdr.shstrndx}) "
             f">= e_shnum ({hdr.shnum})")
    sechdrs = elf.parse_sections(buf, hdr.shoff, hdr.shnum)
    strhdr = sechdrs[hdr.shstrndx]
    if not elf.range_valid(length, strhdr.offset, strhdr.size):
        fail(f"Invalid ELF section hdr(type {strhdr.type})")
    if strhdr.size == 0:
        fail("empty section name table")
    if buf[strhdr.offset + strhdr.size - 1] != 0:
        fail("ELF Spec violation: section name table isn't null terminated")
    s0 = sechdrs[0]
    if s0.type != elf.SHT_NULL or s0.size != 0 or s0.addr != 0:
        fail(f"ELF Spec violation: section 0 type({s0.type})!=SH_NULL or non-zero len or addr")
    for i, s in enumerate(sechdrs[1:], 1):
        if s.type in (elf.SHT_NULL, elf.SHT_NOBITS):
            continue
        if s.type == elf.SHT_SYMTAB and (s.link == 0 or s.link >= hdr.shnum):
            fail(f"Invalid ELF sh_link!=SHN_UNDEF({s.link}) or (sh_link({s.link}) >= "
                 f"hdr->e_shnum({hdr.shnum})")
        if not elf.range_valid(length, s.offset, s.size):
            fail(f"Invalid ELF section in module (section {i} type {s.type})")
        if s.flags & elf.SHF_ALLOC and s.name_off >= strhdr.size:
            fail(f"Invalid ELF section name in module (section {i} type {s.type})")
    elf.name_sections(buf, sechdrs, hdr.shstrndx)
    info.hdr, info.sechdrs, info.secstrings = hdr, sechdrs, hdr.shstrndx
