"""The life of a ``struct device`` (drivers/base/core.c): device_initialize, dev_set_name,
device_add/device_del, get_device/put_device and the release, device_register/_unregister,
device_create/device_destroy (class devices), device_create_file/_remove_file, the dev_printk
family (``"<driver, else bus, else class> <name>: "`` before the text; a NULL device
``"(NULL device *): "``), kobject_uevent and add_uevent_var (lib/kobject_uevent.c).

**Where a device lives.**  Every device the models know is in ``emu.state["devices"]``
(address → name, sysfs path, parent, class, bus, devt …); an added one also has its sysfs
directory in ``emu.state["sysfs_dirs"]`` (kind "device", see models/kobject.py), so that
``sysfs_create_group(&dev->kobj, …)`` works on it.  The directory is the kernel's
get_device_parent() choice: a class device without a parent goes under
``/devices/virtual/<class>/`` (a glue directory, removed with its last device), one whose
parent has no class under ``<parent>/<class>/``, one whose parent has a class (or a device
without a class) right under the parent; ``platform_bus`` is ``/devices/platform``; a
device with neither is ``/devices/<name>``.  A class device also gets ``/class/<class>/<name>``
and a device with a major number ``/dev/char/<major>:<minor>``; a name taken in any of these
gets sysfs's "cannot create duplicate filename" and -EEXIST, and device_add undoes what it did.

**The references** are the kobject's kref (``dev->kobj.kref``, in the device's memory):
device_initialize sets 1, get_device/put_device count, device_add holds the parent
(get_device(parent), plus the kobject parent reference when the device sits right under it).
The last put is kobject_cleanup: a KOBJ_REMOVE uevent if an ADD was sent and no REMOVE,
kobject_del (directory removed, parent put), then device_release: dev->release, else
dev->type->release, else dev->class->dev_release (callbacks into the module), else the
kernel's ``WARN(1, KERN_ERR "Device '%s' does not have a release() function, it is broken and
must be fixed. See Documentation/core-api/kobject.rst.\\n")``; then ``dev->p`` and the name are
freed.  A device made by device_create is freed by the kernel's device_create_release.  The
release first releases the device's managed resources (models/devres.py).

**Probing.**  device_add on a bus matches the device against that bus's drivers, and every
driver registered on the bus later is matched against it (driver_attach).  A platform device
(platform_bus_type: its dev_groups and uevent are the kernel's, modelled here as the files
modalias/driver_override and MODALIAS=platform:<name>) goes to models/driver.py's
bus_probe_device, which probes it with a matching module driver; device_del unbinds it first.
A device on any other bus is Unmodelled at device_add (naming the bus and a driver that could
match), rather than left unprobed.

**Uevents** (lib/kobject_uevent.c).  Debian's kernels are built without
CONFIG_UEVENT_HELPER and the sandbox machine has no netlink listener (no udev): the event is
still built and numbered, then netlink_broadcast finds no listener.  Built means: the kset
filter (only a device with a bus or a class sends one), a struct kobj_uevent_env on the heap
(this kernel's layout) with ACTION, DEVPATH, SUBSYSTEM, then dev_uevent's MAJOR, MINOR,
DEVNAME (the type's or class's ``devnode``, called back), DEVMODE/DEVUID/DEVGID, DEVTYPE,
DRIVER, then the bus's, class's and type's ``uevent`` callbacks (module code, which calls the
modelled add_uevent_var: 64 keys, 2048 bytes, else WARN and -ENOMEM); a non-zero result drops
the event; else state_add/remove_uevent_sent is set and SEQNUM is the next uevent_seqnum
(``emu.state["uevent_seqnum"]``: events numbered since boot).  A kobject that is not a
device: the first kset up its parents (none, as for a kobject under /sys/fs or /sys/kernel:
-EINVAL, nothing sent), its uevent_ops filter/name/uevent callbacks, SUBSYSTEM the kset's
name.  (models/kobject.py's kobject_put does not send the automatic KOBJ_REMOVE of a plain
kobject's cleanup: uevent_seqnum, which no view shows, misses it.)

**Not written** (kernel addresses the profile does not know, fields module code reaches only
through the driver core): ``kobj.kset`` (devices_kset), ``kobj.ktype`` (device_ktype),
``dma_io_tlb_mem`` (io_tlb_default_mem), ``dev->release`` of device_create (its release is the
model's), the glue directory's kobject as ``kobj.parent`` (0), ``dev->power``'s PM state.
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..layouts import layout
from ..registry import model
from .driver import _reg as _driver_reg, boot_buses, err_ptr, is_err
from .kobject import _dirs, _files, _set_name, sysfs_create_group
from .locking import init_list_head
from .slab import kfree_const

EINVAL, EEXIST, ENODEV, ENOMEM, EPROBE_DEFER = 22, 17, 19, 12, 517
MINORBITS = 20
NUMA_NO_NODE = -1
BUS_NOTIFY_ADD_DEVICE, BUS_NOTIFY_DEL_DEVICE, BUS_NOTIFY_REMOVED_DEVICE = 1, 2, 3

LAYOUT = layout("device")
KOBJ_NAME = ("device", "kobj.name")
KOBJ_ENTRY = ("device", "kobj.entry")
KOBJ_PARENT = ("device", "kobj.parent")
KOBJ_KREF = ("device", "kobj.kref")
ST_INIT = ("device", "kobj.state_initialized")
ST_SYSFS = ("device", "kobj.state_in_sysfs")
ST_ADD = ("device", "kobj.state_add_uevent_sent")
ST_REMOVE = ("device", "kobj.state_remove_uevent_sent")
ST_SUPPRESS = ("device", "kobj.uevent_suppress")
D_PARENT, D_P, D_INIT_NAME = ("device", "parent"), ("device", "p"), ("device", "init_name")
D_TYPE, D_BUS, D_DRIVER = ("device", "type"), ("device", "bus"), ("device", "driver")
D_MUTEX, D_DMA_POOLS = ("device", "mutex"), ("device", "dma_pools")
D_DEVRES_LOCK, D_DEVRES_HEAD = ("device", "devres_lock"), ("device", "devres_head")
D_LINKS = [("device", "links.suppliers"), ("device", "links.consumers"),
           ("device", "links.defer_sync")]
D_LINKS_STATUS = ("device", "links.status")
D_NUMA, D_DEVT, D_ID = ("device", "numa_node"), ("device", "devt"), ("device", "id")
D_CLASS, D_GROUPS, D_RELEASE = ("device", "class"), ("device", "groups"), ("device", "release")
D_DRVDATA, D_SIZE = ("device", "driver_data"), ("device", "sizeof")
MUTEX_WAIT_LIST = ("mutex", "wait_list")
P_SIZE = ("device_private", "sizeof")
T_NAME, T_GROUPS, T_UEVENT = ("device_type", "name"), ("device_type", "groups"), \
    ("device_type", "uevent")
T_DEVNODE, T_RELEASE = ("device_type", "devnode"), ("device_type", "release")
C_NAME, C_DEV_GROUPS = ("class", "name"), ("class", "dev_groups")
C_DEV_UEVENT, C_DEVNODE, C_DEV_RELEASE = ("class", "dev_uevent"), ("class", "devnode"), \
    ("class", "dev_release")
C_NS_TYPE = ("class", "ns_type")
B_NAME, B_DEV_NAME, B_DEV_ROOT = ("bus_type", "name"), ("bus_type", "dev_name"), \
    ("bus_type", "dev_root")
B_DEV_GROUPS, B_MATCH, B_UEVENT = ("bus_type", "dev_groups"), ("bus_type", "match"), \
    ("bus_type", "uevent")
CI_ADD_DEV, CI_REMOVE_DEV = ("class_interface", "add_dev"), ("class_interface", "remove_dev")
NB_CALL = ("notifier_block", "notifier_call")


def _o(emu, key):
    return LAYOUT.of(emu)[key]


def _ptr(emu, obj: int, key) -> int:
    return emu.read_u(obj + _o(emu, key), 8)


def _bit(emu, dev: int, key) -> bool:
    bit = _o(emu, key)[0]
    return bool(emu.read_u(dev + bit // 8, 1) >> (bit % 8) & 1)


def _set_bit(emu, dev: int, key, on: bool) -> None:
    bit = _o(emu, key)[0]
    b = emu.read_u(dev + bit // 8, 1)
    b = b | (1 << bit % 8) if on else b & ~(1 << bit % 8)
    emu.write_u(dev + bit // 8, 1, b)


def _devs(emu) -> dict:
    return emu.state.setdefault("devices", {})


def _s(emu, p: int) -> str:
    return emu.cstr(p, 256).decode("latin-1") if p else ""


def dev_name(emu, dev: int) -> str:
    return _s(emu, _ptr(emu, dev, KOBJ_NAME))


def _class_name(emu, cls: int) -> str:
    return _s(emu, _ptr(emu, cls, C_NAME))


def _class_registered(emu, cls: int) -> dict | None:
    c = _driver_reg(emu, "class").get(_class_name(emu, cls))
    return c if c is not None and c["cls"] == cls else None


# --- device_initialize / names / references -------------------------------------------------------
@model("device_initialize")
def device_initialize(emu, dev):
    from .vsprintf import vsprintf
    if _bit(emu, dev, ST_INIT):                 # kobject_init: says so, then initializes anyway
        emu.printk(3, vsprintf(emu, b"kobject (%p): tried to init an initialized object, "
                                    b"something is seriously wrong.\n", iter([dev])))
    emu.write_u(dev + _o(emu, KOBJ_KREF), 4, 1)
    init_list_head(emu, dev + _o(emu, KOBJ_ENTRY))
    for k in (ST_SYSFS, ST_ADD, ST_REMOVE):
        _set_bit(emu, dev, k, False)
    _set_bit(emu, dev, ST_INIT, True)
    init_list_head(emu, dev + _o(emu, D_DMA_POOLS))
    m = dev + _o(emu, D_MUTEX)
    emu.write(m, bytes(_o(emu, MUTEX_WAIT_LIST)))           # owner, wait_lock, osq: 0
    init_list_head(emu, m + _o(emu, MUTEX_WAIT_LIST))
    emu.write_u(dev + _o(emu, D_DEVRES_LOCK), 4, 0)
    init_list_head(emu, dev + _o(emu, D_DEVRES_HEAD))
    emu.write_u(dev + _o(emu, D_NUMA), 4, NUMA_NO_NODE)
    for k in D_LINKS:
        init_list_head(emu, dev + _o(emu, k))
    emu.write_u(dev + _o(emu, D_LINKS_STATUS), 4, 0)        # DL_DEV_NO_DRIVER
    _devs(emu)[str(dev)] = {"name": "", "path": None}


@model("dev_set_name")
def dev_set_name(emu, dev, fmt, *_):
    return _set_name(emu, dev, fmt, emu.args_from(2))


def _kref(emu, dev: int) -> int:
    return emu.read_u(dev + _o(emu, KOBJ_KREF), 4)


def get(emu, dev: int) -> int:
    if dev and dev == emu.export_addr("platform_bus"):   # the kernel's static device: its
        return dev                                        # count is never seen, never drops
    if dev:
        if not _bit(emu, dev, ST_INIT):
            emu.printk(4, f"kobject: '{dev_name(emu, dev)}' ({dev:#x}): is not initialized, "
                          "yet kobject_get() is being called.\n")
        emu.write_u(dev + _o(emu, KOBJ_KREF), 4, _kref(emu, dev) + 1)
    return dev


@model("get_device")
def get_device(emu, dev):
    return get(emu, dev)


def put(emu, dev: int) -> None:
    if not dev or dev == emu.export_addr("platform_bus"):
        return
    if not _bit(emu, dev, ST_INIT):
        emu.printk(4, f"kobject: '{dev_name(emu, dev)}' ({dev:#x}): is not initialized, yet "
                      "kobject_put() is being called.\n")
    n = _kref(emu, dev)
    if n == 0:
        raise emu.oops(["refcount_t: underflow; use-after-free.",
                        "WARNING: CPU: 0 at lib/refcount.c refcount_warn_saturate"])
    emu.write_u(dev + _o(emu, KOBJ_KREF), 4, n - 1)
    if n == 1:
        _cleanup(emu, dev)


@model("put_device")
def put_device(emu, dev):
    put(emu, dev)


def _cleanup(emu, dev: int) -> None:
    """kobject_cleanup of a device's kobject, then device_release."""
    d = _devs(emu).get(str(dev), {})
    name_p = _ptr(emu, dev, KOBJ_NAME)
    if _bit(emu, dev, ST_ADD) and not _bit(emu, dev, ST_REMOVE):
        _uevent(emu, dev, "remove")
    if _bit(emu, dev, ST_SYSFS):
        _kobject_del(emu, dev)
    from .devres import devres_release_all
    devres_release_all(emu, dev)                # device_release: managed resources first
    p = _ptr(emu, dev, D_P)
    release = _ptr(emu, dev, D_RELEASE)
    typ, cls = _ptr(emu, dev, D_TYPE), _ptr(emu, dev, D_CLASS)
    name = dev_name(emu, dev)
    _devs(emu).pop(str(dev), None)
    if d.get("created"):                        # device_create_release: kfree(dev)
        emu.kfree(dev)
    elif release:
        emu.call_module(release, (dev,))
    elif d.get("release_model") == "platform":  # platform_device_release (driver.py)
        from .driver import platform_device_release
        platform_device_release(emu, dev)
    elif typ and _ptr(emu, typ, T_RELEASE):
        emu.call_module(_ptr(emu, typ, T_RELEASE), (dev,))
    elif cls and _ptr(emu, cls, C_DEV_RELEASE):
        emu.call_module(_ptr(emu, cls, C_DEV_RELEASE), (dev,))
    else:
        _warn(emu, f"Device '{name}' does not have a release() function, it is broken and "
                   "must be fixed. See Documentation/core-api/kobject.rst.",
              "drivers/base/core.c device_release")
    if p:
        emu.kfree(p)
    if name_p:
        kfree_const(emu, name_p)


