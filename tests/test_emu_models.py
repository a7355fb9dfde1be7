"""Model families of the emulator: what real Debian modules' init and exit register and undo,
and the kernel rules each model keeps, on C snippets compiled as kernel code.

Real modules go through the sandbox kernel (load_module → init on the emulated CPU → rmmod
runs exit) with their dependencies loaded first; the registries live in the machine's
``emu_state``.  The rules come from the 6.1 sources the models cite (fs/filesystems.c,
fs/nls/nls_base.c, crypto/*.c, drivers/base/*.c, drivers/pci/pci-driver.c, fs/char_dev.c,
kernel/time/timer.c, kernel/workqueue.c, kernel/locking/*, fs/debugfs/inode.c).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from kmodlab.emu import BudgetExceeded, Emulator, Unmodelled
from test_emu_support import EXPORTS, Export, build, needs_gcc

TREE = Path(os.environ.get("KMODLAB_MODULES_DIR", "/nonexistent"))


@pytest.fixture(scope="module")
def tree():
    if not (TREE / "kernel").is_dir():
        pytest.skip("Debian module tree not available")
    from kmodlab.emu.sweep import module_deps, module_paths
    paths = module_paths(TREE)

    class Deps(dict):                       # read .modinfo only for the modules a test loads
        def __missing__(self, name):
            self.update(module_deps(TREE, paths, [name]))
            return self[name]
    return paths, Deps()


@pytest.fixture
def kernel(machine):
    from kmodlab.sandbox import SandboxKernel
    return SandboxKernel(machine=machine)


def insmod(kernel, tree, name: str):
    """modprobe's order: every dependency (each must become LIVE), then the module."""
    paths, deps = tree
    for d in deps[name]:
        r = kernel.finit_module(paths[d], "", 0)
        assert r.errno == 0, (d, r.reason)
    return kernel.finit_module(paths[name], "", 0)


# --- real modules -------------------------------------------------------------------------------

def test_minix_registers_its_filesystem_and_exit_unregisters(kernel, machine, tree):
    """fs/filesystems.c: init's register_filesystem lists "minix"; exit removes it."""
    r = insmod(kernel, tree, "minix")
    assert r.errno == 0, r.reason
    assert [f["name"] for f in machine.emu_state["filesystems"]] == ["minix"]
    assert kernel.delete_module("minix", 0).errno == 0
    assert machine.emu_state["filesystems"] == []
    assert machine.emu_state["kmem_caches"] == {}     # its inode cache is destroyed too


def test_nls_table_registered_and_unregistered(kernel, machine, tree):
    r = insmod(kernel, tree, "nls_cp437")
    assert r.errno == 0, r.reason
    assert [t["charset"] for t in machine.emu_state["nls"]] == ["cp437"]
    assert kernel.delete_module("nls_cp437", 0).errno == 0
    assert machine.emu_state["nls"] == []


@pytest.mark.parametrize("mod,kind,names", [
    ("chacha_generic", "skcipher", ["chacha20", "xchacha20", "xchacha12"]),
    ("aegis128", "aead", ["aegis128"]),
    ("curve25519_generic", "kpp", ["curve25519"]),
    ("ansi_cprng", "rng", ["stdrng", "fips(ansi_cprng)"]),
    ("ecrdsa_generic", "akcipher", ["ecrdsa"]),
])
def test_crypto_algorithm_types(kernel, machine, tree, mod, kind, names):
    """crypto/<type>.c: <type>_prepare_alg sets the type bits in cra_flags and the algorithm
    is listed by name; exit's unregister removes it."""
    from kmodlab.emu.models.crypto import CRYPTO_ALG_TYPE
    cra_flags = machine.profile.structs["crypto_alg"]["cra_flags"]     # this kernel's BTF
    r = insmod(kernel, tree, mod)
    assert r.errno == 0, r.reason
    algs = [a for a in machine.emu_state["crypto"] if a["type"] == kind]
    assert [a["name"] for a in algs] == names
    for a in algs:
        assert machine.mm.read_u(a["alg"] + cra_flags, 4) & 0xF == CRYPTO_ALG_TYPE[kind]
    assert kernel.delete_module(mod, 0).errno == 0
    assert [a for a in machine.emu_state["crypto"] if a["type"] == kind] == []


