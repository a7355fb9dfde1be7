"""The driver core and its buses (drivers/base/{class,bus,driver,platform}.c, drivers/pci,
drivers/char/misc.c, fs/char_dev.c): registrations a module's init makes and exit undoes.

Every registration is recorded in ``emu.state["driver"]`` (JSON, persisted by the machine) under
its kind and name, so that exit's unregister finds it and a second registration of the same name
gets the kernel's answer: a class or bus whose sysfs directory already exists → -EEXIST (sysfs
warns "cannot create duplicate filename"), a driver already on its bus → -EBUSY ("Error: Driver
'%s' is already registered, aborting..."), a taken misc minor or char-device range → -EBUSY.

**Devices on buses.**  The machine's devices are the real QEMU guest's, recorded per release
(profile/data/boot-views-<release>.json, "devices"): PCI, platform, ACPI, PNP, serio, virtio.
driver_register's driver_attach matches the driver against every device of its bus not
bound yet, as the bus's match does (pci_match_id, platform_match, acpi_match_device_ids,
compare_pnp_id; "Devices on buses" below): a matching boot device would be probed on hardware
the sandbox has no struct for, so that stops as Unmodelled naming driver and device; no match
registers the driver and nothing is probed.  Platform devices modules add
(platform_device_alloc/add, _register_full) are matched against the module platform drivers
and probed in module code.  Buses registered by modules start empty.

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


# built-in buses whose bus_type vmlinux does not export (module code reaches them only through
# the acpi_bus_register_driver / pnp_register_driver / __auxiliary_driver_register models,
# which set drv->bus)
HIDDEN_BUSES = ("acpi", "pnp", "auxiliary", "serial")   # serial: serdev's bus


def hidden_bus(emu, name: str) -> int:
    """The model's stand-in for a built-in bus_type that is not exported: a private struct
    with the bus's name, one per emulator."""
    buses = emu.__dict__.setdefault("_hidden_buses", {})
    if name not in buses:
        b = emu.priv_alloc(256, 64)
        emu.write(b, bytes(256))
        emu.write(b + 128, name.encode() + b"\0")
        emu.write_u(b + _o(emu, BUS_NAME), 8, b + 128)
        buses[name] = b
    return buses[name]


def boot_buses(emu) -> dict[int, str]:
    """bus_type address → name, for the buses built into the running vmlinux."""
    out = {}
    for export, name in BOOT_BUSES.items():
        e = emu.exports.get(export)
        if e is not None and getattr(e, "owner", "vmlinux") == "vmlinux":
            out[e.addr] = name
    for name in HIDDEN_BUSES:
        if name not in out.values():
            out[hidden_bus(emu, name)] = name
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


def _module_class(emu, cls: int, fn: str) -> dict | None:
    """The registry entry of a class a module registered; None for NULL (6.1: -EINVAL);
    a class of the booted kernel's own stops the call (its sysfs directory is not known)."""
    if not cls:
        return None
    for c in _reg(emu, "class").values():
        if c["cls"] == cls:
            return c
    raise Unmodelled(f"{fn} (a class of the booted kernel)", what=emu.what)


@model("class_create_file_ns")
def class_create_file_ns(emu, cls, attr, ns):
    """drivers/base/class.c: sysfs_create_file_ns in the class's directory,
    /sys/class/<class>/<attr name>: -EINVAL without a class, -EEXIST (and sysfs's duplicate
    warning) for a name already there."""
    c = _module_class(emu, cls, "class_create_file_ns")
    if c is None:
        return -EINVAL
    name = _name(emu, emu.read_u(attr, 8))              # class_attribute.attr.name
    cname = _name(emu, emu.read_u(cls + _o(emu, CLASS_NAME), 8))
    files = c.setdefault("files", [])
    if name in files:
        emu.printk(3, f"sysfs: cannot create duplicate filename '/class/{cname}/{name}'\n")
        return -EEXIST
    files.append(name)
    emu.note(f"/sys/class/{cname}/{name}")
    return 0


@model("class_remove_file_ns")
def class_remove_file_ns(emu, cls, attr, ns):
    c = _module_class(emu, cls, "class_remove_file_ns")
    if c is not None:
        name = _name(emu, emu.read_u(attr, 8))
        if name in c.get("files", []):
            c["files"].remove(name)


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
    """Adds the driver to its bus, then driver_attach: every device of the bus that is not
    bound and that the bus's match accepts is probed (see "Devices on buses" below)."""
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
    driver_attach(emu, bus_name, drv)
    return 0


@model("driver_unregister")
def driver_unregister(emu, drv):
    drivers = _reg(emu, "bus_driver")
    for key, d in list(drivers.items()):
        if d["drv"] == drv:
            driver_detach(emu, drv)
            del drivers[key]
            emu.write_u(drv + _o(emu, DRV_P), 8, 0)
            emu.kfree(d["p"])
            return
    emu.printk(4, "Unexpected driver unregister!\n")


@model("__pci_register_driver")
def __pci_register_driver(emu, drv, owner, mod_name):
    """pci_register_driver: the driver struct filled in, then driver_register (matched
    against the machine's PCI devices by pci_bus_match)."""
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
    """platform_driver_register: owner and bus set, then driver_register (platform_match
    against the boot platform devices and those modules added)."""
    d = drv + _o(emu, PLATFORM_DRIVER)
    emu.write_u(d + _o(emu, DRV_OWNER), 8, owner)
    emu.write_u(d + _o(emu, DRV_BUS), 8, emu.export_addr("platform_bus_type") or 0)
    return driver_register(emu, d)


