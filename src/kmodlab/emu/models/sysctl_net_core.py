"""Core networking sysctls module code reads (net/core/sysctl_net_core.c), the same in Linux
6.1 and 6.12.

``sysctl_fb_tunnels_only_for_init_net`` (/proc/sys/net/core/fb_tunnels_only_for_init_net): 0
at boot (its initialiser; no Kconfig or command-line option sets it) — fallback tunnel
devices (tunl0, sit0, ip6tnl0 …) are created in every namespace.  Only root writes it, through
/proc/sys, never a module: the value is not kept as writable module state.
"""
from __future__ import annotations

from ..registry import data


@data("sysctl_fb_tunnels_only_for_init_net", 4)
def sysctl_fb_tunnels_only_for_init_net(emu) -> bytes:
    return (0).to_bytes(4, "little")
