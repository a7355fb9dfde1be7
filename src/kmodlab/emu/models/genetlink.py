"""Generic netlink families (net/netlink/genetlink.c): ``genl_register_family`` and
``genl_unregister_family``, as Linux 6.1 and 6.12 do them in the part a module can observe.

``genl_register_family(family)``:

- **genl_validate_ops** (nothing written, the first failure returns):
  a WARN and -EINVAL when ``n_ops`` (``n_small_ops``, and in 6.12 ``n_split_ops``) is set but
  the array pointer is NULL; then every command in the kernel's order (full ops, small ops,
  6.12's split ops, a split do/dump pair of one command counting as one):
  neither doit nor dumpit → -EINVAL (no WARN); a command id ``>= resv_start_op`` whose op has
  ``validate`` flags → WARN, -EINVAL; a command id that a later entry repeats → -EINVAL.
  6.12 then checks the split ops: each must have exactly one of GENL_CMD_CAP_DO/DUMP, they
  must be sorted by command, and a pair of one command must be do then dump with the same
  ``internal_flags`` and other flags (each failure WARNs, -EINVAL).  The per-op policy/maxattr
  defaults (an op without a policy takes the family's; commands at or above ``resv_start_op``
  get the kernel's reject-all policy) are applied to copies when messages arrive, never written
  to the module's structs, so registration does not look at them.
- a family of that **name** is registered (the booted kernel's or a module's) → -EEXIST;
- 6.12: ``sock_priv_size`` set → ``family->sock_privs`` is a new zeroed ``struct xarray``;
- the **id**: ``idr_alloc_cyclic`` over [GENL_START_ALLOC (19), GENL_MAX_ID (1023)], or the
  fixed id of "pmcraid" (18) and "VFS_DQUOT" (17): the lowest free id at or above the IDR's
  cursor (wrapping once to the start), the cursor then moving past it — an unregistered id is
  not reused until the range wraps.  ``family->id`` is written (even when a later step fails);
  no free id → -ENOSPC;
- the **multicast groups**: a group with an empty name, or one not NUL-terminated within
  GENL_NAMSIZ (16) → WARN, -EINVAL (the id is released again).  ``family->mcgrp_offset`` (not
  written for a family without groups) is the first of ``n_mcgrps`` consecutive free bits of
  the kernel's group bitmap (bits 0, 1, 16, 17, 18 are reserved from boot), or fixed: 1 for
  "NET_DM", 17 / 18 for the families holding id 17 / 18;
- the new-family and new-group notifications go to nlctrl's listeners: the sandbox machine has
  none.  Nothing is logged.

``genl_unregister_family(family)`` looks the family up **by ``family->id``**: no family with
that id → -ENOENT; otherwise its groups' bits are freed (except group 1) and the id.

**The booted kernel's own families.**  vmlinux registers families from its initcalls before any
module loads; they hold ids, names and group bits.  Which are built in is read from the
profile's config (no profile: Debian's), in an approximate initcall order (this order only
decides which ids and group bits they hold, and a module sees it only in its own
``family->id``/``mcgrp_offset``) — an assumption, not a measurement:

  nlctrl (16, group 16) · thermal (THERMAL_NETLINK, 2 groups) · devlink (NET_DEVLINK, 1) ·
  ethtool (ETHTOOL_NETLINK, 1) · 6.12: netdev (2), dpll (DPLL, 1) · NLBL_MGMT, NLBL_CIPSOv4,
  NLBL_CALIPSO (with IPV6), NLBL_UNLBL (NETLABEL) · acpi_event (ACPI, 1) · tcp_metrics (INET) ·
  mptcp_pm (MPTCP, 1) · VFS_DQUOT (QUOTA_NETLINK_INTERFACE, id 17, group 17) · SEG6
  (IPV6=y), IOAM6 (IPV6=y; 1 group in 6.12) · 6.12: handshake (NET_HANDSHAKE, 2) ·
  TASKSTATS (TASKSTATS).

The registry is ``emu.state["genetlink"]``: ``families`` (id → name, struct address (0 for the
kernel's), groups), ``next`` (the IDR cursor), ``groups`` (the bits in use).  The real kernel
shows families only through netlink (CTRL_CMD_GETFAMILY), no /proc or /sys file.

Offsets are this kernel's, from its BTF (emu/layouts.py, file "genetlink").
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..layouts import layout
from ..registry import model

LAYOUT = layout("genetlink")
EINVAL, ENOENT, EEXIST, ENOSPC = 22, 2, 17, 28
GENL_NAMSIZ = 16
GENL_ID_CTRL, GENL_ID_VFS_DQUOT, GENL_ID_PMCRAID, GENL_START_ALLOC, GENL_MAX_ID = \
    16, 17, 18, 19, 1023
GENL_CMD_CAP_DO, GENL_CMD_CAP_DUMP = 0x02, 0x04
RESERVED_GROUPS = (0, 1, GENL_ID_CTRL, GENL_ID_VFS_DQUOT, GENL_ID_PMCRAID)


def _boot_families(emu) -> list[tuple[str, int, str | None]]:
    """(name, groups, config option that builds it in or None) in approximate initcall order."""
    v612 = emu.kernel_version >= (6, 12)
    fams = [("thermal", 2, "THERMAL_NETLINK"), ("devlink", 1, "NET_DEVLINK"),
            ("ethtool", 1, "ETHTOOL_NETLINK")]
    if v612:
        fams += [("netdev", 2, None), ("dpll", 1, "DPLL")]
    fams += [("NLBL_MGMT", 0, "NETLABEL"), ("NLBL_CIPSOv4", 0, "NETLABEL"),
             ("NLBL_CALIPSO", 0, "NETLABEL+IPV6"), ("NLBL_UNLBL", 0, "NETLABEL"),
             ("acpi_event", 1, "ACPI"), ("tcp_metrics", 0, "INET"), ("mptcp_pm", 1, "MPTCP"),
             ("VFS_DQUOT", 1, "QUOTA_NETLINK_INTERFACE"), ("SEG6", 0, "IPV6"),
             ("IOAM6", 1 if v612 else 0, "IPV6")]
    if v612:
        fams.append(("handshake", 2, "NET_HANDSHAKE"))
    fams.append(("TASKSTATS", 0, "TASKSTATS"))
    return fams


def _config(emu) -> dict:
    return getattr(getattr(emu.kernel, "profile", None), "config", None) or {}


def _builtin(cfg: dict, opt: str | None) -> bool:
    if opt is None or not cfg:                          # no profile: Debian's =y
        return True
    return all(cfg.get(o) == "y" for o in opt.split("+"))


def _reg(emu) -> dict:
    """The registry, with the booted kernel's families on first use."""
    g = emu.state.get("genetlink")
    if g is None:
        g = emu.state["genetlink"] = {"families": {}, "next": 0, "groups": list(RESERVED_GROUPS)}
        _add(g, "nlctrl", _alloc_id(g, GENL_ID_CTRL, GENL_ID_CTRL), GENL_ID_CTRL, 1)
        cfg = _config(emu)
        for name, n, opt in _boot_families(emu):
            if not _builtin(cfg, opt):
                continue
            if name == "VFS_DQUOT":
                fid = _alloc_id(g, GENL_ID_VFS_DQUOT, GENL_ID_VFS_DQUOT)
                _add(g, name, fid, GENL_ID_VFS_DQUOT, n)
            else:
                fid = _alloc_id(g, GENL_START_ALLOC, GENL_MAX_ID)
                _add(g, name, fid, _alloc_groups(g, n) if n else 0, n)
    return g


