"""Netlink kernel sockets (net/netlink/af_netlink.c): the socket a subsystem creates for its
netlink protocol number in a network namespace (``netlink_kernel_create``, an inline around
``__netlink_kernel_create``), and its release.

``__netlink_kernel_create(net, unit, module, cfg)`` as Linux 6.1 and 6.12 do it, in the part a
module can observe:

- a ``unit`` outside [0, MAX_LINKS) → NULL;
- the kernel socket of a protocol is bound to port id 0 of its namespace (``netlink_insert(sk,
  0)``): a second kernel socket for the same unit in the same namespace fails there
  (-EADDRINUSE) and the call returns NULL, releasing the socket.  The kernel's own units hold
  init_net's port 0 from boot: NETLINK_ROUTE (0), NETLINK_SOCK_DIAG (4), NETLINK_FIB_LOOKUP
  (10), NETLINK_KOBJECT_UEVENT (15), NETLINK_GENERIC (16), and by configuration
  NETLINK_SELINUX (7, SECURITY_SELINUX=y), NETLINK_AUDIT (9, AUDIT=y) and NETLINK_CONNECTOR
  (11, CONNECTOR=y); the sockets modules create are ``emu.state["netlink"]["sockets"]``;
- otherwise a ``struct socket`` (sock_create_lite: PF_NETLINK, SOCK_DGRAM) and a ``struct
  netlink_sock`` (the sock's first member is ``struct sock``) are allocated zeroed, with what
  module code can read of them set as __netlink_create and sock_init_data set it: the sock's
  family (AF_NETLINK), namespace, type, protocol and socket, the socket's type and sock,
  ``nlk->module``, ``nlk->netlink_rcv`` (``cfg->input``), NETLINK_F_KERNEL_SOCKET in
  ``nlk->flags``.  The rest of sock_init_data (buffer sizes, timers, the wait queue, the
  kernel's static callbacks such as ``netlink_data_ready``, whose addresses are not in the
  profile) is not written: those fields read 0;
- the protocol's table entry (``nl_table[unit]``) is set up by the first kernel socket of a
  unit — groups (``cfg->groups``, at least 32), module, bind/unbind/flags/compare (6.1) or
  bind/unbind/release/flags (6.12) from ``cfg`` — and counted by each further one
  (``registered``), in ``emu.state["netlink"]["table"]``.

``netlink_kernel_release(sk)`` releases the socket: the table entry's count drops and at 0 the
entry is cleared.  Nothing is logged by either.  ``netlink_has_listeners(sk, group)``: no user
socket ever subscribes to a group on the sandbox machine (no process opens netlink sockets), so
it is 0.

Offsets are this kernel's, from its BTF (emu/layouts.py, file "netlink").
"""
from __future__ import annotations

from ..layouts import layout
from ..registry import model

LAYOUT = layout("netlink")
MAX_LINKS = 32
AF_NETLINK, SOCK_DGRAM = 16, 2
NETLINK_F_KERNEL_SOCKET = 1 << 0
# protocol numbers whose kernel socket vmlinux creates in init_net at boot
BOOT_UNITS = {0: "NETLINK_ROUTE", 4: "NETLINK_SOCK_DIAG", 10: "NETLINK_FIB_LOOKUP",
              15: "NETLINK_KOBJECT_UEVENT", 16: "NETLINK_GENERIC"}
BOOT_UNITS_BY_CONFIG = {7: ("SECURITY_SELINUX", "NETLINK_SELINUX"),
                        9: ("AUDIT", "NETLINK_AUDIT"), 11: ("CONNECTOR", "NETLINK_CONNECTOR")}


def _o(emu, struct: str, member: str) -> int:
    return LAYOUT.of(emu)[struct, member]


def _nl(emu) -> dict:
    return emu.state.setdefault("netlink", {"sockets": {}, "table": {}})


def _config(emu) -> dict:
    return getattr(getattr(emu.kernel, "profile", None), "config", None) or {}