# --- device_add ---------------------------------------------------------------------------------
def _known_path(emu, dev: int) -> str | None:
    """The sysfs path of a device (a modelled one that is added, or platform_bus)."""
    if dev and dev == emu.export_addr("platform_bus"):
        return "/devices/platform"
    d = _devs(emu).get(str(dev))
    return d.get("path") if d else None


def _where(emu, dev: int, parent: int) -> tuple[str, str | None, bool]:
    """get_device_parent: (directory of the device's parent, glue directory made for it or
    None, whether the parent directory is the parent device's own)."""
    cls = _ptr(emu, dev, D_CLASS)
    ppath = _known_path(emu, parent) if parent else None
    if parent and ppath is None:
        raise Unmodelled(f"device_add (parent device {parent:#x} of '{dev_name(emu, dev)}' is "
                         "not a device the sandbox models)", what=emu.what)
    if cls:
        cname = _class_name(emu, cls)
        if _ptr(emu, cls, C_NS_TYPE):
            raise Unmodelled(f"device_add (class {cname} has a namespace type)", what=emu.what)
        if not parent:
            return f"/devices/virtual/{cname}", f"/devices/virtual/{cname}", False
        pcls = _devs(emu).get(str(parent), {}).get("class")
        if pcls:
            return ppath, None, True
        return f"{ppath}/{cname}", f"{ppath}/{cname}", False
    bus = _ptr(emu, dev, D_BUS)
    try:                                       # Linux 6.1's bus->dev_root (6.3 moved it)
        root = _ptr(emu, bus, B_DEV_ROOT) if bus and not parent else 0
    except Unmodelled:
        root = 0
    if root:
        raise Unmodelled("device_add (a bus device under the bus's dev_root)", what=emu.what)
    if parent:
        return ppath, None, parent != emu.export_addr("platform_bus")
    return "/devices", None, False


