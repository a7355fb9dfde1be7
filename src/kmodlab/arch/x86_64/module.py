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

import struct

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
_RELA_ITER = struct.Struct("<QQq").iter_unpack
_U32 = struct.Struct("<I")


class RelocError(Exception):
    def __init__(self, *log: str):
        self.log = list(log)
        super().__init__(log[0])


def _first_error(errors: list[tuple[int, int, tuple[str, ...]]]) -> None:
    """(entry index, check order within the entry, log lines): the kernel's loop stops at the
    first entry that fails, at that entry's first failing check."""
    if errors:
        raise RelocError(*min(errors)[2])


def _tables():
    """Lookup tables by type number (types ≥ 255 fold onto 255, which is no relocation)."""
    import numpy as np
    width = np.full(256, -1, dtype=np.int64)
    pcrel = np.zeros(256, dtype=bool)
    for t, (w, pc) in RELOCATIONS.items():
        width[t], pcrel[t] = w, pc
    return width, pcrel


_TABLES = None


def apply_relocate_add(mm, info, relsecs: list[int], modname: str) -> dict[int, int]:
    """Apply the RELA sections ``relsecs`` (in section order) to their targets in module memory.

    All entries of all sections are computed at once; the first failing entry, in the order of
    the kernel's loops (section, then entry), decides the error.  Preconditions: symbols
    simplified (``info.symtab`` holds final values), sections moved (``sh_addr`` final).
    Returns {RELA section index: {type: count}}.  Raises RelocError with the kernel's log lines.
    """
    import numpy as np
    global _TABLES
    if _TABLES is None:
        _TABLES = _tables()
    WIDTH, PCREL = _TABLES
    parts = []
    for i in relsecs:
        sec = info.sechdrs[i]
        target = info.sechdrs[sec.info]
        rela = elf.relocation_words(info.image, sec)
        if len(rela) == 0:
            continue
        region = mm.find(target.addr, max(target.size, 1))
        if region is None:
            raise RelocError(f"{modname}: relocation target section {target.name} is not mapped")
        parts.append((i, sec, target, rela, region))
    if not parts:
        return {}
    if sum(len(p[3]) for p in parts) < SMALL:
        return _apply_small(mm, info, parts, modname)
    regions = []
    for p in parts:
        if all(p[4] is not r for r in regions):
            regions.append(p[4])
    if len(parts) > 1:
        n = [len(p[3]) for p in parts]
        rela = np.concatenate([p[3] for p in parts])
        secoff = np.repeat(np.array([p[2].addr - p[4].base for p in parts], dtype=np.int64), n)
        rsize = np.repeat(np.array([len(p[4].data) for p in parts], dtype=np.int64), n)
        taddr = np.repeat(np.array([p[2].addr for p in parts], dtype=np.uint64), n)
        regid = np.repeat(np.array([next(k for k, r in enumerate(regions) if r is p[4])
                                    for p in parts], dtype=np.int64), n)
    else:
        _i, _sec, target, rela, region = parts[0]
        secoff = np.int64(target.addr - region.base)
        rsize = np.int64(len(region.data))
        taddr, regid = np.uint64(target.addr), None
    offs = rela[:, 0].view(np.int64)
    types = (rela[:, 1] & np.uint64(0xFFFFFFFF)).astype(np.int64)
    symidx = (rela[:, 1] >> np.uint64(32)).astype(np.int64)
    if symidx.max(initial=0) >= len(info.symtab):
        raise RelocError(f"{modname}: relocation refers to symbol {int(symidx.max())} of {len(info.symtab)}")
    val = info.symtab["st_value"][symidx] + rela[:, 2]                  # u64 wraps, like C
    P = taddr + rela[:, 0]
    tclip = np.minimum(types, 255)
    if len(parts) > 1:
        per = np.bincount(np.repeat(np.arange(len(parts)), n) * 256 + tclip,
                          minlength=256 * len(parts)).reshape(len(parts), 256)
    else:
        per = np.bincount(tclip, minlength=256)[None, :]
    counts: dict[int, dict[int, int]] = {p[0]: {} for p in parts}
    pi, ti = np.nonzero(per)
    for k, t, c in zip(pi.tolist(), ti.tolist(), per[pi, ti].tolist()):
        counts[parts[k][0]][t] = c
    errors: list[tuple[int, int, tuple[str, ...]]] = []

    widths = WIDTH[tclip]
    unknown = np.flatnonzero(widths < 0)
    if len(unknown):
        i = int(unknown[0])
        errors.append((i, 0, (f"module: {modname}: Unknown rela relocation: {int(types[i])}",)))
    live = np.flatnonzero(widths > 0)
    wl = widths[live]
    ol = offs[live]
    so = secoff[live] if regid is not None else secoff
    rs = rsize[live] if regid is not None else rsize
    loc = so + ol                                                       # offset in its region
    # Linux does not bound r_offset: an entry outside its section reads and writes whatever
    # is there (other sections, another allocation, or unmapped memory: an oops).  Those
    # loads go through the kernel's loop entry by entry, on absolute addresses.
    # (compared as ol against the room left: ol + width could wrap around 2^63)
    if np.any((ol < -so) | (ol > rs - so - wl)):
        for i, *_ in parts:
            _apply_sequential(mm, info, i, modname)
        return counts
    # Overlapping targets would see each other's writes: keep the kernel's sequential semantics.
    key = loc + regid[live] * (1 << 48) if regid is not None else loc
    order = np.argsort(key, kind="stable")
    if len(order) > 1 and np.any(key[order][1:] < key[order][:-1] + wl[order][:-1]):
        for i, *_ in parts:
            _apply_sequential(mm, info, i, modname)
        return counts

    v = np.where(PCREL[tclip[live]], val[live] - P[live], val[live])
    for r, region in enumerate(regions):
        for w in (4, 8):
            pick = wl == w
            if regid is not None:
                pick &= regid[live] == r
            sel = np.flatnonzero(pick)
            if not len(sel):
                continue
            at = loc[sel]
            nonzero = np.flatnonzero(_targets_nonzero(region.data, at, w))
            if len(nonzero):
                i = int(live[sel[nonzero[0]]])
                errors.append((i, 0, ("module: x86/modules: Skipping invalid relocation target, existing "
                                      f"value is nonzero for type {int(types[i])}, loc {int(P[i]):016x}, "
                                      f"val {int(val[i]):x}",)))     # val before P is subtracted
            vs = v[sel]
            if w == 4:
                tsel = types[live[sel]]
                low = vs & np.uint64(0xFFFFFFFF)
                sext = low.astype(np.int64)
                sext = np.where(sext >= 2**31, sext - 2**32, sext)
                bad = np.flatnonzero(((tsel == R_X86_64_32) & (low != vs)) |
                                     ((tsel == R_X86_64_32S) & (sext != vs.view(np.int64))))
                if len(bad):
                    i = int(live[sel[bad[0]]])
                    errors.append((i, 1, (f"module: overflow in relocation type {int(types[i])} val {int(val[i]):x}",
                                          f"module: `{modname}' likely not compiled with -mcmodel=kernel")))
            _store(region.data, at, vs, w)
    _first_error(errors)
    return counts


