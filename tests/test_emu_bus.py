"""Devices on buses, driver matching and platform devices (emu/models/driver.py; the kernel's
drivers/base/{dd,platform}.c, drivers/pci/pci-driver.c, drivers/acpi/bus.c,
drivers/pnp/driver.c).

The machine's devices are the real QEMU guest's (profile/data/boot-views-<release>.json):
a driver whose bus's match accepts an unbound boot device would have its probe run on
hardware the sandbox has no struct for, so that stops as Unmodelled naming driver and
device; no match registers as before.  Platform devices modules add are matched against the
module platform drivers, and probe/remove run in module code.
"""
from __future__ import annotations

import pytest

from kmodlab.emu import Unmodelled
from test_emu_models import _exports, insmod, kernel, run, tree  # noqa: F401
from test_emu_support import needs_gcc

ENOSYS = 38


# --- real modules -------------------------------------------------------------------------------
@pytest.mark.parametrize("mod,bus,device", [
    ("pcspkr", "platform", "pcspkr"),            # by name: pcspkr has no driver at boot
    ("ata_piix", "pci", "0000:00:01.1"),         # 8086:7010, PIIX3 IDE
    ("button", "acpi", "LNXPWRBN:00"),           # the power button's HID
])
def test_driver_matching_a_boot_device_stops_at_its_probe(kernel, machine, tree, mod, bus,
                                                          device):  # noqa: F811
    r = insmod(kernel, tree, mod)
    assert r.errno == ENOSYS
    assert "really_probe" in r.reason and f"{bus} device {device}:" in r.reason, r.reason


def test_pci_search_finds_the_machines_devices(kernel, machine, tree):  # noqa: F811
    """parport_pc_init_superio's for_each_pci_dev: pci_get_device(PCI_ANY_ID, PCI_ANY_ID,
    NULL) returns the host bridge 0000:00:00.0, a struct pci_dev the sandbox does not have
    (before, the search said "no device" and init went on to its PNP driver)."""
    r = insmod(kernel, tree, "parport_pc")
    assert r.errno == ENOSYS
    assert "pci_get_device (ffff:ffff is the machine's PCI device 0000:00:00.0" in r.reason


@pytest.mark.parametrize("mod,key", [
    ("e1000", "pci/e1000"),                      # no e1000 on QEMU's PC
    ("sbshc", "acpi/smbus_hc"),                  # ACPI0001/ACPI0005: none
    ("ns558", "pnp/ns558"),                      # no game port
])
def test_driver_matching_no_device_registers(kernel, machine, tree, mod, key):  # noqa: F811
    r = insmod(kernel, tree, mod)
    assert r.errno == 0, r.reason
    assert key in machine.emu_state["driver"]["bus_driver"]
    assert kernel.delete_module(mod, 0).errno == 0
    assert key not in machine.emu_state["driver"]["bus_driver"]


def test_acpi_driver_struct_filled_in(kernel, machine, tree):  # noqa: F811
    """acpi_bus_register_driver: drv.name points at the acpi_driver's own name array."""
    r = insmod(kernel, tree, "sbshc")
    assert r.errno == 0, r.reason
    drv = machine.emu_state["driver"]["bus_driver"]["acpi/smbus_hc"]["drv"]
    acpi_driver = drv - machine.profile.structs["acpi_driver"]["drv"]
    assert machine.mm.read_u64(drv) == acpi_driver          # &driver->name[0]


