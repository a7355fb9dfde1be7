"""User and group ids across namespaces (kernel/user_namespace.c, lib/hexdump.c's bin2hex).

The sandbox machine has one user namespace, ``init_user_ns``, whose uid and gid maps are the
identity over [0, 4294967294]: ``make_kuid(&init_user_ns, uid)`` is ``uid`` (and (uid_t)-1,
outside the map, is INVALID_UID, (uid_t)-1 too); ``from_kuid`` likewise; ``from_kuid_munged``
maps INVALID_UID to the overflow uid 65534.  Another namespace stops the call by name.
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..registry import model

INVALID = 0xFFFFFFFF
OVERFLOWUID = 65534


def _map(emu, ns: int, v: int, fn: str) -> int:
    if ns != emu.export_addr("init_user_ns"):
        raise Unmodelled(f"{fn} (a user namespace other than init_user_ns)", what=emu.what)
    return v & 0xFFFFFFFF


@model("make_kuid")
def make_kuid(emu, ns, uid):
    return _map(emu, ns, uid, "make_kuid")


@model("make_kgid")
def make_kgid(emu, ns, gid):
    return _map(emu, ns, gid, "make_kgid")


@model("from_kuid")
def from_kuid(emu, ns, kuid):
    return _map(emu, ns, kuid, "from_kuid")


@model("from_kgid")
def from_kgid(emu, ns, kgid):
    return _map(emu, ns, kgid, "from_kgid")


@model("from_kuid_munged")
def from_kuid_munged(emu, ns, kuid):
    v = _map(emu, ns, kuid, "from_kuid_munged")
    return OVERFLOWUID if v == INVALID else v


@model("from_kgid_munged")
def from_kgid_munged(emu, ns, kgid):
    v = _map(emu, ns, kgid, "from_kgid_munged")
    return OVERFLOWUID if v == INVALID else v


@model("bin2hex")
def bin2hex(emu, dst, src, count):
    """lib/hexdump.c: two lowercase hex digits per byte, no NUL; returns dst + 2 * count."""
    n = count & 0xFFFFFFFFFFFFFFFF
    emu.write(dst, emu.read(src, n).hex().encode())
    return (dst + 2 * n) & 0xFFFFFFFFFFFFFFFF
