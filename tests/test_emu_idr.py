"""ID allocators and the XArray (emu/models/idr.py): lib/idr.c, lib/xarray.c.

C snippets for the rules (the structures laid out as Linux 6.1's: struct xarray {xa_lock 0,
xa_flags 4, xa_head 8}; struct idr {idr_rt, idr_base 16, idr_next 20}; XA_FLAGS_MARK(m) at
__GFP_BITS_SHIFT 27), and real Debian modules whose init or exit calls them.
"""
from __future__ import annotations

import pytest

from kmodlab.emu import Unmodelled
from test_emu_models import _exports, insmod, kernel, run, tree  # noqa: F401  (fixtures)
from test_emu_support import needs_gcc

NAMES = ["idr_alloc", "idr_alloc_u32", "idr_alloc_cyclic", "idr_find", "idr_remove",
         "idr_replace", "idr_get_next", "idr_get_next_ul", "idr_for_each", "idr_destroy",
         "idr_preload", "radix_tree_tagged", "ida_alloc_range", "ida_free", "ida_destroy",
         "xa_load", "xa_store", "__xa_store", "__xa_insert", "xa_erase", "__xa_erase",
         "__xa_alloc", "__xa_alloc_cyclic", "__xa_cmpxchg", "xa_find", "xa_find_after",
         "xa_destroy", "xa_set_mark", "xa_clear_mark", "xa_get_mark"]
EX = _exports(*[(n, 0xFFFFFFFF819F0000 + 0x40 * i) for i, n in enumerate(NAMES)])

HEADER = r'''
struct xarray { unsigned int lock, flags; void *head; };
struct idr { struct xarray rt; unsigned int base, next; };
struct ida { struct xarray xa; };
struct xa_limit { unsigned int max, min; };
#define MARK(m) ((1u << 27) << (m))
#define XA_FLAGS_ALLOC (4u | MARK(0))
#define XA_FLAGS_ALLOC1 (4u | 8u)
#define IDR_RT_MARKER (4u | MARK(0))
#define ERR(e) ((void *)(long)(e))
int idr_alloc(struct idr *, void *, int, int, unsigned int);
int idr_alloc_u32(struct idr *, void *, unsigned int *, unsigned long, unsigned int);
int idr_alloc_cyclic(struct idr *, void *, int, int, unsigned int);
void *idr_find(const struct idr *, unsigned long);
void *idr_remove(struct idr *, unsigned long);
void *idr_replace(struct idr *, void *, unsigned long);
void *idr_get_next(struct idr *, int *);
void *idr_get_next_ul(struct idr *, unsigned long *);
int idr_for_each(const struct idr *, int (*)(int, void *, void *), void *);
void idr_destroy(struct idr *);
void idr_preload(unsigned int);
int radix_tree_tagged(const struct xarray *, unsigned int);
int ida_alloc_range(struct ida *, unsigned int, unsigned int, unsigned int);
void ida_free(struct ida *, unsigned int);
void ida_destroy(struct ida *);
void *xa_load(struct xarray *, unsigned long);
void *xa_store(struct xarray *, unsigned long, void *, unsigned int);
void *__xa_store(struct xarray *, unsigned long, void *, unsigned int);
int __xa_insert(struct xarray *, unsigned long, void *, unsigned int);
void *xa_erase(struct xarray *, unsigned long);
void *__xa_erase(struct xarray *, unsigned long);
int __xa_alloc(struct xarray *, unsigned int *, void *, struct xa_limit, unsigned int);
int __xa_alloc_cyclic(struct xarray *, unsigned int *, void *, struct xa_limit, unsigned int *, unsigned int);
void *__xa_cmpxchg(struct xarray *, unsigned long, void *, void *, unsigned int);
void *xa_find(struct xarray *, unsigned long *, unsigned long, unsigned int);
void *xa_find_after(struct xarray *, unsigned long *, unsigned long, unsigned int);
void xa_destroy(struct xarray *);
void xa_set_mark(struct xarray *, unsigned long, unsigned int);
void xa_clear_mark(struct xarray *, unsigned long, unsigned int);
int xa_get_mark(struct xarray *, unsigned long, unsigned int);
long r[40];
'''