@model("platform_driver_unregister")
def platform_driver_unregister(emu, drv):
    driver_unregister(emu, drv + _o(emu, PLATFORM_DRIVER))


PROBE_PREFER_ASYNCHRONOUS, PROBE_FORCE_SYNCHRONOUS = 1, 2


def _platform_probe_fail(emu, pdev):
    """platform_probe_fail: what a platform_driver_probe driver's probe becomes."""
    return -ENXIO


@model("__platform_driver_probe")
def __platform_driver_probe(emu, drv, probe, module):
    """platform_driver_probe: synchronous probing forced, no deferral, no bind/unbind files,
    drv->probe = probe while __platform_driver_register binds the devices there now, then
    platform_probe_fail; -ENODEV (and the driver unregistered) if no device got bound."""
    d = drv + _o(emu, PLATFORM_DRIVER)
    name = _name(emu, emu.read_u(d + _o(emu, DRV_NAME), 8))
    if emu.read_u(d + _o(emu, ("device_driver", "probe_type")), 4) == PROBE_PREFER_ASYNCHRONOUS:
        emu.printk(3, f"{name}: drivers registered with __platform_driver_probe can not be "
                      "probed asynchronously\n")
        return -EINVAL
    emu.write_u(d + _o(emu, ("device_driver", "probe_type")), 4, PROBE_FORCE_SYNCHRONOUS)
    emu.write_u(drv + _o(emu, PDRV_NO_DEFER), 1, 1)
    emu.write_u(d + _o(emu, ("device_driver", "suppress_bind_attrs")), 1, 1)
    emu.write_u(drv + _o(emu, PDRV_PROBE), 8, probe)
    code = __platform_driver_register(emu, drv, module)
    if code:
        return code
    if "_probe_fail" not in emu.__dict__:
        emu._probe_fail = emu.trap("platform_probe_fail", _platform_probe_fail)
    emu.write_u(drv + _o(emu, PDRV_PROBE), 8, emu._probe_fail)
    key = _key_of(emu, d)
    _reg(emu, "bus_driver")[key]["probe_fail"] = True
    bound = any(p.get("drv") == d for p in _reg(emu, "pdev").values())
    if not bound:
        platform_driver_unregister(emu, drv)
        return -ENODEV
    return 0


# --- devices on buses: matching, probing (drivers/base/dd.c and each bus's match) ---------------
# The machine's devices are the real QEMU guest's, recorded per release in
# profile/data/boot-views-<release>.json ("devices": bus → name → modalias, PNP ids, bound
# driver), plus the platform devices modules add (``emu.state["driver"]["pdev"]``).
# driver_register's driver_attach walks the bus's devices: one already bound is skipped
# (__driver_attach), one the bus's match accepts is probed (really_probe).  A boot device's
# probe runs the driver on hardware the sandbox has no struct for: Unmodelled, naming driver
# and device.  A module's platform device is probed through the driver's probe in module code.
# serio: __serio_register_driver registers with manual_bind forced on (serio_bus_match matches
# nothing), the attach runs later from kseriod, after init: nothing is probed during init.
PD_NAME, PD_ID, PD_ID_AUTO = ("platform_device", "name"), ("platform_device", "id"), \
    ("platform_device", "id_auto")
PD_DEV, PD_DMA_MASK = ("platform_device", "dev"), ("platform_device", "platform_dma_mask")
PD_DMA_PARMS, PD_NUM_RES = ("platform_device", "dma_parms"), ("platform_device", "num_resources")
PD_RES, PD_OVERRIDE = ("platform_device", "resource"), ("platform_device", "driver_override")
PD_MFD, PD_SIZE = ("platform_device", "mfd_cell"), ("platform_device", "sizeof")
PO_NAME = ("platform_object", "name")
PDRV_PROBE, PDRV_REMOVE = ("platform_driver", "probe"), ("platform_driver", "remove")
PDRV_REMOVE_NEW, PDRV_ID_TABLE = ("platform_driver", "remove_new"), ("platform_driver", "id_table")
PDRV_NO_DEFER = ("platform_driver", "prevent_deferred_probe")
PID_NAME, PID_SIZE = ("platform_device_id", "name"), ("platform_device_id", "sizeof")
PCI_ID_TABLE = ("pci_driver", "id_table")
PCIID = {m: ("pci_device_id", m) for m in ("vendor", "device", "subvendor", "subdevice",
                                           "class", "class_mask", "override_only", "sizeof")}
ACPIID_ID, ACPIID_CLS, ACPIID_SIZE = ("acpi_device_id", "id"), ("acpi_device_id", "cls"), \
    ("acpi_device_id", "sizeof")
ACPI_NAME, ACPI_IDS, ACPI_DRV, ACPI_OWNER = ("acpi_driver", "name"), ("acpi_driver", "ids"), \
    ("acpi_driver", "drv"), ("acpi_driver", "owner")
PNP_NAME, PNP_ID_TABLE, PNP_DRIVER = ("pnp_driver", "name"), ("pnp_driver", "id_table"), \
    ("pnp_driver", "driver")
