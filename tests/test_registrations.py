"""What /proc/filesystems, /proc/devices, /proc/misc and /sys/bus/*/drivers show after modules
register things, and after rmmod's exits undo them (kernel/registrations.py), against Debian's
real kernels.

A plan loads modules whose inits register a filesystem, char and block majors, misc minors and
drivers on a bus (and a bus), reads the views after every step, then unloads them all.  The real
kernel's answers are ``tests/data/registrations_<release>.json``, recorded under QEMU::

    python3 tests/test_registrations.py record [RELEASE]      # one boot per release, ~30 s

and replayed here on a fresh sandbox machine of the same release, without QEMU.  The lines the
oracle's own 9p stack added to the real views are left out of the comparison (boot-views).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

DATA = Path(__file__).parent / "data"
R61, R612 = "6.1.0-56-amd64", "6.12.118+deb13-amd64"
# (module, its file under the tree's kernel/): deps first, in load order
PLAN = [("minix", "fs/minix/minix.ko"), ("fat", "fs/fat/fat.ko"), ("vfat", "fs/fat/vfat.ko"),
        ("msdos", "fs/fat/msdos.ko"), ("uinput", "drivers/input/misc/uinput.ko"),
        ("tun", "drivers/net/tun.ko"), ("parport", "drivers/parport/parport.ko"),
        ("ppdev", "drivers/char/ppdev.ko"), ("lp", "drivers/char/lp.ko"),
        ("dm_mod", "drivers/md/dm-mod.ko")]


def steps() -> list[dict]:
    load = [{"op": "load", "name": n, "file": f} for n, f in PLAN]
    unload = [{"op": "unload", "name": n} for n, _ in reversed(PLAN)]
    return load + unload


if __name__ == "__main__" and sys.argv[1:2] == ["guest"]:
    # in the QEMU guest: python3 -S, the standard library and kmodlab.live / oracle.views
    from kmodlab.live import LiveKernel
    from kmodlab.oracle.views import snapshot
    files, out = Path(sys.argv[2]), Path(sys.argv[3])
    k, rec = LiveKernel(), {"boot": snapshot(), "steps": []}
    for s in steps():
        r = (k.init_module((files / s["name"]).read_bytes()) if s["op"] == "load"
             else k.delete_module(s["name"]))
        rec["steps"].append({"step": s, "errno": r.errno, "views": snapshot()})
    out.write_text(json.dumps(rec))
    sys.exit(0)

import pytest  # noqa: E402

from kmodlab.oracle.views import VIEWS  # noqa: E402


def data_file(release: str) -> Path:
    return DATA / f"registrations_{release.removesuffix('-amd64')}.json"


def read_ko(moddir: Path, rel: str) -> bytes:
    """A module's ELF image, decompressed in user space as kmod's insmod does."""
    from kmodlab.kernel.module.decompress import module_decompress
    for ext, fmt in (("", None), (".xz", "xz"), (".zst", "zstd")):
        p = Path(moddir) / "kernel" / (rel + ext)
        if p.exists():
            return module_decompress(fmt, p.read_bytes()) if fmt else p.read_bytes()
    raise FileNotFoundError(rel)


def record(release: str) -> dict:
    from kmodlab.oracle import qemu
    prep = qemu.prepare(release)
    files = {n: read_ko(prep.moddir, f) for n, f in PLAN}
    files["test_registrations.py"] = Path(__file__).read_bytes()
    script = '"$PYTHON" -S "$OUT/test_registrations.py" guest "$OUT" "$OUT/rec.json"\n'
    r = qemu.run_in_guest(script, timeout=300, release=release, files=files).check()
    rec = r.json("rec.json")
    rec["about"] = ("Debian's real kernel's /proc/filesystems, /proc/devices, /proc/misc and "
                    "/sys/bus after each step of tests/test_registrations.py's plan, under QEMU. "
                    "Regenerate: python3 tests/test_registrations.py record " + release)
    rec["release"] = release
    return rec


if __name__ == "__main__" and sys.argv[1:2] == ["record"]:
    for rel in sys.argv[2:] or [R61, R612]:
        data_file(rel).write_text(json.dumps(record(rel), indent=1) + "\n")
    sys.exit(0)


def real_views(snap: dict, left_out: set[str]) -> dict:
    """A guest snapshot without what the oracle's 9p stack registered."""
    out = {p: snap[p] for p in VIEWS}
    out["/proc/filesystems"] = "".join(
        ln + "\n" for ln in snap["/proc/filesystems"].splitlines()
        if ln.split("\t")[-1] not in left_out)
    out["buses"] = {b: sorted(n for n, owner in d.items() if owner not in left_out)
                    for b, d in snap["buses"].items() if b not in left_out}
    return out


