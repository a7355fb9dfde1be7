"""Models added for issue 9 (emulation coverage): module references (emu/models/module.py),
reader-writer spinlocks, bit searches, block majors, traffic-control registries, the booted
machine's CPU/ACPI/Xen variables, proc_set_size, kobject_set_name, strsep — each checked on a
C snippet compiled as kernel code and on real Debian 6.1 modules that used to stop on them and
now reach LIVE or their own honest init error."""
from __future__ import annotations

import pytest

from kmodlab.emu import Unmodelled
from test_emu_models import _exports, insmod, kernel, run, tree  # noqa: F401
from test_emu_support import needs_gcc


def _ex(*names):
    from kmodlab.profile import load_profile
    p = load_profile().exports
    return _exports(*[(n, p[n].addr, getattr(p[n], "kind", "text")) for n in names])


# --- module references (kernel/module/main.c) ---------------------------------------------------
REF_SRC = r'''
struct module;
_Bool try_module_get(struct module *);
void __module_get(struct module *);
void module_put(struct module *);
void unmodelled_thing(void);
struct module *target;
long f(void) { long a = try_module_get(target); __module_get(target); module_put(target);
               return a * 10 + try_module_get((struct module *)0); }
long g(void) { module_put(target); module_put(target); return 0; }
long h(void) { try_module_get(target); unmodelled_thing(); return 0; }
long k(void) { return try_module_get(target); }
'''


def _machine_with(profile, state):
    """A booted machine whose module list holds one real Module record (no code)."""
    from kmodlab.kernel.module.internal import Module
    from kmodlab.machine import Machine
    m = Machine.boot(profile.name, seed=1)
    m.profile = profile
    mod = Module(name="holder", state=state, module_addr=0xFFFFFFFFC0100000)
    m.modules.insert(0, mod)
    return m, mod


def _run_ref(m, fn):
    from kmodlab.emu import Emulator
    from test_emu_support import build
    ex = _ex("try_module_get", "__module_get", "module_put", "__fentry__")
    ex = _exports(*[(n, e.addr, e.kind) for n, e in ex.items()],
                  ("unmodelled_thing", 0xFFFFFFFF81000010))
    b = build(REF_SRC, exports=ex)
    b.mm.write_u(b.syms["target"], 8, 0xFFFFFFFFC0100000)
    emu = Emulator(b.mm, b.heap, ex, printk=m.printk)
    return emu.call(b.syms[fn])


@needs_gcc
def test_module_references_count_in_the_sandbox_refcount(profile):
    """try_module_get/__module_get add to the machine's module refcount (what /proc/modules
    and lsmod show), module_put takes one off; NULL (built-in code) counts nothing."""
    from kmodlab.kernel.module.internal import MODULE_STATE_LIVE
    m, mod = _machine_with(profile, MODULE_STATE_LIVE)
    assert mod.module_refcount() == 0
    assert _run_ref(m, "f") == 11
    assert mod.module_refcount() == 1                 # +1 +1 -1
    from kmodlab.kernel.module.procfs import proc_modules_line
    assert proc_modules_line(mod).split()[2] == "1"  # /proc/modules' refcount column
    assert _run_ref(m, "g") == 0                      # 1 → 0, then the base reference
    assert mod.refcnt == 0
    warned = len([r for r in m.log if "module_put" in r.text])
    _run_ref(m, "g")                                  # below zero: left alone, WARN twice
    assert mod.refcnt == 0
    assert len([r for r in m.log if "module_put" in r.text]) == warned + 2


@needs_gcc
def test_try_module_get_fails_on_a_going_module(profile):
    """module_is_live: a GOING module gives no new reference."""
    from kmodlab.kernel.module.internal import MODULE_STATE_GOING
    m, mod = _machine_with(profile, MODULE_STATE_GOING)
    before = mod.refcnt
    assert _run_ref(m, "k") == 0
    assert mod.refcnt == before


@needs_gcc
def test_references_of_a_stopped_init_are_given_back(profile):
    """An init that stops (unmodelled call) is undone whole, the references it took too."""
    from kmodlab.kernel.module.internal import MODULE_STATE_LIVE
    m, mod = _machine_with(profile, MODULE_STATE_LIVE)
    with pytest.raises(Unmodelled):
        _run_ref(m, "h")
    assert mod.module_refcount() == 0


