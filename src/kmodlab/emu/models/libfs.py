"""Internal mounts of a module's own filesystem (fs/libfs.c, fs/namespace.c, fs/super.c,
fs/fs_context.c, fs/inode.c, fs/dcache.c).

- ``simple_pin_fs(type, &mount, &count)``: the first pin (``*mount == NULL``) mounts the type
  with ``vfs_kern_mount(type, SB_KERNMOUNT, type->name, NULL)`` and stores the vfsmount in
  ``*mount``; every pin takes a reference on it (``mntget``) and increments ``*count``; 0, or the
  mount's error.
- ``simple_release_fs``: ``--*count``; at 0, ``*mount = NULL``; the reference is dropped.
  Dropping the last reference unmounts (the filesystem's ``kill_sb``, module code, then the
  superblock's teardown): not modelled, :class:`Unmodelled`.
- ``vfs_kern_mount``: builds the fs_context as ``fs_context_for_mount`` does (zeroed,
  ``fs_type``, ``sb_flags`` = ``sb_flags_mask`` = flags, purpose FOR_MOUNT; a reference on the
  type's owner module while it lives), runs the type's ``init_fs_context`` (module code; a type
  without one uses the legacy ``->mount`` path: Unmodelled), sets ``fc->source`` to a copy of
  the name (a context with its own ``parse_param`` would see it first: Unmodelled; mount data:
  Unmodelled), then ``vfs_get_tree`` (the context's ``get_tree``, module code; a missing
  ``fc->root`` is the kernel's pr_err and BUG) marks the superblock SB_BORN and builds the
  ``struct mount`` (``mnt_root`` = a reference on the root, ``mnt_sb``, MNT_INTERNAL for a
  kernel mount, one more ``s_active``); ``put_fs_context`` calls the context's ``free``, drops
  ``fc->root`` and the owner reference.  The fs_context's cred/net_ns/user_ns pointers
  (kernel objects whose addresses the profile does not know) stay NULL.
- ``get_tree_single(fc, fill_super)``: the type's one superblock; a new one is made as
  ``sget_fc``/``alloc_super`` do (s_count = s_active = 1, s_flags = fc->sb_flags, s_maxbytes =
  MAX_NON_LFS, s_time_gran = 1 s, s_time_min/max = TIME64_MIN/MAX, s_fs_info taken from the
  context, s_type, s_id = the type's name, linked at the head of ``type->fs_supers``, a
  reference on the owner module), then ``fill_super(sb, fc)`` (module code) runs and the
  superblock becomes SB_ACTIVE with ``fc->root`` = a reference on ``sb->s_root``.  Not
  written: ``s_op`` (the kernel's static ``default_op``; fill_super sets its own), ``s_dev``
  (an anonymous device number from the boot's ida), ``s_bdi``, the lists and locks.  An
  existing superblock (a second mount) and a failing fill_super (teardown) are Unmodelled.
- ``new_inode(sb)``: ``inode_init_always`` on a zeroed inode (i_sb, i_blkbits, i_count 1,
  i_nlink 1, i_mapping = &i_data with ``host``; ``i_op``/``i_fop``/``a_ops`` are the kernel's
  static empty operations, whose addresses the profile lacks: left NULL); a superblock whose
  ``s_op->alloc_inode`` is set (module code) is Unmodelled.
- ``get_next_ino``: the kernel's value depends on every inode the boot made; here the
  machine's own counter (unique, non-zero, increasing).
- ``current_time(inode)``: the coarse wall clock truncated to ``sb->s_time_gran`` and clamped to
  ``s_time_min/max``; the machine's wall clock reads its uptime (as ``ktime_get_with_offset``).
  A struct timespec64 returned in rax (tv_sec) and rdx (tv_nsec).
- ``inc_nlink``: ``__i_nlink + 1`` (from 0, the kernel's I_LINKABLE check: Unmodelled).
- ``d_make_root(inode)``: NULL for NULL; a dentry named "/" (``d_iname``, ``d_name`` len 1,
  hash 0), its own parent, ``d_sb``, d_lockref 1, instantiated (``d_inode``, the directory type
  flag — AUTODIR when the inode's i_op has no ``lookup``, else DIRECTORY with IOP_LOOKUP cached
  — and the alias on ``i_dentry``).  A superblock with ``s_d_op`` or a non-directory root:
  Unmodelled.
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..layouts import layout
from ..registry import model
from .driver import err_ptr, is_err

LAYOUT = layout("libfs")
MASK64 = (1 << 64) - 1
EINVAL = 22
SB_KERNMOUNT, SB_BORN, SB_ACTIVE = 1 << 22, 1 << 29, 1 << 30
MNT_INTERNAL = 0x4000
MAX_NON_LFS = (1 << 31) - 1
TIME64_MAX, TIME64_MIN = (1 << 63) - 1, -(1 << 63)
NSEC_PER_SEC = 1_000_000_000
S_IFMT, S_IFDIR = 0o170000, 0o040000
S_AUTOMOUNT = 1 << 11
IOP_LOOKUP = 0x0002
DCACHE_ENTRY_TYPE = 7 << 20
DCACHE_DIRECTORY_TYPE, DCACHE_AUTODIR_TYPE = 2 << 20, 3 << 20
DCACHE_NEED_AUTOMOUNT = 0x20000
S_ID_LEN = 32


def _o(emu, struct: str, member: str) -> int:
    return LAYOUT.of(emu)[struct, member]


def _rd(emu, base: int, struct: str, member: str, size: int = 8) -> int:
    return emu.read_u(base + _o(emu, struct, member), size)


def _wr(emu, base: int, struct: str, member: str, value: int, size: int = 8) -> None:
    emu.write_u(base + _o(emu, struct, member), size, value & ((1 << (8 * size)) - 1))


def _stop(emu, why: str):
    return Unmodelled(f"{emu._model_name} ({why})", what=emu.what)


def _mounts(emu) -> dict:
    return emu.state.setdefault("mounts", {})          # vfsmount address -> facts


def _supers(emu) -> dict:
    return emu.state.setdefault("superblocks", {})     # file_system_type address -> sb


def _owner_ref(emu, fs_type: int, n: int) -> None:
    """get_filesystem / put_filesystem: a reference on the type's owner module."""
    owner = _rd(emu, fs_type, "file_system_type", "owner")
    if not owner:
        return
    from . import module as mod_models
    if n > 0:
        mod_models.__module_get(emu, owner)
    else:
        mod_models.module_put(emu, owner)


