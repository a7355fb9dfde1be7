"""Section layout as Linux computes it on x86-64: layout_sections, layout_symtab, move_module.

Two generations (the release's Rules.mod_mem says which):

* **6.1** — ``core_layout``/``init_layout``: two allocations; each section's placement lives in
  ``sh_entsize`` (init placements carry bit 63, INIT_OFFSET_MASK); with STRICT_MODULE_RWX every
  boundary inside an allocation (text, rodata, ro_after_init, data) is page aligned.
* **6.4+ (6.12)** — ``struct module_memory mem[7]``: one allocation per type (MOD_TEXT,
  MOD_DATA, MOD_RODATA, MOD_RO_AFTER_INIT, MOD_INIT_TEXT, MOD_INIT_DATA, MOD_INIT_RODATA); the
  type sits in the top four bits of ``sh_entsize`` (SH_ENTSIZE_TYPE_SHIFT = 60), the offset
  below; sizes are not rounded while laying out, each non-empty type is page-aligned when it is
  allocated, in enum order.

The sizes decide what /proc/modules and lsmod show, so this file must reproduce them to the
byte (reference §2.9, docs/linux-6.12.md; checked against the real kernels' figures).
"""
from __future__ import annotations

from ... import elf
from ...errors import ENOMEM
from ..mm import MODULES_END, MODULES_VADDR, PAGE_SIZE, Fault, align, page_align
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
    """PAGE_ALIGN under CONFIG_STRICT_MODULE_RWX (Debian: y), of an unsigned int."""
    return page_align(size) & U32


def module_init_layout_section(name: str) -> bool:
    """With MODULE_UNLOAD=y only ``.init*`` sections go to the init layout (``.exit*`` stay core)."""
    return name.startswith(".init")


# Layout sizes are unsigned int in the kernel (6.1 struct module_layout, 6.4+ module_memory):
# a section of 4 GiB or more wraps them, and the module is laid out (and loads) as if the
# section were that much smaller, as the real 6.1 kernel did with a 4 GiB .bss (the
# malformed-module recording).
U32 = 0xFFFFFFFF


def kalign(size: int, a: int) -> int:
    """The kernel's ALIGN() of an unsigned int size: the mask is cast to unsigned int, and
    it is a mask (a non-power-of-two sh_addralign aligns as its bit pattern says)."""
    mask = ((a or 1) - 1) & U32
    return ((size + mask) & ~mask) & U32


def _get_offset(layout: Layout, sec: elf.Section) -> int:
    off = kalign(layout.size, sec.addralign)
    layout.size = (off + sec.size) & U32
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


def placed_in_init(info: LoadInfo, sec: elf.Section) -> bool:
    """Whether layout_sections put ``sec`` in an init allocation (either generation)."""
    if info.mem is not None:
        return (sec.entsize >> SH_ENTSIZE_TYPE_SHIFT) in MOD_INIT_TYPES
    return bool(sec.entsize & INIT_OFFSET_MASK)


def placement_record(info: LoadInfo) -> list[dict]:
    """For the load's record (--explain, the picture): where layout_sections put each SHF_ALLOC
    section — its allocation ("core"/"init", or the module_memory type's name), offset in it,
    size, alignment, NOBITS or not — read back from ``sh_entsize`` as the move left it."""
    out = []
    for i, s in enumerate(info.sechdrs):
        if not s.flags & elf.SHF_ALLOC or s.entsize == UNASSIGNED:
            continue
        if info.mem is not None:
            kind = MOD_MEM_NAMES[s.entsize >> SH_ENTSIZE_TYPE_SHIFT]
            off = s.entsize & SH_ENTSIZE_OFFSET_MASK
        else:
            kind = "init" if s.entsize & INIT_OFFSET_MASK else "core"
            off = s.entsize & ~INIT_OFFSET_MASK
        out.append({"index": i, "name": s.name, "alloc": kind, "offset": off, "size": s.size,
                    "align": s.addralign, "nobits": s.type == elf.SHT_NOBITS, "flags": s.flags})
    return out


def kallsyms_record(info: LoadInfo) -> dict:
    """For the load's record: the core kallsyms copy layout_symtab reserved (symbols kept,
    offsets of the symbols, names and type chars in core / MOD_DATA) and the init side's
    struct mod_kallsyms and type table."""
    return {"core_alloc": "data" if info.mem is not None else "core",
            "init_alloc": "init_data" if info.mem is not None else "init",
            "nsyms": len(info.symtab), "ndst": info.ndst, "symoffs": info.symoffs,
            "stroffs": info.stroffs, "strtab_size": info.core_strtab_size,
            "typeoffs": info.core_typeoffs, "mod_kallsyms_init_off": info.mod_kallsyms_init_off,
            "init_typeoffs": info.init_typeoffs}


