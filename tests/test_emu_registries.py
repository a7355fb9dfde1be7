"""Registries behind the sweep's former top blockers (emu/models/net.py, mempool.py,
kobject.py, proc.py, crypto.py): C snippets compiled as kernel code, with the exports at their
Debian 6.1.0-56 addresses, and real Debian modules through the sandbox kernel."""
from __future__ import annotations

import pytest

from kmodlab.emu import Unmodelled
from test_emu_models import TREE, _exports, insmod, kernel, run, tree  # noqa: F401
from test_emu_support import EXPORTS, needs_gcc


class Image:
    """One build of a snippet, run function by function (each call a fresh Emulator on the
    same memory and the same ``state``, as init and exit are)."""
    def __init__(self, src, exports, state, **kw):
        from test_emu_support import build
        self.b, self.ex, self.state, self.kw = build(src, exports=exports), exports, state, kw
        self.log: list[str] = []

    def __call__(self, fn, **kw):
        from kmodlab.emu import Emulator
        emu = Emulator(self.b.mm, self.b.heap, self.ex, state=self.state,
                       printk=lambda lvl, t: self.log.append(t), **{**self.kw, **kw})
        return emu.call(self.b.syms[fn])

    def u(self, sym_or_addr, size=8, off=0):
        a = self.b.syms[sym_or_addr] if isinstance(sym_or_addr, str) else sym_or_addr
        return self.b.mm.read_u(a + off, size)


def _ex(*names):
    from kmodlab.profile import load_profile
    p = load_profile().exports
    out = []
    for n in names:
        e = p[n]
        out.append((n, e.addr, getattr(e, "kind", "text")))
    return _exports(*out)


# --- netdevice notifiers ------------------------------------------------------------------------
NB_SRC = r'''
struct notifier_block { int (*call)(struct notifier_block *, unsigned long, void *);
                        struct notifier_block *next; int priority; };
struct info { void *dev; void *extack; };
int register_netdevice_notifier(struct notifier_block *);
int unregister_netdevice_notifier(struct notifier_block *);
unsigned long events[16]; void *devs[16]; int n; int fail_on; void *fail_dev;
char fakedev[64];
static int cb(struct notifier_block *nb, unsigned long ev, void *p) {
    struct info *i = p; events[n] = ev; devs[n++] = i->dev;
    return (int)ev == fail_on && i->dev == fail_dev ? 0x8000 | (1 - (-16)) : 1; }
struct notifier_block nb = { .call = cb };
long f(void) { int a = register_netdevice_notifier(&nb), b = register_netdevice_notifier(&nb);
               return a * 100 + b; }
long g(void) { int a = unregister_netdevice_notifier(&nb), b = unregister_netdevice_notifier(&nb);
               return a * 100 + b; }
'''


@needs_gcc
def test_netdevice_notifier_on_a_machine_without_net_devices():
    """No net devices (not even lo): registration calls the notifier zero times; a second
    registration of the same block is -EEXIST with the kernel's warning; unregister twice:
    0, then -ENOENT."""
    ex = _ex("register_netdevice_notifier", "unregister_netdevice_notifier")
    state = {}
    ret, log, _e, b = run(NB_SRC, ex, state=state)
    assert ret == 0 * 100 - 17
    assert any("already registered" in t for _l, t in log)
    assert b.mm.read_u(b.syms["n"], 4) == 0
    assert len(state["notifiers"]["netdev"]) == 1
    ret, *_ = run(NB_SRC, ex, fn="g", state=state)
    assert ret == 0 * 100 - 2 and state["notifiers"]["netdev"] == []