def _add(g, name: str, fid: int, off: int, n: int, addr: int = 0) -> None:
    g["families"][str(fid)] = {"name": name, "family": addr, "mcgrp_offset": off,
                               "n_mcgrps": n}


def _alloc_id(g, start: int, end: int) -> int:
    """idr_alloc_cyclic(idr, ptr, start, end + 1): the lowest free id in [max(cursor, start),
    end], else (the cursor above start) in [start, end]; -ENOSPC when none.  Moves the cursor."""
    used = {int(k) for k in g["families"]}
    cur = g["next"] if g["next"] >= start else start

    def first_free(lo):
        for i in range(lo, end + 1):
            if i not in used:
                return i
        return None
    fid = first_free(cur)
    if fid is None and cur > start:
        fid = first_free(start)
    if fid is None:
        return -ENOSPC
    g["next"] = fid + 1
    return fid


def _alloc_groups(g, n: int) -> int:
    """genl_allocate_reserve_groups: the first run of n free bits (the bitmap grows as needed)."""
    used = set(g["groups"])
    i = 0
    while True:
        run = next((b for b in range(i, i + n) if b in used), None)
        if run is None:
            break
        i = run + 1
    g["groups"] = sorted(used | set(range(i, i + n)))
    return i


def _o(emu, member: str) -> int:
    return LAYOUT.of(emu)["genl_family", member]


