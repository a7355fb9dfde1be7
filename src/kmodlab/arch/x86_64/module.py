"""x86-64 relocations as Linux 6.1 applies them (arch/x86/kernel/module.c, the arch seam).

One small formula per R_X86_64_* type, named as in the psABI, in a table keyed by type number;
a large table is applied with numpy, all the entries that target one memory region at once
(targets read and written through an unaligned word view of the region: one gather and one
scatter per width), a small one by the kernel's own loop in Python.  Linux 6.1's (and
6.12's: unchanged) arithmetic, exactly:

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
_U64 = struct.Struct("<Q")


class RelocError(Exception):
    def __init__(self, *log: str):
        self.log = list(log)
        super().__init__(log[0])


def _first_error(errors: list[tuple[tuple[int, int], int, tuple[str, ...]]]) -> None:
    """((section's position, entry index), check order within the entry, log lines): the
    kernel's loop stops at the first entry that fails, at that entry's first failing check."""
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

    All entries of all sections are computed at once, per memory region; the first failing
    entry, in the order of the kernel's loops (section, then entry), decides the error.
    Preconditions: symbols simplified (``info.symtab`` holds final values), sections moved
    (``sh_addr`` final).  Returns {RELA section index: {type: count}}.  Raises RelocError with
    the kernel's log lines.
    """
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
    nsym = len(info.symtab)
    top = max(int(p[3][:, 1].max()) for p in parts) >> 32
    if top >= nsym:
        raise RelocError(f"{modname}: relocation refers to symbol {top} of {nsym}")
    # Each region's entries in one batch (parts keep their section order inside it); an entry's
    # place in the kernel's order is (its part's position, its index in the part).
    groups: dict[int, list[int]] = {}
    for k, p in enumerate(parts):
        groups.setdefault(id(p[4]), []).append(k)
    counts: dict[int, dict[int, int]] = {}
    errors: list[tuple[tuple[int, int], int, tuple[str, ...]]] = []
    batches = [_Batch(info, [parts[k] for k in ks], ks) for ks in groups.values()]
    for batch in batches:
        batch.count_types(counts)
    for batch in batches:
        if not batch.check(errors, modname):
            for i, *_ in parts:     # outside its region or overlapping: the kernel's own loop
                _apply_sequential(mm, info, i, modname)
            return {p[0]: counts[p[0]] for p in parts}
    for batch in batches:
        batch.write(errors, modname)
    _first_error(errors)
    return {p[0]: counts[p[0]] for p in parts}


class _Batch:
    """The RELA entries of the parts that target one memory region, as arrays."""

    def __init__(self, info, parts, order: list[int]):
        import numpy as np
        global _TABLES
        if _TABLES is None:
            _TABLES = _tables()
        width_of, pcrel_of = _TABLES
        self.parts, self.order = parts, order
        self.region = parts[0][4]
        self.n = n = [len(p[3]) for p in parts]
        self.start = np.cumsum([0] + n[:-1])
        rela = np.concatenate([p[3] for p in parts]) if len(parts) > 1 else np.ascontiguousarray(parts[0][3])
        words = rela.view("<u4").reshape(-1, 6)          # r_info's halves: type, symbol
        self.types = words[:, 2]
        self.tclip = np.minimum(self.types, 255)
        self.widths = width_of[self.tclip]
        offs = rela[:, 0].view(np.int64)
        self.offs = offs
        if len(parts) > 1:
            self.secoff = np.repeat(np.array([p[2].addr - p[4].base for p in parts], dtype=np.int64), n)
            taddr = np.repeat(np.array([p[2].addr for p in parts], dtype=np.uint64), n)
        else:
            self.secoff = np.int64(parts[0][2].addr - parts[0][4].base)
            taddr = np.uint64(parts[0][2].addr)
        self.val = info.symtab["st_value"][words[:, 3]] + rela[:, 2]       # u64 wraps, like C
        self.P = taddr + rela[:, 0]
        self.pcrel = pcrel_of[self.tclip]

    def where(self, j: int) -> tuple[int, int]:
        """Entry ``j`` of the batch in the kernel's order: (part position, index in the part)."""
        import numpy as np
        k = int(np.searchsorted(self.start, j, side="right")) - 1
        return self.order[k], j - int(self.start[k])

    def count_types(self, counts) -> None:
        import numpy as np
        for p, s, m in zip(self.parts, self.start.tolist(), self.n):
            per = np.bincount(self.tclip[s:s + m], minlength=256)
            ts = np.flatnonzero(per)
            counts[p[0]] = dict(zip(ts.tolist(), per[ts].tolist()))

    def check(self, errors, modname: str) -> bool:
        """Unknown types become errors; False when an entry lies outside its region or two
        targets overlap (the sequential loop then decides, as their writes interact)."""
        import numpy as np
        widths = self.widths
        if widths.min() <= 0:
            unknown = np.flatnonzero(widths < 0)
            if len(unknown):
                j = int(unknown[0])
                errors.append((self.where(j), 0, (f"module: {modname}: Unknown rela relocation: {int(self.types[j])}",)))
            self.live = np.flatnonzero(widths > 0)
            pick = lambda a: a[self.live] if np.ndim(a) else a
        else:
            self.live = None
            pick = lambda a: a
        wl, ol, so = pick(widths), pick(self.offs), pick(self.secoff)
        rs = len(self.region.data)
        # Linux does not bound r_offset: an entry outside its section reads and writes whatever
        # is there (other sections, another allocation, or unmapped memory: an oops).
        # (compared as ol against the room left: ol + width could wrap around 2^63)
        if np.any((ol < -so) | (ol > rs - so - wl)):
            return False
        loc = so + ol                                                   # offset in the region
        if len(loc) > 1 and np.any(loc[1:] - loc[:-1] < wl[:-1]):      # not in ascending order
            order = np.argsort(loc, kind="stable")
            lo, wo = loc[order], wl[order]
            if np.any(lo[1:] < lo[:-1] + wo[:-1]):
                return False
        self.loc, self.wl = loc, wl
        return True

    def write(self, errors, modname: str) -> None:
        """Check each target is zero, store the values, check 32-bit overflow."""
        import numpy as np
        live = self.live
        pick = (lambda a: a[live]) if live is not None else (lambda a: a)
        val, P, types = pick(self.val), pick(self.P), pick(self.types)
        v = val - np.where(pick(self.pcrel), P, np.uint64(0))
        buf = self.region.data
        for w in (4, 8):
            sel = np.flatnonzero(self.wl == w)
            if not len(sel) or len(buf) < w:
                continue
            view = np.ndarray((len(buf) - w + 1,), dtype=f"<u{w}", buffer=buf, strides=(1,))
            at = self.loc[sel]          # every byte offset, as a w-byte word (unaligned view)
            nonzero = np.flatnonzero(view[at])
            if len(nonzero):
                j = int(sel[nonzero[0]])
                i = int(live[j]) if live is not None else j
                errors.append((self.where(i), 0, (
                    "module: x86/modules: Skipping invalid relocation target, existing "
                    f"value is nonzero for type {int(types[j])}, loc {int(P[j]):016x}, "
                    f"val {int(val[j]):x}",)))          # val before P is subtracted
            vs = v[sel]
            if w == 4:
                tsel = types[sel]
                low = vs & np.uint64(0xFFFFFFFF)
                sext = (low ^ np.uint64(0x80000000)).view(np.int64) - 0x80000000
                bad = np.flatnonzero(((tsel == R_X86_64_32) & (low != vs)) |
                                     ((tsel == R_X86_64_32S) & (sext != vs.view(np.int64))))
                if len(bad):
                    j = int(sel[bad[0]])
                    i = int(live[j]) if live is not None else j
                    errors.append((self.where(i), 1, (
                        f"module: overflow in relocation type {int(types[j])} val {int(val[j]):x}",
                        f"module: `{modname}' likely not compiled with -mcmodel=kernel")))
            view[at] = vs.astype(f"<u{w}")       # the low w bytes, as a C store of that width


SMALL = 384      # below this many entries in all, one Python loop beats numpy's per-call cost


def _apply_small(mm, info, parts, modname: str) -> dict[int, dict[int, int]]:
    """The kernel's loop itself, entry by entry in section order, for a small table: the first
    failing entry stops it (as in C); a target inside its region is read and written there,
    any other through the memory's absolute addresses (an unmapped one faults, an oops).
    The symbol index bound is checked over all entries first, as the bulk path does."""
    import numpy as np
    nsym = len(info.symtab)
    top = max(int(p[3][:, 1].max()) for p in parts) >> 32
    if top >= nsym:
        raise RelocError(f"{modname}: relocation refers to symbol {top} of {nsym}")
    symval = info.symtab["st_value"].tolist()
    u32_get, u32_put = _U32.unpack_from, _U32.pack_into
    u64_get, u64_put = _U64.unpack_from, _U64.pack_into
    counts: dict[int, dict[int, int]] = {}
    for i, _sec, target, rela, region in parts:
        buf = region.data
        taddr = target.addr
        so = taddr - region.base
        last4, last8 = len(buf) - 4, len(buf) - 8
        for off, rinfo, addend in _RELA_ITER(rela.tobytes()):
            t = rinfo & 0xFFFFFFFF
            at = so + off
            # the usual entries the short way: target inside its region and zero, no overflow
            if t == R_X86_64_PLT32 or t == R_X86_64_PC32:
                if 0 <= at <= last4 and not u32_get(buf, at)[0]:
                    u32_put(buf, at, (symval[rinfo >> 32] + addend - taddr - off) & 0xFFFFFFFF)
                    continue
            elif t == R_X86_64_64:
                if 0 <= at <= last8 and not u64_get(buf, at)[0]:
                    u64_put(buf, at, (symval[rinfo >> 32] + addend) & MASK64)
                    continue
            elif t == R_X86_64_32S:
                v = (symval[rinfo >> 32] + addend) & MASK64
                if 0 <= at <= last4 and not u32_get(buf, at)[0] and \
                        (v < 0x80000000 or v >= MASK64 - 0x7FFFFFFF):
                    u32_put(buf, at, v & 0xFFFFFFFF)
                    continue
            _apply_one(mm, buf, so, taddr, off, t, symval[rinfo >> 32] if t in RELOCATIONS else 0,
                       addend, modname)
        per = np.bincount(np.minimum(rela.view("<u4")[:, 2], 255), minlength=256)
        ts = np.flatnonzero(per)
        counts[i] = dict(zip(ts.tolist(), per[ts].tolist()))
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