def _r(b, n):
    return [_s64(b.mm.read_u(b.syms["r"] + 8 * i, 8)) for i in range(n)]


def _s64(v):
    return v - (1 << 64) if v >> 63 else v


@needs_gcc
def test_idr_alloc_find_remove_and_the_root_module_code_reads():
    """idr_alloc: the lowest free id in [start, end) (end <= 0: up to INT_MAX), -ENOSPC when
    none; idr_find/idr_remove/idr_replace (-ENOENT for a free id); xa_head is the entry itself
    while only id 0 is used, NULL when empty (idr_is_empty also asks radix_tree_tagged for
    IDR_FREE); idr_destroy empties it."""
    src = HEADER + r'''
    struct idr i = { { 0, IDR_RT_MARKER, 0 }, 0, 0 };
    int a, b, c;
    long f(void) {
        r[0] = idr_alloc(&i, &a, 0, 0, 0);
        r[1] = i.rt.head == &a;
        r[2] = idr_alloc(&i, &b, 0, 0, 0);
        r[3] = i.rt.head != 0 && i.rt.head != &a && i.rt.head != &b;
        r[4] = idr_alloc(&i, &c, 5, 6, 0);
        r[5] = idr_alloc(&i, &c, 5, 6, 0);
        r[6] = idr_find(&i, 1) == &b;
        r[7] = (long)idr_replace(&i, &c, 3);
        r[8] = idr_replace(&i, &a, 5) == &c;
        r[9] = idr_remove(&i, 0) == &a;
        r[10] = idr_remove(&i, 0) == 0;
        int id = 0; void *p = idr_get_next(&i, &id);
        r[11] = p == &b; r[12] = id;
        id = 2; p = idr_get_next(&i, &id); r[13] = p == &a; r[14] = id;
        r[15] = idr_alloc(&i, 0, 0, 0, 0);            /* a NULL pointer still takes an id */
        r[16] = idr_find(&i, 0) == 0;
        r[17] = idr_alloc(&i, &a, 0, 1, 0);
        r[18] = radix_tree_tagged(&i.rt, 0);
        idr_destroy(&i);
        r[19] = i.rt.head == 0;
        r[20] = radix_tree_tagged(&i.rt, 0);
        r[21] = idr_alloc(&i, &a, 0, 0, 0);
        return 0;
    }'''
    state = {}
    _ret, _log, _emu, b = run(src, EX, state=state)
    v = _r(b, 22)
    assert v[:6] == [0, 1, 1, 1, 5, -28]
    assert v[6] == 1 and v[7] == -2 and v[8] == 1
    assert v[9:15] == [1, 1, 1, 1, 1, 5]
    assert v[15:18] == [0, 1, -28]
    assert v[18] == 1                       # ids 2..4 are free below the top node's reach
    assert v[19:22] == [1, 1, 0]


@needs_gcc
def test_idr_base_cyclic_u32_and_for_each():
    """idr_base offsets every id; idr_alloc_cyclic starts at idr_next and wraps to start once;
    idr_alloc_u32 writes *nextid; idr_for_each calls back in id order and stops at the first
    non-zero return."""
    src = HEADER + r'''
    struct idr i = { { 0, IDR_RT_MARKER, 0 }, 1, 0 }, c = { { 0, IDR_RT_MARKER, 0 }, 0, 0 };
    int a;
    static int cb(int id, void *p, void *data) { long *s = data; *s = *s * 10 + id; return id == 3 ? 7 : 0; }
    long f(void) {
        r[0] = idr_alloc(&i, &a, 0, 0, 0);
        r[1] = idr_find(&i, 1) == &a;
        r[2] = idr_find(&i, 0) == 0;
        unsigned int n = 1; r[3] = idr_alloc_u32(&i, &a, &n, 10, 0); r[4] = n;
        r[5] = idr_alloc_cyclic(&c, &a, 0, 3, 0);
        r[6] = idr_alloc_cyclic(&c, &a, 0, 3, 0);
        r[7] = idr_alloc_cyclic(&c, &a, 0, 3, 0);
        r[8] = idr_alloc_cyclic(&c, &a, 0, 3, 0);
        idr_remove(&c, 1);
        r[9] = idr_alloc_cyclic(&c, &a, 0, 3, 0);
        r[10] = c.next;
        long s = 0; r[11] = idr_for_each(&i, cb, &s); r[12] = s;
        idr_alloc(&i, &a, 3, 4, 0); idr_alloc(&i, &a, 5, 6, 0);
        s = 0; r[13] = idr_for_each(&i, cb, &s); r[14] = s;
        unsigned long u = 4; r[15] = idr_get_next_ul(&i, &u) == &a; r[16] = u;
        return 0;
    }'''
    _ret, _log, _emu, b = run(src, EX, state={})
    v = _r(b, 17)
    assert v[:5] == [1, 1, 1, 0, 2]
    assert v[5:11] == [0, 1, 2, -28, 1, 2]
    assert v[11:13] == [0, 12]
    assert v[13:15] == [7, 123]
    assert v[15:17] == [1, 5]


