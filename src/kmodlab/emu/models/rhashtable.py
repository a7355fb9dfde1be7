"""Resizable hash tables (lib/rhashtable.c): set-up and tear-down of an empty table.

``rhashtable_init`` / ``rhltable_init`` (6.12: the ``_noprof`` exports, the memory-profiling
names; the same code) do what the kernel does, in its order:

* parameters: ``key_len == 0`` without ``obj_hashfn``, or ``obj_hashfn`` without
  ``obj_cmpfn``, is -EINVAL, before the table is touched;
* the ``struct rhashtable`` is zeroed, its mutex initialised (owner 0, an empty wait list), its
  spinlock 0, and ``params`` copied into ``ht->p``; then ``p.min_size`` (u16) is rounded up to
  a power of two, ``max_elems`` is 2^31, ``p.max_size`` rounded down to a power of two (and
  ``max_elems`` becomes twice it when that is smaller), ``p.min_size`` raised to at least 4;
* the first table has ``max(roundup_pow_of_two(nelem_hint * 4 / 3), min_size)`` buckets with a
  hint, else ``max(64, min_size)``;
* ``ht->key_len`` is ``p.key_len``; without ``params->hashfn`` the kernel stores its own hash
  function in ``p.hashfn``: ``jhash``, or, when the key length is a multiple of 4,
  ``rhashtable_jhash2`` with ``key_len`` counted in u32 words.  Neither is exported: the stored
  pointers are addresses of the emulator's models of them (callable, the Jenkins lookup3
  hashes of include/linux/jhash.h);
* the bucket table (``kvzalloc(sizeof(struct bucket_table) + size * 8)``) gets ``size``,
  ``nest`` 0, ``hash_rnd`` (get_random_u32: the machine's random stream), an empty
  ``walkers`` list, ``rcu.func`` = ~0 (rcu_head_init) and every bucket NULL: that is what
  INIT_RHT_NULLS_HEAD stores (the "nulls" end marker is made from the bucket's address when a
  bucket is read, ``rht_ptr``), so an inline ``rhashtable_lookup_fast`` finds nothing and
  ends; ``ht->tbl`` points at it, ``nelems`` is 0;
* ``run_work`` is INIT_WORK'd (off-queue "no pool" data, an empty entry, the function
  ``rht_deferred_worker``).  An empty table never schedules it; inline inserts schedule it
  (``schedule_work``, recorded by models/workqueue.py) once above 75% load, and running it
  (a flush) stops init naming it.  ``rhltable_init`` then sets ``ht.rhlist`` (even after
  -EINVAL, as the kernel does).

``rhashtable_free_and_destroy`` cancels ``run_work``, walks every bucket (the objects inline
inserts linked, and for rhlist tables each object's duplicate list) calling ``free_fn(obj,
arg)`` for each — none in an empty table — and frees the table; ``rhashtable_destroy`` is the
same without ``free_fn``.  A nested table or a ``future_tbl`` (only made by the resize worker
or ``rhashtable_insert_slow``, not modelled) stops the call by name.  ``rhashtable_insert_slow``
and the ``rhashtable_walk_*`` iterator are not modelled.

Offsets from the running kernel's BTF (Linux 6.1 and 6.12 agree).
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..layouts import layout
from ..registry import model
from .locking import _hang, init_list_head
from .random import random_bytes

LAYOUT = layout("rhashtable")
EINVAL = 22
HASH_DEFAULT_SIZE, HASH_MIN_SIZE = 64, 4
JHASH_INITVAL = 0xDEADBEEF
M32 = 0xFFFFFFFF


def _roundup_pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def _rounddown_pow2(n: int) -> int:
    return 1 << (n.bit_length() - 1)


# --- the kernel's hash functions (include/linux/jhash.h) ---------------------------------------
def _rol(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & M32


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    for x, y, z, k in ((0, 2, 1, 4), (1, 0, 2, 6), (2, 1, 0, 8), (0, 2, 1, 16), (1, 0, 2, 19),
                       (2, 1, 0, 4)):
        v = [a, b, c]
        v[x] = ((v[x] - v[y]) & M32) ^ _rol(v[y], k)
        v[y] = (v[y] + v[z]) & M32
        a, b, c = v
    return a, b, c


def _final(a: int, b: int, c: int) -> int:
    for x, y, k in ((2, 1, 14), (0, 2, 11), (1, 0, 25), (2, 1, 16), (0, 2, 4), (1, 0, 14),
                    (2, 1, 24)):
        v = [a, b, c]
        v[x] = ((v[x] ^ v[y]) - _rol(v[y], k)) & M32
        a, b, c = v
    return c


def jhash(key: bytes, initval: int) -> int:
    n = len(key)
    a = b = c = (JHASH_INITVAL + n + initval) & M32
    while n > 12:
        a = (a + int.from_bytes(key[0:4], "little")) & M32
        b = (b + int.from_bytes(key[4:8], "little")) & M32
        c = (c + int.from_bytes(key[8:12], "little")) & M32
        a, b, c = _mix(a, b, c)
        key, n = key[12:], n - 12
    if n == 0:
        return c
    tail = key.ljust(12, b"\0")
    a = (a + int.from_bytes(tail[0:4], "little")) & M32
    b = (b + int.from_bytes(tail[4:8], "little")) & M32
    c = (c + int.from_bytes(tail[8:12], "little")) & M32
    return _final(a, b, c)


def jhash2(words: list[int], initval: int) -> int:
    n = len(words)
    a = b = c = (JHASH_INITVAL + (n << 2) + initval) & M32
    while n > 3:
        a, b, c = (a + words[0]) & M32, (b + words[1]) & M32, (c + words[2]) & M32
        a, b, c = _mix(a, b, c)
        words, n = words[3:], n - 3
    if n == 0:
        return c
    w = list(words) + [0] * (3 - n)
    return _final((a + w[0]) & M32, (b + w[1]) & M32, (c + w[2]) & M32)


def _jhash_fn(emu, key, length, seed):
    return jhash(emu.read(key, length & M32), seed & M32)


def _jhash2_fn(emu, key, length, seed):
    n = length & M32
    raw = emu.read(key, 4 * n)
    return jhash2([int.from_bytes(raw[i:i + 4], "little") for i in range(0, 4 * n, 4)], seed & M32)


def _deferred_worker(emu, work):
    raise Unmodelled("rht_deferred_worker (resizing an rhashtable)", what=emu.what)


KERNEL_FNS = {"jhash": _jhash_fn, "rhashtable_jhash2": _jhash2_fn,
              "rht_deferred_worker": _deferred_worker}


def kernel_fn(emu, name: str, fn=None) -> int:
    """The address the kernel's non-exported function ``name`` (lib/rhashtable.c's, or ``fn``
    for another file's) has in this sandbox (Emulator.kernel_fn: a trap running its model, at
    an address kept for the machine's life, as pointers in persistent memory need)."""
    if fn is not None:
        KERNEL_FNS.setdefault(name, fn)
    return emu.kernel_fn(name, KERNEL_FNS[name])


