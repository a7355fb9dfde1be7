"""Support for the emulator tests: compile a C snippet as kernel code and place it in memory.

``build(src, exports)`` compiles with ``gcc -O2 -mcmodel=kernel -fno-pic`` (no ftrace,
retpolines, or return thunks unless asked), lays every SHF_ALLOC section out in one region
``t:core`` at MODULES_VADDR, and applies the relocations itself (PC32/PLT32/64/32S/32) against
the test's stand-in exports — a miniature of what the loader does, so that the emulator is
tested on real compiled code without depending on the loader.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import pytest

from kmodlab import elf
from kmodlab.kernel.mm import MODULES_VADDR, AddressSpace, Heap, align, page_align

HAVE_GCC = shutil.which("gcc") is not None
needs_gcc = pytest.mark.skipif(not HAVE_GCC, reason="gcc not installed")


@dataclass
class Export:
    name: str
    addr: int
    gpl: bool = False
    crc: int = 0
    namespace: str = ""
    owner: str = "vmlinux"
    kind: str = "text"


# A few exports at their Debian 6.1.0 addresses (the kinds matter, the values are realistic).
EXPORTS = {e.name: e for e in [
    Export("_printk", 0xFFFFFFFF81A07E3D),
    Export("__kmalloc", 0xFFFFFFFF8132A1A0),
    Export("kmalloc_trace", 0xFFFFFFFF8132A6B0),
    Export("kfree", 0xFFFFFFFF8132B310),
    Export("snprintf", 0xFFFFFFFF81A0B2D0),
    Export("sprintf", 0xFFFFFFFF81A0B3A0),
    Export("strlen", 0xFFFFFFFF81A14E10),
    Export("strcmp", 0xFFFFFFFF81A14F30),
    Export("memcpy", 0xFFFFFFFF81A1D0C0),
    Export("memset", 0xFFFFFFFF81A1D300),
    Export("strscpy", 0xFFFFFFFF81A15180),
    Export("__fentry__", 0xFFFFFFFF81A24F70),
    Export("__x86_return_thunk", 0xFFFFFFFF81C027A0),
    Export("__x86_indirect_thunk_rax", 0xFFFFFFFF81C01E20),
    Export("__stack_chk_fail", 0xFFFFFFFF81A0A2B0),
    Export("crypto_register_shash", 0xFFFFFFFF814B7E60),
    Export("crypto_unregister_shash", 0xFFFFFFFF814B7F00),
    Export("register_chrdev_region", 0xFFFFFFFF813A1F80),
    Export("msleep", 0xFFFFFFFF81196A40),
    Export("request_firmware", 0xFFFFFFFF81718970),
    Export("mutex_lock", 0xFFFFFFFF81A55130),
    Export("mutex_unlock", 0xFFFFFFFF81A53D60),
    Export("init_timer_key", 0xFFFFFFFF811538C0),
    Export("mod_timer", 0xFFFFFFFF81154980),
    Export("timer_delete_sync", 0xFFFFFFFF81153B80),
    Export("alloc_workqueue", 0xFFFFFFFF810C8990),
    Export("queue_work_on", 0xFFFFFFFF810C4C80),
    Export("destroy_workqueue", 0xFFFFFFFF810C7A80),
    Export("cancel_work_sync", 0xFFFFFFFF810C5960),
    Export("flush_work", 0xFFFFFFFF810C6630),
    Export("_raw_spin_lock_irqsave", 0xFFFFFFFF81A59AF0),
    Export("_raw_spin_unlock_irqrestore", 0xFFFFFFFF81A59B80),
    Export("__register_chrdev", 0xFFFFFFFF8136D690),
    Export("alloc_chrdev_region", 0xFFFFFFFF8136D660),
    Export("unregister_chrdev_region", 0xFFFFFFFF8136CFC0),
    Export("debugfs_create_dir", 0xFFFFFFFF81425D00),
    Export("debugfs_remove", 0xFFFFFFFF81425490),
    Export("system_wq", 0xFFFFFFFF82C3C818, kind="data"),
    Export("kmalloc_caches", 0xFFFFFFFF82B3C8A0, kind="data"),
    Export("jiffies", 0xFFFFFFFF82A05900, kind="data"),
    Export("init_net", 0xFFFFFFFF82C7E4C0, kind="data"),
    Export("current_task", 0x1FB80, kind="percpu"),
    Export("__preempt_count", 0x1FB88, kind="percpu"),
    Export("cpu_number", 0x1F99C, kind="percpu"),
    Export("this_cpu_off", 0x1F990, kind="percpu"),
    Export("softnet_data", 0x2E880, kind="percpu"),
]}

CFLAGS = ["-O2", "-mcmodel=kernel", "-fno-pic", "-fno-asynchronous-unwind-tables",
          "-fno-stack-protector", "-mno-red-zone", "-ffreestanding", "-fno-builtin",
          "-fno-jump-tables", "-mno-sse", "-mno-mmx"]


@dataclass
class Built:
    mm: AddressSpace
    heap: Heap
    syms: dict[str, int]
    region: str


def build(src: str, exports: dict = EXPORTS, extra: list[str] = (), mm: AddressSpace | None = None,
          base: int = MODULES_VADDR, region: str = "t:core") -> Built:
    """Compile ``src``, lay out and relocate it at ``base``; return memory and symbol addresses."""
    with tempfile.TemporaryDirectory() as d:
        c, o = os.path.join(d, "t.c"), os.path.join(d, "t.o")
        with open(c, "w") as f:
            f.write(src)
        subprocess.run(["gcc", *CFLAGS, *extra, "-c", c, "-o", o], check=True)
        buf = open(o, "rb").read()
    hdr = elf.parse_header(buf)
    secs = elf.parse_sections(buf, hdr.shoff, hdr.shnum)
    elf.name_sections(buf, secs, hdr.shstrndx)
    addr: dict[int, int] = {}
    off = 0
    for i, s in enumerate(secs):
        if s.flags & elf.SHF_ALLOC and s.size:
            off = align(off, s.addralign or 1)
            addr[i] = base + off
            off += s.size
    mm = mm or AddressSpace()
    r = mm.map(region, base, page_align(max(off, 1)))
    for i, a in addr.items():
        if secs[i].type != elf.SHT_NOBITS:
            r.data[a - base:a - base + secs[i].size] = elf.section_bytes(buf, secs[i])
    symsec = next(s for s in secs if s.type == elf.SHT_SYMTAB)
    syms = elf.symbols(buf, symsec)
    strtab = secs[symsec.link]

    def name(st_name):
        return elf.cstring(buf, strtab.offset + int(st_name), strtab.offset + strtab.size)

    def value(k):
        s = syms[k]
        if s["st_shndx"] == 0:
            return exports[name(s["st_name"])].addr
        return addr.get(int(s["st_shndx"]), 0) + int(s["st_value"])

    out = {name(s["st_name"]): value(k) for k, s in enumerate(syms)
           if s["st_shndx"] != 0 and s["st_info"] & 0xF in (elf.STT_FUNC, elf.STT_OBJECT)}
    for s in secs:
        if s.type != elf.SHT_RELA or s.info not in addr:
            continue
        for rel in elf.relocations(buf, s):
            P = addr[s.info] + int(rel["r_offset"])
            k, t = int(rel["r_info"]) >> 32, int(rel["r_info"]) & 0xFFFFFFFF
            v = (value(k) + int(rel["r_addend"])) & (2**64 - 1)
            if t in (2, 4):
                mm.write_u(P, 4, v - P)
            elif t == 1:
                mm.write_u(P, 8, v)
            elif t in (10, 11):
                mm.write_u(P, 4, v)
            else:
                raise AssertionError(f"relocation type {t}")
    return Built(mm, Heap(), out, region)