@needs_gcc
def test_netdevice_notifier_replays_listed_devices_and_rolls_back():
    """The replay walks emu.state["netdevs"]: REGISTER then UP for an up device; a notifier
    error on REGISTER of the second device undoes the first (GOING_DOWN, DOWN, UNREGISTER),
    unchains the block and is returned."""
    from test_emu_support import build
    from kmodlab.emu import Emulator
    ex = _ex("register_netdevice_notifier", "unregister_netdevice_notifier")
    b = build(NB_SRC, exports=ex)
    dev1, dev2 = b.syms["fakedev"], b.syms["fakedev"] + 32
    state = {"netdevs": [{"dev": dev1, "net": 0, "up": True},
                         {"dev": dev2, "net": 0, "up": False}]}
    emu = Emulator(b.mm, b.heap, ex, printk=lambda *a: None, state=state)
    assert emu.call(b.syms["f"]) == -17
    n = b.mm.read_u(b.syms["n"], 4)
    ev = [b.mm.read_u(b.syms["events"] + 8 * i, 8) for i in range(n)]
    dv = [b.mm.read_u(b.syms["devs"] + 8 * i, 8) for i in range(n)]
    assert ev == [5, 1, 5] and dv == [dev1, dev1, dev2]
    assert emu.call(b.syms["g"]) == 0 * 100 - 2         # already unregistered: -ENOENT twice
    b.mm.write(b.syms["n"], bytes(4))
    b.mm.write(b.syms["fail_on"], (5).to_bytes(4, "little"))
    b.mm.write(b.syms["fail_dev"], dev2.to_bytes(8, "little"))
    emu = Emulator(b.mm, b.heap, ex, printk=lambda *a: None, state=state)
    assert emu.call(b.syms["f"]) == -16 * 100 - 16          # notifier_to_errno: -EBUSY, twice
    n = b.mm.read_u(b.syms["n"], 4)
    ev = [b.mm.read_u(b.syms["events"] + 8 * i, 8) for i in range(n)]
    assert ev == [5, 1, 5, 10, 2, 6] * 2                 # dev1 announced, then rolled back
    assert state["notifiers"]["netdev"] == []


# --- proto_register --------------------------------------------------------------------------
@needs_gcc
def test_proto_register_makes_the_sock_cache_and_an_index():
    src = r'''
    struct proto { void *ops[28]; unsigned int inuse_idx; void *more[14]; void *slab;
                   unsigned int obj_size, slab_flags, useroffset, usersize; void *orphan_count;
                   void *rsk_prot, *twsk_prot, *h, *owner; char name[32]; void *node[2];
                   void *diag_destroy; };
    _Static_assert(__builtin_offsetof(struct proto, slab) == 344, "slab");
    _Static_assert(__builtin_offsetof(struct proto, name) == 408, "name");
    _Static_assert(sizeof(struct proto) == 464, "size");
    int proto_register(struct proto *, int); void proto_unregister(struct proto *);
    struct proto a = { .name = "SBXA", .obj_size = 1000 }, b = { .name = "SBXB" };
    long f(void) { int x = proto_register(&a, 1), y = proto_register(&b, 0);
                   return x * 100 + y; }
    void g(void) { proto_unregister(&a); proto_unregister(&b); }'''
    ex = _ex("proto_register", "proto_unregister")
    state = {}
    im = Image(src, ex, state)
    assert im("f") == 0
    pa, pb = im.b.syms["a"], im.b.syms["b"]
    slab = im.u(pa, 8, 344)
    assert slab and im.u(pb, 8, 344) == 0
    assert im.u(slab, 4, 28) == 1000                              # object_size
    assert state["kmem_caches"][str(slab)] == "SBXA"
    assert [im.u(p, 4, 224) for p in (pa, pb)] == [0, 1]
    assert {p["name"] for p in state["proto"].values()} == {"SBXA", "SBXB"}
    im("g")
    assert state["proto"] == {} and state["kmem_caches"] == {} and im.u(pa, 8, 344) == 0
    with pytest.raises(Unmodelled):                               # list_add of a listed node
        run(src.replace("proto_register(&b, 0)", "proto_register(&a, 0)"), ex, state={})


