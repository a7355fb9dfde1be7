"""xfrm registries a module fills in (net/xfrm/xfrm_input.c, net/xfrm/xfrm_state.c), the same
in Linux 6.1 and 6.12.

- ``xfrm_input_register_afinfo(afinfo)``: the kernel's ``xfrm_input_afinfo[is_ipip][family]``
  table (AF_INET6 + 1 slots per row).  A family above AF_INET6 is a WARN and -EAFNOSUPPORT
  (the WARN's splat is not modelled: that case stops as Unmodelled); a taken slot -EEXIST;
  else the slot holds ``afinfo``: 0.  The booted kernel (XFRM, INET and IPV6 built in) has
  filled the two plain slots (xfrm4_protocol_init: AF_INET, xfrm6_protocol_init: AF_INET6);
  the ``is_ipip`` row belongs to the tunnel4/tunnel6 modules.
  ``xfrm_input_unregister_afinfo``: -EINVAL when the slot holds another afinfo, else the slot
  is cleared (an empty slot: 0, nothing done).  Nothing is logged.
  ``emu.state["xfrm_input_afinfo"]`` ("is_ipip/family" → afinfo; the kernel's own are 0).
- ``xfrm_register_type(type, family)``: ``xfrm_state_get_afinfo(family)`` is registered for
  AF_INET and AF_INET6 only (xfrm4/xfrm6_state_init at boot), other families -EAFNOSUPPORT.
  ``type->proto`` selects the afinfo's slot (IPPROTO_COMP, AH, ESP, IPIP, DSTOPTS, ROUTING,
  IPV6); the kernel WARNs when that slot is already set (and overwrites it) and WARNs with
  -EPROTONOSUPPORT for any other proto: both WARN cases stop as Unmodelled.  Every slot is
  empty after boot (ESP, AH, IPCOMP, MIP6 and the tunnels are modules).
  ``xfrm_unregister_type`` clears the slot (it WARNs when the slot holds another type: that
  stops as Unmodelled).  ``xfrm_register_type_offload``/``xfrm_unregister_type_offload`` do
  the same for the one offload slot, ESP.  ``emu.state["xfrm_types"]`` ("family/slot" → type).
- ``xfrm4_protocol_register(handler, protocol)`` (net/ipv4/xfrm4_protocol.c; xfrm6 the same
  with net/ipv6/xfrm6_protocol.c and inet6_add_protocol): only IPPROTO_ESP, AH and COMP have
  handler lists (any other protocol: -EINVAL).  The handler goes before the first listed one
  of a lower ``priority`` (-EEXIST for an equal one); its ``next`` and the predecessor's
  ``next`` (or the list head) are written as the kernel links them, so the chain lives in the
  modules' own structs.  When the list was empty, the xfrm layer's own protocol handler for
  that protocol is added with inet(6)_add_protocol (inet_proto.py's table; the handler is a
  kernel object at a stable emulator address); a taken slot logs "<fn>: can't add protocol"
  (pr_err) and returns -EAGAIN.  ``xfrm4_protocol_deregister`` unlinks the handler (-ENOENT
  when it is not listed) and, once the list is empty, removes the xfrm protocol handler
  (failure: the same pr_err with "can't remove protocol", -EAGAIN).  Every list is empty
  after boot.  ``emu.state["xfrm4_handlers"]`` / ``["xfrm6_handlers"]`` (protocol → handler
  addresses in list order).

Offsets are this kernel's, from its BTF (emu/layouts.py, file "xfrm").
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..layouts import layout
from ..registry import model

LAYOUT = layout("xfrm")
AF_INET, AF_INET6 = 2, 10
EAFNOSUPPORT, EEXIST, EINVAL, EPROTONOSUPPORT, ENOENT, EAGAIN = 97, 17, 22, 93, 2, 11
# type->proto → the xfrm_state_afinfo slot (include/uapi/linux/in.h, in6.h numbers)
TYPE_SLOTS = {108: "comp", 51: "ah", 50: "esp", 4: "ipip", 60: "dstopts", 43: "routing",
              41: "ipip6"}
OFFLOAD_SLOTS = {50: "offload_esp"}


def _input_table(emu) -> dict:
    t = emu.state.get("xfrm_input_afinfo")
    if t is None:
        t = emu.state["xfrm_input_afinfo"] = {f"0/{AF_INET}": 0, f"0/{AF_INET6}": 0}
    return t


def _input_key(emu, afinfo: int) -> tuple[str, int]:
    o = LAYOUT.of(emu)
    family = emu.read_u(afinfo + o["xfrm_input_afinfo", "family"], 1)
    ipip = emu.read_u(afinfo + o["xfrm_input_afinfo", "is_ipip"], 1)
    return f"{int(bool(ipip))}/{family}", family


@model("xfrm_input_register_afinfo")
def xfrm_input_register_afinfo(emu, afinfo):
    key, family = _input_key(emu, afinfo)
    if family > AF_INET6:
        raise Unmodelled(f"xfrm_input_register_afinfo (family {family} > AF_INET6: the "
                         f"kernel's WARN)", what=emu.what)
    t = _input_table(emu)
    if key in t:
        emu.note(f"{key}: taken")
        return -EEXIST
    t[key] = afinfo
    emu.note(f"is_ipip/family {key}")
    return 0


@model("xfrm_input_unregister_afinfo")
def xfrm_input_unregister_afinfo(emu, afinfo):
    key, family = _input_key(emu, afinfo)
    if family > AF_INET6:
        raise Unmodelled(f"xfrm_input_unregister_afinfo (family {family} > AF_INET6: out of "
                         f"the table)", what=emu.what)
    t = _input_table(emu)
    if key not in t:
        return 0
    if t[key] != afinfo:
        return -EINVAL
    del t[key]
    return 0


def _types(emu) -> dict:
    return emu.state.setdefault("xfrm_types", {})


def _slot(emu, fn: str, struct: str, typ: int, slots: dict) -> str | None:
    proto = emu.read_u(typ + LAYOUT.of(emu)[struct, "proto"], 1)
    slot = slots.get(proto)
    if slot is None:
        raise Unmodelled(f"{fn} (proto {proto} has no slot: the kernel's WARN)", what=emu.what)
    return slot


def _register(emu, fn: str, struct: str, slots: dict, typ: int, family: int) -> int:
    family &= 0xFFFF
    if family not in (AF_INET, AF_INET6):
        return -EAFNOSUPPORT
    key = f"{family}/{_slot(emu, fn, struct, typ, slots)}"
    t = _types(emu)
    if t.get(key):
        raise Unmodelled(f"{fn} ({key} already set: the kernel's WARN)", what=emu.what)
    t[key] = typ
    emu.note(key)
    return 0


def _unregister(emu, fn: str, struct: str, slots: dict, typ: int, family: int) -> None:
    family &= 0xFFFF
    if family not in (AF_INET, AF_INET6):
        raise Unmodelled(f"{fn} (family {family} has no afinfo: the kernel's WARN)",
                         what=emu.what)
    key = f"{family}/{_slot(emu, fn, struct, typ, slots)}"
    t = _types(emu)
    if t.get(key) != typ:
        raise Unmodelled(f"{fn} ({key} holds another type: the kernel's WARN)", what=emu.what)
    del t[key]


@model("xfrm_register_type")
def xfrm_register_type(emu, type, family):
    return _register(emu, "xfrm_register_type", "xfrm_type", TYPE_SLOTS, type, family)


@model("xfrm_unregister_type")
def xfrm_unregister_type(emu, type, family):
    _unregister(emu, "xfrm_unregister_type", "xfrm_type", TYPE_SLOTS, type, family)


@model("xfrm_register_type_offload")
def xfrm_register_type_offload(emu, type, family):
    return _register(emu, "xfrm_register_type_offload", "xfrm_type_offload", OFFLOAD_SLOTS,
                     type, family)


@model("xfrm_unregister_type_offload")
def xfrm_unregister_type_offload(emu, type, family):
    _unregister(emu, "xfrm_unregister_type_offload", "xfrm_type_offload", OFFLOAD_SLOTS,
                type, family)


# --- xfrm4/xfrm6 protocol handler lists (net/ipv4/xfrm4_protocol.c, net/ipv6/xfrm6_protocol.c)
XFRM_PROTOCOLS = (50, 51, 108)             # IPPROTO_ESP, IPPROTO_AH, IPPROTO_COMP


def _handlers(emu, v6: bool, protocol: int) -> list:
    key = "xfrm6_handlers" if v6 else "xfrm4_handlers"
    return emu.state.setdefault(key, {}).setdefault(str(protocol), [])


def _netproto(emu, v6: bool, protocol: int) -> int:
    """The xfrm layer's own (inet6_)protocol for ``protocol``: a kernel static, here an
    address allocated once and kept in the machine's state (``xfrm_netprotos``), so that a
    later exit removes the same handler (nothing dereferences it)."""
    objs = emu.state.setdefault("xfrm_netprotos", {})
    key = f"{6 if v6 else 4}/{protocol}"
    if key not in objs:
        objs[key] = emu.priv_alloc(8, 8)
    return objs[key]


def _link(emu, struct: str, lst: list) -> None:
    """Write each handler's ``next`` as the kernel's list has it."""
    nxt = LAYOUT.of(emu)[struct, "next"]
    for i, h in enumerate(lst):
        emu.write_u(h + nxt, 8, lst[i + 1] if i + 1 < len(lst) else 0)


def _proto_register(emu, v6: bool, handler: int, protocol: int) -> int:
    from .inet_proto import _add
    fn = "xfrm6_protocol_register" if v6 else "xfrm4_protocol_register"
    struct = "xfrm6_protocol" if v6 else "xfrm4_protocol"
    protocol &= 0xFF
    if protocol not in XFRM_PROTOCOLS:
        return -EINVAL
    o = LAYOUT.of(emu)
    prio = emu.read_s(handler + o[struct, "priority"], 4)
    lst = _handlers(emu, v6, protocol)
    add_netproto = not lst
    ret = 0
    at = len(lst)
    for i, t in enumerate(lst):
        tp = emu.read_s(t + o[struct, "priority"], 4)
        if tp < prio:
            at = i
            break
        if tp == prio:
            ret = -EEXIST
            break
    if ret == 0:
        lst.insert(at, handler)
        _link(emu, struct, lst)
        emu.note(f"protocol {protocol}, priority {prio}")
    if add_netproto and _add(emu, v6, _netproto(emu, v6, protocol), protocol):
        emu.printk(3, f"{fn}: can't add protocol\n")
        ret = -EAGAIN
    return ret


def _proto_deregister(emu, v6: bool, handler: int, protocol: int) -> int:
    from .inet_proto import _del
    fn = "xfrm6_protocol_deregister" if v6 else "xfrm4_protocol_deregister"
    struct = "xfrm6_protocol" if v6 else "xfrm4_protocol"
    protocol &= 0xFF
    if protocol not in XFRM_PROTOCOLS:
        return -EINVAL
    lst = _handlers(emu, v6, protocol)
    ret = -ENOENT
    if handler in lst:
        lst.remove(handler)
        _link(emu, struct, lst)
        ret = 0
    if not lst and _del(emu, v6, _netproto(emu, v6, protocol), protocol) < 0:
        emu.printk(3, f"{fn}: can't remove protocol\n")
        ret = -EAGAIN
    return ret


@model("xfrm4_protocol_register")
def xfrm4_protocol_register(emu, handler, protocol):
    return _proto_register(emu, False, handler, protocol)


@model("xfrm4_protocol_deregister")
def xfrm4_protocol_deregister(emu, handler, protocol):
    return _proto_deregister(emu, False, handler, protocol)


@model("xfrm6_protocol_register")
def xfrm6_protocol_register(emu, handler, protocol):
    return _proto_register(emu, True, handler, protocol)


@model("xfrm6_protocol_deregister")
def xfrm6_protocol_deregister(emu, handler, protocol):
    return _proto_deregister(emu, True, handler, protocol)


# --- the xfrm interface callbacks (net/xfrm/xfrm_policy.c) ---------------------------------------
# xfrm_if_register_cb(ifcb) sets the single xfrm_if_cb pointer the policy code calls (by
# xfrm_interface); xfrm_if_unregister_cb() clears it and waits for readers.  Nothing returned,
# nothing logged.  emu.state["xfrm_if_cb"].


@model("xfrm_if_register_cb")
def xfrm_if_register_cb(emu, ifcb):
    emu.state["xfrm_if_cb"] = ifcb


@model("xfrm_if_unregister_cb")
def xfrm_if_unregister_cb(emu):
    emu.state["xfrm_if_cb"] = 0
