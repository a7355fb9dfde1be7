"""The driver core and its buses (drivers/base/{class,bus,driver,platform}.c, drivers/pci,
drivers/char/misc.c, fs/char_dev.c): registrations a module's init makes and exit undoes.

Every registration is recorded in ``emu.state["driver"]`` (JSON, persisted by the machine) under
its kind and name, so that exit's unregister finds it and a second registration of the same name
gets the kernel's answer: a class or bus whose sysfs directory already exists → -EEXIST (sysfs
warns "cannot create duplicate filename"), a driver already on its bus → -EBUSY ("Error: Driver
'%s' is already registered, aborting..."), a taken misc minor or char-device range → -EBUSY.

**No devices.**  The sandbox machine has no PCI, platform, USB … devices, so registering a
driver binds nothing: ``driver_attach`` walks an empty device list and the driver's ``probe``
is never called — the honest answer of a machine without that hardware.  Buses registered by
modules likewise start empty.

Layouts — read from the running kernel's BTF (emu/layouts.py); Debian 6.1 amd64's, for
reference: ``struct device_driver`` {name 0, bus 8, owner 16, mod_name 24,
…, groups 104, dev_groups 112, …, p 136} (144 bytes); ``struct pci_driver`` {node 0, name 16,
id_table 24, probe 32, …, err_handler 96, groups 104, dev_groups 112, driver 120, dynids 264};
``struct platform_driver`` {probe 0, remove 8, remove_new 16 (backported to Debian's 6.1),
shutdown 24, suspend 32, resume 40, driver 48}; ``struct class`` {name 0, owner 8, …, p 112};
``struct bus_type`` {name 0, …, p 168}; ``struct miscdevice`` {minor 0, name 8, fops 16,
list 24, parent 40, this_device 48}.  The private objects the kernel hangs off ``p``
(``driver_private``, ``subsys_private``) and the ``struct device`` of a misc device are opaque
heap objects here: module code does not look inside them.
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..layouts import layout
from ..registry import model
from .locking import init_list_head

EINVAL, EBUSY, EEXIST, ENOMEM, ENODEV = 22, 16, 17, 12, 19
MAX_ERRNO = 4095
MASK64 = (1 << 64) - 1
DRV_NAME = ("device_driver", "name")
DRV_BUS = ("device_driver", "bus")
DRV_OWNER = ("device_driver", "owner")
DRV_MOD_NAME = ("device_driver", "mod_name")
DRV_GROUPS = ("device_driver", "groups")
DRV_DEV_GROUPS = ("device_driver", "dev_groups")
DRV_P = ("device_driver", "p")
PCI_NAME = ("pci_driver", "name")
PCI_GROUPS = ("pci_driver", "groups")
PCI_DEV_GROUPS = ("pci_driver", "dev_groups")
PCI_DRIVER = ("pci_driver", "driver")
PCI_DYNIDS = ("pci_driver", "dynids")
DYNIDS_LOCK, DYNIDS_LIST = ("pci_dynids", "lock"), ("pci_dynids", "list")
PLATFORM_DRIVER = ("platform_driver", "driver")
CLASS_NAME = ("class", "name")
CLASS_OWNER = ("class", "owner")
CLASS_RELEASE = ("class", "class_release")
CLASS_P = ("class", "p")
CLASS_SIZE = ("class", "sizeof")
BUS_NAME = ("bus_type", "name")
BUS_P = ("bus_type", "p")
PRIVATE_SIZE = 0x100
# Struct members are (struct, member) keys of emu/layouts.py: this file reads every offset from
# the running kernel's BTF (``_o(emu, KEY)``); a member the kernel lacks (struct class's ``p``
# and ``owner`` after Linux 6.4) stops the model that needs it as Unmodelled.
LAYOUT = layout("driver")


def _o(emu, key: tuple[str, str]):
    return LAYOUT.of(emu)[key]


def _set_p(emu, obj: int, key: tuple[str, str], value: int) -> None:
    """obj->p = value where this kernel's struct has ``p`` (Linux 6.1's bus_type and class);
    from 6.4 on the kernel finds a bus's or class's subsys_private by walking its kset
    (bus_to_subsys, class_to_subsys), which module code never does: nothing is written."""
    try:
        off = _o(emu, key)
    except Unmodelled:
        return
    emu.write_u(obj + off, 8, value)
# buses the kernel may register at boot: those whose bus_type is an export of vmlinux itself
# (not of a module) are there before any module loads; drivers may join them
BOOT_BUSES = {"pci_bus_type": "pci", "platform_bus_type": "platform", "usb_bus_type": "usb",
              "i2c_bus_type": "i2c", "spi_bus_type": "spi", "serio_bus": "serio",
              "acpi_bus_type": "acpi", "pnp_bus_type": "pnp", "hid_bus_type": "hid",
              "virtio_bus": "virtio", "amba_bustype": "amba", "gameport_bus": "gameport",
              "mdio_bus_type": "mdio_bus", "sdio_bus_type": "sdio", "mmc_bus_type": "mmc"}


def boot_buses(emu) -> dict[int, str]:
    """bus_type address → name, for the buses built into the running vmlinux."""
    out = {}
    for export, name in BOOT_BUSES.items():
        e = emu.exports.get(export)
        if e is not None and getattr(e, "owner", "vmlinux") == "vmlinux":
            out[e.addr] = name
    return out


def err_ptr(e: int) -> int:
    return (-e) & MASK64


def is_err(p: int) -> bool:
    return p >= (1 << 64) - MAX_ERRNO


def _reg(emu, kind: str) -> dict:
    return emu.state.setdefault("driver", {}).setdefault(kind, {})


def _name(emu, p: int) -> str:
    return emu.cstr(p, 256).decode("latin-1") if p else ""


# --- classes ----------------------------------------------------------------------------------
@model("__class_register")
def __class_register(emu, cls, key):
    """/sys/class/<name>: -EEXIST if a class of that name exists, else cls->p is set."""
    name = _name(emu, emu.read_u(cls + _o(emu, CLASS_NAME), 8))
    classes = _reg(emu, "class")
    if name in classes:
        emu.printk(3, f"sysfs: cannot create duplicate filename '/class/{name}'\n")
        return -EEXIST
    p = emu.kmalloc(PRIVATE_SIZE, zero=True)
    _set_p(emu, cls, CLASS_P, p)
    classes[name] = {"cls": cls, "p": p}
    emu.note(name)
    return 0


@model("class_register")
def class_register(emu, cls):
    """Linux 6.4+'s class_register(const struct class *): as __class_register, without the
    lockdep key (the class's subsys_private is the kernel's, found by class_to_subsys)."""
    return __class_register(emu, cls, 0)


@model("class_unregister")
def class_unregister(emu, cls):
    name = _name(emu, emu.read_u(cls + _o(emu, CLASS_NAME), 8))
    c = _reg(emu, "class").pop(name, None)
    if c is None or c["cls"] != cls:
        if c is not None:
            _reg(emu, "class")[name] = c
        emu.printk(4, f"class_unregister: class '{name}' was not registered\n")
        return
    _set_p(emu, cls, CLASS_P, 0)
    emu.kfree(c["p"])


@model("__class_create")
def __class_create(emu, owner, name, key):
    cls = emu.kmalloc(_o(emu, CLASS_SIZE), zero=True)
    emu.write_u(cls + _o(emu, CLASS_NAME), 8, name)
    emu.write_u(cls + _o(emu, CLASS_OWNER), 8, owner)
    err = __class_register(emu, cls, key)
    if err:
        emu.kfree(cls)
        return err_ptr(-err)
    _reg(emu, "class")[_name(emu, name)]["created"] = True
    return cls


@model("class_create")
def class_create(emu, name):
    """Linux 6.4+'s class_create(name): a zeroed struct class (no ``owner`` member any more)
    with that name, registered; ERR_PTR(-EEXIST) for a name already taken."""
    cls = emu.kmalloc(_o(emu, CLASS_SIZE), zero=True)
    emu.write_u(cls + _o(emu, CLASS_NAME), 8, name)
    err = __class_register(emu, cls, 0)
    if err:
        emu.kfree(cls)
        return err_ptr(-err)
    _reg(emu, "class")[_name(emu, name)]["created"] = True
    return cls


@model("class_destroy")
def class_destroy(emu, cls):
    if not cls or is_err(cls):
        return
    name = _name(emu, emu.read_u(cls + _o(emu, CLASS_NAME), 8))
    created = _reg(emu, "class").get(name, {}).get("created")
    class_unregister(emu, cls)
    if created:
        emu.kfree(cls)


# --- buses ------------------------------------------------------------------------------------
def bus_registered(emu, bus: int) -> str | None:
    """The bus's name if it is registered (at boot, or by a module), else None."""
    name = boot_buses(emu).get(bus)
    if name:
        return name
    for name, b in _reg(emu, "bus").items():
        if b["bus"] == bus:
            return name
    return None