# --- mempool ------------------------------------------------------------------------------------
@needs_gcc
def test_mempool_reserve_alloc_free_and_destroy():
    """mempool_create fills the reserve through alloc_fn (a module callback, and the kernel's
    mempool_alloc_slab on a kmem_cache); mempool_alloc prefers alloc_fn, mempool_free refills
    the reserve; destroy gives every element to free_fn."""
    src = r'''
    typedef void *(*afn)(unsigned int, void *); typedef void (*ffn)(void *, void *);
    struct mempool_s { int lock, min_nr, curr_nr; void **elements; void *pool_data;
                       afn alloc; ffn free; long wait[3]; };
    struct mempool_s *mempool_create(int, afn, ffn, void *);
    void mempool_destroy(struct mempool_s *);
    void *mempool_alloc_slab(unsigned int, void *); void mempool_free_slab(void *, void *);
    void *kmem_cache_create(const char *, unsigned int, unsigned int, unsigned long, void *);
    void *__kmalloc(unsigned long, unsigned int); void kfree(const void *);
    int allocs, frees; struct mempool_s *p1, *p2; void *cache;
    static void *my_alloc(unsigned int gfp, void *d) { allocs++; return __kmalloc((long)d, gfp); }
    static void my_free(void *e, void *d) { frees++; kfree(e); }
    long f(void) { p1 = mempool_create(3, my_alloc, my_free, (void *)40);
                   cache = kmem_cache_create("sbx_pool", 64, 0, 0, 0);
                   p2 = mempool_create(2, mempool_alloc_slab, mempool_free_slab, cache);
                   return p1->curr_nr * 10 + p2->curr_nr; }
    void g(void) { mempool_destroy(p1); mempool_destroy(p2); mempool_destroy(0); }'''
    ex = _ex("mempool_create", "mempool_destroy", "mempool_alloc_slab", "mempool_free_slab",
             "kmem_cache_create", "__kmalloc", "kfree")
    state = {}
    im = Image(src, ex, state)
    assert im("f") == 32
    assert im.u("allocs", 4) == 3 and len(state["mempools"]) == 2
    assert sum(1 for c in state["slab"].values() if c == im.u("cache")) == 2
    n_allocs = len(im.b.heap.allocs)
    im("g")
    assert im.u("frees", 4) == 3 and state["mempools"] == {}
    assert len(im.b.heap.allocs) == n_allocs - 3 - 2 - 2 * 2     # elements, arrays, pools


# --- kobjects -----------------------------------------------------------------------------------
@needs_gcc
def test_kobject_under_kernel_kobj_and_fs_kobj():
    src = r'''
    struct kobject { const char *name; void *entry[2]; struct kobject *parent; void *kset, *ktype,
                     *sd; unsigned int kref; unsigned int state; };
    extern struct kobject *kernel_kobj, *fs_kobj;
    struct kobject *kobject_create_and_add(const char *, struct kobject *);
    void kobject_put(struct kobject *);
    struct kobject *a, *b, *c;
    long f(void) { a = kobject_create_and_add("sbx", kernel_kobj);
                   b = kobject_create_and_add("sbx", kernel_kobj);
                   c = kobject_create_and_add("sbx", fs_kobj);
                   return (a != 0) * 100 + (b != 0) * 10 + (c != 0); }
    long g(void) { return kernel_kobj->kref; }
    void h(void) { kobject_put(a); kobject_put(c); }'''
    ex = _ex("kernel_kobj", "fs_kobj", "kobject_create_and_add", "kobject_put")
    state = {}
    im = Image(src, ex, state)
    assert im("f") == 101
    assert sorted(state["sysfs_dirs"]) == ["/fs/sbx", "/kernel/sbx"]
    assert "sysfs: cannot create duplicate filename '/kernel/sbx'" in im.log
    assert "kobject_create_and_add: kobject_add error: -17" in im.log
    a = im.u("a")
    assert im.b.mm.read(im.u(a), 4) == b"sbx\0" and im.u(a, 4, 56) == 1
    assert im("g") == 2                              # its child holds a reference
    im("h")
    assert state["sysfs_dirs"] == {} and a not in im.b.heap.allocs
    assert im("g") == 1


def test_configfs_adds_sys_kernel_config(kernel, machine, tree):  # noqa: F811
    r = insmod(kernel, tree, "configfs")
    assert r.errno == 0, r.reason
    assert list(machine.emu_state["sysfs_dirs"]) == ["/kernel/config"]
    assert kernel.delete_module("configfs", 0).errno == 0
    assert machine.emu_state["sysfs_dirs"] == {}