def _dup(emu, path: str) -> int:
    emu.printk(3, f"sysfs: cannot create duplicate filename '{path}'\n")
    return -EEXIST


def _check_probe(emu, dev: int, bus: int) -> str:
    """bus_add_device + bus_probe_device: the device is matched against the bus's drivers
    now, and against every driver registered on the bus later (driver_register's
    driver_attach, models/driver.py, walks no devices): neither is modelled, so a device on a
    bus stops the run, named."""
    from .driver import bus_registered
    name = bus_registered(emu, bus)
    if name is None:
        raise Unmodelled(f"device_add (bus at {bus:#x} is not registered: bus->p is NULL)",
                         what=emu.what)
    if name == "platform":                      # matched after the uevent: driver.py's
        return name                             # bus_probe_device
    drvs = [k for k in _driver_reg(emu, "bus_driver") if k.startswith(name + "/")]
    if name in boot_buses(emu).values():
        why = "its drivers, built-in ones included"
    elif drvs:
        why = f"driver {drvs[0]}"
    else:
        why = "the drivers registered on it later"
    raise Unmodelled(f"device_add (matching '{dev_name(emu, dev)}' on bus {name} against "
                     f"{why}: probing)", what=emu.what)


def _devnode(emu, dev: int) -> tuple[str | None, int, int, int]:
    """device_get_devnode: the type's devnode(dev, &mode, &uid, &gid), else the class's
    devnode(dev, &mode) (module callbacks; the string they return is kfree'd after use),
    else the name with '!' as '/'.  (name, mode, uid, gid)."""
    typ, cls = _ptr(emu, dev, D_TYPE), _ptr(emu, dev, D_CLASS)
    out = emu.kmalloc(16, zero=True)                   # umode_t mode; kuid_t uid; kgid_t gid
    try:
        for fn, args in (((_ptr(emu, typ, T_DEVNODE) if typ else 0),
                          (dev, out, out + 4, out + 8)),
                         ((_ptr(emu, cls, C_DEVNODE) if cls else 0), (dev, out))):
            if fn:
                s = emu.call_module(fn, args)
                if s:
                    text = _s(emu, s)
                    emu.kfree(s)
                    return (text, emu.read_u(out, 2), emu.read_u(out + 4, 4),
                            emu.read_u(out + 8, 4))
        return dev_name(emu, dev).replace("!", "/"), emu.read_u(out, 2), 0, 0
    finally:
        emu.kfree(out)