@model("bus_register")
def bus_register(emu, bus):
    name = _name(emu, emu.read_u(bus + _o(emu, BUS_NAME), 8))
    if name in _reg(emu, "bus") or name in boot_buses(emu).values():
        emu.printk(3, f"sysfs: cannot create duplicate filename '/bus/{name}'\n")
        return -EEXIST
    p = emu.kmalloc(PRIVATE_SIZE, zero=True)
    _set_p(emu, bus, BUS_P, p)
    _reg(emu, "bus")[name] = {"bus": bus, "p": p}
    # "bus: '%s': registered" is a pr_debug: a dynamic-debug site that is off by default, so the
    # real kernel prints nothing here (seen on Debian 6.1 under QEMU)
    return 0


@model("bus_unregister")
def bus_unregister(emu, bus):
    name = _name(emu, emu.read_u(bus + _o(emu, BUS_NAME), 8))
    b = _reg(emu, "bus").pop(name, None)          # (pr_debug "unregistering": off by default)
    if b:
        _set_p(emu, bus, BUS_P, 0)
        emu.kfree(b["p"])


# --- drivers ----------------------------------------------------------------------------------
@model("driver_register")
def driver_register(emu, drv):
    """Adds the driver to its bus; the bus has no devices, so nothing is probed."""
    name = _name(emu, emu.read_u(drv + _o(emu, DRV_NAME), 8))
    bus = emu.read_u(drv + _o(emu, DRV_BUS), 8)
    bus_name = bus_registered(emu, bus) if bus else None
    if bus_name is None:
        bname = _name(emu, emu.read_u(bus + _o(emu, BUS_NAME), 8)) if bus else "(null)"
        emu.printk(3, f"Driver '{name}' was unable to register with bus_type '{bname}' because "
                      "the bus was not initialized.\n")
        return -EINVAL
    drivers = _reg(emu, "bus_driver")
    key = f"{bus_name}/{name}"
    if key in drivers:
        emu.printk(3, f"Error: Driver '{name}' is already registered, aborting...\n")
        return -EBUSY
    p = emu.kmalloc(PRIVATE_SIZE, zero=True)
    emu.write_u(drv + _o(emu, DRV_P), 8, p)
    drivers[key] = {"drv": drv, "p": p, "probed": 0}
    emu.note(f"{key}: no devices, probe not called")
    return 0


