"""TTY drivers and line disciplines (drivers/tty/tty_io.c, drivers/tty/tty_ldisc.c).

* ``__tty_alloc_driver(lines, owner, flags)`` (the ``tty_alloc_driver`` macro): ERR_PTR(-EINVAL)
  for 0 lines or a TTY_DRIVER_UNNUMBERED_NODE driver of more than one line; else a zeroed
  ``struct tty_driver`` with kref 1, ``num``, ``owner``, ``flags`` set and its zeroed arrays:
  ``ttys`` and ``termios`` (unless TTY_DRIVER_DEVPTS_MEM), ``ports`` (unless
  TTY_DRIVER_DYNAMIC_ALLOC) and ``cdevs`` (one per line, or a single one with DYNAMIC_ALLOC).
  Linux 6.1 and 6.12 do the same (``tty_set_operations`` and ``put_tty_driver`` are not exports
  of either: the first is an inline, the second is gone).
* ``tty_register_driver``: the char-device range — ``alloc_chrdev_region`` for major 0 (the
  major and first minor are written back), else ``register_chrdev_region`` — through the
  char_dev models of driver.py, so it is in /proc/devices under ``driver->name``; with
  DYNAMIC_ALLOC one cdev for the whole range (``tty_cdev_add``: cdev_alloc, owner set,
  cdev_add); the driver is put on the kernel's ``tty_drivers`` list; without
  TTY_DRIVER_DYNAMIC_DEV a tty device per line (``tty_register_device``, below); the
  /proc/tty/driver/<driver_name> entry when the driver has a ``driver_name`` and its ops a
  ``proc_show``; TTY_DRIVER_INSTALLED set.  Errors unwind as the kernel's do.
* ``tty_register_device(driver, index, parent)``: "<name>: Attempt to register invalid tty
  line number (<index>)" and ERR_PTR(-EINVAL) past ``num``; else a struct device named
  ``<name>`` (UNNUMBERED_NODE) or ``<name><index + name_base>`` (the sandbox models no PTY
  driver, whose names differ) in class tty, and without DYNAMIC_ALLOC its own cdev for that one
  minor.  The device is a zeroed struct device with ``devt`` and ``parent`` set (its kobject,
  class and sysfs files are the kernel's business; device_register is not run through the
  driver-core models).  ``tty_unregister_device`` undoes both.
* ``tty_unregister_driver``: the char range released, the driver off ``tty_drivers``
  (list_del poisons its node).  Devices stay until the last ``tty_driver_kref_put``, whose
  release (destruct_tty_driver) unregisters each line's device (without DYNAMIC_DEV), the proc
  entry and the DYNAMIC_ALLOC cdev (for an installed driver), then frees the arrays and the
  driver.
* ``tty_register_ldisc(ops)``: -EINVAL unless N_TTY <= ops->num < NR_LDISCS (31), else the slot is
  (over)written — 6.1 and 6.12 refuse nothing else; ``tty_unregister_ldisc`` clears it.
* ``tty_std_termios`` (data): the kernel's default termios, 38400 8N1 with the usual control
  characters (the bytes of Debian 6.1's and 6.12's vmlinux, identical).

What is not here: the kernel statics tty core points at — the ``tty_drivers`` list head,
``tty_fops`` (a tty cdev's ``ops`` stays NULL), the tty class and the proc directory
/proc/tty/driver — whose addresses the profile does not know; module code reads none of them.
The registrations are in ``emu.state["tty"]``: ``drivers`` (registered tty_driver addresses,
newest first as list_add puts them), ``devices`` (device name → driver, index, devt, device,
cdev), ``proc`` (driver_name → driver), ``ldiscs`` (number → ops).  A device name that is
already a tty device of a module stops as Unmodelled (the kernel's duplicate-name report, a
sysfs warning with a call trace, is not modelled); the booted kernel's own tty devices (tty0…,
ttyS…) use majors 4 and 5, which the char range check refuses first.

Layouts (Debian 6.1 amd64 = 6.12): ``struct tty_driver`` {kref 0, cdevs 8, owner 16,
driver_name 24, name 32, name_base 40, major 44, minor_start 48, num 52, type 56, subtype 58,
init_termios 60, flags 104, proc_entry 112, other 120, ttys 128, ports 136, termios 144,
driver_state 152, ops 160, tty_drivers 168} (184 bytes); ``struct tty_ldisc_ops`` {name 0,
num 8, …, owner 136}; ``struct ktermios`` 44 bytes; ``struct cdev`` owner 64; ``struct device``
{parent 64, devt 660} (752 bytes; 6.12: devt 676, 768 bytes).
"""
from __future__ import annotations