@needs_gcc
def test_try_module_get_of_an_unknown_struct_module_stops(profile):
    from kmodlab.kernel.module.internal import MODULE_STATE_LIVE
    m, mod = _machine_with(profile, MODULE_STATE_LIVE)
    mod.module_addr = 0xFFFFFFFFC0200000
    with pytest.raises(Unmodelled, match="not a module in the machine's list"):
        _run_ref(m, "k")


# --- pure helpers -------------------------------------------------------------------------------
BITS_SRC = r'''
unsigned long _find_next_bit(const unsigned long *, unsigned long, unsigned long);
unsigned long _find_first_zero_bit(const unsigned long *, unsigned long);
unsigned long _find_last_bit(const unsigned long *, unsigned long);
unsigned int __bitmap_weight(const unsigned long *, unsigned int);
char *strsep(char **, const char *);
unsigned long map[3] = { 0x11, 0, 0x8000000000000001UL };
unsigned long full[2] = { ~0UL, 0x5 };
char buf[] = "a,b;;c";
long r[16];
long f(void) {
    char *s = buf, *t;
    r[0] = _find_next_bit(map, 192, 0); r[1] = _find_next_bit(map, 192, 1);
    r[2] = _find_next_bit(map, 192, 5); r[3] = _find_next_bit(map, 129, 129);
    r[4] = _find_next_bit(map, 100, 5); r[5] = _find_first_zero_bit(full, 128);
    r[6] = _find_last_bit(map, 192); r[7] = __bitmap_weight(map, 192);
    r[8] = __bitmap_weight(map, 129);
    t = strsep(&s, ",;"); r[9] = t - buf; r[10] = s - buf;
    t = strsep(&s, ",;"); r[11] = t - buf;
    t = strsep(&s, ",;"); r[12] = *t;                 /* empty token between ";;" */
    t = strsep(&s, ",;"); r[13] = t - buf; r[14] = (long)s;
    return 0; }
'''


@needs_gcc
def test_bit_searches_and_strsep():
    ex = _ex("_find_next_bit", "_find_first_zero_bit", "_find_last_bit", "__bitmap_weight",
             "strsep")
    ret, _log, _emu, b = run(BITS_SRC, exports=ex)
    assert ret == 0
    r = [b.mm.read_u(b.syms["r"] + 8 * i, 8) for i in range(15)]
    assert r[:9] == [0, 4, 128, 129, 100, 65, 191, 4, 3]
    assert r[9:14] == [0, 2, 2, 0, 5] and r[14] == 0


# --- rwlocks ------------------------------------------------------------------------------------
RW_SRC = r'''
typedef struct { unsigned int cnts; unsigned int wait_lock; } rwlock_t;
void _raw_read_lock(rwlock_t *); void _raw_read_unlock(rwlock_t *);
void _raw_write_lock_bh(rwlock_t *); void _raw_write_unlock_bh(rwlock_t *);
unsigned long _raw_write_lock_irqsave(rwlock_t *);
void _raw_write_unlock_irqrestore(rwlock_t *, unsigned long);
rwlock_t l; unsigned int seen[4];
long f(void) { unsigned long fl;
    _raw_read_lock(&l); _raw_read_lock(&l); seen[0] = l.cnts; _raw_read_unlock(&l);
    _raw_read_unlock(&l); seen[1] = l.cnts;
    _raw_write_lock_bh(&l); seen[2] = l.cnts; _raw_write_unlock_bh(&l);
    fl = _raw_write_lock_irqsave(&l); _raw_write_unlock_irqrestore(&l, fl); seen[3] = l.cnts;
    return fl; }
long g(void) { _raw_read_lock(&l); _raw_write_lock_bh(&l); return 0; }
'''


@needs_gcc
def test_rwlock_counts_readers_and_a_writer_and_hangs_on_itself():
    from kmodlab.emu import BudgetExceeded
    names = ("_raw_read_lock", "_raw_read_unlock", "_raw_write_lock_bh", "_raw_write_unlock_bh",
             "_raw_write_lock_irqsave", "_raw_write_unlock_irqrestore")
    ret, _log, _emu, b = run(RW_SRC, exports=_ex(*names))
    assert ret == 0x200                                   # IF was set
    seen = [b.mm.read_u(b.syms["seen"] + 4 * i, 4) for i in range(4)]
    assert seen == [2 << 9, 0, 0xFF, 0]
    with pytest.raises(BudgetExceeded):
        run(RW_SRC, exports=_ex(*names), fn="g")


