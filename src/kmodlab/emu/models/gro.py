"""GRO/GSO packet offloads (net/core/gro.c ``dev_add_offload``/``dev_remove_offload``; in
net/core/dev.c before 5.19's split), the same in Linux 6.1 and 6.12.

``dev_add_offload(po)`` puts ``po`` on the kernel's static ``offload_base`` list, before the
first entry of a higher ``priority`` (list_add_rcu; nothing returned, nothing logged).  The
list head's address is not in the profile, so ``po->list`` is not written and
``emu.state["packet_offloads"]`` (address → {type, priority}, kept in list order) is the
registry.  No packet is ever received or sent on a machine without network devices, so the
callbacks are never called.  Adding a listed offload again is a list_add of a listed node
(CONFIG_DEBUG_LIST: a BUG): the sandbox stops as Unmodelled.
``dev_remove_offload(po)`` unlists it and waits for readers (synchronize_net); an unlisted
one logs the kernel's "dev_remove_offload: %p not found".

``inet_add_offload(prot, protocol)`` (net/ipv4/protocol.c) is a cmpxchg of
``inet_offloads[protocol]`` (protocol an unsigned char) from NULL: 0, or -1 when the slot is
taken; ``inet_del_offload`` clears it only if it holds ``prot`` (0, else -1) and waits for
readers.  ``inet6_add_offload``/``inet6_del_offload`` (net/ipv6/protocol.c) do the same on
``inet6_offloads``.  Nothing is logged.  The booted kernel's entries (INET and IPV6 built in,
from af_inet.c ipv4_offload_init, tcp/udp_offload.c, ip6_offload.c ipv6_offload_init,
exthdrs_offload.c, gre_offload.c): IPv4 IPIP 4, TCP 6, UDP 17, IPV6 41 (sit), GRE 47; IPv6
IPIP 4 (ip4ip6), TCP 6, UDP 17, IPV6 41 (ip6ip6), ROUTING 43, GRE 47, DSTOPTS 60.  (ESP's
slots belong to esp4_offload/esp6_offload.)  ``emu.state["inet_offloads"]`` /
``["inet6_offloads"]`` (protocol → offload; the kernel's own are 0).

Offsets are this kernel's, from its BTF (emu/layouts.py, file "gro").
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..layouts import layout
from ..registry import model

LAYOUT = layout("gro")


def _offloads(emu) -> dict:
    return emu.state.setdefault("packet_offloads", {})


@model("dev_add_offload")
def dev_add_offload(emu, po):
    lst = _offloads(emu)
    if str(po) in lst:
        raise Unmodelled("dev_add_offload (packet_offload already listed: list_add of a "
                         "listed node)", what=emu.what)
    o = LAYOUT.of(emu)
    t = emu.read_u(po + o["packet_offload", "type"], 2)
    t = ((t & 0xFF) << 8) | (t >> 8)                          # ntohs
    prio = emu.read_u(po + o["packet_offload", "priority"], 2)
    items = list(lst.items())
    at = next((i for i, (_, v) in enumerate(items) if prio < v["priority"]), len(items))
    items.insert(at, (str(po), {"type": t, "priority": prio}))
    lst.clear()
    lst.update(items)
    emu.note(f"type {t:#06x}, priority {prio}")


@model("dev_remove_offload")
def dev_remove_offload(emu, po):
    if _offloads(emu).pop(str(po), None) is None:
        from .vsprintf import vsprintf
        emu.printk(4, vsprintf(emu, b"dev_remove_offload: %p not found\n", iter([po])))


# --- per-protocol offloads (net/ipv4/protocol.c, net/ipv6/protocol.c) ----------------------------
BOOT_OFFLOADS = {False: (4, 6, 17, 41, 47), True: (4, 6, 17, 41, 43, 47, 60)}


def _inet_offloads(emu, v6: bool) -> dict:
    key = "inet6_offloads" if v6 else "inet_offloads"
    t = emu.state.get(key)
    if t is None:
        t = emu.state[key] = {str(p): 0 for p in BOOT_OFFLOADS[v6]}
    return t


def _add_offload(emu, v6: bool, prot: int, protocol: int) -> int:
    t, p = _inet_offloads(emu, v6), str(protocol & 0xFF)
    if p in t:
        emu.note(f"protocol {p}: taken")
        return -1
    t[p] = prot
    emu.note(f"protocol {p}")
    return 0


def _del_offload(emu, v6: bool, prot: int, protocol: int) -> int:
    t, p = _inet_offloads(emu, v6), str(protocol & 0xFF)
    if prot and t.get(p) == prot:
        del t[p]
        return 0
    return -1


@model("inet_add_offload")
def inet_add_offload(emu, prot, protocol):
    return _add_offload(emu, False, prot, protocol)


@model("inet_del_offload")
def inet_del_offload(emu, prot, protocol):
    return _del_offload(emu, False, prot, protocol)


@model("inet6_add_offload")
def inet6_add_offload(emu, prot, protocol):
    return _add_offload(emu, True, prot, protocol)


@model("inet6_del_offload")
def inet6_del_offload(emu, prot, protocol):
    return _del_offload(emu, True, prot, protocol)