PNPID_ID, PNPID_SIZE = ("pnp_device_id", "id"), ("pnp_device_id", "sizeof")
DRV_ACPI_MATCH = ("device_driver", "acpi_match_table")
DEV_DRIVER, DEV_PLATFORM_DATA = ("device", "driver"), ("device", "platform_data")
DEV_DMA_MASK, DEV_COHERENT = ("device", "dma_mask"), ("device", "coherent_dma_mask")
DEV_DMA_PARMS, DEV_FWNODE = ("device", "dma_parms"), ("device", "fwnode")
DEV_DRVDATA = ("device", "driver_data")
PDI = {m: ("platform_device_info", m) for m in ("parent", "fwnode", "name", "id", "res",
                                                "num_res", "data", "size_data", "dma_mask",
                                                "properties")}
PCI_ANY_ID = 0xFFFFFFFF
PLATFORM_DEVID_NONE, PLATFORM_DEVID_AUTO = -1, -2
ENXIO, EPROBE_DEFER = 6, 517
DEFAULT_RELEASE = "6.1.0-56-amd64"     # a bare emulator (no machine): the embedded kernel's


def _release(emu) -> str:
    prof = getattr(getattr(emu, "kernel", None), "profile", None)
    return getattr(prof, "release", DEFAULT_RELEASE)


def boot_devices(emu) -> dict:
    """bus → device name → record, of the booted guest (cached per release)."""
    from ...kernel.registrations import boot_views
    rel = _release(emu)
    cache = _BOOT_DEVICES.get(rel)
    if cache is None:
        try:
            cache = boot_views(rel)["devices"]
        except (LookupError, OSError):
            raise Unmodelled(f"{emu._model_name} (this kernel's boot devices were not "
                             "recorded)", what=emu.what) from None
        _BOOT_DEVICES[rel] = cache
    return cache


_BOOT_DEVICES: dict = {}


def _acpi_ids(modalias: str | None) -> list[str]:
    """The HID and CIDs of an ACPI device from its modalias ``acpi:HID:CID1:…:``."""
    if not modalias or not modalias.startswith("acpi:"):
        return []
    return [i for i in modalias[5:].split(":") if i]


def _pci_ids(modalias: str) -> dict:
    """pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X → vendor, device, subvendor, subdevice,
    class (24 bits)."""
    import re
    m = re.fullmatch(r"pci:v([0-9A-F]{8})d([0-9A-F]{8})sv([0-9A-F]{8})sd([0-9A-F]{8})"
                     r"bc([0-9A-F]{2})sc([0-9A-F]{2})i([0-9A-F]{2})", modalias)
    v = [int(x, 16) for x in m.groups()]
    return {"vendor": v[0], "device": v[1], "subvendor": v[2], "subdevice": v[3],
            "class": v[4] << 16 | v[5] << 8 | v[6]}


def _cstr_at(emu, addr: int, n: int) -> str:
    return emu.read(addr, n).split(b"\0", 1)[0].decode("latin-1")


def _acpi_table_match(emu, table: int, ids: list[str]) -> bool:
    """__acpi_match_device: an entry (until one with neither id nor cls) whose id equals one
    of the device's HID/CIDs (a cls-only entry matches a _CLS the recorded devices lack)."""
    while table:
        idstr = _cstr_at(emu, table + _o(emu, ACPIID_ID), 16)
        cls = emu.read_u(table + _o(emu, ACPIID_CLS), 4)
        if not idstr and not cls:
            return False
        if idstr and idstr in ids:
            return True
        table += _o(emu, ACPIID_SIZE)
    return False


def _pci_match(emu, drv: int, dev: dict) -> bool:
    """pci_bus_match → pci_match_device: no dynids, no driver_override on the recorded devices:
    pci_match_id over id_table, entries with override_only skipped."""
    pdrv = drv - _o(emu, PCI_DRIVER)
    t = emu.read_u(pdrv + _o(emu, PCI_ID_TABLE), 8)
    if not t:
        return False
    while True:
        f = {k: emu.read_u(t + _o(emu, PCIID[k]), 4) for k in
             ("vendor", "device", "subvendor", "subdevice", "class", "class_mask")}
        if not (f["vendor"] or f["subvendor"] or f["class_mask"]):
            return False
        if all(f[k] in (PCI_ANY_ID, dev[k]) for k in ("vendor", "device", "subvendor",
                                                      "subdevice")) \
                and not ((f["class"] ^ dev["class"]) & f["class_mask"]) \
                and not emu.read_u(t + _o(emu, PCIID["override_only"]), 4):
            return True
        t += _o(emu, PCIID["sizeof"])


def _platform_match(emu, drv: int, dev: dict) -> bool:
    """platform_match: driver_override; OF (no device tree on x86); the ACPI companion's
    ids against drv->acpi_match_table; the driver's id_table by name; else the names."""
    dname = _name(emu, emu.read_u(drv + _o(emu, DRV_NAME), 8))
    if dev.get("override"):
        return dev["override"] == dname
    acpi_table = emu.read_u(drv + _o(emu, DRV_ACPI_MATCH), 8)
    if acpi_table and dev.get("acpi") and _acpi_table_match(emu, acpi_table, dev["acpi"]):
        return True
    pdrv = drv - _o(emu, PLATFORM_DRIVER)
    t = emu.read_u(pdrv + _o(emu, PDRV_ID_TABLE), 8)
    if t:
        while True:
            n = _cstr_at(emu, t + _o(emu, PID_NAME), 20)
            if not n:
                return False
            if n == dev["pname"]:
                return True
            t += _o(emu, PID_SIZE)
    return dev["pname"] == dname