# --- procfs and sysctl --------------------------------------------------------------------------
@needs_gcc
def test_proc_entries_and_sysctl_tables():
    src = r'''
    struct ctl_table { const char *procname; void *data; int maxlen; unsigned short mode;
                       struct ctl_table *child; void *proc_handler; void *poll, *e1, *e2; };
    void *proc_mkdir(const char *, void *); void *proc_create(const char *, unsigned short,
                                                             void *, const void *);
    void remove_proc_entry(const char *, void *);
    void *register_sysctl(const char *, struct ctl_table *);
    void *register_sysctl_table(struct ctl_table *); void unregister_sysctl_table(void *);
    int handler(void) { return 0; }
    int v;
    struct ctl_table leaf[] = { { .procname = "sbx_knob", .data = &v, .maxlen = 4, .mode = 0644,
                                  .proc_handler = handler }, {} };
    struct ctl_table dir[] = { { .procname = "sbxdir", .mode = 0555, .child = leaf }, {} };
    struct ctl_table bad[] = { { .procname = "nohandler", .mode = 0644 }, {} };
    void *d, *e, *dup, *miss, *h1, *h2, *h3, *h4;
    void f(void) { d = proc_mkdir("fs/sbx", 0); e = proc_create("stats", 0, d, 0);
                   dup = proc_create("stats", 0444, d, 0); miss = proc_mkdir("nodir/x", 0);
                   h1 = register_sysctl("fs/sbx", leaf); h2 = register_sysctl("fs/sbx", leaf);
                   h3 = register_sysctl_table(dir); h4 = register_sysctl("fs", bad); }
    void g(void) { remove_proc_entry("stats", d); remove_proc_entry("fs/sbx", 0);
                   remove_proc_entry("stats", d == 0 ? 0 : 0);
                   unregister_sysctl_table(h1); unregister_sysctl_table(h3);
                   unregister_sysctl_table(0); }'''
    ex = _ex("proc_mkdir", "proc_create", "remove_proc_entry", "register_sysctl",
             "register_sysctl_table", "unregister_sysctl_table")
    state = {}
    im = Image(src, ex, state)
    im("f")
    b, log = im.b, im.log
    ptr = {n: b.mm.read_u(b.syms[n], 8) for n in ("d", "e", "dup", "miss", "h1", "h2", "h3", "h4")}
    assert ptr["d"] and ptr["e"] and not ptr["dup"] and not ptr["miss"]
    assert sorted(state["procfs"]) == ["fs/sbx", "fs/sbx/stats"]
    e = ptr["e"]
    assert b.mm.read_u(e + 168, 2) == 0o100444 and b.mm.read_u(e + 120, 8) == ptr["d"]
    assert b.mm.read(b.mm.read_u(e + 160, 8), 6) == b"stats\0"
    texts = log
    assert "proc_dir_entry 'sbx/stats' already registered" in texts
    assert ptr["h1"] and not ptr["h2"] and ptr["h3"] and not ptr["h4"]
    assert "sysctl duplicate entry: /fs/sbx/sbx_knob" in texts
    assert "sysctl table check failed: fs/nohandler No proc_handler" in texts
    assert sorted(p for h in state["sysctl"].values() for p in h) == \
        ["fs/sbx/sbx_knob", "sbxdir/sbx_knob"]
    im("g")
    assert state["procfs"] == {} and state["sysctl"] == {}
    assert "name 'stats'" in im.log                      # removed already: the kernel's WARN


def test_cdrom_and_fscache_register_sysctl_and_proc(kernel, machine, tree):  # noqa: F811
    r = insmod(kernel, tree, "cdrom")
    assert r.errno == 0, r.reason
    paths = [p for h in machine.emu_state["sysctl"].values() for p in h]
    assert "dev/cdrom/autoclose" in paths
    assert kernel.delete_module("cdrom", 0).errno == 0
    assert machine.emu_state["sysctl"] == {}
    r = insmod(kernel, tree, "fscache")
    assert r.errno == 0, r.reason
    assert "fs/fscache" in machine.emu_state["procfs"]
    assert kernel.delete_module("fscache", 0).errno == 0
    assert machine.emu_state["procfs"] == {}