@model("driver_unregister")
def driver_unregister(emu, drv):
    drivers = _reg(emu, "bus_driver")
    for key, d in list(drivers.items()):
        if d["drv"] == drv:
            del drivers[key]
            emu.write_u(drv + _o(emu, DRV_P), 8, 0)
            emu.kfree(d["p"])
            return
    emu.printk(4, "Unexpected driver unregister!\n")


@model("__pci_register_driver")
def __pci_register_driver(emu, drv, owner, mod_name):
    """pci_register_driver: the machine has no PCI devices, so probe is never called."""
    d = drv + _o(emu, PCI_DRIVER)
    emu.write_u(d + _o(emu, DRV_NAME), 8, emu.read_u(drv + _o(emu, PCI_NAME), 8))
    emu.write_u(d + _o(emu, DRV_BUS), 8, emu.export_addr("pci_bus_type") or 0)
    emu.write_u(d + _o(emu, DRV_OWNER), 8, owner)
    emu.write_u(d + _o(emu, DRV_MOD_NAME), 8, mod_name)
    emu.write_u(d + _o(emu, DRV_GROUPS), 8, emu.read_u(drv + _o(emu, PCI_GROUPS), 8))
    emu.write_u(d + _o(emu, DRV_DEV_GROUPS), 8, emu.read_u(drv + _o(emu, PCI_DEV_GROUPS), 8))
    dynids = drv + _o(emu, PCI_DYNIDS)
    emu.write_u(dynids + _o(emu, DYNIDS_LOCK), 4, 0)      # spin_lock_init(&dynids.lock)
    init_list_head(emu, dynids + _o(emu, DYNIDS_LIST))
    return driver_register(emu, d)


# i2c_driver {class, probe, remove, probe_new, shutdown, alert, command, driver @56, id_table,
# detect, address_list, clients @224, flags}; spi_driver {id_table, probe, remove, shutdown,
# driver @32}; serio_driver {description, id_table, manual_bind @16, 6 callbacks, driver @80}
# (offsets read from the relocations of Debian's lm75, mcp4922 and serio_raw)
I2C_DRIVER = ("i2c_driver", "driver")
I2C_CLIENTS = ("i2c_driver", "clients")
SPI_DRIVER = ("spi_driver", "driver")
SPI_ID_TABLE = ("spi_driver", "id_table")
SERIO_DRIVER = ("serio_driver", "driver")
SERIO_MANUAL_BIND = ("serio_driver", "manual_bind")
DRV_OF_MATCH = ("device_driver", "of_match_table")
OF_ID_SIZE = ("of_device_id", "sizeof")
OF_COMPATIBLE = ("of_device_id", "compatible")
OF_COMPATIBLE_LEN = 128                      # char compatible[128]
SPI_ID_SIZE = ("spi_device_id", "sizeof")
SPI_NAME_SIZE = 32                           # char name[SPI_NAME_SIZE]


