"""The kernel connector (drivers/connector/connector.c, cn_queue.c): callbacks registered for a
connector id ``{idx, val}``, as Linux 6.1 and 6.12 keep them.

- ``cn_add_callback(id, name, callback)``: the connector is initialised at boot (CONNECTOR=y
  in Debian); a callback for the same ``{idx, val}`` already on the queue → -EINVAL (the new
  entry is freed); otherwise it joins the queue, its group being ``id->idx``.  The booted
  kernel's queue holds ``cn_proc`` at {CN_IDX_PROC 1, CN_VAL_PROC 1} (PROC_EVENTS=y in Debian
  6.1 and 6.12; no profile: built in).
- ``cn_del_callback(id)``: removes the entry of that id if there is one (nothing otherwise).

The queue is ``emu.state["connector"]`` ("idx:val" → name, callback).  Nothing is logged.  The
real kernel lists the queue in /proc/net/connector ("Name ID" lines), which the sandbox does
not show.  Offsets are this kernel's, from its BTF (emu/layouts.py, file "connector").
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..layouts import layout
from ..registry import model

LAYOUT = layout("connector")
EINVAL = 22
CN_CBQ_NAMELEN = 32


def _config(emu) -> dict:
    return getattr(getattr(emu.kernel, "profile", None), "config", None) or {}


def _queue(emu) -> dict:
    q = emu.state.get("connector")
    if q is None:
        cfg = _config(emu)
        if cfg and cfg.get("CONNECTOR") != "y":
            raise Unmodelled("cn_add_callback (this kernel's connector is not built in, "
                             f"CONNECTOR={cfg.get('CONNECTOR')})", what=emu.what)
        q = emu.state["connector"] = {}
        if not cfg or cfg.get("PROC_EVENTS") == "y":
            q["1:1"] = {"name": "cn_proc", "callback": 0}
    return q


def _id(emu, ident: int) -> str:
    o = LAYOUT.of(emu)
    return (f"{emu.read_u(ident + o['cb_id', 'idx'], 4)}:"
            f"{emu.read_u(ident + o['cb_id', 'val'], 4)}")


@model("cn_add_callback")
def cn_add_callback(emu, ident, name, callback):
    q = _queue(emu)
    key = _id(emu, ident)
    if key in q:
        return -EINVAL
    nm = emu.cstr(name, CN_CBQ_NAMELEN - 1).decode("latin-1") if name else ""
    q[key] = {"name": nm, "callback": callback}
    emu.note(f"{nm} {key}")
    return 0


@model("cn_del_callback")
def cn_del_callback(emu, ident):
    _queue(emu).pop(_id(emu, ident), None)
