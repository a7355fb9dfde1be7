"""Socket diagnostics handlers (net/core/sock_diag.c): the per-address-family table
NETLINK_SOCK_DIAG requests are dispatched through, as Linux 6.1 and 6.12 keep it.

- ``sock_diag_register(hndl)``: ``hndl->family`` (a u8) at or above AF_MAX (46) → -EINVAL; a
  family that has a handler → -EBUSY; otherwise the handler is set.  Debian builds every
  handler as a module (PACKET_DIAG, UNIX_DIAG, INET_DIAG, NETLINK_DIAG, … =m): the booted
  kernel's table is empty.  ``emu.state["sock_diag"]`` maps family → handler.
- ``sock_diag_unregister(hndl)``: a family at or above AF_MAX is ignored; otherwise the slot is
  cleared (``xchg`` with NULL, whatever handler it held).
- ``sock_diag_register_inet_compat`` / ``sock_diag_unregister_inet_compat``: the one hook for
  old-style inet_diag requests (a ``struct sock_diag_inet_compat``), kept in
  ``emu.state["sock_diag_inet_compat"]``; unregistering a pointer that is not the one
  registered WARNs (once per boot).

Both releases: these are the 6.9 versions ("sock_diag: allow concurrent operations", cmpxchg
and xchg instead of the table mutex), which Debian's 6.1.192 carries too — its BTF has the
series' ``struct sock_diag_inet_compat`` and ``sock_diag_handler.owner``; the older 6.1 code
BUG()ed on unregistering a handler not in the slot.

Nothing is logged; the table is seen only through netlink.  Offsets are this kernel's, from
its BTF (emu/layouts.py, file "sockdiag").
"""
from __future__ import annotations

from ..layouts import layout
from ..registry import model

LAYOUT = layout("sockdiag")
EINVAL, EBUSY = 22, 16
AF_MAX = 46


def _family(emu, hndl: int) -> int:
    return emu.read_u(hndl + LAYOUT.of(emu)["sock_diag_handler", "family"], 1)


def _table(emu) -> dict:
    return emu.state.setdefault("sock_diag", {})


@model("sock_diag_register")
def sock_diag_register(emu, hndl):
    fam = _family(emu, hndl)
    if fam >= AF_MAX:
        return -EINVAL
    if str(fam) in _table(emu):
        return -EBUSY
    _table(emu)[str(fam)] = hndl
    emu.note(f"family {fam}")
    return 0


@model("sock_diag_unregister")
def sock_diag_unregister(emu, hndl):
    fam = _family(emu, hndl)
    if fam >= AF_MAX:
        return
    _table(emu).pop(str(fam), None)


@model("sock_diag_register_inet_compat")
def sock_diag_register_inet_compat(emu, ptr):
    emu.state["sock_diag_inet_compat"] = ptr


@model("sock_diag_unregister_inet_compat")
def sock_diag_unregister_inet_compat(emu, ptr):
    old = emu.state.get("sock_diag_inet_compat", 0)
    if old != ptr and not emu.state.get("sock_diag_compat_warned"):
        emu.state["sock_diag_compat_warned"] = 1
        emu.printk(4, "WARNING: CPU: 0 at net/core/sock_diag.c "
                      "sock_diag_unregister_inet_compat\n")
    emu.state["sock_diag_inet_compat"] = 0