@model("i2c_register_driver")
def i2c_register_driver(emu, owner, drv):
    """drivers/i2c/i2c-core-base.c: owner and bus set, clients list initialised, then
    driver_register; the sandbox has no i2c adapter, so nothing is detected or probed."""
    d = drv + _o(emu, I2C_DRIVER)
    emu.write_u(d + _o(emu, DRV_OWNER), 8, owner)
    emu.write_u(d + _o(emu, DRV_BUS), 8, emu.export_addr("i2c_bus_type") or 0)
    init_list_head(emu, drv + _o(emu, I2C_CLIENTS))
    return driver_register(emu, d)


@model("i2c_del_driver")
def i2c_del_driver(emu, drv):
    driver_unregister(emu, drv + _o(emu, I2C_DRIVER))


@model("__spi_register_driver")
def __spi_register_driver(emu, owner, sdrv):
    """drivers/spi/spi.c: owner and bus set; every DT compatible of the driver's
    of_match_table must have a spi_device_id (or match the driver's name), after its vendor
    prefix, else a warning per compatible; then driver_register (no SPI controller here)."""
    d = sdrv + _o(emu, SPI_DRIVER)
    emu.write_u(d + _o(emu, DRV_OWNER), 8, owner)
    emu.write_u(d + _o(emu, DRV_BUS), 8, emu.export_addr("spi_bus_type") or 0)
    name = _name(emu, emu.read_u(d + _o(emu, DRV_NAME), 8))
    of_id = emu.read_u(d + _o(emu, DRV_OF_MATCH), 8)
    ids = emu.read_u(sdrv + _o(emu, SPI_ID_TABLE), 8)
    while of_id:
        compatible = emu.read(of_id + _o(emu, OF_COMPATIBLE), OF_COMPATIBLE_LEN)
        compatible = compatible.split(b"\0", 1)[0]
        if not compatible:
            break
        of_name = compatible.split(b",", 1)[1] if b"," in compatible else compatible
        if ids:
            found, a = False, ids
            while True:
                n = emu.read(a, SPI_NAME_SIZE).split(b"\0", 1)[0]
                if not n:
                    break
                if n == of_name:
                    found = True
                    break
                a += _o(emu, SPI_ID_SIZE)
        else:
            found = name.encode("latin-1") == of_name
        if not found:
            emu.printk(4, f"SPI driver {name} has no spi_device_id for "
                          f"{compatible.decode('latin-1')}\n")
        of_id += _o(emu, OF_ID_SIZE)
    return driver_register(emu, d)


@model("__serio_register_driver")
def __serio_register_driver(emu, drv, owner, mod_name):
    """drivers/input/serio/serio.c: bus, owner and mod_name set, driver_register with
    manual_bind forced on, then the original bind mode back and a rescan queued for kseriod
    (the sandbox has no serio port: nothing to bind)."""
    d = drv + _o(emu, SERIO_DRIVER)
    emu.write_u(d + _o(emu, DRV_BUS), 8, emu.export_addr("serio_bus") or 0)
    emu.write_u(d + _o(emu, DRV_OWNER), 8, owner)
    emu.write_u(d + _o(emu, DRV_MOD_NAME), 8, mod_name)
    manual = emu.read_u(drv + _o(emu, SERIO_MANUAL_BIND), 1)
    emu.write_u(drv + _o(emu, SERIO_MANUAL_BIND), 1, 1)
    err = driver_register(emu, d)
    if err:
        emu.printk(3, f"serio: driver_register() failed for "
                      f"{_name(emu, emu.read_u(d + _o(emu, DRV_NAME), 8))}, error: {err}\n")
        return err
    emu.write_u(drv + _o(emu, SERIO_MANUAL_BIND), 1, manual)
    return 0


@model("serio_unregister_driver")
def serio_unregister_driver(emu, drv):
    driver_unregister(emu, drv + _o(emu, SERIO_DRIVER))


@model("pci_unregister_driver")
def pci_unregister_driver(emu, drv):
    driver_unregister(emu, drv + _o(emu, PCI_DRIVER))


@model("__platform_driver_register")
def __platform_driver_register(emu, drv, owner):
    """platform_driver_register: no platform device matches in the sandbox; probe not called."""
    d = drv + _o(emu, PLATFORM_DRIVER)
    emu.write_u(d + _o(emu, DRV_OWNER), 8, owner)
    emu.write_u(d + _o(emu, DRV_BUS), 8, emu.export_addr("platform_bus_type") or 0)
    return driver_register(emu, d)


@model("platform_driver_unregister")
def platform_driver_unregister(emu, drv):
    driver_unregister(emu, drv + _o(emu, PLATFORM_DRIVER))