def core_symbol_mask(info: LoadInfo):
    """Boolean numpy mask over the symtab: index 0 plus every core symbol."""
    import numpy as np
    sym = info.symtab
    shnum = info.hdr.shnum
    keep_sec = np.zeros(shnum + 1, dtype=bool)
    for i, s in enumerate(info.sechdrs):
        keep_sec[i] = bool(s.flags & elf.SHF_ALLOC) and not placed_in_init(info, s)
    if info.index_pcpu:
        keep_sec[info.index_pcpu] = True
    keep_sec[0] = False
    shndx = sym["st_shndx"].astype(np.int64)
    valid = (shndx < shnum) & (sym["st_name"] != 0)
    mask = valid & keep_sec[np.where(valid, shndx, shnum)]
    mask[:1] = True                  # symbol 0 (an empty symbol table has none)
    return mask


def strlens(strtab: bytes, offsets):
    """strlen() of the strings at ``offsets`` in ``strtab`` (vectorised).  Only the bytes up to
    the last offset are scanned, plus the first NUL after it: ``strtab`` may run on to the end
    of the image (see cache_load_info), megabytes of which hold no name."""
    import numpy as np
    offs = np.minimum(np.asarray(offsets, dtype=np.int64), len(strtab))
    if not len(offs):
        return offs
    hi = int(offs.max())
    head = np.frombuffer(strtab, dtype=np.uint8, count=hi)
    last = strtab.find(b"\0", hi)
    ends = np.concatenate((np.flatnonzero(head == 0), [last if last >= 0 else len(strtab)]))
    return ends[np.searchsorted(ends, offs)] - offs


def layout_symtab(info: LoadInfo) -> None:
    """Append the full symtab and strtab to init, and room for the core kallsyms copy (the
    kept symbols, their names and type chars) to core, page-aligning both again."""
    symsect = info.sechdrs[info.index_sym]
    strsect = info.sechdrs[info.index_str]
    core, init = info.core, info.init
    symsect.flags |= elf.SHF_ALLOC
    symsect.entsize = _get_offset(init, symsect) | INIT_OFFSET_MASK
    nsrc = len(info.symtab)
    mask = info.core_mask = core_symbol_mask(info)     # add_kallsyms copies these symbols
    ndst = int(mask.sum())
    strtab_size = int((strlens(info.strtab, info.symtab["st_name"][mask]) + 1).sum())
    info.ndst, info.core_strtab_size = ndst, strtab_size
    info.symoffs = kalign(core.size, symsect.addralign)
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


# The sandbox machine's memory: one module allocation larger than this fails as vmalloc fails
# on a kernel without that much free memory (-ENOMEM), instead of the sandbox holding (and
# saving) it.  The largest real allocation (amdgpu's core, ~10 MiB) is far below it.
SANDBOX_VMALLOC_MAX = 64 << 20


def module_alloc(used: list[tuple[int, int]], size: int, load_offset: int) -> int:
    """x86-64 module_alloc: lowest page-aligned gap in [MODULES_VADDR + offset, MODULES_END),
    with vmalloc's guard page after every area.  ``used`` = (base, size) of existing areas."""
    size = page_align(size)
    if size > MODULES_END - MODULES_VADDR or size > SANDBOX_VMALLOC_MAX:
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
                name: str, placement: tuple[int, int] | None = None) -> list[list]:
    """6.1: allocate core and init, copy every SHF_ALLOC section there, and point ``sh_addr``
    at the final address (NOBITS sections only get their address).  Returns the allocations
    as [type, base, size, region name] ("core", "init").

    ``placement`` = (core base, init base) puts the module where another kernel put it (to
    compare its bytes with that kernel's memory); the bases must be free and page aligned."""
    if placement is not None:
        core_base, init_base = placement
        wanted = [(core_base, info.core.size)] + ([(init_base, info.init.size)] if info.init.size else [])
        for base, size in wanted:
            if base % PAGE_SIZE or not MODULES_VADDR <= base < MODULES_END or any(
                    base < b + page_align(s) and b < base + page_align(size) for b, s in used):
                raise LoadError(ENOMEM, "move_module", reason=f"cannot place {name} at {base:#x}")
    else:
        core_base = module_alloc(used, info.core.size, load_offset)
        if not core_base:
            raise LoadError(ENOMEM, "move_module")
        init_base = 0
        if info.init.size:
            init_base = module_alloc(used + [(core_base, info.core.size)], info.init.size,
                                     load_offset)
            if not init_base:
                raise LoadError(ENOMEM, "move_module")
    info.core.base, info.init.base = core_base, (init_base if info.init.size else 0)
    core_name = region_name(mm, name, "core")
    core = mm.map(core_name, core_base, info.core.size).data
    allocs = [["core", core_base, info.core.size, core_name]]
    init = None
    if info.init.size:
        init_name = region_name(mm, name, "init")
        init = mm.map(init_name, init_base, info.init.size).data
        allocs.append(["init", init_base, info.init.size, init_name])
    try:
        _copy_sections(info, core, init)
    except Fault:                   # the kernel's memcpy ran off the allocation: an oops
        for a in allocs:
            mm.unmap(a[3])
        raise
    info.kallsyms_core_base, info.kallsyms_init_base = info.core.base, info.init.base
    return allocs


