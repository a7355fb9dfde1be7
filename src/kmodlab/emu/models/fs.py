"""Filesystem-side registries (fs/filesystems.c, fs/nls/nls_base.c, fs/debugfs/inode.c).

- ``register_filesystem``: -EBUSY if ``fs->next`` is set or a filesystem of that name is
  registered (the kernel's ``find_filesystem``), else it is appended to the chain: the previous
  module-owned tail's ``next`` points at it, as in the kernel's ``file_systems`` list.
  ``unregister_filesystem`` unlinks it (-EINVAL if it is not there).  Registrations live in
  ``emu.state["filesystems"]``; the built-in filesystems (proc, sysfs, tmpfs …) are not listed,
  and none of them share a name with a Debian module's.
- ``__register_nls`` (``register_nls``): -EBUSY if ``nls->next`` is set or the table is listed;
  otherwise ``nls->owner`` is set and the table pushed on the head of ``tables`` (``next`` = the
  previous head when that is a module's table; below them is the built-in ``default_table``,
  whose address the profile does not know, so the first table's ``next`` stays NULL).
  ``load_nls`` is ``try_then_request_module(find_nls(charset), "nls_%s", charset)``: a table
  whose charset or alias is the name (``strcmp``, case matters) is found (the kernel also takes
  a reference on its owner — not counted here); otherwise ``__request_module(true, "nls_%s")``
  runs modprobe (emu/models/kmod.py; the sandbox loads the module from the machine's module
  tree, its init registering the table) and the table is looked up once more — NULL if still
  missing.  ``default``, the built-in table, is not listed (its address is unknown): asking
  for it is :class:`Unmodelled`.
- debugfs: Debian enables it (``CONFIG_DEBUG_FS=y``, ``CONFIG_DEBUG_FS_ALLOW_ALL=y``), so
  ``debugfs_create_dir``/``_file`` return real dentries — opaque heap objects here, with the
  name, parent and mode in ``emu.state["debugfs"]``; a name already present under the same
  parent gives the kernel's error message and ``ERR_PTR(-EEXIST)``; an ERR_PTR parent is
  returned as it is.  ``debugfs_remove`` removes recursively.  The ``debugfs_create_<type>``
  helpers (void in 6.1) create a file node the same way.
"""
from __future__ import annotations

from ..registry import model
from .driver import err_ptr, is_err

EINVAL, EBUSY, EEXIST = 22, 16, 17
FS_NAME, FS_OWNER, FS_NEXT = 0, 48, 56
NLS_CHARSET, NLS_ALIAS, NLS_OWNER, NLS_NEXT = 0, 8, 48, 56
DENTRY_SIZE = 192


def _s(emu, p: int) -> str:
    return emu.cstr(p, 256).decode("latin-1") if p else ""


# --- filesystems ------------------------------------------------------------------------------
def _fss(emu) -> list:
    return emu.state.setdefault("filesystems", [])


@model("register_filesystem")
def register_filesystem(emu, fs):
    name = _s(emu, emu.read_u(fs + FS_NAME, 8))
    if "." in name:
        raise emu.oops(["kernel BUG at fs/filesystems.c:77! (a filesystem name with a '.')",
                        "invalid opcode: 0000 [#1] PREEMPT SMP NOPTI"])
    if emu.read_u(fs + FS_NEXT, 8):
        return -EBUSY
    fss = _fss(emu)
    if any(f["name"] == name for f in fss):
        return -EBUSY
    if fss:
        emu.write_u(fss[-1]["fs"] + FS_NEXT, 8, fs)
    fss.append({"fs": fs, "name": name})
    emu.note(name)
    return 0


@model("unregister_filesystem")
def unregister_filesystem(emu, fs):
    fss = _fss(emu)
    for i, f in enumerate(fss):
        if f["fs"] == fs:
            nxt = emu.read_u(fs + FS_NEXT, 8)
            if i:
                emu.write_u(fss[i - 1]["fs"] + FS_NEXT, 8, nxt)
            emu.write_u(fs + FS_NEXT, 8, 0)
            del fss[i]
            return 0
    return -EINVAL


# --- NLS tables -------------------------------------------------------------------------------
def _nls(emu) -> list:
    return emu.state.setdefault("nls", [])           # head first, as the kernel's list


@model("__register_nls")
def __register_nls(emu, nls, owner):
    if emu.read_u(nls + NLS_NEXT, 8):
        return -EBUSY
    tables = _nls(emu)
    if any(t["nls"] == nls for t in tables):
        return -EBUSY
    emu.write_u(nls + NLS_OWNER, 8, owner)
    emu.write_u(nls + NLS_NEXT, 8, tables[0]["nls"] if tables else 0)
    charset = _s(emu, emu.read_u(nls + NLS_CHARSET, 8))
    tables.insert(0, {"nls": nls, "charset": charset})
    emu.note(charset)
    return 0