# --- misc devices -------------------------------------------------------------------------------
MISC_DYNAMIC_MINOR, DYNAMIC_MINORS = 255, 128
MISC_MINOR = ("miscdevice", "minor")
MISC_NAME = ("miscdevice", "name")
MISC_LIST = ("miscdevice", "list")
MISC_THIS_DEVICE = ("miscdevice", "this_device")
DEVICE_SIZE = 0x2f8
# misc devices Debian's 6.1 kernel has registered when it has booted (its /proc/misc under QEMU,
# before any module: built-in drivers; the three dynamic minors were taken first, from 127 down)
BOOT_MISC = {"vga_arbiter": 127, "userfaultfd": 126, "cpu_dma_latency": 125, "psaux": 1,
             "hpet": 228, "snapshot": 231, "hw_random": 183}
# Debian 13's 6.12.118 (its /proc/misc under QEMU): dynamic minors are handed out from 256 up
# (misc_minor_alloc: ida_alloc_range(MISC_DYNAMIC_MINOR + 1, MINORMASK)); fuse is built in
BOOT_MISC_612 = {"vga_arbiter": 256, "userfaultfd": 257, "udmabuf": 258, "cpu_dma_latency": 259,
                 "psaux": 1, "hpet": 228, "fuse": 229, "snapshot": 231, "hw_random": 183}


def boot_misc(emu) -> dict[str, int]:
    """The booted kernel's misc devices, by its release."""
    return BOOT_MISC_612 if emu.kernel_version >= (6, 12) else BOOT_MISC


def misc_dynamic_order(version: tuple) -> range:
    """The order in which misc.c gives out dynamic minors: 6.1 from 127 down; 6.12.118 from
    256 up to MINORMASK."""
    return range(MISC_DYNAMIC_MINOR + 1, MINORMASK + 1) if version >= (6, 12) else \
        range(DYNAMIC_MINORS - 1, -1, -1)


@model("misc_register")
def misc_register(emu, misc):
    """A misc char device (major 10): a dynamic minor as the release's misc.c gives it out."""
    miscs = _reg(emu, "misc")
    minor = emu.read_u(misc + _o(emu, MISC_MINOR), 4)
    name = _name(emu, emu.read_u(misc + _o(emu, MISC_NAME), 8))
    boot = boot_misc(emu)
    used = {m["minor"] for m in miscs.values()} | set(boot.values())
    init_list_head(emu, misc + _o(emu, MISC_LIST))
    if minor == MISC_DYNAMIC_MINOR:
        minor = next((m for m in misc_dynamic_order(emu.kernel_version) if m not in used), None)
        if minor is None:
            return -EBUSY
        emu.write_u(misc + _o(emu, MISC_MINOR), 4, minor)
    elif minor in used:
        return -EBUSY
    if name in miscs or name in boot:        # device_create: /sys/class/misc/<name> exists
        emu.printk(3, f"sysfs: cannot create duplicate filename '/devices/virtual/misc/{name}'\n")
        return -EEXIST
    dev = emu.kmalloc(DEVICE_SIZE, zero=True)
    emu.write_u(misc + _o(emu, MISC_THIS_DEVICE), 8, dev)
    miscs[name] = {"misc": misc, "minor": minor, "dev": dev}
    emu.note(f"{name}: 10:{minor}")
    return 0


@model("misc_deregister")
def misc_deregister(emu, misc):
    miscs = _reg(emu, "misc")
    for name, m in list(miscs.items()):
        if m["misc"] == misc:
            del miscs[name]
            emu.kfree(m["dev"])
            emu.write_u(misc + _o(emu, MISC_THIS_DEVICE), 8, 0)
            return


# --- character device numbers (fs/char_dev.c) ---------------------------------------------------
MINORBITS = 20
MINORMASK = (1 << MINORBITS) - 1
CHRDEV_MAJOR_MAX = 512
CHRDEV_MAJOR_DYN_END, CHRDEV_MAJOR_DYN_EXT_START, CHRDEV_MAJOR_DYN_EXT_END = 234, 511, 384
# char majors Debian's 6.1 kernel holds once booted (its /proc/devices under QEMU, before any
# module): the fixed ones, and the dynamic ones its built-in drivers took from 254 down
BOOT_CHRDEVS = [(1, 0, 256, "mem"), (4, 0, 64, "/dev/vc/0"), (4, 64, 192, "tty"),
                (5, 0, 1, "/dev/tty"), (5, 1, 1, "/dev/console"), (5, 2, 1, "/dev/ptmx"),
                (7, 0, 256, "vcs"), (10, 0, 256, "misc"), (13, 0, 256, "input"),
                (29, 0, 256, "fb"), (128, 0, 1 << 20, "ptm"), (136, 0, 1 << 20, "pts"),
                (153, 0, 256, "spi")] + \
               [(major, 0, 1 << 20, name) for major, name in (
                   (254, "gpiochip"), (253, "tpm"), (252, "dax"), (251, "rtc"), (250, "pps"),
                   (249, "ptp"), (248, "bsg"), (247, "cxl"))]
