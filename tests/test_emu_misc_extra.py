"""lib/sort.c (emu/models/sort.py), lib/percpu_counter.c (emu/models/misc.py) and the panic
notifier chain (emu/models/notifier.py): C snippets for the rules, real Debian modules whose
init calls them.

The snippets' structs are laid out as Linux 6.1's: struct percpu_counter {raw_spinlock_t lock
0, s64 count 8, struct list_head list 16, s32 __percpu *counters 32}.
"""
from __future__ import annotations

import pytest

from kmodlab.emu import Unmodelled
from test_emu_models import _exports, insmod, kernel, run, tree  # noqa: F401  (fixtures)
from test_emu_support import needs_gcc

EX = _exports(("sort", 0xFFFFFFFF819E0000), ("sort_r", 0xFFFFFFFF819E0040),
              ("__percpu_counter_init", 0xFFFFFFFF819E0080),
              ("percpu_counter_destroy", 0xFFFFFFFF819E00C0),
              ("atomic_notifier_chain_register", 0xFFFFFFFF819E0100),
              ("atomic_notifier_chain_unregister", 0xFFFFFFFF819E0140),
              ("panic_notifier_list", 0xFFFFFFFF82D00000, "data"))

HEADER = r'''
typedef unsigned long size_t;
void sort(void *, size_t, size_t, int (*)(const void *, const void *), void (*)(void *, void *, int));
void sort_r(void *, size_t, size_t, int (*)(const void *, const void *, const void *),
            void (*)(void *, void *, int, const void *), const void *);
struct percpu_counter { int lock; long count; void *next, *prev; int *counters; };
int __percpu_counter_init(struct percpu_counter *, long, unsigned int, void *);
void percpu_counter_destroy(struct percpu_counter *);
struct nb { int (*call)(struct nb *, unsigned long, void *); struct nb *next; int priority; };
struct anh { int lock; struct nb *head; };
extern struct anh panic_notifier_list;
int atomic_notifier_chain_register(struct anh *, struct nb *);
int atomic_notifier_chain_unregister(struct anh *, struct nb *);
long r[64];
int nr;
'''


def _r(b, n):
    out = []
    for i in range(n):
        v = b.mm.read_u(b.syms["r"] + 8 * i, 8)
        out.append(v - (1 << 64) if v >> 63 else v)
    return out


@needs_gcc
def test_sort_calls_compare_and_swap_in_the_kernels_heapsort_order():
    """sort of {1, 2, 3} (4-byte elements) with a swap callback: Linux 6.1's bottom-up
    heapsort compares (2, 3) then (1, 3), swaps offsets 0/8 twice, compares (1, 2), swaps
    0/4 twice (worked out by hand from lib/sort.c)."""
    src = HEADER + r'''
    int a[3] = { 1, 2, 3 };
    char *base;
    static int cmp(const void *x, const void *y) {
        int p = *(const int *)x, q = *(const int *)y;
        r[nr++] = 100 + p * 10 + q; return p < q ? -1 : p > q;
    }
    static void swp(void *x, void *y, int size) {
        int t = *(int *)x; *(int *)x = *(int *)y; *(int *)y = t;
        r[nr++] = 1000 + ((char *)x - base) * 10 + ((char *)y - base) + size * 10000;
    }
    long f(void) { base = (char *)a; sort(a, 3, 4, cmp, swp);
                   r[nr++] = a[0] * 100 + a[1] * 10 + a[2]; return nr; }'''
    ret, _log, _emu, b = run(src, EX)
    assert ret == 8
    assert _r(b, 8) == [123, 113, 41008, 41008, 112, 41004, 41004, 123]