import struct as _struct

from ..errors import Unmodelled
from ..layouts import layout
from ..registry import data, model
from .driver import (MINORBITS, MINORMASK, _register_region,
                     cdev_add, cdev_alloc, cdev_del, err_ptr, register_chrdev_region,
                     unregister_chrdev_region)

EINVAL = 22
TTY_DRIVER_INSTALLED = 0x0001
TTY_DRIVER_DYNAMIC_DEV = 0x0008
TTY_DRIVER_DEVPTS_MEM = 0x0010
TTY_DRIVER_DYNAMIC_ALLOC = 0x0040
TTY_DRIVER_UNNUMBERED_NODE = 0x0080
N_TTY, NR_LDISCS = 0, 31             # include/uapi/linux/tty.h: N_CAN327 (30) + 1, 6.0 on
LIST_POISON1, LIST_POISON2 = 0xDEAD000000000100, 0xDEAD000000000122
PROC_ENTRY_SIZE = 0xc0                 # an opaque stand-in for the kernel's proc_dir_entry

LAYOUT = layout("tty")
DRV = "tty_driver"


def _o(emu, member: str, struct: str = DRV):
    return LAYOUT.of(emu)[struct, member]


def _rd(emu, drv: int, member: str, size: int = 8) -> int:
    return emu.read_u(drv + _o(emu, member), size)


def _wr(emu, drv: int, member: str, value: int, size: int = 8) -> None:
    emu.write_u(drv + _o(emu, member), size, value)


def _st(emu) -> dict:
    st = emu.state.setdefault("tty", {})
    for k, v in (("drivers", []), ("devices", {}), ("proc", {}), ("ldiscs", {})):
        st.setdefault(k, v)
    return st


def _name(emu, p: int) -> str:
    return emu.cstr(p, 256).decode("latin-1") if p else "(null)"


# --- allocation -------------------------------------------------------------------------------
@model("__tty_alloc_driver")
def __tty_alloc_driver(emu, lines, owner, flags):
    lines &= 0xFFFFFFFF
    if not lines or (flags & TTY_DRIVER_UNNUMBERED_NODE and lines > 1):
        return err_ptr(EINVAL)
    drv = emu.kmalloc(_o(emu, "sizeof"), zero=True)
    _wr(emu, drv, "kref", 1, 4)                           # kref_init
    _wr(emu, drv, "num", lines, 4)
    _wr(emu, drv, "owner", owner)
    _wr(emu, drv, "flags", flags)
    cdevs = 1
    if not flags & TTY_DRIVER_DEVPTS_MEM:
        _wr(emu, drv, "ttys", emu.kmalloc(8 * lines, zero=True))
        _wr(emu, drv, "termios", emu.kmalloc(8 * lines, zero=True))
    if not flags & TTY_DRIVER_DYNAMIC_ALLOC:
        _wr(emu, drv, "ports", emu.kmalloc(8 * lines, zero=True))
        cdevs = lines
    _wr(emu, drv, "cdevs", emu.kmalloc(8 * cdevs, zero=True))
    emu.note(f"{lines} lines")
    return drv


def _tty_cdev_add(emu, drv: int, dev: int, index: int, count: int) -> int:
    cdev = cdev_alloc(emu)
    emu.write_u(_rd(emu, drv, "cdevs") + 8 * index, 8, cdev)
    emu.write_u(cdev + _o(emu, "owner", "cdev"), 8, _rd(emu, drv, "owner"))
    err = cdev_add(emu, cdev, dev, count)
    if err:
        cdev_del(emu, cdev)                               # kobject_put: the last reference
    return err


# --- devices ----------------------------------------------------------------------------------
def _line_name(emu, drv: int, index: int) -> str:
    name = _name(emu, _rd(emu, drv, "name"))
    if _rd(emu, drv, "flags") & TTY_DRIVER_UNNUMBERED_NODE:
        return name
    return f"{name}{index + _rd(emu, drv, 'name_base', 4)}"


def _devt(emu, drv: int) -> int:
    return ((_rd(emu, drv, "major", 4) << MINORBITS) | _rd(emu, drv, "minor_start", 4)) \
        & 0xFFFFFFFF


