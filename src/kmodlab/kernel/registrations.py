"""What /proc and /sys show of the kernel's registries: filesystems, device numbers, misc
devices, buses and their drivers.

Each view is the booted kernel's own entries (read off Debian's kernel under QEMU right after
boot: ``profile/data/boot-views-<release>.json``, see oracle/views.py) and then what modules'
inits registered — the emulator's models keep those in the machine's ``emu_state``, which
rmmod's exit must empty again.  As the kernel renders them:

- ``/proc/filesystems`` (fs/filesystems.c ``filesystems_proc_show``): the ``file_systems``
  chain in registration order (register_filesystem appends), ``nodev`` unless ``fs_flags`` has
  FS_REQUIRES_DEV, a tab, the name.
- ``/proc/devices`` (fs/proc/devices.c, fs/char_dev.c ``chrdev_show``, block/genhd.c
  ``blkdev_show``): "Character devices:", every major from 0 to 511 with its regions ("%3d
  %s"), a blank line, "Block devices:", the same for block majors.  Within one major the boot
  regions come first (none of Debian's modules adds a region to a major the booted kernel
  uses).
- ``/proc/misc`` (drivers/char/misc.c ``misc_seq_show``): "%3i %s", newest first
  (misc_register adds at the head of ``misc_list``).
- ``/proc/ioports``, ``/proc/iomem`` (kernel/resource.c ``r_show``, as root reads them): the
  resource trees, the booted kernel's nodes (read through /proc/kcore) and what modules
  requested (emu/models/resource.py).
- ``/sys/bus`` and ``/sys/bus/<bus>/drivers``: the buses, and each one's drivers.

A release with no boot record uses the one of the same version and flavour (6.1.0-57-amd64 →
6.1.0-56-amd64's); with none of those the views are refused with ENOENT, saying why.
"""
from __future__ import annotations

import errno as E
import json
import re
from functools import lru_cache

from ..profile import DATA_DIR

FS_REQUIRES_DEV = 1
CHRDEV_MAJOR_MAX = BLKDEV_MAJOR_MAX = 512
FILES = ("/proc/filesystems", "/proc/devices", "/proc/misc", "/proc/ioports", "/proc/iomem")
_RELEASE = re.compile(r"^(\d+\.\d+)\.[^-]+(?:-\d+)?-(.+)$")


def _series(release: str) -> tuple[str, str] | None:
    """(version, flavour) of a Debian release: 6.1.0-57-cloud-amd64 → ('6.1', 'cloud-amd64')."""
    m = _RELEASE.match(release)
    return (m.group(1), m.group(2)) if m else None


@lru_cache(maxsize=None)
def boot_views(release: str) -> dict:
    """The boot record for ``release`` (or its series'); OSError(ENOENT) if there is none."""
    exact = DATA_DIR / f"boot-views-{release}.json"
    if not exact.is_file():
        want = _series(release)
        near = sorted(p for p in DATA_DIR.glob("boot-views-*.json")
                      if want and _series(p.name[len("boot-views-"):-len(".json")]) == want)
        if not near:
            raise OSError(E.ENOENT, f"the sandbox has no record of what {release} registers "
                                    "while booting (python3 -m kmodlab.oracle.views record "
                                    "makes one)")
        exact = near[-1]
    return json.loads(exact.read_text())


def _state(m, *keys):
    o = m.emu_state
    for k in keys:
        o = o.get(k, {}) if isinstance(o, dict) else {}
    return o


# --- /proc/filesystems ---------------------------------------------------------------------------
def proc_filesystems(m) -> str:
    off = ((m.profile.structs or {}).get("file_system_type") or {}).get("fs_flags")
    lines = list(boot_views(m.profile.release)["/proc/filesystems"])
    for f in m.emu_state.get("filesystems", []):
        if off is None:
            raise OSError(E.ENOENT, "/proc/filesystems: this profile does not record struct "
                                    "file_system_type's fs_flags (re-import it)")
        flags = m.mm.read_u(f["fs"] + off, 4)
        lines.append(f"{'' if flags & FS_REQUIRES_DEV else 'nodev'}\t{f['name']}\n")
    return "".join(lines)