def test_lz4_registers_cipher_and_scomp(kernel, machine, tree):
    r = insmod(kernel, tree, "lz4")
    assert r.errno == 0, r.reason
    assert sorted((a["driver"], a["type"]) for a in machine.emu_state["crypto"]) == \
        [("lz4-generic", "alg"), ("lz4-scomp", "scomp")]


def test_pci_driver_registers_without_probing(kernel, machine, tree):
    """pci_register_driver on a machine with no PCI devices: the driver joins the pci bus,
    struct device_driver is filled in (name, bus = &pci_bus_type), probe is never called."""
    r = insmod(kernel, tree, "e1000")
    assert r.errno == 0, r.reason
    drivers = machine.emu_state["driver"]["bus_driver"]
    assert list(drivers) == ["pci/e1000"]
    drv = drivers["pci/e1000"]["drv"]
    pci_driver = drv - 120
    assert machine.mm.read_u64(drv) == machine.mm.read_u64(pci_driver + 16)    # name
    assert machine.mm.read_u64(drv + 8) == machine.profile.exports["pci_bus_type"].addr
    assert not any(c.name == "e1000_probe" for c in r.details["calls"])
    assert kernel.delete_module("e1000", 0).errno == 0
    assert machine.emu_state["driver"]["bus_driver"] == {}


def test_platform_driver_registers_without_probing(kernel, machine, tree):
    """platform_driver_register: no platform device matches; softing's probe is not run."""
    r = insmod(kernel, tree, "softing")
    assert r.errno == 0, r.reason
    assert "platform/softing" in machine.emu_state["driver"]["bus_driver"]
    assert kernel.delete_module("softing", 0).errno == 0
    assert "platform/softing" not in machine.emu_state["driver"]["bus_driver"]


def test_misc_device_and_workqueue(kernel, machine, tree):
    """tpm_vtpm_proxy: alloc_workqueue("tpm-vtpm") and misc_register of "vtpmx" with a
    dynamic minor (misc.c hands them out from 127 down; the booted kernel's built-in drivers
    hold 127-125, as Debian's kernel does under QEMU: /proc/misc); exit undoes both."""
    r = insmod(kernel, tree, "tpm_vtpm_proxy")
    assert r.errno == 0, r.reason
    assert [w["name"] for w in machine.emu_state["workqueues"].values()] == ["tpm-vtpm"]
    assert machine.emu_state["driver"]["misc"]["vtpmx"]["minor"] == 124
    assert kernel.delete_module("tpm_vtpm_proxy", 0).errno == 0
    assert machine.emu_state["workqueues"] == {} and machine.emu_state["driver"]["misc"] == {}


def test_rtnl_link_ops_registered(kernel, machine, tree):
    r = insmod(kernel, tree, "can_dev")
    assert r.errno == 0, r.reason
    assert list(machine.emu_state["rtnl_link"]) == ["can"]
    assert kernel.delete_module("can_dev", 0).errno == 0
    assert machine.emu_state["rtnl_link"] == {}


# --- C snippets ---------------------------------------------------------------------------------

def _exports(*names_addrs):
    ex = dict(EXPORTS)
    for name, addr, *kind in names_addrs:
        ex[name] = Export(name, addr, kind=kind[0] if kind else "text")
    return ex


def run(src, exports=EXPORTS, fn="f", state=None, **kw):
    b = build(src, exports=exports)
    log = []
    emu = Emulator(b.mm, b.heap, exports, printk=lambda lvl, t: log.append((lvl, t)),
                   state=state, **kw)
    return emu.call(b.syms[fn]), log, emu, b


@needs_gcc
def test_register_filesystem_twice_is_ebusy():
    """find_filesystem: a second file_system_type with the same name gets -EBUSY."""
    src = r'''
    struct fst { const char *name; int fs_flags; void *a[4]; void *owner; struct fst *next; long pad[8]; };
    int register_filesystem(struct fst *); int unregister_filesystem(struct fst *);
    struct fst a = { .name = "sbx" }, b = { .name = "sbx" };
    long f(void) { int x = register_filesystem(&a), y = register_filesystem(&b);
                   int z = unregister_filesystem(&b), w = unregister_filesystem(&a);
                   return x * 1000000 + y * 10000 + z * 100 + w; }'''
    ex = _exports(("register_filesystem", 0xFFFFFFFF81390C70),
                  ("unregister_filesystem", 0xFFFFFFFF81390D30))
    ret, *_ = run(src, ex)
    assert ret == 0 * 1000000 + (-16) * 10000 + (-22) * 100 + 0


