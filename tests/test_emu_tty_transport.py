"""TTY drivers, line disciplines (models/tty.py) and transport classes / attribute containers
(models/transport.py): real Debian modules through the sandbox, and the rules of
drivers/tty/tty_io.c, tty_ldisc.c, drivers/base/transport_class.c and attribute_container.c
on C snippets compiled as kernel code (Linux 6.1's offsets; one snippet on 6.12's)."""
from __future__ import annotations

import pytest

from kmodlab.kernel.registrations import proc_devices
from test_emu_models import _exports, insmod, kernel, run, tree  # noqa: F401  (fixtures)
from test_emu_support import needs_gcc

PROFILE_612 = "debian-6.12.118+deb13-amd64"
ADDR = {n: 0xFFFFFFFF81700000 + 0x100 * i for i, n in enumerate([
    "__tty_alloc_driver", "tty_register_driver", "tty_unregister_driver", "tty_driver_kref_put",
    "tty_register_device", "tty_unregister_device", "tty_register_ldisc", "tty_unregister_ldisc",
    "transport_class_register", "transport_class_unregister", "anon_transport_class_register",
    "anon_transport_class_unregister", "attribute_container_register",
    "attribute_container_unregister", "register_chrdev_region"])}


def _ex(*extra):
    return _exports(*[(n, a) for n, a in ADDR.items()], *extra)


def _i32(b, sym, i=0):
    return int.from_bytes(b.mm.read(b.syms[sym] + 4 * i, 4), "little", signed=True)


# --- real modules -------------------------------------------------------------------------------

def test_scsi_transport_spi_classes_and_anon_container(kernel, machine, tree):
    """spi_transport_init: transport_class_register of spi_transport and spi_host (classes in
    /sys/class), anon_transport_class_register of spi_device (an attribute container only:
    its class pointer is its own tclass.class, NO_CLASSDEVS set, no class registered); exit
    undoes all three."""
    r = insmod(kernel, tree, "scsi_transport_spi")
    assert r.errno == 0, r.reason
    classes = machine.emu_state["driver"]["class"]
    assert "spi_transport" in classes and "spi_host" in classes
    assert "spi_device" not in classes
    [cont] = machine.emu_state["transport"]["containers"]
    s = machine.profile.structs
    atc = cont - s["anon_transport_class"]["container"]
    assert machine.mm.read_u64(cont + s["attribute_container"]["class"]) == \
        atc + s["anon_transport_class"]["tclass"]
    assert machine.mm.read_u64(cont + s["attribute_container"]["flags"]) & 1
    klist = cont + s["attribute_container"]["containers"] + s["klist"]["k_list"]
    assert machine.mm.read_u64(klist) == klist                      # an empty klist
    assert kernel.delete_module("scsi_transport_spi", 0).errno == 0
    classes = machine.emu_state["driver"]["class"]
    assert "spi_transport" not in classes and "spi_host" not in classes
    assert machine.emu_state["transport"]["containers"] == []


def test_raid_class_registers_its_transport_class(kernel, machine, tree):
    r = insmod(kernel, tree, "raid_class")
    assert r.errno == 0, r.reason
    assert "raid_devices" in machine.emu_state["driver"]["class"]
    assert kernel.delete_module("raid_class", 0).errno == 0
    assert "raid_devices" not in machine.emu_state["driver"]["class"]


def test_n_hdlc_line_discipline(kernel, machine, tree):
    """n_hdlc_init: tty_register_ldisc(N_HDLC = 13) and its message; exit clears the slot."""
    r = insmod(kernel, tree, "n_hdlc")
    assert r.errno == 0, r.reason
    assert list(machine.emu_state["tty"]["ldiscs"]) == ["13"]
    assert kernel.delete_module("n_hdlc", 0).errno == 0
    assert machine.emu_state["tty"]["ldiscs"] == {}


