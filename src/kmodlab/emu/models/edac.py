"""The EDAC core's operating mode (drivers/edac/edac_mc_sysfs.c … ``edac_op_state``).

``int edac_op_state``, exported by the built-in EDAC core, is EDAC_OPSTATE_INVAL (-1) at boot;
each EDAC driver's init sets the mode it will run in (poll, NMI, interrupt) and the variable
keeps the last one written, for the next module, as the kernel's does.

``edac_get_owner()`` is edac_mc.c's ``edac_mc_owner``: the module name of the first memory
controller added (edac_mc_add_mc_with_groups), NULL while none is.  Adding one is not modelled
(it stops init by name), so nothing sets ``emu.state["edac_mc_owner"]`` yet: NULL.
"""
from __future__ import annotations

from ..registry import data, model

EDAC_OPSTATE_INVAL = -1


@data("edac_op_state", 4, persist=True)
def edac_op_state(emu) -> bytes:
    return EDAC_OPSTATE_INVAL.to_bytes(4, "little", signed=True)


@model("edac_get_owner")
def edac_get_owner(emu):
    return emu.state.get("edac_mc_owner", 0)