@needs_gcc
def test_timers_pending_and_expiry():
    """mod_timer returns whether the timer was pending; timer_pending() (pprev != NULL) is
    true while armed; timer_delete_sync returns 1 then 0.  A timer that expires while msleep
    advances the clock would run in softirq context: that stops the run, named."""
    src = r'''
    struct timer_list { void *next, **pprev; unsigned long expires; void (*function)(struct timer_list *); unsigned int flags; };
    void init_timer_key(struct timer_list *, void (*)(struct timer_list *), unsigned int, const char *, void *);
    int mod_timer(struct timer_list *, unsigned long); int timer_delete_sync(struct timer_list *);
    void msleep(unsigned int);
    extern volatile unsigned long jiffies;
    static void cb(struct timer_list *t) {}
    struct timer_list t;
    long f(void) {
        init_timer_key(&t, cb, 0, 0, 0);
        int a = mod_timer(&t, jiffies + 100), b = mod_timer(&t, jiffies + 200);
        int p = t.pprev != 0;
        int c = timer_delete_sync(&t), d = timer_delete_sync(&t);
        return a * 10000 + b * 1000 + p * 100 + c * 10 + d;
    }
    int g(void) { init_timer_key(&t, cb, 0, 0, 0); mod_timer(&t, jiffies + 2); msleep(100); return 0; }'''
    ret, *_ = run(src)
    assert ret == 0 * 10000 + 1 * 1000 + 1 * 100 + 1 * 10 + 0
    with pytest.raises(Unmodelled) as e:
        run(src, fn="g")
    assert "run_timer_softirq (timer 0xffffffffc00000" in str(e.value)   # cb, unnamed here


@needs_gcc
def test_workqueue_queue_cancel_and_flush():
    """queue_work_on: true, then false while PENDING; cancel_work_sync: true (removed before
    it ran); flushing pending work would run it, which stops the run with its name."""
    src = r'''
    struct work_struct { long data; void *entry[2]; void (*func)(struct work_struct *); };
    void *alloc_workqueue(const char *, unsigned int, int, ...);
    int queue_work_on(int, void *, struct work_struct *); int cancel_work_sync(struct work_struct *);
    void destroy_workqueue(void *); int flush_work(struct work_struct *);
    static void fn(struct work_struct *w) {}
    struct work_struct w = { 0, {&w.entry, &w.entry}, fn };
    long f(void) {
        void *wq = alloc_workqueue("sbx-%d", 0, 1, 7);
        int a = queue_work_on(8192, wq, &w), b = queue_work_on(8192, wq, &w);
        int c = cancel_work_sync(&w), d = cancel_work_sync(&w);
        destroy_workqueue(wq);
        return a * 1000 + b * 100 + c * 10 + d;
    }
    int g(void) { void *wq = alloc_workqueue("q", 0, 0); queue_work_on(8192, wq, &w);
                  flush_work(&w); return 0; }'''
    state = {}
    ret, _log, emu, _b = run(src, state=state)
    assert ret == 1000 + 0 + 10 + 0
    assert state["workqueues"] == {} and state["work"] == {}
    assert emu.calls[0].note == "sbx-7"
    with pytest.raises(Unmodelled) as e:
        run(src, fn="g")
    assert "flush_work (queued work 0xffffffffc00000" in str(e.value)     # fn


