"""procfs entries (fs/proc/generic.c, proc_net is not here) and sysctl tables
(fs/proc/proc_sysctl.c).

procfs: ``proc_mkdir*``, ``proc_create*`` and ``proc_symlink`` create a ``struct
proc_dir_entry`` on the heap (the name inline when it is shorter than the inline space, as
__proc_create does; mode, nlink, data, parent, proc_ops/seq_ops/single_show, state_size filled
in) and list it in ``emu.state["procfs"]`` (path under /proc → {pde, mode, kind}).  A name with
slashes is looked up component by component from the parent (xlate_proc_name: a missing
directory → NULL, no message).  A name already present in that directory → the kernel's
WARN "proc_dir_entry '<dir>/<name>' already registered" (<dir> the parent's own name,
"/proc" for /proc) and NULL.  A NULL parent is /proc
itself, whose ``struct proc_dir_entry proc_root`` is not exported: an entry whose directory is
/proc or one of its built-in directories (/proc/fs …) has ``parent`` 0 (the kernel's address
of that directory is unknown).  The built-in top directories (fs, driver, tty, bus,
sys, sysvipc, irq, scsi, acpi …) are known; their built-in children are not listed, and none of
them shares a name with what a Debian module creates.  ``remove_proc_entry(name, parent)``
removes one entry (missing: the kernel's WARN "name '<name>'";
a directory with children: the kernel's "removing non-empty directory … leaking at least"
warning and the children stay), ``remove_proc_subtree``/``proc_remove`` remove recursively.
Layout (Debian 6.1 amd64 BTF): ``struct proc_dir_entry`` (176 bytes + inline name) refcnt 4,
proc_iops 40, proc_ops/proc_dir_ops 48, seq_ops/single_show 64, write 72, data 80,
state_size 88, nlink 96, parent 120, name 160, mode 168, flags 170, namelen 171,
inline_name 172 (PDE(emu, "sizeof") 176 rounded up to the kmalloc size 192: 20 inline bytes).

sysctl: ``register_sysctl(path, table)``, ``register_sysctl_table(table)`` (6.1 still takes
``child`` tables: each directory entry's children are registered under it) and
``register_sysctl_paths`` check every entry as sysctl_check_table does (a ``child`` given to
register_sysctl: "Not a file"; a leaf with no ``proc_handler`` → "sysctl table check failed:
<path>/<name> No proc_handler" and -EINVAL; mode bits outside S_IRUGO|S_IWUGO (0666) → "bogus
.mode 0%o"), refuse an entry that exists ("sysctl duplicate entry: /<path>/<name>", -EEXIST)
and return a heap ``struct ctl_table_header``
(ctl_table 0, used 8, count 12, nreg 16, ctl_table_arg 32; 80 bytes) — NULL on any error.
Entries live in ``emu.state["sysctl"]`` (header → its /proc/sys paths);
``unregister_sysctl_table`` (NULL allowed) removes them.  The kernel's own entries
(kernel/*, vm/*, fs/*, net/* …) are not listed; no Debian module registers one of their names.
``struct ctl_table`` (64 bytes): procname 0, data 8, maxlen 16, mode 20, child 24,
proc_handler 32, poll 40, extra1 48, extra2 56.  ``struct ctl_path``: procname 0 (8 bytes).
"""
from __future__ import annotations

from ..layouts import layout
from ..registry import data_field, model
from .slab import _kfree, kmalloc_flags

EINVAL, EEXIST = 22, 17
GFP_ZERO_KERNEL = 0xCC0 | 0x100
# Struct members are (struct, member) keys of emu/layouts.py, read from the running kernel's
# BTF (this file is per profile: Linux 6.12's ctl_table has no ``child`` and its header counts
# the table's entries, ctl_table_size, instead of a terminating empty entry).
LAYOUT = layout("proc")


def PDE(emu, m: str) -> int:
    return LAYOUT.of(emu)["proc_dir_entry", m]


def CT(emu, m: str) -> int:
    return LAYOUT.of(emu)["ctl_table", m]


def HDR(emu, m: str) -> int:
    return LAYOUT.of(emu)["ctl_table_header", m]


def PDE_INLINE_SPACE(emu) -> int:
    """The inline name's room: sizeof(struct proc_dir_entry) rounded up to its kmalloc size
    (192), less the offset of inline_name."""
    return 192 - PDE(emu, "inline_name")