@needs_gcc
def test_idr_preload_disables_preemption_until_the_inline_end():
    """idr_preload returns holding the per-CPU local_lock (preempt_disable); idr_preload_end
    is inline code: decl %gs:__preempt_count."""
    src = HEADER + r'''
    unsigned int seen[3];
    long f(void) {
        asm volatile("movl %%gs:__preempt_count, %0" : "=r"(seen[0]));
        idr_preload(0xcc0);
        asm volatile("movl %%gs:__preempt_count, %0" : "=r"(seen[1]));
        asm volatile("decl %%gs:__preempt_count" ::: "memory");
        asm volatile("movl %%gs:__preempt_count, %0" : "=r"(seen[2]));
        return 0;
    }'''
    _ret, _log, _emu, b = run(src, EX)
    seen = [b.mm.read_u(b.syms["seen"] + 4 * i, 4) for i in range(3)]
    assert seen == [0x80000000, 0x80000001, 0x80000000]


@needs_gcc
def test_ida_alloc_free_and_the_kernel_warning():
    """ida_alloc_range: the lowest free id in [min, max] (max < 0: INT_MAX), -ENOSPC for
    min < 0 or a full range; ids < 63 of chunk 0 live in xa_head as xa_mk_value(bits);
    ida_free of a free id WARNs with the kernel's text; of a negative id does nothing."""
    src = HEADER + r'''
    struct ida d = { { 0, 1u | XA_FLAGS_ALLOC, 0 } };
    long f(void) {
        r[0] = ida_alloc_range(&d, 0, ~0u, 0);
        r[1] = ida_alloc_range(&d, 0, ~0u, 0);
        r[2] = ida_alloc_range(&d, 5, 5, 0);
        r[3] = ida_alloc_range(&d, 5, 5, 0);
        r[4] = ida_alloc_range(&d, -1, 10, 0);
        r[5] = (long)d.xa.head;
        ida_free(&d, 0);
        r[6] = ida_alloc_range(&d, 0, ~0u, 0);
        ida_free(&d, 7);
        ida_free(&d, -3);
        r[7] = ida_alloc_range(&d, 100, 200, 0);
        r[8] = d.xa.head != 0 && ((long)d.xa.head & 1) == 0;
        ida_destroy(&d);
        r[9] = (long)d.xa.head;
        return 0;
    }'''
    _ret, log, _emu, b = run(src, EX, state={})
    v = _r(b, 10)
    assert v[:5] == [0, 1, 5, -28, -28]
    assert v[5] == ((1 | 2 | 32) << 1) | 1
    assert v[6] == 0 and v[7] == 100 and v[8] == 1 and v[9] == 0
    text = [t for _lvl, t in log]
    assert "ida_free called for id=7 which is not allocated." in text
    assert sum("ida_free called" in t for t in text) == 1