@needs_gcc
def test_spinlock_irqsave_and_preempt_count_and_mutex_hang():
    """_raw_spin_lock_irqsave returns flags with IF set and raises __preempt_count while held;
    taking a mutex the task holds never returns (no lockdep on Debian): a hang, not a value."""
    src = r'''
    unsigned long _raw_spin_lock_irqsave(int *); void _raw_spin_unlock_irqrestore(int *, unsigned long);
    void mutex_lock(void *); void mutex_unlock(void *);
    int lock; long m[4]; unsigned int seen[3];
    long f(void) {
        unsigned long fl = _raw_spin_lock_irqsave(&lock);
        asm volatile("movl %%gs:__preempt_count, %0" : "=r"(seen[0]));
        seen[1] = lock;
        _raw_spin_unlock_irqrestore(&lock, fl);
        asm volatile("movl %%gs:__preempt_count, %0" : "=r"(seen[2]));
        mutex_lock(m); mutex_unlock(m);
        return fl;
    }
    int g(void) { mutex_lock(m); mutex_lock(m); return 0; }'''
    ret, _log, emu, b = run(src)
    assert ret == 0x200
    seen = [b.mm.read_u(b.syms["seen"] + 4 * i, 4) for i in range(3)]
    assert seen == [0x80000001, 1, 0x80000000]
    with pytest.raises(BudgetExceeded) as e:
        run(src, fn="g")
    assert "mutex_lock (the lock is already held by this task" in str(e.value)


@needs_gcc
def test_chrdev_numbers():
    """fs/char_dev.c: dynamic majors count down from 254, below those the booted kernel's
    built-in drivers hold (254-247: gpiochip … cxl, as /proc/devices shows); an overlapping
    fixed range is -EBUSY; alloc_chrdev_region stores MKDEV(major, baseminor)."""
    src = r'''
    int alloc_chrdev_region(unsigned int *, unsigned, unsigned, const char *);
    int __register_chrdev(unsigned, unsigned, unsigned, const char *, const void *);
    int register_chrdev_region(unsigned, unsigned, const char *);
    void unregister_chrdev_region(unsigned, unsigned);
    unsigned int dev; int out[4];
    int f(void) {
        out[0] = alloc_chrdev_region(&dev, 3, 2, "a");
        out[1] = __register_chrdev(0, 0, 256, "b", 0);
        out[2] = register_chrdev_region((244u << 20) | 5, 1, "c");
        out[3] = register_chrdev_region((10u << 20), 1, "d");   /* misc's major */
        unregister_chrdev_region(dev, 2);
        return 0;
    }'''
    state = {}
    _r, _l, _e, b = run(src, state=state)
    out = [int.from_bytes(b.mm.read(b.syms["out"] + 4 * i, 4), "little", signed=True)
           for i in range(4)]
    assert b.mm.read_u(b.syms["dev"], 4) == (246 << 20) | 3
    assert out == [0, 245, 0, -16]
    assert [r["name"] for r in state["chrdev"]] == ["b", "c"]


@needs_gcc
def test_debugfs_duplicate_name_is_eexist():
    """Debian has CONFIG_DEBUG_FS_ALLOW_ALL: real dentries; a second "x" under the same
    parent is ERR_PTR(-EEXIST) with debugfs' message; debugfs_remove is recursive."""
    src = r'''
    void *debugfs_create_dir(const char *, void *); void debugfs_remove(void *);
    long f(void) {
        void *d = debugfs_create_dir("x", 0), *e = debugfs_create_dir("x", 0);
        debugfs_create_dir("sub", d);
        debugfs_remove(d);
        return (long)e;
    }'''
    state = {}
    ret, log, *_ = run(src, state=state)
    assert ret == -17
    assert (3, "debugfs: Directory 'x' with parent '/' already present!") in log
    assert state["debugfs"] == {}


@needs_gcc
def test_crc32_matches_the_standard_crcs():
    """lib/crc32.c: crc32_le(~0, "123456789") inverted is the CRC-32 check value 0xCBF43926,
    __crc32c_le's is CRC-32C's 0xE3069283, crc32_be's (CRC-32/BZIP2) 0xFC891918."""
    src = r'''
    unsigned int crc32_le(unsigned int, const void *, unsigned long);
    unsigned int __crc32c_le(unsigned int, const void *, unsigned long);
    unsigned int crc32_be(unsigned int, const void *, unsigned long);
    unsigned int out[3];
    int f(void) { const char *s = "123456789";
        out[0] = ~crc32_le(~0u, s, 9); out[1] = ~__crc32c_le(~0u, s, 9); out[2] = ~crc32_be(~0u, s, 9);
        return 0; }'''
    ex = _exports(("crc32_le", 0xFFFFFFFF81549470), ("__crc32c_le", 0xFFFFFFFF81549480),
                  ("crc32_be", 0xFFFFFFFF81549490))
    _r, _l, _e, b = run(src, ex)
    got = [b.mm.read_u(b.syms["out"] + 4 * i, 4) for i in range(3)]
    assert got == [0xCBF43926, 0xE3069283, 0xFC891918]


