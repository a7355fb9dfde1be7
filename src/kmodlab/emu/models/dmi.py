"""The machine's DMI/SMBIOS identity (drivers/firmware/dmi_scan.c): ``dmi_check_system``,
``dmi_first_match``, ``dmi_get_system_info``, ``dmi_match``, ``dmi_available``.

At boot the kernel copies the SMBIOS strings it knows into ``dmi_ident[]`` (one per ``enum
dmi_field``); /sys/class/dmi/id shows exactly the non-NULL ones.  The sandbox machine is the
QEMU oracle's (QEMU 7.2 ``pc-i440fx-7.2`` with SeaBIOS 1.16.2), and these are its strings, read
from both real guests' /sys/class/dmi/id (6.1 and 6.12 agree): a BIOS (vendor, version, date,
release "0.0"), a system (QEMU, "Standard PC (i440FX + PIIX, 1996)", version pc-i440fx-7.2,
empty serial, SKU and family) and a chassis (QEMU, type "1", version pc-i440fx-7.2, empty serial
and asset tag).  QEMU gives no baseboard (type 2), no EC firmware release and an all-zero UUID
(not saved): those fields are NULL.  It has no OEM strings (type 11) and no onboard devices.

- ``dmi_check_system(list)`` walks the table to the entry whose first match slot is DMI_NONE;
  an entry matches when each of its up to 4 matches holds: DMI_NONE ends the list of
  matches, DMI_OEM_STRING never matches here (no OEM strings), a NULL ident fails, otherwise
  ``strcmp`` (exact_match) or ``strstr`` against the ident.  For each match the count goes up
  and its callback (if any) runs in the module; a non-zero return stops the walk.  Returns
  the count.
- ``dmi_first_match`` returns the first matching entry or NULL.
- ``dmi_get_system_info(field)``: the ident string (kernel memory) or NULL.
- ``dmi_match(field, str)``: as the kernel's, NULLs compare equal only to each other.

The ident strings are kept on the sandbox heap once (``emu.state["dmi_ident"]``), so a pointer
a module keeps stays valid for its exit.  ``dmi_walk``/``dmi_find_device`` (raw tables) are not
modelled.
"""
from __future__ import annotations

from ..layouts import layout
from ..registry import data, model

LAYOUT = layout("dmi")
(DMI_NONE, DMI_BIOS_VENDOR, DMI_BIOS_VERSION, DMI_BIOS_DATE, DMI_BIOS_RELEASE,
 DMI_EC_FIRMWARE_RELEASE, DMI_SYS_VENDOR, DMI_PRODUCT_NAME, DMI_PRODUCT_VERSION,
 DMI_PRODUCT_SERIAL, DMI_PRODUCT_UUID, DMI_PRODUCT_SKU, DMI_PRODUCT_FAMILY, DMI_BOARD_VENDOR,
 DMI_BOARD_NAME, DMI_BOARD_VERSION, DMI_BOARD_SERIAL, DMI_BOARD_ASSET_TAG, DMI_CHASSIS_VENDOR,
 DMI_CHASSIS_TYPE, DMI_CHASSIS_VERSION, DMI_CHASSIS_SERIAL, DMI_CHASSIS_ASSET_TAG,
 DMI_STRING_MAX, DMI_OEM_STRING) = range(25)      # enum dmi_field (6.1 and 6.12 BTF)
DMI_IDENT = {
    DMI_BIOS_VENDOR: "SeaBIOS", DMI_BIOS_VERSION: "1.16.2-debian-1.16.2-1",
    DMI_BIOS_DATE: "04/01/2014", DMI_BIOS_RELEASE: "0.0",
    DMI_SYS_VENDOR: "QEMU", DMI_PRODUCT_NAME: "Standard PC (i440FX + PIIX, 1996)",
    DMI_PRODUCT_VERSION: "pc-i440fx-7.2", DMI_PRODUCT_SERIAL: "", DMI_PRODUCT_SKU: "",
    DMI_PRODUCT_FAMILY: "",
    DMI_CHASSIS_VENDOR: "QEMU", DMI_CHASSIS_TYPE: "1", DMI_CHASSIS_VERSION: "pc-i440fx-7.2",
    DMI_CHASSIS_SERIAL: "", DMI_CHASSIS_ASSET_TAG: "",
}
MATCHES = 4


@data("dmi_available", 4)
def dmi_available(emu) -> bytes:
    return (1).to_bytes(4, "little")


def ident_addr(emu, field: int) -> int:
    """The kernel-memory copy of dmi_ident[field], 0 for NULL."""
    field &= 0xFFFFFFFF
    if field not in DMI_IDENT:
        return 0
    kept = emu.state.setdefault("dmi_ident", {})
    a = kept.get(str(field))
    if a is None or a not in emu.heap.allocs:
        b = DMI_IDENT[field].encode() + b"\0"
        a = emu.kmalloc(len(b))
        emu.write(a, b)
        kept[str(field)] = a
    return a


def dmi_matches(emu, d: int) -> bool:
    o = LAYOUT.of(emu)
    m0, step = d + o["dmi_system_id", "matches"], o["dmi_strmatch", "sizeof"]
    sub = o["dmi_strmatch", "substr"]
    for i in range(MATCHES):
        m = m0 + i * step
        b = emu.read_u(m, 1)
        slot, exact = b & 0x7F, b >> 7
        if slot == DMI_NONE:
            break
        if slot == DMI_OEM_STRING:
            return False                 # the machine has no OEM strings
        have = DMI_IDENT.get(slot)
        if have is None:
            return False
        want = emu.cstr(m + sub, step - sub).decode("latin-1")
        if not (have == want if exact else want in have):
            return False
    return True


def _entries(emu, table: int):
    o = LAYOUT.of(emu)
    size, m0 = o["dmi_system_id", "sizeof"], o["dmi_system_id", "matches"]
    d = table
    while emu.read_u(d + m0, 1) & 0x7F != DMI_NONE:
        yield d
        d += size


@model("dmi_check_system")
def dmi_check_system(emu, table):
    count = 0
    cb = LAYOUT.of(emu)["dmi_system_id", "callback"]
    for d in _entries(emu, table):
        if dmi_matches(emu, d):
            count += 1
            fn = emu.read_u(d + cb, 8)
            if fn and emu.call_module(fn, (d,)) & 0xFFFFFFFF:
                break
    emu.note(f"{count} matching")
    return count


@model("dmi_first_match")
def dmi_first_match(emu, table):
    for d in _entries(emu, table):
        if dmi_matches(emu, d):
            return d
    return 0


@model("dmi_get_system_info")
def dmi_get_system_info(emu, field):
    return ident_addr(emu, field)


@model("dmi_match")
def dmi_match(emu, field, s):
    info = DMI_IDENT.get(field & 0xFFFFFFFF)
    if info is None or not s:
        return int(info is None and not s)
    return int(emu.cstr(s).decode("latin-1") == info)
