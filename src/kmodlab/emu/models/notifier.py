"""Notifier chains (kernel/notifier.c) and the kernel's own chains modules join.

A chain is a singly linked list of ``struct notifier_block`` {notifier_call 0, next 8,
priority 16}, kept sorted by descending priority; registering inserts after the blocks of
equal or higher priority, and a block already on the chain is refused with the kernel's
"notifier callback %ps already registered" warning and -EEXIST.  For chains whose head is in
module memory (``blocking_notifier_head`` {rwsem 0, head 40}, ``atomic_notifier_head``
{lock 0, head 8}, ``raw_notifier_head`` {head 0}) the list is written there, as the kernel does.
The kernel's private chains (``register_pm_notifier``, ``register_reboot_notifier``,
``crypto_register_notifier`` …) have heads at addresses the profile does not know: their blocks
are listed in ``emu.state["notifiers"][chain]``.  Registration calls nothing back; the sandbox
raises no events on these chains (no suspend, no reboot, no new crypto larval lookups; no
address is ever added to an interface — the machine has no network devices — so the inetaddr
and inet6addr chains, which do not replay existing addresses on registration, stay silent;
no neighbour entry is ever updated, so the netevent chain stays silent too).
"""
from __future__ import annotations

from ..registry import model

EEXIST, ENOENT = 17, 2
NB_CALL, NB_NEXT, NB_PRIORITY = 0, 8, 16


def _chain_register(emu, head: int, nb: int, unique: bool = False) -> int:
    prio = emu.read_s(nb + NB_PRIORITY, 4)
    link = head
    while True:
        cur = emu.read_u(link, 8)
        if not cur:
            break
        if cur == nb:
            emu.printk(4, f"notifier callback {emu.symbol(emu.read_u(nb, 8))} already "
                          "registered\n")
            return -EEXIST
        if prio > emu.read_s(cur + NB_PRIORITY, 4):
            break
        link = cur + NB_NEXT
    emu.write_u(nb + NB_NEXT, 8, emu.read_u(link, 8))
    emu.write_u(link, 8, nb)
    return 0


def _chain_unregister(emu, head: int, nb: int) -> int:
    link = head
    while True:
        cur = emu.read_u(link, 8)
        if not cur:
            return -ENOENT
        if cur == nb:
            emu.write_u(link, 8, emu.read_u(nb + NB_NEXT, 8))
            return 0
        link = cur + NB_NEXT


@model("blocking_notifier_chain_register")
def blocking_notifier_chain_register(emu, nh, nb):
    return _chain_register(emu, nh + 40, nb)


@model("blocking_notifier_chain_unregister")
def blocking_notifier_chain_unregister(emu, nh, nb):
    return _chain_unregister(emu, nh + 40, nb)


# atomic chains whose head is a kernel data export: their blocks are listed in
# emu.state["notifiers"][chain] as the private chains' are (the head's bytes, which hold the
# blocks the kernel registered at boot, are not modelled); the sandbox never panics
KERNEL_ATOMIC_HEADS = {"panic_notifier_list": "panic"}


def _kernel_head(emu, nh: int) -> str | None:
    for export, chain in KERNEL_ATOMIC_HEADS.items():
        e = emu.exports.get(export)
        if e is not None and e.addr == nh:
            return chain
    return None


@model("atomic_notifier_chain_register")
def atomic_notifier_chain_register(emu, nh, nb):
    chain = _kernel_head(emu, nh)
    if chain is not None:
        return _kernel_chain(chain)[0](emu, nb)
    return _chain_register(emu, nh + 8, nb)


@model("atomic_notifier_chain_unregister")
def atomic_notifier_chain_unregister(emu, nh, nb):
    chain = _kernel_head(emu, nh)
    if chain is not None:
        return _kernel_chain(chain)[1](emu, nb)
    return _chain_unregister(emu, nh + 8, nb)


@model("raw_notifier_chain_register")
def raw_notifier_chain_register(emu, nh, nb):
    return _chain_register(emu, nh, nb)


@model("raw_notifier_chain_unregister")
def raw_notifier_chain_unregister(emu, nh, nb):
    return _chain_unregister(emu, nh, nb)


