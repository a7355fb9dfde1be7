"""Kobjects (lib/kobject.c, fs/sysfs): the kernel's top sysfs directories and the ones modules
add under them.

``kernel_kobj`` and ``fs_kobj`` (exported ``struct kobject *`` variables) point at the kernel's
``/sys/kernel`` and ``/sys/fs`` kobjects, modelled as kernel objects of the emulator (private
memory, rebuilt identically on every run): name, an empty ``entry`` list, no parent, no kset,
``kref`` 1 plus the references modules hold (kept in ``emu.state["sysfs_root_kref"]``),
``state_initialized`` and ``state_in_sysfs`` set.  ``ktype`` (lib/kobject.c's
static ``dynamic_kobj_ktype``) and ``sd`` (the kernfs node) are kernel addresses the profile
does not know: they hold 0 — module code reaches them only through the modelled kobject
functions, never by reading the fields.

``kobject_create_and_add(name, parent)`` and ``kset_create_and_add(name, uevent_ops, parent)``
allocate the object on the heap, copy the name (kvasprintf_const → kstrdup_const), take a
reference on the parent and add the directory.  A directory that exists under that parent →
sysfs's "cannot create duplicate filename '<path>'" and kobject_add_internal's
"kobject_add_internal failed for <name> with -EEXIST, don't try to register things with the
same name in the same directory.", then (kobject_create_and_add) "kobject_create_and_add:
kobject_add error: -17" and NULL; kset_create_and_add gives ERR_PTR(-EEXIST).  The
directories live in ``emu.state["sysfs_dirs"]`` (sysfs path → {kobj, kind, parent}); the
built-in top directories (/sys/kernel, /sys/fs, /sys/module …) are known, their built-in
children (/sys/kernel/mm, /sys/fs/cgroup …) are not listed, and none of them shares a name with
what a Debian module adds.  ``kobject_put`` dropping the last reference removes the directory,
drops the parent's reference and frees name and object (``kset_unregister`` likewise);
``sysfs_create_mount_point``/``sysfs_remove_mount_point`` add and remove an empty directory.

Layouts (Debian 6.1 amd64 BTF): ``struct kobject`` (64 bytes) name 0, entry 8, parent 24,
kset 32, ktype 40, sd 48, kref 56, state bits 60 (initialized bit 0, in_sysfs bit 1);
``struct kset`` (96 bytes) list 0, list_lock 16, kobj 24, uevent_ops 88.
"""
from __future__ import annotations

from errno import EINVAL

from ..errors import Unmodelled
from ..registry import data, model
from .driver import err_ptr
from .locking import init_list_head
from .slab import _kfree, kfree_const, kmalloc_flags, kstrdup_const

EEXIST, ENOMEM = 17, 12
KO_NAME, KO_ENTRY, KO_PARENT, KO_KSET, KO_KTYPE, KO_SD, KO_KREF, KO_STATE = \
    0, 8, 24, 32, 40, 48, 56, 60
KOBJECT_SIZE, KSET_SIZE, KSET_KOBJ, KSET_UEVENT_OPS = 64, 96, 24, 88
STATE_INITIALIZED, STATE_IN_SYSFS = 1, 2
GFP_KERNEL_ZERO = 0xCC0 | 0x100
# /sys's top directories on Debian 6.1 (each a kobject or kset made at boot)
SYSFS_ROOT = ("block", "bus", "class", "dev", "devices", "firmware", "fs", "hypervisor",
              "kernel", "module", "power")


def _dirs(emu) -> dict:
    return emu.state.setdefault("sysfs_dirs", {})


def _kernel_kobj(emu, name: str) -> int:
    objs = emu.__dict__.setdefault("_root_kobjs", {})
    if name not in objs:
        k = emu.priv_alloc(KOBJECT_SIZE, 8)
        s = emu.priv_alloc(16, 8)
        emu.write(s, name.encode() + b"\0")
        emu.write_u(k + KO_NAME, 8, s)
        init_list_head(emu, k + KO_ENTRY)
        emu.write_u(k + KO_KREF, 4, emu.state.get("sysfs_root_kref", {}).get(name, 1))
        emu.write_u(k + KO_STATE, 4, STATE_INITIALIZED | STATE_IN_SYSFS)
        objs[name] = k
    return objs[name]