# --- uevents (lib/kobject_uevent.c) ---------------------------------------------------------------
ENV_ENVP, ENV_IDX = ("kobj_uevent_env", "envp"), ("kobj_uevent_env", "envp_idx")
ENV_BUF, ENV_BUFLEN = ("kobj_uevent_env", "buf"), ("kobj_uevent_env", "buflen")
ENV_SIZE = ("kobj_uevent_env", "sizeof")
UEVENT_NUM_ENVP, UEVENT_BUFFER_SIZE = 64, 2048


def _add_var(emu, env: int, text: str) -> int:
    """add_uevent_var with the formatted ``text``: -ENOMEM and the kernel's WARN when the
    64 keys or the 2048-byte buffer are used up."""
    idx = emu.read_u(env + _o(emu, ENV_IDX), 4)
    if idx >= UEVENT_NUM_ENVP:
        _warn(emu, "add_uevent_var: too many keys", "lib/kobject_uevent.c add_uevent_var")
        return -ENOMEM
    buflen = emu.read_u(env + _o(emu, ENV_BUFLEN), 4)
    room = UEVENT_BUFFER_SIZE - buflen
    raw = text.encode("latin-1")
    at = env + _o(emu, ENV_BUF) + buflen
    if room:
        emu.write(at, raw[:room - 1] + b"\0")
    if len(raw) >= room:
        _warn(emu, "add_uevent_var: buffer size too small", "lib/kobject_uevent.c add_uevent_var")
        return -ENOMEM
    emu.write_u(env + _o(emu, ENV_ENVP) + 8 * idx, 8, at)
    emu.write_u(env + _o(emu, ENV_IDX), 4, idx + 1)
    emu.write_u(env + _o(emu, ENV_BUFLEN), 4, buflen + len(raw) + 1)
    return 0


def _warn(emu, text: str, where: str, level: int = 3) -> None:
    """WARN(1, fmt): the cut line, the message (at the fmt's KERN_ level, default 4), the
    WARNING line (its register dump and call trace are not reproduced)."""
    emu.printk(4, "------------[ cut here ]------------\n")
    emu.printk(level, text + "\n")
    emu.printk(4, f"WARNING: CPU: 0 PID: {emu.pid} at {where}\n")


@model("add_uevent_var")
def add_uevent_var(emu, env, fmt, *_):
    from .vsprintf import vsprintf
    return _add_var(emu, env, vsprintf(emu, emu.cstr(fmt), emu.args_from(2)))


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _dev_uevent(emu, dev: int, env: int) -> int:
    """drivers/base/core.c dev_uevent: the device node's keys, DEVTYPE, DRIVER, then the bus's,
    the class's and the type's uevent callbacks (the last one's result is returned)."""
    devt = emu.read_u(dev + _o(emu, D_DEVT), 4)
    if devt >> MINORBITS:
        _add_var(emu, env, f"MAJOR={devt >> MINORBITS}")
        _add_var(emu, env, f"MINOR={devt & ((1 << MINORBITS) - 1)}")
        name, mode, uid, gid = _devnode(emu, dev)
        if name is not None:
            _add_var(emu, env, f"DEVNAME={name}")
            if mode:
                _add_var(emu, env, f"DEVMODE={mode & 0o777:#o}")
            if uid:
                _add_var(emu, env, f"DEVUID={uid}")
            if gid:
                _add_var(emu, env, f"DEVGID={gid}")
    bus, cls, typ = _ptr(emu, dev, D_BUS), _ptr(emu, dev, D_CLASS), _ptr(emu, dev, D_TYPE)
    if typ and _ptr(emu, typ, T_NAME):
        _add_var(emu, env, f"DEVTYPE={_s(emu, _ptr(emu, typ, T_NAME))}")
    drv = _ptr(emu, dev, D_DRIVER)
    if drv:
        _add_var(emu, env, f"DRIVER={_s(emu, emu.read_u(drv, 8))}")
    ret = 0
    for obj, key in ((bus, B_UEVENT), (cls, C_DEV_UEVENT), (typ, T_UEVENT)):
        if obj and obj == bus and _platform_bus(emu, bus):     # platform_uevent (no OF node,
            from .driver import platform_modalias              # no ACPI companion)
            _add_var(emu, env, f"MODALIAS={platform_modalias(emu, dev)}")
            ret = 0                                            # (its result is not checked)
            continue
        fn = _ptr(emu, obj, key) if obj else 0
        if fn:
            ret = _s32(emu.call_module(fn, (dev, env)))   # (pr_debug on failure: off)
    return ret


