"""Models of the booted machine and of kernel services that Linux 6.12 reaches through other
layouts: the CPU (boot_cpu_data, x86_match_cpu), DMI identity (dmi_check_system), whole-page
allocations (__get_free_pages/free_pages), netlink kernel sockets, rbtree walks.

Real modules go through the sandbox kernel of both releases; the rules come from
arch/x86/kernel/cpu/match.c, drivers/firmware/dmi_scan.c, mm/page_alloc.c,
net/netlink/af_netlink.c and lib/rbtree.c.  Whether the real kernel gives the same answers is
the QEMU mass replay's business (coretemp, applesmc and nfnetlink are in it).
"""
from __future__ import annotations

import pytest

from kmodlab.emu import Unmodelled
from test_emu_models import _exports, run, tree  # noqa: F401  (fixture)
from test_emu_support import needs_gcc

ENODEV = 19


def _insmod(kernel, tree, name):
    from test_emu_models import insmod
    return insmod(kernel, tree, name)


@pytest.fixture
def kernel(machine):
    from kmodlab.sandbox import SandboxKernel
    return SandboxKernel(machine=machine)


def test_coretemp_finds_no_intel_cpu(kernel, machine, tree):
    """coretemp's x86_match_cpu table lists Intel CPUs with DTS; the oracle's CPU is QEMU
    TCG's AuthenticAMD family 15: no entry matches, init returns -ENODEV."""
    r = _insmod(kernel, tree, "coretemp")
    assert r.errno == ENODEV, r.reason


def test_applesmc_finds_no_apple(kernel, machine, tree):
    """applesmc's dmi_check_system table wants sys_vendor "Apple": QEMU's is "QEMU"."""
    r = _insmod(kernel, tree, "applesmc")
    assert r.errno == ENODEV, r.reason


def test_boot_cpu_data_is_the_oracles_cpu():
    from kmodlab.emu.models import arch
    for rel, raw in arch.BOOT_CPU_DATA.items():
        assert b"AuthenticAMD\0" in raw and b"QEMU TCG CPU version 2.5+" in raw, rel
    assert len(arch.BOOT_CPU_DATA[(6, 1)]) == 288 and len(arch.BOOT_CPU_DATA[(6, 12)]) == 328


def test_nfnetlink_creates_and_releases_its_kernel_socket(kernel, machine, tree):
    """nfnetlink's pernet init creates the NETLINK_NETFILTER (12) kernel socket of init_net;
    its exit releases it and the protocol's table entry goes away."""
    r = _insmod(kernel, tree, "nfnetlink")
    assert r.errno == 0, r.reason
    nl = machine.emu_state["netlink"]
    assert [s["unit"] for s in nl["sockets"].values()] == [12]
    assert nl["table"]["12"]["registered"] == 1
    assert kernel.delete_module("nfnetlink", 0).errno == 0
    assert machine.emu_state["netlink"] == {"sockets": {}, "table": {}}


NETLINK_SRC = r'''
struct netlink_kernel_cfg { unsigned int groups, flags; void (*input)(void *); void *m; int (*b)(void *, int); void (*u)(void *, int); void *c; };
void *__netlink_kernel_create(void *net, int unit, void *module, struct netlink_kernel_cfg *cfg);
void netlink_kernel_release(void *sk);
extern char init_net[];
struct netlink_kernel_cfg cfg = { .groups = 4 };
long f(void) {
    void *a = __netlink_kernel_create(init_net, 25, 0, &cfg);
    void *b = __netlink_kernel_create(init_net, 25, 0, &cfg);    /* port 0 taken: NULL */
    void *r = __netlink_kernel_create(init_net, 0, 0, &cfg);     /* NETLINK_ROUTE: vmlinux's */
    void *x = __netlink_kernel_create(init_net, 32, 0, &cfg);    /* >= MAX_LINKS */
    long ret = (a != 0) * 1000 + (b != 0) * 100 + (r != 0) * 10 + (x != 0);
    netlink_kernel_release(a);
    return ret;
}'''


