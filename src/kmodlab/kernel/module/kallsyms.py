"""Module kallsyms (kernel/module/kallsyms.c): the full symtab in init memory, and the reduced
copy kept in core after init (core symbols, renumbered names, a type char each).

The tables live in module memory, as in the kernel; ``Module.kallsyms`` records only where
(symtab, count, strtab, typetab).  :func:`module_symbols` reads them back for /proc/kallsyms
and for naming addresses in oops reports and traces.
"""
from __future__ import annotations

import struct

from ... import elf
from .internal import LoadInfo, Module
from .layout import INIT_OFFSET_MASK, core_symbol_mask, strlens

SHN_LORESERVE = 0xFF00


def elf_types(info: LoadInfo):
    """The nm-style letter of every symbol (elf_type), computed for the whole table at once:
    w/v weak, U undefined, a absolute or per-CPU, t text, r rodata, d data, b bss, n debug, ?."""
    import numpy as np
    sym = info.symtab
    shnum = len(info.sechdrs)
    per_sec = np.full(shnum + 1, ord("?"), dtype=np.uint8)
    for i, s in enumerate(info.sechdrs):
        if s.flags & elf.SHF_EXECINSTR:
            per_sec[i] = ord("t")
        elif s.flags & elf.SHF_ALLOC and s.type != elf.SHT_NOBITS:
            per_sec[i] = ord("d") if s.flags & elf.SHF_WRITE else ord("r")
        elif s.type == elf.SHT_NOBITS:
            per_sec[i] = ord("b")
        elif s.name.startswith(".debug"):
            per_sec[i] = ord("n")
    shndx = sym["st_shndx"].astype(np.int64)
    out = per_sec[np.minimum(shndx, shnum)]
    out[shndx >= SHN_LORESERVE] = ord("?")
    out[(shndx == elf.SHN_ABS) | ((shndx == info.index_pcpu) & (info.index_pcpu != 0))] = ord("a")
    out[shndx == elf.SHN_UNDEF] = ord("U")
    weak = (sym["st_info"] >> 4) == elf.STB_WEAK
    obj = (sym["st_info"] & 0xF) == elf.STT_OBJECT
    out[weak & obj] = ord("v")
    out[weak & ~obj] = ord("w")
    return out


def _gather_names(strtab: bytes, offs, lens) -> bytes:
    """The strings at ``offs`` (lengths ``lens``), each followed by a NUL, back to back."""
    import numpy as np
    lens1 = lens + 1
    total = int(lens1.sum())
    if total == 0 or not len(strtab):
        return b"\0" * total
    starts = np.cumsum(lens1) - lens1                    # where each name goes
    idx = np.arange(total, dtype=np.int64) + np.repeat(offs - starts, lens1)
    out = np.frombuffer(strtab, dtype=np.uint8)[np.minimum(idx, len(strtab) - 1)]
    out[starts + lens] = 0                               # the NUL (a name may end at the buffer's end)
    return out.tobytes()


def add_kallsyms(mm, info: LoadInfo, mod: Module) -> None:
    """Write the simplified symtab to its init copy, the mod_kallsyms header and type table,
    and build the core copy (symtab, strtab, typetab) at the offsets layout_symtab reserved."""
    import numpy as np
    sym = info.symtab
    symsec, strsec = info.sechdrs[info.index_sym], info.sechdrs[info.index_str]
    types = elf_types(info)
    init_base, core_base = info.kallsyms_init_base, info.kallsyms_core_base
    init_typetab = init_base + info.init_typeoffs
    mm.write(symsec.addr, sym.tobytes())
    mm.write(init_base + info.mod_kallsyms_init_off,
             struct.pack("<QI4xQQ", symsec.addr, len(sym), strsec.addr, init_typetab))
    mm.write(init_typetab, types.tobytes())

    keep = np.flatnonzero(info.core_mask if info.core_mask is not None else core_symbol_mask(info))
    dst = sym[keep].copy()
    strtab = info.strtab
    offs = sym["st_name"][keep].astype(np.int64)
    lens = strlens(strtab, offs)
    dst["st_name"] = np.concatenate(([0], np.cumsum(lens + 1)[:-1])).astype(np.uint32)
    names = _gather_names(strtab, offs, lens)
    mm.write(core_base + info.symoffs, dst.tobytes())
    mm.write(core_base + info.stroffs, names[:info.core_typeoffs - info.stroffs])
    mm.write(core_base + info.core_typeoffs, types[keep].tobytes())
    mod.kallsyms = {"init": [symsec.addr, len(sym), strsec.addr, init_typetab],
                    "core": [core_base + info.symoffs, len(keep), core_base + info.stroffs,
                             core_base + info.core_typeoffs]}


def module_symbols(mm, mod: Module) -> list[tuple[int, str, str]]:
    """(address, type, name) of the module's symbols as kallsyms shows them now: the full table
    while the module initialises, the core copy afterwards (unnamed, section and file symbols
    are skipped, as kallsyms skips them)."""
    which = "init" if mod.init_layout.size and "init" in mod.kallsyms else "core"
    if which not in mod.kallsyms:
        return []
    symtab, num, strtab, typetab = mod.kallsyms[which]
    try:
        raw = mm.read(symtab, num * elf.SYM.size)
        types = mm.read(typetab, num)
    except Exception:
        return []
    strs = mm.find(strtab)                   # the string table's region, looked up once
    if strs is None:
        return []
    data, base = strs.data, strtab - strs.base
    out = []
    for i, (st_name, st_info, _o, shndx, value, _size) in enumerate(elf.SYM.iter_unpack(raw)):
        if not i or not st_name or types[i] in b"U" or st_info & 0xF in (elf.STT_SECTION, elf.STT_FILE):
            continue
        o = base + st_name
        end = data.find(b"\0", o, o + 512)
        if end < 0:                          # KSYM_NAME_LEN: longer names are cut
            if o + 512 > len(data):
                continue
            end = o + 512
        name = data[o:end].decode("latin-1")
        out.append((value, chr(types[i]), name))
    return out