# Debian 13's 6.12.118 (its /proc/devices under QEMU): nine dynamic majors at boot
BOOT_CHRDEVS_612 = BOOT_CHRDEVS[:13] + [(major, 0, 1 << 20, name) for major, name in (
    (254, "gpiochip"), (253, "tpm"), (252, "dax"), (251, "dma_heap"), (250, "cxl"),
    (249, "rtc"), (248, "pps"), (247, "ptp"), (246, "bsg"))]


def boot_chrdevs(emu) -> list:
    return BOOT_CHRDEVS_612 if emu.kernel_version >= (6, 12) else BOOT_CHRDEVS


def _chrdevs(emu) -> list:
    return emu.state.setdefault("chrdev", [])


def _all_ranges(emu):
    yield from ((a, b, c, d, False) for a, b, c, d in boot_chrdevs(emu))
    yield from ((r["major"], r["minor"], r["count"], r["name"], True) for r in _chrdevs(emu))


def _find_dynamic_major(emu) -> int:
    taken = {r[0] for r in _all_ranges(emu)}
    for i in range(254, CHRDEV_MAJOR_DYN_END - 1, -1):
        if i not in taken:
            return i
    for i in range(CHRDEV_MAJOR_DYN_EXT_START, CHRDEV_MAJOR_DYN_EXT_END - 1, -1):
        if i not in taken:
            return i
    return -EBUSY


def _register_region(emu, major: int, baseminor: int, count: int, name: int) -> int:
    """__register_chrdev_region: the major (0 = dynamic) or -errno."""
    if major >= CHRDEV_MAJOR_MAX:
        emu.printk(3, f"CHRDEV \"{_name(emu, name)}\" major requested ({major}) is greater "
                      f"than the maximum ({CHRDEV_MAJOR_MAX - 1})\n")
        return -EINVAL
    if count > MINORMASK + 1 - baseminor:
        emu.printk(3, f"CHRDEV \"{_name(emu, name)}\" minor range requested ({baseminor}-"
                      f"{baseminor + count - 1}) is out of range of maximum range (0-"
                      f"{MINORMASK}) for a single major\n")
        return -EINVAL
    if major == 0:
        major = _find_dynamic_major(emu)
        if major < 0:
            emu.printk(3, f"CHRDEV \"{_name(emu, name)}\" dynamic allocation region is full\n")
            return major
    for m, lo, n, _nm, _mod in _all_ranges(emu):
        if m == major and lo < baseminor + count and baseminor < lo + n:
            return -EBUSY
    _chrdevs(emu).append({"major": major, "minor": baseminor, "count": count,
                          "name": _name(emu, name)})
    return major


@model("register_chrdev_region")
def register_chrdev_region(emu, frm, count, name):
    to = frm + count
    n = frm
    done = []
    while n < to:
        nxt = min(((n >> MINORBITS) + 1) << MINORBITS, to)
        r = _register_region(emu, n >> MINORBITS, n & MINORMASK, nxt - n, name)
        if r < 0:
            for m, lo, c in done:
                _unregister_region(emu, m, lo, c)
            return r
        done.append((n >> MINORBITS, n & MINORMASK, nxt - n))
        n = nxt
    return 0


@model("alloc_chrdev_region")
def alloc_chrdev_region(emu, dev, baseminor, count, name):
    r = _register_region(emu, 0, baseminor, count, name)
    if r < 0:
        return r
    emu.write_u(dev, 4, (r << MINORBITS) | baseminor)
    emu.note(f"major {r}")
    return 0


def _unregister_region(emu, major: int, minor: int, count: int) -> None:
    rs = _chrdevs(emu)
    for i, r in enumerate(rs):
        if (r["major"], r["minor"], r["count"]) == (major, minor, count):
            del rs[i]
            return


@model("unregister_chrdev_region")
def unregister_chrdev_region(emu, frm, count):
    to = frm + count
    n = frm
    while n < to:
        nxt = min(((n >> MINORBITS) + 1) << MINORBITS, to)
        _unregister_region(emu, n >> MINORBITS, n & MINORMASK, nxt - n)
        n = nxt


@model("__register_chrdev")
def __register_chrdev(emu, major, baseminor, count, name, fops):
    """The major for major 0 (dynamic), else 0; the cdev is added with the region."""
    r = _register_region(emu, major, baseminor, count, name)
    if r < 0:
        return r
    _chrdevs(emu)[-1]["fops"] = fops
    return 0 if major else r


@model("__unregister_chrdev")
def __unregister_chrdev(emu, major, baseminor, count, name):
    _unregister_region(emu, major, baseminor, count)