# --- C snippets: matching ---------------------------------------------------------------------
EX = _exports(("__pci_register_driver", 0xFFFFFFFF81B00010),
              ("pci_unregister_driver", 0xFFFFFFFF81B00020),
              ("__platform_driver_register", 0xFFFFFFFF81B00030),
              ("platform_driver_unregister", 0xFFFFFFFF81B00040),
              ("acpi_bus_register_driver", 0xFFFFFFFF81B00050),
              ("acpi_bus_unregister_driver", 0xFFFFFFFF81B00060),
              ("pnp_register_driver", 0xFFFFFFFF81B00070),
              ("pnp_unregister_driver", 0xFFFFFFFF81B00080),
              ("platform_device_register_full", 0xFFFFFFFF81B00090),
              ("platform_device_unregister", 0xFFFFFFFF81B000A0),
              ("platform_device_alloc", 0xFFFFFFFF81B000B0),
              ("platform_device_add", 0xFFFFFFFF81B000C0),
              ("platform_device_put", 0xFFFFFFFF81B000D0),
              ("platform_device_add_data", 0xFFFFFFFF81B000E0),
              ("__platform_driver_probe", 0xFFFFFFFF81B000F0),
              ("pci_bus_type", 0xFFFFFFFF82C00000, "data"),
              ("platform_bus_type", 0xFFFFFFFF82C01000, "data"),
              ("platform_bus", 0xFFFFFFFF82C02000, "data"))
HDR = r'''
#define ANY 0xffffffffu
struct pci_device_id { unsigned vendor, device, subvendor, subdevice, class, class_mask;
                       unsigned long driver_data; unsigned override_only; };
struct pci_driver { void *node[2]; const char *name; const struct pci_device_id *id_table;
                    void *probe; char rest[264]; };
struct acpi_device_id { char id[16]; unsigned long driver_data; unsigned cls, cls_msk; };
struct platform_device_id { char name[20]; unsigned long driver_data; };
struct device_driver { const char *name; void *bus, *owner; const char *mod_name; int st, pt;
                       void *of_match_table; const struct acpi_device_id *acpi_match_table;
                       char rest[88]; };
struct platform_driver { int (*probe)(void *); int (*remove)(void *); void (*remove_new)(void *);
                         void *cb[3]; struct device_driver driver;
                         const struct platform_device_id *id_table; char no_defer, pad[7]; };
struct acpi_driver { char name[80]; char class[80]; const struct acpi_device_id *ids;
                     unsigned flags; void *ops[3]; char drv[144]; void *owner; };
struct pnp_device_id { char id[8]; unsigned long driver_data; };
struct pnp_driver { const char *name; const struct pnp_device_id *id_table; unsigned flags;
                    void *cb[5]; char driver[144]; };
struct pdev_info { void *parent, *fwnode; long reused; const char *name; int id; void *res;
                   unsigned num_res; const void *data; unsigned long size_data;
                   unsigned long long dma_mask; void *properties; };
int __pci_register_driver(struct pci_driver *, void *, const char *);
void pci_unregister_driver(struct pci_driver *);
int __platform_driver_register(struct platform_driver *, void *);
void platform_driver_unregister(struct platform_driver *);
int __platform_driver_probe(struct platform_driver *, int (*)(void *), void *);
int acpi_bus_register_driver(struct acpi_driver *); void acpi_bus_unregister_driver(struct acpi_driver *);
int pnp_register_driver(struct pnp_driver *); void pnp_unregister_driver(struct pnp_driver *);
char *platform_device_register_full(struct pdev_info *);
void platform_device_unregister(char *);
char *platform_device_alloc(const char *, int); int platform_device_add(char *);
void platform_device_put(char *); int platform_device_add_data(char *, const void *, unsigned long);
#define DEVNAME(p) (*(char **)((p) + 16))
#define DRVDATA(p) (*(void **)((p) + 16 + 120))
#define DRIVER(p) (*(void **)((p) + 16 + 104))
'''


def _unmodelled(src):
    with pytest.raises(Unmodelled) as e:
        run(HDR + src, EX)
    return str(e.value.name)