def test_synclink_gt_tty_driver_dynamic_major_in_proc_devices(kernel, machine, tree):
    """synclink_gt: a tty driver with major 0 gets the first free dynamic major (246 on a
    fresh Debian 6.1 machine) written back to driver->major, "ttySLG" in /proc/devices, its
    /proc/tty/driver entry (driver_name + ops->proc_show); exit's tty_unregister_driver and
    tty_driver_kref_put release all of it."""
    r = insmod(kernel, tree, "synclink_gt")
    assert r.errno == 0, r.reason
    assert "246 ttySLG" in proc_devices(machine).splitlines()
    [drv] = machine.emu_state["tty"]["drivers"]
    td = machine.profile.structs["tty_driver"]
    assert machine.mm.read_u(drv + td["major"], 4) == 246
    assert machine.mm.read_u(drv + td["flags"], 8) & 1                  # TTY_DRIVER_INSTALLED
    assert list(machine.emu_state["tty"]["proc"]) == ["synclink_gt"]
    assert kernel.delete_module("synclink_gt", 0).errno == 0
    assert "ttySLG" not in proc_devices(machine)
    assert machine.emu_state["tty"]["drivers"] == [] and machine.emu_state["tty"]["proc"] == {}


def test_mxser_fixed_major(kernel, machine, tree):
    """mxser registers major 174 (ttyMI, 32 minors) with register_chrdev_region."""
    r = insmod(kernel, tree, "mxser")
    assert r.errno == 0, r.reason
    assert "174 ttyMI" in proc_devices(machine).splitlines()
    assert kernel.delete_module("mxser", 0).errno == 0
    assert "ttyMI" not in proc_devices(machine)


# --- C snippets ---------------------------------------------------------------------------------
TTY_HDR = r'''
#define FLD(p, o, t) (*(t *)((char *)(p) + (o)))
struct tty_driver;
struct tty_driver *__tty_alloc_driver(unsigned, void *, unsigned long);
int tty_register_driver(struct tty_driver *); void tty_unregister_driver(struct tty_driver *);
void tty_driver_kref_put(struct tty_driver *);
void *tty_register_device(struct tty_driver *, unsigned, void *);
void tty_unregister_device(struct tty_driver *, unsigned);
int register_chrdev_region(unsigned, unsigned, const char *);
#define IS_ERR(p) ((unsigned long)(p) >= (unsigned long)-4095)
/* Linux 6.1's struct tty_driver */
#define KREF(d) FLD(d, 0, unsigned)
#define CDEVS(d) FLD(d, 8, void **)
#define NAME(d) FLD(d, 32, const char *)
#define NAME_BASE(d) FLD(d, 40, int)
#define MAJOR(d) FLD(d, 44, unsigned)
#define MINOR_START(d) FLD(d, 48, unsigned)
#define NUM(d) FLD(d, 52, unsigned)
#define FLAGS(d) FLD(d, 104, unsigned long)
#define TTYS(d) FLD(d, 128, void *)
#define PORTS(d) FLD(d, 136, void *)
#define TERMIOS(d) FLD(d, 144, void *)
'''


@needs_gcc
def test_tty_alloc_driver_rules():
    """__tty_alloc_driver: 0 lines or an UNNUMBERED_NODE driver of 2 lines → ERR_PTR(-EINVAL);
    kref 1, num, flags; ttys/termios unless DEVPTS_MEM; ports unless DYNAMIC_ALLOC."""
    src = TTY_HDR + r'''
    long out[12];
    long f(void) {
        struct tty_driver *a = __tty_alloc_driver(0, 0, 0);
        struct tty_driver *b = __tty_alloc_driver(2, 0, 0x80);
        struct tty_driver *c = __tty_alloc_driver(4, (void *)0x1234, 0x40);
        struct tty_driver *d = __tty_alloc_driver(3, 0, 0x10);
        out[0] = (long)a; out[1] = (long)b;
        out[2] = KREF(c); out[3] = NUM(c); out[4] = FLAGS(c); out[5] = FLD(c, 16, long);
        out[6] = TTYS(c) != 0; out[7] = TERMIOS(c) != 0; out[8] = PORTS(c) != 0;
        out[9] = CDEVS(c) != 0; out[10] = TTYS(d) != 0; out[11] = PORTS(d) != 0;
        tty_driver_kref_put(c); tty_driver_kref_put(d);
        return 0;
    }'''
    _r, _l, _e, b = run(src, _ex())
    out = [int.from_bytes(b.mm.read(b.syms["out"] + 8 * i, 8), "little", signed=True)
           for i in range(12)]
    assert out == [-22, -22, 1, 4, 0x40, 0x1234, 1, 1, 0, 1, 0, 1]


