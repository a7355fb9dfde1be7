"""x86-64 relocations as Linux 6.1 applies them (arch/x86/kernel/module.c, the arch seam).

One small formula per R_X86_64_* type, named as in the psABI, in a table keyed by type number;
a whole RELA section is applied at once with numpy (no per-relocation Python objects).
Linux 6.1's arithmetic, exactly:

- ``val = S + A`` modulo 2^64; PC-relative types subtract ``P`` modulo 2^64 and keep the low
  bits: **no overflow check for PC32/PLT32** (per-CPU symbols rely on the wrap-around);
- every target must be zero before it is written ("Skipping invalid relocation target");
- R_X86_64_32 / 32S are written first and then checked for zero-/sign-extension (overflow);
- any other type: "Unknown rela relocation" → -ENOEXEC.

Types that occur in no Debian 6.1 module and are refused like any unknown type:
GOTPCREL (9), GOTPCRELX (41), REX_GOTPCRELX (42), TLS types, 8/16-bit types.
"""
from __future__ import annotations

from ... import elf

R_X86_64_NONE = 0
R_X86_64_64 = 1
R_X86_64_PC32 = 2
R_X86_64_PLT32 = 4
R_X86_64_32 = 10
R_X86_64_32S = 11
R_X86_64_PC64 = 24

# type → (width in bytes, PC-relative?)
RELOCATIONS = {
    R_X86_64_NONE: (0, False),
    R_X86_64_64: (8, False),
    R_X86_64_PC32: (4, True),
    R_X86_64_PLT32: (4, True),
    R_X86_64_32: (4, False),
    R_X86_64_32S: (4, False),
    R_X86_64_PC64: (8, True),
}
MASK64 = (1 << 64) - 1


class RelocError(Exception):
    def __init__(self, *log: str):
        self.log = list(log)
        super().__init__(log[0])


def _first_error(errors: list[tuple[int, tuple[str, ...]]]) -> None:
    if errors:
        raise RelocError(*min(errors)[1])


