"""check --run-init: each loadable module's init run after its dependencies, classified."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EX = Path(__file__).resolve().parents[1] / "examples"
TREE = Path(os.path.expanduser("~/.cache/kmodlab/trees/6.1.0-56-amd64/lib/modules/6.1.0-56-amd64"))


def km(*args):
    return subprocess.run([sys.executable, "-m", "kmodlab", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


def rows(p):
    return {o["name"] or Path(o["file"]).name: o for o in map(json.loads, p.stdout.splitlines())}


def test_outcomes_of_the_examples():
    p = km("check", "--json", "--run-init", *sorted(EX.glob("*.ko")))
    r = rows(p)
    assert r["hello"]["init"] == "live" and r["hello"]["init_detail"] == ""
    assert any("Hello, world" in l or "hello" in l.lower() for l in r["hello"]["init_log"])
    assert r["failing_init"]["init"] == "init-error"
    assert r["failing_init"]["init_detail"] == "-ENODEV"
    # the consumer's init ran with its provider loaded first (found among the checked files)
    assert r["kmodlab_consumer"]["needs"] == ["kmodlab_provider"]
    assert r["kmodlab_consumer"]["init"] == "live"
    assert r["proprietary"]["init"] == "load-error"
    assert r["proprietary"]["init_detail"] == "ENOENT in simplify_symbols"


def test_text_report_ends_with_the_tally():
    p = km("check", "--run-init", EX / "hello.ko", EX / "failing_init.ko")
    assert p.returncode == 0
    assert "hello: ok (coresize" in p.stdout and "; init: live" in p.stdout
    assert "; init: init-error (-ENODEV)" in p.stdout
    assert "live + init-error: 2 of 2 modules with an init (100.0%)" in p.stderr


def test_without_run_init_no_init_field():
    p = km("check", "--json", EX / "hello.ko")
    assert "init" not in json.loads(p.stdout)


@pytest.mark.skipif(not (TREE / "kernel").is_dir(), reason="Debian 6.1.0-56's tree is not cached")
def test_real_tree_modules():
    crc = next(TREE.rglob("crc-itu-t.ko"))
    udf = next(TREE.rglob("udf.ko"))
    p = km("check", "--json", "--run-init", crc, udf)
    r = rows(p)
    assert r["crc_itu_t"]["init"] == "none"            # a table, no module_init
    # udf needs cdrom and crc_itu_t: cdrom is found in the tree the files lie in
    assert "cdrom" in r["udf"]["needs"] and "crc_itu_t" in r["udf"]["needs"]
    assert r["udf"]["init"] in ("live", "init-error", "unmodelled", "dependency")
    if r["udf"]["init"] == "dependency":
        assert "not in the tree" not in r["udf"]["init_detail"]


def test_request_module_loads_from_the_checked_tree():
    """libcrc32c's init asks crypto_alloc_shash for "crc32c": the kernel's request_module runs
    modprobe for "crypto-crc32c", which on a machine with this tree installed loads
    crc32c_intel/crc32c_generic (modules.alias after depmod) — as in the real kernel, where
    libcrc32c goes LIVE.  The tree is the profile's own, so check uses it as /lib/modules."""
    if not (TREE / "kernel").is_dir():
        pytest.skip("Debian 6.1.0-56's tree is not cached")
    p = km("check", "--json", "--run-init", next(TREE.rglob("libcrc32c.ko")))
    assert rows(p)["libcrc32c"]["init"] == "live", p.stdout


TREE_612 = Path(os.path.expanduser(
    "~/.cache/kmodlab/trees/6.12.118+deb13-amd64/lib/modules/6.12.118+deb13-amd64"))


@pytest.mark.skipif(not (TREE_612 / "kernel").is_dir(), reason="Debian 6.12.118's tree is not cached")
def test_compressed_modules_are_decompressed_as_kmod_does():
    from kmodlab.profile import list_profiles
    if "debian-6.12.118+deb13-amd64" not in list_profiles():
        pytest.skip("no 6.12.118 profile imported")
    crc = next(TREE_612.rglob("crc-itu-t.ko.xz"))
    p = km("check", "--json", "--run-init", "--kernel", "debian-6.12.118+deb13-amd64", crc)
    o = json.loads(p.stdout)
    assert o["ok"] and o["init"] == "none", o


@pytest.mark.skipif(not (TREE_612 / "kernel").is_dir(), reason="Debian 6.12.118's tree is not cached")
def test_dependencies_of_compressed_modules():
    """A .ko.xz's .modinfo is read after decompression: snd-korg1212's dependencies are
    snd_pcm's whole closure, deepest first (without it snd loaded before soundcore, ENOENT)."""
    from kmodlab.check_init import _tree_root, tree_paths
    from kmodlab.emu.sweep import module_deps
    f = next(TREE_612.rglob("snd-korg1212.ko.xz"))
    paths = tree_paths([str(f)])
    deps = module_deps(_tree_root(paths), paths, ["snd_korg1212"])["snd_korg1212"]
    assert deps.index("soundcore") < deps.index("snd") < deps.index("snd_pcm")