# --- /proc/devices ---------------------------------------------------------------------------------
def _boot_devices(text: str) -> tuple[list, list]:
    chars, blocks, part = [], [], None
    for ln in text.splitlines():
        if ln == "Character devices:":
            part = chars
        elif ln == "Block devices:":
            part = blocks
        elif ln.strip() and part is not None:
            major, name = ln.split(None, 1)
            part.append((int(major), name))
    return chars, blocks


def _by_major(entries: list, limit: int) -> str:
    return "".join(f"{major:3d} {name}\n" for major, name in
                   sorted(entries, key=lambda e: e[0]) if major < limit)


def proc_devices(m) -> str:
    chars, blocks = _boot_devices(boot_views(m.profile.release)["/proc/devices"])
    chars += [(r["major"], r["name"]) for r in sorted(m.emu_state.get("chrdev", []),
                                                      key=lambda r: (r["major"], r["minor"]))]
    blocks += [(b["major"], b["name"]) for b in m.emu_state.get("blkdev", [])]
    return ("Character devices:\n" + _by_major(chars, CHRDEV_MAJOR_MAX) +
            "\nBlock devices:\n" + _by_major(blocks, BLKDEV_MAJOR_MAX))


# --- /proc/misc ---------------------------------------------------------------------------------
def proc_misc(m) -> str:
    mine = [f"{d['minor']:3d} {name}\n" for name, d in _state(m, "driver", "misc").items()]
    return "".join(reversed(mine)) + "".join(boot_views(m.profile.release)["/proc/misc"])


# --- /proc/ioports, /proc/iomem (kernel/resource.c) -------------------------------------------
# the roots as kernel/resource.c defines them: name, start, end, flags (IORESOURCE_IO / _MEM)
RESOURCE_ROOTS = {"ioport": ("ioport_resource", "PCI IO", 0, 0xFFFF, 0x100),
                  "iomem": ("iomem_resource", "PCI mem", 0, (1 << 64) - 1, 0x200)}


def _resource_node(raw: list) -> dict:
    start, end, name, flags, desc, kids, addr = raw
    return {"s": start, "e": end, "n": name, "f": flags, "d": desc, "a": addr,
            "c": [_resource_node(k) for k in kids]}


def boot_resources(release: str, export_addr) -> dict:
    """Both trees as the booted kernel left them (emu/models/resource.py's node form);
    LookupError if the release's boot record has none."""
    rec = boot_views(release).get("resources")
    if rec is None:
        raise LookupError(f"no boot resource tree recorded for {release}")
    return {key: {"s": start, "e": end, "n": name, "f": flags, "d": 0,
                  "a": export_addr(export), "c": [_resource_node(k) for k in rec[key]]}
            for key, (export, name, start, end, flags) in RESOURCE_ROOTS.items()}


def proc_resources(m, key: str) -> str:
    """/proc/ioports or /proc/iomem as root reads them (kernel/resource.c r_show): every node
    under the root depth-first, two spaces a level (the indent stops at MAX_IORES_LEVEL, 5),
    "%0*llx-%0*llx : %s", width 4 for a root ending below 0x10000 (ioport), else 8."""
    trees = m.emu_state.get("resources")
    if trees is None:
        try:
            trees = boot_resources(m.profile.release,
                                   lambda n: getattr(m.profile.exports.get(n), "addr", 0))
        except LookupError as e:
            raise OSError(E.ENOENT, f"/proc/{'ioports' if key == 'ioport' else 'iomem'}: "
                                    f"{e}") from None
    tree = trees[key]
    width = 4 if tree["e"] < 0x10000 else 8
    out: list[str] = []

    def walk(nodes, depth):
        for n in nodes:
            out.append(f"{'  ' * min(depth, 5)}{n['s']:0{width}x}-{n['e']:0{width}x} : "
                       f"{n['n']}\n")
            walk(n["c"], depth + 1)
    walk(tree["c"], 0)
    return "".join(out)