# --- crypto_alloc_shash ---------------------------------------------------------------------
@needs_gcc
def test_crypto_alloc_shash_finds_registered_or_requests_module():
    """A registered shash is found by cra_name (highest priority) or driver name; the tfm
    carries descsize and the algorithm, init_tfm/exit_tfm run; a missing name asks modprobe for
    crypto-<name> and crypto-<name>-all, then ERR_PTR(-ENOENT); a built-in one is Unmodelled."""
    src = r'''
    struct crypto_alg { void *l[4]; unsigned int flags, blocksize, ctxsize, alignmask;
                        int priority; int refcnt; char name[128]; char driver[128];
                        char rest[384 - 312]; };
    struct shash_alg { void *fns[10]; unsigned int descsize, pad, digestsize, statesize;
                       struct crypto_alg base; };
    _Static_assert(__builtin_offsetof(struct shash_alg, base) == 96, "base");
    int crypto_register_shash(struct shash_alg *);
    void *crypto_alloc_shash(const char *, unsigned int, unsigned int);
    void crypto_destroy_tfm(void *, void *);
    int inits, exits;
    static int it(void *t) { inits++; return 0; } static void xt(void *t) { exits++; }
    static int dummy(void) { return 0; }
    struct shash_alg lo = { .fns = { dummy, dummy, dummy, 0, 0, 0, 0, 0, it, xt },
        .descsize = 24, .digestsize = 4, .base = { .priority = 100, .name = "sbxh",
        .driver = "sbxh-generic", .ctxsize = 16 } };
    struct shash_alg hi = { .fns = { dummy, dummy, dummy }, .descsize = 8, .digestsize = 4,
        .base = { .priority = 200, .name = "sbxh", .driver = "sbxh-fast" } };
    void *t1, *t2, *t3;
    long f(void) { crypto_register_shash(&lo); crypto_register_shash(&hi);
                   t1 = crypto_alloc_shash("sbxh", 0, 0);
                   t2 = crypto_alloc_shash("sbxh-generic", 0, 0);
                   t3 = crypto_alloc_shash("nosuch", 0, 0);
                   return (long)t3; }
    void g(void) { crypto_destroy_tfm(t2, (char *)t2 + 8); crypto_destroy_tfm(t3, 0); }
    long h(void) { return (long)crypto_alloc_shash("sha256", 0, 0); }'''
    ex = _ex("crypto_register_shash", "crypto_alloc_shash", "crypto_destroy_tfm")
    asked = []
    state = {}
    im = Image(src, ex, state, request_module=lambda n, w: asked.append(n) or 256)
    b = im.b
    assert im("f") == -2 and asked == ["crypto-nosuch", "crypto-nosuch-all"]
    t1, t2 = b.mm.read_u(b.syms["t1"], 8), b.mm.read_u(b.syms["t2"], 8)
    assert b.mm.read_u(t1 + 8 + 24, 8) == b.syms["hi"] + 96 and b.mm.read_u(t1, 4) == 8
    assert b.mm.read_u(t2 + 8 + 24, 8) == b.syms["lo"] + 96 and b.mm.read_u(t2, 4) == 24
    assert b.mm.read_u(b.syms["inits"], 4) == 1
    assert sorted(state["crypto_tfms"].values()) == ["sbxh-fast", "sbxh-generic"]
    im("g")
    assert b.mm.read_u(b.syms["exits"], 4) == 1 and t2 not in b.heap.allocs
    assert list(state["crypto_tfms"].values()) == ["sbxh-fast"]
    with pytest.raises(Unmodelled, match="built into vmlinux"):
        Image(src, ex, {}, request_module=lambda n, w: 256)("h")


