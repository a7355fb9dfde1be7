"""I/O resources and port I/O on the sandbox machine (kernel/resource.c; emu/ioport.py): the
booted kernel's ioport tree as read from the real guests, requests that nest in windows and
collide with claimed regions, /proc/ioports, and ports that read as QEMU's unassigned I/O.

What the real kernel answered for the same modules loaded in sequence is in the QEMU mass run
(w83877f_wdt after sbc60xxwdt: "I/O address 0x0443 already in use", -EIO; gpio_f7188x:
"Unsupported Fintek device 0xffff")."""
from __future__ import annotations

import pytest

from test_emu_models import _exports, insmod, run, tree  # noqa: F401  (fixture)
from test_emu_support import needs_gcc

EIO, ENODEV = 5, 19


@pytest.fixture
def kernel(machine):
    from kmodlab.sandbox import SandboxKernel
    return SandboxKernel(machine=machine)


def test_second_watchdog_on_the_same_port_is_refused(kernel, machine, tree):
    r = insmod(kernel, tree, "sbc60xxwdt")
    assert r.errno == 0, r.reason
    from kmodlab.sandbox import read_kernel_file
    ioports = read_kernel_file(machine, "/proc/ioports").decode()
    r2 = insmod(kernel, tree, "w83877f_wdt")
    assert r2.errno == EIO
    assert "w83877f_wdt: I/O address 0x0443 already in use" in r2.log
    # nested in the "PCI Bus 0000:00" window (0d00-ffff), in address order
    assert "\n  0443-0443 : SBC 60XX WDT\n" in ioports


def test_absent_super_io_reads_all_ones(kernel, machine, tree):
    r = insmod(kernel, tree, "gpio_f7188x")
    assert r.errno == ENODEV
    assert "gpio-f7188x: Unsupported Fintek device 0xffff" in r.log


def test_a_real_device_port_stops_by_name(kernel, machine, tree):
    """com90xx probes the VGA's ports: QEMU has a VGA there, which is not modelled."""
    r = insmod(kernel, tree, "com90xx")
    assert any("unmodelled kernel data port 0x3c0 (vga)" in ln for ln in r.log), r.log


SRC = r'''
struct resource { unsigned long start, end; const char *name; unsigned long flags, desc; struct resource *parent, *sibling, *child; };
extern struct resource ioport_resource;
struct resource *__request_region(struct resource *, unsigned long, unsigned long, const char *, int);
void __release_region(struct resource *, unsigned long, unsigned long);
long f(void) {
    struct resource *a = __request_region(&ioport_resource, 0x300, 8, "mine", 0);
    struct resource *b = __request_region(&ioport_resource, 0x304, 2, "again", 0);   /* busy */
    struct resource *k = __request_region(&ioport_resource, 0x60, 1, "kbd", 0);      /* keyboard */
    struct resource *o = __request_region(&ioport_resource, 0xfff0, 0x20, "out", 0); /* > 0xffff */
    long ok = a && a->start == 0x300 && a->end == 0x307 && (a->flags & 0x80000100) == 0x80000100;
    __release_region(&ioport_resource, 0x300, 8);
    __release_region(&ioport_resource, 0x300, 8);                   /* gone: a warning */
    return ok * 1000 + (b != 0) * 100 + (k != 0) * 10 + (o != 0);
}'''


@needs_gcc
def test_region_rules():
    ex = _exports(("__request_region", 0xFFFFFFFF81100000), ("__release_region", 0xFFFFFFFF81100100),
                  ("ioport_resource", 0xFFFFFFFF82A00000, "data"))
    state: dict = {}
    ret, log, _emu, _b = run(SRC, ex, state=state)
    assert ret == 1000
    assert log == [(4, "Trying to free nonexistent resource "
                       "<0x0000000000000300-0x0000000000000307>")]
    from kmodlab.kernel.registrations import boot_resources
    boot = boot_resources("6.1.0-56-amd64", lambda n: 0)
    assert [n["n"] for n in state["resources"]["ioport"]["c"]] == \
        [n["n"] for n in boot["ioport"]["c"]]


def test_port_map():
    from kmodlab.emu.ioport import PortMap
    from kmodlab.kernel.registrations import boot_resources
    pm = PortMap(boot_resources("6.1.0-56-amd64", lambda n: 0)["ioport"])
    assert pm.device(0x60, 1) == "i8042-data" and pm.device(0x3F8, 1) == "serial"
    assert pm.device(0x2E, 1) is None and pm.device(0x443, 1) is None
    assert pm.device(0x5F, 2) == "i8042-data"              # a word read reaching 0x60
    assert pm.device(0x600, 4) == "PCI 0000:00:01.3"         # PIIX4 PM, placed by the BIOS