@needs_gcc
@pytest.mark.parametrize("ids,device", [
    ("{0x8086, 0x7010, ANY, ANY}", "0000:00:01.1"),                       # exact ids
    ("{ANY, ANY, ANY, ANY, 0x010100, 0xffff00}", "0000:00:01.1"),         # IDE class
    ("{0x1234, 0x1111, 0x1af4, 0x1100}", "0000:00:02.0"),                 # std VGA, subsystem
])
def test_pci_match_id_finds_the_machines_devices(ids, device):
    name = _unmodelled(f'''
    struct pci_device_id ids[] = {{ {ids}, {{0}} }};
    struct pci_driver d = {{ .name = "sbx", .id_table = ids }};
    long f(void) {{ return __pci_register_driver(&d, 0, "sbx"); }}''')
    assert f"driver sbx matches the machine's pci device {device}:" in name


@needs_gcc
def test_pci_no_match_bound_device_and_override_only_register():
    """virtio-pci's devices are bound (not probed again); a wrong subdevice, an
    override_only entry and a class outside the mask do not match."""
    ret, log, emu, _ = run(HDR + r'''
    struct pci_device_id ids[] = { {0x1af4, 0x1009, ANY, ANY}, {0x8086, 0x7010, ANY, 0x1234},
                                   {0x8086, 0x7010, ANY, ANY, 0, 0, 0, 1},
                                   {ANY, ANY, ANY, ANY, 0x020000, 0xff0000}, {0} };
    struct pci_driver d = { .name = "sbx", .id_table = ids };
    long f(void) { return __pci_register_driver(&d, 0, "sbx"); }''', EX)
    assert ret == 0
    assert list(emu.state["driver"]["bus_driver"]) == ["pci/sbx"]


@needs_gcc
@pytest.mark.parametrize("body,device", [
    ('.driver = { .name = "pcspkr" }', "pcspkr"),                              # name
    ('.driver = { .name = "x" }, .id_table = pids', "platform-framebuffer.0"),  # id_table
    ('.driver = { .name = "x", .acpi_match_table = aids }', "QEMU0002:00"),     # companion
])
def test_platform_match_against_boot_devices(body, device):
    name = _unmodelled(f'''
    struct platform_device_id pids[] = {{ {{"nothing"}}, {{"platform-framebuffer"}}, {{""}} }};
    struct acpi_device_id aids[] = {{ {{"QEMU0002"}}, {{""}} }};
    struct platform_driver d = {{ {body} }};
    long f(void) {{ return __platform_driver_register(&d, 0); }}''')
    assert f"platform device {device}:" in name


@needs_gcc
def test_platform_driver_of_a_bound_boot_device_is_not_probed():
    """i8042 and serial8250 are bound at boot: __driver_attach skips them."""
    ret, log, emu, _ = run(HDR + r'''
    struct platform_device_id pids[] = { {"serial8250"}, {""} };
    struct platform_driver d = { .driver = { .name = "i8042" }, .id_table = pids };
    long f(void) { return __platform_driver_register(&d, 0); }''', EX)
    assert ret == 0


@needs_gcc
@pytest.mark.parametrize("ids,device", [
    ('"LNXPWRBN"', "LNXPWRBN:00"), ('"PNP0A05"', "ACPI0010:00"),      # HID, then a CID
])
def test_acpi_bus_driver_matches_hid_and_cids(ids, device):
    name = _unmodelled(f'''
    struct acpi_device_id ids[] = {{ {{{ids}}}, {{""}} }};
    struct acpi_driver d = {{ .name = "sbx", .ids = ids }};
    long f(void) {{ return acpi_bus_register_driver(&d); }}''')
    assert f"driver sbx matches the machine's acpi device {device}:" in name


@needs_gcc
def test_acpi_and_pnp_drivers_without_a_device_register_and_unregister():
    ret, log, emu, _ = run(HDR + r'''
    struct acpi_device_id aids[] = { {"XYZ0001"}, {""} };
    struct acpi_driver a = { .name = "sbxa", .ids = aids };
    struct pnp_device_id pids[] = { {"pnp0400"}, {"PNP0f13"}, {"PNP0b00"}, {""} };
    struct pnp_driver p = { .name = "sbxp", .id_table = pids };
    int n;
    long f(void) { int x = acpi_bus_register_driver(&a), y = pnp_register_driver(&p);
                   n = 0; acpi_bus_unregister_driver(&a); pnp_unregister_driver(&p);
                   return x * 100 + y; }''', EX)
    # pnp0400: the 3 letters compare exactly; PNP0f13/PNP0b00: bound to i8042 aux / rtc_cmos
    assert ret == 0
    assert emu.state["driver"]["bus_driver"] == {}