def _dget(emu, d: int) -> None:
    c = _rd(emu, d, "dentry", "d_lockref.count", 4)
    _wr(emu, d, "dentry", "d_lockref.count", c + 1, 4)


def _dput(emu, d: int) -> None:
    c = _rd(emu, d, "dentry", "d_lockref.count", 4)
    if c <= 1:
        raise _stop(emu, "the last reference on a dentry")
    _wr(emu, d, "dentry", "d_lockref.count", c - 1, 4)


def _add_active(emu, sb: int, n: int) -> None:
    a = emu.read_s(sb + _o(emu, "super_block", "s_active"), 4)
    _wr(emu, sb, "super_block", "s_active", a + n, 4)


# --- pinning ----------------------------------------------------------------------------------
@model("simple_pin_fs")
def simple_pin_fs(emu, fs_type, mount, count):
    if not emu.read_u(mount, 8):
        mnt = vfs_kern_mount(emu, fs_type, SB_KERNMOUNT,
                             _rd(emu, fs_type, "file_system_type", "name"), 0)
        if is_err(mnt):
            return mnt - (1 << 64)
        emu.write_u(mount, 8, mnt)
        _mounts(emu)[str(mnt)]["count"] -= 1           # mntput of the mount's own reference
    mnt = emu.read_u(mount, 8)
    m = _mounts(emu).get(str(mnt))
    if m is None:
        raise _stop(emu, f"*mount {mnt:#x} is not a mount the machine made")
    m["count"] += 1                                     # mntget
    emu.write_u(count, 4, (emu.read_s(count, 4) + 1) & 0xFFFFFFFF)
    emu.note(f"{m['type_name']}: pinned, count {emu.read_s(count, 4)}")
    return 0