# --- class interfaces ---------------------------------------------------------------------------
CI_NODE = ("class_interface", "node")
ATTR_NAME, NB_CALL = ("attribute", "name"), ("notifier_block", "notifier_call")
CI_CLASS = ("class_interface", "class")
CI_ADD_DEV = ("class_interface", "add_dev")


@model("class_interface_register")
def class_interface_register(emu, intf):
    """Lists the interface on its class and calls ``add_dev`` for the class's devices: a class
    a module registered has none here (no devices are created); a class of the kernel's own
    would have devices the sandbox does not model, so that is Unmodelled."""
    if not intf or not emu.read_u(intf + _o(emu, CI_CLASS), 8):
        return -ENODEV
    cls = emu.read_u(intf + _o(emu, CI_CLASS), 8)
    name = _name(emu, emu.read_u(cls + _o(emu, CLASS_NAME), 8))
    c = _reg(emu, "class").get(name)
    if c is None or c["cls"] != cls:
        raise Unmodelled(f"class_interface_register (devices of class {name})", what=emu.what)
    c.setdefault("interfaces", []).append(intf)
    return 0


@model("class_interface_unregister")
def class_interface_unregister(emu, intf):
    cls = emu.read_u(intf + _o(emu, CI_CLASS), 8)
    if not cls:
        return
    c = _reg(emu, "class").get(_name(emu, emu.read_u(cls + _o(emu, CLASS_NAME), 8)))
    if c and intf in c.get("interfaces", []):
        c["interfaces"].remove(intf)


@model("bus_register_notifier")
def bus_register_notifier(emu, bus, nb):
    """The bus's notifier chain (in its subsys_private): told of devices added or removed —
    none are, in the sandbox.  -EEXIST for a block already on the chain."""
    name = bus_registered(emu, bus)
    if name is None:
        raise emu.oops(["BUG: kernel NULL pointer dereference (bus_register_notifier on a bus "
                        "that is not registered: bus->p is NULL)"])
    chains = emu.state.setdefault("driver", {}).setdefault("bus_notifiers", {})
    chain = chains.setdefault(name, [])
    if nb in chain:
        call = emu.read_u(nb + _o(emu, NB_CALL), 8)
        emu.printk(4, f"notifier callback {emu.symbol(call)} already registered\n")
        return -EEXIST
    chain.append(nb)
    return 0


@model("bus_unregister_notifier")
def bus_unregister_notifier(emu, bus, nb):
    name = bus_registered(emu, bus)
    chain = emu.state.setdefault("driver", {}).setdefault("bus_notifiers", {}).get(name, [])
    if nb not in chain:
        return -2
    chain.remove(nb)
    return 0


@model("driver_create_file")
def driver_create_file(emu, drv, attr):
    """/sys/bus/<bus>/drivers/<name>/<attr>: -EEXIST if the driver already has that file."""
    if not drv:
        return -EINVAL
    for d in _reg(emu, "bus_driver").values():
        if d["drv"] == drv:
            files = d.setdefault("files", [])
            name = _name(emu, emu.read_u(attr + _o(emu, ATTR_NAME), 8))
            if name in files:
                emu.printk(3, f"sysfs: cannot create duplicate filename '{name}'\n")
                return -EEXIST
            files.append(name)
            return 0
    raise emu.oops(["BUG: kernel NULL pointer dereference (driver_create_file on a driver "
                    "that is not registered: drv->p is NULL)"])


@model("driver_remove_file")
def driver_remove_file(emu, drv, attr):
    for d in _reg(emu, "bus_driver").values():
        if d["drv"] == drv:
            name = _name(emu, emu.read_u(attr + _o(emu, ATTR_NAME), 8))
            if name in d.get("files", []):
                d["files"].remove(name)


# --- struct cdev (fs/char_dev.c) ----------------------------------------------------------------
# struct cdev (Debian 6.1 amd64): kobj 0 (kobject: entry 8, ktype 40, kref 56, state bits 60),
# owner 64, ops 72, list 80, dev 96, count 100; 104 bytes.  kobject_init would point ktype at
# the kernel's static ktype_cdev_default/_dynamic, whose address the profile does not know: it
# stays NULL (the models do the release).
CDEV_SIZE = ("cdev", "sizeof")
CDEV_KOBJ_ENTRY = ("cdev", "kobj.entry")
CDEV_KREF = ("cdev", "kobj.kref")
CDEV_KSTATE = ("cdev", "kobj.state_initialized")
CDEV_OPS = ("cdev", "ops")
CDEV_LIST = ("cdev", "list")
CDEV_DEV = ("cdev", "dev")
CDEV_COUNT = ("cdev", "count")
WHITEOUT_DEV = 0


