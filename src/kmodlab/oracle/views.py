"""What Debian's real kernel shows of its registries, read under QEMU: /proc/filesystems,
/proc/devices, /proc/misc, /sys/bus and every bus's drivers.

Two uses:

- **The booted kernel's own entries.**  The sandbox's views (kernel/registrations.py) list what
  the kernel registered while booting, then what modules' inits registered.  The first part is
  a fact of one kernel build that no package file holds, so it is read off the real kernel right
  after boot and kept as ``profile/data/boot-views-<release>.json``::

      python3 -m kmodlab.oracle.views record [--release REL]     # boots REL twice (~50 s)
      python3 -m kmodlab.oracle.views cpu [--release REL]        # boot_cpu_data, totalram

  The oracle's own initramfs has loaded the 9p stack by then (virtio_ring … 9p); what those
  modules registered is left out: a driver whose ``/sys/bus/*/drivers/<d>/module`` link names a
  loaded module, a filesystem or bus named as a loaded module (9p's "9p", virtio's "virtio").
- **Comparisons** (tests/test_registrations.py): :func:`snapshot` runs in the guest after each
  step of a plan and the sandbox answers the same reads.

Guest side uses the standard library only (it runs as ``python3 -S``).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

VIEWS = ("/proc/filesystems", "/proc/devices", "/proc/misc")


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _module_link(path: str) -> str | None:
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


def snapshot() -> dict:
    """The views as the running kernel shows them: file texts, the buses, and each bus's
    drivers with the module each belongs to (None: no module link, built in)."""
    out: dict = {p: _read(p) for p in VIEWS}
    buses = {}
    for bus in sorted(os.listdir("/sys/bus")):
        d = f"/sys/bus/{bus}/drivers"
        names = sorted(os.listdir(d)) if os.path.isdir(d) else []
        buses[bus] = {n: _module_link(f"{d}/{n}/module") for n in names}
    out["buses"] = buses
    out["modules"] = [ln.split(" ", 1)[0] for ln in _read("/proc/modules").splitlines()]
    out["devices"] = bus_devices()
    out["cpuhp_states"] = _read("/sys/devices/system/cpu/hotplug/states").splitlines()
    return out


DEVICE_BUSES = ("platform", "acpi", "pnp", "serio", "usb", "i2c", "spi", "pci", "virtio",
                "hid", "mdio_bus", "gameport")


def bus_devices() -> dict:
    """Each bus's devices as the running kernel lists them: name → modalias (None if the
    device has none), ``id`` (a PNP device's ids, one a line), the driver bound to it (None)
    and its uevent lines (guest side)."""
    out: dict = {}
    for bus in DEVICE_BUSES:
        d = f"/sys/bus/{bus}/devices"
        if not os.path.isdir(d):
            continue
        devs = {}
        for n in sorted(os.listdir(d)):
            def opt(name):
                try:
                    return _read(f"{d}/{n}/{name}").strip()
                except OSError:
                    return None
            drv = os.path.join(d, n, "driver")
            devs[n] = {"modalias": opt("modalias"), "id": opt("id"),     # pnp: its ids
                       "driver": os.path.basename(os.readlink(drv)) if os.path.islink(drv)
                       else None,
                       "uevent": (opt("uevent") or "").splitlines()}
        out[bus] = devs
    return out


def boot_entries(snap: dict) -> dict:
    """A snapshot taken after boot without what the loaded modules registered (see above)."""
    mods = set(snap["modules"])
    fs = [ln for ln in snap["/proc/filesystems"].splitlines()
          if ln.split("\t")[-1] not in mods]
    buses = {b: sorted(n for n, owner in drivers.items() if owner not in mods)
             for b, drivers in snap["buses"].items() if b not in mods}
    return {"/proc/filesystems": [ln + "\n" for ln in fs],
            "devices": snap.get("devices", {}),
            "cpuhp_states": snap.get("cpuhp_states", []),
            "/proc/devices": snap["/proc/devices"],
            "/proc/misc": snap["/proc/misc"].splitlines(keepends=True),
            "buses": buses,
            "left_out": sorted(mods)}


def record(release: str | None = None) -> Path:
    from ..profile import DATA_DIR
    from . import qemu
    prep = qemu.prepare(release)
    script = '"$PYTHON" -S -m kmodlab.oracle.views guest "$OUT/snap.json"\n'
    r = qemu.run_in_guest(script, timeout=300, release=release).check()
    snap = r.json("snap.json")
    data = {"about": "What this kernel registered while booting, read under QEMU right after "
                     "boot by kmodlab.oracle.views (regenerate: python3 -m kmodlab.oracle.views "
                     f"record --release {prep.release}); the oracle's 9p stack left out, but "
                     "for the resource trees (ioport, iomem: [start, end, name, flags, desc, "
                     "children, address]) and the buses' devices (devices: modalias, bound "
                     "driver, uevent), which keep the virtio ones.",
            "release": prep.release, **boot_entries(snap)}
    res = boot_resources(release)
    data["resources"] = {k: res[k] for k in ("ioport", "iomem")}
    out = DATA_DIR / f"boot-views-{prep.release}.json"
    out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return out


RESOURCE_FIELDS = ("start", "end", "name", "flags", "desc", "sibling", "child")


def resource_tree(kcore, root: int, off: dict, depth: int = 0) -> list:
    """The children of the struct resource at ``root``, walked through /proc/kcore (guest
    side): ``[start, end, name, flags, desc, children, address]`` each, in the kernel's
    sibling order."""
    import struct as st
    out = []
    node = st.unpack("<Q", kcore.read(root + off["child"], 8))[0]
    while node and len(out) < 10000:
        def u64(m):
            return st.unpack("<Q", kcore.read(node + off[m], 8))[0]
        name_p = u64("name")
        name = ""
        if name_p:
            raw = b""
            for i in range(8):                           # names are short; read 32 at a time
                try:
                    chunk = kcore.read(name_p + 32 * i, 32)
                except OSError:
                    break
                raw += chunk
                if b"\0" in chunk:
                    break
            name = raw.split(b"\0", 1)[0].decode("latin-1")
        kids = resource_tree(kcore, node, off, depth + 1) if depth < 16 else []
        out.append([u64("start"), u64("end"), name, u64("flags"), u64("desc"), kids, node])
        node = u64("sibling")
    return out


def boot_resources(release: str | None = None) -> dict:
    """ioport_resource's and iomem_resource's trees right after boot (with each node's flags:
    IORESOURCE_BUSY tells a request_region from a bridge window), read through /proc/kcore of
    a guest booted ``nokaslr``."""
    from ..profile import find_profile, read_profile_file
    from . import qemu
    prep = qemu.prepare(release)
    prof = read_profile_file(find_profile(prep.release))
    off = {m: prof.structs["resource"][m] for m in RESOURCE_FIELDS}
    roots = {k: prof.exports[f"{k}_resource"].addr for k in ("ioport", "iomem")}
    args = json.dumps({"off": off, "roots": roots})
    script = ('"$PYTHON" -S -m kmodlab.oracle.views resources "$OUT/res.json" '
              f"'{args}'\n")
    r = qemu.run_in_guest(script, timeout=300, release=release, append="nokaslr").check()
    got = r.json("res.json")
    return {"release": prep.release, **got}


def boot_cpu(release: str | None = None) -> tuple[bytes, int]:
    """The booted kernel's ``boot_cpu_data`` (sizeof(struct cpuinfo_x86) bytes) and
    ``_totalram_pages``, read through /proc/kcore of a guest booted ``nokaslr`` (the values
    emu/models/arch.py holds per release)."""
    from ..profile import find_profile, read_profile_file
    from . import qemu
    prep = qemu.prepare(release)
    prof = read_profile_file(find_profile(prep.release))
    size = prof.structs["cpuinfo_x86"]["sizeof"]
    cpu, ram = prof.exports["boot_cpu_data"].addr, prof.exports["_totalram_pages"].addr
    script = ('"$PYTHON" -S -c "from kmodlab.oracle.mass import Kcore; k = Kcore(); '
              f"open('cpu.bin', 'wb').write(k.read({cpu}, {size})); "
              f"open('ram.bin', 'wb').write(k.read({ram}, 8))\"\n")
    r = qemu.run_in_guest(script, timeout=300, release=release, append="nokaslr").check()
    return r.files["cpu.bin"], int.from_bytes(r.files["ram.bin"], "little")


if __name__ == "__main__":
    if sys.argv[1:2] == ["guest"]:
        Path(sys.argv[2]).write_text(json.dumps(snapshot()))
        sys.exit(0)
    if sys.argv[1:2] == ["record"]:
        rel = sys.argv[sys.argv.index("--release") + 1] if "--release" in sys.argv else None
        print(record(rel))
        sys.exit(0)
    if sys.argv[1:2] == ["resources"]:                    # guest side
        from kmodlab.oracle.mass import Kcore
        a = json.loads(sys.argv[3])
        k = Kcore()
        Path(sys.argv[2]).write_text(json.dumps(
            {"modules": [ln.split(" ", 1)[0] for ln in _read("/proc/modules").splitlines()],
             **{name: resource_tree(k, root, a["off"]) for name, root in a["roots"].items()}}))
        sys.exit(0)
    if sys.argv[1:2] == ["cpu"]:
        rel = sys.argv[sys.argv.index("--release") + 1] if "--release" in sys.argv else None
        raw, pages = boot_cpu(rel)
        print(f"boot_cpu_data ({len(raw)} bytes): {raw.hex()}\n_totalram_pages: {pages}")
        sys.exit(0)
    print(__doc__)
    sys.exit(2)
