"""The load path's fast paths against their general ones (issue 12, speed): each shortcut must
write the same bytes, log the same lines and fail the same way.

- x86-64 relocations: the entry-by-entry loop for small tables (``_apply_small``) and the numpy
  batch for large ones, on real modules and on every crafted failure of test_relocations.py;
- simplify_symbols' common case decided inline against resolve_symbol's whole path.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import test_relocations as tr
from kmodlab.arch.x86_64 import module as x86
from kmodlab.kernel.module import main

TREE = Path(os.environ.get("KMODLAB_MODULES_DIR", "/nonexistent"))
SAMPLE = ["kernel/crypto/md4.ko", "kernel/fs/fat/fat.ko", "kernel/drivers/block/loop.ko",
          "kernel/net/ipv4/tcp_bbr.ko", "kernel/drivers/net/dummy.ko",
          "kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko", "kernel/arch/x86/kvm/kvm.ko",
          "kernel/net/netfilter/nf_conntrack.ko", "kernel/drivers/gpu/drm/drm.ko"]


def _load_with(machine_profile, img, small: int, monkeypatch, fast_symbols: bool = True):
    from kmodlab.machine import Machine
    m = Machine.boot(machine_profile.name, seed=0)
    m.profile = machine_profile
    monkeypatch.setattr(x86, "SMALL", small)
    monkeypatch.setattr(main, "FAST_SYMBOLS", fast_symbols)
    r = tr.load(m, img)
    mem = {n: bytes(x.data) for n, x in m.mm.regions.items() if ":" in n}
    return r, mem, [x.text for x in m.log]


@pytest.mark.parametrize("rel", SAMPLE)
def test_small_loop_equals_batch(profile, monkeypatch, rel):
    """Same bytes, same counts, same log for both relocation paths (and the small path is the
    one taken for tables under SMALL entries)."""
    path = TREE / rel
    if not path.exists():
        pytest.skip("no Debian module tree")
    img = path.read_bytes()
    r1, mem1, log1 = _load_with(profile, img, 10 ** 9, monkeypatch)
    r2, mem2, log2 = _load_with(profile, img, 0, monkeypatch)
    assert r1.ret == r2.ret == 0
    assert mem1 == mem2 and log1 == log2
    c1 = dict(r1.steps)["apply_relocations"]
    c2 = dict(r2.steps)["apply_relocations"]
    assert c1 == c2 and c1["counts"]


@pytest.mark.parametrize("small", [0, 10 ** 9], ids=["batch", "loop"])
@pytest.mark.parametrize("case", ["test_unknown_type", "test_nonzero_target_refused",
                                  "test_32s_overflow_after_write",
                                  "test_pc32_to_percpu_symbol_wraps"])
def test_crafted_failures_both_paths(machine, monkeypatch, small, case):
    """test_relocations.py's crafted cases give the kernel's answer on either path."""
    monkeypatch.setattr(x86, "SMALL", small)
    getattr(tr, case)(machine)


def test_small_path_taken(machine, monkeypatch):
    seen = []
    real = x86._apply_small
    monkeypatch.setattr(x86, "_apply_small", lambda *a: seen.append(1) or real(*a))
    img = (tr.EX / "hello.ko").read_bytes()
    assert tr.load(machine, img).ret == 0
    assert seen


@pytest.mark.parametrize("rel", SAMPLE[:5])
def test_symbols_fast_path_equals_resolve_symbol(profile, monkeypatch, rel):
    path = TREE / rel
    if not path.exists():
        pytest.skip("no Debian module tree")
    img = path.read_bytes()
    r1, mem1, log1 = _load_with(profile, img, x86.SMALL, monkeypatch)
    r2, mem2, log2 = _load_with(profile, img, x86.SMALL, monkeypatch, fast_symbols=False)
    assert r1.ret == r2.ret == 0
    assert mem1 == mem2 and log1 == log2
    assert dict(r1.steps)["simplify_symbols"] == dict(r2.steps)["simplify_symbols"]


def test_symbols_fast_path_falls_back(profile, monkeypatch):
    """A __versions CRC that disagrees, and a module without a GPL licence asking for a GPL-only
    symbol: the inline case does not apply, resolve_symbol logs and refuses as before."""
    path = TREE / "kernel/drivers/block/loop.ko"
    if not path.exists():
        pytest.skip("no Debian module tree")
    from kmodlab import elf
    img = bytearray(path.read_bytes())
    h = elf.parse_header(img)
    del img[h.shoff + h.shnum * 64:]              # the signature would no longer match
    secs = elf.parse_sections(img, h.shoff, h.shnum)
    elf.name_sections(img, secs, h.shstrndx)
    vers = next(s for s in secs if s.name == "__versions")
    at = vers.offset + 64 * 3                      # the fourth entry's CRC
    name = bytes(img[at + 8:at + 64]).split(b"\0")[0].decode()
    img[at:at + 8] = (int.from_bytes(img[at:at + 8], "little") ^ 1).to_bytes(8, "little")
    lic = next(s for s in secs if s.name == ".modinfo")
    mi = bytes(img[lic.offset:lic.offset + lic.size])
    k = mi.index(b"license=GPL")
    img[lic.offset + k:lic.offset + k + 11] = b"license=Xyz"
    out = []
    for fast in (True, False):
        r, mem, log = _load_with(profile, bytes(img), x86.SMALL, monkeypatch, fast_symbols=fast)
        out.append((r.ret, r.reason, log))
    assert out[0] == out[1]
    assert out[0][0] < 0
    assert any(f"disagrees about version of symbol {name}" in ln for ln in out[0][2])
    assert any("Unknown symbol" in ln for ln in out[0][2])      # GPL-only ones refused
