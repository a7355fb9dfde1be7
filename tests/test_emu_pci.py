"""PCI device lookups (emu/models/driver.py, drivers/pci/search.c): pci_get_device,
pci_get_subsys, pci_get_class, pci_get_domain_bus_and_slot, pci_dev_put over the mass
oracle's QEMU i440fx guest (its recorded PCI devices 0000:00:00.0 … 0000:00:05.0).

What is modelled: a search no recorded device matches returns NULL; a search that a device
matches (for_each_pci_dev's PCI_ANY_ID pair matches the host bridge 0000:00:00.0 first) stops
by name, because the sandbox has no struct pci_dev for the guest's devices yet.
Real modules: video, pata_legacy, nv_tco, parport_pc (each begins with for_each_pci_dev).
"""
from __future__ import annotations

import pytest

from test_emu_models import insmod, kernel, tree  # noqa: F401


@pytest.mark.parametrize("name", ["video", "pata_legacy", "parport_pc", "nv_tco"])
def test_for_each_pci_dev_stops_by_name_on_the_host_bridge(kernel, machine, tree, name):  # noqa: F811
    """for_each_pci_dev: pci_get_device(PCI_ANY_ID, PCI_ANY_ID, NULL) matches the guest's
    first PCI device (the i440FX host bridge 8086:1237 at 0000:00:00.0): no struct pci_dev
    in the sandbox, so init stops naming the function and the device, not returning NULL."""
    r = insmod(kernel, tree, name)
    text = str(r.reason)
    assert "pci_get_device" in text, text
    assert "0000:00:00.0" in text and "ffff:ffff" in text, text


# --- C snippets: the searches over the recorded guest ------------------------------------------
from kmodlab.emu import Unmodelled  # noqa: E402
from test_emu_models import _exports, run  # noqa: E402,F811
from test_emu_support import needs_gcc  # noqa: E402

EX = _exports(("pci_get_device", 0xFFFFFFFF81B00010), ("pci_get_subsys", 0xFFFFFFFF81B00020),
              ("pci_get_class", 0xFFFFFFFF81B00030),
              ("pci_get_domain_bus_and_slot", 0xFFFFFFFF81B00040),
              ("pci_dev_put", 0xFFFFFFFF81B00050))
HDR = r'''
void *pci_get_device(unsigned int, unsigned int, void *);
void *pci_get_subsys(unsigned int, unsigned int, unsigned int, unsigned int, void *);
void *pci_get_class(unsigned int, void *);
void *pci_get_domain_bus_and_slot(int, unsigned int, unsigned int);
void pci_dev_put(void *);
'''


@needs_gcc
def test_searches_no_recorded_device_matches_return_null():
    """NVIDIA's nForce SMBus (10de:0064), a USB UHCI class (0c0300), the i440FX bridge with
    another subsystem, and the empty slot 00:06.0 match none of the guest's devices: NULL;
    pci_dev_put(NULL) is a no-op."""
    src = HDR + r'''
    long f(void) {
        long n = 0;
        n += pci_get_device(0x10de, 0x0064, 0) == 0;
        n += pci_get_device(0x1022, 0xffffffff, 0) == 0;
        n += pci_get_class(0x0c0300, 0) == 0;
        n += pci_get_subsys(0x8086, 0x1237, 0x1af4, 0x1234, 0) == 0;
        n += pci_get_domain_bus_and_slot(0, 0, 6 << 3) == 0;
        n += pci_get_domain_bus_and_slot(0, 1, 0) == 0;
        pci_dev_put(0);
        return n; }'''
    ret, log, emu, _ = run(src, EX)
    assert ret == 6


@pytest.mark.parametrize("call, dev", [
    ("pci_get_device(0x8086, 0x7010, 0)", "0000:00:01.1"),          # PIIX3 IDE
    ("pci_get_class(0x030000, 0)", "0000:00:02.0"),                 # Bochs VGA
    ("pci_get_subsys(0x1af4, 0x1009, 0x1af4, 0x0009, 0)", "0000:00:03.0"),
    ("pci_get_domain_bus_and_slot(0, 0, 1 << 3 | 3)", "0000:00:01.3"),
])
@needs_gcc
def test_a_search_a_recorded_device_matches_stops_by_name(call, dev):
    """A match would return the device's struct pci_dev, which the sandbox does not build:
    Unmodelled naming the function and the matched device (never NULL)."""
    src = HDR + "long f(void) { return (long)" + call + "; }"
    with pytest.raises(Unmodelled, match=dev):
        run(src, EX)
