"""The ELF sanity checks of kernel/module/main.c, in the kernel's order.

Linux 6.1 has :func:`elf_validity_check` (then setup_load_info finds the sections); 6.4 and later
(6.12) fold both into :func:`elf_validity_cache_copy`, which also insists on exactly one
.modinfo (when any), one symbol table and one ``.gnu.linkonce.this_module`` that is allocated
and exactly ``sizeof(struct module)`` long.  Every failure is -ENOEXEC with the kernel's log text
(reference §2.2, docs/linux-6.12.md).  What a release does *not* check (program headers,
e_entry, EI_CLASS/EI_DATA, relocation sh_info, st_name bounds) is deliberately not checked.
"""
from __future__ import annotations

from ... import elf
from ...errors import ENOEXEC
from .internal import LoadError, LoadInfo


def elf_validity_check(info: LoadInfo) -> None:
    """Linux 6.1: check the header, the section header table and every section's bounds.

    Preconditions: ``info.len`` is the ELF length (signature already split off).
    Sets ``info.hdr``, ``info.sechdrs`` (names resolved) and ``info.secstrings``.
    Errors: -ENOEXEC, with the kernel's pr_err text.
    """
    def fail(msg: str):
        raise LoadError(ENOEXEC, "elf_validity_check", msg)

    hdr, sechdrs, strhdr = _header_checks(info, fail)
    length = info.len
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
    elf.name_sections(info.image, sechdrs, hdr.shstrndx)
    info.hdr, info.sechdrs, info.secstrings = hdr, sechdrs, hdr.shstrndx


