"""Subsystem drop reasons (net/core/skbuff.c, 6.x): ``drop_reasons_register_subsys`` and
``drop_reasons_unregister_subsys``.

A subsystem (mac80211, openvswitch) installs the list of its skb drop reason names in the
kernel's ``drop_reasons_by_subsys[]`` slot of its enum skb_drop_reason_subsys value, where the
skb:kfree_skb tracepoint and drop_monitor read them; unregistering empties the slot (after an
RCU grace period).  The kernel does not check for an existing list (a second register
overwrites).  The slots are kept in ``emu.state["drop_reasons"]`` (subsys -> list address).
The kernel WARNs and does nothing for SKB_DROP_REASON_SUBSYS_CORE (0) or a value past the
enum's end: subsys 0 (or a negative one) stops as Unmodelled; the upper bound is the running
kernel's enum, which a module built against that kernel cannot exceed, and is not checked.
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..registry import model


def _slots(emu) -> dict:
    return emu.state.setdefault("drop_reasons", {})


def _check(subsys: int, fn: str) -> int:
    s = subsys & 0xFFFFFFFF
    if s == 0 or s >= 1 << 31:
        raise Unmodelled(f"{fn} (the core's or an invalid subsystem: the kernel WARNs)")
    return s


@model("drop_reasons_register_subsys")
def drop_reasons_register_subsys(emu, subsys, reasons):
    emu.note(f"subsys {subsys & 0xFFFFFFFF}")
    _slots(emu)[str(_check(subsys, "drop_reasons_register_subsys"))] = reasons


@model("drop_reasons_unregister_subsys")
def drop_reasons_unregister_subsys(emu, subsys):
    _slots(emu).pop(str(_check(subsys, "drop_reasons_unregister_subsys")), None)
