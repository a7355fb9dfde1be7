"""IPv6 module state (net/ipv6/af_inet6.c), the same in Linux 6.1 and 6.12.

``ipv6_mod_enabled()`` is true unless IPv6 was disabled at boot with ``ipv6.disable=1``
(af_inet6's ``disable_ipv6_mod``).  Debian builds IPv6 in (CONFIG_IPV6=y) and the oracle
guests boot without that option (the mass record's command line): true.  A profile whose
kernel has no IPv6 built in stops the call by name (the function would not be exported).
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..registry import model


@model("ipv6_mod_enabled")
def ipv6_mod_enabled(emu):
    cfg = getattr(getattr(emu.kernel, "profile", None), "config", None) or {}
    if cfg and cfg.get("IPV6") != "y":
        raise Unmodelled("ipv6_mod_enabled (IPv6 not built into this kernel)", what=emu.what)
    return 1