# --- set-up -------------------------------------------------------------------------------------
def work_no_pool(emu) -> int:
    """WORK_DATA_INIT(): WORK_STRUCT_NO_POOL, the off-queue pool id 2^31-1 above the 4 struct
    flag bits and the CANCELING (6.1) / BH (6.12) bit: shift 5 in 6.1; 6.9's disable depth
    (16 bits) sits below the pool id: shift 21 in 6.12."""
    shift = 21 if tuple(getattr(emu, "kernel_version", (6, 1))[:2]) >= (6, 9) else 5
    return ((1 << 31) - 1) << shift


def _bucket_table_alloc(emu, nbuckets: int) -> int:
    o = LAYOUT.of(emu)
    tbl = emu.kmalloc(o["bucket_table", "sizeof"] + 8 * nbuckets, zero=True)
    emu.write_u(tbl + o["bucket_table", "size"], 4, nbuckets)
    init_list_head(emu, tbl + o["bucket_table", "walkers"])
    emu.write_u(tbl + o["bucket_table", "rcu"] + o["callback_head", "func"], 8, (1 << 64) - 1)
    emu.write_u(tbl + o["bucket_table", "hash_rnd"], 4,
                int.from_bytes(random_bytes(emu, 4), "little"))
    # buckets: NULL each (INIT_RHT_NULLS_HEAD), already zero
    return tbl


