"""``kmodlab modinfo`` against kmod 30's modinfo (tools/modinfo.c, libkmod-module.c,
libkmod-elf.c, libkmod-signature.c; kmod-formats §1.2).

(a) unit tests of the format, on real Debian modules and on small synthetic ELF files;
(b) a differential run against the real /usr/sbin/modinfo over the whole Debian tree (corpus);
(c) CLI tests through a subprocess for error texts and exit codes.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from kmodlab.lib import modinfo as lm
from kmodlab.lib.file import compress
from kmodlab.lib.signature import (SIG_MAGIC, kmod_signature_fields, parse_pkcs7,
                                   split_signature, SignatureError)
from kmodlab.tools import modinfo as tool

MODDIR = Path(os.environ.get("KMODLAB_MODULES_DIR", "/nonexistent"))
LOOP = MODDIR / "kernel/drivers/block/loop.ko"
REAL = next((p for p in ("/usr/sbin/modinfo", "/sbin/modinfo") if os.path.exists(p)), None)


def need_loop() -> Path:
    if not LOOP.is_file():
        pytest.skip(f"no Debian module tree at {MODDIR} (set KMODLAB_MODULES_DIR)")
    return LOOP


def need_real():
    if REAL is None:
        pytest.skip("kmod's modinfo is not installed (apt-get install kmod)")
    return REAL


def run(argv: list[str]) -> tuple[int, bytes, str]:
    """tools.modinfo.main in-process with stdout/stderr captured (bytes, text)."""
    out, err = io.BytesIO(), io.BytesIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = io.TextIOWrapper(out), io.TextIOWrapper(err)
    try:
        rc = tool.main(list(argv))
        sys.stdout.flush()
        sys.stderr.flush()
        o, e = out.getvalue(), err.getvalue()
    finally:
        sys.stdout.detach()
        sys.stderr.detach()
        sys.stdout, sys.stderr = saved
    return rc, o, e.decode()


def real(argv: list[str], cwd=None) -> tuple[int, bytes, str]:
    r = subprocess.run(["modinfo", *argv], executable=need_real(), capture_output=True, cwd=cwd)
    return r.returncode, r.stdout, r.stderr.decode()


# ---- synthetic modules ----------------------------------------------------------------------

def make_elf(sections: dict[str, bytes], cls64: bool = True, msb: bool = False) -> bytes:
    """A minimal relocatable ELF holding ``sections`` (PROGBITS) and a .shstrtab."""
    names = b"\0" + b"".join(n.encode() + b"\0" for n in sections) + b".shstrtab\0"
    bo = ">" if msb else "<"
    ehsize, shsize = (64, 64) if cls64 else (52, 40)
    body = bytearray(b"\0" * ehsize)
    offs = []
    for data in list(sections.values()) + [names]:
        offs.append((len(body), len(data)))
        body += data
    shoff = len(body)
    shdrs = [b"\0" * shsize]
    nameoff = 1
    for i, (name, (off, size)) in enumerate(zip(list(sections) + [".shstrtab"], offs)):
        typ = 3 if name == ".shstrtab" else 1
        if cls64:
            shdrs.append(struct.pack(bo + "IIQQQQIIQQ", nameoff, typ, 0, 0, off, size, 0, 0, 1, 0))
        else:
            shdrs.append(struct.pack(bo + "IIIIIIIIII", nameoff, typ, 0, 0, off, size, 0, 0, 1, 0))
        nameoff += len(name) + 1
    body += b"".join(shdrs)
    ident = b"\x7fELF" + bytes([2 if cls64 else 1, 2 if msb else 1, 1]) + b"\0" * 9
    n = len(sections) + 2
    if cls64:
        hdr = struct.pack(bo + "HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, n, n - 1)
    else:
        hdr = struct.pack(bo + "HHIIIIIHHHHHH", 1, 3, 1, 0, 0, shoff, 0, 52, 0, 0, 40, n, n - 1)
    body[:ehsize] = ident + hdr
    return bytes(body)


def modinfo_section(*strings: str | bytes) -> bytes:
    return b"".join((s.encode() if isinstance(s, str) else s) + b"\0" for s in strings)


def der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(b)]) + b + content


def der_oid(dotted: str) -> bytes:
    parts = [int(x) for x in dotted.split(".")]
    out = bytearray([parts[0] * 40 + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        out += bytes(reversed(chunk))
    return der(0x06, bytes(out))


def pkcs7(entries, serial: bytes, digest: str = "2.16.840.1.101.3.4.2.1",
          sig: bytes = b"\x01\x02\x03") -> bytes:
    """A detached PKCS#7 SignedData as sign-file writes it (issuer+serial, no attributes)."""
    name = der(0x30, b"".join(der(0x31, der(0x30, der_oid(o) + der(0x0C, v.encode())))
                              for o, v in entries))
    alg = der(0x30, der_oid(digest) + b"\x05\x00")
    si = der(0x30, der(0x02, b"\x01") + der(0x30, name + der(0x02, serial)) + alg
             + der(0x30, der_oid("1.2.840.113549.1.1.1") + b"\x05\x00") + der(0x04, sig))
    sd = der(0x30, der(0x02, b"\x01") + der(0x31, alg) + der(0x30, der_oid("1.2.840.113549.1.7.1"))
             + der(0x31, si))
    return der(0x30, der_oid("1.2.840.113549.1.7.2") + der(0xA0, sd))