@needs_gcc
def test_tty_register_driver_devices_cdevs_and_release():
    """Without DYNAMIC_DEV a device per line, named name + (index + name_base), each with its
    own cdev; a fixed range taken → -EBUSY with nothing left behind; tty_unregister_driver
    frees the range, the last kref_put the devices, cdevs and the driver."""
    src = TTY_HDR + r'''
    int out[6];
    struct tty_driver *d;
    int f(void) {
        struct tty_driver *e = __tty_alloc_driver(1, 0, 0x4 | 0x8);
        d = __tty_alloc_driver(2, 0, 0x4);
        NAME(d) = "ttySBX"; NAME_BASE(d) = 1; MAJOR(d) = 200; MINOR_START(d) = 16;
        NAME(e) = "ttyOTHER"; MAJOR(e) = 200; MINOR_START(e) = 17;
        out[0] = tty_register_driver(d);
        out[1] = tty_register_driver(e);                 /* 200:17 is d's */
        out[2] = CDEVS(d)[0] != 0 && CDEVS(d)[1] != 0;
        out[3] = (int)(long)tty_register_device(d, 2, 0); /* past num */
        tty_driver_kref_put(e);
        tty_unregister_driver(d);
        return 0;
    }
    int g(void) { tty_driver_kref_put(d); return 0; }'''
    state = {}
    _r, log, emu, b = run(src, _ex(), state=state)
    assert [_i32(b, "out", i) for i in range(4)] == [0, -16, 1, -22]
    assert "ttySBX: Attempt to register invalid tty line number (2)" in [t for _l, t in log]
    devs = state["tty"]["devices"]
    assert sorted(devs) == ["ttySBX1", "ttySBX2"]
    assert [devs[n]["devt"] for n in sorted(devs)] == [(200 << 20) | 16, (200 << 20) | 17]
    assert sorted(state["cdev"].values(), key=lambda c: c["dev"]) == \
        [{"dev": (200 << 20) | 16, "count": 1}, {"dev": (200 << 20) | 17, "count": 1}]
    assert b.mm.read_u(devs["ttySBX2"]["dev"] + 660, 4) == (200 << 20) | 17    # dev->devt
    assert state["chrdev"] == []                       # the range is released; the devices
    emu.call(b.syms["g"])                              # stay until the last reference goes
    assert state["tty"]["devices"] == {} and state["cdev"] == {}
    assert state["cdev_alloced"] == []


@needs_gcc
def test_tty_dynamic_alloc_one_cdev_and_dynamic_major():
    """DYNAMIC_ALLOC | DYNAMIC_DEV: one cdev for the whole range, no devices; major 0 → the
    first free dynamic major written back (246: Debian 6.1 holds 254-247 at boot)."""
    src = TTY_HDR + r'''
    int out[3];
    int f(void) {
        struct tty_driver *d = __tty_alloc_driver(8, 0, 0x40 | 0x8);
        NAME(d) = "ttyDYN"; MINOR_START(d) = 0;
        out[0] = tty_register_driver(d); out[1] = MAJOR(d);
        out[2] = CDEVS(d)[0] != 0;
        return 0;
    }'''
    state = {}
    run(src, _ex(), state=state)
    assert [r["name"] for r in state["chrdev"]] == ["ttyDYN"]
    assert state["chrdev"][0]["major"] == 246 and state["chrdev"][0]["count"] == 8
    assert list(state["cdev"].values()) == [{"dev": 246 << 20, "count": 8}]
    assert state["tty"]["devices"] == {}


@needs_gcc
def test_tty_ldisc_numbers():
    """tty_register_ldisc: -EINVAL outside N_TTY..NR_LDISCS-1 (0..30: N_CAN327 is the last,
    in 6.1 and 6.12); a taken number is simply overwritten (6.1 and 6.12 refuse nothing
    else); unregister clears it."""
    src = r'''
    struct tty_ldisc_ops { const char *name; int num; char rest[128]; };
    int tty_register_ldisc(struct tty_ldisc_ops *);
    void tty_unregister_ldisc(struct tty_ldisc_ops *);
    struct tty_ldisc_ops a = { "a", 31 }, b = { "b", -1 }, c = { "c", 30 }, d = { "d", 30 };
    int out[4];
    int f(void) {
        out[0] = tty_register_ldisc(&a); out[1] = tty_register_ldisc(&b);
        out[2] = tty_register_ldisc(&c); out[3] = tty_register_ldisc(&d);
        return 0;
    }'''
    state = {}
    _r, _l, _e, b = run(src, _ex(), state=state)
    assert [_i32(b, "out", i) for i in range(4)] == [-22, -22, 0, 0]
    assert state["tty"]["ldiscs"] == {"30": b.syms["d"]}


