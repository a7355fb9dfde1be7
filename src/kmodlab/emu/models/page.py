"""Memory-layout variables (arch/x86/mm/kaslr.c, arch/x86/kernel/head64.c).

``page_offset_base``, ``vmemmap_base`` and ``phys_base`` are what ``__va``/``virt_to_page``/
``__pa`` compile against.  The sandbox uses the non-randomised x86-64 values (4-level paging):
the direct map at 0xffff888000000000 — where the kmalloc heap lives — and the vmemmap at
0xffffea0000000000, with the kernel loaded at its link address (phys_base 0).
"""
from __future__ import annotations

from ..registry import data

PAGE_OFFSET_BASE = 0xFFFF888000000000
VMEMMAP_BASE = 0xFFFFEA0000000000


@data("page_offset_base", 8)
def page_offset_base(emu) -> bytes:
    return PAGE_OFFSET_BASE.to_bytes(8, "little")


@data("vmemmap_base", 8)
def vmemmap_base(emu) -> bytes:
    return VMEMMAP_BASE.to_bytes(8, "little")


@data("phys_base", 8)
def phys_base(emu) -> bytes:
    return bytes(8)
