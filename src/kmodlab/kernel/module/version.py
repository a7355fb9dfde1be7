"""Module versioning (kernel/module/version.c): vermagic and the modversions CRC checks."""
from __future__ import annotations

import struct

from ... import elf
from ...errors import ENOEXEC
from ..printk import KERN_WARNING
from .internal import LoadError, LoadInfo, Module

MODVERSION_INFO = struct.Struct("<Q56s")        # struct modversion_info: unsigned long crc; char name[56]


def versions_table(info: LoadInfo) -> list[tuple[int, str]]:
    """The __versions entries (crc, name) of the image, or [] when index_vers is 0."""
    if not info.index_vers:
        return []
    sec = info.sechdrs[info.index_vers]
    data = info.image[sec.offset:sec.offset + sec.size - sec.size % MODVERSION_INFO.size]
    data = data[:len(data) - len(data) % MODVERSION_INFO.size]   # a NOBITS __versions past the file's end
    return [(crc, raw.split(b"\0", 1)[0].decode("latin-1"))
            for crc, raw in MODVERSION_INFO.iter_unpack(data)]


def check_version(m, info: LoadInfo, symname: str, mod: Module, crc: int | None) -> bool:
    """Does the module's recorded CRC for ``symname`` match the exporter's ``crc``?

    No exporter CRC → fine; no __versions (or IGNORE_MODVERSIONS) → force-load (taint F);
    a listed, different CRC → "disagrees about version of symbol"; not listed → warn once.
    """
    if crc is None:
        return True
    if not info.index_vers:
        return try_to_force_load(m, mod, symname)
    vcrc = info.version_of.get(symname)        # the first entry of that name, as the linear search
    if vcrc is not None:
        if vcrc == crc:                         # unsigned long vs zero-extended u32, as in C
            return True
        m.printk(KERN_WARNING, f"{info.name}: disagrees about version of symbol {symname}")
        return False
    m.printk_once("check_version:no symbol version", KERN_WARNING,
                  f"{info.name}: no symbol version for {symname}")
    return True


def try_to_force_load(m, mod: Module, reason: str) -> bool:
    """CONFIG_MODULE_FORCE_LOAD=y: taint F (message only the first time) and go on."""
    from .internal import TAINT_FORCED_MODULE
    if not m.profile_config_enabled("MODULE_FORCE_LOAD"):
        return False
    if not m.taint & (1 << TAINT_FORCED_MODULE):
        m.printk(KERN_WARNING, f"{mod.name}: {reason}: kernel tainted.")
    m.add_taint(TAINT_FORCED_MODULE, unreliable=True)
    mod.taints |= 1 << TAINT_FORCED_MODULE
    return True


def check_modstruct_version(m, info: LoadInfo, mod: Module) -> None:
    """The ``module_layout`` CRC must match the kernel's (-ENOEXEC otherwise)."""
    exp = m.profile.exports["module_layout"]
    if not check_version(m, info, "module_layout", mod, exp.crc):
        raise LoadError(ENOEXEC, "check_modstruct_version")


def same_magic(amagic: str, bmagic: str, has_crcs: bool) -> bool:
    """With CRCs the release part (before the first space) is not compared."""
    if has_crcs:
        amagic = amagic[amagic.find(" "):] if " " in amagic else ""
        bmagic = bmagic[bmagic.find(" "):] if " " in bmagic else ""
    return amagic == bmagic
