"""lib/rhashtable.c's table set-up and tear-down (models/rhashtable.py) and the IP fragment
queue directories of net/ipv4/inet_fragment.c (models/inet.py): C snippets compiled as kernel
code that declare the 6.1 structs themselves and use the tables the way the inline helpers of
include/linux/rhashtable.h do, and the real nf_defrag_ipv6."""
from __future__ import annotations

import pytest

from kmodlab.emu import BudgetExceeded
from kmodlab.emu.models.rhashtable import jhash, jhash2
from test_emu_models import _exports, insmod, kernel, run, tree  # noqa: F401  (fixtures)
from test_emu_support import needs_gcc

EX = _exports(("rhashtable_init", 0xFFFFFFFF81641C80), ("rhltable_init", 0xFFFFFFFF81641F20),
              ("rhashtable_destroy", 0xFFFFFFFF81641AA0),
              ("rhashtable_free_and_destroy", 0xFFFFFFFF816418F0),
              ("inet_frags_init", 0xFFFFFFFF8189A6B0), ("inet_frags_fini", 0xFFFFFFFF8189A740),
              ("fqdir_init", 0xFFFFFFFF8189A7F0), ("fqdir_exit", 0xFFFFFFFF8189A8B0),
              ("get_random_u32", 0xFFFFFFFF8170B0A0))

STRUCTS = r'''
typedef unsigned int u32; typedef unsigned short u16; typedef unsigned char u8;
struct rhash_head { struct rhash_head *next; };
struct rhlist_head { struct rhash_head rhead; struct rhlist_head *next; };
struct rhashtable_params { u16 nelem_hint, key_len, key_offset, head_offset; u32 max_size;
    u16 min_size; u8 automatic_shrinking;
    u32 (*hashfn)(const void *, u32, u32); void *obj_hashfn, *obj_cmpfn; };
struct work_struct { long data; void *entry[2]; void (*func)(struct work_struct *); };
struct bucket_table { u32 size, nest, hash_rnd; void *walkers[2]; void *rcu[2];
    struct bucket_table *future_tbl;
    struct rhash_head *buckets[] __attribute__((aligned(64))); };
struct rhashtable { struct bucket_table *tbl; u32 key_len, max_elems;
    struct rhashtable_params p; u8 rhlist; struct work_struct run_work;
    struct { long owner; int wait_lock, osq; void *wait_list[2]; } mutex; int lock, nelems; };
int rhashtable_init(struct rhashtable *, const struct rhashtable_params *);
int rhltable_init(struct rhashtable *, const struct rhashtable_params *);
void rhashtable_destroy(struct rhashtable *);
void rhashtable_free_and_destroy(struct rhashtable *, void (*)(void *, void *), void *);
struct obj { u32 key; struct rhash_head node; };
#define NULLS(bkt) ((struct rhash_head *)((((unsigned long)(bkt)) >> 1) << 1 | 1))
static u32 rol(u32 x, int k) { return (x << k) | (x >> (32 - k)); }
/* jhash2 of one word, as include/linux/jhash.h inlines it */
static u32 jhash_1word(u32 w, u32 seed) {
    u32 a, b, c; a = b = c = 0xdeadbeef + 4 + seed; a += w;
    c ^= b; c -= rol(b, 14); a ^= c; a -= rol(c, 11); b ^= a; b -= rol(a, 25);
    c ^= b; c -= rol(b, 16); a ^= c; a -= rol(c, 4); b ^= a; b -= rol(a, 14);
    c ^= b; c -= rol(b, 24); return c; }
/* rhashtable_lookup_fast's walk: rht_ptr of the bucket, the chain up to the nulls marker */
static struct obj *lookup(struct rhashtable *ht, u32 key) {
    struct bucket_table *tbl = ht->tbl;
    for (;;) {
        u32 h = jhash_1word(key, tbl->hash_rnd) & (tbl->size - 1);
        struct rhash_head **bkt = &tbl->buckets[h];
        struct rhash_head *he = (struct rhash_head *)((unsigned long)*bkt & ~1UL);
        if (!he) he = NULLS(bkt);
        for (; !((unsigned long)he & 1); he = he->next) {
            struct obj *o = (struct obj *)((char *)he - ht->p.head_offset);
            if (o->key == key) return o;
        }
        if (he != NULLS(bkt)) continue;           /* moved to another chain: restart */
        tbl = tbl->future_tbl;
        if (!tbl) return 0;
    }
}
/* __rhashtable_insert_fast without the locking: at the head of its bucket */
static void insert(struct rhashtable *ht, struct obj *o) {
    struct bucket_table *tbl = ht->tbl;
    struct rhash_head **bkt = &tbl->buckets[jhash_1word(o->key, tbl->hash_rnd) & (tbl->size - 1)];
    o->node.next = *bkt ? *bkt : NULLS(bkt);
    *bkt = &o->node; ht->nelems++;
}
'''


