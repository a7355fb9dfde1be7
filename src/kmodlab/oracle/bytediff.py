"""Relocated bytes, byte for byte: a module's core memory in the real kernel (read through
/proc/kcore) against the sandbox's copy of the same module loaded at the same address, and an
attribution of every differing byte to a named kernel step the sandbox deliberately skips.

The sandbox stops where load_module's generic part ends (relocation, kallsyms); after that the
real kernel keeps patching the module's memory (module_finalize, ftrace, the COMING notifiers)
and the module's own init and the kernel write to its data.  Each of those leaves its mark at
places the module's *own* sections name, so every differing byte can be explained from them:

============================  ================================================================
reason                         where (from the module's sections)
============================  ================================================================
ftrace                         ``__mcount_loc``: each ``call __fentry__`` (5 bytes) → NOP5
return thunks                  ``.return_sites``: ``jmp __x86_return_thunk`` (5 bytes) → ``ret``
retpolines                     ``.retpoline_sites``: ``call/jmp __x86_indirect_thunk_*`` (5/6)
alternatives                   ``.altinstructions``: ``instr_offset``, ``instrlen`` bytes
paravirt                       ``.parainstructions``: ``instr``, ``len`` bytes
SMP locks                      ``.smp_locks``: the ``lock`` prefix byte (UP: → ``ds``)
jump labels                    ``__jump_table``: the 5-byte NOP/JMP at each ``code``
static calls                   ``.static_call_sites``: the 5-byte call at each ``addr``
static call trampolines        ``.static_call.text``: the first 5 bytes of each ``__SCT__x``
                               the module defines (retargeted by static_call_update)
ftrace sort                    ``__mcount_loc`` sorted by address (ftrace_process_locs;
                               checked: the same addresses, permuted)
ORC sort                       ``.orc_unwind_ip``+``.orc_unwind`` re-sorted by address
                               (checked: the same (ip, entry) pairs, permuted)
jump table sort                ``__jump_table`` sorted by key, init/branch flags in ``key``
                               (checked: the same (code, target, key) entries, permuted)
static call sites sort         ``.static_call_sites`` sorted, each trampoline key (``__SCT__x``)
                               replaced by the call's key ``__SCK__x`` (checked: same sites,
                               one consistent one-to-one trampoline → key mapping)
exception table sort           ``__ex_table`` (sort_extable; checked as a permutation)
struct module                  ``.gnu.linkonce.this_module`` outside its relocated fields
                               (lists, refcounts, kobject, layouts: the kernel's own fields)
runtime data                   writable sections (``SHF_WRITE``): written after loading by
                               init and by the kernel (list heads, registrations, ...)
============================  ================================================================

Anything else is *unexplained*; a difference inside a relocated field of a non-writable section
is reported with its section, offset, relocation type and symbol: that is a sandbox bug.
"""
from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field

from .. import elf

U64 = 0xFFFFFFFFFFFFFFFF
RELOC_WIDTH = {1: 8, 2: 4, 4: 4, 10: 4, 11: 4, 24: 8}
RELOC_NAME = {0: "R_X86_64_NONE", 1: "R_X86_64_64", 2: "R_X86_64_PC32", 4: "R_X86_64_PLT32",
              10: "R_X86_64_32", 11: "R_X86_64_32S", 24: "R_X86_64_PC64"}
SORTED_TABLES = {"__mcount_loc": "ftrace sort (__mcount_loc sorted by address)",
                 ".orc_unwind_ip": "ORC sort", ".orc_unwind": "ORC sort",
                 "__jump_table": "jump table sort", ".static_call_sites": "static call sites sort",
                 "__ex_table": "exception table sort"}


@dataclass
class Sec:
    name: str
    addr: int
    size: int
    flags: int
    type: int
    index: int


@dataclass
class ByteReport:
    module: str
    compared: int = 0
    differing: int = 0
    explained: Counter = field(default_factory=Counter)
    unexplained: list = field(default_factory=list)        # dicts, one per differing run
    unexplained_bytes: int = 0
    runtime_in_relocated: int = 0      # runtime-data bytes that sit inside relocated fields
    checks: dict = field(default_factory=dict)             # table permutation checks

    def as_dict(self) -> dict:
        return {"module": self.module, "compared": self.compared, "differing": self.differing,
                "explained": dict(self.explained), "unexplained_bytes": self.unexplained_bytes,
                "unexplained": self.unexplained[:40],
                "runtime_in_relocated": self.runtime_in_relocated, "checks": self.checks}