def _uevent(emu, dev: int, action: str) -> int:
    """kobject_uevent(&dev->kobj, action): Debian has no CONFIG_UEVENT_HELPER and the sandbox
    no netlink listener, so a built event goes nowhere — but it is built (callbacks run) and
    numbered."""
    if action == "remove":                  # marked done whatever happens next
        _set_bit(emu, dev, ST_REMOVE, True)
    if _bit(emu, dev, ST_SUPPRESS):
        return 0
    bus, cls = _ptr(emu, dev, D_BUS), _ptr(emu, dev, D_CLASS)
    if not bus and not cls:                  # dev_uevent_filter: no event
        return 0
    path = _devs(emu).get(str(dev), {}).get("path")
    if not path:
        raise Unmodelled(f"kobject_uevent (device '{dev_name(emu, dev)}' is not in sysfs)",
                         what=emu.what)
    subsystem = _bus_name(emu, bus) if bus else _class_name(emu, cls)
    env = emu.kmalloc(_o(emu, ENV_SIZE), zero=True)
    try:
        _add_var(emu, env, f"ACTION={action}")
        _add_var(emu, env, f"DEVPATH={path}")
        _add_var(emu, env, f"SUBSYSTEM={subsystem}")
        ret = _dev_uevent(emu, dev, env)
        if ret:                              # the event is dropped (a pr_debug)
            return ret
        if action == "add":
            _set_bit(emu, dev, ST_ADD, True)
        elif action == "remove":
            _set_bit(emu, dev, ST_REMOVE, True)
        seq = emu.state.get("uevent_seqnum", 0) + 1
        emu.state["uevent_seqnum"] = seq
        ret = _add_var(emu, env, f"SEQNUM={seq}")
        # kobject_uevent_net_broadcast: netlink_has_listeners() is false → nothing sent
        return ret
    finally:
        emu.kfree(env)


KOBJ_ACTIONS = ("add", "remove", "change", "move", "online", "offline", "bind", "unbind")


K_NAME, K_PARENT, K_KSET = ("kobject", "name"), ("kobject", "parent"), ("kobject", "kset")
K_ADD, K_REMOVE = ("kobject", "state_add_uevent_sent"), ("kobject", "state_remove_uevent_sent")
K_SUPPRESS = ("kobject", "uevent_suppress")
KS_KOBJ, KS_OPS = ("kset", "kobj"), ("kset", "uevent_ops")
OPS_FILTER, OPS_NAME, OPS_UEVENT = ("kset_uevent_ops", "filter"), ("kset_uevent_ops", "name"), \
    ("kset_uevent_ops", "uevent")


def _kobject_uevent(emu, kobj: int, action: str) -> int:
    """kobject_uevent_env for a kobject that is not a device: the first kset up its parents
    (none → -EINVAL, a pr_debug), the kset's uevent_ops filter/name/uevent (module callbacks),
    SUBSYSTEM the kset's name when it has no ``name`` op."""
    from .kobject import _path_of
    if action == "remove":
        _set_bit(emu, kobj, K_REMOVE, True)
    top = kobj
    while not _ptr(emu, top, K_KSET) and _ptr(emu, top, K_PARENT):
        top = _ptr(emu, top, K_PARENT)
    kset = _ptr(emu, top, K_KSET)
    if not kset:
        return -EINVAL
    ops = _ptr(emu, kset, KS_OPS)
    if _bit(emu, kobj, K_SUPPRESS):
        return 0
    if ops and _ptr(emu, ops, OPS_FILTER):
        if not _s32(emu.call_module(_ptr(emu, ops, OPS_FILTER), (kobj,))):
            return 0
    if ops and _ptr(emu, ops, OPS_NAME):
        subsystem = _s(emu, emu.call_module(_ptr(emu, ops, OPS_NAME), (kobj,)))
    else:
        subsystem = _s(emu, _ptr(emu, kset + _o(emu, KS_KOBJ), K_NAME))
    if not subsystem:
        return 0
    path = _path_of(emu, kobj)
    if not path:
        raise Unmodelled(f"kobject_uevent (kobject {kobj:#x} is not a modelled sysfs "
                         "directory)", what=emu.what)
    env = emu.kmalloc(_o(emu, ENV_SIZE), zero=True)
    try:
        for text in (f"ACTION={action}", f"DEVPATH={path}", f"SUBSYSTEM={subsystem}"):
            ret = _add_var(emu, env, text)
            if ret:
                return ret
        if ops and _ptr(emu, ops, OPS_UEVENT):
            ret = _s32(emu.call_module(_ptr(emu, ops, OPS_UEVENT), (kobj, env)))
            if ret:
                return ret
        if action == "add":
            _set_bit(emu, kobj, K_ADD, True)
        seq = emu.state.get("uevent_seqnum", 0) + 1
        emu.state["uevent_seqnum"] = seq
        return _add_var(emu, env, f"SEQNUM={seq}")
    finally:
        emu.kfree(env)


@model("kobject_uevent")
def kobject_uevent(emu, kobj, action):
    """A device's kobject (the models' devices) or a kobject in a modelled sysfs directory."""
    action &= 0xFFFFFFFF
    if action >= len(KOBJ_ACTIONS):
        raise Unmodelled(f"kobject_uevent (action {action})", what=emu.what)
    if str(kobj) in _devs(emu):
        return _uevent(emu, kobj, KOBJ_ACTIONS[action])
    return _kobject_uevent(emu, kobj, KOBJ_ACTIONS[action])