@data("kernel_kobj", 8)
def kernel_kobj(emu) -> bytes:
    return _kernel_kobj(emu, "kernel").to_bytes(8, "little")


@data("fs_kobj", 8)
def fs_kobj(emu) -> bytes:
    return _kernel_kobj(emu, "fs").to_bytes(8, "little")


def _path_of(emu, kobj: int) -> str | None:
    if not kobj:
        return ""
    for name, k in emu.__dict__.get("_root_kobjs", {}).items():
        if k == kobj:
            return "/" + name
    for path, d in _dirs(emu).items():
        if d["kobj"] == kobj:
            return path
    return None


def _set_kref(emu, kobj: int, n: int) -> None:
    """Write kobj's kref; a root kobject's count is kept in ``emu.state["sysfs_root_kref"]``
    (its object is rebuilt on every run, the count must survive from init to exit)."""
    emu.write_u(kobj + KO_KREF, 4, n)
    for name, k in emu.__dict__.get("_root_kobjs", {}).items():
        if k == kobj:
            emu.state.setdefault("sysfs_root_kref", {})[name] = n


def _kref_get(emu, kobj: int) -> None:
    if kobj:
        _set_kref(emu, kobj, emu.read_u(kobj + KO_KREF, 4) + 1)


def _add(emu, kobj: int, parent: int, kind: str) -> int:
    """kobject_add_internal + sysfs_create_dir_ns for a heap kobject whose name is set."""
    name = emu.cstr(emu.read_u(kobj + KO_NAME, 8), 256).decode("latin-1")
    ppath = _path_of(emu, parent)
    if ppath is None:
        raise Unmodelled(f"kobject_add (parent kobject {parent:#x} is not a modelled sysfs "
                         "directory)", what=emu.what)
    path = f"{ppath}/{name}"
    if path in _dirs(emu) or (not ppath and name in SYSFS_ROOT):
        emu.printk(3, f"sysfs: cannot create duplicate filename '{path}'\n")
        emu.printk(3, f"kobject_add_internal failed for {name} with -EEXIST, don't try to "
                      "register things with the same name in the same directory.\n")
        return -EEXIST
    _kref_get(emu, parent)
    emu.write_u(kobj + KO_PARENT, 8, parent)
    emu.write_u(kobj + KO_STATE, 4, emu.read_u(kobj + KO_STATE, 4) | STATE_IN_SYSFS)
    _dirs(emu)[path] = {"kobj": kobj, "kind": kind, "parent": parent}
    emu.note(f"/sys{path}")
    return 0


def _new_kobject(emu, at: int, name: int) -> None:
    emu.write_u(at + KO_NAME, 8, kstrdup_const(emu, name, 0))
    init_list_head(emu, at + KO_ENTRY)
    emu.write_u(at + KO_KREF, 4, 1)
    emu.write_u(at + KO_STATE, 4, STATE_INITIALIZED)


def _release(emu, kobj: int) -> None:
    """kref hit zero: kobject_del (directory removed, parent put), then the ktype's release."""
    for path, d in list(_dirs(emu).items()):
        if d["kobj"] == kobj:
            del _dirs(emu)[path]
            kind = d["kind"]
            for sub in [p for p in _dirs(emu) if p.startswith(path + "/")]:
                if _dirs(emu)[sub]["kind"] == "group":          # sysfs_remove_dir: recursive
                    del _dirs(emu)[sub]
            for f in [f for f in emu.state.get("sysfs_files", {}) if f.startswith(path + "/")]:
                del emu.state["sysfs_files"][f]
            break
    else:
        kind = "unlisted"
    parent = emu.read_u(kobj + KO_PARENT, 8)
    if emu.read_u(kobj + KO_STATE, 4) & STATE_IN_SYSFS:
        emu.write_u(kobj + KO_STATE, 4, emu.read_u(kobj + KO_STATE, 4) & ~STATE_IN_SYSFS)
        emu.write_u(kobj + KO_PARENT, 8, 0)
        if parent:
            kobject_put(emu, parent)
    name = emu.read_u(kobj + KO_NAME, 8)
    if kind in ("kobject", "kset"):
        kfree_const(emu, name)
        _kfree(emu, kobj - (KSET_KOBJ if kind == "kset" else 0), "kfree")
        return
    ktype = emu.read_u(kobj + KO_KTYPE, 8)           # a module's kobject: its ktype->release
    release = emu.read_u(ktype, 8) if ktype else 0
    if release:
        emu.call_module(release, (kobj,))
    else:
        emu.printk(3, f"kobject: '{emu.cstr(name, 256).decode('latin-1')}' ({kobj:#x}): does "
                      "not have a release() function, it is broken and must be fixed. See "
                      "Documentation/core-api/kobject.rst.\n")
    if name:
        kfree_const(emu, name)


