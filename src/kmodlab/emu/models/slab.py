"""Slab allocation (mm/slab_common.c, mm/slub.c, mm/util.c, mm/vmalloc.c) on the sandbox heap.

All memory comes from the machine's persistent kmalloc heap (:class:`kmodlab.kernel.mm.Heap`),
so what init allocates is still there for exit.  In 6.1 a constant-size ``kmalloc`` compiles to
``kmalloc_trace(kmalloc_caches[type][index], flags, size)``; ``kmalloc_caches`` is modelled as
the real 4×14 table (types NORMAL, CGROUP, RECLAIM, DMA; index = size class) of pointers to
``struct kmem_cache`` objects whose ``size``/``object_size``/``name`` fields are filled in.
Module-created caches (``kmem_cache_create``) are heap objects with the same fields; which
objects belong to which cache is kept in ``emu.state["slab"]`` (persisted by the caller).

Kernel rules kept: ``kmalloc(0)`` returns ``ZERO_SIZE_PTR`` (0x10); ``kfree(NULL)`` and
``kfree(ZERO_SIZE_PTR)`` do nothing; ``__GFP_ZERO`` zeroes; a size above ``KMALLOC_MAX_SIZE``
fails with NULL and a warning (unless ``__GFP_NOWARN``); a pointer that was never allocated (or
was already freed) is an oops; destroying a cache that still has objects warns and leaks it.
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..registry import data, model

ZERO_SIZE_PTR = 16
GFP_ZERO = 0x100
GFP_NOWARN = 0x2000
KMALLOC_SHIFT_HIGH = 13                         # PAGE_SHIFT + 1 (SLUB)
KMALLOC_MAX_SIZE = 1 << 22                      # MAX_ORDER(11) + PAGE_SHIFT - 1
KMALLOC_TYPES = ("kmalloc-", "kmalloc-cg-", "kmalloc-rcl-", "dma-kmalloc-")
# struct kmem_cache (SLUB, 6.1) fields the models fill in
KC_SIZE, KC_OBJECT_SIZE, KC_REFCOUNT, KC_CTOR, KC_ALIGN, KC_NAME = 24, 28, 64, 72, 84, 96
KMEM_CACHE_STRUCT = 0x140


def kmalloc_size(index: int) -> int:
    return {1: 96, 2: 192}.get(index, 1 << index)


@data("kmalloc_caches", size=len(KMALLOC_TYPES) * (KMALLOC_SHIFT_HIGH + 1) * 8)
def kmalloc_caches(emu) -> bytes:
    out = bytearray()
    for prefix in KMALLOC_TYPES:
        for idx in range(KMALLOC_SHIFT_HIGH + 1):
            if idx == 0:
                out += bytes(8)
                continue
            size = kmalloc_size(idx)
            s = emu.priv_alloc(KMEM_CACHE_STRUCT)
            name = emu.priv_alloc(24, 8)
            emu.write(name, f"{prefix}{size // 1024}k".encode() if size >= 1024
                      else f"{prefix}{size}".encode())
            _init_cache(emu, s, size, 8, 0, name)
            out += s.to_bytes(8, "little")
    return bytes(out)


def _init_cache(emu, s: int, size: int, align: int, ctor: int, name: int) -> None:
    emu.write_u(s + KC_SIZE, 4, (size + 7) & ~7)
    emu.write_u(s + KC_OBJECT_SIZE, 4, size)
    emu.write_u(s + KC_REFCOUNT, 4, 1)
    emu.write_u(s + KC_CTOR, 8, ctor)
    emu.write_u(s + KC_ALIGN, 4, align)
    emu.write_u(s + KC_NAME, 8, name)


def kmalloc_flags(emu, size: int, flags: int) -> int:
    """The common path of every kmalloc flavour: returns the pointer (0 on failure)."""
    if size == 0:
        return ZERO_SIZE_PTR
    if size > KMALLOC_MAX_SIZE:
        if not flags & GFP_NOWARN:
            emu.printk(4, f"WARNING: kmalloc of {size} bytes exceeds KMALLOC_MAX_SIZE "
                          f"(called from {emu.symbol(emu.read_u(emu.reg('rsp'), 8))})\n")
        return 0
    return emu.kmalloc(size, zero=bool(flags & GFP_ZERO))


def _kfree(emu, p: int, who: str = "kfree") -> int:
    if p <= ZERO_SIZE_PTR:
        return 0
    if p not in emu.heap.allocs:
        raise emu.oops([f"kernel BUG at mm/slub.c: {who}() of invalid or already freed "
                        f"pointer {p:#018x}",
                        "invalid opcode: 0000 [#1] PREEMPT SMP NOPTI"], addr=None)
    emu.state.get("slab", {}).pop(str(p), None)
    return emu.kfree(p)


@model("__kmalloc", "__kmalloc_noprof")
def __kmalloc(emu, size, flags):
    return kmalloc_flags(emu, size, flags)


@model("__kmalloc_node")
def __kmalloc_node(emu, size, flags, node):
    return kmalloc_flags(emu, size, flags)


@model("__kmalloc_node_track_caller")
def __kmalloc_node_track_caller(emu, size, flags, node, caller):
    return kmalloc_flags(emu, size, flags)


# Linux 6.12 with CONFIG_SLAB_BUCKETS (Debian's): the node variants take the caller's
# kmem_buckets after the size (DECL_BUCKET_PARAMS); kmalloc_node() passes NULL, the default
# kmalloc caches, and a bucket set gives the same sizes and failures.
@model("__kmalloc_node_noprof")
def __kmalloc_node_noprof(emu, size, b, flags, node):
    return kmalloc_flags(emu, size, flags)


@model("__kmalloc_node_track_caller_noprof")
def __kmalloc_node_track_caller_noprof(emu, size, b, flags, node, caller):
    return kmalloc_flags(emu, size, flags)


@model("kmalloc_trace", "__kmalloc_cache_noprof")          # 6.1 / 6.12 (memory profiling names)
def kmalloc_trace(emu, s, flags, size):
    return kmalloc_flags(emu, size, flags)


@model("kmalloc_node_trace", "__kmalloc_cache_node_noprof")
def kmalloc_node_trace(emu, s, flags, node, size):
    return kmalloc_flags(emu, size, flags)


@model("kmalloc_large", "__kmalloc_large_noprof")
def kmalloc_large(emu, size, flags):
    return kmalloc_flags(emu, size, flags)


@model("kmalloc_large_node", "__kmalloc_large_node_noprof")
def kmalloc_large_node(emu, size, flags, node):
    return kmalloc_flags(emu, size, flags)


# mm/vmalloc.c, mm/util.c.  vmalloc has no KMALLOC_MAX_SIZE: it fails only for a size of more
# pages than the machine has (the oracle guest's _totalram_pages, models/arch.py), where the
# kernel prints warn_alloc's report (not modelled: Unmodelled).  kvmalloc_node (6.1) tries
# kmalloc and falls back to vmalloc for GFP_KERNEL-compatible flags; other flags are kmalloc
# only; a size above INT_MAX is refused (NULL) with a WARN unless __GFP_NOWARN.
GFP_KERNEL = 0xCC0
INT_MAX = (1 << 31) - 1


def vmalloc_flags(emu, size: int, flags: int) -> int:
    from .arch import TOTALRAM_PAGES
    size &= (1 << 64) - 1
    if not size:
        return 0
    pages = (size + 4095) >> 12
    if pages > TOTALRAM_PAGES.get(tuple(emu.kernel_version[:2]), TOTALRAM_PAGES[(6, 1)]):
        raise Unmodelled(f"{emu._model_name} ({size} bytes: more pages than the machine has, "
                         "the kernel's warn_alloc report)", what=emu.what)
    return emu.kmalloc(size, zero=bool(flags & GFP_ZERO))


@model("kvmalloc_node")
def kvmalloc_node(emu, size, flags, node):
    flags &= 0xFFFFFFFF
    if flags & GFP_KERNEL != GFP_KERNEL:
        return kmalloc_flags(emu, size, flags)
    if size <= KMALLOC_MAX_SIZE:
        return kmalloc_flags(emu, size, flags)
    if size > INT_MAX:
        if not flags & GFP_NOWARN:
            emu.printk(4, "WARNING: CPU: 0 at mm/util.c kvmalloc_node\n")
        return 0
    return vmalloc_flags(emu, size, flags)


@model("__kvmalloc_node_noprof")
def __kvmalloc_node_noprof(emu, size, b, flags, node):
    """Linux 6.12 with CONFIG_SLAB_BUCKETS (Debian's): kvmalloc_node's rules, the kmalloc
    attempt from the caller's bucket ``b`` when it has one (same sizes and failures)."""
    return kvmalloc_node(emu, size, flags, node)


@model("vmalloc", "vmalloc_noprof")
def vmalloc(emu, size):
    return vmalloc_flags(emu, size, 0)


@model("vzalloc", "vzalloc_noprof")
def vzalloc(emu, size):
    return vmalloc_flags(emu, size, GFP_ZERO)


@model("kfree")
def kfree(emu, p):
    _kfree(emu, p)


@model("kvfree")
def kvfree(emu, p):
    _kfree(emu, p, "kvfree")


@model("vfree")
def vfree(emu, p):
    _kfree(emu, p, "vfree")


@model("kfree_sensitive")
def kfree_sensitive(emu, p):
    if p > ZERO_SIZE_PTR and p in emu.heap.allocs:
        emu.write(p, bytes(emu.heap.allocs[p]))
    _kfree(emu, p, "kfree_sensitive")


@model("__ksize", "ksize")
def ksize(emu, p):
    if p <= ZERO_SIZE_PTR:
        return 0
    if p not in emu.heap.allocs:
        raise emu.oops([f"kernel BUG at mm/slab_common.c: ksize() of invalid pointer {p:#018x}",
                        "invalid opcode: 0000 [#1] PREEMPT SMP NOPTI"])
    return emu.heap.allocs[p]


@model("krealloc", "krealloc_noprof")
def krealloc(emu, p, new_size, flags):
    if new_size == 0:
        _kfree(emu, p, "krealloc")
        return ZERO_SIZE_PTR
    old = 0 if p <= ZERO_SIZE_PTR else ksize(emu, p)
    if p > ZERO_SIZE_PTR and new_size <= old:
        return p
    q = kmalloc_flags(emu, new_size, flags)
    if q and old:
        emu.write(q, emu.read(p, old))
        _kfree(emu, p, "krealloc")
    return q


@model("kstrdup")
def kstrdup(emu, s, gfp):
    if not s:
        return 0
    b = emu.cstr(s)
    q = kmalloc_flags(emu, len(b) + 1, gfp)
    if q:
        emu.write(q, b + b"\0")
    return q


@model("kstrndup")
def kstrndup(emu, s, maxlen, gfp):
    if not s:
        return 0
    b = emu.cstr(s, maxlen)
    q = kmalloc_flags(emu, len(b) + 1, gfp)
    if q:
        emu.write(q, b + b"\0")
    return q


def _in_kernel_rodata(emu, p: int) -> bool:
    return 0xFFFFFFFF80000000 <= p < 0xFFFFFFFFC0000000


@model("kstrdup_const")
def kstrdup_const(emu, s, gfp):
    return s if _in_kernel_rodata(emu, s) else kstrdup(emu, s, gfp)


@model("kfree_const")
def kfree_const(emu, p):
    if not _in_kernel_rodata(emu, p):
        _kfree(emu, p, "kfree_const")


@model("kmemdup", "kmemdup_noprof")
def kmemdup(emu, src, length, gfp):
    q = kmalloc_flags(emu, length, gfp)
    if q > ZERO_SIZE_PTR:
        emu.write(q, emu.read(src, length))
    return q


@model("kmemdup_nul")
def kmemdup_nul(emu, src, length, gfp):
    if not src:
        return 0
    q = kmalloc_flags(emu, length + 1, gfp)
    if q:
        emu.write(q, emu.read(src, length) + b"\0")
    return q


# --- module-created caches ---------------------------------------------------------------------

def _cache_create(emu, name, size, align, flags, ctor):
    s = kmalloc_flags(emu, KMEM_CACHE_STRUCT, GFP_ZERO)
    _init_cache(emu, s, size, max(align, 8), ctor, kstrdup_const(emu, name, 0))
    emu.write_u(s + 8, 4, flags)
    emu.state.setdefault("kmem_caches", {})[str(s)] = emu.cstr(name).decode("latin-1")
    return s


@model("kmem_cache_create")
def kmem_cache_create(emu, name, size, align, flags, ctor):
    return _cache_create(emu, name, size, align, flags, ctor)


@model("kmem_cache_create_usercopy")
def kmem_cache_create_usercopy(emu, name, size, align, flags, useroffset, usersize, ctor):
    return _cache_create(emu, name, size, align, flags, ctor)


@model("__kmem_cache_create_args")
def __kmem_cache_create_args(emu, name, object_size, args, flags):
    """Linux 6.12's kmem_cache_create(): alignment and constructor come in a struct
    kmem_cache_args (its offsets from the kernel's BTF; NULL means all defaults)."""
    lay = (emu.structs or {}).get("kmem_cache_args") or {}
    if lay.get("align") is None or lay.get("ctor") is None:
        raise Unmodelled("__kmem_cache_create_args (the profile does not know struct "
                         "kmem_cache_args)", what=emu.what)
    align = emu.read_u(args + lay["align"], 4) if args else 0
    ctor = emu.read_u(args + lay["ctor"], 8) if args else 0
    return _cache_create(emu, name, object_size, align, flags, ctor)


def _cache_alloc(emu, s: int, flags: int) -> int:
    """An object of cache ``s``.  A cache with a constructor: SLUB runs ``ctor(obj)`` on every
    object of a new slab before handing any out; here each object is a fresh heap block, so
    the constructor runs on it (through :meth:`Emulator.call_module`) before it is returned."""
    size = emu.read_u(s + KC_OBJECT_SIZE, 4)
    ctor = emu.read_u(s + KC_CTOR, 8)
    p = kmalloc_flags(emu, size, flags)
    if p > ZERO_SIZE_PTR:
        emu.state.setdefault("slab", {})[str(p)] = s
        if ctor:
            emu.call_module(ctor, (p,))
    return p


@model("kmem_cache_alloc", "kmem_cache_alloc_noprof")
def kmem_cache_alloc(emu, s, flags):
    return _cache_alloc(emu, s, flags)


@model("kmem_cache_alloc_lru", "kmem_cache_alloc_lru_noprof")
def kmem_cache_alloc_lru(emu, s, lru, flags):
    return _cache_alloc(emu, s, flags)


@model("kmem_cache_alloc_node", "kmem_cache_alloc_node_noprof")
def kmem_cache_alloc_node(emu, s, flags, node):
    return _cache_alloc(emu, s, flags)


@model("kmem_cache_free")
def kmem_cache_free(emu, s, p):
    _kfree(emu, p, "kmem_cache_free")


@model("kmem_cache_destroy")
def kmem_cache_destroy(emu, s):
    if not s:
        return
    live = [k for k, c in emu.state.get("slab", {}).items() if c == s]
    name = emu.cstr(emu.read_u(s + KC_NAME, 8)).decode("latin-1")
    if live:
        caller = emu.symbol(emu.read_u(emu.reg("rsp"), 8))
        emu.printk(4, f"kmem_cache_destroy {name}: Slab cache still has objects when called "
                      f"from {caller}\n")
        return
    emu.state.get("kmem_caches", {}).pop(str(s), None)
    kfree_const(emu, emu.read_u(s + KC_NAME, 8))
    _kfree(emu, s, "kmem_cache_destroy")