@needs_gcc
def test_sort_without_swap_and_sort_r_passes_priv():
    """Without a swap callback the kernel swaps the bytes itself; sort_r passes priv as the
    compare's third argument; fewer than two elements: no callback at all."""
    src = HEADER + r'''
    long v[7] = { 5, -3, 9, 0, 9, -7, 2 };
    int one[1] = { 4 };
    static int cmp(const void *x, const void *y, const void *priv) {
        long p = *(const long *)x, q = *(const long *)y;
        r[40] += priv == (void *)0x1234; nr++;
        return p < q ? -1 : p > q;
    }
    static int bad(const void *x, const void *y) { r[41]++; return 0; }
    long f(void) {
        sort_r(v, 7, 8, cmp, 0, (void *)0x1234);
        sort(one, 1, 4, bad, 0);
        for (int i = 0; i < 7; i++) r[i] = v[i];
        return nr; }'''
    ret, _log, _emu, b = run(src, EX)
    v = _r(b, 42)
    assert v[:7] == [-7, -3, 0, 2, 5, 9, 9]
    assert ret > 0 and v[40] == ret         # every compare got priv
    assert v[41] == 0


@needs_gcc
def test_percpu_counter_init_and_destroy():
    """__percpu_counter_init: lock 0, count = amount, counters → a zeroed per-CPU s32;
    destroy: list poisoned, counters NULL; a second destroy does nothing."""
    src = HEADER + r'''
    struct percpu_counter c = { 7, 0, 0, 0, 0 };
    long f(void) {
        r[0] = __percpu_counter_init(&c, -5, 0, 0);
        r[1] = c.lock; r[2] = c.count; r[3] = c.counters != 0;
        percpu_counter_destroy(&c);
        r[4] = c.counters == 0; r[5] = (long)c.next; r[6] = (long)c.prev;
        percpu_counter_destroy(&c);
        return 0; }'''
    state = {}
    _ret, _log, _emu, b = run(src, EX, state=state)
    v = _r(b, 7)
    assert v[:5] == [0, 0, -5, 1, 1]
    assert v[5] & (1 << 64) - 1 == 0xdead000000000100
    assert v[6] & (1 << 64) - 1 == 0xdead000000000122
    assert state["percpu_counters"] == [] and state["percpu_dyn"] == []


@needs_gcc
def test_panic_notifier_list_is_a_kernel_chain():
    """atomic_notifier_chain_register(&panic_notifier_list, nb): listed in the machine's
    panic chain (the head's bytes are not read); a second registration is -EEXIST with the
    kernel's warning; unregister twice: 0 then -ENOENT."""
    src = HEADER + r'''
    static int cb(struct nb *n, unsigned long e, void *d) { return 0; }
    struct nb n = { cb, 0, 0 };
    long f(void) {
        r[0] = atomic_notifier_chain_register(&panic_notifier_list, &n);
        r[1] = atomic_notifier_chain_register(&panic_notifier_list, &n);
        r[2] = atomic_notifier_chain_unregister(&panic_notifier_list, &n);
        r[3] = atomic_notifier_chain_unregister(&panic_notifier_list, &n);
        return 0; }'''
    state = {}
    _ret, log, _emu, b = run(src, EX, state=state)
    assert _r(b, 4) == [0, -17, 0, -2]
    assert any("already registered" in t for _lvl, t in log)
    assert state["notifiers"]["panic"] == []


# --- real modules ------------------------------------------------------------------------------

def test_ni_routing_sorts_its_route_tables(kernel, machine, tree):
    """ni_routing's init sorts its route tables with sort(): it and its dependents load."""
    r = insmod(kernel, tree, "ni_tiocmd")          # ni_routing first, as a dependency
    assert r.errno == 0, r.reason
    assert kernel.delete_module("ni_tiocmd", 0).errno == 0


@needs_gcc
def test_sort_with_a_null_compare_is_unmodelled():
    """The kernel would jump to address 0: the model refuses by name instead."""
    src = HEADER + r'''
    int a[2] = { 2, 1 };
    long f(void) { sort(a, 2, 4, 0, 0); return 0; }'''
    with pytest.raises(Unmodelled, match="sort"):
        run(src, EX)


