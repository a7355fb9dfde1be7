"""Memory-layout variables (arch/x86/mm/kaslr.c, arch/x86/kernel/head64.c) and whole-page
allocations (mm/page_alloc.c).

``page_offset_base``, ``vmemmap_base`` and ``phys_base`` are what ``__va``/``virt_to_page``/
``__pa`` compile against.  The sandbox uses the non-randomised x86-64 values (4-level paging):
the direct map at 0xffff888000000000 — where the kmalloc heap lives — and the vmemmap at
0xffffea0000000000, with the kernel loaded at its link address (phys_base 0).
"""
from __future__ import annotations

from ...kernel.mm import PAGE_SIZE
from ..errors import Unmodelled
from ..layouts import layout
from ..registry import data, model

LAYOUT = layout("page")
PG_FLAGS, PG_MAPCOUNT, PG_REFCOUNT = ("page", "flags"), ("page", "_mapcount"), ("page", "_refcount")
PG_MAPPING, PG_PRIVATE, PG_SIZE = ("page", "mapping"), ("page", "private"), ("page", "sizeof")
GFP_COMP = 0x40000

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



# --- struct page (mm/page_alloc.c's alloc_pages / __free_pages) --------------------------------
# A page allocation's struct pages are the vmemmap's: ``vmemmap_base + pfn * sizeof(struct
# page)``, pfn = (direct-map address - page_offset_base) / PAGE_SIZE, so page_address() and
# virt_to_page() (inline arithmetic in module code) agree with the models.  The vmemmap pages
# under an allocation are mapped when first needed (persisted like the heap).  An allocated
# page has _refcount 1 (the first page of a multi-page, non-compound block; the others 0, as
# the buddy allocator leaves them), _mapcount -1, no mapping, no private data.  Not written:
# the zone and node bits of ``flags`` (their layout is the config's page-flags packing: a
# module reading page_zone()/page_to_nid() sees zone 0, node 0).  Compound allocations
# (__GFP_COMP, folios above order 0) are refused by name.
def _page_of(emu, addr: int) -> int:
    return VMEMMAP_BASE + ((addr - PAGE_OFFSET_BASE) // PAGE_SIZE) * LAYOUT.of(emu)[PG_SIZE]


def _addr_of(emu, page: int) -> int:
    return PAGE_OFFSET_BASE + (page - VMEMMAP_BASE) // LAYOUT.of(emu)[PG_SIZE] * PAGE_SIZE


def _map_vmemmap(emu, first: int, size: int) -> None:
    p = first & ~(PAGE_SIZE - 1)
    while p < first + size:
        if emu.mm.find(p) is None:
            emu.mm.map(f"vmemmap@{p:#x}", p, PAGE_SIZE)
        p += PAGE_SIZE


def alloc_pages_struct(emu, gfp: int, order: int, fn: str) -> int:
    """alloc_pages: the first struct page of 2^order pages, 0 when the allocation fails."""
    order &= 0xFFFFFFFF
    if gfp & GFP_COMP and order:
        raise Unmodelled(f"{fn} (a compound allocation of order {order})", what=emu.what)
    addr = alloc_pages_virt(emu, gfp, order)
    if not addr:
        return 0
    o = LAYOUT.of(emu)
    first, size = _page_of(emu, addr), o[PG_SIZE]
    _map_vmemmap(emu, first, size << order)
    for i in range(1 << order):
        pg = first + i * size
        emu.write(pg, bytes(size))
        emu.write_u(pg + o[PG_MAPCOUNT], 4, 0xFFFFFFFF)
        emu.write_u(pg + o[PG_REFCOUNT], 4, 1 if i == 0 else 0)
    return first


@model("alloc_pages", "alloc_pages_noprof")
def alloc_pages(emu, gfp, order):
    return alloc_pages_struct(emu, gfp, order, "alloc_pages")


@model("__alloc_pages", "__alloc_pages_noprof")
def __alloc_pages(emu, gfp, order, nid, nodemask):
    if nodemask:
        raise Unmodelled("__alloc_pages (a nodemask)", what=emu.what)
    return alloc_pages_struct(emu, gfp, order, "__alloc_pages")


@model("folio_alloc", "folio_alloc_noprof")
def folio_alloc(emu, gfp, order):
    """An order-0 folio is a page (6.1 adds __GFP_COMP, which order 0 ignores)."""
    if order & 0xFFFFFFFF:
        raise Unmodelled(f"folio_alloc (a large folio, order {order & 0xFFFFFFFF})",
                         what=emu.what)
    return alloc_pages_struct(emu, gfp, 0, "folio_alloc")


@model("__free_pages")
def __free_pages(emu, page, order):
    """put_page_testzero, then the pages go back; a block someone else still holds a reference
    to gives back only its tail pages in the kernel (not modelled)."""
    o = LAYOUT.of(emu)
    ref = emu.read_s(page + o[PG_REFCOUNT], 4)
    if ref <= 0:
        raise emu.oops([f"page:{page:#x} refcount:{ref} mapcount:-1 mapping:0000000000000000",
                        "page dumped because: VM_BUG_ON_PAGE(page_ref_count(page) == 0)",
                        "kernel BUG at include/linux/mm.h (put_page_testzero)!"])
    emu.write_u(page + o[PG_REFCOUNT], 4, ref - 1)
    if ref > 1:
        if order & 0xFFFFFFFF:
            raise Unmodelled("__free_pages (a multi-page block still referenced: its tail "
                             "pages)", what=emu.what)
        return
    free_pages_virt(emu, _addr_of(emu, page), order)


@model("mempool_alloc_pages")
def mempool_alloc_pages(emu, gfp, pool_data):
    return alloc_pages_struct(emu, gfp, pool_data & 0xFFFFFFFF, "mempool_alloc_pages")


@model("mempool_free_pages")
def mempool_free_pages(emu, element, pool_data):
    __free_pages(emu, element, pool_data & 0xFFFFFFFF)
