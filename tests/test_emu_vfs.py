"""Internal mounts (emu/models/libfs.py): simple_pin_fs / simple_release_fs, vfs_kern_mount,
get_tree_single, the root inode and dentry a fill_super builds, named dentries.

C snippets for the rules (offsets as Linux 6.1's BTF: file_system_type {name 0,
init_fs_context 16, fs_supers 64}; fs_context {ops 0, root 64}; fs_context_operations
{get_tree 32}; super_block {s_op 48, s_flags 80, s_root 104, s_active 156, s_instances 264};
inode {i_mode 0, i_op 32, __i_nlink 72}; dentry {d_flags 0, d_parent 24, d_name 32,
d_inode 48, d_iname 56, d_lockref.count 92, d_sb 104}), and real Debian modules whose init
registers a configfs subsystem (configfs mounts itself with simple_pin_fs).
"""
from __future__ import annotations

import pytest

from kmodlab.emu import Unmodelled
from test_emu_models import _exports, insmod, kernel, run, tree  # noqa: F401  (fixtures)
from test_emu_support import needs_gcc

NAMES = ["simple_pin_fs", "simple_release_fs", "get_tree_single", "new_inode", "d_make_root",
         "inc_nlink", "d_alloc_name", "get_next_ino"]
EX = _exports(*[(n, 0xFFFFFFFF819E0000 + 0x40 * i) for i, n in enumerate(NAMES)])

SRC = r'''
#define AT(p, off, T) (*(T *)((char *)(p) + (off)))
struct vfsmount { void *mnt_root, *mnt_sb; int mnt_flags; };
int simple_pin_fs(void *type, struct vfsmount **m, int *count);
void simple_release_fs(struct vfsmount **m, int *count);
int get_tree_single(void *fc, int (*fill)(void *sb, void *fc));
void *new_inode(void *sb); void *d_make_root(void *inode); void inc_nlink(void *inode);
void *d_alloc_name(void *parent, const char *name); unsigned int get_next_ino(void);
char ops[48], fstype[72], sops[200], iops[200];
int fail_init, fills;
static int fill(void *sb, void *fc) {
    void *ino = new_inode(sb);
    fills++;
    AT(sb, 48, void *) = sops;
    AT(ino, 0, unsigned short) = 0040755;
    AT(ino, 32, void *) = iops;
    AT(ino, 64, unsigned long) = get_next_ino();
    inc_nlink(ino);
    AT(sb, 104, void *) = d_make_root(ino);
    return 0;
}
static int get_tree(void *fc) { return get_tree_single(fc, fill); }
static int init_fc(void *fc) { if (fail_init) return -12; AT(fc, 0, void *) = ops; return 0; }
static int lookup(void) { return 0; }
struct vfsmount *mnt; int cnt;
long r[32];
long f(void) {
    AT(ops, 32, void *) = get_tree;
    AT(fstype, 0, const char *) = "tfs";
    AT(fstype, 16, void *) = init_fc;
    AT(iops, 0, void *) = lookup;
    fail_init = 1;
    r[0] = simple_pin_fs(fstype, &mnt, &cnt); r[1] = (long)mnt; r[2] = cnt;
    fail_init = 0;
    r[3] = simple_pin_fs(fstype, &mnt, &cnt); r[4] = cnt;
    struct vfsmount *first = mnt;
    r[5] = simple_pin_fs(fstype, &mnt, &cnt); r[6] = cnt; r[7] = mnt == first;
    void *sb = mnt->mnt_sb, *root = mnt->mnt_root, *ino = AT(root, 48, void *);
    r[8] = AT(sb, 104, void *) == root;
    r[9] = AT(root, 104, void *) == sb;
    r[10] = AT(root, 24, void *) == root;
    r[11] = AT(ino, 72, unsigned int);
    r[12] = AT(root, 0, unsigned int);
    r[13] = AT(root, 92, int);
    r[14] = AT(sb, 156, int);
    r[15] = mnt->mnt_flags;
    r[16] = AT(fstype, 64, long) == (long)sb + 264;
    r[17] = AT(sb, 80, unsigned long);
    r[18] = AT(root, 56, char) == '/' && AT(root, 40, char *) == (char *)root + 56;
    r[19] = AT(root, 32, unsigned long) >> 32;
    void *d = d_alloc_name(root, "abc");
    r[20] = AT(d, 24, void *) == root;
    r[21] = AT(root, 92, int);
    r[22] = AT(d, 32, unsigned long) >> 32;
    r[23] = AT(d, 48, void *) == 0 && AT(d, 104, void *) == sb;
    simple_release_fs(&mnt, &cnt); r[24] = cnt; r[25] = mnt == first;
    r[26] = fills; r[27] = AT(ino, 64, unsigned long);
    return 0;
}
long g(void) { simple_release_fs(&mnt, &cnt); return 0; }
'''