def test_jhash_is_lookup3():
    """jhash is Bob Jenkins' lookup3 hashlittle (the published test vectors); jhash2 of words
    is jhash of their little-endian bytes when the length is a multiple of 12 bytes."""
    assert jhash(b"", 0) == 0xDEADBEEF
    assert jhash(b"Four score and seven years ago", 0) == 0x17770551
    assert jhash(b"Four score and seven years ago", 1) == 0xCD628161
    words = [0x01020304, 0xA0B0C0D0, 7]
    raw = b"".join(w.to_bytes(4, "little") for w in words)
    assert jhash2(words, 99) == jhash(raw, 99)


@needs_gcc
def test_empty_table_lookup_finds_nothing_and_insert_then_destroy_frees_each():
    """rhashtable_init: ht->tbl is a table of 64 NULL buckets (the nulls marker is made from
    the bucket's address), so an inline lookup ends with NULL; objects linked by an inline
    insert are found, and rhashtable_free_and_destroy calls free_fn once for each (an empty
    table: never) and frees the table."""
    src = STRUCTS + r'''
    struct rhashtable ht; struct obj a = { 7 }, b = { 9 }; void *freed[4]; int nfreed; long seen[8];
    static const struct rhashtable_params P = { .key_len = 4, .head_offset = 8,
        .key_offset = 0, .automatic_shrinking = 1 };
    static void fr(void *p, void *arg) { freed[nfreed++] = p; seen[7] = (long)arg; }
    long f(void) {
        int r = rhashtable_init(&ht, &P);
        struct bucket_table *t = ht.tbl; int nz = 0;
        for (u32 i = 0; i < t->size; i++) nz += t->buckets[i] != 0;
        seen[0] = t->size; seen[1] = nz; seen[2] = (long)lookup(&ht, 7);
        seen[3] = t->walkers[0] == &t->walkers[0] && t->nest == 0 && !t->future_tbl;
        insert(&ht, &a); insert(&ht, &b);
        seen[4] = lookup(&ht, 7) == &a && lookup(&ht, 9) == &b && lookup(&ht, 8) == 0;
        rhashtable_free_and_destroy(&ht, fr, (void *)0x55);
        return r;
    }
    long g(void) { int r = rhashtable_init(&ht, &P); rhashtable_free_and_destroy(&ht, fr, 0);
                   rhashtable_init(&ht, &P); rhashtable_destroy(&ht); return r * 10 + nfreed; }'''
    ret, _log, emu, b = run(src, EX)
    seen = [b.mm.read_u64(b.syms["seen"] + 8 * i) for i in range(8)]
    assert ret == 0
    assert seen[:5] == [64, 0, 0, 1, 1]
    freed = {b.mm.read_u64(b.syms["freed"] + 8 * i) for i in range(2)}
    assert b.mm.read_u(b.syms["nfreed"], 4) == 2 and seen[7] == 0x55
    assert freed == {b.syms["a"], b.syms["b"]}
    tbl = b.mm.read_u64(b.syms["ht"])
    assert tbl not in emu.heap.allocs                   # the table was freed
    ret, *_ = run(src, EX, fn="g")
    assert ret == 0