def _acpi_match(emu, drv: int, dev: dict) -> bool:
    """acpi_bus_match → acpi_match_device_ids(device, acpi_drv->ids)."""
    adrv = drv - _o(emu, ACPI_DRV)
    return _acpi_table_match(emu, emu.read_u(adrv + _o(emu, ACPI_IDS), 8), dev["ids"])


def _pnp_compare(dev_id: str, id_: str) -> bool:
    """compare_pnp_id for one of the device's ids: the 3 letters exactly, the 4 hex digits
    case-insensitively, 'X' in either a wildcard; "ANYDEVS" matches every device."""
    if len(id_) != 7:
        return False
    if id_ == "ANYDEVS":
        return True
    if dev_id[:3] != id_[:3]:
        return False
    return all(a == "X" or b == "X" or a.upper() == b.upper()
               for a, b in zip(dev_id[3:7], id_[3:7]))


def _pnp_match(emu, drv: int, dev: dict) -> bool:
    pdrv = drv - _o(emu, PNP_DRIVER)
    t = emu.read_u(pdrv + _o(emu, PNP_ID_TABLE), 8)
    while t:
        id_ = _cstr_at(emu, t + _o(emu, PNPID_ID), 8)
        if not id_:
            return False
        if any(_pnp_compare(d, id_) for d in dev["ids"]):
            return True
        t += _o(emu, PNPID_SIZE)
    return False


MATCH = {"pci": _pci_match, "platform": _platform_match, "acpi": _acpi_match,
         "pnp": _pnp_match}


def bus_devices(emu, bus: str) -> list[dict]:
    """The devices on a bus the models match: the boot guest's (``boot``), then the
    platform devices modules added, in the order they were added."""
    boot = boot_devices(emu).get(bus, {})
    acpi = boot_devices(emu).get("acpi", {})
    out = []
    for name, rec in boot.items():
        d = {"name": name, "boot": True, "driver": rec.get("driver")}
        ma = rec.get("modalias") or ""
        if bus == "pci":
            d.update(_pci_ids(ma))
        elif bus == "platform":
            d["pname"] = ma[9:] if ma.startswith("platform:") else name
            if name in acpi:                      # acpi_create_platform_device's companion
                d["acpi"] = _acpi_ids(acpi[name].get("modalias"))
        elif bus == "acpi":
            d["ids"] = _acpi_ids(ma)
        elif bus == "pnp":
            d["ids"] = (rec.get("id") or "").split()
        out.append(d)
    if bus == "platform":
        for a, p in _reg(emu, "pdev").items():
            if p.get("added"):
                out.append({"name": p["devname"], "boot": False, "pdev": int(a),
                            "pname": p["pname"], "driver": p.get("driver"),
                            "override": _override(emu, int(a))})
    return out


def _override(emu, pdev: int) -> str | None:
    """pdev->driver_override (Linux 6.1; 6.12 moved it into struct device, not read)."""
    try:
        off = _o(emu, PD_OVERRIDE)
    except Unmodelled:
        return None
    p = emu.read_u(pdev + off, 8)
    return _name(emu, p) if p else None


def driver_attach(emu, bus: str, drv: int) -> None:
    """driver_attach → __driver_attach for each device of the bus: skipped if bound, probed
    if the bus's match accepts it."""
    match = MATCH.get(bus)
    if match is None:                  # a bus whose match is not modelled: fine while all
        free = [n for n, r in boot_devices(emu).get(bus, {}).items() if not r.get("driver")]
        if free and bus != "serio":    # its devices are bound (virtio's to 9pnet_virtio)
            raise Unmodelled(f"driver_register (matching on bus {bus} against device "
                             f"{free[0]})", what=emu.what)
        return
    name = _name(emu, emu.read_u(drv + _o(emu, DRV_NAME), 8))
    for dev in bus_devices(emu, bus):
        if dev["driver"] or not match(emu, drv, dev):
            continue
        if dev["boot"]:
            raise Unmodelled(f"really_probe (driver {name} matches the machine's {bus} device "
                             f"{dev['name']}: its probe)", what=emu.what)
        platform_probe(emu, drv, dev["pdev"])


@model("driver_attach")
def driver_attach_model(emu, drv):
    """driver_attach(drv): bus_for_each_dev over the driver's bus with __driver_attach
    (see driver_attach above); 0, as the kernel's walk returns when __driver_attach does."""
    bus = emu.read_u(drv + _o(emu, DRV_BUS), 8)
    name = bus_registered(emu, bus) if bus else None
    if name is None:
        return -EINVAL
    if name not in boot_buses(emu).values():
        if any(p.get("bus") == bus for p in emu.state.get("devices", {}).values()):
            raise Unmodelled(f"driver_attach (the devices on bus {name})", what=emu.what)
        return 0                                     # a module's bus: no devices on it
    driver_attach(emu, name, drv)
    return 0


