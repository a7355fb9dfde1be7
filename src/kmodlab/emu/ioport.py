"""x86 port I/O (``in``/``out``) on the sandbox machine, which is the oracle's QEMU guest.

QEMU 7.2's ``pc-i440fx-7.2`` machine, as the oracle starts it, decodes these I/O ports (its
``info mtree -f`` I/O address space at reset: ``DEVICES``), and the guest's firmware and kernel
place the PCI functions' I/O BARs where the booted kernel's resource tree says (nodes named
by a PCI address, ``0000:00:01.3``; see emu/models/resource.py).  Every other port is QEMU's
unassigned I/O: a read gives all ones of the access's width, a write is dropped — what a
module probing for absent ISA hardware (a Super I/O chip at 0x2e, a watchdog at 0x443) sees on
the real guest.  ``ioport80`` (POST codes, the kernel's io_delay) and ``ioportF0`` are QEMU's
dummies with the same behaviour.

Talking to a device that is there (the keyboard controller, the RTC, the PIC, a PCI function)
is not modelled: the access stops init as Unmodelled data, naming the port and the device.
"""
from __future__ import annotations

# (first, last, QEMU's region name): the named regions of "info mtree -f", AS "I/O", at reset,
# without the PCI functions' BARs (SeaBIOS moves pm-smbus from 0xb100 and maps the rest)
DEVICES = [
    (0x00, 0x07, "dma-chan"), (0x08, 0x0F, "dma-cont"), (0x20, 0x21, "pic"), (0x40, 0x43, "pit"),
    (0x60, 0x60, "i8042-data"), (0x61, 0x61, "pcspk"), (0x64, 0x64, "i8042-cmd"),
    (0x70, 0x70, "rtc-index"), (0x71, 0x71, "rtc"), (0x7E, 0x7F, "kvmvapic"),
    (0x81, 0x83, "dma-page"), (0x87, 0x87, "dma-page"), (0x89, 0x8B, "dma-page"),
    (0x8F, 0x8F, "dma-page"), (0x92, 0x92, "port92"), (0xA0, 0xA1, "pic"), (0xB2, 0xB3, "apm-io"),
    (0xC0, 0xCF, "dma-chan"), (0xD0, 0xDF, "dma-cont"), (0x170, 0x177, "ide"),
    (0x1CE, 0x1D1, "vbe"), (0x1F0, 0x1F7, "ide"), (0x376, 0x376, "ide"),
    (0x378, 0x37F, "parallel"), (0x3B4, 0x3B5, "vga"), (0x3BA, 0x3BA, "vga"),
    (0x3C0, 0x3CF, "vga"), (0x3D4, 0x3D5, "vga"), (0x3DA, 0x3DA, "vga"), (0x3F1, 0x3F5, "fdc"),
    (0x3F6, 0x3F6, "ide"), (0x3F7, 0x3F7, "fdc"), (0x3F8, 0x3FF, "serial"),
    (0x4D0, 0x4D1, "elcr"), (0x510, 0x511, "fwcfg"), (0x514, 0x51B, "fwcfg.dma"),
    (0xCF8, 0xCF8, "pci-conf-idx"), (0xCF9, 0xCF9, "piix3-reset-control"),
    (0xCFA, 0xCFB, "pci-conf-idx"), (0xCFC, 0xCFF, "pci-conf-data"), (0x5658, 0x5658, "vmport"),
    (0xAE00, 0xAE17, "acpi-pci-hotplug"), (0xAF00, 0xAF1F, "acpi-cpu-hotplug"),
    (0xAFE0, 0xAFE3, "acpi-gpe0"),
]
# "serial" is the 16550 QEMU adds for -nographic's console; its region is 0x3f8-0x3ff


def pci_bars(ioport_tree: dict | None) -> list[tuple[int, int, str]]:
    """The I/O BARs of PCI functions in the booted kernel's ioport tree."""
    out: list[tuple[int, int, str]] = []

    def walk(nodes):
        for n in nodes:
            if n["n"].startswith("0000:"):
                out.append((n["s"], n["e"], f"PCI {n['n']}"))
            walk(n["c"])
    if ioport_tree:
        walk(ioport_tree["c"])
    return out


class PortMap:
    def __init__(self, ioport_tree: dict | None):
        self.ranges = sorted(DEVICES + pci_bars(ioport_tree))

    def device(self, port: int, size: int) -> str | None:
        """The device that decodes any byte of [port, port + size), or None (unassigned)."""
        last = port + size - 1
        for lo, hi, name in self.ranges:
            if lo > last:
                break
            if hi >= port:
                return name
        return None