@needs_gcc
def test_netlink_kernel_socket_rules():
    ex = _exports(("__netlink_kernel_create", 0xFFFFFFFF81A0C000),
                  ("netlink_kernel_release", 0xFFFFFFFF81A0C100),
                  ("init_net", 0xFFFFFFFF83F00000, "data"))
    state: dict = {}
    ret, _log, _emu, _b = run(NETLINK_SRC, ex, state=state)
    assert ret == 1000
    assert state["netlink"] == {"sockets": {}, "table": {}}


PAGES_SRC = r'''
unsigned long __get_free_pages(unsigned int gfp, unsigned int order);
unsigned long get_zeroed_page(unsigned int gfp);
void free_pages(unsigned long addr, unsigned int order);
long f(void) {
    unsigned long a = __get_free_pages(0xcc0, 2), z = get_zeroed_page(0xcc0);
    long ok = !(a & 4095) && !(z & 4095);
    for (int i = 0; i < 4096; i++) ok &= ((unsigned char *)z)[i] == 0;
    ((char *)a)[4 * 4096 - 1] = 1;                        /* all 4 pages are there */
    unsigned long big = __get_free_pages(0xcc0 | 0x2000, 11);   /* > MAX_ORDER, no warning */
    free_pages(a, 2); free_pages(z, 0); free_pages(0, 3);
    return ok * 10 + (big != 0);
}'''


@needs_gcc
def test_whole_pages():
    ex = _exports(("__get_free_pages", 0xFFFFFFFF81300000),
                  ("get_zeroed_page", 0xFFFFFFFF81300100), ("free_pages", 0xFFFFFFFF81300200))
    state: dict = {}
    ret, log, _emu, _b = run(PAGES_SRC, ex, state=state)
    assert ret == 10 and log == []
    assert state["pages"] == {}


@needs_gcc
def test_freeing_what_is_not_a_page_allocation_oopses():
    src = r'''
    unsigned long __get_free_pages(unsigned int gfp, unsigned int order);
    void free_pages(unsigned long addr, unsigned int order);
    long f(void) { unsigned long a = __get_free_pages(0xcc0, 1); free_pages(a, 0); return 0; }'''
    ex = _exports(("__get_free_pages", 0xFFFFFFFF81300000), ("free_pages", 0xFFFFFFFF81300200))
    from kmodlab.emu.errors import Oops
    with pytest.raises(Oops, match="Bad page state"):
        run(src, ex)


RB_SRC = r'''
struct rb_node { unsigned long pc; struct rb_node *r, *l; };
struct rb_root { struct rb_node *n; };
struct rb_node *rb_first(const struct rb_root *); struct rb_node *rb_last(const struct rb_root *);
struct rb_node *rb_next(const struct rb_node *); struct rb_node *rb_prev(const struct rb_node *);
/* a tree built by hand:   b
                          / \
                         a   c        (parent pointers in pc, colour bit 0 = red) */
struct rb_node a, b, c;
struct rb_root root = { &b };
long f(void) {
    b = (struct rb_node){ 1, &c, &a };
    a = (struct rb_node){ (unsigned long)&b, 0, 0 };
    c = (struct rb_node){ (unsigned long)&b, 0, 0 };
    struct rb_root empty = { 0 };
    long walk = 0, n = 0;
    for (struct rb_node *x = rb_first(&root); x; x = rb_next(x))
        walk = walk * 10 + (x == &a ? 1 : x == &b ? 2 : 3), n++;
    for (struct rb_node *x = rb_last(&root); x; x = rb_prev(x))
        walk = walk * 10 + (x == &a ? 1 : x == &b ? 2 : 3);
    return walk * 10 + (rb_first(&empty) == 0);
}'''


@needs_gcc
def test_rbtree_walks_in_order():
    ex = _exports(("rb_first", 0xFFFFFFFF81500000), ("rb_last", 0xFFFFFFFF81500100),
                  ("rb_next", 0xFFFFFFFF81500200), ("rb_prev", 0xFFFFFFFF81500300))
    ret, *_ = run(RB_SRC, ex)
    assert ret == 1233211


def test_a_release_without_recorded_cpu_stops_by_name():
    from kmodlab.emu.models import arch

    class E:
        _model_name, what, kernel_version = "x86_match_cpu", "init", (6, 6, 0)
    with pytest.raises(Unmodelled, match="booted CPU of this kernel release"):
        arch._cpu_field(E(), "x86")


