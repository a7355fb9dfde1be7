"""TCP upper-layer protocols (net/ipv4/tcp_ulp.c): ``tcp_register_ulp`` and
``tcp_unregister_ulp``, the same in Linux 6.1 and 6.12.

Registering looks the name up on the kernel's ``tcp_ulp_list`` (strcmp on ``ulp->name``): a
name already there → -EEXIST, nothing else done; otherwise the ops join the list
(list_add_tail_rcu into the kernel's static list head, whose address is not in the profile:
``ulp->list`` is not written).  Nothing is logged either way.  The booted kernel's list holds
the built-in ULPs: ``mptcp`` (MPTCP=y registers its subflow ULP at boot) and ``espintcp``
(XFRM_ESPINTCP=y); modules' are ``emu.state["tcp_ulp"]`` (name → ops), shown by
/proc/sys/net/ipv4/tcp_available_ulp, which the sandbox does not show.  Unregistering unlists
(list_del_rcu, synchronize_rcu).
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..layouts import layout
from ..registry import model

LAYOUT = layout("tcp_ulp")
EEXIST = 17
TCP_ULP_NAME_MAX = 16
BUILTIN = (("mptcp", "MPTCP"), ("espintcp", "XFRM_ESPINTCP"))


def _list(emu) -> dict:
    return emu.state.setdefault("tcp_ulp", {})


def _builtin(emu) -> list[str]:
    cfg = getattr(getattr(emu.kernel, "profile", None), "config", None) or {}
    if not cfg:
        return [n for n, _opt in BUILTIN if n == "mptcp"]      # Debian's: MPTCP=y
    return [n for n, opt in BUILTIN if cfg.get(opt) == "y"]


def _name(emu, ulp: int) -> str:
    raw = emu.read(ulp + LAYOUT.of(emu)["tcp_ulp_ops", "name"], TCP_ULP_NAME_MAX)
    return raw.split(b"\0", 1)[0].decode("latin-1")


@model("tcp_register_ulp")
def tcp_register_ulp(emu, ulp):
    name = _name(emu, ulp)
    if name in _builtin(emu) or name in _list(emu):
        return -EEXIST
    _list(emu)[name] = ulp
    emu.note(f"TCP ULP {name}")
    return 0


@model("tcp_unregister_ulp")
def tcp_unregister_ulp(emu, ulp):
    mods = _list(emu)
    name = next((n for n, a in mods.items() if a == ulp), None)
    if name is None:
        raise Unmodelled("tcp_unregister_ulp (ops that are not on the list: list_del_rcu of "
                         "an unlinked entry)", what=emu.what)
    del mods[name]