@needs_gcc
def test_xarray_store_insert_erase_find_and_marks():
    """xa_store returns the old entry; __xa_insert -EBUSY on a used index; xa_erase returns
    what was there; xa_find/xa_find_after walk present entries (or marked ones) and set the
    index; marks live on entries and in the root's xa_flags; xa_destroy empties."""
    src = HEADER + r'''
    struct xarray x = { 0, 0, 0 };
    int a, b, c;
    long f(void) {
        r[0] = xa_store(&x, 3, &a, 0) == 0;
        r[1] = x.head != 0;
        r[2] = xa_store(&x, 3, &b, 0) == &a;
        r[3] = __xa_insert(&x, 3, &c, 0);
        r[4] = __xa_insert(&x, 9, &c, 0);
        unsigned long i = 0; r[5] = xa_find(&x, &i, ~0ul, 8) == &b; r[6] = i;
        r[7] = xa_find_after(&x, &i, ~0ul, 8) == &c; r[8] = i;
        r[9] = xa_find_after(&x, &i, ~0ul, 8) == 0; r[10] = i;
        xa_set_mark(&x, 9, 1); xa_set_mark(&x, 4, 1);
        r[11] = xa_get_mark(&x, 9, 1); r[12] = xa_get_mark(&x, 4, 1);
        r[13] = (x.flags & MARK(1)) != 0;
        i = 0; r[14] = xa_find(&x, &i, ~0ul, 1) == &c; r[15] = i;
        xa_clear_mark(&x, 9, 1);
        r[16] = (x.flags & MARK(1)) != 0;
        r[17] = xa_erase(&x, 3) == &b;
        r[18] = xa_load(&x, 9) == &c && xa_load(&x, 3) == 0;
        r[19] = (long)xa_store(&x, 1, (void *)0x402, 0);   /* an internal entry: WARN_ON_ONCE */
        return 0;
    }
    long g(void) {
        xa_destroy(&x);
        return x.head == 0;
    }'''
    state = {}
    with pytest.raises(Unmodelled) as e:
        run(src, EX, state=state)
    assert "xa_store (WARN_ON_ONCE: internal entry 0x402)" in str(e.value)
    ret, _log, _emu, b = run(src.replace("r[19] = (long)xa_store(&x, 1, (void *)0x402, 0);", ""),
                             EX, state={})
    v = _r(b, 19)
    assert v[:5] == [1, 1, 1, -16, 0]
    assert v[5:11] == [1, 3, 1, 9, 1, 9]
    assert v[11:17] == [1, 0, 1, 1, 9, 0]
    assert v[17:19] == [1, 1]


@needs_gcc
def test_xarray_alloc_reserve_and_cyclic():
    """__xa_alloc: the lowest free index in the limit (-EBUSY when none), NULL reserves the
    index (xa_load NULL, __xa_insert -EBUSY, xa_find skips it); XA_FLAGS_ALLOC1 keeps 0 busy;
    __xa_alloc_cyclic returns 1 when it wrapped; __xa_alloc on an array that does not track
    free entries is the kernel's WARN_ON_ONCE (stops the run)."""
    src = HEADER + r'''
    struct xarray x = { 0, XA_FLAGS_ALLOC, 0 }, y = { 0, XA_FLAGS_ALLOC1, 0 }, z = { 0, 0, 0 };
    int a;
    long f(void) {
        unsigned int id = 99, next = 0;
        struct xa_limit l = { 2, 0 };
        r[0] = __xa_alloc(&x, &id, &a, l, 0); r[1] = id;
        r[2] = __xa_alloc(&x, &id, 0, l, 0); r[3] = id;
        r[4] = xa_load(&x, 1) == 0;
        r[5] = __xa_insert(&x, 1, &a, 0);
        unsigned long i = 1; r[6] = xa_find(&x, &i, ~0ul, 8) == 0;
        r[7] = __xa_alloc(&x, &id, &a, l, 0);
        r[8] = __xa_alloc(&x, &id, &a, l, 0);
        r[9] = __xa_alloc(&y, &id, &a, l, 0); r[10] = id;
        r[11] = __xa_alloc_cyclic(&y, &id, &a, l, &next, 0); r[12] = id; r[13] = next;
        xa_erase(&y, 1);
        r[14] = __xa_alloc_cyclic(&y, &id, &a, l, &next, 0); r[15] = id; r[16] = next;
        r[17] = xa_store(&x, 1, &a, 0) == 0;
        r[18] = (x.flags & MARK(0)) != 0;      /* 0..2 used: 3..63 free in the top node */
        xa_erase(&x, 1); xa_erase(&x, 2);
        r[20] = (x.flags & MARK(0)) == 0 && x.head == &a;   /* index 0 alone: no node */
        xa_erase(&x, 0);
        r[19] = (x.flags & MARK(0)) != 0 && x.head == 0;
        return 0;
    }
    long g(void) { unsigned int id; struct xa_limit l = { 10, 0 };
                   return __xa_alloc(&z, &id, &a, l, 0); }'''
    _ret, _log, _emu, b = run(src, EX, state={})
    v = _r(b, 21)
    assert v[:4] == [0, 0, 0, 1]
    assert v[4:7] == [1, -16, 1]
    assert v[7:9] == [0, -16]
    assert v[9:11] == [0, 1]
    assert v[11:14] == [0, 2, 3]
    assert v[14:17] == [1, 1, 2]
    assert v[17:21] == [1, 1, 1, 1]
    with pytest.raises(Unmodelled) as e:
        run(src, EX, fn="g", state={})
    assert "does not track free entries" in str(e.value)


