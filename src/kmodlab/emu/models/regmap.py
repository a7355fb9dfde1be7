"""Register maps (drivers/base/regmap/regmap.c), the part a module reaches without creating one.

A regmap is tied to its device by a devres entry released by regmap's own no-op
``dev_get_regmap_release`` (regmap_attach_dev); dev_get_regmap(dev, name) finds the newest such
entry (of that name).  No regmap initialisation is modelled (``__regmap_init`` and friends stop
init by name), so no device of the sandbox carries one: the search runs on the device's real
list and finds nothing, and a found entry (which would need struct regmap) is refused.
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..registry import model
from .devres import KERNEL_RELEASES, _entries, _known, _noop_release, _o, _rd, N_RELEASE

KERNEL_RELEASES.setdefault("dev_get_regmap_release", _noop_release)


@model("dev_get_regmap")
def dev_get_regmap(emu, dev, name):
    if not dev:
        return 0
    release = _known(emu, "dev_get_regmap_release")
    if release is not None and any(_rd(emu, n + _o(emu, N_RELEASE)) == release
                                   for n in _entries(emu, dev)):
        raise Unmodelled("dev_get_regmap (a device with a regmap: struct regmap)", what=emu.what)
    return 0