@model("tty_register_device")
def tty_register_device(emu, drv, index, parent):
    index &= 0xFFFFFFFF
    if index >= _rd(emu, drv, "num", 4):
        emu.printk(3, f"{_name(emu, _rd(emu, drv, 'name'))}: Attempt to register invalid tty "
                      f"line number ({index if index < 1 << 31 else index - (1 << 32)})\n")
        return err_ptr(EINVAL)
    devices = _st(emu)["devices"]
    name = _line_name(emu, drv, index)
    if name in devices:
        raise Unmodelled(f"tty_register_device (a second tty device named {name}: the kernel's "
                         "duplicate-name report is not modelled)", what=emu.what)
    devt = (_devt(emu, drv) + index) & 0xFFFFFFFF
    dev = emu.kmalloc(_o(emu, "sizeof", "device"), zero=True)
    emu.write_u(dev + _o(emu, "devt", "device"), 4, devt)
    emu.write_u(dev + _o(emu, "parent", "device"), 8, parent)
    d = {"driver": drv, "index": index, "devt": devt, "dev": dev, "parent": parent, "cdev": 0}
    devices[name] = d
    flags = _rd(emu, drv, "flags")
    if not flags & TTY_DRIVER_DYNAMIC_ALLOC:
        termios = _rd(emu, drv, "termios")
        if termios:
            tp = emu.read_u(termios + 8 * index, 8)
            if tp:
                emu.write_u(termios + 8 * index, 8, 0)
                emu.kfree(tp)
        err = _tty_cdev_add(emu, drv, devt, index, 1)
        if err:
            del devices[name]
            emu.kfree(dev)
            return err_ptr(-err)
        d["cdev"] = emu.read_u(_rd(emu, drv, "cdevs") + 8 * index, 8)
    emu.note(f"/dev/{name} {devt >> MINORBITS}:{devt & MINORMASK}")
    return dev


@model("tty_unregister_device")
def tty_unregister_device(emu, drv, index):
    devt = (_devt(emu, drv) + (index & 0xFFFFFFFF)) & 0xFFFFFFFF
    devices = _st(emu)["devices"]
    for name, d in list(devices.items()):              # device_destroy(tty_class, devt)
        if d["devt"] == devt:
            del devices[name]
            emu.kfree(d["dev"])
            break
    if not _rd(emu, drv, "flags") & TTY_DRIVER_DYNAMIC_ALLOC:
        slot = _rd(emu, drv, "cdevs") + 8 * (index & 0xFFFFFFFF)
        cdev_del(emu, emu.read_u(slot, 8))
        emu.write_u(slot, 8, 0)


# --- registration -----------------------------------------------------------------------------
def _proc_register(emu, drv: int) -> None:
    dname = _rd(emu, drv, "driver_name")
    ops = _rd(emu, drv, "ops")
    if not dname or _rd(emu, drv, "proc_entry") or not ops:
        if not ops and dname and not _rd(emu, drv, "proc_entry"):
            raise emu.oops(["BUG: kernel NULL pointer dereference (proc_tty_register_driver: "
                            "driver->ops is NULL)"])
        return
    if not emu.read_u(ops + _o(emu, "proc_show", "tty_operations"), 8):
        return
    name = _name(emu, dname)
    proc = _st(emu)["proc"]
    if name in proc:
        # proc_create_single_data: "proc_dir_entry 'driver/<name>' already registered"
        emu.printk(4, f"proc_dir_entry 'driver/{name}' already registered\n")
        return
    ent = emu.kmalloc(PROC_ENTRY_SIZE, zero=True)
    proc[name] = {"driver": drv, "pde": ent}
    _wr(emu, drv, "proc_entry", ent)


def _proc_unregister(emu, drv: int) -> None:
    ent = _rd(emu, drv, "proc_entry")
    if not ent:
        return
    proc = _st(emu)["proc"]
    for name, p in list(proc.items()):
        if p["pde"] == ent:
            del proc[name]
            emu.kfree(ent)
    _wr(emu, drv, "proc_entry", 0)


@model("tty_register_driver")
def tty_register_driver(emu, drv):
    num = _rd(emu, drv, "num", 4)
    name = _rd(emu, drv, "name")
    if not _rd(emu, drv, "major", 4):
        r = _register_region(emu, 0, _rd(emu, drv, "minor_start", 4), num, name)
        if r < 0:
            return r
        _wr(emu, drv, "major", r, 4)
        error = 0
    else:
        error = register_chrdev_region(emu, _devt(emu, drv), num, name)
        if error < 0:
            return error
    dev = _devt(emu, drv)
    flags = _rd(emu, drv, "flags")
    if flags & TTY_DRIVER_DYNAMIC_ALLOC:
        error = _tty_cdev_add(emu, drv, dev, 0, num)
        if error:
            unregister_chrdev_region(emu, dev, num)
            return error
    st = _st(emu)
    st["drivers"].insert(0, drv)                          # list_add(&tty_drivers)
    if not flags & TTY_DRIVER_DYNAMIC_DEV:
        for i in range(num):
            d = tty_register_device(emu, drv, i, 0)
            if d >= (1 << 64) - 4095:
                for j in range(i - 1, -1, -1):
                    tty_unregister_device(emu, drv, j)
                _list_del(emu, drv)
                unregister_chrdev_region(emu, dev, num)
                return d - (1 << 64)
    _proc_register(emu, drv)
    _wr(emu, drv, "flags", _rd(emu, drv, "flags") | TTY_DRIVER_INSTALLED)
    emu.note(f"{_name(emu, name)}: {dev >> MINORBITS}:{dev & MINORMASK} +{num}")
    return 0