@needs_gcc
def test_a_structure_changed_behind_the_models_is_named():
    """A struct xarray whose xa_head holds something the models did not store (a module
    walking or building nodes itself) stops the call; one reset to NULL is re-initialised."""
    src = HEADER + r'''
    struct xarray x = { 0, 0, (void *)0xffff888000000002 };
    int a;
    long f(void) { return (long)xa_load(&x, 0); }
    long g(void) { x.head = 0; xa_store(&x, 0, &a, 0); x.head = 0; return (long)xa_load(&x, 0); }'''
    with pytest.raises(Unmodelled) as e:
        run(src, EX)
    assert "holds entries the models did not store" in str(e.value)
    ret, *_ = run(src, EX, fn="g", state={})
    assert ret == 0


@needs_gcc
def test_612_marks_sit_at_gfp_bits_shift_25(profile_612):
    """Debian 6.12's __GFP_BITS_SHIFT is 25 (___GFP_LAST_BIT with CONFIG_SLAB_OBJ_EXT): its
    DEFINE_IDR has xa_flags 0x02000004, and IDR_FREE / XA_FLAGS_MARK(1) are read and written
    there (6.1's bit 27 would be wrong)."""
    src = HEADER.replace("(1u << 27)", "(1u << 25)") + r'''
    struct idr i = { { 0, IDR_RT_MARKER, 0 }, 0, 0 };
    struct xarray x = { 0, 0, 0 };
    int a;
    long f(void) {
        r[0] = radix_tree_tagged(&i.rt, 0);
        r[1] = idr_alloc(&i, &a, 0, 1, 0);
        r[2] = radix_tree_tagged(&i.rt, 0);           /* its only slot is taken */
        r[3] = i.rt.flags;
        xa_store(&x, 5, &a, 0); xa_set_mark(&x, 5, 1);
        r[4] = x.flags;
        return 0;
    }'''
    _ret, _log, _emu, b = run(src, EX, state={}, profile=profile_612)
    v = _r(b, 5)
    assert v == [1, 0, 0, 4, 1 << 26]


# --- real modules -------------------------------------------------------------------------------

def test_uio_exit_destroys_its_idr(kernel, machine, tree):
    """uio's exit calls idr_destroy on its static, empty DEFINE_IDR(uio_idr) (before this
    model the exit stopped there)."""
    r = insmod(kernel, tree, "uio")
    assert r.errno == 0, r.reason
    kernel.trace = True
    d = kernel.delete_module("uio", 0)
    assert d.errno == 0, d.reason
    calls = [c.name for c in d.details.get("calls", [])]
    assert "idr_destroy" in calls, calls
    assert not any("unmodelled" in line for line in d.log), d.log


def test_ib_core_init_gets_past_its_client_xarray(kernel, machine, tree):
    """ib_core's init registers its clients with __xa_insert into the static
    DEFINE_XARRAY_FLAGS(clients, XA_FLAGS_ALLOC) and marks each (xa_set_mark), then looks for
    devices with xa_find (none)."""
    kernel.trace = True
    r = insmod(kernel, tree, "ib_core")
    assert "__xa_insert" not in r.reason and "xa_set_mark" not in r.reason, r.reason
    calls = [c.name for c in r.details.get("calls", [])]
    assert calls.count("__xa_insert") >= 3 and calls.count("xa_set_mark") >= 3, calls[:60]