def elf_validity_cache_copy(info: LoadInfo, sizeof_module: int | None) -> None:
    """Linux 6.12.y as Debian 13 ships it (6.12.118; the 6.13 split of the checks came back to
    6.12 stable, with the SHT_STRTAB type checks): header; section headers (section 0, every
    section's bounds); section names (index, table type, NUL, every name in bounds); then the
    indices — the .modinfo (at most one, any flags), exactly one this_module (allocated, the
    size of struct module), exactly one symbol table, its string table.

    Sets what elf_validity_check sets plus ``index_info``, ``name`` (modinfo name=),
    ``index_mod``, ``index_sym`` and ``index_str``.  ``sizeof_module`` is the kernel's
    sizeof(struct module) (from its BTF); None skips that one comparison (a profile without
    BTF layouts).  Not in this release: the symbol string table's content checks (6.13) and
    the extended modversions sections (6.15)."""
    def fail(msg: str, level: int = 3):
        raise LoadError(ENOEXEC, "elf_validity_cache_copy", msg, level=level)

    buf, length = info.image, info.len
    hdr = _ehdr_checks(info, fail)
    sechdrs = elf.parse_sections(buf, hdr.shoff, hdr.shnum)
    # section 0 is read even when e_shnum is 0 (the bytes at e_shoff; past the image: zeros)
    s0 = sechdrs[0] if sechdrs else elf.parse_sections(
        bytes(buf[hdr.shoff:hdr.shoff + elf.SHDR.size]).ljust(elf.SHDR.size, b"\0"), 0, 1)[0]
    if s0.type != elf.SHT_NULL or s0.size != 0 or s0.addr != 0:
        fail(f"ELF Spec violation: section 0 type({s0.type})!=SH_NULL or non-zero len or addr")
    for i, s in enumerate(sechdrs[1:], 1):          # elf_validity_cache_sechdrs
        if s.type not in (elf.SHT_NULL, elf.SHT_NOBITS) and \
                not elf.range_valid(length, s.offset, s.size):
            fail(f"Invalid ELF section in module (section {i} type {s.type})")
    # elf_validity_cache_secstrings
    if hdr.shstrndx == 0 or hdr.shstrndx >= hdr.shnum:
        fail(f"Invalid ELF section name index: {hdr.shstrndx} || e_shstrndx ({hdr.shstrndx}) "
             f">= e_shnum ({hdr.shnum})")
    strhdr = sechdrs[hdr.shstrndx]
    if strhdr.type != elf.SHT_STRTAB:
        fail(f"Invalid ELF section name table type: {strhdr.type}")
    if strhdr.size == 0:
        fail("empty section name table")
    if buf[strhdr.offset + strhdr.size - 1] != 0:
        fail("ELF Spec violation: section name table isn't null terminated")
    for i, s in enumerate(sechdrs):
        if s.type != elf.SHT_NULL and s.name_off >= strhdr.size:
            fail(f"Invalid ELF section name in module (section {i} type {s.type})")
    elf.name_sections(buf, sechdrs, hdr.shstrndx)
    info.hdr, info.sechdrs, info.secstrings = hdr, sechdrs, hdr.shstrndx
    # elf_validity_cache_index: info, mod, sym, str
    info_idx = find_any_unique_sec(sechdrs, ".modinfo")
    if info_idx < 0:
        fail("Only one .modinfo section must exist.")
    if info_idx:
        info.index_info = info_idx
        info.modinfo = elf.parse_modinfo(elf.section_bytes(buf, sechdrs[info_idx]))
        info.name = info.get_modinfo("name") or ""
    who = info.name or "(missing .modinfo section or name field)"
    mod_idx = find_any_unique_sec(sechdrs, ".gnu.linkonce.this_module")
    if mod_idx <= 0:
        fail(f"module {who}: Exactly one .gnu.linkonce.this_module section must exist.")
    sec = sechdrs[mod_idx]
    if sec.type == elf.SHT_NOBITS:
        fail(f"module {who}: .gnu.linkonce.this_module section must have a size set")
    if not sec.flags & elf.SHF_ALLOC:
        fail(f"module {who}: .gnu.linkonce.this_module must occupy memory during process execution")
    if sizeof_module is not None and sec.size != sizeof_module:
        fail(f"module {who}: .gnu.linkonce.this_module section size must match the kernel's "
             "built struct module size at run time")
    info.index_mod = mod_idx
    symtabs = [i for i, s in enumerate(sechdrs) if i and s.type == elf.SHT_SYMTAB]
    if len(symtabs) != 1:
        fail(f"{who}: module has no symbols (stripped?)", level=4)
    info.index_sym = symtabs[0]
    link = sechdrs[info.index_sym].link
    if link == 0 or link >= hdr.shnum:
        fail(f"Invalid ELF sh_link!=SHN_UNDEF({link}) or (sh_link({link}) >= "
             f"hdr->e_shnum({hdr.shnum})")
    if sechdrs[link].type != elf.SHT_STRTAB:
        fail(f"Invalid ELF symbol string table type: {sechdrs[link].type}")
    info.index_str = link


def find_any_unique_sec(sechdrs: list, name: str) -> int:
    """The index of the one section called ``name`` (any type and flags), 0 when there is
    none, negative when there are several."""
    hits = [i for i, s in enumerate(sechdrs) if i and s.name == name]
    return hits[0] if len(hits) == 1 else -len(hits)


def _ehdr_checks(info: LoadInfo, fail):
    """elf_validity_ehdr and the section-header table's bounds (both releases)."""
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
    # module_elf_check_arch: the weak default (true) on x86
    if hdr.shentsize != elf.SHDR.size:
        fail("Invalid ELF section header size")
    if hdr.shoff >= length or hdr.shnum * elf.SHDR.size > length - hdr.shoff:
        fail("Invalid ELF section header overflow")
    return hdr


def _header_checks(info: LoadInfo, fail):
    """6.1's checks before walking the sections: ELF header, section header table bounds,
    the section-name table, section 0.  Returns (hdr, sechdrs, shstrtab header)."""
    buf, length = info.image, info.len
    hdr = _ehdr_checks(info, fail)
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
    return hdr, sechdrs, strhdr
