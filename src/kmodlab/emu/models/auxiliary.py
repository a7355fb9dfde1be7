"""The auxiliary bus (drivers/base/auxiliary.c): ``__auxiliary_driver_register`` and
``auxiliary_driver_unregister``.

Registering names the driver "<modname>.<auxdrv->name>" (or just the module's name when the
driver has none) in a kmalloc'd string, as kasprintf does, sets owner, bus and mod_name, and
hands the driver to driver_register (emu/models/driver.py) on the built-in "auxiliary" bus,
whose bus_type vmlinux does not export.  Auxiliary devices are created by other drivers' probes
(mlx5, ice, SOF …); the booted machine has none, so nothing is matched or probed.  A driver
without probe or id_table makes the kernel WARN (a backtrace the sandbox does not print): that
case stops as Unmodelled.  Unregistering is driver_unregister, then the name is freed.
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..layouts import layout
from ..registry import model
from .driver import DRV_BUS, DRV_MOD_NAME, DRV_NAME, DRV_OWNER, _o, driver_register, driver_unregister, hidden_bus

LAYOUT = layout("auxiliary")


def _a(emu, member: str) -> int:
    return LAYOUT.of(emu)["auxiliary_driver", member]


def _kasprintf(emu, text: bytes) -> int:
    p = emu.kmalloc(len(text) + 1)
    emu.write(p, text + b"\0")
    return p


@model("__auxiliary_driver_register")
def __auxiliary_driver_register(emu, auxdrv, owner, modname):
    if not emu.read_u(auxdrv + _a(emu, "probe"), 8) or not emu.read_u(auxdrv + _a(emu, "id_table"), 8):
        raise Unmodelled("__auxiliary_driver_register (WARN_ON: a driver without probe or "
                         "id_table)", what=emu.what)
    mod = emu.cstr(modname, 64) if modname else b"(null)"
    name_p = emu.read_u(auxdrv + _a(emu, "name"), 8)
    name = mod + b"." + emu.cstr(name_p, 256) if name_p else mod
    drv = auxdrv + _a(emu, "driver")
    emu.write_u(drv + _o(emu, DRV_NAME), 8, _kasprintf(emu, name))
    emu.write_u(drv + _o(emu, DRV_OWNER), 8, owner)
    emu.write_u(drv + _o(emu, DRV_BUS), 8, hidden_bus(emu, "auxiliary"))
    emu.write_u(drv + _o(emu, DRV_MOD_NAME), 8, modname)
    ret = driver_register(emu, drv)
    if ret:
        emu.kfree(emu.read_u(drv + _o(emu, DRV_NAME), 8))
    return ret


@model("auxiliary_driver_unregister")
def auxiliary_driver_unregister(emu, auxdrv):
    drv = auxdrv + _a(emu, "driver")
    driver_unregister(emu, drv)
    emu.kfree(emu.read_u(drv + _o(emu, DRV_NAME), 8))
