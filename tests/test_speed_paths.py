"""The load path's fast paths against their general ones (issue 12, speed): each shortcut must
write the same bytes, log the same lines and fail the same way.

- x86-64 relocations: the entry-by-entry loop for small tables (``_apply_small``) and the numpy
  batch for large ones, on real modules and on every crafted failure of test_relocations.py;
- simplify_symbols' common case decided inline against resolve_symbol's whole path;
- the PKCS#7 decoder's memo of the last message shape against a fresh decoding;
- modprobe's alias lookup by literal prefix against fnmatch over every modules.alias line.
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


def _blob(path: Path) -> bytes:
    from kmodlab.lib.signature import split_signature
    img = path.read_bytes()
    n = split_signature(img)[0]
    sig_len = int.from_bytes(img[len(img) - 28 - 4:len(img) - 28], "big")
    return img[n:n + sig_len]


def _fields(p7) -> dict:
    return {k: v for k, v in vars(p7).items() if k != "printk"}


def test_pkcs7_shape_memo_decodes_as_a_fresh_parse(monkeypatch):
    """Two modules signed alike: the second is served from the memo of the first's shape and
    decodes to exactly what a fresh parse gives (its own signature value); a message that
    differs before the signature (a damaged issuer) is parsed anew and fails as it should."""
    from kmodlab.kernel.module import signing
    paths = [TREE / "kernel/crypto/md4.ko", TREE / "kernel/drivers/block/loop.ko"]
    if not all(p.exists() for p in paths):
        pytest.skip("no Debian module tree")
    a, b = (_blob(p) for p in paths)
    monkeypatch.setattr(signing, "_LAST_SHAPE", {})
    signing.pkcs7_parse_message(a, lambda lv, t: None, 0)
    assert signing._LAST_SHAPE["p7"].d == a
    served = signing.pkcs7_parse_message(b, lambda lv, t: None, 0)
    fresh = signing.KernelPkcs7(b, lambda lv, t: None, 0)
    fresh.parse()
    assert _fields(served) == _fields(fresh) and served.signature != _fields(signing._LAST_SHAPE["p7"])["signature"]
    at = b.index(served.raw_issuer) + len(served.raw_issuer) - 3
    bad = b[:at] + bytes([b[at] ^ 0x20]) + b[at + 1:]
    damaged = signing.pkcs7_parse_message(bad, lambda lv, t: None, 0)
    assert damaged.raw_issuer != served.raw_issuer
    from kmodlab.profile import load_profile
    assert signing._find_key(damaged, load_profile().certificates) is None


def test_pkcs7_memo_keeps_no_message_that_logged(monkeypatch):
    """A message whose decoding logs (an unknown OID) is never the memo's shape: the next one
    like it logs again."""
    from kmodlab.kernel.module import signing
    path = TREE / "kernel/crypto/md4.ko"
    if not path.exists():
        pytest.skip("no Debian module tree")
    blob = bytearray(_blob(path))
    k = blob.index(bytes.fromhex("0609608648016503040201"))      # sha256's OID → an unknown one
    blob[k + 10] = 0x7F
    monkeypatch.setattr(signing, "_LAST_SHAPE", {})
    for _ in range(2):
        lines = []
        try:
            signing.pkcs7_parse_message(bytes(blob), lambda lv, t: lines.append(t), 0)
        except signing.Pkcs7Error:
            pass
        assert any("Unknown OID" in t for t in lines)
    assert "p7" not in signing._LAST_SHAPE


def test_alias_index_finds_what_a_scan_of_every_pattern_finds():
    """ModuleDir's alias lookup files patterns by their literal prefix: the same modules, in
    modules.alias order and each once, as fnmatch over every line."""
    import fnmatch
    from kmodlab.lib.modinfo import AliasIndex
    lines = [("pci:v00008086d*sv*sd*bc*sc*i*", "e1000e"), ("pci:v00008086d00001237*", "piix"),
             ("crypto-crc32c", "crc32c_generic"), ("crypto-crc32c", "crc32c_intel"),
             ("crypto-crc32c-*", "crc32c_generic"), ("*", "catchall"),
             ("fs-[ex]t4", "ext4"), ("char-major-10-?", "misc1"),
             ("crypto-crc32c", "crc32c_generic"),
             ("pci:v00008086d00001237*", "e1000e")]
    idx = AliasIndex(lines)

    def scan(key):
        out = []
        for p, m in lines:
            if m not in out and fnmatch.fnmatchcase(key, p):
                out.append(m)
        return out
    for key in ["crypto-crc32c", "crypto-crc32c-x", "fs-et4", "fs-xt4", "char-major-10-1",
                "char-major-10-12", "pci:v00008086d00001237sv1sd2bc3sc4i5", "", "zzz"]:
        assert idx.match(key) == scan(key), key
    assert idx.match("crypto-crc32c") == ["crc32c_generic", "crc32c_intel", "catchall"]
