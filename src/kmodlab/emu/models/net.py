"""Networking registries (net/core/rtnetlink.c, net/ethtool/common.c).

- ``rtnl_link_register``: the kernel WARNs and returns -EINVAL when ``maxtype`` or
  ``slave_maxtype`` exceed RTNL_MAX_TYPE/RTNL_SLAVE_MAX_TYPE (its stack buffers' sizes),
  -EEXIST when a link kind of that name is registered, fills in ``dellink`` (with
  ``unregister_netdevice_queue``) when the ops can create devices but have no dellink, and
  lists the ops in ``emu.state["rtnl_link"]``; the ``list`` link into the kernel's static
  ``link_ops`` is not written (its address is not in the profile).  ``rtnl_link_unregister``
  would destroy the devices of that kind in every namespace — the sandbox has created none —
  and unlists.
- ``ethtool_set_ethtool_phy_ops``: the single phy-ops pointer ethtool calls (set by libphy),
  kept in ``emu.state["ethtool_phy_ops"]``.
- ``rtnl_lock``/``rtnl_unlock``: the RTNL mutex, recorded as held in the emulator (taking it
  twice is the hang it is).

``struct rtnl_link_ops`` (Debian 6.1 amd64): list 0, kind 16, priv_size 24, alloc 32, setup 40,
netns_refund 48, maxtype 52, policy 56, validate 64, newlink 72, changelink 80, dellink 88, …,
get_num_rx_queues 136, slave_maxtype 144.
"""
from __future__ import annotations

from ..errors import BudgetExceeded
from ..registry import data, model

EINVAL, EEXIST = 22, 17
OPS_KIND, OPS_ALLOC, OPS_SETUP, OPS_MAXTYPE, OPS_DELLINK, OPS_SLAVE_MAXTYPE = \
    16, 32, 40, 52, 88, 144
RTNL_MAX_TYPE, RTNL_SLAVE_MAX_TYPE = 50, 44         # net/core/rtnetlink.c (6.1)


@model("rtnl_lock")
def rtnl_lock(emu):
    if getattr(emu, "rtnl_held", False):
        raise BudgetExceeded(emu.what, seconds=emu.timeout_s,
                             where="rtnl_lock (RTNL already held by this task)")
    emu.rtnl_held = True


@model("rtnl_unlock")
def rtnl_unlock(emu):
    emu.rtnl_held = False


@model("rtnl_is_locked")
def rtnl_is_locked(emu):
    return int(getattr(emu, "rtnl_held", False))


def _links(emu) -> dict:
    return emu.state.setdefault("rtnl_link", {})


def _register(emu, ops: int) -> int:
    kind = emu.cstr(emu.read_u(ops + OPS_KIND, 8), 64).decode("latin-1")
    if kind in _links(emu):
        return -EEXIST
    if (emu.read_u(ops + OPS_ALLOC, 8) or emu.read_u(ops + OPS_SETUP, 8)) and \
            not emu.read_u(ops + OPS_DELLINK, 8):
        emu.write_u(ops + OPS_DELLINK, 8, emu.export_addr("unregister_netdevice_queue") or 0)
    _links(emu)[kind] = {"ops": ops}
    emu.note(kind)
    return 0


@model("rtnl_link_register")
def rtnl_link_register(emu, ops):
    if (emu.read_u(ops + OPS_MAXTYPE, 4) > RTNL_MAX_TYPE
            or emu.read_u(ops + OPS_SLAVE_MAXTYPE, 4) > RTNL_SLAVE_MAX_TYPE):
        emu.printk(4, "WARNING: CPU: 0 at net/core/rtnetlink.c rtnl_link_register\n")
        return -EINVAL
    return _register(emu, ops)


@model("__rtnl_link_register")
def __rtnl_link_register(emu, ops):
    return _register(emu, ops)


def _unregister(emu, ops: int) -> None:
    for kind, l in list(_links(emu).items()):
        if l["ops"] == ops:
            del _links(emu)[kind]


@model("rtnl_link_unregister")
def rtnl_link_unregister(emu, ops):
    _unregister(emu, ops)


@model("__rtnl_link_unregister")
def __rtnl_link_unregister(emu, ops):
    _unregister(emu, ops)


