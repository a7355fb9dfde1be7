"""Memory pools (mm/mempool.c): a reserve of ``min_nr`` preallocated elements.

``mempool_create(min_nr, alloc_fn, free_fn, pool_data)`` is ``mempool_create_node(…,
GFP_KERNEL, NUMA_NO_NODE)``: a zeroed ``struct mempool_s`` and an ``elements`` array of
``min_nr`` pointers are kmalloc'd, then ``alloc_fn(GFP_KERNEL, pool_data)`` is called until the
reserve is full — through :meth:`Emulator.call_module`, so a module's own allocator runs as
module code and the kernel's helpers (``mempool_alloc_slab``/``mempool_free_slab`` on a
kmem_cache, ``mempool_kmalloc``/``mempool_kfree`` with the size as pool_data) run as their
models.  An element that cannot be allocated frees what was taken and returns NULL.
``mempool_destroy`` (NULL allowed) frees every reserved element with ``free_fn``, the array and
the pool.  ``mempool_init``/``mempool_init_node``/``mempool_exit`` do the same for a pool
embedded in the caller's structure (mempool_init returns 0 or -ENOMEM).  ``mempool_alloc``
first asks ``alloc_fn`` (the kernel strips __GFP_DIRECT_RECLAIM/__GFP_IO on the first try; the
sandbox's allocators do not fail, so the first try is the answer), then takes a reserved
element; with none left a caller that may sleep would wait for a ``mempool_free`` — on this
single task that is a hang, a NOWAIT caller gets NULL.  ``mempool_free`` refills the reserve
below ``min_nr``, else hands the element to ``free_fn``.

Pools are listed in ``emu.state["mempools"]`` (address → min_nr), so a pool init creates and
exit destroys is visible, and a pool destroyed twice is an oops (double kfree).

``struct mempool_s`` (Debian 6.1 amd64 BTF, 72 bytes): lock 0, min_nr 4, curr_nr 8,
elements 16, pool_data 24, alloc 32, free 40, wait 48 (wait_queue_head_t: lock 48, head 56).
"""
from __future__ import annotations

from ..errors import BudgetExceeded
from ..registry import model
from .locking import init_list_head
from .slab import _cache_alloc, _kfree, kmalloc_flags, kmem_cache_free

ENOMEM = 12
MP_MIN_NR, MP_CURR_NR, MP_ELEMENTS, MP_POOL_DATA, MP_ALLOC, MP_FREE, MP_WAIT_HEAD = \
    4, 8, 16, 24, 32, 40, 56
MEMPOOL_SIZE = 72
GFP_KERNEL = 0xCC0
GFP_DIRECT_RECLAIM = 0x400


def _pools(emu) -> dict:
    return emu.state.setdefault("mempools", {})


def _init(emu, pool: int, min_nr: int, alloc_fn: int, free_fn: int, pool_data: int,
          gfp: int) -> int:
    """mempool_init_node: 0, or -ENOMEM with everything taken given back."""
    min_nr &= 0xFFFFFFFF
    min_nr = min_nr - (1 << 32) if min_nr & 0x80000000 else min_nr
    emu.write_u(pool + MP_MIN_NR, 4, min_nr)
    emu.write_u(pool + MP_POOL_DATA, 8, pool_data)
    emu.write_u(pool + MP_ALLOC, 8, alloc_fn)
    emu.write_u(pool + MP_FREE, 8, free_fn)
    emu.write_u(pool + MP_CURR_NR, 4, 0)
    emu.write_u(pool + 48, 4, 0)                       # wait.lock
    init_list_head(emu, pool + MP_WAIT_HEAD)
    elements = kmalloc_flags(emu, max(min_nr, 0) * 8, gfp)
    if not elements:
        return -ENOMEM
    emu.write_u(pool + MP_ELEMENTS, 8, elements)
    for i in range(max(min_nr, 0)):
        e = emu.call_module(alloc_fn, (gfp, pool_data))
        if not e:
            _exit(emu, pool)
            return -ENOMEM
        emu.write_u(elements + 8 * i, 8, e)
        emu.write_u(pool + MP_CURR_NR, 4, i + 1)
    return 0