# --- /sys/bus -----------------------------------------------------------------------------------
def buses(m) -> list[str]:
    return sorted(set(boot_views(m.profile.release)["buses"]) | set(_state(m, "driver", "bus")))


def bus_drivers(m, bus: str) -> list[str]:
    boot = boot_views(m.profile.release)["buses"]
    if bus not in boot and bus not in _state(m, "driver", "bus"):
        raise OSError(E.ENOENT, f"/sys/bus/{bus}")
    mine = [k.split("/", 1)[1] for k in _state(m, "driver", "bus_driver") if k.startswith(bus + "/")]
    return sorted(set(boot.get(bus, [])) | set(mine))


# --- the paths ------------------------------------------------------------------------------------
def read(m, path: str) -> bytes | None:
    """The text of one of these views, or None if ``path`` is not one of them."""
    if path == "/proc/filesystems":
        return proc_filesystems(m).encode()
    if path == "/proc/devices":
        return proc_devices(m).encode()
    if path == "/proc/misc":
        return proc_misc(m).encode()
    if path in ("/proc/ioports", "/proc/iomem"):
        return proc_resources(m, path[6:].rstrip("s")).encode()
    parts = path.split("/")
    if path == "/sys/bus" or (parts[1:3] == ["sys", "bus"] and len(parts) <= 5):
        listdir(m, path)                          # ENOENT for what is not there
        raise OSError(E.EISDIR, path)
    return None


def listdir(m, path: str) -> list[str] | None:
    parts = path.split("/")
    if path == "/sys/bus":
        return buses(m)
    if parts[1:3] != ["sys", "bus"]:
        return None
    bus = parts[3]
    if len(parts) == 4:
        bus_drivers(m, bus)
        return ["drivers"]
    if len(parts) == 5 and parts[4] == "drivers":
        return bus_drivers(m, bus)
    if len(parts) == 6 and parts[4] == "drivers" and parts[5] in bus_drivers(m, bus):
        return []
    raise OSError(E.ENOENT, path)


# --- what an exit left behind --------------------------------------------------------------------
def _refers(o, lo: int, hi: int) -> bool:
    if isinstance(o, bool):
        return False
    if isinstance(o, int):
        return lo <= o < hi
    if isinstance(o, dict):
        return any(_refers(v, lo, hi) for v in o.values())
    if isinstance(o, (list, tuple)):
        return any(_refers(v, lo, hi) for v in o)
    return False


def _registry(o) -> bool:
    """A dict or list of records (as opposed to one record, which holds plain values)."""
    vals = o.values() if isinstance(o, dict) else o
    return bool(vals) and all(isinstance(v, (dict, list)) for v in vals)


def left_registered(state: dict, regions: list[tuple[int, int]]) -> list[str]:
    """The registrations in ``state`` that still point into module memory ``regions`` ([lo, hi)
    pairs) — what an exit failed to undo: the kernel keeps the pointers and oopses on their next
    use.  Named by kind and name: ``filesystems minix``, ``driver/misc uinput``."""
    out: list[str] = []

    def walk(path: str, o) -> None:
        items = o.items() if isinstance(o, dict) else ((None, v) for v in o)
        for key, v in items:
            if not any(_refers(v, lo, hi) for lo, hi in regions):
                continue
            if _registry(v):
                walk(str(key) if not path else path if key is None else f"{path}/{key}", v)
                continue
            who = (v.get("name") if isinstance(v, dict) else None) or key
            out.append(f"{path} {who}" if path and who is not None else path or str(key))
    walk("", state)
    return out