# --- socket families ------------------------------------------------------------------------
def test_af_alg_registers_its_family_and_proto(kernel, machine, tree):  # noqa: F811
    """af_alg: proto_register(&alg_proto, 0) and sock_register(PF_ALG); exit undoes both."""
    r = insmod(kernel, tree, "af_alg")
    assert r.errno == 0, r.reason
    st = machine.emu_state
    assert list(st["net_families"]) == ["38"]
    assert [p["name"] for p in st["proto"].values()] == ["ALG"]
    assert any("NET: Registered PF_ALG protocol family" in l for l in kernel.dmesg())
    assert kernel.delete_module("af_alg", 0).errno == 0
    assert st["net_families"] == {} and st["proto"] == {}
    assert any("NET: Unregistered PF_ALG protocol family" in l for l in kernel.dmesg())


@needs_gcc
def test_sock_register_taken_and_out_of_range():
    src = r'''
    struct npf { int family; void *create, *owner; };
    int sock_register(const struct npf *); void sock_unregister(int);
    struct npf inet = { .family = 2 }, big = { .family = 46 }, x25 = { .family = 9 };
    int r[4];
    void f(void) { r[0] = sock_register(&inet); r[1] = sock_register(&big);
                   r[2] = sock_register(&x25); r[3] = sock_register(&x25); sock_unregister(9); }'''
    state = {}
    im = Image(src, _ex("sock_register", "sock_unregister"), state)
    im("f")
    assert [im.u(im.b.syms["r"] + 4 * i, 4) for i in range(4)] == \
        [x & 0xFFFFFFFF for x in (-17, -105, 0, -17)]
    assert "protocol 46 >= NPROTO(46)" in im.log and state["net_families"] == {}
    assert im.log.count("NET: Registered PF_X25 protocol family") == 2


# --- shrinkers --------------------------------------------------------------------------------
@needs_gcc
def test_shrinker_registered_never_called_and_unregistered():
    src = r'''
    struct shrinker { long (*count)(void *, void *); long (*scan)(void *, void *); long batch;
                      int seeks; unsigned int flags; void *list[2]; int id; long *nr_deferred; };
    int register_shrinker(struct shrinker *, const char *, ...);
    void unregister_shrinker(struct shrinker *);
    static long cnt(void *a, void *b) { return 0; }
    struct shrinker s = { .count = cnt, .scan = cnt, .seeks = 2, .flags = 2 },
                    m = { .count = cnt, .scan = cnt, .flags = 4 };
    long f(void) { return register_shrinker(&s, "sbx-%s", "x"); }
    void g(void) { unregister_shrinker(&s); unregister_shrinker(&s); }
    long h(void) { return register_shrinker(&m, "sbx"); }'''
    state = {}
    im = Image(src, _ex("register_shrinker", "unregister_shrinker"), state)
    assert im("f") == 0
    s = im.b.syms["s"]
    assert im.u(s, 4, 28) == 3 and im.u(s, 8, 56) in im.b.heap.allocs
    assert list(state["shrinkers"]) == [str(s)]
    nr = im.u(s, 8, 56)
    im("g")
    assert state["shrinkers"] == {} and im.u(s, 4, 28) == 2 and nr not in im.b.heap.allocs
    with pytest.raises(Unmodelled, match="memcg"):
        im("h")


# --- packet handlers, rw semaphores -----------------------------------------------------------
@needs_gcc
def test_dev_add_pack_and_init_rwsem():
    src = r'''
    struct packet_type { unsigned short type; _Bool ign; void *dev; void *func, *lf, *idm, *net,
                         *priv; void *list[2]; };
    struct rw_semaphore { long count, owner; int osq, wait_lock; void *wait_list[2]; };
    void dev_add_pack(struct packet_type *); void dev_remove_pack(struct packet_type *);
    void __init_rwsem(struct rw_semaphore *, const char *, void *);
    void down_write(struct rw_semaphore *); void up_write(struct rw_semaphore *);
    static int rcv(void) { return 0; }
    struct packet_type pt = { .type = 0xCA00, .func = rcv };       /* htons(0xca) */
    struct rw_semaphore sem = { .count = 99, .owner = 5 };
    void f(void) { dev_add_pack(&pt); __init_rwsem(&sem, "sem", 0); down_write(&sem);
                   up_write(&sem); }
    void g(void) { dev_remove_pack(&pt); dev_remove_pack(&pt); }'''
    state = {}
    im = Image(src, _ex("dev_add_pack", "dev_remove_pack", "__init_rwsem", "down_write",
                        "up_write"), state)
    im("f")
    assert [p["type"] for p in state["ptype"].values()] == [0xCA]
    sem = im.b.syms["sem"]
    assert im.u(sem, 8) == 0 and im.u(sem, 8, 24) == sem + 24 == im.u(sem, 8, 32)
    im("g")
    assert state["ptype"] == {} and any("not found" in t for t in im.log)