def _copy_sections(info: LoadInfo, core: bytearray, init: bytearray | None) -> None:
    for s in info.sechdrs:
        if not s.flags & elf.SHF_ALLOC:
            continue
        if s.entsize & INIT_OFFSET_MASK:
            off, dst, base = s.entsize & ~INIT_OFFSET_MASK, init or bytearray(), info.init.base
        else:
            off, dst, base = s.entsize, core, info.core.base
        if s.type != elf.SHT_NOBITS and s.size:
            _copy_into(dst, base, off, info.image[s.offset:s.offset + s.size])
        s.addr = base + off


def _copy_into(dst: bytearray, base: int, off: int, data: bytes) -> None:
    """memcpy into an allocation: bytes past its end (sizes wrapped as unsigned int, so a
    section can lie beyond the allocation) fault at the first address past it."""
    if off + len(data) > len(dst):
        raise Fault(base + max(off, len(dst)), len(data), True)
    dst[off:off + len(data)] = data


# -- 6.4+ (6.12): one allocation per module_memory type ------------------------------------

MOD_TEXT, MOD_DATA, MOD_RODATA, MOD_RO_AFTER_INIT, MOD_INIT_TEXT, MOD_INIT_DATA, \
    MOD_INIT_RODATA = range(7)
MOD_MEM_NUM_TYPES = 7
MOD_INVALID = -1
MOD_MEM_NAMES = ("text", "data", "rodata", "ro_after_init", "init_text", "init_data",
                 "init_rodata")
MOD_INIT_TYPES = (MOD_INIT_TEXT, MOD_INIT_DATA, MOD_INIT_RODATA)
SH_ENTSIZE_TYPE_SHIFT = 60
SH_ENTSIZE_OFFSET_MASK = (1 << SH_ENTSIZE_TYPE_SHIFT) - 1
# the five passes' types: text, rodata, ro_after_init, data, rest (init has no ro_after_init)
_CORE_TYPES = (MOD_TEXT, MOD_RODATA, MOD_RO_AFTER_INIT, MOD_DATA, MOD_DATA)
_INIT_TYPES = (MOD_INIT_TEXT, MOD_INIT_RODATA, MOD_INVALID, MOD_INIT_DATA, MOD_INIT_DATA)


def module_get_offset_and_type(info: LoadInfo, mtype: int, sec: elf.Section) -> int:
    """Append ``sec`` to type ``mtype`` (aligned); its placement: offset | type << 60."""
    off = kalign(info.mem[mtype], sec.addralign)
    info.mem[mtype] = (off + sec.size) & U32
    return off | (mtype << SH_ENTSIZE_TYPE_SHIFT)


def layout_sections_mem(info: LoadInfo) -> None:
    """The five passes per type, core sections first, then the ``.init*`` ones; no rounding."""
    info.mem = [0] * MOD_MEM_NUM_TYPES
    for s in info.sechdrs:
        s.entsize = UNASSIGNED
    for init, types in ((False, _CORE_TYPES), (True, _INIT_TYPES)):
        for (need, forbid), mtype in zip(_MASKS, types):
            for s in info.sechdrs:
                if (s.flags & need) != need or s.flags & forbid or s.entsize != UNASSIGNED \
                        or module_init_layout_section(s.name) != init:
                    continue
                if mtype == MOD_INVALID:      # an init section marked ro_after_init: WARN, skip
                    continue
                s.entsize = module_get_offset_and_type(info, mtype, s)