@model("simple_release_fs")
def simple_release_fs(emu, mount, count):
    mnt = emu.read_u(mount, 8)
    m = _mounts(emu).get(str(mnt))
    if m is None:
        raise _stop(emu, f"*mount {mnt:#x} is not a mount the machine made")
    if m["count"] <= 1:
        raise _stop(emu, f"the last reference on the {m['type_name']} mount: unmounting "
                         "(kill_sb, superblock teardown) is not modelled")
    c = emu.read_s(count, 4) - 1
    emu.write_u(count, 4, c & 0xFFFFFFFF)
    if c == 0:
        emu.write_u(mount, 8, 0)
    m["count"] -= 1
    emu.note(f"{m['type_name']}: count {c}")


# --- mounting ---------------------------------------------------------------------------------
@model("vfs_kern_mount")
def vfs_kern_mount(emu, fs_type, flags, name, data_):
    if not fs_type:
        return err_ptr(EINVAL)
    if not _rd(emu, fs_type, "file_system_type", "init_fs_context"):
        raise _stop(emu, "a filesystem type without init_fs_context: the legacy ->mount path")
    if data_:
        raise _stop(emu, "mount data (parse_monolithic)")
    fc = emu.kmalloc(_o(emu, "fs_context", "sizeof"), zero=True)
    _wr(emu, fc, "fs_context", "fs_type", fs_type)
    _wr(emu, fc, "fs_context", "sb_flags", flags, 4)
    _wr(emu, fc, "fs_context", "sb_flags_mask", flags, 4)
    _owner_ref(emu, fs_type, 1)
    ret = emu.call_module(_rd(emu, fs_type, "file_system_type", "init_fs_context"),
                          (fc,)) & 0xFFFFFFFF
    ret = ret - (1 << 32) if ret >> 31 else 0         # only a negative return is an error
    if not ret and name and emu.read_u(name, 1):
        ops = _rd(emu, fc, "fs_context", "ops")
        if ops and _rd(emu, ops, "fs_context_operations", "parse_param"):
            raise _stop(emu, "the context's parse_param for \"source\"")
        src = emu.cstr(name, 4096) + b"\0"
        copy = emu.kmalloc(len(src))
        emu.write(copy, src)
        _wr(emu, fc, "fs_context", "source", copy)
    mnt = err_ptr(-ret) if ret else _get_tree_and_mount(emu, fc, fs_type, flags)
    _put_fs_context(emu, fc, fs_type)
    return mnt


def _get_tree_and_mount(emu, fc: int, fs_type: int, flags: int) -> int:
    """vfs_get_tree then vfs_create_mount (fc_mount)."""
    if _rd(emu, fc, "fs_context", "root"):
        return err_ptr(16)                              # -EBUSY
    ops = _rd(emu, fc, "fs_context", "ops")
    get_tree = ops and _rd(emu, ops, "fs_context_operations", "get_tree")
    if not get_tree:
        raise _stop(emu, "a context without get_tree")
    ret = emu.call_module(get_tree, (fc,)) & 0xFFFFFFFF
    if ret:
        return err_ptr((-ret) & 0xFFFFFFFF) if ret >> 31 else err_ptr(EINVAL)
    root = _rd(emu, fc, "fs_context", "root")
    tname = emu.cstr(_rd(emu, fs_type, "file_system_type", "name"), 64).decode("latin-1")
    if not root:
        emu.printk(3, f"Filesystem {tname} get_tree() didn't set fc->root\n")
        raise emu.oops(["kernel BUG at fs/super.c:1532!",
                        "invalid opcode: 0000 [#1] PREEMPT SMP NOPTI"])
    sb = _rd(emu, root, "dentry", "d_sb")
    _wr(emu, sb, "super_block", "s_flags",
        _rd(emu, sb, "super_block", "s_flags", 8) | SB_BORN, 8)
    if emu.read_s(sb + _o(emu, "super_block", "s_maxbytes"), 8) < 0:
        emu.printk(4, f"WARNING: CPU: 0 at fs/super.c vfs_get_tree ({tname} set "
                      "sb->maxbytes to negative value)\n")
    m = emu.kmalloc(_o(emu, "mount", "sizeof"), zero=True)
    vm = m + _o(emu, "mount", "mnt")
    if flags & SB_KERNMOUNT:
        _wr(emu, vm, "vfsmount", "mnt_flags", MNT_INTERNAL, 4)
    _add_active(emu, sb, 1)
    _wr(emu, vm, "vfsmount", "mnt_sb", sb)
    _dget(emu, root)
    _wr(emu, vm, "vfsmount", "mnt_root", root)
    _mounts(emu)[str(vm)] = {"count": 1, "sb": sb, "root": root, "type": fs_type,
                             "type_name": tname}
    emu.note(f"{tname}: mounted")
    return vm