def apply_relocate_add(mm, info, relsec: int, modname: str) -> dict[int, int]:
    """Apply RELA section ``relsec`` to its target section in module memory.

    Preconditions: symbols simplified (``info.symtab`` holds final values), sections moved
    (``sh_addr`` final).  Returns {type: count}.  Raises RelocError with the kernel's log lines
    for the first failing entry, in table order, as the kernel's sequential loop would.
    """
    import numpy as np
    sec = info.sechdrs[relsec]
    target = info.sechdrs[sec.info]
    rela = elf.relocations(info.image, sec)
    if len(rela) == 0:
        return {}
    region = mm.find(target.addr, max(target.size, 1))
    if region is None:
        raise RelocError(f"{modname}: relocation target section {target.name} is not mapped")
    mem = np.frombuffer(region.data, dtype=np.uint8)     # a writable view of module memory
    secoff = target.addr - region.base
    offs = rela["r_offset"].astype(np.int64)
    types = (rela["r_info"] & 0xFFFFFFFF).astype(np.int64)
    symidx = (rela["r_info"] >> 32).astype(np.int64)
    if symidx.max(initial=0) >= len(info.symtab):
        raise RelocError(f"{modname}: relocation refers to symbol {int(symidx.max())} of {len(info.symtab)}")
    S = info.symtab["st_value"][symidx]
    val = S + rela["r_addend"].view(np.uint64)            # u64 arithmetic wraps, like C
    P = np.uint64(target.addr) + offs.astype(np.uint64)
    counts = {int(t): int(n) for t, n in zip(*np.unique(types, return_counts=True))}
    errors: list[tuple[int, tuple[str, ...]]] = []

    unknown = np.flatnonzero(~np.isin(types, list(RELOCATIONS)))
    if len(unknown):
        i = int(unknown[0])
        errors.append((i, (f"module: {modname}: Unknown rela relocation: {int(types[i])}",)))

    # Overlapping targets would see each other's writes: keep the kernel's sequential semantics.
    widths = np.zeros(len(rela), dtype=np.int64)
    for t, (w, _) in RELOCATIONS.items():
        widths[types == t] = w
    live = np.flatnonzero(widths > 0)
    order = live[np.argsort(offs[live], kind="stable")]
    if len(order) > 1 and np.any(offs[order][1:] < offs[order][:-1] + widths[order][:-1]):
        return _apply_sequential(mm, info, relsec, modname, region, secoff, counts)

    if len(live) and (offs[live].min() < 0 or (offs[live] + widths[live]).max() > target.size):
        bad = live[(offs[live] < 0) | (offs[live] + widths[live] > target.size)]
        i = int(bad[0])
        errors.append((i, (f"module: {modname}: relocation {i} of {sec.name} at {int(offs[i]):#x} "
                           f"is outside {target.name}",)))
        _first_error(errors)

    for t, (w, pcrel) in RELOCATIONS.items():
        sel = np.flatnonzero(types == t)
        if not len(sel) or w == 0:
            continue
        v = val[sel] - P[sel] if pcrel else val[sel]
        pos = secoff + offs[sel]
        idx = pos[:, None] + np.arange(w)[None, :]
        old = mem[idx]
        nonzero = np.flatnonzero(old.any(axis=1))
        if len(nonzero):
            i = int(sel[nonzero[0]])
            existing_val = int(val[i])           # printed before P is subtracted
            errors.append((i, ("module: x86/modules: Skipping invalid relocation target, existing "
                               f"value is nonzero for type {t}, loc {int(P[i]):016x}, "
                               f"val {existing_val & MASK64:x}",)))
            continue
        if t in (R_X86_64_32, R_X86_64_32S):
            low = v & np.uint64(0xFFFFFFFF)
            if t == R_X86_64_32:
                bad = np.flatnonzero(low != v)
            else:
                sext = low.astype(np.int64)
                sext = np.where(sext >= 2**31, sext - 2**32, sext)
                bad = np.flatnonzero(sext.astype(np.int64) != v.view(np.int64))
            if len(bad):
                i = int(sel[bad[0]])
                errors.append((i, (f"module: overflow in relocation type {t} val {int(val[i]):x}",
                                   f"module: `{modname}' likely not compiled with -mcmodel=kernel")))
        le = v.astype("<u8").view(np.uint8).reshape(-1, 8)[:, :w]
        mem[idx] = le
    _first_error(errors)
    return counts


def _apply_sequential(mm, info, relsec, modname, region, secoff, counts) -> dict[int, int]:
    """The kernel's loop, entry by entry (only for sections whose targets overlap)."""
    sec = info.sechdrs[relsec]
    target = info.sechdrs[sec.info]
    data = region.data
    for off, rinfo, addend in elf.relocations(info.image, sec).tolist():
        t, si = rinfo & 0xFFFFFFFF, rinfo >> 32
        val = (int(info.symtab["st_value"][si]) + addend) & MASK64
        loc = target.addr + off
        if t not in RELOCATIONS:
            raise RelocError(f"module: {modname}: Unknown rela relocation: {t}")
        w, pcrel = RELOCATIONS[t]
        if w == 0:
            continue
        p = secoff + off
        if any(data[p:p + w]):
            raise RelocError("module: x86/modules: Skipping invalid relocation target, existing value "
                             f"is nonzero for type {t}, loc {loc:016x}, val {val:x}")
        v = (val - loc) & MASK64 if pcrel else val
        data[p:p + w] = (v & ((1 << (8 * w)) - 1)).to_bytes(w, "little")
        if t == R_X86_64_32 and v != v & 0xFFFFFFFF or \
                t == R_X86_64_32S and ((v & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000 != \
                (v - (1 << 64) if v >> 63 else v):
            raise RelocError(f"module: overflow in relocation type {t} val {val:x}",
                             f"module: `{modname}' likely not compiled with -mcmodel=kernel")
    return counts