def sign(elf: bytes, blob: bytes, id_type: int = 2, signer: bytes = b"", key_id: bytes = b"",
         algo: int = 0, hash_: int = 0) -> bytes:
    return (elf + signer + key_id + blob
            + struct.pack(">BBBBB3xI", algo, hash_, id_type, len(signer), len(key_id), len(blob))
            + SIG_MAGIC)


# ---- (a) format --------------------------------------------------------------------------------

def test_loop_full_output():
    """Order: filename, .modinfo in section order, sig_* fields, then parm lines in reverse order
    of first appearance; keys padded to 16 columns; signature hex 20 bytes per line."""
    p = need_loop()
    rc, out, err = run([str(p)])
    assert rc == 0 and err == ""
    lines = out.decode().split("\n")
    assert lines[0] == f"filename:       {p}"
    assert lines[1:4] == ["alias:          devname:loop-control", "alias:          char-major-10-237",
                          "alias:          block-major-7-*"]
    assert "depends:        " in lines and "sig_id:         PKCS#7" in lines
    assert "signer:         Build time autogenerated kernel key" in lines
    assert "sig_key:        66:F5:4E:15:66:A0:43:CC:30:30:42:0E:18:1C:F8:50:FB:9F:42:AC" in lines
    assert "sig_hashalgo:   sha256" in lines
    i = next(i for i, l in enumerate(lines) if l.startswith("signature:"))
    assert len(lines[i][16:].split(":")) == 21 and lines[i].endswith(":")   # 20 bytes + break
    assert lines[i + 1].startswith("\t\t")
    assert lines[-4:] == [
        "parm:           max_loop:Maximum number of loop devices",
        "parm:           max_part:Maximum number of partitions per loop device (int)",
        "parm:           hw_queue_depth:Queue depth for each hardware queue. Default: 128", ""]


def test_null_separator_keeps_filename_and_parm_padded():
    """kmod #434: under -0 only ordinary lines become key=value."""
    p = need_loop()
    _, out, _ = run(["-0", str(p)])
    recs = out.split(b"\0")
    assert recs[0] == b"filename:       " + str(p).encode()
    assert recs[1] == b"alias=devname:loop-control"
    assert recs[-2].startswith(b"parm:           hw_queue_depth:")


def test_last_field_option_wins_and_is_case_sensitive():
    p = need_loop()
    assert run(["-d", "-l", str(p)])[1] == b"GPL\n"
    assert run(["-F", "LICENSE", str(p)]) == (0, b"", "")
    assert run(["-F", "nope", str(p)]) == (0, b"", "")
    assert run(["-n", str(p)])[1] == str(p).encode() + b"\n"
    assert run([str(p), "-F", "name"])[1] == b"loop\n"          # options after operands


def test_params_merge_and_type_only_forms(tmp_path):
    """parm/parmtype merge per name; type-only is 'x:type' in full output, 'x: (type)' with -p;
    a value without ':' is reported and skipped."""
    elf = make_elf({".modinfo": modinfo_section(
        "parmtype=a:int", "parm=b:the b", "parm=a:the a", "parmtype=c:bool", "parm=bad",
        "license=GPL")})
    f = tmp_path / "m.ko"
    f.write_bytes(elf)
    rc, out, err = run([str(f)])
    assert rc == 0
    assert out.decode().split("\n")[1:] == [
        "license:        GPL", "parm:           c:bool", "parm:           b:the b",
        "parm:           a:the a (int)", ""]
    assert err == "modinfo: ERROR: Found invalid \"parm=bad\": missing ':'\n"
    assert run(["-p", str(f)])[1] == b"c: (bool)\nb:the b\na:the a (int)\n"


