"""Section layout as Linux 6.1 computes it on x86-64: layout_sections, layout_symtab, move_module.

The kernel keeps each section's placement in ``sh_entsize`` (init placements carry bit 63,
INIT_OFFSET_MASK) and the sizes in ``core_layout``/``init_layout``; with STRICT_MODULE_RWX every
boundary is page aligned.  The sizes decide what /proc/modules and lsmod show, so this file must
reproduce them to the byte (reference §2.9; checked against the real kernel's figures).
"""
from __future__ import annotations

from ... import elf
from ...errors import ENOMEM
from ..mm import MODULES_END, MODULES_VADDR, PAGE_SIZE, align, page_align
from .internal import Layout, LoadError, LoadInfo

INIT_OFFSET_MASK = 1 << 63
UNASSIGNED = (1 << 64) - 1            # ~0UL
SYM_SIZE = elf.SYM.size
MOD_KALLSYMS_SIZE = 32                # struct mod_kallsyms
MOD_KALLSYMS_ALIGN = 8

# (required flags, forbidden flags) of the five passes; ARCH_SHF_SMALL is 0 on x86.
_MASKS = [
    (elf.SHF_EXECINSTR | elf.SHF_ALLOC, 0),             # text
    (elf.SHF_ALLOC, elf.SHF_WRITE),                     # rodata
    (elf.SHF_RO_AFTER_INIT | elf.SHF_ALLOC, 0),         # ro_after_init
    (elf.SHF_WRITE | elf.SHF_ALLOC, 0),                 # data
    (elf.SHF_ALLOC, 0),                                 # anything left
]


def strict_align(size: int) -> int:
    """PAGE_ALIGN under CONFIG_STRICT_MODULE_RWX (Debian: y)."""
    return page_align(size)


def module_init_layout_section(name: str) -> bool:
    """With MODULE_UNLOAD=y only ``.init*`` sections go to the init layout (``.exit*`` stay core)."""
    return name.startswith(".init")


def _get_offset(layout: Layout, sec: elf.Section) -> int:
    off = align(layout.size, sec.addralign or 1)
    layout.size = off + sec.size
    return off


def layout_sections(info: LoadInfo) -> None:
    """Give every SHF_ALLOC section its offset in core or init, pass by pass (text, rodata,
    ro_after_init, data, rest), page-aligning after each kind: first the core sections, then
    the ``.init*`` ones (marked with INIT_OFFSET_MASK)."""
    for s in info.sechdrs:
        s.entsize = UNASSIGNED
    _layout_passes(info, info.core, init=False)
    _layout_passes(info, info.init, init=True)


def _layout_passes(info: LoadInfo, lay: Layout, init: bool) -> None:
    mark = INIT_OFFSET_MASK if init else 0
    for m, (need, forbid) in enumerate(_MASKS):
        for s in info.sechdrs:
            if (s.flags & need) != need or s.flags & forbid or s.entsize != UNASSIGNED \
                    or module_init_layout_section(s.name) != init:
                continue
            s.entsize = _get_offset(lay, s) | mark
        if m == 0:
            lay.size = strict_align(lay.size)
            lay.text_size = lay.size
        elif m == 1:
            lay.size = strict_align(lay.size)
            lay.ro_size = lay.size
        elif m == 2:
            if init:                    # init has no ro_after_init part
                lay.ro_after_init_size = lay.ro_size
            else:
                lay.size = strict_align(lay.size)
                lay.ro_after_init_size = lay.size
        elif m == 4:
            lay.size = strict_align(lay.size)


def core_symbol_mask(info: LoadInfo):
    """Boolean numpy mask over the symtab: index 0 plus every core symbol."""
    import numpy as np
    sym = info.symtab
    shnum = info.hdr.shnum
    keep_sec = np.zeros(shnum + 1, dtype=bool)
    for i, s in enumerate(info.sechdrs):
        keep_sec[i] = bool(s.flags & elf.SHF_ALLOC) and not (s.entsize & INIT_OFFSET_MASK)
    if info.index_pcpu:
        keep_sec[info.index_pcpu] = True
    keep_sec[0] = False
    shndx = sym["st_shndx"].astype(np.int64)
    valid = (shndx < shnum) & (sym["st_name"] != 0)
    mask = valid & keep_sec[np.where(valid, shndx, shnum)]
    mask[0] = True
    return mask


def strlens(strtab: bytes, offsets):
    """strlen() of the strings at ``offsets`` in ``strtab`` (vectorised)."""
    import numpy as np
    arr = np.frombuffer(strtab, dtype=np.uint8)
    nul = np.flatnonzero(arr == 0)
    if len(nul) == 0 or nul[-1] != len(arr) - 1:
        nul = np.append(nul, len(arr))
    offs = np.minimum(np.asarray(offsets, dtype=np.int64), len(arr))
    ends = nul[np.searchsorted(nul, offs)]
    return ends - offs