def boot_units(emu) -> set[int]:
    """The units whose kernel socket the booted kernel holds in init_net."""
    units = set(BOOT_UNITS)
    cfg = _config(emu)
    for unit, (opt, _name) in BOOT_UNITS_BY_CONFIG.items():
        if cfg.get(opt) == "y" or not cfg:             # no profile: Debian's =y
            units.add(unit)
    return units


def _bound(emu, net: int, unit: int) -> bool:
    if net == emu.export_addr("init_net") and unit in boot_units(emu):
        return True
    return any(s["net"] == net and s["unit"] == unit for s in _nl(emu)["sockets"].values())


def _cfg_field(emu, cfg: int, member: str, size: int = 8) -> int:
    if not cfg:
        return 0
    return emu.read_u(cfg + _o(emu, "netlink_kernel_cfg", member), size)


@model("__netlink_kernel_create")
def __netlink_kernel_create(emu, net, unit, module, cfg):
    unit &= 0xFFFFFFFF
    unit = unit - (1 << 32) if unit & 0x80000000 else unit
    if not 0 <= unit < MAX_LINKS:
        return 0
    if _bound(emu, net, unit):                            # netlink_insert: -EADDRINUSE
        emu.note(f"unit {unit}: port 0 of this namespace already bound")
        return 0
    o = LAYOUT.of(emu)
    sock = emu.kmalloc(o["socket", "sizeof"], zero=True)
    sk = emu.kmalloc(o["netlink_sock", "sizeof"], zero=True)
    emu.write_u(sock + o["socket", "type"], 2, SOCK_DGRAM)
    emu.write_u(sock + o["socket", "sk"], 8, sk)
    emu.write_u(sk + o["sock_common", "skc_family"], 2, AF_NETLINK)
    emu.write_u(sk + o["sock_common", "skc_net"], 8, net)
    emu.write_u(sk + o["sock", "sk_type"], 2, SOCK_DGRAM)
    emu.write_u(sk + o["sock", "sk_protocol"], 2, unit)
    emu.write_u(sk + o["sock", "sk_socket"], 8, sock)
    emu.write_u(sk + o["netlink_sock", "module"], 8, module)
    emu.write_u(sk + o["netlink_sock", "flags"], 8, NETLINK_F_KERNEL_SOCKET)
    emu.write_u(sk + o["netlink_sock", "netlink_rcv"], 8, _cfg_field(emu, cfg, "input"))
    groups = _cfg_field(emu, cfg, "groups", 4)
    groups = groups if groups >= 32 else 32
    nl = _nl(emu)
    nl["sockets"][str(sk)] = {"unit": unit, "net": net, "sock": sock}
    t = nl["table"].get(str(unit))
    if t is None:
        nl["table"][str(unit)] = {
            "registered": 1, "groups": groups, "module": module,
            "flags": _cfg_field(emu, cfg, "flags", 4),
            "bind": _cfg_field(emu, cfg, "bind"), "unbind": _cfg_field(emu, cfg, "unbind")}
    else:
        t["registered"] += 1
    emu.note(f"unit {unit}: {groups} groups"
             + (f", input {emu.symbol(_cfg_field(emu, cfg, 'input'))}"
                if _cfg_field(emu, cfg, "input") else ""))
    return sk


@model("netlink_kernel_release")
def netlink_kernel_release(emu, sk):
    if not sk:
        return
    nl = _nl(emu)
    s = nl["sockets"].pop(str(sk), None)
    if s is None:
        return                       # not one of the sandbox's (sk->sk_socket would be NULL)
    t = nl["table"].get(str(s["unit"]))
    if t is not None:
        t["registered"] -= 1
        if t["registered"] <= 0:
            del nl["table"][str(s["unit"])]
    emu.kfree(sk)
    emu.kfree(s["sock"])


@model("netlink_has_listeners")
def netlink_has_listeners(emu, sk, group):
    return 0