def _kernel_chain(chain: str):
    def register(emu, nb):
        blocks = emu.state.setdefault("notifiers", {}).setdefault(chain, [])
        if nb in blocks:
            emu.printk(4, f"notifier callback {emu.symbol(emu.read_u(nb, 8))} already "
                          "registered\n")
            return -EEXIST
        blocks.append(nb)
        emu.note(f"{chain}: {emu.symbol(emu.read_u(nb, 8))}")
        return 0

    def unregister(emu, nb):
        blocks = emu.state.setdefault("notifiers", {}).setdefault(chain, [])
        if nb not in blocks:
            return -ENOENT
        blocks.remove(nb)
        return 0
    return register, unregister


for _chain, (_reg, _unreg) in {
        "pm": ("register_pm_notifier", "unregister_pm_notifier"),
        "reboot": ("register_reboot_notifier", "unregister_reboot_notifier"),
        "crypto": ("crypto_register_notifier", "crypto_unregister_notifier"),
        "keyboard": ("register_keyboard_notifier", "unregister_keyboard_notifier"),
        "vt": ("register_vt_notifier", "unregister_vt_notifier"),
        "inetaddr": ("register_inetaddr_notifier", "unregister_inetaddr_notifier"),
        "inet6addr": ("register_inet6addr_notifier", "unregister_inet6addr_notifier"),
        "netevent": ("register_netevent_notifier", "unregister_netevent_notifier"),
        # security/security.c: raised by an LSM policy change (SELinux's policy load): the
        # machine never loads a policy after boot
        "lsm": ("register_blocking_lsm_notifier", "unregister_blocking_lsm_notifier"),
        # net/switchdev/switchdev.c: no switchdev port exists, so no event is ever raised
        "switchdev": ("register_switchdev_notifier", "unregister_switchdev_notifier"),
        # net/dcb/dcbevent.c: raised by dcbnl when a device's DCB application table changes;
        # no device of the machine has DCB, so no event is ever raised
        "dcbevent": ("register_dcbevent_notifier", "unregister_dcbevent_notifier"),
        "switchdev_blocking": ("register_switchdev_blocking_notifier",
                               "unregister_switchdev_blocking_notifier")}.items():
    _r, _u = _kernel_chain(_chain)
    model(_reg)(_r)
    model(_unreg)(_u)


# arch/x86/kernel/cpu/mce/core.c: x86_mce_decoder_chain, a blocking chain raised by a machine
# check (none happens on the sandbox machine).  The priority must lie in MCE_PRIO_LOWEST (0) ..
# MCE_PRIO_HIGHEST (MCE_PRIO_CEC, 7); another is the kernel's WARN_ON, not modelled.
_mce_register, _mce_unregister = _kernel_chain("mce_decoder")
MCE_PRIO_LOWEST, MCE_PRIO_HIGHEST = 0, 7


@model("mce_register_decode_chain")
def mce_register_decode_chain(emu, nb):
    prio = emu.read_s(nb + NB_PRIORITY, 4)
    if not MCE_PRIO_LOWEST <= prio <= MCE_PRIO_HIGHEST:
        from ..errors import Unmodelled
        raise Unmodelled(f"mce_register_decode_chain (WARN_ON: priority {prio})", what=emu.what)
    _mce_register(emu, nb)


@model("mce_unregister_decode_chain")
def mce_unregister_decode_chain(emu, nb):
    _mce_unregister(emu, nb)


# net/ipv4/nexthop.c: register_nexthop_notifier(net, nb, extack) first replays the namespace's
# nexthops to the block (none exist on the sandbox machine: no routes were ever added), then
# joins net->nexthop.notifier_chain (a blocking chain: the duplicate warning and -EEXIST apply).
_nh_register, _nh_unregister = _kernel_chain("nexthop")


def _init_net_only(emu, net: int, fn: str) -> None:
    from .net import require_init_net
    require_init_net(emu, net, fn)


@model("register_nexthop_notifier")
def register_nexthop_notifier(emu, net, nb, extack):
    _init_net_only(emu, net, "register_nexthop_notifier")
    return _nh_register(emu, nb)


@model("unregister_nexthop_notifier")
def unregister_nexthop_notifier(emu, net, nb):
    _init_net_only(emu, net, "unregister_nexthop_notifier")
    return _nh_unregister(emu, nb)