@needs_gcc
def test_tty_std_termios_is_the_kernels():
    """tty_std_termios: 38400 8N1, ICRNL|IXON, OPOST|ONLCR, ISIG|ICANON|ECHO…, ^C as VINTR."""
    src = r'''
    struct ktermios { unsigned i, o, c, l; unsigned char line, cc[19]; unsigned is, os; };
    extern struct ktermios tty_std_termios;
    struct ktermios t;
    long f(void) { t = tty_std_termios; return 0; }'''
    _r, _l, _e, b = run(src, _ex(("tty_std_termios", 0xFFFFFFFF82A00000, "data")))
    raw = b.mm.read(b.syms["t"], 44)
    assert raw.hex() == ("0005000005000000bf0400003b8a000000031c7f150400010011131a00120f1716"
                         "0000000096000000960000")


TRANSPORT_SRC = r'''
struct list_head { struct list_head *next, *prev; };
struct klist { int k_lock; struct list_head k_list; void *get, *put; };
struct attribute_container { struct list_head node; struct klist containers; void *class;
                             void *grp, *attrs, *match; unsigned long flags; };
struct cls { const char *name; char pad[%(CLS)d]; };
struct transport_class { struct cls class; void *setup, *configure, *remove; };
struct anon_transport_class { struct transport_class tclass;
                              struct attribute_container container; };
int transport_class_register(struct transport_class *);
void transport_class_unregister(struct transport_class *);
int anon_transport_class_register(struct anon_transport_class *);
void anon_transport_class_unregister(struct anon_transport_class *);
int attribute_container_register(struct attribute_container *);
int attribute_container_unregister(struct attribute_container *);
struct transport_class t1 = { { "sbx_t" } }, t2 = { { "sbx_t" } };
struct anon_transport_class a = { };
struct attribute_container c = { };
struct list_head fake;
int out[6];
int f(void) {
    out[0] = transport_class_register(&t1);
    out[1] = transport_class_register(&t2);          /* same name: -EEXIST */
    out[2] = anon_transport_class_register(&a);
    out[3] = attribute_container_register(&c);
    c.containers.k_list.next = &fake;                 /* a class device on it */
    out[4] = attribute_container_unregister(&c);
    c.containers.k_list.next = &c.containers.k_list;
    out[5] = attribute_container_unregister(&c);
    return 0;
}'''


@needs_gcc
def test_transport_class_and_attribute_container_rules():
    """transport_class_register is a class registration (a taken name: -EEXIST and sysfs's
    duplicate-filename line); attribute_container_unregister is -EBUSY while its klist has
    devices; anon_transport_class_register registers no class."""
    state = {}
    _r, log, _e, b = run(TRANSPORT_SRC % {"CLS": 112}, _ex(), state=state)
    assert [_i32(b, "out", i) for i in range(6)] == [0, -17, 0, 0, -16, 0]
    assert "sysfs: cannot create duplicate filename '/class/sbx_t'" in [t for _l, t in log]
    assert list(state["driver"]["class"]) == ["sbx_t"]
    assert state["transport"]["containers"] == [b.syms["a"] + 144]
    assert b.mm.read_u64(b.syms["a"] + 144 + 56) == b.syms["a"]          # container.class
    assert b.mm.read_u64(b.syms["a"] + 144 + 88) == 1                    # NO_CLASSDEVS


@needs_gcc
def test_anon_transport_class_on_612_offsets():
    """Linux 6.12's struct class is 96 bytes: the container sits at 120 in the anon class."""
    from kmodlab.errors import KmodlabError
    from kmodlab.profile import find_profile, read_profile_file
    try:
        prof = read_profile_file(find_profile(PROFILE_612))
    except KmodlabError as e:
        pytest.skip(f"profile {PROFILE_612} is not imported: {e}")
    if (prof.structs.get("anon_transport_class") or {}).get("container") != 120:
        pytest.skip(f"profile {PROFILE_612} predates these layouts (re-import it)")
    state = {}
    _r, _l, _e, b = run(TRANSPORT_SRC % {"CLS": 88}, _ex(), state=state, profile=prof)
    assert [_i32(b, "out", i) for i in range(6)] == [0, -17, 0, 0, -16, 0]
    assert state["transport"]["containers"] == [b.syms["a"] + 120]
    assert b.mm.read_u64(b.syms["a"] + 120 + 56) == b.syms["a"]


# --- backing devices (models/backing_dev.py) ----------------------------------------------------