@model("kobject_create_and_add")
def kobject_create_and_add(emu, name, parent):
    kobj = kmalloc_flags(emu, KOBJECT_SIZE, GFP_KERNEL_ZERO)
    if not kobj:
        return 0
    _new_kobject(emu, kobj, name)
    err = _add(emu, kobj, parent, "kobject")
    if err:
        emu.printk(4, f"kobject_create_and_add: kobject_add error: {err}\n")
        kfree_const(emu, emu.read_u(kobj + KO_NAME, 8))
        _kfree(emu, kobj, "kfree")
        return 0
    return kobj


@model("kset_create_and_add")
def kset_create_and_add(emu, name, uevent_ops, parent):
    kset = kmalloc_flags(emu, KSET_SIZE, GFP_KERNEL_ZERO)
    if not kset:
        return err_ptr(ENOMEM)
    kobj = kset + KSET_KOBJ
    _new_kobject(emu, kobj, name)
    emu.write_u(kset + KSET_UEVENT_OPS, 8, uevent_ops)
    init_list_head(emu, kset)
    err = _add(emu, kobj, parent, "kset")
    if err:
        kfree_const(emu, emu.read_u(kobj + KO_NAME, 8))
        _kfree(emu, kset, "kfree")
        return err_ptr(-err)
    return kset


# --- a module's own kobjects (kobject_init_and_add) -----------------------------------------------
# kobject_init(kobj, ktype): NULL ktype → "kobject (%p): must have a ktype to be initialized
# properly!"; an initialized one → "kobject (%p): tried to init an initialized object, something
# is seriously wrong." (both the kernel's errors, then dump_stack); else kref 1, empty entry,
# state_initialized, ktype set.  kobject_add: the name is formatted (kvasprintf_const); a NULL
# parent with a kset means the kset's own kobject; the directory is added as above (the kset's
# ``list`` link is not written — module code walks kset lists only through the kernel), then
# the ktype's default_groups (ktype 16, a NULL-terminated array) are created.  The last
# kobject_put of such a kobject removes its directory, drops the parent and calls the ktype's
# release (a callback into the module), then frees the name.
KT_RELEASE, KT_DEFAULT_GROUPS = 0, 16


@model("kobject_init")
def kobject_init(emu, kobj, ktype):
    from .vsprintf import vsprintf
    if not ktype:
        emu.printk(3, vsprintf(emu, b"kobject (%p): must have a ktype to be initialized "
                                    b"properly!\n", iter([kobj])))
    elif emu.read_u(kobj + KO_STATE, 4) & STATE_INITIALIZED:
        emu.printk(3, vsprintf(emu, b"kobject (%p): tried to init an initialized object, "
                                    b"something is seriously wrong.\n", iter([kobj])))
    else:
        emu.write_u(kobj + KO_KREF, 4, 1)
        init_list_head(emu, kobj + KO_ENTRY)
        emu.write_u(kobj + KO_STATE, 4, STATE_INITIALIZED)
        emu.write_u(kobj + KO_KTYPE, 8, ktype)


def _kobject_add(emu, kobj: int, parent: int, fmt: int, args) -> int:
    from .vsprintf import vsprintf
    if not emu.read_u(kobj + KO_STATE, 4) & STATE_INITIALIZED:
        name = emu.cstr(fmt, 256).decode("latin-1")
        emu.printk(3, f"kobject '{name}' ({kobj:#x}): tried to add an uninitialized object, "
                      "something is seriously wrong.\n")
        return -EINVAL
    text = vsprintf(emu, emu.cstr(fmt), args).encode("latin-1")
    s = kmalloc_flags(emu, len(text) + 1, 0xCC0)
    emu.write(s, text + b"\0")
    emu.write_u(kobj + KO_NAME, 8, s)
    if not parent and emu.read_u(kobj + KO_KSET, 8):
        parent = emu.read_u(kobj + KO_KSET, 8) + KSET_KOBJ
    err = _add(emu, kobj, parent, "module")
    if err:
        return err
    ktype = emu.read_u(kobj + KO_KTYPE, 8)
    groups = emu.read_u(ktype + KT_DEFAULT_GROUPS, 8) if ktype else 0
    while groups and emu.read_u(groups, 8):
        err = sysfs_create_group(emu, kobj, emu.read_u(groups, 8))
        if err:
            return err
        groups += 8
    return 0