def _exit(emu, pool: int) -> None:
    elements = emu.read_u(pool + MP_ELEMENTS, 8)
    free_fn, data = emu.read_u(pool + MP_FREE, 8), emu.read_u(pool + MP_POOL_DATA, 8)
    n = emu.read_u(pool + MP_CURR_NR, 4)
    while n:
        n -= 1
        emu.write_u(pool + MP_CURR_NR, 4, n)
        emu.call_module(free_fn, (emu.read_u(elements + 8 * n, 8), data))
    _kfree(emu, elements, "mempool_exit")
    emu.write_u(pool + MP_ELEMENTS, 8, 0)


@model("mempool_create_node", "mempool_create_node_noprof")
def mempool_create_node(emu, min_nr, alloc_fn, free_fn, pool_data, gfp, node):
    pool = kmalloc_flags(emu, MEMPOOL_SIZE, gfp | 0x100)
    if not pool:
        return 0
    if _init(emu, pool, min_nr, alloc_fn, free_fn, pool_data, gfp):
        _kfree(emu, pool, "mempool_create_node")
        return 0
    _pools(emu)[str(pool)] = emu.read_s(pool + MP_MIN_NR, 4)
    emu.note(f"{emu.read_s(pool + MP_MIN_NR, 4)} x {emu.symbol(alloc_fn)}")
    return pool


@model("mempool_create")
def mempool_create(emu, min_nr, alloc_fn, free_fn, pool_data):
    return mempool_create_node(emu, min_nr, alloc_fn, free_fn, pool_data, GFP_KERNEL, -1)


@model("mempool_destroy")
def mempool_destroy(emu, pool):
    if not pool:
        return
    _exit(emu, pool)
    _pools(emu).pop(str(pool), None)
    _kfree(emu, pool, "mempool_destroy")


@model("mempool_init_node", "mempool_init_node_noprof")
def mempool_init_node(emu, pool, min_nr, alloc_fn, free_fn, pool_data, gfp, node):
    err = _init(emu, pool, min_nr, alloc_fn, free_fn, pool_data, gfp)
    if not err:
        _pools(emu)[str(pool)] = emu.read_s(pool + MP_MIN_NR, 4)
    return err


@model("mempool_init", "mempool_init_noprof")
def mempool_init(emu, pool, min_nr, alloc_fn, free_fn, pool_data):
    return mempool_init_node(emu, pool, min_nr, alloc_fn, free_fn, pool_data, GFP_KERNEL, -1)


@model("mempool_exit")
def mempool_exit(emu, pool):
    if emu.read_u(pool + MP_ELEMENTS, 8):
        _exit(emu, pool)
    _pools(emu).pop(str(pool), None)


@model("mempool_alloc", "mempool_alloc_noprof")
def mempool_alloc(emu, pool, gfp):
    e = emu.call_module(emu.read_u(pool + MP_ALLOC, 8), (gfp, emu.read_u(pool + MP_POOL_DATA, 8)))
    if e:
        return e
    n = emu.read_u(pool + MP_CURR_NR, 4)
    if n:
        n -= 1
        emu.write_u(pool + MP_CURR_NR, 4, n)
        return emu.read_u(emu.read_u(pool + MP_ELEMENTS, 8) + 8 * n, 8)
    if not gfp & GFP_DIRECT_RECLAIM:
        return 0
    raise BudgetExceeded(emu.what, seconds=emu.timeout_s,
                         where="mempool_alloc (pool empty: waits for a mempool_free)")


@model("mempool_free")
def mempool_free(emu, element, pool):
    if not element:
        return
    n = emu.read_u(pool + MP_CURR_NR, 4)
    if n < emu.read_s(pool + MP_MIN_NR, 4):
        emu.write_u(emu.read_u(pool + MP_ELEMENTS, 8) + 8 * n, 8, element)
        emu.write_u(pool + MP_CURR_NR, 4, n + 1)
        return
    emu.call_module(emu.read_u(pool + MP_FREE, 8), (element, emu.read_u(pool + MP_POOL_DATA, 8)))


@model("mempool_alloc_slab", "mempool_alloc_slab_noprof")
def mempool_alloc_slab(emu, gfp, pool_data):
    return _cache_alloc(emu, pool_data, gfp)


@model("mempool_free_slab")
def mempool_free_slab(emu, element, pool_data):
    kmem_cache_free(emu, pool_data, element)


@model("mempool_kmalloc", "mempool_kmalloc_noprof")
def mempool_kmalloc(emu, gfp, pool_data):
    return kmalloc_flags(emu, pool_data, gfp)


@model("mempool_kfree")
def mempool_kfree(emu, element, pool_data):
    _kfree(emu, element)