def test_modinfo_strings_quirks():
    """libkmod-elf.c: leading NUL padding skipped, empty strings dropped, unterminated tail kept,
    nothing at all when one byte is left after the padding; no '=' → empty value."""
    assert lm.split_strings(b"\0\0a=1\0\0b\0c=x") == [b"a=1", b"b", b"c=x"]
    assert lm.split_strings(b"\0\0x") == []
    assert lm.split_strings(b"") == []
    assert lm.split_key_value(b"flag") == (b"flag", b"")
    assert lm.split_key_value(b"a=b=c") == (b"a", b"b=c")


def test_elf_errors_carry_kmods_errno():
    good = make_elf({".modinfo": modinfo_section("license=GPL")})
    assert lm.elf_modinfo_strings(good) == [b"license=GPL"]
    assert lm.elf_modinfo_strings(make_elf({".modinfo": b"a=1\0"}, cls64=False, msb=True)) == [b"a=1"]
    cases = [(b"hello world, no elf", 8), (good[:16], 8), (good[:64], 22), (good[:200], 22),
             (good[:4] + b"\x03" + good[5:], 22)]
    for data, err in cases:
        with pytest.raises(lm.ModinfoError) as ei:
            lm.elf_modinfo_strings(data)
        assert ei.value.errno == err, data[:20]
    with pytest.raises(lm.ModinfoError) as ei:
        lm.elf_modinfo_strings(make_elf({".text": b"\x90"}))
    assert ei.value.errno == 2            # ENOENT in kmod 30 (ENODATA in later kmod)


def test_hex_colon():
    assert lm.hex_colon(b"") == b""
    assert lm.hex_colon(b"\xab\x01") == b"AB:01"
    assert lm.hex_colon(bytes(range(21))).split(b"\n\t\t") == [
        b":".join(b"%02X" % i for i in range(20)) + b":", b"14"]


def test_signature_of_real_module():
    p = need_loop()
    data = p.read_bytes()
    elf_len, si = split_signature(data)
    assert si.id_type_name == "PKCS#7" and elf_len + si.trailer_len == len(data)
    assert data[:4] == b"\x7fELF" and si.sig_len == len(si.blob)
    p7 = parse_pkcs7(si.blob)
    assert p7.digest_algo == "sha256" and p7.issuer_cn == "Build time autogenerated kernel key"
    assert p7.serial.hex() == "66f54e1566a043cc3030420e181cf850fb9f42ac"
    assert len(p7.signature) == 512 and p7.signed_attrs is None and p7.skid is None
    assert p7.issuer_der[0] == 0x30


def test_unsigned_and_malformed_trailers():
    elf = make_elf({".modinfo": b"a=1\0"})
    assert split_signature(elf) == (len(elf), None)
    with pytest.raises(SignatureError):
        split_signature(b"x" * 4 + SIG_MAGIC)
    with pytest.raises(SignatureError):
        split_signature(elf + struct.pack(">BBBBB3xI", 0, 0, 2, 0, 0, 10 ** 6) + SIG_MAGIC)
    assert kmod_signature_fields(sign(elf, b"not der")) is None     # unparsable PKCS#7: no sig_*
    assert kmod_signature_fields(sign(elf, b"")) is None            # sig_len 0
    assert kmod_signature_fields(sign(elf, b"x", id_type=3)) is None


def test_kmod_signature_quirks():
    """Serial shown without leading zeros; signer = first CN, else the LAST name entry."""
    elf = make_elf({".modinfo": b"a=1\0"})
    blob = pkcs7([("2.5.4.10", "Org"), ("2.5.4.3", "CN one"), ("2.5.4.3", "CN two")],
                 b"\x00\x80\x01", digest="1.3.14.3.2.26")
    f = kmod_signature_fields(sign(elf, blob))
    assert (f.signer, f.sig_key, f.sig_hashalgo) == (b"CN one", b"\x80\x01", b"sha1")
    f = kmod_signature_fields(sign(elf, pkcs7([("2.5.4.10", "Org"), ("2.5.4.7", "Town")], b"\x05",
                                              digest="1.2.3.4.5")))
    assert (f.signer, f.sig_key, f.sig_hashalgo) == (b"Town", b"\x05", b"1.2.3.4.5")
    f = kmod_signature_fields(sign(elf, b"SIG", id_type=1, signer=b"me", key_id=b"\x01\x02",
                                   algo=1, hash_=4))
    assert (f.sig_id, f.signer, f.sig_key, f.sig_hashalgo, f.signature) == (
        b"X509", b"me", b"\x01\x02", b"sha256", b"SIG")


