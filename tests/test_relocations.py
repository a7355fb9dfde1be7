"""x86-64 apply_relocate_add (arch/x86/kernel/module.c, 6.1): the vectorised path against the
kernel's entry-by-entry loop, and each failure with the kernel's message."""
from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from kmodlab import elf
from kmodlab.arch.x86_64 import module as x86
from kmodlab.errors import ENOEXEC
from kmodlab.kernel.module import main

EX = Path(__file__).resolve().parent.parent / "examples"
TREE = Path(os.environ.get("KMODLAB_MODULES_DIR", "/nonexistent"))


def rela_entries(img: bytes, secname: str):
    """(file offset of each Elf64_Rela, its fields) of section ``secname``."""
    h = elf.parse_header(img)
    secs = elf.parse_sections(img, h.shoff, h.shnum)
    elf.name_sections(img, secs, h.shstrndx)
    s = next(x for x in secs if x.name == secname)
    return [(s.offset + 24 * k, elf.RELA.unpack_from(img, s.offset + 24 * k)) for k in range(s.size // 24)], secs


def load(machine, img, monkeypatch=None):
    return main.load_module(machine, img, "", 0, run_init=False,
                            extra=lambda n, g: main.FoundSymbol(0xffffffffff000000 - 4096, None, False, "", None, n))


def sequential_machine(machine, monkeypatch):
    """A second machine like ``machine`` whose relocations go through the kernel's
    entry-by-entry loop (the reference the batch path is compared with)."""
    from kmodlab.machine import Machine
    m2 = Machine.boot(machine.profile_name, seed=1)
    m2.profile = machine.profile

    def sequential(mm, info, relsecs, modname):
        for i in relsecs:
            x86._apply_sequential(mm, info, i, modname)
        return {}
    monkeypatch.setattr(x86, "apply_relocate_add", sequential)
    return m2


@pytest.mark.parametrize("rel", ["kernel/crypto/md4.ko", "kernel/fs/fat/fat.ko", "kernel/drivers/block/loop.ko",
                                 "kernel/arch/x86/kvm/kvm.ko", "kernel/net/ipv4/tcp_bbr.ko"])
def test_vectorised_equals_sequential(machine, monkeypatch, rel):
    """The batch computation writes exactly the bytes the kernel's sequential loop writes (the
    loop is the reference, kept for overlapping targets)."""
    path = TREE / rel
    if not path.exists():
        pytest.skip("no Debian module tree")
    img = path.read_bytes()
    assert load(machine, img).ret == 0
    fast = {n: bytes(r.data) for n, r in machine.mm.regions.items() if ":" in n}
    m2 = sequential_machine(machine, monkeypatch)
    assert load(m2, img).ret == 0
    slow = {n: bytes(r.data) for n, r in m2.mm.regions.items() if ":" in n}
    assert fast.keys() == slow.keys() and all(fast[k] == slow[k] for k in fast)


def test_unknown_type(machine):
    img = bytearray((EX / "failing_init.ko").read_bytes())
    entries, _ = rela_entries(bytes(img), ".rela.init.text")
    off, (r_off, r_info, add) = entries[0]
    struct.pack_into("<QQq", img, off, r_off, (r_info & ~0xFFFFFFFF) | 99, add)
    r = load(machine, bytes(img))
    assert r.ret == -ENOEXEC
    assert "module: failing_init: Unknown rela relocation: 99" in [x.text for x in machine.log]


def test_nonzero_target_refused(machine):
    """The target bytes must be zero: 'Skipping invalid relocation target' (6.1's wording)."""
    img = bytearray((EX / "failing_init.ko").read_bytes())
    entries, secs = rela_entries(bytes(img), ".rela.init.text")
    text = next(s for s in secs if s.name == ".init.text")
    r_off = entries[0][1][0]
    img[text.offset + r_off] = 0x41
    r = load(machine, bytes(img))
    assert r.ret == -ENOEXEC
    assert any(x.text.startswith("module: x86/modules: Skipping invalid relocation target, existing "
                                 "value is nonzero for type ") for x in machine.log)


def test_32s_overflow_after_write(machine):
    """R_X86_64_32S is written, then read back sign-extended: a value outside ±2 GiB overflows."""
    img = bytearray((EX / "hello.ko").read_bytes())
    for name in (".rela.init.text", ".rela.exit.text", ".rela.text"):
        try:
            entries, _ = rela_entries(bytes(img), name)
        except StopIteration:
            continue
        hit = [(o, f) for o, f in entries if f[1] & 0xFFFFFFFF == 11]
        if hit:
            off, (r_off, r_info, add) = hit[0]
            struct.pack_into("<QQq", img, off, r_off, r_info, add + (1 << 40))
            break
    else:
        pytest.skip("no R_X86_64_32S in hello.ko")
    r = load(machine, bytes(img))
    assert r.ret == -ENOEXEC
    texts = [x.text for x in machine.log]
    assert any(t.startswith("module: overflow in relocation type 11 val ") for t in texts)
    assert "module: `hello' likely not compiled with -mcmodel=kernel" in texts


def test_pc32_to_percpu_symbol_wraps(machine):
    """PC32 against a per-CPU export (a small offset) is not overflow-checked: S + A - P is
    taken modulo 2^64 and truncated, so %gs:sym(%rip) works from the top 2 GiB."""
    path = TREE / "kernel/drivers/net/dummy.ko"
    if not path.exists():
        pytest.skip("no Debian module tree")
    img = path.read_bytes()
    assert load(machine, img).ret == 0
    h = elf.parse_header(img)
    secs = elf.parse_sections(img, h.shoff, h.shnum)
    elf.name_sections(img, secs, h.shstrndx)
    symsec = next(x for x in secs if x.type == elf.SHT_SYMTAB)
    strtab = img[secs[symsec.link].offset:secs[symsec.link].offset + secs[symsec.link].size]
    syms = list(elf.SYM.iter_unpack(img[symsec.offset:symsec.offset + symsec.size]))
    mod = machine.find_module("dummy", include_unformed=True)
    checked = 0
    for rs in (x for x in secs if x.type == elf.SHT_RELA and x.name == ".rela.text"):
        target = secs[rs.info]
        base = mod.sections[target.name]
        for k in range(rs.size // 24):
            r_off, r_info, add = elf.RELA.unpack_from(img, rs.offset + 24 * k)
            name = elf.cstring(strtab, syms[r_info >> 32][0])
            e = machine.profile.exports.get(name)
            if r_info & 0xFFFFFFFF == 2 and e is not None and e.kind == "percpu":
                P = base + r_off
                want = (e.addr + add - P) & 0xFFFFFFFF
                assert machine.mm.read_u(P, 4) == want
                checked += 1
    assert checked > 0


def _corrupt_two(img: bytearray, how: str) -> None:
    """Damage two RELA sections of a large module: the earlier section (in section order) one
    way, the later one another, so the error the kernel reports is the earlier one's."""
    h = elf.parse_header(bytes(img))
    secs = elf.parse_sections(bytes(img), h.shoff, h.shnum)
    elf.name_sections(bytes(img), secs, h.shstrndx)
    rel = [s for s in secs if s.type == elf.SHT_RELA and secs[s.info].flags & elf.SHF_ALLOC and s.size >= 48]
    a = next(s for s in rel if s.name == ".rela.init.text")       # init memory
    b = max(rel, key=lambda s: s.size)                              # core memory (.rela.text)
    first, later = (a, b) if secs.index(a) < secs.index(b) else (b, a)
    if how == "later-unknown":
        k = first.offset + 24 * (first.size // 24 - 1)             # nonzero target, last entry
        r_off, r_info, add = elf.RELA.unpack_from(img, k)
        img[secs[first.info].offset + r_off] ^= 0x5A
        r_off, r_info, add = elf.RELA.unpack_from(img, later.offset)
        struct.pack_into("<QQq", img, later.offset, r_off, (r_info & ~0xFFFFFFFF) | 99, add)
    else:                                                           # two errors in one section
        def entries(s):
            return [elf.RELA.unpack_from(img, s.offset + 24 * j) for j in range(s.size // 24)]
        b = next(s for s in rel if any(e[1] & 0xFFFFFFFF in (10, 11) for e in entries(s)[:-1]))
        ents = entries(b)
        j32 = next(j for j, e in enumerate(ents) if e[1] & 0xFFFFFFFF in (10, 11))
        r_off, r_info, add = ents[j32]
        struct.pack_into("<QQq", img, b.offset + 24 * j32, r_off, r_info, add + (1 << 40))
        j = len(ents) - 1
        struct.pack_into("<QQq", img, b.offset + 24 * j, ents[j][0], (ents[j][1] & ~0xFFFFFFFF) | 99, ents[j][2])


@pytest.mark.parametrize("how", ["later-unknown", "overflow-then-unknown"])
def test_bulk_path_reports_the_kernels_first_error(machine, monkeypatch, how):
    """A table large enough for the batch path (x86.SMALL entries and more) reports the error the
    kernel's loop meets first: the earliest section, then the earliest entry, then, within an
    entry, the order of its checks — the same line as the entry-by-entry loop."""
    path = TREE / "kernel/arch/x86/kvm/kvm.ko"
    if not path.exists():
        pytest.skip("no Debian module tree")
    from kmodlab.lib.signature import split_signature
    img = path.read_bytes()
    img = bytearray(img[:split_signature(img)[0]])    # unsigned: the damage is not refused earlier
    _corrupt_two(img, how)

    def reloc_lines(m):
        return [x.text for x in m.log if "relocation" in x.text or "mcmodel" in x.text]
    r = load(machine, bytes(img))
    assert r.ret == -ENOEXEC
    got = reloc_lines(machine)
    m2 = sequential_machine(machine, monkeypatch)
    assert load(m2, bytes(img)).ret == -ENOEXEC
    assert got and got == reloc_lines(m2)
    assert ("Skipping invalid" in got[0]) == (how == "later-unknown")
