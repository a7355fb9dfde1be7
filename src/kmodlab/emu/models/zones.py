"""Zone page counters of the booted machine (mm/page_alloc.c ``nr_free_buffer_pages``).

``nr_free_buffer_pages()`` is ``nr_free_zone_pages(gfp_zone(GFP_USER))``: over the zones of
the local node's GFP_KERNEL zonelist up to ZONE_NORMAL, the sum of ``managed - high
watermark`` (``high_wmark_pages``: ``_watermark[WMARK_HIGH] + watermark_boost``) for each
zone whose managed pages exceed it.  The machine is the mass oracle's 2 GiB guest (see
arch.py): its /proc/zoneinfo after boot (one node; the Normal, Movable and Device zones are
empty) reads, in pages,

- 6.1:  DMA managed 3840 high 128, DMA32 managed 499760 high 16765 → 486707;
- 6.12: DMA managed 3840 high 127, DMA32 managed 501468 high 16766 → 488415.

(The managed totals are arch.py's ``_totalram_pages``, 503600 and 505308.)  Nothing a module
does in the sandbox allocates from or returns pages to these counters, and the watermarks
are fixed after boot, so the value stays that of the booted guest.  A release whose guest was
not recorded stops the call by name.
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..registry import model

# per release: (zone, managed pages, high watermark) from the booted guest's /proc/zoneinfo
ZONES = {(6, 1): (("DMA", 3840, 128), ("DMA32", 499760, 16765)),
         (6, 12): (("DMA", 3840, 127), ("DMA32", 501468, 16766))}


def free_buffer_pages(release: tuple[int, int]) -> int | None:
    zones = ZONES.get(release)
    if zones is None:
        return None
    return sum(managed - high for _, managed, high in zones if managed > high)


@model("nr_free_buffer_pages")
def nr_free_buffer_pages(emu):
    rel = tuple(emu.kernel_version[:2])
    n = free_buffer_pages(rel)
    if n is None:
        raise Unmodelled(f"nr_free_buffer_pages (no recorded zones for Linux {rel[0]}.{rel[1]})",
                         what=emu.what)
    return n