def test_json_output():
    p = need_loop()
    rc, out, _ = run(["--json", str(p)])
    rec = json.loads(out)[0]
    assert rc == 0 and rec["name"] == "loop" and rec["filename"] == str(p)
    assert rec["fields"][0] == ["alias", "devname:loop-control"]
    assert list(rec["parm"]) == ["max_loop", "max_part", "hw_queue_depth"]
    assert rec["parm"]["max_part"] == {"desc": "Maximum number of partitions per loop device",
                                       "type": "int"}
    assert rec["signature"]["signer"] == "Build time autogenerated kernel key"
    assert rec["signature"]["sig_key"].startswith("66:F5:") and "\n" not in rec["signature"]["signature"]


def make_tree(root: Path, with_dep: bool = True) -> Path:
    """<root>/lib/modules/9.9.9 with loop.ko and dummy.ko, builtin crc_ccitt, modules.alias."""
    d = root / "lib/modules/9.9.9"
    (d / "kernel/drivers/block").mkdir(parents=True)
    (d / "kernel/drivers/net").mkdir(parents=True)
    shutil.copy(need_loop(), d / "kernel/drivers/block/loop.ko")
    (d / "kernel/drivers/net/dummy.ko.xz").write_bytes(
        compress((MODDIR / "kernel/drivers/net/dummy.ko").read_bytes(), "xz"))
    if with_dep:
        (d / "modules.dep").write_text("kernel/drivers/block/loop.ko:\n"
                                       "kernel/drivers/net/dummy.ko.xz:\n")
    (d / "modules.alias").write_text("# Aliases\nalias devname:loop-control loop\n"
                                     "alias block-major-7-* loop\nalias rtnl-link-dummy dummy\n")
    (d / "modules.builtin").write_text("kernel/lib/crc-ccitt.ko\n")
    (d / "modules.builtin.modinfo").write_bytes(
        b"crc_ccitt.license=GPL\0crc_ccitt.file=lib/crc-ccitt\0"
        b"crc_ccitt.description=CRC-CCITT calculations\0")
    return d


@pytest.mark.parametrize("with_dep", [True, False])
def test_name_alias_and_builtin_lookup(tmp_path, with_dep):
    d = make_tree(tmp_path, with_dep)
    b = ["-b", str(tmp_path), "-k", "9.9.9"]
    rc, out, _ = run(b + ["-n", "loop", "dummy", "block-major-7-3", "rtnl-link-dummy"])
    assert rc == 0 and out.decode().split("\n") == [
        f"{d}/kernel/drivers/block/loop.ko", f"{d}/kernel/drivers/net/dummy.ko.xz",
        f"{d}/kernel/drivers/block/loop.ko", f"{d}/kernel/drivers/net/dummy.ko.xz", ""]
    rc, out, _ = run(b + ["crc-ccitt"])
    assert out == (b"name:           crc_ccitt\nfilename:       (builtin)\nlicense:        GPL\n"
                   b"file:           lib/crc-ccitt\ndescription:    CRC-CCITT calculations\n")
    assert run(b + ["-F", "name", "crc_ccitt"])[1] == b"crc_ccitt\n"
    assert run(b + ["nope"]) == (1, b"", "modinfo: ERROR: Module nope not found.\n")
    assert run(b + ["-m", "devname:loop-control"]) == (
        1, b"", "modinfo: ERROR: Module name devname:loop-control not found.\n")


# ---- (b) the whole Debian tree against the real modinfo ----------------------------------------

CORPUS_OPTIONS = [[], ["-0"], ["-p"], ["-F", "signature"], ["-a", "-d"], ["-0", "-F", "parmtype"]]