@needs_gcc
def test_parameter_rules_and_rounding():
    """-EINVAL for key_len 0 without obj_hashfn, and for obj_hashfn without obj_cmpfn (the
    table untouched; rhltable_init still sets rhlist); min_size rounded up to a power of two
    and at least 4, max_size rounded down (max_elems twice it), the bucket count from
    nelem_hint * 4 / 3 or 64; the default hashfn: jhash (key_len kept) or, for a multiple of 4
    bytes, rhashtable_jhash2 with key_len in words; a given hashfn is kept."""
    src = STRUCTS + r'''
    struct rhashtable h[8]; long out[32];
    static u32 myhash(const void *k, u32 l, u32 s) { return 0; }
    static int cmp(void) { return 0; }
    struct rhashtable_params ps[8] = {
        { .key_len = 0 },                                          /* -EINVAL */
        { .key_len = 4, .obj_hashfn = (void *)myhash },            /* -EINVAL */
        { .key_len = 6, .nelem_hint = 100, .min_size = 5, .max_size = 1000 },
        { .key_len = 8, .min_size = 100 },
        { .key_len = 12, .hashfn = myhash, .nelem_hint = 1 },
        { .obj_hashfn = (void *)myhash, .obj_cmpfn = (void *)cmp },
    };
    long f(void) {
        h[0].key_len = 1234;
        out[0] = rhashtable_init(&h[0], &ps[0]); out[1] = h[0].key_len;
        out[2] = rhltable_init(&h[1], &ps[1]); out[3] = h[1].rhlist;
        for (int i = 2; i < 6; i++) {
            int r = rhashtable_init(&h[i], &ps[i]);
            out[4 * i + 0] = r; out[4 * i + 1] = h[i].tbl->size;
            out[4 * i + 2] = h[i].p.min_size | (long)h[i].p.max_size << 16 | (long)h[i].max_elems << 32;
            out[4 * i + 3] = h[i].key_len;
        }
        out[24] = (long)h[2].p.hashfn; out[25] = (long)h[3].p.hashfn;
        out[26] = h[4].p.hashfn == myhash; out[27] = (long)h[5].p.hashfn;
        u32 k[2] = { 1, 2 };
        out[28] = h[3].p.hashfn(k, h[3].key_len, 5);
        out[29] = h[2].p.hashfn("abcdef", h[2].key_len, 5);
        out[30] = h[2].run_work.data;
        out[31] = h[2].mutex.wait_list[0] == &h[2].mutex.wait_list[0] && h[2].nelems == 0;
        return 0;
    }'''
    _r, _l, emu, b = run(src, EX)
    out = [b.mm.read_u64(b.syms["out"] + 8 * i) for i in range(32)]
    EINVAL = 2**64 - 22
    assert out[0] == EINVAL and out[1] == 1234           # untouched
    assert out[2] == EINVAL and out[3] == 1
    assert out[8:12] == [0, 256, 8 | 512 << 16 | 1024 << 32, 6]
    assert out[12:16] == [0, 128, 128 | 0 << 16 | (1 << 31) << 32, 2]
    assert out[16:20] == [0, 4, 4 | (1 << 31) << 32, 12]
    assert out[20:24] == [0, 64, 4 | (1 << 31) << 32, 0]
    names = {a: m.name for a, m in emu._traps.items()}
    assert names[out[24]] == "jhash"
    assert names[out[25]] == "rhashtable_jhash2"
    assert names[out[27]] == "rhashtable_jhash2"     # key_len 0: a multiple of 4
    assert out[26] == 1
    assert out[28] & 0xFFFFFFFF == jhash2([1, 2], 5)
    assert out[29] & 0xFFFFFFFF == jhash(b"abcdef", 5)
    assert out[30] == 0x7FFFFFFF << 5 and out[31] == 1     # INIT_WORK: WORK_STRUCT_NO_POOL