def _notify(emu, bus: int, event: int, dev: int) -> None:
    from .driver import bus_registered
    name = bus_registered(emu, bus)
    chain = emu.state.get("driver", {}).get("bus_notifiers", {}).get(name, [])
    for nb in list(chain):
        emu.call_module(_ptr(emu, nb, NB_CALL), (nb, event, dev))


def _groups(emu, dev: int, arr: int) -> int:
    while arr and emu.read_u(arr, 8):
        err = sysfs_create_group(emu, dev, emu.read_u(arr, 8))
        if err:
            return err
        arr += 8
    return 0


def _remove_dirs(emu, dev: int) -> None:
    path = _devs(emu).get(str(dev), {}).get("path")
    if not path:
        return
    for p in [p for p in _dirs(emu) if p == path or p.startswith(path + "/")]:
        del _dirs(emu)[p]
    for f in [f for f in _files(emu) if f.startswith(path + "/")]:
        del _files(emu)[f]


def _kobject_del(emu, dev: int) -> None:
    """kobject_del: the directory goes, the kobject parent's reference is dropped; an empty
    glue directory goes with its last device (cleanup_glue_dir)."""
    d = _devs(emu).get(str(dev), {})
    _remove_dirs(emu, dev)
    _set_bit(emu, dev, ST_SYSFS, False)
    emu.write_u(dev + _o(emu, KOBJ_PARENT), 8, 0)
    glue = d.get("glue")
    if glue and not any(p.startswith(glue + "/") for p in _dirs(emu)):
        _dirs(emu).pop(glue, None)
    if d.get("kparent"):
        put(emu, d["kparent"])
    d["path"] = None


def _add(emu, dev: int) -> int:
    devs = _devs(emu)
    if str(dev) not in devs:
        devs[str(dev)] = {"name": "", "path": None}
    d = devs[str(dev)]
    if not _ptr(emu, dev, D_P):                         # device_private_init
        p = emu.kmalloc(_o(emu, P_SIZE), zero=True)
        emu.write_u(dev + _o(emu, D_P), 8, p)
    init_name = _ptr(emu, dev, D_INIT_NAME)
    err = 0
    if init_name:
        err = _set_name_str(emu, dev, init_name)
        emu.write_u(dev + _o(emu, D_INIT_NAME), 8, 0)
    bus = _ptr(emu, dev, D_BUS)
    if _ptr(emu, dev, KOBJ_NAME):
        err = 0
    elif bus and _ptr(emu, bus, B_DEV_NAME):
        text = f"{_s(emu, _ptr(emu, bus, B_DEV_NAME))}{emu.read_u(dev + _o(emu, D_ID), 4)}"
        err = _set_name_str(emu, dev, text)
    else:
        err = -EINVAL
    if err:
        emu.kfree(_ptr(emu, dev, D_P))
        emu.write_u(dev + _o(emu, D_P), 8, 0)
        return err
    name = dev_name(emu, dev)
    cls = _ptr(emu, dev, D_CLASS)
    if cls and _class_registered(emu, cls) is None:
        raise Unmodelled(f"device_add (class '{_class_name(emu, cls)}' of '{name}' is not a "
                         "class a module registered)", what=emu.what)
    bus_name = _check_probe(emu, dev, bus) if bus else None   # (a bus device: Unmodelled;
    # the bus_add_device steps below are kept for when driver_register walks devices)
    parent = get(emu, _ptr(emu, dev, D_PARENT))
    pdir, glue, direct = _where(emu, dev, parent)
    path = f"{pdir}/{name}"

    def undo(e: int) -> int:
        if glue and not any(p.startswith(glue + "/") for p in _dirs(emu)):
            _dirs(emu).pop(glue, None)
        put(emu, parent)
        emu.kfree(_ptr(emu, dev, D_P))
        emu.write_u(dev + _o(emu, D_P), 8, 0)
        return e

    if path in _dirs(emu):
        emu.printk(3, f"sysfs: cannot create duplicate filename '{path}'\n")
        emu.printk(3, f"kobject_add_internal failed for {name} with -EEXIST, don't try to "
                      "register things with the same name in the same directory.\n")
        return undo(-EEXIST)
    if glue and glue not in _dirs(emu):
        _dirs(emu)[glue] = {"kobj": 0, "kind": "glue", "parent": 0}
    kparent = parent if direct else 0
    get(emu, kparent)
    emu.write_u(dev + _o(emu, KOBJ_PARENT), 8, kparent)
    _set_bit(emu, dev, ST_SYSFS, True)
    _dirs(emu)[path] = {"kobj": dev, "kind": "device", "parent": kparent}
    _files(emu)[f"{path}/uevent"] = 0o644
    d.update(name=name, path=path, glue=glue, kparent=kparent, parent=parent,
             cls=cls, bus=bus, bus_name=bus_name,
             **{"class": _class_name(emu, cls) if cls else None})

    def fail(e: int) -> int:
        _kobject_del(emu, dev)
        return undo(e)

    cname = d["class"]
    links = emu.state.setdefault("device_links", {})
    if cls:                                              # device_add_class_symlinks
        link = f"/class/{cname}/{name}"
        if link in links:
            return fail(_dup(emu, link))
        links[link] = path
        d.setdefault("links", []).append(link)
    typ = _ptr(emu, dev, D_TYPE)                         # device_add_attrs
    for arr in ((_ptr(emu, cls, C_DEV_GROUPS) if cls else 0),
                (_ptr(emu, typ, T_GROUPS) if typ else 0), _ptr(emu, dev, D_GROUPS)):
        err = _groups(emu, dev, arr)
        if err:
            _unlink(emu, d)
            return fail(err)
    if bus and _platform_bus(emu, bus):              # platform_dev_groups: the kernel's
        err = 0                                          # (numa_node hidden: NUMA_NO_NODE)
        for f in ("modalias", "driver_override"):
            _files(emu)[f"{path}/{f}"] = 0o444 if f == "modalias" else 0o644
    elif bus:                                            # bus_add_device
        err = _groups(emu, dev, _ptr(emu, bus, B_DEV_GROUPS))
    if bus:
        link = f"/bus/{bus_name}/devices/{name}"
        if not err and link in links:
            err = _dup(emu, link)
        if err:
            _unlink(emu, d)
            return fail(err)
        links[link] = path
        d.setdefault("links", []).append(link)
    devt = emu.read_u(dev + _o(emu, D_DEVT), 4)
    d["devt"] = devt
    if devt >> MINORBITS:
        _files(emu)[f"{path}/dev"] = 0o444
        link = f"/dev/char/{devt >> MINORBITS}:{devt & ((1 << MINORBITS) - 1)}"
        if link in links:
            _unlink(emu, d)
            return fail(_dup(emu, link))
        links[link] = path
        d.setdefault("links", []).append(link)
        d["devnode"] = _devnode(emu, dev)[0]            # devtmpfs_create_node
    if bus:
        _notify(emu, bus, BUS_NOTIFY_ADD_DEVICE, dev)
    _uevent(emu, dev, "add")
    if bus_name == "platform":                           # bus_probe_device
        from .driver import bus_probe_device
        bus_probe_device(emu, dev)
    if cls:                                              # class interfaces' add_dev
        c = _class_registered(emu, cls)
        for intf in list(c.get("interfaces", [])):
            fn = _ptr(emu, intf, CI_ADD_DEV)
            if fn:
                emu.call_module(fn, (dev, intf))
    emu.note(f"/sys{path}")
    return 0