def _key_of(emu, drv: int) -> str | None:
    for key, d in _reg(emu, "bus_driver").items():
        if d["drv"] == drv:
            return key
    return None


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def platform_probe(emu, drv: int, pdev: int) -> int:
    """really_probe of a module's platform device: dev->driver set, platform_probe calls the
    driver's probe(pdev) (no clocks or PM domain on this machine), a failure unbinds with
    call_driver_probe's message (none for -ENODEV/-ENXIO) and releases the managed resources
    the probe took (a device that has some before probing: dev_crit, -EBUSY); probe deferral
    is not modelled."""
    from .devres import devres_release_all, has_resources
    dev = pdev + _o(emu, PD_DEV)
    p = _reg(emu, "pdev")[str(pdev)]
    dname = _name(emu, emu.read_u(drv + _o(emu, DRV_NAME), 8))
    if has_resources(emu, dev):
        from .device import _dev_printk
        _dev_printk(emu, 2, dev, "Resources present before probing\n")
        return -EBUSY
    emu.write_u(dev + _o(emu, DEV_DRIVER), 8, drv)
    pdrv = drv - _o(emu, PLATFORM_DRIVER)
    probe = emu.read_u(pdrv + _o(emu, PDRV_PROBE), 8)
    if _reg(emu, "bus_driver").get(_key_of(emu, drv) or "", {}).get("probe_fail"):
        ret = -ENXIO                           # platform_probe_fail: not even called
    else:
        ret = _s32(emu.call_module(probe, (pdev,))) if probe else 0
    if ret == -EPROBE_DEFER and emu.read_u(pdrv + _o(emu, PDRV_NO_DEFER), 1):
        emu.printk(4, f"{dname} {p['devname']}: probe deferral not supported\n")
        ret = -ENXIO
    if ret == -EPROBE_DEFER:
        raise Unmodelled(f"really_probe ({dname} defers the probe of {p['devname']}: the "
                         "deferred-probe list)", what=emu.what)
    if ret:
        if ret in (-ENODEV, -ENXIO):
            pass                               # pr_debug / dev_dbg "rejects match": off
        elif emu.kernel_version >= (6, 12):    # 6.12.118's call_driver_probe: dev_err
            from .device import _dev_printk
            _dev_printk(emu, 3, dev, f"probe with driver {dname} failed with error {ret}\n")
        else:                                  # 6.1's: pr_warn
            emu.printk(4, f"{dname}: probe of {p['devname']} failed with error {ret}\n")
        devres_release_all(emu, dev)           # device_unbind_cleanup
        emu.write_u(dev + _o(emu, DEV_DRIVER), 8, 0)
        emu.write_u(dev + _o(emu, DEV_DRVDATA), 8, 0)
        return ret
    p["driver"] = dname
    p["drv"] = drv
    emu.note(f"{p['devname']} bound to {dname}")
    return 0


def platform_unbind(emu, pdev: int) -> None:
    """__device_release_driver of a bound module platform device: platform_remove calls the
    driver's remove (6.1: remove_new if set, else remove; 6.12: the one remove), then
    device_unbind_cleanup: managed resources released, drvdata and dev->driver cleared."""
    p = _reg(emu, "pdev").get(str(pdev))
    if not p or not p.get("driver"):
        return
    drv = p.pop("drv")
    p["driver"] = None
    pdrv = drv - _o(emu, PLATFORM_DRIVER)
    fn = 0
    try:
        fn = emu.read_u(pdrv + _o(emu, PDRV_REMOVE_NEW), 8)
    except Unmodelled:
        pass
    fn = fn or emu.read_u(pdrv + _o(emu, PDRV_REMOVE), 8)
    if fn:
        emu.call_module(fn, (pdev,))
    dev = pdev + _o(emu, PD_DEV)
    from .devres import devres_release_all
    devres_release_all(emu, dev)               # device_unbind_cleanup
    emu.write_u(dev + _o(emu, DEV_DRIVER), 8, 0)
    emu.write_u(dev + _o(emu, DEV_DRVDATA), 8, 0)


def driver_detach(emu, drv: int) -> None:
    for a, p in list(_reg(emu, "pdev").items()):
        if p.get("drv") == drv:
            platform_unbind(emu, int(a))


def bus_probe_device(emu, dev: int) -> None:
    """device_add's bus_probe_device for a platform device a module added: matched against
    the module drivers on the platform bus, in registration order; a name the booted
    kernel's own platform drivers carry would be probed by built-in code: Unmodelled."""
    p = _reg(emu, "pdev").get(str(dev - _o(emu, PD_DEV)))
    if p is None:
        raise Unmodelled("device_add (a platform device not made by platform_device_alloc)",
                         what=emu.what)
    pdev = dev - _o(emu, PD_DEV)
    p["added"] = True
    me = next(d for d in bus_devices(emu, "platform") if d.get("pdev") == pdev)
    from ...kernel.registrations import boot_views        # built-in drivers come first
    builtin = boot_views(_release(emu)).get("buses", {}).get("platform", [])
    if me["pname"] in builtin or (me["override"] and me["override"] in builtin):
        raise Unmodelled(f"really_probe (built-in platform driver {me['pname']} matches "
                         f"{p['devname']})", what=emu.what)
    for key, d in list(_reg(emu, "bus_driver").items()):
        if key.startswith("platform/") and _platform_match(emu, d["drv"], me):
            platform_probe(emu, d["drv"], pdev)
            return


# --- platform devices (drivers/base/platform.c) -------------------------------------------------
def platform_modalias(emu, dev: int) -> str:
    """platform_uevent's / modalias_show's "platform:<pdev->name>"."""
    pdev = dev - _o(emu, PD_DEV)
    return "platform:" + _name(emu, emu.read_u(pdev + _o(emu, PD_NAME), 8))


