"""Serial device bus drivers (drivers/tty/serdev/core.c): ``__serdev_device_driver_register``.

Linux 6.1 and 6.12: the driver's embedded ``device_driver`` gets the serdev bus (the built-in
bus named "serial", whose bus_type vmlinux does not export: driver.py's stand-in for it), the
owner, and ``probe_type`` PROBE_PREFER_ASYNCHRONOUS (so that I/O is possible in probe), then
``driver_register``: the driver is listed under /sys/bus/serial/drivers.  driver_register
first warns "Driver '%s' needs updating - please use bus_type methods" when the driver has its
own probe, remove or shutdown where the bus has one: serdev's bus has probe and remove in both
releases, and shutdown in 6.12 only (in 6.1 a driver's own shutdown is fine); for another
release a driver with its own shutdown is refused as Unmodelled.  The booted guests
have no serdev device (no serial port with a serdev child), so nothing is probed.
Unregistering is the inline ``serdev_device_driver_unregister``: module code calls
``driver_unregister`` itself.
"""
from __future__ import annotations

from ..layouts import layout
from ..registry import model

LAYOUT = layout("serdev")
PROBE_PREFER_ASYNCHRONOUS = 1


def _o(emu, struct: str, member: str) -> int:
    return LAYOUT.of(emu)[struct, member]


# does serdev_bus_type have a .shutdown, per release
BUS_SHUTDOWN = {(6, 1): False, (6, 12): True}


def _warn_own_methods(emu, d: int) -> None:
    def has(member):
        return emu.read_u(d + _o(emu, "device_driver", member), 8) != 0
    own_shutdown = has("shutdown")
    bus_shutdown = BUS_SHUTDOWN.get(tuple(emu.kernel_version[:2]))
    if own_shutdown and bus_shutdown is None:
        from ..errors import Unmodelled
        raise Unmodelled("__serdev_device_driver_register (whether this release's serdev bus "
                         "has a shutdown method)", what=emu.what)
    if has("probe") or has("remove") or (own_shutdown and bus_shutdown):
        name = emu.cstr(emu.read_u(d + _o(emu, "device_driver", "name"), 8), 256)
        emu.printk(4, f"Driver '{name.decode('latin-1')}' needs updating - please use "
                      "bus_type methods\n")


@model("__serdev_device_driver_register")
def __serdev_device_driver_register(emu, sdrv, owner):
    from .driver import driver_register, hidden_bus
    d = sdrv + _o(emu, "serdev_device_driver", "driver")
    _warn_own_methods(emu, d)
    emu.write_u(d + _o(emu, "device_driver", "bus"), 8, hidden_bus(emu, "serial"))
    emu.write_u(d + _o(emu, "device_driver", "owner"), 8, owner)
    emu.write_u(d + _o(emu, "device_driver", "probe_type"), 4, PROBE_PREFER_ASYNCHRONOUS)
    return driver_register(emu, d)