def module_sections(image: bytes, addrs: dict[str, int]) -> list[Sec]:
    """The file's SHF_ALLOC sections (non-empty) with their addresses in the loaded module."""
    hdr = elf.parse_header(image)
    secs = elf.parse_sections(image, hdr.shoff, hdr.shnum)
    elf.name_sections(image, secs, hdr.shstrndx)
    out = []
    for i, s in enumerate(secs):
        if s.flags & elf.SHF_ALLOC and s.size and s.name in addrs:
            out.append(Sec(s.name, addrs[s.name], s.size, s.flags, s.type, i))
    return out


def relocated_fields(image: bytes, secs_by_index: dict[int, Sec]) -> dict[int, tuple]:
    """address of each relocated byte → (section, offset in section, type, symbol name)."""
    hdr = elf.parse_header(image)
    secs = elf.parse_sections(image, hdr.shoff, hdr.shnum)
    elf.name_sections(image, secs, hdr.shstrndx)
    symtab_i = next(i for i, s in enumerate(secs) if s.type == elf.SHT_SYMTAB)
    syms = elf.symbols(image, secs[symtab_i])
    strsec = secs[secs[symtab_i].link]
    strtab = image[strsec.offset:strsec.offset + strsec.size]
    out: dict[int, tuple] = {}
    for s in secs:
        if s.type != elf.SHT_RELA or s.info not in secs_by_index:
            continue
        tgt = secs_by_index[s.info]
        for off, info, _add in elf.relocations(image, s).tolist():
            typ, si = info & 0xFFFFFFFF, info >> 32
            w = RELOC_WIDTH.get(typ, 0)
            st_name = int(syms["st_name"][si])
            name = elf.cstring(strtab, st_name) if st_name else \
                f"[section {secs[int(syms['st_shndx'][si])].name}]" \
                if int(syms["st_shndx"][si]) < len(secs) else "?"
            for b in range(w):
                out[tgt.addr + off + b] = (tgt.name, off, RELOC_NAME.get(typ, str(typ)), name)
    return out


class Mem:
    """Read the sandbox's core snapshot by address."""

    def __init__(self, base: int, data: bytes):
        self.base, self.data = base, data

    def has(self, addr: int, n: int = 1) -> bool:
        return self.base <= addr and addr + n <= self.base + len(self.data)

    def s32(self, addr):
        return struct.unpack_from("<i", self.data, addr - self.base)[0]

    def u64(self, addr):
        return struct.unpack_from("<Q", self.data, addr - self.base)[0]

    def u8(self, addr):
        return self.data[addr - self.base]