@needs_gcc
@pytest.mark.parametrize("id_,device", [('"PNP04XX"', "00:03"), ('"PNP0700"', "00:02"),
                                         ('"ANYDEVS"', "00:02")])
def test_pnp_compare_ids(id_, device):
    """compare_pnp_id: 'X' is a wildcard digit, ANYDEVS matches every device (the first
    unbound one, 00:02, is probed first)."""
    name = _unmodelled(f'''
    struct pnp_device_id ids[] = {{ {{{id_}}}, {{""}} }};
    struct pnp_driver d = {{ .name = "sbx", .id_table = ids }};
    long f(void) {{ return pnp_register_driver(&d); }}''')
    assert f"pnp device {device}:" in name


def test_pnp_hex_digits_compare_case_insensitively():
    from kmodlab.emu.models.driver import _pnp_compare
    assert _pnp_compare("PNP0f13", "PNP0F13") and _pnp_compare("PNP0B00", "PNP0b00")
    assert not _pnp_compare("pnp0400", "PNP0400") and not _pnp_compare("PNP0400", "PNP040")


# --- C snippets: platform devices a module adds -------------------------------------------------
PDEV = r'''
int probes, removes, probe_ret;
void *seen;
static int probe(void *p) { probes++; seen = p; DRVDATA((char *)p) = (void *)0x1234; return probe_ret; }
static int remove(void *p) { removes++; return 0; }
struct platform_driver drv = { .probe = probe, .remove = remove, .driver = { .name = "sbx" } };
struct platform_driver other = { .probe = probe, .remove = remove, .driver = { .name = "other" } };
static char *reg(const char *name, int id) {
    struct pdev_info i = { .name = name, .id = id };
    return platform_device_register_full(&i); }
'''


@needs_gcc
def test_platform_devices_names_probe_and_remove():
    """platform_device_add names "name" (PLATFORM_DEVID_NONE), "name.N.auto" (N from the
    ida: the boot alarmtimer.0.auto holds 0) and "name.id"; a device matching a registered
    module driver is probed at device_add, a driver registered later probes the devices
    already there; unregistering the device or the driver calls remove."""
    ret, log, emu, b = run(HDR + PDEV + r'''
    char *a, *c, *d; char names[3][32];
    static void keep(int i, const char *s) { int j = 0; while ((names[i][j] = s[j])) j++; }
    long f(void) {
        __platform_driver_register(&drv, 0);
        a = reg("sbx", -1); c = reg("sbx", -2); d = reg("other", 3);
        keep(0, DEVNAME(a)); keep(1, DEVNAME(c)); keep(2, DEVNAME(d));
        if (probes != 2 || seen != c || DRIVER(c) != &drv.driver) return -1;
        __platform_driver_register(&other, 0);
        if (probes != 3 || seen != d) return -2;
        platform_device_unregister(a);
        if (removes != 1) return -3;
        platform_driver_unregister(&drv);
        if (removes != 2 || DRIVER(c) || DRVDATA(c)) return -4;
        platform_device_unregister(c); platform_device_unregister(d);
        return removes; }''', EX)
    assert ret == 3                      # d is unbound from "other" on its unregister
    names = [emu.cstr(b.syms["names"] + 32 * i).decode() for i in range(3)]
    assert names == ["sbx", "sbx.1.auto", "other.3"]
    assert emu.state["driver"]["pdev"] == {}
    assert not [p for p in emu.state["sysfs_dirs"] if p.startswith("/devices/platform/")]


@needs_gcc
@pytest.mark.parametrize("err,line", [(-12, "sbx: probe of sbx failed with error -12"),
                                      (-19, None), (-6, None)])