def _setup_dma_masks(emu, pdev: int) -> None:
    """setup_pdev_dma_masks: dma_parms at the pdev's; a 32-bit coherent mask and dma_mask
    (pointing at platform_dma_mask) where none is set."""
    dev = pdev + _o(emu, PD_DEV)
    emu.write_u(dev + _o(emu, DEV_DMA_PARMS), 8, pdev + _o(emu, PD_DMA_PARMS))
    if not emu.read_u(dev + _o(emu, DEV_COHERENT), 8):
        emu.write_u(dev + _o(emu, DEV_COHERENT), 8, 0xFFFFFFFF)
    if not emu.read_u(dev + _o(emu, DEV_DMA_MASK), 8):
        emu.write_u(pdev + _o(emu, PD_DMA_MASK), 8, 0xFFFFFFFF)
        emu.write_u(dev + _o(emu, DEV_DMA_MASK), 8, pdev + _o(emu, PD_DMA_MASK))


@model("platform_device_alloc")
def platform_device_alloc(emu, name, id_):
    """A zeroed platform_object with the name copied after it: pdev.name, pdev.id,
    device_initialize, dev.release = platform_device_release (the model's: the state marks
    it), DMA masks of 32 bits pointing at platform_dma_mask, dma_parms at the pdev's."""
    from .device import device_initialize
    text = emu.cstr(name, 4096)
    pa = emu.kmalloc(_o(emu, PO_NAME) + len(text) + 1, zero=True)
    if not pa:
        return 0
    emu.write(pa + _o(emu, PO_NAME), text + b"\0")
    emu.write_u(pa + _o(emu, PD_NAME), 8, pa + _o(emu, PO_NAME))
    emu.write_u(pa + _o(emu, PD_ID), 4, id_ & 0xFFFFFFFF)
    dev = pa + _o(emu, PD_DEV)
    device_initialize(emu, dev)
    _setup_dma_masks(emu, pa)
    _reg(emu, "pdev")[str(pa)] = {"pname": text.decode("latin-1"), "devname": "",
                                  "driver": None, "added": False}
    emu.state.setdefault("devices", {})[str(dev)]["release_model"] = "platform"
    emu.note(text.decode("latin-1"))
    return pa


def platform_device_release(emu, dev: int) -> None:
    """platform_device_release: platform_data, mfd_cell, resource array, driver_override
    (6.1) and the object are freed (of_node_put of no node)."""
    pa = dev - _o(emu, PD_DEV)
    for p in (emu.read_u(dev + _o(emu, DEV_PLATFORM_DATA), 8),
              emu.read_u(pa + _o(emu, PD_MFD), 8), emu.read_u(pa + _o(emu, PD_RES), 8)):
        if p:
            emu.kfree(p)
    try:
        ov = emu.read_u(pa + _o(emu, PD_OVERRIDE), 8)
    except Unmodelled:
        ov = 0
    if ov:
        emu.kfree(ov)
    _reg(emu, "pdev").pop(str(pa), None)
    emu.kfree(pa)


@model("platform_device_add_data")
def platform_device_add_data(emu, pdev, data, size):
    """kmemdup of the data into dev.platform_data (the old one freed); NULL data: none."""
    d = 0
    if data:
        d = emu.kmalloc(size)
        if not d:
            return -ENOMEM
        emu.write(d, emu.read(data, size))
    dev = pdev + _o(emu, PD_DEV)
    old = emu.read_u(dev + _o(emu, DEV_PLATFORM_DATA), 8)
    if old:
        emu.kfree(old)
    emu.write_u(dev + _o(emu, DEV_PLATFORM_DATA), 8, d)
    return 0


@model("platform_device_add_resources")
def platform_device_add_resources(emu, pdev, res, num):
    """kmemdup of the resource array into pdev->resource (the old one freed)."""
    r = 0
    if res:
        size = LAYOUT_RES_SIZE(emu) * num
        r = emu.kmalloc(size)
        if not r:
            return -ENOMEM
        emu.write(r, emu.read(res, size))
    old = emu.read_u(pdev + _o(emu, PD_RES), 8)
    if old:
        emu.kfree(old)
    emu.write_u(pdev + _o(emu, PD_RES), 8, r)
    emu.write_u(pdev + _o(emu, PD_NUM_RES), 4, num if r else 0)
    return 0


def LAYOUT_RES_SIZE(emu) -> int:
    from .resource import LAYOUT as RL
    return RL.of(emu)["resource", "sizeof"]


def _devid_ida(emu) -> list:
    """platform_devid_ida: the auto ids taken (the boot devices' ``*.N.auto`` first)."""
    ids = emu.state.get("platform_devid_ida")
    if ids is None:
        ids = sorted(int(n.rsplit(".", 2)[1]) for n in boot_devices(emu).get("platform", {})
                     if n.endswith(".auto"))
        emu.state["platform_devid_ida"] = ids
    return ids