def test_hdlc_registers_its_packet_handler(kernel, machine, tree):  # noqa: F811
    r = insmod(kernel, tree, "hdlc")
    assert r.errno == 0, r.reason
    assert [p["type"] for p in machine.emu_state["ptype"].values()] == [0x19]  # ETH_P_HDLC
    assert kernel.delete_module("hdlc", 0).errno == 0
    assert machine.emu_state["ptype"] == {}


# --- init_net fields: gen (net_generic) and proc_net ------------------------------------------
@needs_gcc
def test_pernet_size_hangs_data_off_init_net_gen():
    """ops_init: a zeroed block of ops->size at init_net.gen->ptr[id] before ops->init runs
    (net_generic() is an inline the module reads itself); unregister frees it."""
    src = r'''
    struct pernet_operations { void *list[2]; int (*init)(void *); void (*pre_exit)(void *);
        void (*exit)(void *); void *exit_batch, *exit_batch_rtnl; unsigned int *id;
        unsigned long size; };
    struct net_generic { void *ptr[1]; };
    int register_pernet_device(struct pernet_operations *);
    void unregister_pernet_device(struct pernet_operations *);
    extern char init_net[];
    unsigned int myid; long *seen;
    static int pinit(void *net) {
        struct net_generic *g = *(struct net_generic **)((char *)net + 3144);
        seen = g->ptr[myid]; seen[1] = 42; return 0; }
    struct pernet_operations ops = { .init = pinit, .id = &myid, .size = 96 };
    int f(void) { return register_pernet_device(&ops); }
    void g(void) { unregister_pernet_device(&ops); }'''
    state = {}
    im = Image(src, _ex("register_pernet_device", "unregister_pernet_device", "init_net"),
               state)
    assert im("f") == 0
    blk = im.u("seen")
    assert blk in im.b.heap.allocs and im.u(blk, 8, 8) == 42
    assert im.u(state["net_generic"], 8, 8 * im.u("myid", 4)) == blk
    im("g")
    assert state["pernet"] == [] and blk not in im.b.heap.allocs


def test_ax25_proc_net_entries_family_and_packet_handler(kernel, machine, tree):  # noqa: F811
    r = insmod(kernel, tree, "ax25")
    assert r.errno == 0, r.reason
    st = machine.emu_state
    assert {"net/ax25", "net/ax25_route", "net/ax25_calls"} <= set(st["procfs"])
    assert list(st["net_families"]) == ["3"]                            # PF_AX25
    assert [p["type"] for p in st["ptype"].values()] == [0x0002]        # ETH_P_AX25
    assert kernel.delete_module("ax25", 0).errno == 0
    assert st["procfs"] == {} and st["net_families"] == {} and st["ptype"] == {}
    assert st["notifiers"]["netdev"] == []


def test_ocfs2_stackglue_kset_and_attribute_group(kernel, machine, tree):  # noqa: F811
    """kset_create_and_add("ocfs2", NULL, fs_kobj) and sysfs_create_group on it: /sys/fs/ocfs2
    with the group's files; exit removes them and the fs_kobj reference is given back."""
    r = insmod(kernel, tree, "ocfs2_stackglue")
    assert r.errno == 0, r.reason
    st = machine.emu_state
    assert st["sysfs_dirs"]["/fs/ocfs2"]["kind"] == "kset"
    files = sorted(st["sysfs_files"])
    assert files and all(f.startswith("/fs/ocfs2/") for f in files)
    assert "/fs/ocfs2/cluster_stack" in files
    assert st["sysfs_root_kref"]["fs"] == 2
    assert kernel.delete_module("ocfs2_stackglue", 0).errno == 0
    assert st["sysfs_dirs"] == {} and st["sysfs_files"] == {}
    assert st["sysfs_root_kref"]["fs"] == 1