def test_platform_probe_failure(err, line):
    """call_driver_probe: a failure leaves the device unbound (dev->driver, drvdata NULL) and
    warns, except -ENODEV/-ENXIO; device_add still succeeds."""
    ret, log, emu, _ = run(HDR + PDEV + f'''
    long f(void) {{ char *a; probe_ret = {err}; __platform_driver_register(&drv, 0);
        a = reg("sbx", -1);
        if ((unsigned long)a > -4096UL || probes != 1 || DRIVER(a) || DRVDATA(a)) return -1;
        platform_device_unregister(a); return removes; }}''', EX)
    assert ret == 0
    msgs = [t.strip() for _lvl, t in log]
    assert (line in msgs) if line else not any("probe of" in m for m in msgs)


@needs_gcc
def test_platform_device_alloc_add_put_and_data():
    """platform_device_alloc + add_data (a copy, freed with the device) + add; without a
    driver nothing is probed; put of a device never added frees it too."""
    ret, log, emu, _ = run(HDR + PDEV + r'''
    long f(void) { int v = 42; char *a = platform_device_alloc("regulatory", 0), *c;
        platform_device_add_data(a, &v, sizeof v);
        if (*(int **)(a + 16 + 112) == &v || **(int **)(a + 16 + 112) != 42) return -1;
        if (platform_device_add(a)) return -2;
        c = platform_device_alloc("never", -1); platform_device_put(c);
        if (probes) return -3;
        platform_device_unregister(a); return 0; }''', EX)
    assert ret == 0
    assert emu.state["driver"]["pdev"] == {}
    assert not any("does not have a release" in t for _l, t in log)


@needs_gcc
def test_platform_device_with_a_builtin_drivers_name_stops():
    """A module device named like one of the booted kernel's platform drivers would be
    probed by built-in code."""
    name = _unmodelled(PDEV + r'''
    long f(void) { reg("serial8250", 7); return 0; }''')
    assert "built-in platform driver serial8250" in name


def test_dell_rbu_adds_its_platform_device_and_exit_removes_it(kernel, machine, tree):  # noqa: F811
    """dcdrbu_init: platform_device_register_simple("dell_rbu", PLATFORM_DEVID_NONE, NULL, 0)
    → /devices/platform/dell_rbu with its /bus/platform link (no driver of that name);
    exit's platform_device_unregister removes and releases it."""
    r = insmod(kernel, tree, "dell_rbu")
    assert r.errno == 0, r.reason
    st = machine.emu_state
    assert [(p["devname"], p["driver"]) for p in st["driver"]["pdev"].values()] == \
        [("dell_rbu", None)]
    assert st["device_links"]["/bus/platform/devices/dell_rbu"] == "/devices/platform/dell_rbu"
    assert kernel.delete_module("dell_rbu", 0).errno == 0
    assert st["driver"]["pdev"] == {} and st["devices"] == {}
    assert "/bus/platform/devices/dell_rbu" not in st["device_links"]


@needs_gcc
def test_platform_driver_probe_binds_now_or_fails_with_enodev():
    """__platform_driver_probe: probe runs for the devices already there; afterwards probe is
    platform_probe_fail (a later device is not bound, silently: -ENXIO); with no device
    bound the result is -ENODEV and the driver is unregistered."""
    ret, log, emu, _ = run(HDR + PDEV + r'''
    struct platform_driver lone = { .driver = { .name = "lone" } };
    long f(void) { char *a = reg("sbx", -1), *c; int x, y;
        x = __platform_driver_probe(&drv, probe, 0);
        if (x || probes != 1 || DRIVER(a) != &drv.driver || drv.probe == probe) return -1;
        c = reg("sbx", 5);
        if (probes != 1 || DRIVER(c)) return -2;
        y = __platform_driver_probe(&lone, probe, 0);
        platform_device_unregister(c); platform_device_unregister(a);
        platform_driver_unregister(&drv);
        return y; }''', EX)
    assert ret == -19
    assert emu.state["driver"]["bus_driver"] == {}
    assert not any("probe of" in t for _l, t in log)