def _r(b, n):
    out = []
    for i in range(n):
        v = b.mm.read_u(b.syms["r"] + 8 * i, 8)
        out.append(v - (1 << 64) if v >> 63 else v)
    return out


@needs_gcc
def test_pin_mounts_once_fill_super_builds_the_root_and_release_counts_down():
    """An init_fs_context error comes back from simple_pin_fs (-ENOMEM) with *mount NULL;
    the first pin mounts (fill_super runs once), the second reuses the mount (count 2); the
    superblock is SB_KERNMOUNT|SB_BORN|SB_ACTIVE with s_active 1, on the type's fs_supers; the
    mount is MNT_INTERNAL with mnt_root == sb->s_root; the root dentry "/" is its own parent,
    holds the inode (nlink 2, AUTODIR/DIRECTORY typed by i_op->lookup) and two references
    (s_root and the mount), a third from a child made by d_alloc_name; one release leaves the
    mount with count 1, releasing the last reference (unmount) is refused by name."""
    ret, log, emu, b = run(SRC, EX)
    assert ret == 0
    r = _r(b, 28)
    assert r[0:3] == [-12, 0, 0]
    assert r[3:8] == [0, 1, 0, 2, 1]
    assert r[8:11] == [1, 1, 1]
    assert r[11] == 2
    assert r[12] == 2 << 20                   # DCACHE_DIRECTORY_TYPE (i_op has a lookup)
    assert r[13] == 2 and r[14] == 1
    assert r[15] == 0x4000                    # MNT_INTERNAL
    assert r[16] == 1
    assert r[17] == (1 << 22) | (1 << 29) | (1 << 30)
    assert r[18] == 1 and r[19] == 1
    assert r[20] == 1 and r[21] == 3 and r[22] == 3 and r[23] == 1
    assert r[24] == 1 and r[25] == 1
    assert r[26] == 1 and r[27] >= 1
    with pytest.raises(Unmodelled, match="simple_release_fs.*last reference"):
        emu.call(b.syms["g"])


def test_hashlen_string_length_and_salt():
    """hashlen_string: len in the high 32 bits; the hash depends on the salt (the parent)."""
    from kmodlab.emu.models.libfs import hashlen_string
    for name in (b"", b"a", b"abcdefgh", b"netconsole", b"x" * 17):
        assert hashlen_string(0x1000, name) >> 32 == len(name)
    assert hashlen_string(0x1000, b"dlm") != hashlen_string(0x2000, b"dlm")
    assert hashlen_string(0x1000, b"dlm") != hashlen_string(0x1000, b"dlx")


# --- real modules -------------------------------------------------------------------------------

def _load(kernel, tree, name: str):
    """insmod's order, skipping dependencies an earlier load of the test brought in."""
    paths, deps = tree
    for d in deps[name]:
        r = kernel.finit_module(paths[d], "", 0)
        assert r.errno in (0, 17), (d, r.reason)          # 17: already loaded
    return kernel.finit_module(paths[name], "", 0)


def _lines(kernel) -> list[str]:
    return [line.split("] ", 1)[-1] for line in kernel.dmesg()]


def _configfs_mount(machine):
    mounts = [m for m in machine.emu_state.get("mounts", {}).values()
              if m["type_name"] == "configfs"]
    assert len(mounts) == 1, machine.emu_state.get("mounts")
    return mounts[0]


def test_dlm_and_rdma_cm_register_configfs_subsystems(kernel, machine, tree):
    """dlm's init registers its "dlm" configfs subsystem: configfs mounts itself (one
    superblock, one mount held by the pin) and the init finishes as on the real 6.1 kernel
    (0, "DLM installed"); rdma_cm's subsystem pins the same mount a second time."""
    r = insmod(kernel, tree, "dlm")
    assert r.errno == 0, r.reason
    assert _lines(kernel)[-1] == "DLM installed"
    assert not any("unmodelled" in line for line in r.log), r.log
    m = _configfs_mount(machine)
    assert m["count"] == 1
    assert len([k for k in machine.emu_state["superblocks"]]) == 1
    r = _load(kernel, tree, "rdma_cm")
    assert r.errno == 0, r.reason
    assert _configfs_mount(machine)["count"] == 2