def _opt(emu, struct: str, member: str) -> int | None:
    try:
        return LAYOUT.of(emu)[struct, member]
    except Unmodelled:
        return None


def _warn(emu, fn: str) -> None:
    emu.printk(4, f"WARNING: CPU: 0 at net/netlink/genetlink.c {fn}\n")


def _u8(emu, addr: int) -> int:
    return emu.read_u(addr, 1)


def _caps(doit: int, dumpit: int) -> int:
    """The flags genl_cmd_full_to_split gives a legacy op's do and dump halves."""
    return (GENL_CMD_CAP_DO if doit else 0) | (GENL_CMD_CAP_DUMP if dumpit else 0)


def _commands(emu, fam: int) -> list[dict]:
    """The entries genl_op_iter walks: full ops, small ops, then split ops (a do op followed
    by a dump op of the same command make one entry) — each {cmd, flags, validate}."""
    o = LAYOUT.of(emu)
    out = []
    n_ops, ops = _u8(emu, fam + _o(emu, "n_ops")), emu.read_u(fam + _o(emu, "ops"), 8)
    for i in range(n_ops):
        op = ops + i * o["genl_ops", "sizeof"]
        doit = emu.read_u(op + o["genl_ops", "doit"], 8)
        dumpit = emu.read_u(op + o["genl_ops", "dumpit"], 8)
        out.append({"cmd": _u8(emu, op + o["genl_ops", "cmd"]),
                    "flags": _caps(doit, dumpit),
                    "validate": _u8(emu, op + o["genl_ops", "validate"])})
    n_small = _u8(emu, fam + _o(emu, "n_small_ops"))
    small = emu.read_u(fam + _o(emu, "small_ops"), 8)
    for i in range(n_small):
        op = small + i * o["genl_small_ops", "sizeof"]
        doit = emu.read_u(op + o["genl_small_ops", "doit"], 8)
        dumpit = emu.read_u(op + o["genl_small_ops", "dumpit"], 8)
        out.append({"cmd": _u8(emu, op + o["genl_small_ops", "cmd"]),
                    "flags": _caps(doit, dumpit),
                    "validate": _u8(emu, op + o["genl_small_ops", "validate"])})
    return out + _split_ops(emu, fam)


def _split_list(emu, fam: int) -> list[dict]:
    off = _opt(emu, "genl_family", "n_split_ops")
    if off is None:                                        # 6.1: no split ops
        return []
    o = LAYOUT.of(emu)
    n, arr = _u8(emu, fam + off), emu.read_u(fam + o["genl_family", "split_ops"], 8)
    out = []
    for i in range(n):
        op = arr + i * o["genl_split_ops", "sizeof"]
        out.append({"cmd": _u8(emu, op + o["genl_split_ops", "cmd"]),
                    "flags": _u8(emu, op + o["genl_split_ops", "flags"]),
                    "internal_flags": _u8(emu, op + o["genl_split_ops", "internal_flags"]),
                    "validate": _u8(emu, op + o["genl_split_ops", "validate"])})
    return out