def test_sunrpc_kobjects_in_its_kset_pernet_and_shrinker(kernel, machine, tree):  # noqa: F811
    """sunrpc: a kset under /sys/kernel holding two of its own kobjects (kobject_init_and_add
    with a kset and no parent), pernet data on init_net.gen, /proc/net/rpc, a shrinker.  Its
    exit starts with rpc_sysfs_exit — the kobjects' ktype->release runs (a kfree in the
    module), the kset goes — and goes on through ida_destroy (emu/models/idr.py) to the end."""
    r = insmod(kernel, tree, "sunrpc")
    assert r.errno == 0, r.reason
    st = machine.emu_state
    kinds = {p: d["kind"] for p, d in st["sysfs_dirs"].items()}
    assert kinds["/kernel/sunrpc"] == "kset"
    assert {"/kernel/sunrpc/rpc-clients", "/kernel/sunrpc/xprt-switches"} <= set(kinds)
    assert st["shrinkers"] and any(p["data"] for p in st["pernet"])
    assert "net/rpc" in st["procfs"]
    kernel.trace = True
    r = kernel.delete_module("sunrpc", 0)
    assert r.errno == 0 and not r.reason, r.reason
    names = [c.name for c in r.details["calls"]]
    assert "ida_destroy" in names
    assert names.count("kfree") >= 2 and names.count("kobject_put") == 2
    assert st["sysfs_dirs"] == {} and st["sysfs_root_kref"]["kernel"] == 1


# --- text search, quota formats, inetaddr notifiers ---------------------------------------------
def test_textsearch_quota_and_inetaddr_registries(kernel, machine, tree):  # noqa: F811
    st = machine.emu_state
    for mod in ("ts_kmp", "ts_bm", "quota_v1", "quota_v2", "via_velocity"):
        r = insmod(kernel, tree, mod)
        assert r.errno == 0, (mod, r.reason)
    assert sorted(st["textsearch"]) == ["bm", "kmp"]
    fmts = st["quota_formats"]                  # head first: QFMT_VFS_V1, QFMT_VFS_V0, OLD
    assert [machine.mm.read_u(f, 4) for f in fmts] == [4, 2, 1]
    assert [machine.mm.read_u(f + 24, 8) for f in fmts] == fmts[1:] + [0]
    assert len(st["notifiers"]["inetaddr"]) == 1
    for mod in ("ts_kmp", "quota_v1", "via_velocity"):
        assert kernel.delete_module(mod, 0).errno == 0, mod
    assert list(st["textsearch"]) == ["bm"] and st["quota_formats"] == fmts[:2]
    assert machine.mm.read_u(fmts[1] + 24, 8) == 0
    assert st["notifiers"]["inetaddr"] == []


def test_models_use_no_undefined_global():
    """Every global name a model's code loads exists in its module (a typo or a missing import
    would only show as a NameError inside some module's init, far into a run)."""
    import builtins
    import dis
    import importlib
    import pkgutil
    import types

    import kmodlab.emu.models as pkg

    def code_objects(co):
        yield co
        for c in co.co_consts:
            if isinstance(c, types.CodeType):
                yield from code_objects(c)

    missing = []
    for info in pkgutil.iter_modules(pkg.__path__):
        mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
        source = compile(open(mod.__file__).read(), mod.__file__, "exec")
        for co in code_objects(source):
            for ins in dis.get_instructions(co):
                if ins.opname == "LOAD_GLOBAL" and ins.argval not in vars(mod) \
                        and not hasattr(builtins, ins.argval):
                    missing.append(f"{info.name}.{co.co_name}: {ins.argval}")
    assert not missing, missing