def test_ledtrig_heartbeat_joins_the_panic_chain_and_leaves_it(kernel, machine, tree):
    r = insmod(kernel, tree, "ledtrig_heartbeat")
    assert r.errno == 0, r.reason
    assert len(machine.emu_state["notifiers"]["panic"]) == 1
    assert kernel.delete_module("ledtrig_heartbeat", 0).errno == 0
    assert machine.emu_state["notifiers"]["panic"] == []


def test_pvpanic_and_ibmasm_load(kernel, machine, tree):
    for name in ("pvpanic", "pvpanic_pci", "ibmasm"):
        r = insmod(kernel, tree, name) if name != "pvpanic_pci" else kernel.finit_module(
            tree[0][name], "", 0)
        assert r.errno == 0, (name, r.reason)
    assert len(machine.emu_state["notifiers"]["panic"]) == 2


def test_nfsd_initialises_its_percpu_counters(kernel, machine, tree):
    r = insmod(kernel, tree, "nfsd")
    assert r.errno == 0, r.reason
    counters = machine.emu_state["percpu_counters"]
    assert counters and len(set(counters)) == len(counters)


def test_serdev_drivers_join_the_serial_bus(kernel, machine, tree):
    """__serdev_device_driver_register: serdev's bus ("serial"), owner, async probing; listed
    in /sys/bus/serial/drivers; the machine has no serdev device, nothing probes; exit's
    driver_unregister takes it off.  6.1's serdev bus has no shutdown method: no warning."""
    r = insmod(kernel, tree, "surface_aggregator")
    assert r.errno == 0, r.reason
    assert "serial/surface_serial_hub" in machine.emu_state["driver"]["bus_driver"]
    assert "surface_serial_hub" in kernel.listdir("/sys/bus/serial/drivers")
    assert not any("needs updating" in line for line in r.log)
    r = insmod(kernel, tree, "gnss_sirf")
    assert r.errno == 0, r.reason
    assert "gnss-sirf" in kernel.listdir("/sys/bus/serial/drivers")
    assert kernel.delete_module("gnss_sirf", 0).errno == 0
    assert "gnss-sirf" not in kernel.listdir("/sys/bus/serial/drivers")


@needs_gcc
def test_serdev_register_sets_bus_owner_probe_type_and_warns_on_own_probe():
    """The embedded device_driver (Linux 6.1: name 0, bus 8, owner 16, probe_type 36, probe
    56, remove 72, shutdown 80) gets serdev's bus, the owner and PROBE_PREFER_ASYNCHRONOUS;
    a driver with its own .driver.probe is warned about (the bus has a probe)."""
    src = r'''
    struct dd { const char *name; void *bus, *owner; const char *mod_name; char sba; int probe_type;
                void *of, *acpi, *probe, *sync_state, *remove, *shutdown; long pad[10]; };
    struct sdrv { struct dd driver; void *probe, *remove; };
    int __serdev_device_driver_register(struct sdrv *, void *);
    static int p(void *d) { return 0; }
    struct sdrv a = { .driver = { .name = "sbx-a" } }, b = { .driver = { .name = "sbx-b", .probe = p } };
    long r[8];
    long f(void) {
        r[0] = __serdev_device_driver_register(&a, (void *)0x1234);
        r[1] = a.driver.bus != 0; r[2] = (long)a.driver.owner; r[3] = a.driver.probe_type;
        r[4] = __serdev_device_driver_register(&b, 0);
        r[5] = a.driver.bus == b.driver.bus;
        r[6] = __serdev_device_driver_register(&a, 0);
        return 0; }'''
    ex = _exports(("__serdev_device_driver_register", 0xFFFFFFFF819E0180))
    state = {}
    _ret, log, _emu, b = run(src, ex, state=state)
    v = [b.mm.read_u(b.syms["r"] + 8 * i, 8) for i in range(7)]
    assert v[:6] == [0, 1, 0x1234, 1, 0, 1]
    assert v[6] == (-16) & (1 << 64) - 1                  # -EBUSY: already registered
    texts = [t for _lvl, t in log]
    assert texts == ["Driver 'sbx-b' needs updating - please use bus_type methods",
                     "Error: Driver 'sbx-a' is already registered, aborting..."]
    assert set(state["driver"]["bus_driver"]) == {"serial/sbx-a", "serial/sbx-b"}