def _put_fs_context(emu, fc: int, fs_type: int) -> None:
    root = _rd(emu, fc, "fs_context", "root")
    if root:
        sb = _rd(emu, root, "dentry", "d_sb")
        _dput(emu, root)
        _wr(emu, fc, "fs_context", "root", 0)
        _add_active(emu, sb, -1)                        # deactivate_super (not the last)
    ops = _rd(emu, fc, "fs_context", "ops")
    free = ops and _rd(emu, ops, "fs_context_operations", "free")
    if free:
        emu.call_module(free, (fc,))
    _owner_ref(emu, fs_type, -1)
    src = _rd(emu, fc, "fs_context", "source")
    if src:
        emu.kfree(src)
    emu.kfree(fc)


@model("get_tree_single")
def get_tree_single(emu, fc, fill_super):
    fs_type = _rd(emu, fc, "fs_context", "fs_type")
    if str(fs_type) in _supers(emu):
        raise _stop(emu, "the type's superblock exists already (a second mount)")
    sb = _alloc_super(emu, fc, fs_type)
    ret = emu.call_module(fill_super, (sb, fc)) & 0xFFFFFFFF
    if ret:
        raise _stop(emu, f"fill_super failed ({ret - (1 << 32) if ret >> 31 else ret}): "
                         "the superblock's teardown is not modelled")
    _wr(emu, sb, "super_block", "s_flags",
        _rd(emu, sb, "super_block", "s_flags", 8) | SB_ACTIVE, 8)
    root = _rd(emu, sb, "super_block", "s_root")
    if root:
        _dget(emu, root)
    _wr(emu, fc, "fs_context", "root", root)
    return 0


def _alloc_super(emu, fc: int, fs_type: int) -> int:
    sb = emu.kmalloc(_o(emu, "super_block", "sizeof"), zero=True)
    _wr(emu, sb, "super_block", "s_count", 1, 4)
    _wr(emu, sb, "super_block", "s_active", 1, 4)
    _wr(emu, sb, "super_block", "s_flags", _rd(emu, fc, "fs_context", "sb_flags", 4), 8)
    _wr(emu, sb, "super_block", "s_maxbytes", MAX_NON_LFS)
    _wr(emu, sb, "super_block", "s_time_gran", NSEC_PER_SEC, 4)
    _wr(emu, sb, "super_block", "s_time_min", TIME64_MIN)
    _wr(emu, sb, "super_block", "s_time_max", TIME64_MAX)
    _wr(emu, sb, "super_block", "s_fs_info", _rd(emu, fc, "fs_context", "s_fs_info"))
    _wr(emu, fc, "fs_context", "s_fs_info", 0)
    _wr(emu, sb, "super_block", "s_type", fs_type)
    name = emu.cstr(_rd(emu, fs_type, "file_system_type", "name"), S_ID_LEN - 1)
    emu.write(sb + _o(emu, "super_block", "s_id"), name + b"\0")
    head = fs_type + _o(emu, "file_system_type", "fs_supers")
    node = sb + _o(emu, "super_block", "s_instances")
    first = emu.read_u(head, 8)                         # hlist_add_head
    emu.write_u(node, 8, first)
    emu.write_u(node + 8, 8, head)
    if first:
        emu.write_u(first + 8, 8, node)
    emu.write_u(head, 8, node)
    _owner_ref(emu, fs_type, 1)
    _supers(emu)[str(fs_type)] = sb
    return sb