# --- real modules -------------------------------------------------------------------------------
@pytest.mark.parametrize("mod", ["comedi", "snd", "x_tables", "dm_mod", "bluetooth"])
def test_former_top_stops_now_go_live(kernel, tree, mod):
    """Modules at the head of the sweep's longest dependency chains (kobject_set_name,
    proc_set_size, nr_cpu_ids + _find_next_bit, __register_blkdev, _raw_write_lock)."""
    r = insmod(kernel, tree, mod)
    assert r.errno == 0, r.reason


def test_block_major_registered_and_released(kernel, machine, tree):
    """md_mod registers block major 9 ("md") and a dynamic one ("mdp", from 254 down);
    rmmod gives both back."""
    r = insmod(kernel, tree, "md_mod")
    assert r.errno == 0, r.reason
    majors = {b["name"]: b["major"] for b in machine.emu_state["blkdev"]}
    assert majors == {"md": 9, "mdp": 254}
    assert kernel.delete_module("md_mod", 0).errno == 0
    assert machine.emu_state["blkdev"] == []


@pytest.mark.parametrize("mod,registry,key", [("sch_htb", "qdisc", "htb"),
                                              ("cls_u32", "cls", "u32"),
                                              ("act_gact", "act", "gact")])
def test_traffic_control_registrations(kernel, machine, tree, mod, registry, key):
    r = insmod(kernel, tree, mod)
    assert r.errno == 0, r.reason
    assert list(machine.emu_state["net_sched"][registry]) == [key]
    assert kernel.delete_module(mod, 0).errno == 0
    assert machine.emu_state["net_sched"][registry] == {}


def test_xen_driver_on_a_machine_that_is_not_a_xen_guest(kernel, tree):
    """xen_domain() is false (xen_domain_type XEN_NATIVE): the driver's own -ENODEV."""
    r = insmod(kernel, tree, "xen_blkback")
    assert r.errno == 19, r.reason


def test_pV_lines_printed_as_the_real_kernel_prints_them(kernel, machine, tree):
    """bt_info() prints through "%pV" (struct va_format): the nested format is rendered with
    its own va_list — the lines Debian's kernel printed under QEMU."""
    r = insmod(kernel, tree, "bluetooth")
    assert r.errno == 0, r.reason
    lines = [x.text for x in machine.log if x.text.startswith("Bluetooth: ")]
    assert lines[:2] == ["Bluetooth: Core ver 2.22",
                         "Bluetooth: HCI device and connection manager initialized"]


def test_kernel_variable_a_module_writes_is_kept(kernel, machine, tree):
    """udp_tunnel's init installs udp_tunnel_nic_ops (NULL at boot), its exit clears it: the
    variable keeps each value for the runs after it."""
    r = insmod(kernel, tree, "udp_tunnel")
    assert r.errno == 0, r.reason
    mod = machine.find_module("udp_tunnel")
    ops = int.from_bytes(bytes.fromhex(machine.emu_state["kernel_data"]["udp_tunnel_nic_ops"]),
                         "little")
    assert mod.contains(ops)
    assert kernel.delete_module("udp_tunnel", 0).errno == 0
    assert machine.emu_state["kernel_data"]["udp_tunnel_nic_ops"] == "00" * 8


def test_dynamic_percpu_and_crypto_queue(kernel, machine, tree):
    """cryptd: __alloc_percpu for its per-CPU queues (after the kernel's static area and the
    module reserve), crypto_init_queue on each; exit frees them."""
    from kmodlab.kernel.mm import PERCPU_MODULE_RESERVE
    r = insmod(kernel, tree, "cryptd")
    assert r.errno == 0, r.reason
    dyn = machine.emu_state["percpu_dyn"]
    assert dyn and all(o >= machine.profile.percpu_static_size + PERCPU_MODULE_RESERVE
                       for o, _s in dyn)
    assert kernel.delete_module("cryptd", 0).errno == 0
    assert machine.emu_state["percpu_dyn"] == []


def test_pci_search_on_a_machine_without_pci_devices(kernel, tree):
    """ie31200_edac looks for its host bridge with pci_get_device: none → its own -ENODEV."""
    r = insmod(kernel, tree, "ie31200_edac")
    assert r.errno == 19, r.reason
