"""Dynamic per-CPU memory (mm/percpu.c): ``__alloc_percpu``, ``__alloc_percpu_gfp``,
``free_percpu``.

The sandbox's per-CPU area (kernel/mm.py) holds the kernel's static per-CPU data, then the
8 KiB reserve module sections come from, then the dynamic part these allocate from (first
fit, zeroed, as pcpu_alloc returns it).  A per-CPU pointer is an offset from a CPU's base, as
the module's own per-CPU variables are; the machine has one CPU, so CPU 0's copy is the only
one.  Which offset the real kernel's dynamic allocator hands out depends on everything that
allocated before (the boot included): the sandbox's offsets are its own, like its kmalloc
addresses.  As mm/percpu.c does it: a size of 0 or above PCPU_MIN_UNIT_SIZE (32 KiB), or an
alignment that is not a power of two up to PAGE_SIZE → the kernel's WARN "illegal size (%zu)
or align (%zu) for percpu allocation" and NULL; sizes and alignments below 2 are raised to 2.
``free_percpu(NULL)`` does nothing; freeing an offset that was not allocated is an oops
(the kernel would corrupt its chunk map).  Allocations are ``emu.state["percpu_dyn"]``
([offset, size]).
"""
from __future__ import annotations

from ...kernel.mm import PAGE_SIZE, PERCPU_AREA_SIZE, PERCPU_BASE, PERCPU_MODULE_RESERVE
from ..registry import model

PCPU_MIN_UNIT_SIZE = 32 << 10


def _allocs(emu) -> list:
    return emu.state.setdefault("percpu_dyn", [])


def alloc_percpu(emu, size: int, align: int) -> int:
    if align < 2:
        align = 2
    size = (size + 1) & ~1
    if not size or size > PCPU_MIN_UNIT_SIZE or align > PAGE_SIZE or align & (align - 1):
        emu.printk(4, f"illegal size ({size}) or align ({align}) for percpu allocation\n")
        return 0
    off = emu.percpu_static + PERCPU_MODULE_RESERVE
    for o, s in sorted(_allocs(emu)):
        if (off + align - 1) // align * align + size <= o:
            break
        off = max(off, o + s)
    off = (off + align - 1) // align * align
    if off + size > PERCPU_AREA_SIZE:
        emu.printk(4, f"allocation failed, size={size} align={align} atomic=0, alloc from "
                      "reserved chunk failed\n")
        return 0
    _allocs(emu).append([off, size])
    emu.write(PERCPU_BASE + off, bytes(size))
    emu.note(f"{size} bytes at percpu+{off:#x}")
    return off


@model("__alloc_percpu")
def __alloc_percpu(emu, size, align):
    return alloc_percpu(emu, size, align)


@model("__alloc_percpu_gfp")
def __alloc_percpu_gfp(emu, size, align, gfp):
    return alloc_percpu(emu, size, align)


@model("free_percpu")
def free_percpu(emu, ptr):
    if not ptr:
        return
    for a in _allocs(emu):
        if a[0] == ptr:
            _allocs(emu).remove(a)
            return
    raise emu.oops([f"BUG: free_percpu of {ptr:#x}, which is not a dynamic per-CPU "
                    "allocation"])


@model("pcpu_alloc_noprof")
def pcpu_alloc_noprof(emu, size, align, reserved, gfp):
    """Linux 6.12: __alloc_percpu()/alloc_percpu_gfp() are macros around this one.  A
    ``reserved`` allocation (from the reserved chunk module per-CPU sections share) is not
    modelled."""
    if reserved & 0xFF:
        from ..errors import Unmodelled
        raise Unmodelled("pcpu_alloc_noprof (an allocation from the reserved chunk)",
                         what=emu.what)
    return alloc_percpu(emu, size, align)