def _cdev_init(emu, cdev: int) -> None:
    emu.write(cdev, bytes(_o(emu, CDEV_SIZE)))
    init_list_head(emu, cdev + _o(emu, CDEV_LIST))
    init_list_head(emu, cdev + _o(emu, CDEV_KOBJ_ENTRY))
    emu.write_u(cdev + _o(emu, CDEV_KREF), 4, 1)
    bit = _o(emu, CDEV_KSTATE)[0]                  # state_initialized: [bit offset, bits]
    emu.write_u(cdev + bit // 8, 1, 1 << bit % 8)


@model("cdev_init")
def cdev_init(emu, cdev, fops):
    _cdev_init(emu, cdev)
    emu.write_u(cdev + _o(emu, CDEV_OPS), 8, fops)


@model("cdev_alloc")
def cdev_alloc(emu):
    cdev = emu.kmalloc(_o(emu, CDEV_SIZE), zero=True)
    _cdev_init(emu, cdev)
    emu.state.setdefault("cdev_alloced", []).append(cdev)
    return cdev


@model("cdev_add")
def cdev_add(emu, cdev, dev, count):
    """Maps [dev, dev+count) to the cdev (kobj_map accepts overlaps: the last one wins)."""
    emu.write_u(cdev + _o(emu, CDEV_DEV), 4, dev)
    emu.write_u(cdev + _o(emu, CDEV_COUNT), 4, count)
    if dev == WHITEOUT_DEV:
        emu.printk(4, "WARNING: CPU: 0 at fs/char_dev.c cdev_add (WHITEOUT_DEV)\n")
        return -EBUSY
    emu.state.setdefault("cdev", {})[str(cdev)] = {"dev": dev, "count": count}
    emu.note(f"{dev >> MINORBITS}:{dev & MINORMASK} +{count}")
    return 0


@model("cdev_del")
def cdev_del(emu, cdev):
    emu.state.setdefault("cdev", {}).pop(str(cdev), None)
    alloced = emu.state.setdefault("cdev_alloced", [])
    if cdev in alloced:                      # the last reference: cdev_dynamic_release frees
        alloced.remove(cdev)
        emu.kfree(cdev)


@model("bus_for_each_dev")
def bus_for_each_dev(emu, bus, start, data_, fn):
    """The sandbox's buses have no devices: ``fn`` is never called, the walk returns 0
    (-EINVAL for a NULL bus, as the kernel's)."""
    if not bus:
        return -EINVAL
    if bus_registered(emu, bus) is None:
        return -EINVAL
    return 0


@model("bus_for_each_drv")
def bus_for_each_drv(emu, bus, start, data_, fn):
    """Calls ``fn(drv, data)`` for each driver on a bus a module registered (through
    call_module), stopping at the first non-zero result; a boot bus also carries the
    kernel's built-in drivers, which are not modelled."""
    if not bus:
        return -EINVAL
    name = bus_registered(emu, bus)
    if name is None:
        return -EINVAL
    if name in boot_buses(emu).values():
        from ..errors import Unmodelled
        raise Unmodelled(f"bus_for_each_drv (the built-in drivers of bus {name})",
                         what=emu.what)
    drvs = [d["drv"] for k, d in _reg(emu, "bus_driver").items() if k.startswith(name + "/")]
    if start:
        drvs = drvs[drvs.index(start) + 1:] if start in drvs else []
    for drv in drvs:
        err = emu.call_module(fn, (drv, data_)) & 0xFFFFFFFF
        if err:
            return err - (1 << 32) if err & 0x80000000 else err
    return 0


# --- PCI device lookups (drivers/pci/search.c) --------------------------------------------------
def _no_pci_device(emu, start: int) -> int:
    """The sandbox machine has no PCI devices (see the module docstring): every search ends
    with NULL, and ``from`` (a device a previous search returned) can only be NULL."""
    if start:
        from ..errors import Unmodelled
        raise Unmodelled(f"{emu._model_name} (continues from struct pci_dev {start:#x}: the "
                         "machine has no PCI devices)", what=emu.what)
    return 0


@model("pci_get_device")
def pci_get_device(emu, vendor, device, start):
    return _no_pci_device(emu, start)


@model("pci_get_subsys")
def pci_get_subsys(emu, vendor, device, ss_vendor, ss_device, start):
    return _no_pci_device(emu, start)


@model("pci_get_class")
def pci_get_class(emu, cls, start):
    return _no_pci_device(emu, start)


@model("pci_get_domain_bus_and_slot")
def pci_get_domain_bus_and_slot(emu, domain, bus, devfn):
    return _no_pci_device(emu, 0)


@model("pci_dev_put")
def pci_dev_put(emu, dev):
    """Drops a reference on a device a search returned: there is none (only NULL)."""
    if dev:
        from ..errors import Unmodelled
        raise Unmodelled(f"pci_dev_put (struct pci_dev at {dev:#x}: the machine has no PCI "
                         "devices)", what=emu.what)