def test_async_tx_takes_a_dmaengine_reference(kernel, machine, tree):
    """async_tx's init: dmaengine_get (no DMA device in the machine), then its one line."""
    r = insmod(kernel, tree, "async_tx")
    assert r.errno == 0, r.reason
    assert "async_tx: api initialized (async)" in r.log
    assert machine.emu_state["dmaengine_refs"] == 1
    assert kernel.delete_module("async_tx", 0).errno == 0
    assert machine.emu_state["dmaengine_refs"] == 0


@needs_gcc
def test_srcu_init_read_lock_unlock_and_cleanup():
    """Linux 6.1's srcu_struct (srcu_idx at 120, sda at 192, 392 bytes): init → srcu_idx 0 and
    a zeroed per-CPU srcu_data; read_lock returns srcu_idx & 1 and counts this CPU's lock,
    read_unlock its unlock; cleanup with a reader inside is refused, after the unlock it frees
    the per-CPU data and NULLs sda."""
    src = r'''
    struct srcu { char a[120]; unsigned int idx; char b[68]; unsigned long *sda; char c[192]; };
    int init_srcu_struct(struct srcu *); void cleanup_srcu_struct(struct srcu *);
    int __srcu_read_lock(struct srcu *); void __srcu_read_unlock(struct srcu *, int);
    struct srcu s, t;
    long r[8];
    long f(void) {
        s.idx = 7;
        r[0] = init_srcu_struct(&s); r[1] = s.idx; r[2] = s.sda != 0;
        r[3] = __srcu_read_lock(&s);
        return 0; }
    long g(void) { __srcu_read_unlock(&s, 0); cleanup_srcu_struct(&s); r[4] = s.sda == 0; return 0; }
    long h(void) { cleanup_srcu_struct(&t); return 0; }
    long k(void) { init_srcu_struct(&t); __srcu_read_lock(&t); cleanup_srcu_struct(&t); return 0; }'''
    ex = _exports(("init_srcu_struct", 0xFFFFFFFF819E01C0),
                  ("cleanup_srcu_struct", 0xFFFFFFFF819E0200),
                  ("__srcu_read_lock", 0xFFFFFFFF819E0240),
                  ("__srcu_read_unlock", 0xFFFFFFFF819E0280))
    state = {}
    _ret, _log, emu, b = run(src, ex, state=state)
    assert [b.mm.read_u(b.syms["r"] + 8 * i, 8) for i in range(4)] == [0, 0, 1, 0]
    (rec,) = state["srcu"].values()
    from kmodlab.kernel.mm import PERCPU_BASE
    assert emu.read_u(PERCPU_BASE + rec["sda"], 8) == 1              # srcu_lock_count[0]
    assert emu.read_u(PERCPU_BASE + rec["sda"] + 16, 8) == 0         # srcu_unlock_count[0]
    with pytest.raises(Unmodelled, match="readers still active"):
        run(src, ex, fn="k", state={})
    emu.call(b.syms["g"])
    assert b.mm.read_u(b.syms["r"] + 32, 8) == 1
    assert state["srcu"] == {} and state["percpu_dyn"] == []
    with pytest.raises(Unmodelled, match="did not set up"):
        emu.call(b.syms["h"])


def test_ipmi_devintf_initialises_the_msghandlers_srcu(kernel, machine, tree):
    """ipmi_devintf's init registers an SMI watcher: ipmi_msghandler's first user runs
    init_srcu_struct and reads its interface list under srcu_read_lock."""
    r = insmod(kernel, tree, "ipmi_devintf")
    assert r.errno == 0, r.reason
    assert "ipmi device interface" in r.log
    assert len(machine.emu_state["srcu"]) == 1
    assert len(machine.emu_state["notifiers"]["panic"]) == 1          # ipmi's panic_block