@pytest.mark.corpus
@pytest.mark.parametrize("opts", CORPUS_OPTIONS, ids=lambda o: " ".join(o) or "plain")
def test_corpus_matches_real_modinfo(opts):
    """Every module of Debian 6.1.0-56, in batches of 200 per kmod call (kmod accepts several
    files): stdout, stderr and exit code are identical; a differing batch is re-run file by file
    so the failure names the module."""
    need_real()
    files = sorted(str(p) for p in (MODDIR / "kernel").rglob("*.ko*"))
    if len(files) < 100:
        pytest.skip(f"no Debian module tree at {MODDIR}")
    bad = []
    for i in range(0, len(files), 200):
        batch = files[i:i + 200]
        if real(opts + batch) != run(opts + batch):
            bad += [f for f in batch if real(opts + [f]) != run(opts + [f])]
    assert not bad, f"{len(bad)} modules differ, e.g. {bad[:5]}"


@pytest.mark.corpus
@pytest.mark.parametrize("kind", ["xz", "zstd"])
def test_compressed_modules_match_real_modinfo(kind, tmp_path):
    """Debian's kmod reads .ko.xz/.ko.zst (not .ko.gz: built without zlib)."""
    need_real()
    files = sorted((MODDIR / "kernel").rglob("*.ko"))[::200]
    if not files:
        pytest.skip(f"no Debian module tree at {MODDIR}")
    args = []
    for f in files:
        p = tmp_path / (f.name[:-3] + (".ko.xz" if kind == "xz" else ".ko.zst"))
        p.write_bytes(compress(f.read_bytes(), kind, level=1 if kind == "zstd" else 0))
        args.append(str(p))
    assert real(args) == run(args)


@pytest.mark.parametrize("args", [["notelf.ko"], ["short.ko"], ["t16.ko"], ["trunc.ko"],
                                  ["./missing.ko"], [], ["-x"], ["--f", "x"], ["--field"],
                                  ["--author=1", "x"], ["-F"], ["-h"], ["-x", "-h"],
                                  ["nomodinfo.ko"], ["sig.ko"], ["parms.ko", "-0"]])
def test_error_paths_match_real_modinfo(args, tmp_path):
    """Synthetic broken files and bad options give kmod's exact stdout, stderr and exit code."""
    need_real()
    good = make_elf({".modinfo": modinfo_section("license=GPL", "parm=x:X", "parmtype=y:int")})
    (tmp_path / "notelf.ko").write_bytes(b"hello world, not an ELF\n")
    (tmp_path / "short.ko").write_bytes(b"abc")
    (tmp_path / "t16.ko").write_bytes(good[:16])
    (tmp_path / "trunc.ko").write_bytes(good[:100])
    (tmp_path / "nomodinfo.ko").write_bytes(make_elf({".text": b"\xc3"}))
    (tmp_path / "parms.ko").write_bytes(good)
    blob = pkcs7([("2.5.4.10", "Org"), ("2.5.4.7", "Town")], b"\x00\x81\x02" + bytes(30))
    (tmp_path / "sig.ko").write_bytes(sign(good, blob))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        ours = run(args)
    finally:
        os.chdir(cwd)
    assert ours == real(args, cwd=tmp_path)


# ---- (c) the command line ----------------------------------------------------------------------

def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kmodlab", "modinfo", *args], capture_output=True,
                          text=True, cwd=cwd)


def test_cli_errors_and_exit_codes(tmp_path):
    (tmp_path / "notelf.ko").write_text("hello\n")
    r = cli("notelf.ko", cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == f"filename:       {tmp_path}/notelf.ko\n"
    assert r.stderr == "modinfo: ERROR: could not get modinfo from 'notelf': Exec format error\n"
    r = cli("./x.ko", cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "modinfo: ERROR: Module ./x.ko not found.\n")
    r = cli()
    assert (r.returncode, r.stderr) == (1, "modinfo: ERROR: missing module or filename.\n")
    r = cli("-q")
    assert (r.returncode, r.stderr) == (1, "modinfo: invalid option -- 'q'\n")
    r = cli("-h")
    assert r.returncode == 0 and r.stdout.startswith("Usage:\n\tmodinfo [options]")
    r = cli("-V")
    assert r.returncode == 0 and r.stdout.startswith("kmod version 30\n")


def test_cli_real_module_and_partial_failure(tmp_path):
    p = need_loop()
    r = cli("-F", "name", str(p), str(tmp_path / "gone.ko"))
    assert r.returncode == 1 and r.stdout == "loop\n"
    assert r.stderr == f"modinfo: ERROR: Module {tmp_path}/gone.ko not found.\n"