S_IFDIR, S_IFREG, S_IFLNK, S_IFMT = 0o040000, 0o100000, 0o120000, 0o170000
S_IRUGO, S_IXUGO, S_IALLUGO = 0o444, 0o111, 0o7777
PROC_ROOT_DIRS = ("fs", "driver", "tty", "bus", "sys", "sysvipc", "irq", "scsi", "acpi",
                  "net", "self", "thread-self", "pressure", "dynamic_debug", "sysrq-trigger")


def _s(emu, p: int) -> str:
    return emu.cstr(p, 256).decode("latin-1") if p else ""


def _procfs(emu) -> dict:
    return emu.state.setdefault("procfs", {})


@data_field("init_net", 168, 8, member=("net", "proc_net"))
def init_net_proc_net(emu) -> bytes:
    """init_net.proc_net (struct net, Debian 6.1 amd64 BTF: proc_net at 168): the /proc/net
    directory of the initial namespace, a proc_dir_entry of the emulator's (name "net",
    S_IFDIR|0555, nlink 2; its parent, proc_root, is not exported: 0).  Entries modules create
    in it are listed under "net/" like any other."""
    pde = emu.__dict__.get("_proc_net")
    if pde is None:
        pde = emu._proc_net = _private_dir(emu, "net", 0)
    return pde.to_bytes(8, "little")


def _private_dir(emu, name: str, parent: int) -> int:
    """A proc_dir_entry of the emulator's for a directory the booted kernel made (S_IFDIR|0555,
    nlink 2, refcount 1, the name inline)."""
    pde = emu.priv_alloc(PDE(emu, "sizeof") + PDE_INLINE_SPACE(emu), 8)
    emu.write(pde + PDE(emu, "inline_name"), name.encode() + b"\0")
    emu.write_u(pde + PDE(emu, "name"), 8, pde + PDE(emu, "inline_name"))
    emu.write_u(pde + PDE(emu, "namelen"), 1, len(name))
    emu.write_u(pde + PDE(emu, "mode"), 2, S_IFDIR | 0o555)
    emu.write_u(pde + PDE(emu, "nlink"), 4, 2)
    emu.write_u(pde + PDE(emu, "refcnt"), 4, 1)
    emu.write_u(pde + PDE(emu, "parent"), 8, parent)
    return pde


@data_field("init_net", 176, 8, member=("net", "proc_net_stat"))
def init_net_proc_net_stat(emu) -> bytes:
    """init_net.proc_net_stat (6.1: 176): /proc/net/stat, a proc_dir_entry of the emulator's
    like /proc/net above (name "stat", S_IFDIR|0555, nlink 2, parent /proc/net)."""
    pde = emu.__dict__.get("_proc_net_stat")
    if pde is None:
        net = int.from_bytes(init_net_proc_net(emu), "little")
        pde = emu._proc_net_stat = _private_dir(emu, "stat", net)
    return pde.to_bytes(8, "little")


def _dir_path(emu, parent: int) -> str | None:
    if not parent:
        return ""
    if parent == emu.__dict__.get("_proc_net"):
        return "net"
    if parent == emu.__dict__.get("_proc_net_stat"):
        return "net/stat"
    for path, e in _procfs(emu).items():
        if e["pde"] == parent:
            return path
    return None


def _dname(path: str) -> str:
    """A directory entry's ``name`` as the kernel's messages print it (/proc's is "/proc")."""
    return path.rsplit("/", 1)[-1] if path else "/proc"


def _exists(emu, path: str) -> bool:
    return path in _procfs(emu) or ("/" not in path and path in PROC_ROOT_DIRS) or \
        path == "net/stat"