# --- inodes and dentries ----------------------------------------------------------------------
@model("new_inode")
def new_inode(emu, sb):
    sop = _rd(emu, sb, "super_block", "s_op")
    if sop and _rd(emu, sop, "super_operations", "alloc_inode"):
        raise _stop(emu, "the superblock's own alloc_inode")
    ino = emu.kmalloc(_o(emu, "inode", "sizeof"), zero=True)
    _wr(emu, ino, "inode", "i_sb", sb)
    _wr(emu, ino, "inode", "i_blkbits", _rd(emu, sb, "super_block", "s_blocksize_bits", 1), 1)
    _wr(emu, ino, "inode", "i_count", 1, 4)
    _wr(emu, ino, "inode", "__i_nlink", 1, 4)
    mapping = ino + _o(emu, "inode", "i_data")
    _wr(emu, mapping, "address_space", "host", ino)
    _wr(emu, ino, "inode", "i_mapping", mapping)
    return ino


@model("get_next_ino")
def get_next_ino(emu):
    n = (emu.state.get("last_ino", 0) + 1) & 0xFFFFFFFF or 1
    emu.state["last_ino"] = n
    return n


def _now(emu, inode: int) -> tuple[int, int]:
    sb = _rd(emu, inode, "inode", "i_sb")
    sec, nsec = divmod(emu.uptime_ns, NSEC_PER_SEC)
    sec = max(emu.read_s(sb + _o(emu, "super_block", "s_time_min"), 8),
              min(emu.read_s(sb + _o(emu, "super_block", "s_time_max"), 8), sec))
    gran = _rd(emu, sb, "super_block", "s_time_gran", 4)
    if gran == NSEC_PER_SEC:
        nsec = 0
    elif 1 < gran < NSEC_PER_SEC:
        nsec -= nsec % gran
    elif gran != 1:
        raise _stop(emu, f"s_time_gran {gran} (the kernel WARNs)")
    return sec, nsec


def _ret_timespec(emu, sec: int, nsec: int) -> int:
    """A struct timespec64 return value: tv_sec in rax, tv_nsec in rdx."""
    from unicorn.x86_const import UC_X86_REG_RDX
    emu.uc.reg_write(UC_X86_REG_RDX, nsec)
    return sec & MASK64


@model("current_time")
def current_time(emu, inode):
    return _ret_timespec(emu, *_now(emu, inode))


def _set_times(emu, inode: int, stamps: tuple[str, ...]) -> int:
    sec, nsec = _now(emu, inode)
    for t in stamps:
        _wr(emu, inode, "inode", f"i_{t}_sec", sec)
        _wr(emu, inode, "inode", f"i_{t}_nsec", nsec, 4)
    return _ret_timespec(emu, sec, nsec)


@model("inode_set_ctime_current")
def inode_set_ctime_current(emu, inode):
    """6.12 (fs/inode.c; no multigrain timestamps in 6.12): ctime (i_ctime_sec/_nsec, 6.12's
    members) becomes current_time, which is returned."""
    return _set_times(emu, inode, ("ctime",))


@model("simple_inode_init_ts")
def simple_inode_init_ts(emu, inode):
    """6.12 (fs/libfs.c): ctime, then atime and mtime, set to current_time; returned."""
    return _set_times(emu, inode, ("ctime", "atime", "mtime"))


@model("inc_nlink")
def inc_nlink(emu, inode):
    n = _rd(emu, inode, "inode", "__i_nlink", 4)
    if n == 0:
        raise _stop(emu, "from 0 links (the I_LINKABLE check)")
    _wr(emu, inode, "inode", "__i_nlink", n + 1, 4)