SEARCH = _exports(("pci_get_device", 0xFFFFFFFF81B00110), ("pci_get_class", 0xFFFFFFFF81B00120),
                  ("pci_get_domain_bus_and_slot", 0xFFFFFFFF81B00130),
                  ("bus_for_each_dev", 0xFFFFFFFF81B00140),
                  ("pci_bus_type", 0xFFFFFFFF82C00000, "data"))
SEARCH_HDR = r'''
void *pci_get_device(unsigned, unsigned, void *); void *pci_get_class(unsigned, void *);
void *pci_get_domain_bus_and_slot(int, unsigned, unsigned);
int bus_for_each_dev(void *, void *, void *, int (*)(void *, void *));
extern char pci_bus_type[];
static int cb(void *d, void *x) { return 0; }
'''


@needs_gcc
def test_pci_searches_miss_return_null():
    ret, *_ = run(SEARCH_HDR + r'''
    long f(void) { return (long)pci_get_device(0x8086, 0x1234, 0) + (long)pci_get_class(0x0c0300, 0)
                          + (long)pci_get_domain_bus_and_slot(0, 0, 7 << 3); }''', SEARCH)
    assert ret == 0


@needs_gcc
@pytest.mark.parametrize("call,what", [
    ("pci_get_device(0x8086, 0x7113, 0)", "8086:7113 is the machine's PCI device 0000:00:01.3"),
    ("pci_get_class(0x010180, 0)", "class 010180 is the machine's PCI device 0000:00:01.1"),
    ("pci_get_domain_bus_and_slot(0, 0, (2 << 3) | 0)", "0000:00:02.0 is the machine's"),
    ("(void *)(long)bus_for_each_dev(pci_bus_type, 0, 0, cb)", "devices on bus pci"),
])
def test_pci_searches_hitting_a_device_stop(call, what):
    with pytest.raises(Unmodelled) as e:
        run(SEARCH_HDR + f"long f(void) {{ return (long){call}; }}", SEARCH)
    assert what in e.value.name


# --- Linux 6.12 (Debian 13) ---------------------------------------------------------------------
def _k612(trixie):
    """The imported 6.12 profile of the user's profile directory (the one `kmodlab kernel
    import` refreshes with the layout facts the models declare), on trixie's module tree."""
    from kmodlab.machine import Machine
    from kmodlab.profile import load_profile
    from kmodlab.sandbox import SandboxKernel
    prof, tree = trixie
    prof = load_profile(prof.name)
    m = Machine.boot(prof.name, seed=1)
    m.profile = prof
    return SandboxKernel(machine=m), m, tree


def _insmod612(k, tree, rel):
    from kmodlab.kernel.module.internal import MODULE_INIT_COMPRESSED_FILE
    return k.finit_module(str(tree / "kernel" / rel), "", MODULE_INIT_COMPRESSED_FILE)


def test_612_platform_driver_probe_failure_is_dev_err(trixie):
    """6.12's call_driver_probe: dev_err "probe with driver %s failed with error %d" (6.1:
    pr_warn "%s: probe of %s failed ..."); __platform_driver_probe then gives -ENODEV, as
    on the real 6.12.118 guest (the PIT holds port 0x43)."""
    k, m, tree = _k612(trixie)
    r = _insmod612(k, tree, "drivers/watchdog/acquirewdt.ko.xz")
    assert r.errno == 19, r.reason
    assert "acquirewdt acquirewdt: probe with driver acquirewdt failed with error -5" in \
        [t.strip() for t in r.log]
    assert m.emu_state["driver"]["pdev"] == {}


def test_612_boot_devices_are_the_612_guests(trixie):
    k, m, tree = _k612(trixie)
    r = _insmod612(k, tree, "drivers/input/misc/pcspkr.ko.xz")
    assert r.errno == ENOSYS and "platform device pcspkr:" in r.reason
