"""Lightweight tunnel encapsulation ops (net/core/lwtunnel.c), the same in Linux 6.1 and 6.12.

``lwtunnel_encap_add_ops(ops, num)``: -ERANGE when ``num`` exceeds LWTUNNEL_ENCAP_MAX (10,
LWTUNNEL_ENCAP_XFRM, in both releases' BTF enum); else a cmpxchg of ``lwtun_encaps[num]``
from NULL: 0, or -1 when the slot is taken.  ``lwtunnel_encap_del_ops(ops, encap_type)``:
-ERANGE for LWTUNNEL_ENCAP_NONE or beyond the maximum; clears the slot only if it holds
``ops`` (0, else -1) and waits for readers.  Nothing is logged.  The booted kernel's entries
(LWTUNNEL, LWTUNNEL_BPF and IPV6_SEG6_LWTUNNEL built in; IPV6_RPL/IOAM6_LWTUNNEL not set):
IP 2 and IP6 4 (net/ipv4/ip_tunnel_core.c), SEG6 5 and SEG6_LOCAL 7 (net/ipv6/seg6_iptunnel.c,
seg6_local.c), BPF 6 (net/core/lwt_bpf.c); MPLS 1, ILA 3 and XFRM 10 belong to modules.
``emu.state["lwtun_encaps"]`` (type → ops; the kernel's own are 0).
"""
from __future__ import annotations

from ..registry import model

ERANGE = 34
LWTUNNEL_ENCAP_MAX = 10
BOOT_ENCAPS = (2, 4, 5, 6, 7)


def _encaps(emu) -> dict:
    t = emu.state.get("lwtun_encaps")
    if t is None:
        t = emu.state["lwtun_encaps"] = {str(n): 0 for n in BOOT_ENCAPS}
    return t


@model("lwtunnel_encap_add_ops")
def lwtunnel_encap_add_ops(emu, ops, num):
    num &= 0xFFFFFFFF
    if num > LWTUNNEL_ENCAP_MAX:
        return -ERANGE
    t = _encaps(emu)
    if str(num) in t:
        emu.note(f"encap {num}: taken")
        return -1
    t[str(num)] = ops
    emu.note(f"encap {num}")
    return 0


@model("lwtunnel_encap_del_ops")
def lwtunnel_encap_del_ops(emu, ops, encap_type):
    encap_type &= 0xFFFFFFFF
    if encap_type == 0 or encap_type > LWTUNNEL_ENCAP_MAX:
        return -ERANGE
    t = _encaps(emu)
    if ops and t.get(str(encap_type)) == ops:
        del t[str(encap_type)]
        return 0
    return -1
