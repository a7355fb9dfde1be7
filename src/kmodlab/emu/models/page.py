"""Memory-layout variables (arch/x86/mm/kaslr.c, arch/x86/kernel/head64.c) and whole-page
allocations (mm/page_alloc.c).

``page_offset_base``, ``vmemmap_base`` and ``phys_base`` are what ``__va``/``virt_to_page``/
``__pa`` compile against.  The sandbox uses the non-randomised x86-64 values (4-level paging):
the direct map at 0xffff888000000000 — where the kmalloc heap lives — and the vmemmap at
0xffffea0000000000, with the kernel loaded at its link address (phys_base 0).
"""
from __future__ import annotations

from ...kernel.mm import PAGE_SIZE
from ..registry import data, model

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


# --- whole pages (mm/page_alloc.c): __get_free_pages, get_zeroed_page, free_pages -------------
# The buddy allocator hands out 2^order physically contiguous pages, aligned to PAGE_SIZE, as a
# direct-map address.  Here they come from the sandbox heap (persisted, so what init takes is
# there for exit): a heap block large enough to hold the pages at a page boundary; the block is
# ``emu.state["pages"][addr] = [block, order]``.  ``__GFP_ZERO`` (get_zeroed_page) zeroes;
# otherwise the bytes are what the heap leaves (not zeroed, as the kernel does not zero them).
# An order above MAX_ORDER (10 in 6.1, 10 in 6.12: 4 MiB) fails: NULL, with the kernel's
# WARN unless __GFP_NOWARN.  ``free_pages(0, …)`` does nothing; freeing an address that is not
# a page allocation, or with another order, is the kernel's VM_BUG_ON / bad page: an oops here.
GFP_ZERO, GFP_NOWARN = 0x100, 0x2000
MAX_ORDER = 10


def _pages(emu) -> dict:
    return emu.state.setdefault("pages", {})


def alloc_pages_virt(emu, gfp: int, order: int) -> int:
    order &= 0xFFFFFFFF
    if order > MAX_ORDER:
        if not gfp & GFP_NOWARN:
            emu.printk(4, f"WARNING: CPU: 0 PID: {emu.pid} at mm/page_alloc.c "
                          f"__alloc_pages (order {order} > MAX_ORDER)\n")
        return 0
    n = PAGE_SIZE << order
    block = emu.kmalloc(n + PAGE_SIZE)
    addr = (block + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    if gfp & GFP_ZERO:
        emu.write(addr, bytes(n))
    _pages(emu)[str(addr)] = [block, order]
    emu.note(f"{n} bytes at {addr:#x}")
    return addr


def free_pages_virt(emu, addr: int, order: int) -> None:
    if not addr:
        return
    p = _pages(emu).get(str(addr))
    if p is None or p[1] != order & 0xFFFFFFFF:
        raise emu.oops([f"BUG: Bad page state: free_pages({addr:#x}, {order}) of memory that "
                        "is not a page allocation of that order"])
    del _pages(emu)[str(addr)]
    emu.kfree(p[0])


@model("__get_free_pages", "get_free_pages_noprof")
def __get_free_pages(emu, gfp, order):
    return alloc_pages_virt(emu, gfp, order)


@model("get_zeroed_page", "get_zeroed_page_noprof")
def get_zeroed_page(emu, gfp):
    return alloc_pages_virt(emu, gfp | GFP_ZERO, 0)


@model("free_pages")
def free_pages(emu, addr, order):
    free_pages_virt(emu, addr, order)