def _split_ops(emu, fam: int) -> list[dict]:
    """genl_op_from_split's grouping of the split ops into iterator entries."""
    sp = _split_list(emu, fam)
    out, i = [], 0
    while i < len(sp):
        doit = sp[i] if sp[i]["flags"] & GENL_CMD_CAP_DO else None
        cnt = 1 if doit else 0
        dump = None
        if i + cnt < len(sp) and sp[i + cnt]["flags"] & GENL_CMD_CAP_DUMP and \
                (not cnt or sp[i + cnt]["cmd"] == doit["cmd"]):
            dump = sp[i + cnt]
            cnt += 1
        if not cnt:
            # WARN_ON(!cnt) and the iterator does not advance: genl_validate_ops returns
            # -EINVAL if this is its outer entry, but an inner scan from an earlier entry
            # spins on it forever
            out.append({"cmd": 0, "flags": 0, "validate": 0, "stuck": True})
            return out
        out.append({"cmd": (doit["cmd"] if doit else 0) | (dump["cmd"] if dump else 0),
                    "flags": (doit["flags"] if doit else 0) | (dump["flags"] if dump else 0),
                    "validate": (doit["validate"] if doit else 0)
                    | (dump["validate"] if dump else 0)})
        i += cnt
    return out


def _validate_ops(emu, fam: int) -> int:
    for n, p in (("n_ops", "ops"), ("n_small_ops", "small_ops"), ("n_split_ops", "split_ops")):
        off = _opt(emu, "genl_family", n)
        if off is None:
            continue
        if _u8(emu, fam + off) and not emu.read_u(fam + _o(emu, p), 8):
            _warn(emu, "genl_validate_ops")
            return -EINVAL
    resv = _u8(emu, fam + _o(emu, "resv_start_op"))
    cmds = _commands(emu, fam)
    for k, c in enumerate(cmds):
        if c.get("stuck"):
            if k:
                raise Unmodelled("genl_register_family (a split op with neither "
                                 "GENL_CMD_CAP_DO nor GENL_CMD_CAP_DUMP: the kernel's op "
                                 "iterator loops on it, WARNing)", what=emu.what)
            _warn(emu, "genl_op_from_split")
            return -EINVAL
        if not c["flags"] & (GENL_CMD_CAP_DO | GENL_CMD_CAP_DUMP):
            return -EINVAL
        if c["cmd"] >= resv and c["validate"]:
            _warn(emu, "genl_validate_ops")
            return -EINVAL
        for d in cmds[k + 1:]:
            if d.get("stuck"):
                _warn(emu, "genl_op_from_split")
                raise Unmodelled("genl_register_family (a split op with neither "
                                 "GENL_CMD_CAP_DO nor GENL_CMD_CAP_DUMP: the kernel's op "
                                 "iterator loops on it, WARNing)", what=emu.what)
            if d["cmd"] == c["cmd"]:
                return -EINVAL
    sp = _split_list(emu, fam)
    one = (GENL_CMD_CAP_DO, GENL_CMD_CAP_DUMP)
    for s, b in enumerate(sp):
        if sum(1 for f in one if b["flags"] & f) != 1:
            _warn(emu, "genl_split_op_check")
            return -EINVAL
        if not s:
            continue
        a = sp[s - 1]
        if a["cmd"] < b["cmd"]:
            continue
        if a["cmd"] > b["cmd"] or a["internal_flags"] != b["internal_flags"] or \
                (a["flags"] ^ b["flags"]) & ~(GENL_CMD_CAP_DO | GENL_CMD_CAP_DUMP) or \
                not (a["flags"] & GENL_CMD_CAP_DO and b["flags"] & GENL_CMD_CAP_DUMP):
            _warn(emu, "genl_validate_ops")
            return -EINVAL
    return 0


def _name(emu, fam: int) -> str:
    return emu.cstr(fam + _o(emu, "name"), GENL_NAMSIZ).decode("latin-1")