@model("d_make_root")
def d_make_root(emu, inode):
    if not inode:
        return 0
    sb = _rd(emu, inode, "inode", "i_sb")
    if _rd(emu, sb, "super_block", "s_d_op"):
        raise _stop(emu, "a superblock with s_d_op (d_set_d_op)")
    mode = _rd(emu, inode, "inode", "i_mode", 2)
    if mode & S_IFMT != S_IFDIR:
        raise _stop(emu, f"a root inode of mode {mode:#o}")
    d = emu.kmalloc(_o(emu, "dentry", "sizeof"), zero=True)
    iname = d + _o(emu, "dentry", "d_iname")
    emu.write(iname, b"/\0")
    _wr(emu, d, "dentry", "d_name.name", iname)
    _wr(emu, d, "dentry", "d_name.hash_len", 1 << 32)    # len 1, hash 0
    _wr(emu, d, "dentry", "d_lockref.count", 1, 4)
    _wr(emu, d, "dentry", "d_parent", d)
    _wr(emu, d, "dentry", "d_sb", sb)
    _instantiate(emu, d, inode)
    return d


def _instantiate(emu, d: int, inode: int) -> None:
    """__d_instantiate: the alias on i_dentry, d_inode and the type flags."""
    kind = _type_flags(emu, inode)
    head = inode + _o(emu, "inode", "i_dentry")
    node = d + _o(emu, "dentry", "d_u.d_alias")
    first = emu.read_u(head, 8)
    emu.write_u(node, 8, first)
    emu.write_u(node + 8, 8, head)
    if first:
        emu.write_u(first + 8, 8, node)
    emu.write_u(head, 8, node)
    flags = _rd(emu, d, "dentry", "d_flags", 4) & ~(DCACHE_ENTRY_TYPE | (1 << 24))
    _wr(emu, d, "dentry", "d_flags", flags | kind, 4)
    _wr(emu, d, "dentry", "d_inode", inode)


# --- named dentries (fs/dcache.c, lib/lockref.c) ----------------------------------------------
GOLDEN_RATIO_64 = 0x61C8864680B583EB
DNAME_INLINE_MIN = 32                  # 6.1's DNAME_INLINE_LEN (6.12's is not smaller)
IOP_NOFOLLOW = 0x0004
DCACHE_REGULAR_TYPE, DCACHE_SPECIAL_TYPE, DCACHE_SYMLINK_TYPE = 4 << 20, 5 << 20, 6 << 20
D_OP_FLAGS = (("d_hash", 0x1), ("d_compare", 0x2), ("d_revalidate", 0x4),
              ("d_weak_revalidate", 0x800), ("d_delete", 0x8), ("d_prune", 0x10),
              ("d_real", 0x04000000))


def _rol(v: int, n: int) -> int:
    return ((v << n) | (v >> (64 - n))) & MASK64


def hashlen_string(salt: int, name: bytes) -> int:
    """fs/namei.c's word-at-a-time hashlen_string (x86-64): hash | len << 32."""
    x, y, n = 0, salt & MASK64, 0
    while True:
        word = name[n:n + 8]
        a = int.from_bytes(word.ljust(8, b"\0"), "little")
        if len(word) < 8 or b"\0" in word:
            break
        x ^= a
        y ^= x
        x = _rol(x, 12)
        x = (x + y) & MASK64
        y = _rol(y, 45)
        y = (y * 9) & MASK64
        n += 8
    tail = len(word.split(b"\0")[0]) if b"\0" in word else len(word)
    x ^= a & ((1 << (8 * tail)) - 1)
    y ^= (x * GOLDEN_RATIO_64) & MASK64
    y = (y * GOLDEN_RATIO_64) & MASK64
    return (y >> 32) | ((n + tail) << 32)


