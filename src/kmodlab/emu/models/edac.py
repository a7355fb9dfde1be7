"""The EDAC core's operating mode (drivers/edac/edac_mc_sysfs.c … ``edac_op_state``).

``int edac_op_state``, exported by the built-in EDAC core, is EDAC_OPSTATE_INVAL (-1) at boot;
each EDAC driver's init sets the mode it will run in (poll, NMI, interrupt) and the variable
keeps the last one written, for the next module, as the kernel's does.
"""
from __future__ import annotations

from ..registry import data

EDAC_OPSTATE_INVAL = -1


@data("edac_op_state", 4, persist=True)
def edac_op_state(emu) -> bytes:
    return EDAC_OPSTATE_INVAL.to_bytes(4, "little", signed=True)