@model("platform_device_add")
def platform_device_add(emu, pdev):
    """parent defaults to platform_bus, bus = platform_bus_type, the name "name.id", "name"
    (PLATFORM_DEVID_NONE) or "name.N.auto" (N from platform_devid_ida), then device_add
    (which probes: bus_probe_device); a failure frees the auto id."""
    from .device import _set_name_str, device_add, D_PARENT, D_BUS, _o as _do
    if not pdev:
        return -EINVAL
    if str(pdev) not in _reg(emu, "pdev"):
        raise Unmodelled("platform_device_add (a platform device not made by "
                         "platform_device_alloc)", what=emu.what)
    if emu.read_u(pdev + _o(emu, PD_NUM_RES), 4):
        raise Unmodelled("platform_device_add (inserting the device's resources)",
                         what=emu.what)
    dev = pdev + _o(emu, PD_DEV)
    if not emu.read_u(dev + _do(emu, D_PARENT), 8):
        emu.write_u(dev + _do(emu, D_PARENT), 8, emu.export_addr("platform_bus") or 0)
    emu.write_u(dev + _do(emu, D_BUS), 8, emu.export_addr("platform_bus_type") or 0)
    pname = _reg(emu, "pdev")[str(pdev)]["pname"]
    id_ = _s32(emu.read_u(pdev + _o(emu, PD_ID), 4))
    auto = id_ == PLATFORM_DEVID_AUTO
    if auto:
        ids = _devid_ida(emu)
        id_ = next(i for i in range(len(ids) + 1) if i not in ids)
        ids.append(id_)
        emu.write_u(pdev + _o(emu, PD_ID), 4, id_)
        emu.write_u(pdev + _o(emu, PD_ID_AUTO), 1, 1)
        text = f"{pname}.{id_}.auto"
    elif id_ == PLATFORM_DEVID_NONE:
        text = pname
    else:
        text = f"{pname}.{id_}"
    err = _set_name_str(emu, dev, text)
    if not err:
        _reg(emu, "pdev")[str(pdev)]["devname"] = text
        err = device_add(emu, dev)
    if err:
        _reg(emu, "pdev")[str(pdev)]["added"] = False
        if auto:
            _devid_ida(emu).remove(id_)
            emu.write_u(pdev + _o(emu, PD_ID), 4, PLATFORM_DEVID_AUTO & 0xFFFFFFFF)
    return err


@model("platform_device_put")
def platform_device_put(emu, pdev):
    from .device import put
    if pdev and not is_err(pdev):
        put(emu, pdev + _o(emu, PD_DEV))


@model("platform_device_del")
def platform_device_del(emu, pdev):
    """device_del (the driver unbound first), the auto id given back."""
    from .device import device_del
    if not pdev or is_err(pdev):
        return
    device_del(emu, pdev + _o(emu, PD_DEV))
    p = _reg(emu, "pdev").get(str(pdev))
    if p:
        p["added"] = False
    if emu.read_u(pdev + _o(emu, PD_ID_AUTO), 1):
        id_ = emu.read_u(pdev + _o(emu, PD_ID), 4)
        if id_ in _devid_ida(emu):
            _devid_ida(emu).remove(id_)
        emu.write_u(pdev + _o(emu, PD_ID), 4, PLATFORM_DEVID_AUTO & 0xFFFFFFFF)


@model("platform_device_unregister")
def platform_device_unregister(emu, pdev):
    platform_device_del(emu, pdev)
    platform_device_put(emu, pdev)


@model("platform_device_register")
def platform_device_register(emu, pdev):
    """device_initialize + setup_pdev_dma_masks + platform_device_add, on a module's own
    platform_device: its release is the module's (dev.release, else the WARN)."""
    from .device import device_initialize
    dev = pdev + _o(emu, PD_DEV)
    device_initialize(emu, dev)
    _setup_dma_masks(emu, pdev)
    _reg(emu, "pdev")[str(pdev)] = {"pname": _name(emu, emu.read_u(pdev + _o(emu, PD_NAME), 8)),
                                    "devname": "", "driver": None, "added": False}
    return platform_device_add(emu, pdev)


@model("platform_device_register_full")
def platform_device_register_full(emu, info):
    """platform_device_alloc(name, id), parent, DMA mask, resources and data copied, then
    platform_device_add; on failure the device is put and ERR_PTR returned.  A firmware node
    or software-node properties are not modelled."""
    g = lambda k: emu.read_u(info + _o(emu, PDI[k]), 8)
    if g("fwnode") or g("properties"):
        raise Unmodelled("platform_device_register_full (a firmware node or properties)",
                         what=emu.what)
    pdev = platform_device_alloc(emu, g("name"), emu.read_u(info + _o(emu, PDI["id"]), 4))
    if not pdev:
        return err_ptr(ENOMEM)
    dev = pdev + _o(emu, PD_DEV)
    from .device import D_PARENT, _o as _do
    emu.write_u(dev + _do(emu, D_PARENT), 8, g("parent"))
    if g("dma_mask"):
        emu.write_u(pdev + _o(emu, PD_DMA_MASK), 8, g("dma_mask"))
        emu.write_u(dev + _o(emu, DEV_DMA_MASK), 8, pdev + _o(emu, PD_DMA_MASK))
        emu.write_u(dev + _o(emu, DEV_COHERENT), 8, g("dma_mask"))
    err = platform_device_add_resources(emu, pdev, g("res"),
                                        emu.read_u(info + _o(emu, PDI["num_res"]), 4))
    if not err:
        err = platform_device_add_data(emu, pdev, g("data"), g("size_data"))
    if not err:
        err = platform_device_add(emu, pdev)
    if err:
        platform_device_put(emu, pdev)
        return err_ptr(-err)
    return pdev


