"""Netfilter's hook pointers in vmlinux that modules install (net/netfilter/core.c,
net/netfilter/nf_conntrack_core.c …): ``nf_ct_hook``, ``nf_nat_hook``, ``nfnl_ct_hook`` and
(6.12) ``nf_defrag_v4_hook``/``nf_defrag_v6_hook``.

Each is an RCU-published pointer to a module's ops, NULL at boot because the module that
sets it is a module in the profile's config (nf_conntrack for nf_ct_hook: CONFIG_NF_CONNTRACK=m,
and so on); a profile that builds that code in gets no model (its boot value is not known).
The pointers keep what module code writes (nf_conntrack's init sets ``nf_ct_hook``, its exit
clears it) and other modules read them.
"""
from __future__ import annotations

from ..registry import data

# pointer → the config option whose module installs it
HOOKS = {"nf_ct_hook": "NF_CONNTRACK", "nf_nat_hook": "NF_NAT",
         "nfnl_ct_hook": "NF_CT_NETLINK", "nf_defrag_v4_hook": "NF_DEFRAG_IPV4",
         "nf_defrag_v6_hook": "NF_DEFRAG_IPV6"}


def _null_at_boot(name: str):
    def fn(emu) -> bytes:
        prof = getattr(getattr(emu, "kernel", None), "profile", None)
        cfg = getattr(prof, "config", None) or {}
        if cfg and cfg.get(HOOKS[name]) == "y":
            from ..errors import Unmodelled
            raise Unmodelled(f"{name} (set at boot by built-in code: its value is not known)",
                             kind="data", what=emu.what)
        return bytes(8)
    fn.__name__ = name
    fn.__doc__ = f"``{name}``: NULL until the module of CONFIG_{HOOKS[name]} installs it."
    return fn


for _name in HOOKS:
    data(_name, 8, persist=True)(_null_at_boot(_name))


# net/netfilter/core.c: the default conntrack zone, a constant (rodata): id
# NF_CT_DEFAULT_ZONE_ID 0, flags 0, dir NF_CT_DEFAULT_ZONE_DIR (ORIG | REPL = 3) — the bytes
# 00 00 00 03 of both Debian kernels' images.
@data("nf_ct_zone_dflt", 4)
def nf_ct_zone_dflt(emu) -> bytes:
    return bytes([0, 0, 0, 3])