@model("unregister_nls")
def unregister_nls(emu, nls):
    tables = _nls(emu)
    for i, t in enumerate(tables):
        if t["nls"] == nls:
            if i:
                emu.write_u(tables[i - 1]["nls"] + NLS_NEXT, 8, emu.read_u(nls + NLS_NEXT, 8))
            del tables[i]
            return


def find_nls(emu, charset: str) -> int:
    for t in _nls(emu):
        if t["charset"] == charset or _s(emu, emu.read_u(t["nls"] + NLS_ALIAS, 8)) == charset:
            return t["nls"]
    return 0


@model("load_nls")
def load_nls(emu, charset):
    want = _s(emu, charset)
    nls = find_nls(emu, want)
    if nls:
        return nls
    if want == "default":
        from ..errors import Unmodelled
        raise Unmodelled("load_nls (the built-in default table)", what=emu.what)
    from .kmod import request_module
    ret = request_module(emu, True, f"nls_{want}")
    emu.note(f"request_module(nls_{want}) = {ret}")
    return find_nls(emu, want)


@model("unload_nls")
def unload_nls(emu, nls):
    return None


# --- debugfs ----------------------------------------------------------------------------------
S_IFDIR, S_IFREG = 0o040000, 0o100000


def _dfs(emu) -> dict:
    return emu.state.setdefault("debugfs", {})


def _path(emu, d: int) -> str:
    n = _dfs(emu).get(str(d))
    return "" if n is None else f"{_path(emu, n['parent'])}/{n['name']}"


def _create(emu, name: int, mode: int, parent: int, kind: int) -> int:
    if parent and is_err(parent):
        return parent
    nm = _s(emu, name)
    for n in _dfs(emu).values():
        if n["parent"] == parent and n["name"] == nm:
            what = "Directory" if kind == S_IFDIR else "File"
            pname = _dfs(emu).get(str(parent), {}).get("name") if parent else None
            emu.printk(3, f"debugfs: {what} '{nm}' with parent '{pname or '/'}' already "
                          "present!\n")
            return err_ptr(EEXIST)
    d = emu.kmalloc(DENTRY_SIZE, zero=True)
    _dfs(emu)[str(d)] = {"name": nm, "parent": parent, "mode": kind | (mode & 0o7777)}
    emu.note(_path(emu, d))
    return d


@model("debugfs_create_dir")
def debugfs_create_dir(emu, name, parent):
    return _create(emu, name, 0o755, parent, S_IFDIR)


@model("debugfs_create_file", "debugfs_create_file_unsafe")
def debugfs_create_file(emu, name, mode, parent, data_, fops):
    return _create(emu, name, mode, parent, S_IFREG)


@model("debugfs_create_file_size")
def debugfs_create_file_size(emu, name, mode, parent, data_, fops, size):
    _create(emu, name, mode, parent, S_IFREG)


@model("debugfs_create_u8", "debugfs_create_u16", "debugfs_create_u32", "debugfs_create_u64",
       "debugfs_create_x8", "debugfs_create_x16", "debugfs_create_x32", "debugfs_create_x64",
       "debugfs_create_size_t", "debugfs_create_atomic_t", "debugfs_create_bool",
       "debugfs_create_ulong", "debugfs_create_str")
def debugfs_create_value(emu, name, mode, parent, value):
    """void in 6.1: the node is created (or the error only logged)."""
    _create(emu, name, mode, parent, S_IFREG)


@model("debugfs_create_blob")
def debugfs_create_blob(emu, name, mode, parent, blob):
    return _create(emu, name, mode, parent, S_IFREG)


@model("debugfs_remove")
def debugfs_remove(emu, d):
    if not d or is_err(d) or str(d) not in _dfs(emu):
        return
    for k, n in list(_dfs(emu).items()):
        if n["parent"] == d and k in _dfs(emu):
            debugfs_remove(emu, int(k))
    _dfs(emu).pop(str(d), None)
    emu.kfree(d)


@model("debugfs_lookup_and_remove")
def debugfs_lookup_and_remove(emu, name, parent):
    nm = _s(emu, name)
    for k, n in list(_dfs(emu).items()):
        if n["parent"] == parent and n["name"] == nm:
            debugfs_remove(emu, int(k))
            return


@model("debugfs_initialized")
def debugfs_initialized(emu):
    return 1