def _set_name_str(emu, dev: int, text) -> int:
    """dev_set_name(dev, "%s", text): text is a kernel string address or a Python str (the
    format and such a string are the models' own, in private memory)."""
    if isinstance(text, str):
        raw = text.encode("latin-1") + b"\0"
        t = emu.priv_alloc(len(raw), 8)
        emu.write(t, raw)
        text = t
    fmt = emu.priv_alloc(3, 8)
    emu.write(fmt, b"%s\0")
    return _set_name(emu, dev, fmt, iter([text]))


def _unlink(emu, d: dict) -> None:
    links = emu.state.setdefault("device_links", {})
    for link in d.pop("links", []):
        links.pop(link, None)


@model("device_add")
def device_add(emu, dev):
    if not dev:
        return -EINVAL
    get(emu, dev)
    err = _add(emu, dev)
    put(emu, dev)
    return err


@model("device_register")
def device_register(emu, dev):
    device_initialize(emu, dev)
    return device_add(emu, dev)


@model("device_del")
def device_del(emu, dev):
    d = _devs(emu).get(str(dev))
    if not d or not d.get("path"):
        raise Unmodelled(f"device_del (device {dev:#x} was not added)", what=emu.what)
    bus, cls = d.get("bus"), d.get("cls")
    if bus:
        _notify(emu, bus, BUS_NOTIFY_DEL_DEVICE, dev)
    if d.get("bus_name") == "platform":                  # bus_remove_device: unbind
        from .driver import platform_unbind, PD_DEV, _o as _dro
        platform_unbind(emu, dev - _dro(emu, PD_DEV))
    if d.get("devt", 0) >> MINORBITS:
        _devnode(emu, dev)                               # devtmpfs_delete_node
    if cls:
        c = _class_registered(emu, cls)
        for intf in list((c or {}).get("interfaces", [])):
            fn = _ptr(emu, intf, CI_REMOVE_DEV)
            if fn:
                emu.call_module(fn, (dev, intf))
    _unlink(emu, d)
    if bus:
        _notify(emu, bus, BUS_NOTIFY_REMOVED_DEVICE, dev)
    _uevent(emu, dev, "remove")
    parent = d.get("parent", 0)
    _kobject_del(emu, dev)
    put(emu, parent)


@model("device_unregister")
def device_unregister(emu, dev):
    device_del(emu, dev)
    put(emu, dev)


# --- class devices (device_create) --------------------------------------------------------------
def _create(emu, cls, parent, devt, drvdata, groups, fmt, args) -> int:
    if not cls or is_err(cls):
        return err_ptr(ENODEV)
    dev = emu.kmalloc(_o(emu, D_SIZE), zero=True)
    device_initialize(emu, dev)
    _devs(emu)[str(dev)]["created"] = True
    emu.write_u(dev + _o(emu, D_DEVT), 4, devt)
    emu.write_u(dev + _o(emu, D_CLASS), 8, cls)
    emu.write_u(dev + _o(emu, D_PARENT), 8, parent)
    emu.write_u(dev + _o(emu, D_GROUPS), 8, groups)
    emu.write_u(dev + _o(emu, D_DRVDATA), 8, drvdata)
    err = _set_name(emu, dev, fmt, args)
    if not err:
        err = device_add(emu, dev)
    if err:
        put(emu, dev)
        return err_ptr(-err)
    return dev


@model("device_create")
def device_create(emu, cls, parent, devt, drvdata, fmt, *_):
    return _create(emu, cls, parent, devt & 0xFFFFFFFF, drvdata, 0, fmt, emu.args_from(5))


@model("device_create_with_groups")
def device_create_with_groups(emu, cls, parent, devt, drvdata, groups, fmt, *_):
    return _create(emu, cls, parent, devt & 0xFFFFFFFF, drvdata, groups, fmt,
                   emu.args_from(6))


@model("device_destroy")
def device_destroy(emu, cls, devt):
    """class_find_device_by_devt (a reference), device_unregister, put_device."""
    devt &= 0xFFFFFFFF
    for key, d in list(_devs(emu).items()):
        if d.get("path") and d.get("cls") == cls and d.get("devt") == devt:
            dev = int(key)
            get(emu, dev)
            device_unregister(emu, dev)
            put(emu, dev)
            return