def test_trace_decodes_arguments(machine_dir):
    """--trace: strings by their text (a KERN_<LEVEL> prefix escaped), pointers into the
    kernel or the module by symbol, small numbers in decimal, errors by name."""
    import subprocess
    import sys
    from pathlib import Path
    ko = Path(__file__).resolve().parents[1] / "examples" / "hello.ko"
    p = subprocess.run([sys.executable, "-m", "kmodlab", "insmod", "--trace", str(ko),
                        "who=world"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    out = p.stdout + p.stderr
    assert '_printk("\\0016hello: hello, %s!\\n") = 20' in out, out
    assert 'snprintf(' in out and ', 64, "hello %s x%d") = 14' in out, out
    from kmodlab.emu.emulator import _show_ret
    assert _show_ret((1 << 64) - 19) == "-ENODEV" and _show_ret((1 << 32) - 12) == "-ENOMEM"
    assert _show_ret(0x14) == "20" and _show_ret(0xFFFF888100000020) == "0xffff888100000020"


@pytest.mark.parametrize("mod,errno,line", [
    ("sha256_ssse3", 0, None),           # cpu_has_xfeatures(SSE|YMM): the guest has AVX
    ("hv_vmbus", ENODEV, None),          # not on Hyper-V: x86_hyper_type is native
    ("libnvdimm", 0, None),              # guid_parse of its known GUIDs
    ("dell_wmi_aio", 6, "dell_wmi_aio: No known WMI GUID found"),
    ("zsmalloc", 0, None),               # zpool_register_driver
    ("ib_core", 0, None),                # register_blocking_lsm_notifier, its xarrays
    ("iw_cm", 0, None),                  # register_net_sysctl in init_net
])
def test_machine_answers_as_the_real_guest(kernel, machine, tree, mod, errno, line):
    """Each module's errno and log line as the real 6.1 kernel gave them in the QEMU mass run."""
    r = _insmod(kernel, tree, mod)
    assert r.errno == errno, r.reason
    if line:
        assert line in r.log


LIB_SRC = r'''
typedef struct { unsigned char b[16]; } guid_t;
int guid_parse(const char *, guid_t *); int uuid_parse(const char *, guid_t *);
char *bin2hex(char *, const void *, unsigned long);
unsigned int make_kuid(void *, unsigned int);
extern char init_user_ns[];
int cpu_has_xfeatures(unsigned long, const char **);
guid_t g, u; char hex[9]; const char *missing;
long f(void) {
    int a = guid_parse("00112233-4455-6677-8899-aabbccddeeff", &g);
    int b = uuid_parse("00112233-4455-6677-8899-AABBCCDDEEFF", &u);
    int c = guid_parse("00112233-4455-6677-8899-aabbccddeef", &u);     /* 35 chars */
    char *end = bin2hex(hex, g.b, 4);
    int k = make_kuid(init_user_ns, 1000) == 1000;
    int x = cpu_has_xfeatures(0x6, 0) * 10 + cpu_has_xfeatures(0xe0, &missing);
    return (a == 0) * 100000 + (b == 0) * 10000 + (c == -22) * 1000 + (end == hex + 8) * 100
           + k * 10 + (x == 10);
}'''


@needs_gcc
def test_lib_functions():
    ex = _exports(("guid_parse", 0xFFFFFFFF81600000), ("uuid_parse", 0xFFFFFFFF81600100),
                  ("bin2hex", 0xFFFFFFFF81600200), ("make_kuid", 0xFFFFFFFF81600300),
                  ("cpu_has_xfeatures", 0xFFFFFFFF81600400),
                  ("init_user_ns", 0xFFFFFFFF83A00000, "data"))
    ret, _log, emu, b = run(LIB_SRC, ex)         # a bare emulator: Linux 6.1's booted CPU
    assert ret == 111111
    assert emu.read(b.syms["g"], 16) == bytes.fromhex("33221100554477668899aabbccddeeff")
    assert emu.read(b.syms["u"], 16) == bytes.fromhex("00112233445566778899aabbccddeeff")
    assert emu.read(b.syms["hex"], 8) == b"33221100"
    assert emu.cstr(emu.read_u(b.syms["missing"], 8)) == b"AVX-512 ZMM_Hi256"


def test_random_is_a_stream_of_the_machine():
    from kmodlab.emu.models.random import random_bytes

    class E:
        def __init__(self, boot_id):
            self.state, self.kernel = {}, type("M", (), {"boot_id": boot_id})()
    a, b = E("x"), E("x")
    assert random_bytes(a, 40) == random_bytes(b, 40)          # same machine, same history
    assert random_bytes(a, 40) != random_bytes(E("x"), 40)     # the stream moves on
    assert random_bytes(E("y"), 16) != random_bytes(E("x"), 16)


def test_static_keys_rewrite_the_modules_sites(kernel, machine, tree):
    """poly1305-x86_64's init enables its own keys (poly1305_use_avx, _avx2 on this CPU):
    every site of an enabled key becomes JMP where the branch is not the key's default, NOP
    where it is, and the module goes LIVE as on the real kernel."""
    r = _insmod(kernel, tree, "poly1305_x86_64")
    assert r.errno == 0, r.reason
    mod = next(m for m in machine.modules if m.name == "poly1305_x86_64")
    base, count = mod.jump_entries
    assert count > 0
    mm = machine.mm
    seen = 0
    for i in range(count):
        e = base + 16 * i
        s32 = lambda a: int.from_bytes(mm.read(a, 4), "little", signed=True)  # noqa: E731
        code, target = e + s32(e), e + 4 + s32(e + 4)
        raw = (e + 8 + int.from_bytes(mm.read(e + 8, 8), "little", signed=True)) % (1 << 64)
        key = raw & ~3
        if not mod.contains(key) or not mod.contains(code):
            continue
        enabled = int.from_bytes(mm.read(key, 4), "little") > 0
        insn = mm.read(code, 5)
        jmp = enabled ^ bool(raw & 1)
        if insn[:1] == b"\xe9":
            assert jmp and code + 5 + int.from_bytes(insn[1:5], "little", signed=True) == target
        elif insn[:1] == b"\xeb":
            assert jmp and code + 2 + int.from_bytes(insn[1:2], "little", signed=True) == target
        else:
            assert not jmp and (insn == b"\x0f\x1f\x44\x00\x00" or insn[:2] == b"\x66\x90")
        seen += enabled
    assert seen > 0                       # at least one key was enabled by init


VMALLOC_SRC = r'''
void *vzalloc(unsigned long); void *kvmalloc_node(unsigned long, unsigned int, int);
void vfree(const void *); void kvfree(const void *);
long f(void) {
    unsigned char *v = vzalloc(8 << 20);                  /* above KMALLOC_MAX_SIZE: fine */
    void *k = kvmalloc_node(8 << 20, 0xcc0, -1);          /* GFP_KERNEL: vmalloc fallback */
    void *a = kvmalloc_node(8 << 20, 0x820 | 0x2000, -1); /* GFP_ATOMIC|NOWARN: kmalloc only */
    long r = (v && v[(8 << 20) - 1] == 0) * 100 + (k != 0) * 10 + (a != 0);
    vfree(v); kvfree(k);
    return r;
}'''


@needs_gcc
def test_vmalloc_has_no_kmalloc_limit():
    ex = _exports(("vzalloc", 0xFFFFFFFF81700000), ("kvmalloc_node", 0xFFFFFFFF81700100),
                  ("vfree", 0xFFFFFFFF81700200), ("kvfree", 0xFFFFFFFF81700300))
    ret, log, _emu, _b = run(VMALLOC_SRC, ex)
    assert ret == 110 and log == []


def test_cpu_hotplug_state_is_the_first_free_dynamic_one(kernel, machine, tree):
    """cpuid asks for CPUHP_AP_ONLINE_DYN: it gets the first state of the dynamic range that
    the booted kernel (its /sys/devices/system/cpu/hotplug/states after boot) left unnamed;
    startup runs for CPU 0 and makes /dev/cpu/0/cpuid's class device; exit removes both."""
    from kmodlab.kernel.registrations import boot_views
    e = machine.profile.structs["enum cpuhp_state"]
    taken = {int(ln.split(":")[0]) for ln in boot_views(machine.profile.release)["cpuhp_states"]}
    first = next(s for s in range(e["CPUHP_AP_ONLINE_DYN"], e["CPUHP_AP_ONLINE_DYN_END"] + 1)
                 if s not in taken)
    r = _insmod(kernel, tree, "cpuid")
    assert r.errno == 0, r.reason
    step = machine.emu_state["cpuhp"]
    assert list(step) == [str(first)] and step[str(first)]["name"] == "x86/cpuid:online"
    assert not step[str(first)]["multi"] and step[str(first)]["startup"]
    assert kernel.delete_module("cpuid", 0).errno == 0
    assert machine.emu_state["cpuhp"] == {}


def test_xfs_goes_live(kernel, machine, tree):
    """xfs: a cpuhp "dead" state without startup, /proc/fs/xfs with a symlink (proc_symlink:
    fs/xfs/stat → /proc/self/mounts), its log line as the real kernel prints it.  Its
    dependency libcrc32c asks for crc32c, which request_module loads from the installed tree."""
    from kmodlab.tools.modprobe import prepare_tree
    machine.use_module_tree(prepare_tree(machine.profile.release))
    r = _insmod(kernel, tree, "xfs")
    assert r.errno == 0, r.reason
    assert "SGI XFS with ACLs, security attributes, realtime, quota, no debug enabled" in r.log
    links = {p: e for p, e in machine.emu_state["procfs"].items() if e["kind"] == "symlink"}
    assert links and all(e["target"] for e in links.values())


def test_zpool_driver_registered_and_unregistered(kernel, machine, tree):
    assert _insmod(kernel, tree, "zsmalloc").errno == 0
    assert list(machine.emu_state["zpool"].values()) == ["zsmalloc"]
    assert kernel.delete_module("zsmalloc", 0).errno == 0
    assert machine.emu_state["zpool"] == {}


@needs_gcc
def test_an_instruction_the_emulated_cpu_lacks_stops_by_name():
    """ADX (adcx) is on the guest's CPU and not on Unicorn's: the run stops as an unmodelled
    CPU instruction, not as the #UD oops the real kernel would never have; ud2 stays a BUG."""
    src = r'''
    long f(void) { unsigned long a = 1, b = 2;
                   asm volatile("adcx %1, %0" : "+r"(a) : "r"(b)); return a; }'''
    with pytest.raises(Unmodelled, match="unmodelled CPU instruction adcx"):
        run(src)
    from kmodlab.emu.errors import Oops
    with pytest.raises(Oops, match="invalid opcode"):
        run("long f(void) { asm volatile(\"ud2\"); return 0; }")


@needs_gcc
def test_struct_page_access_is_unmodelled_data():
    src = r'''
    long f(void) { return *(volatile unsigned long *)0xffffea0004000040UL; }'''
    with pytest.raises(Unmodelled, match="unmodelled kernel data vmemmap"):
        run(src)


def test_a_pernet_field_a_module_writes_reads_back_in_its_exit(kernel, machine, tree):
    """crypto_user's pernet init stores its netlink socket in init_net.crypto_nlsk; its exit
    (another run of the emulator) reads it back to release the socket.  A field of init_net
    no model gives and no module wrote still reads as unmodelled data."""
    r = _insmod(kernel, tree, "crypto_user")
    assert r.errno == 0, r.reason
    assert machine.emu_state["written_data"]
    assert [s["unit"] for s in machine.emu_state["netlink"]["sockets"].values()] == [21]
    assert kernel.delete_module("crypto_user", 0).errno == 0
    assert machine.emu_state["netlink"]["sockets"] == {}


def test_bpf_kfuncs_of_a_module_with_btf(kernel, machine, tree):
    """tcp_bbr registers its kfunc set against its own BTF (it has a .BTF section)."""
    r = _insmod(kernel, tree, "tcp_bbr")
    assert r.errno == 0, r.reason
    assert [k["module"] for k in machine.emu_state["btf_kfuncs"]] == ["tcp_bbr"]


@needs_gcc
def test_a_busy_wait_on_jiffies_is_named():
    """Code that polls jiffies without sleeping waits for a tick that, on the emulated CPU,
    only a sleep brings: the budget report says so (raid6_pq's benchmark)."""
    src = r'''
    extern volatile unsigned long jiffies;
    long f(void) { unsigned long j0 = jiffies; while (jiffies == j0) ; return 0; }'''
    from kmodlab.emu import BudgetExceeded
    ex = _exports(("jiffies", 0xFFFFFFFF83A10000, "data"))
    with pytest.raises(BudgetExceeded, match="busy-wait on the clock"):
        run(src, ex, budget=200_000)


def test_nf_conntrack_goes_live_with_its_proc_files(kernel, machine, tree):
    """nf_conntrack: BTF kfuncs, the netfilter hook pointer, its pernet fields in init_net and
    /proc/net/stat/nf_conntrack (under init_net.proc_net_stat) — LIVE as on the real kernel.
    (Its dependency libcrc32c loads crc32c through request_module from the installed tree.)"""
    from kmodlab.tools.modprobe import prepare_tree
    machine.use_module_tree(prepare_tree(machine.profile.release))
    r = _insmod(kernel, tree, "nf_conntrack")
    assert r.errno == 0, r.reason
    assert "net/stat/nf_conntrack" in machine.emu_state["procfs"]
    assert "net/nf_conntrack" in machine.emu_state["procfs"]


def test_drm_creates_its_class_file(kernel, machine, tree):
    """drm's init: class "drm" with the class file "version" (class_create_file_ns), an
    acpi_get_devices walk that finds no such device on the guest; LIVE as on the real kernel,
    with its "ACPI: bus type drm_connector registered" line."""
    r = _insmod(kernel, tree, "drm")
    assert r.errno == 0, r.reason
    assert "ACPI: bus type drm_connector registered" in r.log
    assert machine.emu_state["driver"]["class"]["drm"]["files"] == ["version"]


ARITH_SRC = r'''
unsigned int __sw_hweight32(unsigned int); unsigned long __sw_hweight64(unsigned long);
unsigned long int_sqrt(unsigned long);
unsigned long round_jiffies(unsigned long); unsigned long round_jiffies_up(unsigned long);
void uuid_gen(unsigned char *);
extern volatile unsigned long jiffies;
unsigned char u[16];
unsigned long r[6];
long f(void) {
    unsigned long j = jiffies;
    r[0] = __sw_hweight32(0xF0F0F0F1); r[1] = __sw_hweight64(~0UL);
    r[2] = int_sqrt(99); r[3] = int_sqrt(1UL << 62);
    r[4] = round_jiffies(j + 10 * 250 + 3) - j; r[5] = round_jiffies_up(j + 10 * 250 + 3) - j;
    uuid_gen(u);
    return 0;
}'''


@needs_gcc
def test_arithmetic_and_rounding():
    ex = _exports(("__sw_hweight32", 0xFFFFFFFF81800000), ("__sw_hweight64", 0xFFFFFFFF81800100),
                  ("int_sqrt", 0xFFFFFFFF81800200), ("round_jiffies", 0xFFFFFFFF81800300),
                  ("round_jiffies_up", 0xFFFFFFFF81800400), ("uuid_gen", 0xFFFFFFFF81800500),
                  ("jiffies", 0xFFFFFFFF83A20000, "data"))
    _ret, _log, emu, b = run(ARITH_SRC, ex)
    r = [emu.read_u(b.syms["r"] + 8 * i, 8) for i in range(6)]
    from kmodlab.emu.models.time import HZ, jiffies_now
    j = jiffies_now(emu)
    down = (j + 10 * HZ + 3) - (j + 10 * HZ + 3) % HZ
    exp_round = (down if (j + 10 * HZ + 3) % HZ < HZ // 4 else down + HZ) - j
    assert r[:4] == [17, 64, 9, 1 << 31]
    assert r[4] == exp_round and r[5] == down + HZ - j
    u = emu.read(b.syms["u"], 16)
    assert u[6] >> 4 == 4 and u[8] >> 6 == 2             # version 4, DCE variant