SMALL = 1024      # below this many entries in all, one Python loop beats numpy's per-call cost


def _apply_small(mm, info, parts, modname: str) -> dict[int, dict[int, int]]:
    """The kernel's loop itself, entry by entry in section order, for a small table: the first
    failing entry stops it (as in C); a target inside its region is read and written there,
    any other through the memory's absolute addresses (an unmapped one faults, an oops).
    The symbol index bound is checked over all entries first, as the bulk path does."""
    from collections import Counter
    ents = [list(_RELA_ITER(p[3].tobytes())) for p in parts]
    nsym = len(info.symtab)
    top = max(max(r[1] for r in e) for e in ents) >> 32
    if top >= nsym:
        raise RelocError(f"{modname}: relocation refers to symbol {top} of {nsym}")
    symval = info.symtab["st_value"].tolist()
    u32_get, u32_put = _U32.unpack_from, _U32.pack_into
    counts: dict[int, dict[int, int]] = {}
    for (i, _sec, target, _rela, region), entries in zip(parts, ents):
        buf = region.data
        taddr = target.addr
        so = taddr - region.base
        last4 = len(buf) - 4
        for off, rinfo, addend in entries:
            t = rinfo & 0xFFFFFFFF
            if t == R_X86_64_PLT32 or t == R_X86_64_PC32:      # most entries: the short way
                at = so + off
                if 0 <= at <= last4 and not u32_get(buf, at)[0]:
                    u32_put(buf, at, (symval[rinfo >> 32] + addend - taddr - off) & 0xFFFFFFFF)
                    continue
            _apply_one(mm, buf, so, taddr, off, t, symval[rinfo >> 32] if t in RELOCATIONS else 0,
                       addend, modname)
        counts[i] = dict(sorted(Counter(r[1] & 0xFFFFFFFF for r in entries).items()))
    return counts