FRAGS = STRUCTS + r'''
struct completion { u32 done; struct { int lock; void *l[2]; } wait; };
struct inet_frags { u32 qsize; void *ctor, *dtor, *expire; void *cachep; const char *name;
    struct rhashtable_params rhash_params; int refcnt; struct completion completion; };
struct fqdir { long high_thresh, low_thresh; int timeout, max_dist; struct inet_frags *f;
    void *net; u8 dead; char pad[23]; struct rhashtable rhashtable; char pad2[56];
    long mem; struct work_struct destroy_work; void *free_list; };
int inet_frags_init(struct inet_frags *); void inet_frags_fini(struct inet_frags *);
int fqdir_init(struct fqdir **, struct inet_frags *, void *); void fqdir_exit(struct fqdir *);
static u32 kh(const void *k, u32 l, u32 s) { return 0; }
static int oc(void) { return 0; }
struct inet_frags fr = { .qsize = 200, .name = "sbx-frags",
    .rhash_params = { .head_offset = 0, .key_offset = 8, .key_len = 36, .hashfn = kh,
                      .obj_hashfn = (void *)kh, .obj_cmpfn = (void *)oc,
                      .automatic_shrinking = 1 } };
struct fqdir *fq; long out[8]; char net[64];
'''


@needs_gcc
def test_fqdir_init_exit_and_inet_frags_fini_runs_the_destroy_work():
    """fqdir_init: a zeroed fqdir with f and net, an empty rhashtable from f->rhash_params, a
    reference on f.  fqdir_exit queues destroy_work (fqdir_work_fn) on inet_frag_wq, not run;
    inet_frags_fini waits for it: the work destroys the table, drops the reference (the last
    completes f->completion) and frees the fqdir, and the frags cache is destroyed."""
    src = FRAGS + r'''
    long f(void) {
        out[0] = inet_frags_init(&fr); out[1] = fqdir_init(&fq, &fr, net);
        out[2] = fr.refcnt; out[3] = fq->f == &fr && fq->net == net && fq->rhashtable.tbl &&
            fq->rhashtable.tbl->size == 64 && fq->rhashtable.p.hashfn == kh;
        fqdir_exit(fq);
        out[4] = fq->destroy_work.data & 1;
        return 0;
    }
    long g(void) { inet_frags_fini(&fr); out[5] = fr.refcnt; out[6] = (long)fr.cachep;
                   out[7] = fr.completion.done; return 0; }
    long h(void) { inet_frags_init(&fr); fqdir_init(&fq, &fr, net); inet_frags_fini(&fr);
                   return 0; }'''
    state = {}
    _r, _l, emu, b = run(src, EX, state=state)
    out = [b.mm.read_u64(b.syms["out"] + 8 * i) for i in range(8)]
    assert out[:5] == [0, 0, 2, 1, 1]
    (w,) = state["work"].values()
    assert emu.symbol(w["func"]) == "fqdir_work_fn"
    assert emu.calls[-1].note == "fqdir_work_fn on inet_frag_wq"
    fqa = b.mm.read_u64(b.syms["fq"])
    tbl = b.mm.read_u64(fqa + 64)
    # exit's work runs when inet_frags_fini waits (the same machine, another call)
    from kmodlab.emu import Emulator
    emu2 = Emulator(b.mm, emu.heap, EX, printk=lambda *a: None, state=state)
    emu2.call(b.syms["g"])
    out = [b.mm.read_u64(b.syms["out"] + 8 * i) for i in range(8)]
    assert out[5:8] == [0, 0, 0]                         # no reference left, cache destroyed
    assert state["work"] == {}
    assert fqa not in emu2.heap.allocs and tbl not in emu2.heap.allocs
    # a namespace still holding its fqdir: inet_frags_fini waits forever
    with pytest.raises(BudgetExceeded):
        run(src, EX, fn="h")


def test_nf_defrag_ipv6_sets_up_its_fqdir(kernel, machine, tree):  # noqa: F811
    """The real nf_defrag_ipv6: its pernet init's fqdir_init (init_net's nf_frag.fqdir, a
    64-bucket table) no longer stops init, which returns 0 as on the real 6.1 kernel; rmmod
    either goes through (fqdir_exit's work run by inet_frags_fini: nothing left pending) or
    stops before the fragment models."""
    r = insmod(kernel, tree, "nf_defrag_ipv6")
    assert "fqdir_init" not in (r.reason or ""), r.reason
    if r.errno != 0:
        pytest.skip(f"init stops later: {r.reason}")
    d = kernel.delete_module("nf_defrag_ipv6", 0)
    if d.errno == 0:
        assert not machine.emu_state.get("work")
    else:
        why = d.reason or ""
        assert not any(n in why for n in ("fqdir", "inet_frags", "rhashtable")), why