def test_libcomposite_and_a_usb_function_complete(kernel, machine, tree):
    """libcomposite registers the usb_gadget configfs subsystem; usb_f_acm (22 modules depend
    on libcomposite) then loads; both return 0 with no log line, as the real ones did."""
    before = len(kernel.dmesg())
    for name in ("libcomposite", "usb_f_acm"):
        r = _load(kernel, tree, name)
        assert r.errno == 0, (name, r.reason)
        assert not any("unmodelled" in line for line in r.log), r.log
    assert _configfs_mount(machine)["count"] == 1
    assert _lines(kernel)[before:] == []


# --- lib/parser.c (emu/models/parser.py): what target_core_mod's init parses ---------------------
PNAMES = ["match_token", "match_int", "match_hex", "match_strdup"]
PEX = _exports(*[(n, 0xFFFFFFFF819E1000 + 0x40 * i) for i, n in enumerate(PNAMES)])
PSRC = r'''
struct match_token { int token; const char *pattern; };
typedef struct { char *from, *to; } substring_t;
int match_token(char *, const struct match_token *, substring_t *);
int match_int(substring_t *, int *); int match_hex(substring_t *, int *);
char *match_strdup(const substring_t *);
static const struct match_token t[] = { {1, "rd_pages=%d"}, {2, "name=%3s"}, {3, "x%%y"},
                                        {4, "h=%x"}, {5, "two=%u,%s"}, {9, 0} };
char s1[] = "rd_pages=8", s2[] = "name=abc", s11[] = "name=abcdef", s3[] = "x%y", s4[] = "h=ff", s5[] = "two=7,q",
     s6[] = "rd_pages=", s7[] = "other", s8[] = "rd_pages=-5", s9[] = "rd_pages=4294967296",
     s10[] = "rd_pages=0x10";
long r[32];
long f(void) {
    substring_t a[3]; int v = 0;
    r[0] = match_token(s1, t, a); r[1] = match_int(&a[0], &v); r[2] = v;
    r[3] = match_token(s2, t, a); r[4] = a[0].to - a[0].from; r[5] = match_strdup(&a[0])[2];
    r[6] = match_token(s3, t, a);
    r[7] = match_token(s4, t, a); r[8] = match_hex(&a[0], &v); r[9] = v;
    r[10] = match_token(s5, t, a); r[11] = a[1].from - s5; r[12] = a[1].to - s5;
    r[13] = match_token(s6, t, a); r[14] = match_token(s7, t, a);
    r[15] = match_token(s8, t, a); r[16] = match_int(&a[0], &v); r[17] = v;
    r[18] = match_token(s9, t, a); r[19] = match_int(&a[0], &v);
    r[20] = match_token(s10, t, a); r[21] = match_int(&a[0], &v); r[22] = v;
    r[23] = match_token(s11, t, a);
    return 0;
}
'''


@needs_gcc
def test_match_token_and_match_int():
    """The first matching pattern's token (the NULL-pattern end entry otherwise); %d/%x take
    their digits (base 0 knows 0x), %3s at most 3 characters (the rest must then match the
    pattern's rest), %% a '%'; match_int -ERANGE
    outside int, negative values kept."""
    ret, log, emu, b = run(PSRC, PEX)
    assert ret == 0
    r = _r(b, 24)
    assert r[0:3] == [1, 0, 8]
    assert r[3:6] == [2, 3, ord("c")]
    assert r[6] == 3
    assert r[7:10] == [4, 0, 255]
    assert r[10:13] == [5, 6, 7]
    assert r[13:15] == [9, 9]                 # "rd_pages=" has no digit; "other" no pattern
    assert r[15:18] == [1, 0, -5]
    assert r[18:20] == [1, -34]
    assert r[20:23] == [1, 0, 16]
    assert r[23] == 9                         # %3s took "abc", "def" is left over


def test_target_core_mod_parses_its_virtual_lun0_options(kernel, machine, tree):
    """target_core_mod's init registers its configfs subsystem, sets up the rd_mcp virtual
    LUN 0 ("rd_pages=8" through match_token/match_int) and logs the real kernel's first line;
    it then stops by name at override_creds (the insmod task's credentials, before the db_root
    file open: not modelled)."""
    r = insmod(kernel, tree, "target_core_mod")
    assert "Rounding down aligned max_sectors from 4294967295 to 4294967288" in _lines(kernel)
    assert any("unmodelled kernel function override_creds" in x for x in r.log), r.log