def layout_symtab(info: LoadInfo) -> None:
    """Append the full symtab and strtab to init, and room for the core kallsyms copy (the
    kept symbols, their names and type chars) to core, page-aligning both again."""
    symsect = info.sechdrs[info.index_sym]
    strsect = info.sechdrs[info.index_str]
    core, init = info.core, info.init
    symsect.flags |= elf.SHF_ALLOC
    symsect.entsize = _get_offset(init, symsect) | INIT_OFFSET_MASK
    nsrc = len(info.symtab)
    mask = core_symbol_mask(info)
    ndst = int(mask.sum())
    strtab_size = int((strlens(info.strtab, info.symtab["st_name"][mask]) + 1).sum())
    info.ndst, info.core_strtab_size = ndst, strtab_size
    info.symoffs = align(core.size, symsect.addralign or 1)
    info.stroffs = core.size = info.symoffs + ndst * SYM_SIZE
    core.size += strtab_size
    info.core_typeoffs = core.size
    core.size += ndst
    core.size = strict_align(core.size)

    strsect.flags |= elf.SHF_ALLOC
    strsect.entsize = _get_offset(init, strsect) | INIT_OFFSET_MASK
    init.size = align(init.size, MOD_KALLSYMS_ALIGN)
    info.mod_kallsyms_init_off = init.size
    init.size += MOD_KALLSYMS_SIZE
    info.init_typeoffs = init.size
    init.size += nsrc
    init.size = strict_align(init.size)


def module_alloc(used: list[tuple[int, int]], size: int, load_offset: int) -> int:
    """x86-64 module_alloc: lowest page-aligned gap in [MODULES_VADDR + offset, MODULES_END),
    with vmalloc's guard page after every area.  ``used`` = (base, size) of existing areas."""
    size = page_align(size)
    if size > MODULES_END - MODULES_VADDR:
        return 0
    addr = MODULES_VADDR + load_offset
    for base, sz in sorted(used):
        if base + page_align(sz) + PAGE_SIZE <= addr:
            continue
        if addr + size + PAGE_SIZE <= base:
            break
        addr = max(addr, base + page_align(sz) + PAGE_SIZE)
    if addr + size > MODULES_END:
        return 0
    return addr


def region_name(mm, name: str, kind: str) -> str:
    """A free region name for a module's memory: '<mod>:core', or '<mod>:core~N' while another
    copy of that name is still in the list (the name is checked only after the move)."""
    base = f"{name}:{kind}"
    n, cand = 1, base
    while cand in mm.regions:
        n += 1
        cand = f"{base}~{n}"
    return cand


def move_module(info: LoadInfo, mm, used: list[tuple[int, int]], load_offset: int,
                name: str, placement: tuple[int, int] | None = None) -> tuple[str, str]:
    """Allocate core and init, copy every SHF_ALLOC section there, and point ``sh_addr`` at the
    final address (NOBITS sections only get their address).  Returns the two region names.

    ``placement`` = (core base, init base) puts the module where another kernel put it (to
    compare its bytes with that kernel's memory); the bases must be free and page aligned."""
    if placement is not None:
        return _move_to(info, mm, used, name, placement)
    core_base = module_alloc(used, info.core.size, load_offset)
    if not core_base:
        raise LoadError(ENOMEM, "move_module")
    core_name = region_name(mm, name, "core")
    core = mm.map(core_name, core_base, info.core.size).data
    info.core.base = core_base
    init_name, init = "", None
    if info.init.size:
        init_base = module_alloc(used + [(core_base, info.core.size)], info.init.size, load_offset)
        if not init_base:
            mm.unmap(core_name)
            raise LoadError(ENOMEM, "move_module")
        init_name = region_name(mm, name, "init")
        init = mm.map(init_name, init_base, info.init.size).data
        info.init.base = init_base
    _copy_sections(info, core, init)
    return core_name, init_name


def _move_to(info: LoadInfo, mm, used, name: str, placement: tuple[int, int]) -> tuple[str, str]:
    core_base, init_base = placement
    wanted = [(core_base, info.core.size)] + ([(init_base, info.init.size)] if info.init.size else [])
    for base, size in wanted:
        if base % PAGE_SIZE or not MODULES_VADDR <= base < MODULES_END or any(
                base < b + page_align(s) and b < base + page_align(size) for b, s in used):
            raise LoadError(ENOMEM, "move_module", reason=f"cannot place {name} at {base:#x}")
    info.core.base, info.init.base = core_base, (init_base if info.init.size else 0)
    core_name = region_name(mm, name, "core")
    core = mm.map(core_name, core_base, info.core.size).data
    init_name, init = "", None
    if info.init.size:
        init_name = region_name(mm, name, "init")
        init = mm.map(init_name, init_base, info.init.size).data
    _copy_sections(info, core, init)
    return core_name, init_name


def _copy_sections(info: LoadInfo, core: bytearray, init: bytearray | None) -> None:
    for s in info.sechdrs:
        if not s.flags & elf.SHF_ALLOC:
            continue
        if s.entsize & INIT_OFFSET_MASK:
            off, dst, base = s.entsize & ~INIT_OFFSET_MASK, init, info.init.base
        else:
            off, dst, base = s.entsize, core, info.core.base
        if s.type != elf.SHT_NOBITS and s.size:
            dst[off:off + s.size] = info.image[s.offset:s.offset + s.size]
        s.addr = base + off