def kvasprintf_const(emu, gfp: int, fmt: int, args) -> int:
    """lib/kasprintf.c: a format without conversions, or exactly "%s", is kstrdup_const of
    that string (kernel .rodata is not copied); anything else is formatted into kmalloc."""
    from .vsprintf import vsprintf
    f = emu.cstr(fmt)
    if b"%" not in f:
        return kstrdup_const(emu, fmt, gfp)
    if f == b"%s":
        return kstrdup_const(emu, next(iter(args)), gfp)
    text = vsprintf(emu, f, args).encode("latin-1")
    s = kmalloc_flags(emu, len(text) + 1, gfp)
    if s:
        emu.write(s, text + b"\0")
    return s


def _set_name(emu, kobj: int, fmt: int, args) -> int:
    """kobject_set_name_vargs: a name already set and no format → 0; the new name replaces the
    old one (kfree_const); a '/' in it becomes '!' in a private copy (sysfs has no '/' in a
    name)."""
    if emu.read_u(kobj + KO_NAME, 8) and not fmt:
        return 0
    s = kvasprintf_const(emu, 0xCC0, fmt, args)
    if not s:
        return -ENOMEM
    text = emu.cstr(s)
    if b"/" in text:
        t = kmalloc_flags(emu, len(text) + 1, 0xCC0)
        kfree_const(emu, s)
        if not t:
            return -ENOMEM
        emu.write(t, text.replace(b"/", b"!") + b"\0")
        s = t
    kfree_const(emu, emu.read_u(kobj + KO_NAME, 8))
    emu.write_u(kobj + KO_NAME, 8, s)
    emu.note(emu.cstr(s, 256).decode("latin-1"))
    return 0


@model("kobject_set_name")
def kobject_set_name(emu, kobj, fmt, *_):
    return _set_name(emu, kobj, fmt, emu.args_from(2))


@model("kobject_set_name_vargs")
def kobject_set_name_vargs(emu, kobj, fmt, vargs):
    from .vsprintf import VaList
    return _set_name(emu, kobj, fmt, VaList(emu, vargs))


@model("kobject_init_and_add")
def kobject_init_and_add(emu, kobj, ktype, parent, fmt, *_):
    kobject_init(emu, kobj, ktype)
    return _kobject_add(emu, kobj, parent, fmt, emu.args_from(4))


@model("kobject_add")
def kobject_add(emu, kobj, parent, fmt, *_):
    return _kobject_add(emu, kobj, parent, fmt, emu.args_from(3))


@model("kobject_get")
def kobject_get(emu, kobj):
    _kref_get(emu, kobj)
    return kobj


@model("kobject_put")
def kobject_put(emu, kobj):
    if not kobj:
        return
    if not emu.read_u(kobj + KO_STATE, 4) & STATE_INITIALIZED:
        emu.printk(4, f"kobject: '{emu.cstr(emu.read_u(kobj, 8), 256).decode('latin-1')}' "
                      f"({kobj:#x}): is not initialized, yet kobject_put() is being called.\n")
    n = emu.read_u(kobj + KO_KREF, 4)
    if n == 0:
        raise emu.oops(["refcount_t: underflow; use-after-free.",
                        "WARNING: CPU: 0 at lib/refcount.c refcount_warn_saturate"])
    _set_kref(emu, kobj, n - 1)
    if n == 1:
        _release(emu, kobj)


@model("kset_unregister")
def kset_unregister(emu, kset):
    if not kset:
        return
    kobject_put(emu, kset + KSET_KOBJ)


@model("sysfs_create_mount_point")
def sysfs_create_mount_point(emu, parent, name):
    ppath = _path_of(emu, parent)
    if ppath is None:
        raise Unmodelled("sysfs_create_mount_point (parent is not a modelled sysfs directory)",
                         what=emu.what)
    path = f"{ppath}/{emu.cstr(name, 256).decode('latin-1')}"
    if path in _dirs(emu):
        emu.printk(3, f"sysfs: cannot create duplicate filename '{path}'\n")
        return -EEXIST
    _dirs(emu)[path] = {"kobj": 0, "kind": "mount_point", "parent": parent}
    emu.note(f"/sys{path}")
    return 0


