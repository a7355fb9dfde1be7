"""Shrinkers (mm/vmscan.c): callbacks the kernel calls under memory pressure.

``register_shrinker(shrinker, fmt, ...)`` (Debian 6.1: CONFIG_SHRINKER_DEBUG off, so the name
is not kept) preallocates ``nr_deferred`` — one atomic_long_t, times ``nr_node_ids`` for a
SHRINKER_NUMA_AWARE shrinker (the sandbox machine has one node, as the QEMU oracle does), a
kzalloc failure is -ENOMEM — then lists the shrinker and sets SHRINKER_REGISTERED.  A
SHRINKER_MEMCG_AWARE shrinker would instead get an id from the kernel's shrinker_idr, where
the built-in memcg-aware shrinkers (superblocks, workingset …) hold ids the profile does not
know: that is :class:`Unmodelled`.  The ``list`` link into the kernel's static
``shrinker_list`` (address not in the profile) is not written; the registry is
``emu.state["shrinkers"]`` (address → callbacks).  The sandbox never runs short of memory, so
no shrinker is ever called — as on a machine with memory to spare.  ``unregister_shrinker``
does nothing for a shrinker without SHRINKER_REGISTERED; otherwise unlists it, clears the flag
and frees ``nr_deferred``.

``struct shrinker`` (Debian 6.1 amd64 BTF, 64 bytes): count_objects 0, scan_objects 8,
batch 16, seeks 24, flags 28, list 32, id 48, nr_deferred 56.
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..registry import model
from .slab import _kfree, kmalloc_flags

ENOMEM = 12
SH_COUNT, SH_SCAN, SH_FLAGS, SH_NR_DEFERRED = 0, 8, 28, 56
SHRINKER_REGISTERED, SHRINKER_NUMA_AWARE, SHRINKER_MEMCG_AWARE = 1, 2, 4
NR_NODE_IDS = 1


def _shrinkers(emu) -> dict:
    return emu.state.setdefault("shrinkers", {})


@model("register_shrinker")
def register_shrinker(emu, shrinker, fmt, *_):
    flags = emu.read_u(shrinker + SH_FLAGS, 4)
    if flags & SHRINKER_MEMCG_AWARE:
        raise Unmodelled("register_shrinker (a memcg-aware shrinker's id in shrinker_idr)",
                         what=emu.what)
    size = 8 * (NR_NODE_IDS if flags & SHRINKER_NUMA_AWARE else 1)
    nr = kmalloc_flags(emu, size, 0xCC0 | 0x100)
    if not nr:
        return -ENOMEM
    emu.write_u(shrinker + SH_NR_DEFERRED, 8, nr)
    emu.write_u(shrinker + SH_FLAGS, 4, flags | SHRINKER_REGISTERED)
    _shrinkers(emu)[str(shrinker)] = {"count": emu.read_u(shrinker + SH_COUNT, 8),
                                      "scan": emu.read_u(shrinker + SH_SCAN, 8)}
    emu.note(emu.symbol(emu.read_u(shrinker + SH_SCAN, 8)))
    return 0


@model("unregister_shrinker")
def unregister_shrinker(emu, shrinker):
    flags = emu.read_u(shrinker + SH_FLAGS, 4)
    if not flags & SHRINKER_REGISTERED:
        return
    _shrinkers(emu).pop(str(shrinker), None)
    emu.write_u(shrinker + SH_FLAGS, 4, flags & ~SHRINKER_REGISTERED)
    _kfree(emu, emu.read_u(shrinker + SH_NR_DEFERRED, 8))
    emu.write_u(shrinker + SH_NR_DEFERRED, 8, 0)
