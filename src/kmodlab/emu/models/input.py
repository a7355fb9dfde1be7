"""Input handlers (drivers/input/input.c) and ACPI bus types (drivers/acpi/glue.c).

``input_register_handler`` initialises the handler's ``h_list``, lists it in
``emu.state["input_handlers"]`` and would connect it to every registered input device that
matches — the sandbox machine has no input devices (no keyboard, no power button), so
``connect`` is never called.  The kernel's ``node`` link into its static
``input_handler_list`` is not written (the profile does not know that list's address).
Layout (Debian 6.1 amd64): private 0, event 8, events 16, filter 24, match 32, connect 40,
disconnect 48, start 56, legacy_minors 64, minor 68, name 72, id_table 80, h_list 88, node 104.

``register_acpi_bus_type``: ACPI is enabled (``acpi_disabled`` is 0 on an x86-64 machine with
firmware tables); a type with ``match`` and ``find_companion`` is listed ("ACPI: bus type %s
registered"), anything else is -ENODEV.  Layout: list 0, name 16, match 24, find_companion 32.
"""
from __future__ import annotations

from ..registry import model
from .locking import init_list_head

ENODEV = 19
IH_NAME, IH_H_LIST = 72, 88
ABT_NAME, ABT_MATCH, ABT_FIND = 16, 24, 32


@model("input_register_handler")
def input_register_handler(emu, handler):
    init_list_head(emu, handler + IH_H_LIST)
    name = emu.cstr(emu.read_u(handler + IH_NAME, 8), 64).decode("latin-1")
    emu.state.setdefault("input_handlers", {})[str(handler)] = name
    emu.note(f"{name}: no input devices, connect not called")
    return 0


@model("input_unregister_handler")
def input_unregister_handler(emu, handler):
    emu.state.setdefault("input_handlers", {}).pop(str(handler), None)


@model("register_acpi_bus_type")
def register_acpi_bus_type(emu, t):
    if not (t and emu.read_u(t + ABT_MATCH, 8) and emu.read_u(t + ABT_FIND, 8)):
        return -ENODEV
    name = emu.cstr(emu.read_u(t + ABT_NAME, 8), 64).decode("latin-1")
    emu.state.setdefault("acpi_bus_types", {})[str(t)] = name
    emu.printk(6, f"ACPI: bus type {name} registered\n")
    return 0


@model("unregister_acpi_bus_type")
def unregister_acpi_bus_type(emu, t):
    name = emu.state.setdefault("acpi_bus_types", {}).pop(str(t), None)
    if name is not None:
        emu.printk(6, f"ACPI: bus type {name} unregistered\n")
    return 0