def layout_symtab_mem(info: LoadInfo) -> None:
    """The full symtab and strtab (plus struct mod_kallsyms and the type table) go to
    MOD_INIT_DATA, the core kallsyms copy to the end of MOD_DATA."""
    symsect = info.sechdrs[info.index_sym]
    strsect = info.sechdrs[info.index_str]
    symsect.flags |= elf.SHF_ALLOC
    symsect.entsize = module_get_offset_and_type(info, MOD_INIT_DATA, symsect)
    nsrc = len(info.symtab)
    mask = info.core_mask = core_symbol_mask(info)     # add_kallsyms copies these symbols
    ndst = int(mask.sum())
    strtab_size = int((strlens(info.strtab, info.symtab["st_name"][mask]) + 1).sum())
    info.ndst, info.core_strtab_size = ndst, strtab_size
    mem = info.mem
    info.symoffs = kalign(mem[MOD_DATA], symsect.addralign)
    info.stroffs = mem[MOD_DATA] = info.symoffs + ndst * SYM_SIZE
    mem[MOD_DATA] += strtab_size
    info.core_typeoffs = mem[MOD_DATA]
    mem[MOD_DATA] += ndst

    strsect.flags |= elf.SHF_ALLOC
    strsect.entsize = module_get_offset_and_type(info, MOD_INIT_DATA, strsect)
    mem[MOD_INIT_DATA] = align(mem[MOD_INIT_DATA], MOD_KALLSYMS_ALIGN)
    info.mod_kallsyms_init_off = mem[MOD_INIT_DATA]
    mem[MOD_INIT_DATA] += MOD_KALLSYMS_SIZE
    info.init_typeoffs = mem[MOD_INIT_DATA]
    mem[MOD_INIT_DATA] += nsrc


def move_module_mem(info: LoadInfo, mm, used: list[tuple[int, int]], load_offset: int,
                    name: str, placement: dict | None = None) -> list[list]:
    """module_memory_alloc for every non-empty type in enum order (each PAGE_ALIGNed, each its
    own vmalloc area from the module range), then copy the sections and point ``sh_addr`` at
    them.  Returns the allocations as [type name, base, size, region name].

    ``placement`` = {type name: base} puts those allocations where another kernel put them
    (the others are allocated as usual)."""
    allocs: list[list] = []
    bases = [0] * MOD_MEM_NUM_TYPES
    taken = list(used)
    try:
        for t in range(MOD_MEM_NUM_TYPES):
            if not info.mem[t]:
                continue
            size = info.mem[t] = page_align(info.mem[t])
            if placement is not None and MOD_MEM_NAMES[t] in placement:
                base = placement[MOD_MEM_NAMES[t]]
                if base % PAGE_SIZE or not MODULES_VADDR <= base < MODULES_END or any(
                        base < b + page_align(sz) and b < base + size for b, sz in taken):
                    raise LoadError(ENOMEM, "move_module",
                                    reason=f"cannot place {name}'s {MOD_MEM_NAMES[t]} at {base:#x}")
            else:
                base = module_alloc(taken, size, load_offset)
                if not base:
                    raise LoadError(ENOMEM, "move_module")
            region = region_name(mm, name, MOD_MEM_NAMES[t])
            mm.map(region, base, size)
            allocs.append([MOD_MEM_NAMES[t], base, size, region])
            taken.append((base, size))
            bases[t] = base
    except LoadError:
        for a in allocs:
            mm.unmap(a[3])
        raise
    info.mem_base = bases
    regions = {a[1]: mm.regions[a[3]].data for a in allocs}
    try:
        for s in info.sechdrs:
            if not s.flags & elf.SHF_ALLOC:
                continue
            t, off = s.entsize >> SH_ENTSIZE_TYPE_SHIFT, s.entsize & SH_ENTSIZE_OFFSET_MASK
            if s.type != elf.SHT_NOBITS and s.size:
                _copy_into(regions.get(bases[t], bytearray()), bases[t], off, info.image[s.offset:s.offset + s.size])
            s.addr = bases[t] + off
    except Fault:                   # the kernel's memcpy ran off the allocation: an oops
        for a in allocs:
            mm.unmap(a[3])
        raise
    info.kallsyms_core_base, info.kallsyms_init_base = bases[MOD_DATA], bases[MOD_INIT_DATA]
    core = sum(info.mem[t] for t in range(MOD_INIT_TEXT))
    init = sum(info.mem[t] for t in MOD_INIT_TYPES)
    info.core = Layout(base=bases[MOD_TEXT], size=core)
    info.init = Layout(base=next((bases[t] for t in MOD_INIT_TYPES if bases[t]), 0), size=init)
    return allocs