def _apply_one(mm, buf, so: int, taddr: int, off: int, t: int, symval: int, addend: int,
               modname: str) -> None:
    """One entry, every check in the kernel's order (see _apply_small)."""
    spec = RELOCATIONS.get(t)
    if spec is None:
        raise RelocError(f"module: {modname}: Unknown rela relocation: {t}")
    w, pcrel = spec
    if not w:
        return
    val = (symval + addend) & MASK64
    loc = (taddr + off) & MASK64
    at = so + off
    inside = 0 <= at <= len(buf) - w
    if inside:
        old = int.from_bytes(buf[at:at + w], "little")
    else:
        old = int.from_bytes(mm.read(loc, w), "little")
    if old:
        raise RelocError("module: x86/modules: Skipping invalid relocation target, existing "
                         f"value is nonzero for type {t}, loc {loc:016x}, val {val:x}")
    v = (val - loc) & MASK64 if pcrel else val
    out = (v & ((1 << (8 * w)) - 1)).to_bytes(w, "little")
    if inside:
        buf[at:at + w] = out
    else:
        mm.write(loc, out)
    if t == R_X86_64_32 and v > 0xFFFFFFFF or \
            t == R_X86_64_32S and 0x80000000 <= v < MASK64 - 0x7FFFFFFF:
        raise RelocError(f"module: overflow in relocation type {t} val {val:x}",
                         f"module: `{modname}' likely not compiled with -mcmodel=kernel")


_BULK = 4096      # from this many targets on, word views beat a (n, width) byte index


def _targets_nonzero(buf: bytearray, at, w: int):
    """For each offset in ``at``: are the ``w`` bytes there not all zero?"""
    import numpy as np
    if len(at) < _BULK:
        mem = np.frombuffer(buf, dtype=np.uint8)
        return mem[at[:, None] + np.arange(w)[None, :]].any(axis=1)
    out = np.empty(len(at), dtype=bool)
    phase = at % w
    for k in range(w):                        # an unaligned target is aligned in the view at +k
        sel = np.flatnonzero(phase == k)
        if len(sel):
            view = np.frombuffer(buf, dtype=f"<u{w}", count=(len(buf) - k) // w, offset=k)
            out[sel] = view[(at[sel] - k) // w] != 0
    return out


def _store(buf: bytearray, at, values, w: int) -> None:
    """Write the low ``w`` bytes of each value (little-endian) at its offset."""
    import numpy as np
    if len(at) < _BULK:
        mem = np.frombuffer(buf, dtype=np.uint8)
        mem[at[:, None] + np.arange(w)[None, :]] = \
            values.astype("<u8").view(np.uint8).reshape(-1, 8)[:, :w]
        return
    vals = values.astype(f"<u{w}")            # keeps the low bytes, as a C store of that width
    phase = at % w
    for k in range(w):
        sel = np.flatnonzero(phase == k)
        if len(sel):
            view = np.frombuffer(buf, dtype=f"<u{w}", count=(len(buf) - k) // w, offset=k)
            view[(at[sel] - k) // w] = vals[sel]


def _apply_sequential(mm, info, relsec: int, modname: str) -> None:
    """The kernel's loop, entry by entry, on absolute addresses (used when targets overlap or
    lie outside their section): an unmapped target raises the memory's Fault (an oops)."""
    sec = info.sechdrs[relsec]
    target = info.sechdrs[sec.info]
    for off, rinfo, addend in elf.relocations(info.image, sec).tolist():
        t, si = rinfo & 0xFFFFFFFF, rinfo >> 32
        val = (int(info.symtab["st_value"][si]) + addend) & MASK64
        loc = (target.addr + off) & MASK64
        if t not in RELOCATIONS:
            raise RelocError(f"module: {modname}: Unknown rela relocation: {t}")
        w, pcrel = RELOCATIONS[t]
        if w == 0:
            continue
        if any(mm.read(loc, w)):
            raise RelocError("module: x86/modules: Skipping invalid relocation target, existing value "
                             f"is nonzero for type {t}, loc {loc:016x}, val {val:x}")
        v = (val - loc) & MASK64 if pcrel else val
        mm.write(loc, (v & ((1 << (8 * w)) - 1)).to_bytes(w, "little"))
        if t == R_X86_64_32 and v != v & 0xFFFFFFFF or \
                t == R_X86_64_32S and ((v & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000 != \
                (v - (1 << 64) if v >> 63 else v):
            raise RelocError(f"module: overflow in relocation type {t} val {val:x}",
                             f"module: `{modname}' likely not compiled with -mcmodel=kernel")
