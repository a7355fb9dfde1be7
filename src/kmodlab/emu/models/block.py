"""Block device numbers (block/genhd.c): ``__register_blkdev`` and ``unregister_blkdev``.

The kernel keeps ``major_names[BLKDEV_MAJOR_HASH_SIZE]`` (255 hash chains, index major % 255);
the registrations are ``emu.state["blkdev"]`` ({major, name}), what /proc/devices lists under
"Block devices:".  As Linux 6.1 and 6.12 do it:

- major 0 asks for a dynamic one: the highest index from 254 down whose chain is empty
  (none left: "__register_blkdev: failed to get major for <name>", -EBUSY); the major is
  returned;
- a major ≥ BLKDEV_MAJOR_MAX (512): "__register_blkdev: major requested (%u) is greater than
  the maximum (511) for <name>", -EINVAL;
- a major already registered: "register_blkdev: cannot get major <major> for <name>", -EBUSY;
  else 0 for a fixed major.

The booted kernel's own block majors: Debian's 6.1 and 6.12 build every block driver as a
module except genhd itself, whose ``blkext`` (259, BLOCK_EXT_MAJOR) is registered at boot.
The ``probe`` callback is kept; nothing opens a missing block device in the sandbox, so it is
never called.  ``unregister_blkdev`` of a major not registered, or under another name, WARNs, as the
kernel's ``WARN_ON_ONCE`` does, and removes nothing.
"""
from __future__ import annotations

from ..registry import model

EINVAL, EBUSY = 22, 16
BLKDEV_MAJOR_HASH_SIZE, BLKDEV_MAJOR_MAX = 255, 512
BLOCK_EXT_MAJOR = 259
BOOT_BLKDEVS = [{"major": BLOCK_EXT_MAJOR, "name": "blkext"}]
NAME_LEN = 16                                   # struct blk_major_name: char name[16]


def _blkdevs(emu) -> list:
    return emu.state.setdefault("blkdev", [])


def _all(emu) -> list:
    return BOOT_BLKDEVS + _blkdevs(emu)


@model("__register_blkdev")
def __register_blkdev(emu, major, name, probe):
    major &= 0xFFFFFFFF
    nm = emu.cstr(name, 256).decode("latin-1")
    ret = 0
    if major == 0:
        used = {b["major"] % BLKDEV_MAJOR_HASH_SIZE for b in _all(emu)}
        index = next((i for i in range(BLKDEV_MAJOR_HASH_SIZE - 1, 0, -1) if i not in used), 0)
        if index == 0:
            emu.printk(4, f"__register_blkdev: failed to get major for {nm}\n")
            return -EBUSY
        major = ret = index
    if major >= BLKDEV_MAJOR_MAX:
        emu.printk(3, f"__register_blkdev: major requested ({major}) is greater than the "
                      f"maximum ({BLKDEV_MAJOR_MAX - 1}) for {nm}\n")
        return -EINVAL
    if any(b["major"] == major for b in _all(emu)):
        emu.printk(4, f"register_blkdev: cannot get major {major} for {nm}\n")
        return -EBUSY
    _blkdevs(emu).append({"major": major, "name": nm.encode("latin-1")[:NAME_LEN - 1]
                          .decode("latin-1"), "probe": probe})
    emu.note(f"block major {major}")
    return ret


@model("unregister_blkdev")
def unregister_blkdev(emu, major, name):
    major &= 0xFFFFFFFF
    nm = emu.cstr(name, 256).decode("latin-1")[:NAME_LEN - 1]
    for b in _blkdevs(emu):
        if b["major"] == major and b["name"] == nm:
            _blkdevs(emu).remove(b)
            return
    emu.printk(4, "WARNING: CPU: 0 at block/genhd.c unregister_blkdev\n")