@model("sysfs_remove_mount_point")
def sysfs_remove_mount_point(emu, parent, name):
    ppath = _path_of(emu, parent)
    if ppath is not None:
        _dirs(emu).pop(f"{ppath}/{emu.cstr(name, 256).decode('latin-1')}", None)


# --- attribute groups (fs/sysfs/group.c) --------------------------------------------------------
# sysfs_create_group(kobj, grp): struct attribute_group (Debian 6.1 amd64) name 0, is_visible 8,
# is_bin_visible 16, attrs 24, bin_attrs 32; struct attribute name 0, mode 8; struct
# bin_attribute {attr 0, …}.  A kobject that is not in sysfs → WARN and -EINVAL; a named group
# is a subdirectory (exists → -EEXIST, sysfs's duplicate warning); each attribute's mode is
# is_visible(kobj, attr, i) when given (a callback into the module; 0 hides the file), a mode
# beyond SYSFS_PREALLOC|0664 warns "Attribute %s: Invalid permissions 0%o"; a file that exists
# → the duplicate warning, the group's files made so far are removed and the error returned.
# The files are listed in ``emu.state["sysfs_files"]`` (path → mode); sysfs_remove_group
# removes them (and the subdirectory).
SYSFS_PREALLOC = 0o10000


def _files(emu) -> dict:
    return emu.state.setdefault("sysfs_files", {})


def _grp_dir(emu, kobj: int, grp: int) -> tuple[str | None, str]:
    path = _path_of(emu, kobj)
    gname = emu.read_u(grp, 8)
    return path, (f"{path}/{emu.cstr(gname, 256).decode('latin-1')}" if gname and path
                  is not None else path or "")


@model("sysfs_create_group")
def sysfs_create_group(emu, kobj, grp):
    path, d = _grp_dir(emu, kobj, grp)
    if path is None:
        raise Unmodelled("sysfs_create_group (kobject is not a modelled sysfs directory)",
                         what=emu.what)
    if not path:
        emu.printk(4, "WARNING: sysfs_create_group on a kobject without a directory\n")
        return -EINVAL
    if d != path:
        if d in _dirs(emu) or d in _files(emu):
            emu.printk(3, f"sysfs: cannot create duplicate filename '{d}'\n")
            return -EEXIST
        _dirs(emu)[d] = {"kobj": 0, "kind": "group", "parent": kobj}
    made: list[str] = []
    for list_off, vis_off, attr_of in ((24, 8, 0), (32, 16, 0)):
        arr = emu.read_u(grp + list_off, 8)
        vis = emu.read_u(grp + vis_off, 8)
        i = 0
        while arr and emu.read_u(arr + 8 * i, 8):
            attr = emu.read_u(arr + 8 * i, 8) + attr_of
            mode = emu.read_u(attr + 8, 2)
            if vis:
                mode = emu.call_module(vis, (kobj, attr, i)) & 0xFFFF
            i += 1
            if not mode:
                continue
            name = emu.cstr(emu.read_u(attr, 8), 256).decode("latin-1")
            if mode & ~(SYSFS_PREALLOC | 0o664):
                emu.printk(4, f"Attribute {name}: Invalid permissions 0{mode:o}\n")
            f = f"{d}/{name}"
            if f in _files(emu) or f in _dirs(emu):
                emu.printk(3, f"sysfs: cannot create duplicate filename '{f}'\n")
                for m in made:
                    del _files(emu)[m]
                if d != path:
                    _dirs(emu).pop(d, None)
                return -EEXIST
            _files(emu)[f] = mode & 0o7777
            made.append(f)
    emu.note(f"/sys{d}: {len(made)} file(s)")
    return 0


@model("sysfs_remove_group")
def sysfs_remove_group(emu, kobj, grp):
    path, d = _grp_dir(emu, kobj, grp)
    if not path:
        return
    for f in [f for f in _files(emu) if f.startswith(d + "/")]:
        del _files(emu)[f]
    if d != path:
        _dirs(emu).pop(d, None)
