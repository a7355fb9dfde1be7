"""Compressed-memory pool back-ends (mm/zpool.c): ``zpool_register_driver`` and
``zpool_unregister_driver``.

register sets the driver's refcount to 0 and adds it to the kernel's list of drivers
(``emu.state["zpool"]``, by type name); unregister refuses with -EBUSY while a pool holds a
reference (refcount > 0; the kernel WARNs on a negative one) and otherwise takes it off the
list.  The list links themselves (``driver->list`` into the kernel's static ``drivers_head``,
whose address the profile does not know) are not written: no module reads them.
"""
from __future__ import annotations

from ..layouts import layout
from ..registry import model

LAYOUT = layout("zpool")
EBUSY = 16


def _o(emu, member: str) -> int:
    return LAYOUT.of(emu)["zpool_driver", member]


def _drivers(emu) -> dict:
    return emu.state.setdefault("zpool", {})


@model("zpool_register_driver")
def zpool_register_driver(emu, driver):
    emu.write_u(driver + _o(emu, "refcount"), 4, 0)
    name = emu.cstr(emu.read_u(driver + _o(emu, "type"), 8), 64).decode("latin-1")
    _drivers(emu)[str(driver)] = name
    emu.note(name)


@model("zpool_unregister_driver")
def zpool_unregister_driver(emu, driver):
    ref = emu.read_s(driver + _o(emu, "refcount"), 4)
    if ref < 0:
        emu.printk(4, "WARNING: CPU: 0 at mm/zpool.c zpool_unregister_driver\n")
    if ref > 0:
        return -EBUSY
    _drivers(emu).pop(str(driver), None)
    return 0
