"""depmod against kmod 30's own depmod: the text files byte for byte, -n, -v and -e/-E."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROOTFS = ROOT / "tests" / "rootfs" / "modprobe"
REL = "6.1.0-56-amd64"
FILES = ("modules.dep", "modules.alias", "modules.softdep", "modules.symbols", "modules.devname")
KMOD_DEPMOD = shutil.which("depmod") or ("/usr/sbin/depmod" if os.path.exists("/usr/sbin/depmod")
                                         else None)
needs_kmod = pytest.mark.skipif(KMOD_DEPMOD is None,
                                reason="kmod's depmod is not installed (apt-get install kmod)")


def run(*args):
    p = subprocess.run([sys.executable, "-m", "kmodlab", *map(str, args)], capture_output=True)
    return p.returncode, p.stdout, p.stderr


def link_tree(src: Path, dst: Path) -> None:
    """A copy of a module tree with hard links (depmod replaces files, never edits them)."""
    for top, _dirs, files in os.walk(src):
        rel = os.path.relpath(top, src)
        os.makedirs(dst / rel, exist_ok=True)
        for fn in files:
            if fn.startswith("modules.") and fn not in ("modules.order", "modules.builtin",
                                                        "modules.builtin.modinfo"):
                continue
            try:
                os.link(os.path.join(top, fn), dst / rel / fn)
            except OSError:
                shutil.copy2(os.path.join(top, fn), dst / rel / fn)


def test_rootfs_files_are_depmods(tmp_path):
    """The committed rootfs's index files are what kmodlab's depmod writes (kept in step)."""
    base = tmp_path / "b"
    link_tree(ROOTFS / "lib" / "modules" / REL, base / "lib" / "modules" / REL)
    rc, _, err = run("depmod", "-b", base, REL)
    assert rc == 0, err
    for f in FILES:
        assert (base / "lib/modules" / REL / f).read_bytes() == \
            (ROOTFS / "lib/modules" / REL / f).read_bytes(), f


@needs_kmod
def test_small_tree_matches_kmod(tmp_path):
    """kmod 30 depmod_output: modules.dep in modules.order order then unordered modules,
    dependencies sorted by the topological index; alias/softdep/symbols/devname formats."""
    for who in ("kmod", "us"):
        link_tree(ROOTFS / "lib/modules" / REL, tmp_path / who / "lib/modules" / REL)
    subprocess.run([KMOD_DEPMOD, "-b", tmp_path / "kmod", REL], check=True)
    assert run("depmod", "-b", tmp_path / "us", REL)[0] == 0
    for f in FILES:
        assert (tmp_path / "us/lib/modules" / REL / f).read_bytes() == \
            (tmp_path / "kmod/lib/modules" / REL / f).read_bytes(), f
    dep = (tmp_path / "us/lib/modules" / REL / "modules.dep").read_text()
    assert "kernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko\n" in dep
    assert "extra/kmodlab_consumer.ko: extra/kmodlab_provider.ko\n" in dep


@needs_kmod
@pytest.mark.corpus
def test_debian_tree_matches_kmod(tmp_path):
    """The whole Debian 6.1 tree (4,000 modules): the five text files, `depmod -n` (the files
    concatenated on stdout), `-v` ("X needs "sym": Y" once per new dependency) and
    `-e -E Module.symvers` warnings ("needs unknown symbol", "disagrees about version of
    symbol") are kmod 30's byte for byte."""
    tree = os.environ.get("KMODLAB_MODULES_DIR")
    if not tree or not os.path.isdir(tree):
        pytest.skip("no Debian module tree (KMODLAB_MODULES_DIR)")
    for who in ("kmod", "us"):
        link_tree(Path(tree), tmp_path / who / "lib/modules" / REL)
    k = subprocess.run([KMOD_DEPMOD, "-v", "-b", tmp_path / "kmod", REL], capture_output=True)
    rc, out, err = run("depmod", "-v", "-b", tmp_path / "us", REL)
    assert rc == 0, err
    assert out.replace(str(tmp_path / "us").encode(), b"X") == \
        k.stdout.replace(str(tmp_path / "kmod").encode(), b"X")
    for f in FILES:
        assert (tmp_path / "us/lib/modules" / REL / f).read_bytes() == \
            (tmp_path / "kmod/lib/modules" / REL / f).read_bytes(), f
    rc, out, _ = run("depmod", "-n", "-b", tmp_path / "us", REL)
    assert out == b"".join((tmp_path / "kmod/lib/modules" / REL / f).read_bytes() for f in FILES)
    symvers = Path(f"/usr/src/linux-headers-{REL}/Module.symvers")
    if not symvers.exists():
        return
    # a Module.symvers with symbols missing and one CRC changed: both kinds of warning
    lines = []
    for line in symvers.read_text().splitlines():
        parts = line.split("\t")
        if parts[1] in ("kmalloc_caches", "crc7_be", "printk"):
            continue
        if parts[1] == "memcpy":
            parts[0] = "0x12345678"
        lines.append("\t".join(parts))
    sv = tmp_path / "Module.symvers"
    sv.write_text("\n".join(lines) + "\n")
    k = subprocess.run([KMOD_DEPMOD, "-n", "-e", "-E", sv, "-b", tmp_path / "kmod", REL],
                       capture_output=True)
    rc, _, err = run("depmod", "-n", "-e", "-E", sv, "-b", tmp_path / "us", REL)
    assert b"needs unknown symbol kmalloc_caches" in err
    assert b"disagrees about version of symbol memcpy" in err
    assert err.replace(str(tmp_path / "us").encode(), b"X") == \
        k.stderr.replace(str(tmp_path / "kmod").encode(), b"X")


def test_errsyms_json_against_profile(tmp_path):
    """kmodlab's -e default (the sandbox profile's exports and CRCs) and --json: the example
    module proprietary.ko uses ktime_get without a CRC in its __versions (a GPL-only symbol
    modpost did not version for it), so the CRC check (depmod_load_module_dependencies)
    reports "disagrees about version of symbol ktime_get"; the real modules are clean."""
    base = tmp_path / "b"
    link_tree(ROOTFS / "lib/modules" / REL, base / "lib/modules" / REL)
    shutil.copy(ROOT / "examples" / "proprietary.ko", base / "lib/modules" / REL / "extra")
    import json
    rc, out, _ = run("depmod", "-n", "-e", "--json", "-b", base, REL)
    assert rc == 0
    problems = json.loads(out)
    assert problems and all(p["path"].endswith("proprietary.ko") for p in problems)
    assert [(p["problem"], p["symbol"]) for p in problems] == [("version", "ktime_get")]
    rc, _, err = run("depmod", "-n", "-e", "-b", base, REL)
    assert err.decode().startswith(f"depmod: WARNING: {base}/lib/modules/{REL}/extra/"
                                   f"proprietary.ko disagrees about version of symbol ktime_get\n")


def test_missing_tree_says_how(tmp_path):
    """No <basedir>/lib/modules/<version>: kmod's error, then how to get a tree."""
    rc, _, err = run("depmod", "-b", tmp_path, REL)
    assert rc == 1
    assert err.decode().startswith(
        f"depmod: ERROR: could not open directory {tmp_path}/lib/modules/{REL}: "
        f"No such file or directory\n")
    assert b"modprobe --tree" in err