def _list_del(emu, drv: int) -> None:
    drivers = _st(emu)["drivers"]
    if drv in drivers:
        drivers.remove(drv)
    node = drv + _o(emu, "tty_drivers")
    emu.write_u(node, 8, LIST_POISON1)
    emu.write_u(node + 8, 8, LIST_POISON2)


@model("tty_unregister_driver")
def tty_unregister_driver(emu, drv):
    if drv not in _st(emu)["drivers"]:
        raise Unmodelled("tty_unregister_driver (a tty driver that is not registered: list_del "
                         "of an unlisted node)", what=emu.what)
    unregister_chrdev_region(emu, _devt(emu, drv), _rd(emu, drv, "num", 4))
    _list_del(emu, drv)


@model("tty_driver_kref_put")
def tty_driver_kref_put(emu, drv):
    ref = _rd(emu, drv, "kref", 4)
    if ref == 0:
        raise Unmodelled("tty_driver_kref_put (kref already 0: refcount_t underflow)",
                         what=emu.what)
    _wr(emu, drv, "kref", ref - 1, 4)
    if ref - 1:
        return
    flags = _rd(emu, drv, "flags")
    num = _rd(emu, drv, "num", 4)
    if flags & TTY_DRIVER_INSTALLED:
        termios = _rd(emu, drv, "termios")
        for i in range(num):
            tp = emu.read_u(termios + 8 * i, 8) if termios else 0
            if tp:
                emu.write_u(termios + 8 * i, 8, 0)
                emu.kfree(tp)
            if not flags & TTY_DRIVER_DYNAMIC_DEV:
                tty_unregister_device(emu, drv, i)
        _proc_unregister(emu, drv)
        if flags & TTY_DRIVER_DYNAMIC_ALLOC:
            cdev_del(emu, emu.read_u(_rd(emu, drv, "cdevs"), 8))
    for member in ("cdevs", "ports", "termios", "ttys"):
        p = _rd(emu, drv, member)
        if p:
            emu.kfree(p)
    emu.kfree(drv)


# --- line disciplines (drivers/tty/tty_ldisc.c) -------------------------------------------------
@model("tty_register_ldisc")
def tty_register_ldisc(emu, ops):
    num = emu.read_s(ops + _o(emu, "num", "tty_ldisc_ops"), 4)
    if num < N_TTY or num >= NR_LDISCS:
        return -EINVAL
    _st(emu)["ldiscs"][str(num)] = ops
    emu.note(f"ldisc {num}")
    return 0


@model("tty_unregister_ldisc")
def tty_unregister_ldisc(emu, ops):
    num = emu.read_s(ops + _o(emu, "num", "tty_ldisc_ops"), 4)
    _st(emu)["ldiscs"].pop(str(num), None)


# --- the default termios ----------------------------------------------------------------------
# c_iflag ICRNL|IXON, c_oflag OPOST|ONLCR, c_cflag B38400|CS8|CREAD|HUPCL, c_lflag ISIG|ICANON|
# ECHO|ECHOE|ECHOK|ECHOCTL|ECHOKE|IEXTEN, c_line N_TTY, c_cc INIT_C_CC (^C ^\ DEL ^U ^D, VTIME 0,
# VMIN 1, ^Q ^S ^Z, ^R ^O ^W ^V), c_ispeed = c_ospeed = 38400: read from Debian's vmlinux
# (6.1 and 6.12 alike); x86-64's struct ktermios is 44 bytes in both
STD_CC = bytes([3, 0x1c, 0x7f, 0x15, 4, 0, 1, 0, 0x11, 0x13, 0x1a, 0, 0x12, 0x0f, 0x17, 0x16,
                0, 0, 0])
STD_TERMIOS = (_struct.pack("<IIII", 0x500, 0x5, 0x4bf, 0x8a3b) + b"\0" + STD_CC
               + _struct.pack("<II", 38400, 38400))
assert len(STD_TERMIOS) == 44


@data("tty_std_termios", 44)
def tty_std_termios(emu) -> bytes:
    return STD_TERMIOS