@needs_gcc
def test_pernet_ops_init_and_exit_run_on_init_net():
    """register_pernet_subsys runs ops->init(&init_net) as a callback into the module (through
    Emulator.call_module) and allocates an id; an init error is returned and nothing is
    listed; unregister runs ops->exit(&init_net)."""
    src = r'''
    struct pernet_operations { void *list[2]; int (*init)(void *); void (*pre_exit)(void *);
        void (*exit)(void *); void *exit_batch, *exit_batch_rtnl; unsigned int *id;
        unsigned long size; };
    int register_pernet_subsys(struct pernet_operations *);
    void unregister_pernet_subsys(struct pernet_operations *);
    void *seen[2]; unsigned int myid; int fail;
    static int pinit(void *net) { seen[0] = net; return fail; }
    static void pexit(void *net) { seen[1] = net; }
    struct pernet_operations ops = { .init = pinit, .exit = pexit, .id = &myid };
    int f(void) { int r = register_pernet_subsys(&ops); unregister_pernet_subsys(&ops); return r; }
    int g(void) { fail = -12; return register_pernet_subsys(&ops); }'''
    ex = _exports(("register_pernet_subsys", 0xFFFFFFFF817CBA40),
                  ("unregister_pernet_subsys", 0xFFFFFFFF817CB490))
    state = {}
    ret, _l, _e, b = run(src, ex, state=state)
    init_net = EXPORTS["init_net"].addr
    assert ret == 0
    assert [b.mm.read_u64(b.syms["seen"] + 8 * i) for i in range(2)] == [init_net, init_net]
    assert b.mm.read_u(b.syms["myid"], 4) == 4 and state["pernet"] == []
    ret, *_ = run(src, ex, fn="g", state=state)
    assert ret == -12 and state["pernet"] == []


def test_usbcore_and_rfkill_init_and_exit(kernel, machine, tree):
    """Two real subsystem cores: usbcore (a debugfs "devices" file in usb_common's "usb"
    directory, the usb bus with a notifier, char-device regions and cdevs, its usbfs/hub
    drivers joining its own bus, which has no devices) and rfkill (a class, a misc device, LED
    triggers, an input handler that connects to no device).  Exit undoes every registration
    the module made; what its dependencies registered stays."""
    import copy
    paths, deps = tree
    for d in deps["usbcore"]:
        assert kernel.finit_module(paths[d], "", 0).errno == 0
    st = machine.emu_state
    before = copy.deepcopy(st)
    assert sorted(t["name"] for t in st["led_triggers"].values()) == ["usb-gadget", "usb-host"]
    r = kernel.finit_module(paths["usbcore"], "", 0)
    assert r.errno == 0, r.reason
    assert sorted(n["name"] for n in st["debugfs"].values()) == ["devices", "usb"]
    assert "usb" in st["driver"]["bus"] and st["cdev"]
    assert sorted(st["driver"]["bus_driver"]) == ["usb/hub", "usb/usb", "usb/usbfs"]
    assert kernel.delete_module("usbcore", 0).errno == 0
    assert st["debugfs"] == before["debugfs"] and st["led_triggers"] == before["led_triggers"]
    assert st["cdev"] == {} and st["driver"]["bus"] == {} and st["driver"]["bus_driver"] == {}
    r = insmod(kernel, tree, "rfkill")
    assert r.errno == 0, r.reason
    st = machine.emu_state
    assert "rfkill" in st["driver"]["class"] and "rfkill" in st["driver"]["misc"]
    assert list(st["input_handlers"].values()) == ["rfkill"]
    assert kernel.delete_module("rfkill", 0).errno == 0
    assert st["driver"]["class"] == {} and st["input_handlers"] == {}


def test_sweep_tallies_outcomes(tree):
    """emu.sweep: each module in a fresh sandbox after its dependencies; the outcome keys."""
    from kmodlab.emu.sweep import sweep
    res = sweep(TREE, subdirs=("fs/nls",), limit=3)
    assert len(res.outcomes) == 3 and set(res.outcomes.values()) == {"LIVE"}
    assert "LIVE" in res.render()