def test_mtd_registers_its_bdi(kernel, machine, tree):
    """mtd_bdi_init: bdi_alloc, ra_pages = io_pages = 0 (mtd's own writes over bdi_alloc's 32),
    bdi_register(bdi, "%.28s-0", "mtd") → /sys/class/bdi/mtd-0, dev_name "mtd-0"."""
    r = insmod(kernel, tree, "mtd")
    assert r.errno == 0, r.reason
    [(name, b)] = machine.emu_state["bdi"].items()
    assert name == "mtd-0"
    s = machine.profile.structs["backing_dev_info"]
    bdi = b["bdi"]
    assert machine.mm.read(bdi + s["dev_name"], 6) == b"mtd-0\0"
    assert machine.mm.read_u64(bdi + s["dev"]) == b["dev"]
    assert machine.mm.read_u64(bdi + s["ra_pages"]) == 0
    assert machine.mm.read_u(bdi + s["capabilities"], 4) == 3


BDI_SRC = r'''
#define FLD(p, o, t) (*(t *)((char *)(p) + (o)))
void *bdi_alloc(int); int bdi_register(void *, const char *, ...);
void bdi_unregister(void *); void bdi_put(void *); const char *bdi_dev_name(void *);
void *b; long out[10];
int f(void) {
    b = bdi_alloc(-1);
    out[0] = FLD(b, 64, unsigned);   /* refcnt */
    out[1] = FLD(b, 76, unsigned);   /* max_ratio */
    out[2] = FLD(b, 80, unsigned);   /* max_prop_frac */
    out[3] = FLD(b, 48, unsigned long);   /* ra_pages */
    out[4] = FLD(b, 68, unsigned);   /* capabilities */
    out[5] = FLD(b, 32, long) == (long)((char *)b + 32);   /* bdi_list empty */
    out[6] = bdi_register(b, "%s-%d", "sbx", 7);
    out[7] = bdi_register(b, "other");    /* dev already set: 0, nothing done */
    out[8] = bdi_dev_name(b) == (char *)b + 1040;
    return 0;
}
int g(void) { bdi_unregister(b); bdi_put(b); return 0; }'''


@needs_gcc
def test_bdi_alloc_register_put():
    state = {}
    _r, _l, emu, b = run(BDI_SRC, _ex(*[(n, 0xFFFFFFFF81800000 + 0x100 * i) for i, n in enumerate(
        ["bdi_alloc", "bdi_register", "bdi_unregister", "bdi_put", "bdi_dev_name"])]),
        state=state)
    out = [int.from_bytes(b.mm.read(b.syms["out"] + 8 * i, 8), "little", signed=True)
           for i in range(9)]
    assert out == [1, 100, 1024, 32, 3, 1, 0, 0, 1]
    assert list(state["bdi"]) == ["sbx-7"]
    bdi = int.from_bytes(b.mm.read(b.syms["b"], 8), "little")
    assert b.mm.read(bdi + 1040, 6) == b"sbx-7\0"
    assert b.mm.read_u(bdi + 96 + 8, 8) & 1                             # WB_registered
    emu.call(b.syms["g"])
    assert state["bdi"] == {}
    assert bdi not in emu.heap.allocs                                   # the last put frees it


@needs_gcc
def test_bdi_alloc_on_612_scales_ratios():
    """Linux 6.3+ scales bdi ratios by BDI_RATIO_SCALE: 6.12's max_ratio is 1000000."""
    from kmodlab.errors import KmodlabError
    from kmodlab.profile import find_profile, read_profile_file
    try:
        prof = read_profile_file(find_profile(PROFILE_612))
    except KmodlabError as e:
        pytest.skip(f"profile {PROFILE_612} is not imported: {e}")
    if (prof.structs.get("backing_dev_info") or {}).get("last_bdp_sleep") != 96:
        pytest.skip(f"profile {PROFILE_612} predates these layouts (re-import it)")
    src = r'''
    void *bdi_alloc(int); unsigned out[2];
    int f(void) { char *b = bdi_alloc(-1); out[0] = *(unsigned *)(b + 76);
                  out[1] = *(unsigned long *)(b + 96) != 0; return 0; }'''
    _r, _l, _e, b = run(src, _ex(("bdi_alloc", 0xFFFFFFFF81800000)), state={}, profile=prof)
    assert [b.mm.read_u(b.syms["out"] + 4 * i, 4) for i in range(2)] == [1000000, 1]