@model("ethtool_set_ethtool_phy_ops")
def ethtool_set_ethtool_phy_ops(emu, ops):
    emu.state["ethtool_phy_ops"] = ops


@data("pernet_ops_rwsem", 40)
def pernet_ops_rwsem(emu) -> bytes:
    """net/core/net_namespace.c's rw_semaphore (count 0, owner 8, osq 16, wait_lock 20,
    wait_list 24): unlocked, no waiters — the list head points at itself."""
    a = emu.export_addr("pernet_ops_rwsem")
    return bytes(24) + (a + 24).to_bytes(8, "little") * 2


# --- network namespace operations (net/core/net_namespace.c) -------------------------------------
# struct pernet_operations (Debian 6.1 amd64, checked on ppp_generic's ppp_net_ops): list 0,
# init 16, pre_exit 24, exit 32, exit_batch 40, exit_batch_rtnl 48 (backported), id 56, size 64
PN_INIT, PN_PRE_EXIT, PN_EXIT, PN_EXIT_BATCH, PN_EXIT_BATCH_RTNL, PN_ID, PN_SIZE = \
    16, 24, 32, 40, 48, 56, 64
MIN_PERNET_OPS_ID = 4          # (offsetof(struct net_generic, ptr) / sizeof(void *)) + 1


def _pernet(emu) -> list:
    return emu.state.setdefault("pernet", [])


def _register_pernet(emu, ops: int, kind: str) -> int:
    """The sandbox has one namespace, init_net.  An ``id`` is allocated from net_generic_ids
    (the first free one from MIN_PERNET_OPS_ID; the kernel's own users hold lower ones at boot
    — which ids exactly is not known, so the value is the sandbox's); ``ops->init(&init_net)``
    runs as a callback into the module (its accesses to init_net's fields are unmodelled data
    and say so).  Per-namespace data (``size``) would be hung off ``init_net.gen``, whose
    layout is not modelled: that is Unmodelled."""
    idp, size = emu.read_u(ops + PN_ID, 8), emu.read_u(ops + PN_SIZE, 8)
    if any(p["ops"] == ops for p in _pernet(emu)):
        return -EEXIST
    if idp and size:
        from ..errors import Unmodelled
        raise Unmodelled(f"register_pernet_{kind} (net_generic data of {size} bytes for "
                         "init_net)", what=emu.what)
    ident = None
    if idp:
        used = {p["id"] for p in _pernet(emu) if p.get("id") is not None}
        ident = next(i for i in range(MIN_PERNET_OPS_ID, 1 << 16) if i not in used)
        emu.write_u(idp, 4, ident)
    init = emu.read_u(ops + PN_INIT, 8)
    if init:
        net = emu.export_addr("init_net")
        err = emu.call_module(init, (net,)) & 0xFFFFFFFF
        err = err - (1 << 32) if err & 0x80000000 else err
        if err:
            return err
    _pernet(emu).append({"ops": ops, "kind": kind, "id": ident})
    emu.note(f"{kind}: {emu.symbol(init) if init else 'no init'}")
    return 0


def _unregister_pernet(emu, ops: int) -> None:
    entries = [p for p in _pernet(emu) if p["ops"] == ops]
    if not entries:
        return
    net = emu.export_addr("init_net")
    for off in (PN_PRE_EXIT, PN_EXIT):
        fn = emu.read_u(ops + off, 8)
        if fn:
            emu.call_module(fn, (net,))
    if emu.read_u(ops + PN_EXIT_BATCH, 8) or emu.read_u(ops + PN_EXIT_BATCH_RTNL, 8):
        from ..errors import Unmodelled
        raise Unmodelled("unregister_pernet_operations (exit_batch over the list of dying "
                         "namespaces)", what=emu.what)
    _pernet(emu).remove(entries[0])


@model("register_pernet_device")
def register_pernet_device(emu, ops):
    return _register_pernet(emu, ops, "device")


@model("register_pernet_subsys")
def register_pernet_subsys(emu, ops):
    return _register_pernet(emu, ops, "subsys")


@model("unregister_pernet_device", "unregister_pernet_subsys")
def unregister_pernet_device(emu, ops):
    _unregister_pernet(emu, ops)
