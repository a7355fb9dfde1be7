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