# --- ACPI and PNP bus drivers (drivers/acpi/bus.c, drivers/pnp/driver.c) ------------------------
def _acpi_register(emu, driver: int, owner: int) -> int:
    d = driver + _o(emu, ACPI_DRV)
    emu.write_u(d + _o(emu, DRV_NAME), 8, driver + _o(emu, ACPI_NAME))
    emu.write_u(d + _o(emu, DRV_BUS), 8, hidden_bus(emu, "acpi"))
    emu.write_u(d + _o(emu, DRV_OWNER), 8, owner)
    return driver_register(emu, d)


@model("acpi_bus_register_driver")
def acpi_bus_register_driver(emu, driver):
    """Linux 6.1: drv.name = driver->name (the array), bus acpi_bus_type, owner from the
    acpi_driver, then driver_register (acpi_bus_match: the ids against each ACPI device's
    HID/CIDs).  ACPI is enabled on the machine."""
    return _acpi_register(emu, driver, emu.read_u(driver + _o(emu, ACPI_OWNER), 8))


@model("__acpi_bus_register_driver")
def __acpi_bus_register_driver(emu, driver, owner):
    """Linux 6.12's form: the owner passed by the acpi_bus_register_driver macro."""
    return _acpi_register(emu, driver, owner)


@model("acpi_bus_unregister_driver")
def acpi_bus_unregister_driver(emu, driver):
    driver_unregister(emu, driver + _o(emu, ACPI_DRV))


@model("pnp_register_driver")
def pnp_register_driver(emu, drv):
    """drivers/pnp/driver.c: driver.name = drv->name, bus pnp_bus_type, driver_register
    (pnp_bus_match: compare_pnp_id of the id_table against each device's ids)."""
    d = drv + _o(emu, PNP_DRIVER)
    emu.write_u(d + _o(emu, DRV_NAME), 8, emu.read_u(drv + _o(emu, PNP_NAME), 8))
    emu.write_u(d + _o(emu, DRV_BUS), 8, hidden_bus(emu, "pnp"))
    return driver_register(emu, d)


@model("pnp_unregister_driver")
def pnp_unregister_driver(emu, drv):
    driver_unregister(emu, drv + _o(emu, PNP_DRIVER))


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
    """Calls ``fn`` for each device on the bus: a bus a module registered has none here (a
    device added to one stops at device_add); a built-in bus with the machine's devices
    (pci, platform, acpi, pnp, serio, virtio) would hand ``fn`` structs the sandbox does not
    have: Unmodelled.  -EINVAL for a NULL or unregistered bus, as the kernel's."""
    if not bus:
        return -EINVAL
    name = bus_registered(emu, bus)
    if name is None:
        return -EINVAL
    if name in boot_buses(emu).values() and boot_devices(emu).get(name):
        raise Unmodelled(f"bus_for_each_dev (the machine's devices on bus {name})",
                         what=emu.what)
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
def _pci_search(emu, start: int, what: str, pred) -> int:
    """pci_get_dev_by_id over the machine's PCI devices: NULL when none matches; a match
    would be returned as its struct pci_dev, which the sandbox does not have (Unmodelled).
    ``from`` (a device a previous search returned) can only be NULL here."""
    if start:
        raise Unmodelled(f"{emu._model_name} (continues from struct pci_dev {start:#x})",
                         what=emu.what)
    for name, rec in boot_devices(emu).get("pci", {}).items():
        if pred(name, _pci_ids(rec.get("modalias") or "")):
            raise Unmodelled(f"{emu._model_name} ({what} is the machine's PCI device {name}: "
                             "its struct pci_dev)", what=emu.what)
    return 0


def _any(want: int, have: int) -> bool:
    return want & 0xFFFFFFFF == PCI_ANY_ID or want & 0xFFFFFFFF == have


@model("pci_get_device")
def pci_get_device(emu, vendor, device, start):
    return _pci_search(emu, start, f"{vendor & 0xFFFF:04x}:{device & 0xFFFF:04x}",
                       lambda n, d: _any(vendor, d["vendor"]) and _any(device, d["device"]))


@model("pci_get_subsys")
def pci_get_subsys(emu, vendor, device, ss_vendor, ss_device, start):
    return _pci_search(emu, start, f"{vendor & 0xFFFF:04x}:{device & 0xFFFF:04x}",
                       lambda n, d: _any(vendor, d["vendor"]) and _any(device, d["device"])
                       and _any(ss_vendor, d["subvendor"]) and _any(ss_device, d["subdevice"]))


@model("pci_get_class")
def pci_get_class(emu, cls, start):
    """pci_get_class: class_mask PCI_ANY_ID, i.e. the whole 24-bit class must be equal."""
    return _pci_search(emu, start, f"class {cls & 0xFFFFFF:06x}",
                       lambda n, d: d["class"] == cls & 0xFFFFFFFF)


@model("pci_get_domain_bus_and_slot")
def pci_get_domain_bus_and_slot(emu, domain, bus, devfn):
    slot = f"{domain & 0xFFFFFFFF:04x}:{bus & 0xFF:02x}:{(devfn >> 3) & 0x1F:02x}.{devfn & 7}"
    return _pci_search(emu, 0, slot, lambda n, d: n == slot)


@model("pci_dev_put")
def pci_dev_put(emu, dev):
    """Drops a reference on a device a search returned: only NULL gets out of the searches."""
    if dev:
        from ..errors import Unmodelled
        raise Unmodelled(f"pci_dev_put (struct pci_dev at {dev:#x}: no search returns "
                         "one)", what=emu.what)
