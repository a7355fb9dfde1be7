"""Module kallsyms (kernel/module/kallsyms.c): the full symtab in init memory, and the
reduced copy kept in core after init (core symbols, renumbered names, a type char each)."""
from __future__ import annotations

import struct

from ... import elf
from .internal import LoadInfo, Module
from .layout import INIT_OFFSET_MASK, core_symbol_mask

SHN_LORESERVE = 0xFF00


def elf_type(st_info: int, shndx: int, info: LoadInfo) -> str:
    """The nm-style letter kallsyms shows for a module symbol."""
    if st_info >> 4 == elf.STB_WEAK:
        return "v" if st_info & 0xF == elf.STT_OBJECT else "w"
    if shndx == elf.SHN_UNDEF:
        return "U"
    if shndx == elf.SHN_ABS or (info.index_pcpu and shndx == info.index_pcpu):
        return "a"
    if shndx >= SHN_LORESERVE:
        return "?"
    s = info.sechdrs[shndx]
    if s.flags & elf.SHF_EXECINSTR:
        return "t"
    if s.flags & elf.SHF_ALLOC and s.type != elf.SHT_NOBITS:
        return "d" if s.flags & elf.SHF_WRITE else "r"
    if s.type == elf.SHT_NOBITS:
        return "b"
    if s.name.startswith(".debug"):
        return "n"
    return "?"


def add_kallsyms(mm, info: LoadInfo, mod: Module) -> None:
    """Write the simplified symtab to its init copy, the mod_kallsyms header and type table,
    and build the core copy (symtab, strtab, typetab) at the offsets layout_symtab reserved."""
    import numpy as np
    sym = info.symtab
    symsec, strsec = info.sechdrs[info.index_sym], info.sechdrs[info.index_str]
    mm.write(symsec.addr, sym.tobytes())
    shndx, st_info = sym["st_shndx"].tolist(), sym["st_info"].tolist()
    types = [elf_type(st_info[i], shndx[i], info) for i in range(len(sym))]
    init_base = info.init.base
    mm.write(init_base + info.mod_kallsyms_init_off,
             struct.pack("<QIIQQ", symsec.addr, len(sym), 0, strsec.addr, init_base + info.init_typeoffs)[:32])
    mm.write(init_base + info.init_typeoffs, "".join(types).encode("latin-1"))

    mask = core_symbol_mask(info)
    keep = np.flatnonzero(mask).tolist()
    dst = sym[mask].copy()
    strtab = info.strtab
    names, out = [], bytearray()
    for k, i in enumerate(keep):
        nm = elf.cstring(strtab, int(sym["st_name"][i])) if sym["st_name"][i] < len(strtab) else ""
        dst["st_name"][k] = len(out)
        out += nm.encode("latin-1") + b"\0"
        names.append(nm)
    core_base = info.core.base
    mm.write(core_base + info.symoffs, dst.tobytes())
    mm.write(core_base + info.stroffs, bytes(out[:info.core_typeoffs - info.stroffs]))
    mm.write(core_base + info.core_typeoffs, "".join(types[i] for i in keep).encode("latin-1"))
    # While the module initialises, kallsyms reads the full table (init symbols included);
    # do_init_module keeps the core ones.
    values = sym["st_value"].tolist()
    full = []
    for i in range(1, len(sym)):
        if types[i] in "U?n" or not sym["st_name"][i] or int(shndx[i]) == elf.SHN_UNDEF:
            continue
        if st_info[i] & 0xF in (elf.STT_SECTION, elf.STT_FILE):
            continue
        nm = elf.cstring(strtab, int(sym["st_name"][i])) if sym["st_name"][i] < len(strtab) else ""
        if nm:
            full.append((values[i], types[i], nm))
    mod.kallsyms = full