def patch_sites(secs: list[Sec], mem: Mem, alt: tuple[int, int] = (12, 10)
                ) -> list[tuple[int, int, str]]:
    """(address, length, reason) of every instruction the kernel patches after relocation,
    read from the module's own tables (relocated, in the sandbox's copy).  ``alt`` is
    (sizeof(struct alt_instr), offsetof(instrlen)) of the running kernel: 12, 10 on 6.1;
    6.12's entry carries a 32-bit feature+flags word: 14, 12."""
    by = {s.name: s for s in secs}
    sites: list[tuple[int, int, str]] = []

    def entries(name, size):
        s = by.get(name)
        if not s or not mem.has(s.addr, s.size):
            return []
        return [s.addr + i * size for i in range(s.size // size)]

    for a in entries("__mcount_loc", 8):
        sites.append((mem.u64(a), 5, "ftrace (__mcount_loc: call __fentry__ → nop)"))
    for a in entries(".return_sites", 4):
        sites.append(((a + mem.s32(a)) & U64, 5, "return thunks (.return_sites)"))
    for a in entries(".retpoline_sites", 4):
        site = (a + mem.s32(a)) & U64
        n = 6 if mem.has(site) and mem.u8(site) == 0x0F else 5
        sites.append((site, n, "retpolines (.retpoline_sites)"))
    for a in entries(".altinstructions", alt[0]):
        instrlen = mem.u8(a + alt[1])
        sites.append(((a + mem.s32(a)) & U64, instrlen, "alternatives (.altinstructions)"))
    for a in entries(".parainstructions", 16):
        sites.append((mem.u64(a), mem.u8(a + 9), "paravirt (.parainstructions)"))
    for a in entries(".smp_locks", 4):
        sites.append(((a + mem.s32(a)) & U64, 1, "SMP locks (.smp_locks)"))
    for a in entries("__jump_table", 16):
        sites.append(((a + mem.s32(a)) & U64, 5, "jump labels (__jump_table)"))
    for a in entries(".static_call_sites", 8):
        sites.append(((a + mem.s32(a)) & U64, 5, "static calls (.static_call_sites)"))
    for a in entries(".ibt_endbr_seal", 4):        # 6.12: unused ENDBR64 poisoned (nopw)
        sites.append(((a + mem.s32(a)) & U64, 4, "IBT seal (.ibt_endbr_seal: endbr64 → nopw)"))
    return sites


def nested_alt_instrlen(sec, smem: Mem, rmem: Mem, alt: tuple[int, int]) -> list[int]:
    """6.12's apply_alternatives gives consecutive .altinstructions entries of one site (nested
    ALTERNATIVE()s) the largest instrlen among them: the addresses of the instrlen bytes the
    kernel rewrote so, where the real byte is that maximum."""
    if sec is None or not smem.has(sec.addr, sec.size) or not rmem.has(sec.addr, sec.size):
        return []
    size, off = alt
    entries = [sec.addr + i * size for i in range(sec.size // size)]
    site = lambda a: (a + smem.s32(a)) & U64            # noqa: E731
    out, i = [], 0
    while i < len(entries):
        j = i + 1
        while j < len(entries) and site(entries[j]) == site(entries[i]):
            j += 1
        group = entries[i:j]
        if len(group) > 1:
            top = max(smem.u8(a + off) for a in group)
            out += [a + off for a in group
                    if smem.u8(a + off) != top and rmem.u8(a + off) == top]
        i = j
    return out


def trampolines(image: bytes, core: list[Sec]) -> list[tuple[int, int, str]]:
    """The static call trampolines the module defines (``__SCT__x`` in ``.static_call.text``,
    DEFINE_STATIC_CALL in a module): their first instruction, a 5-byte ``jmp`` to the current
    target (or ``ret``), is rewritten by static_call_update (arch_static_call_transform), e.g.
    when the module's init picks an AVX variant or a tracepoint gets its iterator."""
    sec = next((s for s in core if s.name == ".static_call.text"), None)
    if sec is None:
        return []
    hdr = elf.parse_header(image)
    secs = elf.parse_sections(image, hdr.shoff, hdr.shnum)
    symtab = next((x for x in secs if x.type == elf.SHT_SYMTAB), None)
    if symtab is None:
        return []
    syms = elf.symbols(image, symtab)
    strsec = secs[symtab.link]
    strtab = image[strsec.offset:strsec.offset + strsec.size]
    out = []
    for st_name, shndx, value in zip(syms["st_name"].tolist(), syms["st_shndx"].tolist(),
                                     syms["st_value"].tolist()):
        if shndx == sec.index and elf.cstring(strtab, st_name).startswith("__SCT__"):
            out.append((sec.addr + value, 5,
                        "static call trampolines (.static_call.text: static_call_update)"))
    return out


def _table_entries(name: str, s: Sec, buf: Mem, other: dict[str, Sec]) -> Counter | None:
    """The entries of a table the kernel sorts, made position-independent (absolute fields),
    as a multiset: equal multisets ⇒ the difference is only the kernel's sort (+ flag bits)."""
    if not buf.has(s.addr, s.size):
        return None
    c: Counter = Counter()
    if name == ".orc_unwind_ip":
        u = other.get(".orc_unwind")
        if not u or not buf.has(u.addr, u.size):
            return None
        for i in range(s.size // 4):
            a = s.addr + 4 * i
            c[((a + buf.s32(a)) & U64, bytes(buf.data[u.addr - buf.base + 6 * i:
                                                      u.addr - buf.base + 6 * i + 6]))] += 1
    elif name == "__mcount_loc":
        for i in range(s.size // 8):
            c[buf.u64(s.addr + 8 * i)] += 1
    elif name == "__jump_table":
        for i in range(s.size // 16):
            a = s.addr + 16 * i
            key = (a + 8 + struct.unpack_from("<q", buf.data, a + 8 - buf.base)[0]) & U64
            c[((a + buf.s32(a)) & U64, (a + 4 + buf.s32(a + 4)) & U64, key & ~3)] += 1
    elif name == ".static_call_sites":
        for i in range(s.size // 8):
            a = s.addr + 8 * i
            c[((a + buf.s32(a)) & U64, (a + 4 + buf.s32(a + 4)) & U64 & ~3)] += 1
    elif name == "__ex_table":
        for i in range(s.size // 12):
            a = s.addr + 12 * i
            c[((a + buf.s32(a)) & U64, (a + 4 + buf.s32(a + 4)) & U64, buf.s32(a + 8))] += 1
    return c


def _static_call_keys_rewritten(sb: Counter, real: Counter) -> bool:
    """static_call_add_module sorts the sites and replaces each key that names a trampoline
    (``__SCT__x``, what the module was linked against) by the static call's key
    (``__SCK__x``, not exported, so not known here).  Accept when the call sites are the same
    and the trampoline → key mapping is one-to-one and consistent over all sites."""
    sites_sb = sorted(k[0] for k in sb.elements())
    sites_real = sorted(k[0] for k in real.elements())
    if sites_sb != sites_real:
        return False
    by_site_real: dict[int, list[int]] = {}
    for site, key in real.elements():
        by_site_real.setdefault(site, []).append(key)
    fwd: dict[int, int] = {}
    for site, key in sorted(sb.elements()):
        rk = by_site_real[site].pop()
        if fwd.setdefault(key, rk) != rk:
            return False
    return len(set(fwd.values())) == len(fwd)


def attribute(module: str, image: bytes, addrs: dict[str, int], core_base: int,
              real: bytes, sandbox: bytes, alt: tuple[int, int] = (12, 10)) -> ByteReport:
    """Compare the core region byte for byte and attribute every differing byte."""
    rep = ByteReport(module)
    n = min(len(real), len(sandbox))
    rep.compared = n
    if len(real) != len(sandbox):
        rep.unexplained.append({"what": "core size", "real": len(real), "sandbox": len(sandbox)})
    diff = [i for i in range(n) if real[i] != sandbox[i]] if real[:n] != sandbox[:n] else []
    rep.differing = len(diff)
    if not diff:
        return rep
    secs = module_sections(image, addrs)
    core = [s for s in secs if core_base <= s.addr < core_base + n]
    smem, rmem = Mem(core_base, sandbox), Mem(core_base, real)
    reason_at: dict[int, str] = {}
    for site, length, why in patch_sites(core, smem, alt) + trampolines(image, core):
        for b in range(length):
            reason_at.setdefault(site + b, why)
    by = {s.name: s for s in core}
    for a in nested_alt_instrlen(by.get(".altinstructions"), smem, rmem, alt):
        reason_at.setdefault(a, "alternatives (nested ALTERNATIVE sites: instrlen made equal)")
    sorted_ok = {}
    for name in ("__mcount_loc", "__jump_table", ".static_call_sites", "__ex_table",
                 ".orc_unwind_ip"):
        s = by.get(name)
        if s:
            a, b = _table_entries(name, s, smem, by), _table_entries(name, s, rmem, by)
            if name == ".static_call_sites" and a is not None and b is not None:
                sorted_ok[name] = _static_call_keys_rewritten(a, b)
            else:
                sorted_ok[name] = a is not None and a == b
    if ".orc_unwind_ip" in sorted_ok:
        sorted_ok[".orc_unwind"] = sorted_ok[".orc_unwind_ip"]
    rep.checks = {f"{k} is a permutation": v for k, v in sorted_ok.items()}
    relocs = relocated_fields(image, {s.index: s for s in core})

    def section_of(addr):
        for s in core:
            if s.addr <= addr < s.addr + s.size:
                return s
        return None

    run = None
    for i in diff:
        addr = core_base + i
        why = reason_at.get(addr)
        s = section_of(addr)
        if why is None and s is not None:
            if s.name in SORTED_TABLES and sorted_ok.get(s.name):
                why = SORTED_TABLES[s.name]
            elif s.name == ".gnu.linkonce.this_module" and addr not in relocs:
                why = "struct module (kernel-owned fields)"
            elif s.flags & elf.SHF_WRITE and s.name not in SORTED_TABLES:
                why = "runtime data (writable section, written after loading)"
                if addr in relocs:
                    rep.runtime_in_relocated += 1
        if why is not None:
            rep.explained[why] += 1
            continue
        rep.unexplained_bytes += 1
        rel = relocs.get(addr)
        key = (s.name if s else "(no section)", rel)
        if run and run["key"] == key and run["end"] == i:
            run["end"] = i + 1
            continue
        run = {"key": key, "start": i, "end": i + 1}
        rep.unexplained.append(run)
    out = []
    for r in rep.unexplained:
        if "key" not in r:
            out.append(r)
            continue
        secname, rel = r["key"]
        s = by.get(secname)
        d = {"section": secname,
             "offset": hex(core_base + r["start"] - s.addr) if s else hex(r["start"]),
             "bytes": r["end"] - r["start"],
             "real": real[r["start"]:r["end"]].hex(), "sandbox": sandbox[r["start"]:r["end"]].hex()}
        if rel:
            d["relocation"] = {"type": rel[2], "symbol": rel[3], "field_offset": hex(rel[1])}
        out.append(d)
    rep.unexplained = out
    return rep