def _create(emu, name: int, mode: int, parent: int, nlink: int, kind: str) -> tuple[int, str]:
    """__proc_create + proc_register: (pde, path) or (0, "")."""
    from ..errors import Unmodelled
    base = _dir_path(emu, parent)
    if base is None:
        raise Unmodelled("proc_create (parent is not a procfs entry the sandbox made; "
                         "e.g. init_net's proc_net)", what=emu.what)
    full = _s(emu, name)
    *dirs, leaf = full.split("/")
    for d in dirs:                                     # xlate_proc_name
        base = f"{base}/{d}" if base else d
        if not _exists(emu, base):
            return 0, ""
    if not leaf or leaf in (".", "..") or len(leaf) > 255:
        emu.printk(4, f"name '{full}'\n")
        return 0, ""
    path = f"{base}/{leaf}" if base else leaf
    if _exists(emu, path):
        emu.printk(4, f"proc_dir_entry '{_dname(base)}/{leaf}' already registered\n")
        return 0, ""
    inline = len(leaf) < PDE_INLINE_SPACE(emu)
    pde = kmalloc_flags(emu, PDE(emu, "sizeof") + (PDE_INLINE_SPACE(emu) if inline else 0), GFP_ZERO_KERNEL)
    if inline:
        nm = pde + PDE(emu, "inline_name")
    else:
        nm = kmalloc_flags(emu, len(leaf) + 1, 0xCC0)
    emu.write(nm, leaf.encode("latin-1") + b"\0")
    emu.write_u(pde + PDE(emu, "name"), 8, nm)
    emu.write_u(pde + PDE(emu, "namelen"), 1, len(leaf))
    emu.write_u(pde + PDE(emu, "mode"), 2, mode)
    emu.write_u(pde + PDE(emu, "nlink"), 4, nlink)
    emu.write_u(pde + PDE(emu, "refcnt"), 4, 1)
    emu.write_u(pde + PDE(emu, "parent"), 8, parent if not dirs else
                _procfs(emu)[base]["pde"] if base in _procfs(emu) else 0)
    _procfs(emu)[path] = {"pde": pde, "mode": mode, "kind": kind, "inline": inline}
    emu.note(f"/proc/{path}")
    return pde, path


def _mkdir(emu, name, mode, parent, data) -> int:
    pde, _ = _create(emu, name, S_IFDIR | (mode or (S_IRUGO | S_IXUGO)), parent, 2, "dir")
    if pde:
        emu.write_u(pde + PDE(emu, "data"), 8, data)
    return pde


@model("proc_mkdir")
def proc_mkdir(emu, name, parent):
    return _mkdir(emu, name, 0, parent, 0)


@model("proc_mkdir_data")
def proc_mkdir_data(emu, name, mode, parent, data):
    return _mkdir(emu, name, mode & 0xFFFF, parent, data)


@model("_proc_mkdir")
def _proc_mkdir(emu, name, mode, parent, data, force_lookup):
    """fs/proc/generic.c (6.1): proc_mkdir_data with the PROC_ENTRY_FORCE_LOOKUP flag when
    ``force_lookup`` (its dentries are never cached: not observable by module code)."""
    return _mkdir(emu, name, mode & 0xFFFF, parent, data)


@model("proc_mkdir_mode")
def proc_mkdir_mode(emu, name, mode, parent):
    return _mkdir(emu, name, mode & 0xFFFF, parent, 0)


def _file(emu, name, mode, parent, data) -> int:
    mode &= 0xFFFF
    if not mode & S_IFMT:
        mode |= S_IFREG
    if not mode & S_IALLUGO:
        mode |= S_IRUGO
    pde, _ = _create(emu, name, mode, parent, 1, "file")
    if pde:
        emu.write_u(pde + PDE(emu, "data"), 8, data)
    return pde


@model("proc_create_data")
def proc_create_data(emu, name, mode, parent, proc_ops, data):
    pde = _file(emu, name, mode, parent, data)
    if pde:
        emu.write_u(pde + PDE(emu, "proc_ops"), 8, proc_ops)
    return pde


@model("proc_create")
def proc_create(emu, name, mode, parent, proc_ops):
    return proc_create_data(emu, name, mode, parent, proc_ops, 0)


@model("proc_create_seq_private")
def proc_create_seq_private(emu, name, mode, parent, ops, state_size, data):
    pde = _file(emu, name, mode, parent, data)
    if pde:
        emu.write_u(pde + PDE(emu, "seq_ops"), 8, ops)
        emu.write_u(pde + PDE(emu, "state_size"), 4, state_size)
    return pde


@model("proc_create_single_data")
def proc_create_single_data(emu, name, mode, parent, show, data):
    pde = _file(emu, name, mode, parent, data)
    if pde:
        emu.write_u(pde + PDE(emu, "seq_ops"), 8, show)
    return pde


# fs/proc/proc_net.c: the /proc/net files (``parent`` is a namespace's proc_net directory,
# init_net's above).  Their proc_ops are the kernel's static proc_net_seq_ops and
# proc_net_single_ops, which no module reads: not written (0) in the sandbox.
@model("proc_create_net_data")
def proc_create_net_data(emu, name, mode, parent, ops, state_size, data):
    return proc_create_seq_private(emu, name, mode, parent, ops, state_size, data)