@model("d_alloc_name")
def d_alloc_name(emu, parent, name):
    """d_alloc(parent, {name, hashlen_string(parent, name)}): a dentry whose name is copied
    into d_iname (a longer name's external_name allocation: Unmodelled), d_lockref 1, d_sb
    the parent's, the superblock's s_d_op set (d_set_d_op's DCACHE_OP_* flags; a d_init,
    module code, runs), d_parent the parent, which gains a reference.  The hash is salted with
    the parent's address (the sandbox's, so it differs from a real boot's).  The parent's
    child list (6.1 d_subdirs, 6.12 d_children) is not linked."""
    nm = emu.cstr(name, 4096)
    if len(nm) >= DNAME_INLINE_MIN:
        raise _stop(emu, f"a name of {len(nm)} bytes (external_name)")
    sb = _rd(emu, parent, "dentry", "d_sb")
    d = emu.kmalloc(_o(emu, "dentry", "sizeof"), zero=True)
    iname = d + _o(emu, "dentry", "d_iname")
    emu.write(iname, nm + b"\0")
    _wr(emu, d, "dentry", "d_name.name", iname)
    _wr(emu, d, "dentry", "d_name.hash_len", hashlen_string(parent, nm))
    _wr(emu, d, "dentry", "d_lockref.count", 1, 4)
    _wr(emu, d, "dentry", "d_sb", sb)
    dop = _rd(emu, sb, "super_block", "s_d_op")
    if dop:
        flags = 0
        for member, bit in D_OP_FLAGS:
            if _rd(emu, dop, "dentry_operations", member):
                flags |= bit
        _wr(emu, d, "dentry", "d_op", dop)
        _wr(emu, d, "dentry", "d_flags", flags, 4)
        init = _rd(emu, dop, "dentry_operations", "d_init")
        if init:
            ret = emu.call_module(init, (d,)) & 0xFFFFFFFF
            if ret:
                raise _stop(emu, "a failing d_init (the dentry's release)")
    _dget(emu, parent)
    _wr(emu, d, "dentry", "d_parent", parent)
    emu.note(nm.decode("latin-1"))
    return d


def _type_flags(emu, inode: int) -> int:
    """d_flags_for_inode (caching IOP_LOOKUP / IOP_NOFOLLOW in i_opflags as the kernel does)."""
    if not inode:
        return 0
    mode = _rd(emu, inode, "inode", "i_mode", 2)
    opflags = _rd(emu, inode, "inode", "i_opflags", 2)
    iop = _rd(emu, inode, "inode", "i_op")
    if mode & S_IFMT == S_IFDIR:
        kind = DCACHE_DIRECTORY_TYPE
        if not opflags & IOP_LOOKUP:
            if not (iop and _rd(emu, iop, "inode_operations", "lookup")):
                kind = DCACHE_AUTODIR_TYPE
            else:
                _wr(emu, inode, "inode", "i_opflags", opflags | IOP_LOOKUP, 2)
    else:
        kind = None
        if not opflags & IOP_NOFOLLOW:
            if iop and _rd(emu, iop, "inode_operations", "get_link"):
                kind = DCACHE_SYMLINK_TYPE
            else:
                _wr(emu, inode, "inode", "i_opflags", opflags | IOP_NOFOLLOW, 2)
        if kind is None:
            kind = DCACHE_REGULAR_TYPE if mode & S_IFMT == 0o100000 else DCACHE_SPECIAL_TYPE
    if _rd(emu, inode, "inode", "i_flags", 4) & S_AUTOMOUNT:
        kind |= DCACHE_NEED_AUTOMOUNT
    return kind


@model("d_instantiate")
def d_instantiate(emu, dentry, inode):
    """The inode's alias list gains the dentry, then d_inode and the type flags are set."""
    if not inode:
        return
    if _rd(emu, dentry, "dentry", "d_inode"):
        raise _stop(emu, "a dentry that has an inode (the kernel BUGs)")
    _instantiate(emu, dentry, inode)


@model("d_add")
def d_add(emu, dentry, inode):
    """d_add: instantiate (NULL inode: a negative dentry) and hash; the dentry hash table's
    bucket (a kernel address the profile lacks) is not linked, so d_hash.pprev stays NULL."""
    if inode:
        _instantiate(emu, dentry, inode)
    emu.state.setdefault("hashed_dentries", []).append(dentry)


@model("lockref_get")
def lockref_get(emu, lockref):
    c = emu.read_u(lockref + _o(emu, "lockref", "count"), 4)
    emu.write_u(lockref + _o(emu, "lockref", "count"), 4, (c + 1) & 0xFFFFFFFF)