# --- device attributes (device_create_file) ---------------------------------------------------------
DA_MODE, DA_NAME = ("device_attribute", "attr.mode"), ("device_attribute", "attr.name")
DA_SHOW, DA_STORE = ("device_attribute", "show"), ("device_attribute", "store")
S_IRUGO, S_IWUGO = 0o444, 0o222


@model("device_create_file")
def device_create_file(emu, dev, attr):
    """The WARNs for a mode without show/store, then sysfs_create_file: a device not in sysfs
    (no kernfs node) → WARN_ON and -EINVAL; a name taken → sysfs's duplicate warning,
    -EEXIST."""
    if not dev:
        return 0
    name = _s(emu, _ptr(emu, attr, DA_NAME))
    mode = emu.read_u(attr + _o(emu, DA_MODE), 2)
    if mode & S_IWUGO and not _ptr(emu, attr, DA_STORE):
        _warn(emu, f"Attribute {name}: write permission without 'store'",
              "drivers/base/core.c device_create_file", 4)
    if mode & S_IRUGO and not _ptr(emu, attr, DA_SHOW):
        _warn(emu, f"Attribute {name}: read permission without 'show'",
              "drivers/base/core.c device_create_file", 4)
    path = _devs(emu).get(str(dev), {}).get("path")
    if not path:
        if str(dev) in _devs(emu) or dev == emu.export_addr("platform_bus"):
            emu.printk(4, f"WARNING: CPU: 0 PID: {emu.pid} at fs/sysfs/file.c "
                          "sysfs_create_file_ns\n")
            return -EINVAL
        raise Unmodelled(f"device_create_file (device {dev:#x} is not one the sandbox models)",
                         what=emu.what)
    f = f"{path}/{name}"
    if f in _files(emu) or f in _dirs(emu):
        return _dup(emu, f)
    _files(emu)[f] = mode & 0o7777
    emu.note(f"/sys{f}")
    return 0


@model("device_remove_file")
def device_remove_file(emu, dev, attr):
    path = _devs(emu).get(str(dev), {}).get("path") if dev else None
    if path:
        _files(emu).pop(f"{path}/{_s(emu, _ptr(emu, attr, DA_NAME))}", None)


# --- dev_printk (drivers/base/core.c) ------------------------------------------------------------
def dev_driver_string(emu, dev: int) -> str:
    """The bound driver's name, else the bus's, else the class's, else ""."""
    drv, bus, cls = _ptr(emu, dev, D_DRIVER), _ptr(emu, dev, D_BUS), _ptr(emu, dev, D_CLASS)
    if drv:
        return _s(emu, emu.read_u(drv, 8))             # struct device_driver: name first
    if bus:
        return _bus_name(emu, bus)
    return _class_name(emu, cls) if cls else ""


@model("dev_driver_string")
def dev_driver_string_model(emu, dev):
    """The name pointer: the bound driver's, else the bus's, else the class's, else "" (a
    built-in bus's name is the kernel's string: a constant of the emulator's here)."""
    from .arch import _kernel_string
    drv, bus, cls = _ptr(emu, dev, D_DRIVER), _ptr(emu, dev, D_BUS), _ptr(emu, dev, D_CLASS)
    if drv:
        return emu.read_u(drv, 8)
    if bus:
        name = boot_buses(emu).get(bus)
        return _kernel_string(emu, name) if name else _ptr(emu, bus, B_NAME)
    return _ptr(emu, cls, C_NAME) if cls else _kernel_string(emu, "")


def _bus_name(emu, bus: int) -> str:
    """A bus's name: a built-in bus's from the models (its bus_type is the kernel's data)."""
    return boot_buses(emu).get(bus) or _s(emu, _ptr(emu, bus, B_NAME))


def _platform_bus(emu, bus: int) -> bool:
    return bool(bus) and bus == emu.export_addr("platform_bus_type")


def _dev_name_or_init(emu, dev: int) -> str:
    """dev_name(): init_name while set (a static device not yet added), else the kobject's;
    NULL prints as "(null)"."""
    p = _ptr(emu, dev, D_INIT_NAME) or _ptr(emu, dev, KOBJ_NAME)
    return _s(emu, p) if p else "(null)"


def _dev_printk(emu, level: int, dev: int, body: str) -> None:
    if dev:
        text = f"{dev_driver_string(emu, dev)} {_dev_name_or_init(emu, dev)}: {body}"
    else:
        text = f"(NULL device *): {body}"
    emu.note(text)
    emu.printk(level, text)


def _levelled(level: int):
    def fn(emu, dev, fmt, *_):
        from .vsprintf import vsprintf
        _dev_printk(emu, level, dev, vsprintf(emu, emu.cstr(fmt), emu.args_from(2)))
    return fn


for _lvl, _name in enumerate(("_dev_emerg", "_dev_alert", "_dev_crit", "_dev_err", "_dev_warn",
                              "_dev_notice", "_dev_info")):
    model(_name)(_levelled(_lvl))


@model("_dev_printk")
def _dev_printk_model(emu, level, dev, fmt, *_):
    """_dev_printk(KERN_<level>, dev, fmt, ...): the level string's digit."""
    from .printk import MESSAGE_LOGLEVEL_DEFAULT, printk_parse_prefix
    from .vsprintf import vsprintf
    lvl, _cont, _n = printk_parse_prefix(_s(emu, level))
    _dev_printk(emu, MESSAGE_LOGLEVEL_DEFAULT if lvl < 0 else lvl, dev,
                vsprintf(emu, emu.cstr(fmt), emu.args_from(3)))
