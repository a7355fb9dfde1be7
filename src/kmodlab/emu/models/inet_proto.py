"""Transport protocol handler tables and netfilter socket options, the same in Linux 6.1 and
6.12: net/ipv4/protocol.c (``inet_add_protocol``/``inet_del_protocol``), net/ipv6/protocol.c
(``inet6_add_protocol``/``inet6_del_protocol``), net/netfilter/nf_sockopt.c
(``nf_register_sockopt``/``nf_unregister_sockopt``).

- ``inet_add_protocol(prot, protocol)``: a cmpxchg of ``inet_protos[protocol]`` (protocol is
  an unsigned char) from NULL: 0, or -1 when the slot holds a handler.  ``inet_del_protocol``
  clears the slot only if it holds ``prot``: 0, else -1.  The IPv6 pair does the same on
  ``inet6_protos``.  Nothing is logged.  The booted kernel's handlers (Debian 6.1 and 6.12,
  from af_inet.c / ipmr.c / af_inet6.c / exthdrs.c / reassembly.c / ip6mr.c):
  IPv4 ICMP 1, IGMP 2 (IP_MULTICAST), TCP 6, UDP 17, PIM 103 (IP_MROUTE + IP_PIMSM_V2),
  UDPLITE 136; IPv6 (IPV6=y) TCP 6, UDP 17, ROUTING 43, FRAGMENT 44, ICMPV6 58, NONE 59,
  DSTOPTS 60, PIM 103 (IPV6_MROUTE + IPV6_PIMSM_V2), UDPLITE 136.  (The xfrm ESP/AH/COMP
  slots are taken only when the first xfrm handler module registers; GRE, IPIP, IPV6-in-IPv4
  belong to modules.)  The exported arrays themselves are not modelled: a module reading
  ``inet_protos[]`` stops there.  The tables are ``emu.state["inet_protos"]`` /
  ``["inet6_protos"]`` (protocol → handler; the kernel's own entries are 0).
- ``nf_register_sockopt(reg)``: -EBUSY when a registered range of the same ``pf`` overlaps
  ``[set_optmin, set_optmax)`` or ``[get_optmin, get_optmax)`` (the overlap line is a
  pr_debug); else it is listed (``list_add`` into the kernel's static ``nf_sockopts``, whose
  address is not in the profile: ``reg->list`` is not written).  Debian builds every user
  (ip_tables, ebtables, ipset, IPVS, conntrack…) as a module: the booted list is empty.
  ``nf_unregister_sockopt`` unlists.  ``emu.state["nf_sockopts"]``.

Offsets are this kernel's, from its BTF (emu/layouts.py, file "inet_proto").
"""
from __future__ import annotations

from ..layouts import layout
from ..registry import model

LAYOUT = layout("inet_proto")
EBUSY = 16


def _config(emu) -> dict:
    return getattr(getattr(emu.kernel, "profile", None), "config", None) or {}


def _on(cfg: dict, *opts: str) -> bool:
    return not cfg or all(cfg.get(o) == "y" for o in opts)


def _protos(emu, v6: bool) -> dict:
    key = "inet6_protos" if v6 else "inet_protos"
    t = emu.state.get(key)
    if t is None:
        cfg = _config(emu)
        if v6:
            boot = [6, 17, 43, 44, 58, 59, 60, 136] if _on(cfg, "IPV6") else []
            if _on(cfg, "IPV6", "IPV6_MROUTE", "IPV6_PIMSM_V2"):
                boot.append(103)
        else:
            boot = [1, 6, 17, 136]
            if _on(cfg, "IP_MULTICAST"):
                boot.append(2)
            if _on(cfg, "IP_MROUTE", "IP_PIMSM_V2"):
                boot.append(103)
        t = emu.state[key] = {str(p): 0 for p in sorted(boot)}
    return t


def _add(emu, v6: bool, prot: int, protocol: int) -> int:
    t, p = _protos(emu, v6), str(protocol & 0xFF)
    if p in t:
        emu.note(f"protocol {p}: taken")
        return -1
    t[p] = prot
    emu.note(f"protocol {p}")
    return 0


def _del(emu, v6: bool, prot: int, protocol: int) -> int:
    t, p = _protos(emu, v6), str(protocol & 0xFF)
    if p in t and t[p] == prot and prot:
        del t[p]
        return 0
    return -1


@model("inet_add_protocol")
def inet_add_protocol(emu, prot, protocol):
    return _add(emu, False, prot, protocol)


@model("inet_del_protocol")
def inet_del_protocol(emu, prot, protocol):
    return _del(emu, False, prot, protocol)


@model("inet6_add_protocol")
def inet6_add_protocol(emu, prot, protocol):
    return _add(emu, True, prot, protocol)


@model("inet6_del_protocol")
def inet6_del_protocol(emu, prot, protocol):
    return _del(emu, True, prot, protocol)


def _i32(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v


def _sockopt(emu, reg: int) -> dict:
    o = LAYOUT.of(emu)
    f = lambda m: _i32(emu.read_u(reg + o["nf_sockopt_ops", m], 4))   # noqa: E731
    return {"pf": emu.read_u(reg + o["nf_sockopt_ops", "pf"], 1),
            "set": [f("set_optmin"), f("set_optmax")], "get": [f("get_optmin"), f("get_optmax")],
            "ops": reg}


@model("nf_register_sockopt")
def nf_register_sockopt(emu, reg):
    new = _sockopt(emu, reg)
    lst = emu.state.setdefault("nf_sockopts", [])
    over = lambda a, b: a[1] > b[0] and a[0] < b[1]                 # noqa: E731
    for have in lst:
        if have["pf"] == new["pf"] and (over(have["set"], new["set"])
                                        or over(have["get"], new["get"])):
            return -EBUSY
    lst.insert(0, new)
    emu.note(f"pf {new['pf']}: set {new['set'][0]}-{new['set'][1]}, "
             f"get {new['get'][0]}-{new['get'][1]}")
    return 0


@model("nf_unregister_sockopt")
def nf_unregister_sockopt(emu, reg):
    lst = emu.state.setdefault("nf_sockopts", [])
    lst[:] = [s for s in lst if s["ops"] != reg]