@model("proc_create_net_single")
def proc_create_net_single(emu, name, mode, parent, show, data):
    return proc_create_single_data(emu, name, mode, parent, show, data)


@model("proc_set_size")
def proc_set_size(emu, de, size):
    """fs/proc/generic.c: the size its inode will report (``de->size``, a loff_t)."""
    emu.write_u(de + PDE(emu, "size"), 8, size)


@model("proc_set_user")
def proc_set_user(emu, de, uid, gid):
    """The owner its inode will have (``de->uid``/``de->gid``, kuid_t/kgid_t)."""
    emu.write_u(de + PDE(emu, "uid"), 4, uid)
    emu.write_u(de + PDE(emu, "gid"), 4, gid)


def _free(emu, path: str) -> None:
    """pde_free: a symlink's target string, an out-of-line name, the entry."""
    e = _procfs(emu).pop(path)
    if e.get("kind") == "symlink":
        _kfree(emu, emu.read_u(e["pde"] + PDE(emu, "data"), 8))
    if not e.get("inline"):
        _kfree(emu, emu.read_u(e["pde"] + PDE(emu, "name"), 8))
    _kfree(emu, e["pde"])


@model("proc_symlink")
def proc_symlink(emu, name, parent, dest):
    """fs/proc/generic.c: an S_IFLNK|0777 entry whose data is a kmalloc'd copy of ``dest``
    and whose size is its length (NULL if the name is taken or bad)."""
    pde, path = _create(emu, name, S_IFLNK | 0o777, parent, 1, "symlink")
    if not pde:
        return 0
    target = emu.cstr(dest, 4096)
    data = kmalloc_flags(emu, len(target) + 1, 0xCC0)
    emu.write(data, target + b"\0")
    emu.write_u(pde + PDE(emu, "data"), 8, data)
    emu.write_u(pde + PDE(emu, "size"), 8, len(target))
    _procfs(emu)[path]["target"] = target.decode("latin-1")
    return pde


def _children(emu, path: str) -> list[str]:
    return [p for p in _procfs(emu) if p.startswith(path + "/")]


@model("remove_proc_entry")
def remove_proc_entry(emu, name, parent):
    base = _dir_path(emu, parent)
    full = _s(emu, name)
    path = f"{base}/{full}" if base else full
    if base is None or path not in _procfs(emu):
        emu.printk(4, f"name '{full}'\n")          # the kernel's WARN
        return
    kids = _children(emu, path)
    if kids:
        emu.printk(4, "remove_proc_entry: removing non-empty directory "
                      f"'{_dname(base)}/{_dname(path)}', leaking at "
                      f"least '{kids[0].rsplit('/', 1)[1]}'\n")
        _procfs(emu).pop(path)          # the entry goes, the children stay (leaked)
        return
    _free(emu, path)


@model("remove_proc_subtree")
def remove_proc_subtree(emu, name, parent):
    base = _dir_path(emu, parent)
    full = _s(emu, name)
    path = f"{base}/{full}" if base else full
    if base is None or path not in _procfs(emu):
        return -2
    for p in sorted(_children(emu, path), key=len, reverse=True) + [path]:
        _free(emu, p)
    return 0


@model("proc_remove")
def proc_remove(emu, pde):
    if not pde:
        return
    path = _dir_path(emu, pde)
    if path:
        for p in sorted(_children(emu, path), key=len, reverse=True) + [path]:
            _free(emu, p)


# --- sysctl ------------------------------------------------------------------------------------


def _sysctl(emu) -> dict:
    return emu.state.setdefault("sysctl", {})


def _has(emu, struct: str, member: str) -> bool:
    """Whether this kernel's struct has the member (no profile: the 6.1 models' own kernel)."""
    if emu.structs is None:
        return LAYOUT.facts[struct].get(member) is not None
    return (emu.structs.get(struct) or {}).get(member) is not None