def init_table(emu, ht: int, params: int) -> int:
    o = LAYOUT.of(emu)
    P = "rhashtable_params"
    key_len = emu.read_u(params + o[P, "key_len"], 2)
    obj_hashfn = emu.read_u(params + o[P, "obj_hashfn"], 8)
    obj_cmpfn = emu.read_u(params + o[P, "obj_cmpfn"], 8)
    if (not key_len and not obj_hashfn) or (obj_hashfn and not obj_cmpfn):
        return -EINVAL
    emu.write(ht, bytes(o["rhashtable", "sizeof"]))
    mtx = ht + o["rhashtable", "mutex"]
    init_list_head(emu, mtx + o["mutex", "wait_list"])
    p = ht + o["rhashtable", "p"]
    emu.write(p, emu.read(params, o[P, "sizeof"]))
    min_size = emu.read_u(params + o[P, "min_size"], 2)
    if min_size:
        emu.write_u(p + o[P, "min_size"], 2, _roundup_pow2(min_size) & 0xFFFF)
    max_elems = 1 << 31
    max_size = emu.read_u(params + o[P, "max_size"], 4)
    if max_size:
        max_size = _rounddown_pow2(max_size)
        emu.write_u(p + o[P, "max_size"], 4, max_size)
        if max_size < max_elems // 2:
            max_elems = max_size * 2
    emu.write_u(ht + o["rhashtable", "max_elems"], 4, max_elems)
    min_size = max(emu.read_u(p + o[P, "min_size"], 2), HASH_MIN_SIZE)
    emu.write_u(p + o[P, "min_size"], 2, min_size)
    hint = emu.read_u(p + o[P, "nelem_hint"], 2)
    size = max(_roundup_pow2(hint * 4 // 3), min_size) if hint else max(HASH_DEFAULT_SIZE,
                                                                         min_size)
    ht_key_len = key_len
    if not emu.read_u(params + o[P, "hashfn"], 8):
        fn = "jhash"
        if not key_len & 3:
            ht_key_len, fn = key_len // 4, "rhashtable_jhash2"
        emu.write_u(p + o[P, "hashfn"], 8, kernel_fn(emu, fn))
    emu.write_u(ht + o["rhashtable", "key_len"], 4, ht_key_len)
    tbl = _bucket_table_alloc(emu, size)
    emu.write_u(ht + o["rhashtable", "tbl"], 8, tbl)
    w = ht + o["rhashtable", "run_work"]
    emu.write_u(w + o["work_struct", "data"], 8, work_no_pool(emu))
    init_list_head(emu, w + o["work_struct", "entry"])
    emu.write_u(w + o["work_struct", "func"], 8, kernel_fn(emu, "rht_deferred_worker"))
    emu.note(f"{size} buckets")
    return 0


@model("rhashtable_init", "rhashtable_init_noprof")
def rhashtable_init(emu, ht, params):
    return init_table(emu, ht, params)


@model("rhltable_init", "rhltable_init_noprof")
def rhltable_init(emu, hlt, params):
    o = LAYOUT.of(emu)
    err = init_table(emu, hlt + o["rhltable", "ht"], params)
    emu.write_u(hlt + o["rhltable", "ht"] + o["rhashtable", "rhlist"], 1, 1)
    return err


# --- tear-down ----------------------------------------------------------------------------------
def table_objects(emu, ht: int) -> list[int]:
    """Every object in the table (rht_obj of each chained rhash_head, and of each rhlist
    duplicate), bucket by bucket, as rhashtable_free_and_destroy visits them."""
    o = LAYOUT.of(emu)
    tbl = emu.read_u(ht + o["rhashtable", "tbl"], 8)
    if emu.read_u(tbl + o["bucket_table", "nest"], 4):
        raise Unmodelled(f"{emu._model_name} (a nested bucket table)", what=emu.what)
    head_off = emu.read_u(ht + o["rhashtable", "p"] + o["rhashtable_params", "head_offset"], 2)
    rhlist = emu.read_u(ht + o["rhashtable", "rhlist"], 1)
    base = tbl + o["bucket_table", "buckets"]
    out = []
    for i in range(emu.read_u(tbl + o["bucket_table", "size"], 4)):
        pos = emu.read_u(base + 8 * i, 8) & ~1          # bit 0: the bucket's bit spinlock
        while pos and not pos & 1:                      # an odd pointer is the nulls marker
            nxt = emu.read_u(pos + o["rhash_head", "next"], 8)
            lst = pos
            while lst:
                out.append(lst - head_off)
                lst = emu.read_u(lst + o["rhlist_head", "next"], 8) if rhlist else 0
            pos = nxt
    return out


def free_and_destroy(emu, ht: int, free_fn: int, arg: int) -> None:
    from .workqueue import _cancel
    o = LAYOUT.of(emu)
    _cancel(emu, ht + o["rhashtable", "run_work"])      # cancel_work_sync
    mtx = ht + o["rhashtable", "mutex"] + o["mutex", "owner"]
    if emu.read_u(mtx, 8) & ~7:
        raise _hang(emu, "mutex_lock")
    tbl = emu.read_u(ht + o["rhashtable", "tbl"], 8)
    if emu.read_u(tbl + o["bucket_table", "future_tbl"], 8):
        raise Unmodelled(f"{emu._model_name} (a table being resized: future_tbl)",
                         what=emu.what)
    objs = table_objects(emu, ht) if free_fn else []
    for obj in objs:
        emu.call_module(free_fn, (obj, arg))
    if tbl in emu.heap.allocs:
        emu.kfree(tbl)
    if free_fn:
        emu.note(f"{len(objs)} freed")


@model("rhashtable_free_and_destroy")
def rhashtable_free_and_destroy(emu, ht, free_fn, arg):
    free_and_destroy(emu, ht, free_fn, arg)


@model("rhashtable_destroy")
def rhashtable_destroy(emu, ht):
    free_and_destroy(emu, ht, 0, 0)