@model("genl_register_family")
def genl_register_family(emu, family):
    err = _validate_ops(emu, family)
    if err:
        return err
    g = _reg(emu)
    name = _name(emu, family)
    if any(f["name"] == name for f in g["families"].values()):
        emu.note(f"{name}: already registered")
        return -EEXIST
    privs = 0
    if _opt(emu, "genl_family", "sock_priv_size") is not None and \
            emu.read_u(family + _o(emu, "sock_priv_size"), 8):
        privs = emu.kmalloc(LAYOUT.of(emu)["xarray", "sizeof"], zero=True)
        emu.write_u(family + _o(emu, "sock_privs"), 8, privs)
    start, end = GENL_START_ALLOC, GENL_MAX_ID
    if name == "pmcraid":
        start = end = GENL_ID_PMCRAID
    elif name == "VFS_DQUOT":
        start = end = GENL_ID_VFS_DQUOT
    fid = _alloc_id(g, start, end)
    emu.write_u(family + _o(emu, "id"), 4, fid & 0xFFFFFFFF)
    if fid < 0:
        if privs:
            emu.kfree(privs)
        return fid
    n = _u8(emu, family + _o(emu, "n_mcgrps"))
    off = None
    if n:
        o = LAYOUT.of(emu)
        grps = emu.read_u(family + _o(emu, "mcgrps"), 8)
        for i in range(n):
            gname = emu.read(grps + i * o["genl_multicast_group", "sizeof"]
                             + o["genl_multicast_group", "name"], GENL_NAMSIZ)
            if gname[0] == 0 or 0 not in gname:
                _warn(emu, "genl_validate_assign_mc_groups")
                if privs:
                    emu.kfree(privs)
                return -EINVAL
        fixed = {"NET_DM": 1}.get(name) or (fid if fid in (GENL_ID_VFS_DQUOT, GENL_ID_PMCRAID)
                                             else None)
        if fixed is not None:
            if n != 1:
                raise Unmodelled(f"genl_register_family ({name} with {n} multicast groups: "
                                 "the kernel's BUG_ON(n_groups != 1))", what=emu.what)
            off = fixed
        else:
            off = _alloc_groups(g, n)
        emu.write_u(family + _o(emu, "mcgrp_offset"), 4, off)
    _add(g, name, fid, off or 0, n, family)
    emu.note(f"{name}: id {fid}" + (f", groups {off}..{off + n - 1}" if n else ""))
    return 0


@model("genl_unregister_family")
def genl_unregister_family(emu, family):
    g = _reg(emu)
    fid = emu.read_u(family + _o(emu, "id"), 4)
    f = g["families"].get(str(fid))
    if f is None:
        return -ENOENT
    n = _u8(emu, family + _o(emu, "n_mcgrps"))
    base = emu.read_u(family + _o(emu, "mcgrp_offset"), 4)
    free = {base + i for i in range(n)} - {1}
    g["groups"] = [b for b in g["groups"] if b not in free]
    del g["families"][str(fid)]
    off = _opt(emu, "genl_family", "sock_priv_size")
    if off is not None and emu.read_u(family + off, 8):
        privs = emu.read_u(family + _o(emu, "sock_privs"), 8)
        if privs:
            emu.kfree(privs)
    emu.note(f"{f['name']}: id {fid}")
    return 0


# --- net/netlink/af_netlink.c: the netlink notifier chain ------------------------------------------
# netlink_register_notifier(nb) joins the kernel's blocking ``netlink_chain`` (the duplicate
# warning and -EEXIST of notifier_chain_register apply).  Its only event, NETLINK_URELEASE, is
# raised when a user's netlink socket bound to a port is released: no process on the sandbox
# machine opens one, so it is never raised.  The blocks are emu.state["notifiers"]["netlink"].
def _netlink_chain():
    from .notifier import _kernel_chain
    return _kernel_chain("netlink")


_nl_register, _nl_unregister = _netlink_chain()
model("netlink_register_notifier")(_nl_register)
model("netlink_unregister_notifier")(_nl_unregister)