def _walk(emu, table: int, path: str, out: list, children: bool, count: int | None = None) -> int:
    """Collect (path, entry) for every leaf of ``table`` under ``path``; 0 or -EINVAL.  With
    ``children`` (register_sysctl_table/_paths) a directory entry's ``child`` table is
    registered under it; otherwise (register_sysctl) sysctl_check_table says "Not a file".
    Every entry is checked and every failure printed, as sysctl_check_table does.  ``count``
    (Linux 6.12's register_sysctl_sz): the table has that many entries (an empty one before
    that, the sentinel older code still carries, ends it too, as the kernel ignores it)."""
    e, bad, n = table, 0, 0
    has_child = _has(emu, "ctl_table", "child")
    while (count is None or n < count) and emu.read_u(e + CT(emu, "procname"), 8):
        n += 1
        name = _s(emu, emu.read_u(e + CT(emu, "procname"), 8))
        child = emu.read_u(e + CT(emu, "child"), 8) if has_child else 0
        mode = emu.read_u(e + CT(emu, "mode"), 2)
        if child and children:
            bad |= _walk(emu, child, f"{path}/{name}" if path else name, out, True)
        else:
            errs = []
            if child:
                errs.append("Not a file")
            if not emu.read_u(e + CT(emu, "proc_handler"), 8):
                errs.append("No proc_handler")
            if mode & 0o666 != mode:                   # S_IRUGO | S_IWUGO
                errs.append(f"bogus .mode 0{mode:o}")
            for err in errs:
                emu.printk(3, f"sysctl table check failed: {path}/{name} {err}\n")
            bad |= bool(errs)
            out.append((f"{path}/{name}" if path else name, e))
        e += CT(emu, "sizeof")
    return -EINVAL if bad else 0


def _register(emu, path: str, table: int, children: bool, count: int | None = None) -> int:
    leaves: list = []
    if _walk(emu, table, path.strip("/"), leaves, children, count):
        return 0
    taken = {p for h in _sysctl(emu).values() for p in h}
    seen: set = set()
    for p, _e in leaves:
        if p in taken or p in seen:
            emu.printk(3, f"sysctl duplicate entry: /{p}\n")
            return 0
        seen.add(p)
    hdr = kmalloc_flags(emu, HDR(emu, "sizeof"), GFP_ZERO_KERNEL)
    emu.write_u(hdr + HDR(emu, "ctl_table"), 8, table)
    emu.write_u(hdr + HDR(emu, "count"), 4, 1)
    emu.write_u(hdr + HDR(emu, "nreg"), 4, 1)
    emu.write_u(hdr + HDR(emu, "ctl_table_arg"), 8, table)
    if count is not None and _has(emu, "ctl_table_header", "ctl_table_size"):
        emu.write_u(hdr + HDR(emu, "ctl_table_size"), 4, count)
    _sysctl(emu)[str(hdr)] = [p for p, _e in leaves]
    emu.note(", ".join(f"/proc/sys/{p}" for p, _e in leaves[:4]) +
             (" …" if len(leaves) > 4 else ""))
    return hdr


@model("register_sysctl")
def register_sysctl(emu, path, table):
    return _register(emu, _s(emu, path), table, False)


@model("register_sysctl_sz")
def register_sysctl_sz(emu, path, table, table_size):
    """Linux 6.12's register_sysctl(): the table's size is ARRAY_SIZE(table)."""
    return _register(emu, _s(emu, path), table, False, table_size & 0xFFFFFFFFFFFFFFFF)


# net/sysctl_net.c: init_net's sysctl set, shown under /proc/sys like the root set (another
# namespace's set is not modelled).
def _init_net_only(emu, net: int, fn: str) -> None:
    from .net import require_init_net
    require_init_net(emu, net, fn)


@model("register_net_sysctl")
def register_net_sysctl(emu, net, path, table):
    _init_net_only(emu, net, "register_net_sysctl")
    return _register(emu, _s(emu, path), table, False)


@model("register_net_sysctl_sz")
def register_net_sysctl_sz(emu, net, path, table, table_size):
    _init_net_only(emu, net, "register_net_sysctl_sz")
    return _register(emu, _s(emu, path), table, False, table_size & 0xFFFFFFFFFFFFFFFF)


@model("register_sysctl_table")
def register_sysctl_table(emu, table):
    return _register(emu, "", table, True)


@model("register_sysctl_paths")
def register_sysctl_paths(emu, ctl_path, table):
    parts = []
    while emu.read_u(ctl_path, 8):
        parts.append(_s(emu, emu.read_u(ctl_path, 8)))
        ctl_path += 8
    return _register(emu, "/".join(parts), table, True)


@model("unregister_sysctl_table", "unregister_net_sysctl_table")
def unregister_sysctl_table(emu, hdr):
    if not hdr:
        return
    if _sysctl(emu).pop(str(hdr), None) is not None:
        _kfree(emu, hdr)