def sandbox_views(k) -> dict:
    out = {p: k.read(p).decode() for p in VIEWS}
    out["buses"] = {b: sorted(k.listdir(f"/sys/bus/{b}/drivers")) for b in k.listdir("/sys/bus")}
    return out


def tree(release: str) -> Path:
    """The release's Debian module tree, fetched once into the cache by the project's fetcher."""
    from kmodlab.profile.debian import extract_module_tree
    try:
        return extract_module_tree(release, suite=None if release == R61 else "trixie")
    except Exception as e:                      # offline, or the registry dropped the release
        pytest.skip(f"no Debian {release} module tree: {e}")


@pytest.mark.parametrize("release", [R61, R612])
def test_views_after_each_step_are_the_real_kernels(release):
    """Each load's registrations appear where and as the real kernel shows them (nodev or not,
    majors in order, misc newest first, drivers under their bus); each unload's exit takes them
    away again, and leaves nothing registered."""
    from kmodlab.machine import Machine
    from kmodlab.profile import load_profile
    from kmodlab.sandbox import SandboxKernel
    rec = json.loads(data_file(release).read_text())
    prof = load_profile(release)
    moddir = tree(release)
    left_out = set(rec["boot"]["modules"])
    k = SandboxKernel(machine=Machine.boot(prof.name, seed=1, profile=prof))
    assert sandbox_views(k) == real_views(rec["boot"], left_out)
    for s in rec["steps"]:
        step = s["step"]
        if step["op"] == "load":
            r = k.init_module(read_ko(moddir, dict(PLAN)[step["name"]]), "")
        else:
            r = k.delete_module(step["name"], os.O_NONBLOCK)
            assert not r.details.get("left_registered"), r.details["left_registered"]
        assert r.errno == s["errno"], (step, r.log)
        assert sandbox_views(k) == real_views(s["views"], left_out), step
    assert sandbox_views(k) == real_views(rec["boot"], left_out)


def test_a_release_without_a_boot_record_borrows_its_series_or_says_why():
    from kmodlab.kernel.registrations import _series, boot_views
    assert _series("6.1.0-57-cloud-amd64") == ("6.1", "cloud-amd64")
    assert _series("6.12.118+deb13-amd64") == ("6.12", "amd64")
    assert boot_views("6.1.0-57-amd64")["release"] == R61
    with pytest.raises(OSError, match="no record of what 6.1.0-57-cloud-amd64 registers"):
        boot_views("6.1.0-57-cloud-amd64")


def test_what_an_exit_left_behind_is_named():
    from kmodlab.kernel.registrations import left_registered
    lo, hi = 0xffffffffc0000000, 0xffffffffc0010000
    state = {"filesystems": [{"fs": lo + 0x40, "name": "minix"}, {"fs": 0x1000, "name": "ext9"}],
             "driver": {"misc": {"uinput": {"misc": lo + 0x80, "minor": 223, "dev": 0x2000}},
                        "bus_driver": {"pci/e1000": {"drv": 0x3000, "p": 0x3100}}},
             "chrdev": [{"major": 99, "minor": 0, "count": 1, "name": "ppdev", "fops": hi}]}
    assert left_registered(state, [(lo, hi)]) == ["filesystems minix", "driver/misc uinput"]
    assert left_registered(state, [(0x3000, 0x3001)]) == ["driver/bus_driver pci/e1000"]
