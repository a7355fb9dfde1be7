"""Signatures and who may load: sig_enforce, unsigned / tampered / wrong-key modules (RSA on
Debian 12's 6.1, ECDSA P-384 on Debian 13's 6.12), modules_disabled, lockdown, the kernel's
``module_blacklist=`` and modprobe.d's ``blacklist`` (kernel/module/signing.c,
kernel/module_signature.c, crypto/asymmetric_keys/pkcs7_verify.c, security/lockdown/lockdown.c,
kernel/module/main.c: may_init_module, blacklisted; kmod's libkmod-config.c).

The real kernels answered a fixed *plan* per boot (one plan per kernel command line) under
QEMU; the answers are stored in ``tests/data/policy_<release>.json`` and replayed here through
the sandbox kernel on the same release's profile: every step's return, errno, kernel log lines
and taint must be the real kernel's.  Regenerate (about a minute per release)::

    python3 tests/test_policy.py record [RELEASE]      # 6.1.0-56-amd64, 6.12.118+deb13-amd64

The guest half of this file (``guest``) runs inside the QEMU guest with the standard library
and kmodlab.live only; it is defined before anything imports pytest, and ``python3
tests/test_policy.py guest PLAN OUT`` stops there.
"""
from __future__ import annotations

import ctypes
import json
import os
import struct
import sys
import threading
import time
from pathlib import Path

SIG_MAGIC = b"~Module signature appended~\n"


# ============================================================================================
# Guest side: execute a plan against the running kernel, record what it answered.

def _errname(err: int) -> str:
    import errno as _e
    return _e.errorcode.get(err, f"E{err}") if err else ""


def flip(image: bytes, offset: int) -> bytes:
    """``image`` with the byte at ``offset`` inverted (offset < 0 counts from the end)."""
    b = bytearray(image)
    b[offset] ^= 0xFF
    return bytes(b)


def _guest_call(k, step: dict, files: Path) -> dict:
    op = step["op"]
    if op in ("init", "finit"):
        image = (files / step["file"]).read_bytes()
        if "flip" in step:
            image = flip(image, step["flip"])
        if op == "init":
            res = k.init_module(image, step.get("args", ""))
        else:
            p = files / (step["file"] + ".flipped" if "flip" in step else step["file"])
            p.write_bytes(image)
            res = k.finit_module(str(p), step.get("args", ""), step.get("flags", 0))
        out = {"ret": res.ret, "errno": res.errno, "log": res.log}
        if res.ret == 0 and step.get("unload"):
            d = k.delete_module(step["unload"], os.O_NONBLOCK)
            out["unloaded"] = {"ret": d.ret, "errno": d.errno, "log": d.log}
        return out
    if op == "delete":
        res = k.delete_module(step["name"], step.get("flags", os.O_NONBLOCK))
        return {"ret": res.ret, "errno": res.errno, "log": res.log}
    if op == "read":
        try:
            return {"ret": 0, "errno": 0, "data": k.read(step["path"]).decode("latin-1")}
        except OSError as e:
            return {"ret": -1, "errno": e.errno}
    if op == "write":
        from kmodlab.live import _KmsgWatch
        watch = _KmsgWatch()
        try:
            n = k.write(step["path"], step["data"].encode("latin-1"))
            out = {"ret": n, "errno": 0}
        except OSError as e:
            out = {"ret": -1, "errno": e.errno}
        out["log"] = [t for _p, _s, _ts, t in watch.new_records()]
        return out
    if op == "sweep":
        return {"results": _guest_sweep(k, step, files)}
    if op == "race":
        return _guest_race(step, files)
    if op == "mount_securityfs":
        os.system("mount -t securityfs securityfs /sys/kernel/security 2>/dev/null")
        return {"ret": 0, "errno": 0}
    raise ValueError(op)


def _guest_sweep(k, step: dict, files: Path) -> list:
    """Each offset in [start, end) flipped on its own: [offset, errno, log, unloaded]."""
    image = (files / step["file"]).read_bytes()
    start, end = step["range"]
    out = []
    for off in range(start if start >= 0 else len(image) + start, end if end > 0 else len(image)):
        res = k.init_module(flip(image, off), "")
        row = [off, res.errno, res.log]
        if res.ret == 0:
            d = k.delete_module(step["unload"], os.O_NONBLOCK)
            row.append(d.errno)
        out.append(row)
    return out


def _raw_syscalls():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long

    def init_module(image: bytes) -> int:
        buf = ctypes.create_string_buffer(image, len(image))
        r = libc.syscall(ctypes.c_long(175), buf, ctypes.c_ulong(len(image)), ctypes.c_char_p(b""))
        return ctypes.get_errno() if r == -1 else 0

    def delete_module(name: str) -> int:
        r = libc.syscall(ctypes.c_long(176), ctypes.c_char_p(name.encode()),
                         ctypes.c_uint(os.O_NONBLOCK))
        return ctypes.get_errno() if r == -1 else 0
    return init_module, delete_module


def _guest_race(step: dict, files: Path) -> dict:
    """A module whose init takes a while (raid6_pq benchmarks its algorithms): while it is
    COMING, another thread removes it and a third loads it again.  What each was told, and
    whether the second load returned only after the first had finished."""
    init_module, delete_module = _raw_syscalls()
    image = (files / step["file"]).read_bytes()
    name = step["name"]
    t: dict = {}

    def first():
        t["first_start"] = time.monotonic()
        t["first_errno"] = init_module(image)
        t["first_end"] = time.monotonic()

    def second():
        t["second_start"] = time.monotonic()
        t["second_errno"] = init_module(image)
        t["second_end"] = time.monotonic()

    a = threading.Thread(target=first)
    a.start()
    seen = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and seen is None:
        for line in open("/proc/modules").read().splitlines():
            if line.split(" ", 1)[0] == name and " Loading " in line:
                seen = line
        if seen is None:
            time.sleep(0.001)
    out: dict = {"seen_loading": seen is not None}
    if seen is not None:
        # /proc/modules lists the module from complete_formation on, but its /sys/module
        # directory is made a little later (mod_sysfs_setup, after the COMING notifier and
        # parse_args): whether the first read falls in that window is timing.  Read until the
        # directory is there or the module stops loading, so the answer is the kernel's state.
        while True:
            try:
                out["initstate_while_coming"] = open(f"/sys/module/{name}/initstate").read()
                break
            except OSError as e:
                out["initstate_while_coming"] = f"<{_errname(e.errno)}>"
            still = any(l.split(" ", 1)[0] == name and " Loading " in l
                        for l in open("/proc/modules").read().splitlines())
            if not still or time.monotonic() > deadline:
                break
            time.sleep(0.001)
        out["refcnt_while_coming"] = seen.split()[2]
        out["delete_while_coming"] = _errname(delete_module(name))
        b = threading.Thread(target=second)
        b.start()
        b.join()
    a.join()
    out["first"] = _errname(t["first_errno"])
    if "second_errno" in t:
        out["second"] = _errname(t["second_errno"])
        out["second_returned_after_first"] = t["second_end"] >= t["first_end"]
        out["second_waited_s"] = round(t["second_end"] - t["second_start"], 3)
    out["first_took_s"] = round(t["first_end"] - t["first_start"], 3)
    out["delete_after"] = _errname(delete_module(name))
    return out


def guest(plan_path: str, out_path: str) -> None:
    from kmodlab.live import LiveKernel
    k = LiveKernel()
    plan = json.loads(Path(plan_path).read_text())
    files = Path(plan_path).parent
    steps = []
    for step in plan["steps"]:
        r = _guest_call(k, step, files)
        if "tainted" not in r:
            r["tainted"] = k.tainted()
        steps.append({"step": step, "real": r})
    rec = {"release": os.uname().release, "cmdline": open("/proc/cmdline").read().strip(),
           "name": plan["name"], "steps": steps}
    Path(out_path).write_text(json.dumps(rec, indent=0) + "\n")


if __name__ == "__main__" and sys.argv[1:2] == ["guest"]:
    guest(sys.argv[2], sys.argv[3])
    sys.exit(0)


# ============================================================================================
# Host side: the modules of the plans, signed with keys of our own.

import pytest  # noqa: E402

from kmodlab.errors import (EBADMSG, EEXIST, EINVAL, EKEYREJECTED, ENOENT, EPERM,  # noqa: E402
                            EROFS)

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
R61, R612 = "6.1.0-56-amd64", "6.12.118+deb13-amd64"
DEBIAN_MODULE = {"crc7": "kernel/lib/crc7.ko", "crc_itu_t": "kernel/lib/crc-itu-t.ko",
                 "md4": "kernel/crypto/md4.ko", "raid6_pq": "kernel/lib/raid6/raid6_pq.ko"}


def data_file(release: str) -> Path:
    return DATA / f"policy_{release.removesuffix('-amd64')}.json"


def read_ko(moddir: Path, rel: str) -> bytes:
    for ext, dec in (("", None), (".xz", "xz"), (".zst", "zstd")):
        p = Path(moddir) / (rel + ext)
        if p.exists():
            if dec is None:
                return p.read_bytes()
            from kmodlab.lib.file import decompress
            return decompress(p.read_bytes())
    raise FileNotFoundError(rel)


def unsigned(image: bytes) -> bytes:
    from kmodlab.lib.signature import split_signature
    return image[:split_signature(image)[0]]


_KEYS: dict = {}


def own_key(kind: str):
    """A private key of our own (made once per session): 'rsa4096', 'rsa2048', 'p384', 'p256'."""
    if kind not in _KEYS:
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        if kind.startswith("rsa"):
            _KEYS[kind] = rsa.generate_private_key(65537, int(kind[3:]))
        else:
            _KEYS[kind] = ec.generate_private_key({"p384": ec.SECP384R1(),
                                                   "p256": ec.SECP256R1()}[kind])
    return _KEYS[kind]


def certificate(key, issuer=None, serial: int | None = None):
    """A self-signed X.509 certificate for ``key``; ``issuer``/``serial`` may be another
    certificate's, so that a signature names *that* certificate's key (a forged identity)."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID
    name = issuer or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kmodlab test key")])
    now = datetime.datetime(2024, 1, 1)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(serial or x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=36500))
            .sign(key, hashes.SHA256()))


def sign_module(elf: bytes, key, cert, digest: str = "sha256", attributes: bool = False,
                id_type: int = 2) -> bytes:
    """scripts/sign-file.c's output: a detached PKCS#7 SignedData over the ELF bytes, without
    certificates (CMS_NOCERTS) and, unless ``attributes``, without authenticated attributes
    (-noattr), then struct module_signature (id_type PKCS#7, sig_len big-endian) and the magic."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
    opts = [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.NoCerts,
            pkcs7.PKCS7Options.Binary]
    opts += [pkcs7.PKCS7Options.NoAttributes] if not attributes else \
        [pkcs7.PKCS7Options.NoCapabilities]
    h = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[digest]
    blob = (pkcs7.PKCS7SignatureBuilder().set_data(elf).add_signer(cert, key, h)
            .sign(Encoding.DER, opts))
    return elf + blob + struct.pack(">BBBBB3xI", 0, 0, id_type, 0, 0, len(blob)) + SIG_MAGIC


def kernel_cert(profile):
    from cryptography import x509
    return x509.load_der_x509_certificate(profile.certificates[0])


def module_images(moddir: Path, profile) -> dict[str, bytes]:
    """The files every plan uses, by name: Debian's own signed modules, unsigned copies, and
    crc7 signed by keys of ours (the kernel's key type and another one)."""
    crc7 = read_ko(moddir, DEBIAN_MODULE["crc7"])
    kc = kernel_cert(profile)
    from cryptography.hazmat.primitives.asymmetric import rsa
    rsa_kernel = isinstance(kc.public_key(), rsa.RSAPublicKey)
    same, other = ("rsa4096", "p384") if rsa_kernel else ("p384", "rsa4096")
    body = unsigned(crc7)
    img = {
        "crc7.ko": crc7,
        "crc7.unsigned.ko": body,
        # a key the kernel does not have (its own certificate's issuer and serial): ENOKEY
        "crc7.ownkey.ko": sign_module(body, own_key(same), certificate(own_key(same))),
        "crc7.ownkey-other-algo.ko": sign_module(body, own_key(other), certificate(own_key(other))),
        # our key, named as the kernel's key: found in the keyring, and the signature is wrong
        "crc7.forged.ko": sign_module(body, own_key(same),
                                      certificate(own_key(same), kc.issuer, kc.serial_number)),
        "crc7.forged-other-size.ko": sign_module(
            body, own_key("rsa2048" if rsa_kernel else "p256"),
            certificate(own_key("rsa2048" if rsa_kernel else "p256"), kc.issuer, kc.serial_number)),
        "crc7.forged-other-algo.ko": sign_module(
            body, own_key(other), certificate(own_key(other), kc.issuer, kc.serial_number)),
        # sign-file without -noattr: authenticated attributes, refused for modules
        "crc7.authattrs.ko": sign_module(body, own_key(same), certificate(own_key(same)),
                                         attributes=True),
        "crc7.sha512.ko": sign_module(body, own_key(same), certificate(own_key(same)), "sha512"),
    }
    for name in ("crc_itu_t", "md4", "raid6_pq"):
        m = read_ko(moddir, DEBIAN_MODULE[name])
        img[f"{name}.ko"] = m
        img[f"{name}.unsigned.ko"] = unsigned(m)
    return img


def trailer_offsets(image: bytes) -> tuple[int, int]:
    """[start of the PKCS#7 blob, end of file): every byte of the signature trailer."""
    from kmodlab.lib.signature import split_signature
    return split_signature(image)[0], len(image)


def plans(images: dict[str, bytes]) -> list[dict]:
    """One plan per boot: its kernel command line and its steps, in order."""
    def init(case, file, **kw):
        return {"case": case, "op": "init", "file": file, **kw}
    start, _end = trailer_offsets(images["crc7.ko"])
    id_type = len(images["crc7.ko"]) - len(SIG_MAGIC) - 12 + 2
    plain = [
        {"case": "read sig_enforce", "op": "read", "path": "/sys/module/module/parameters/sig_enforce"},
        {"case": "read modules_disabled", "op": "read", "path": "/proc/sys/kernel/modules_disabled"},
        {"case": "mount securityfs", "op": "mount_securityfs"},
        {"case": "read lockdown", "op": "read", "path": "/sys/kernel/security/lockdown"},
        init("unsigned crc7", "crc7.unsigned.ko", unload="crc7"),
        init("unsigned crc7 again (the notice is once per boot)", "crc7.unsigned.ko", unload="crc7"),
        init("Debian-signed crc7", "crc7.ko", unload="crc7"),
        init("crc7 signed by a key the kernel lacks", "crc7.ownkey.ko", unload="crc7"),
        init("crc7 signed by a key of the other algorithm the kernel lacks",
             "crc7.ownkey-other-algo.ko", unload="crc7"),
        init("crc7 signed by our key named as the kernel's", "crc7.forged.ko", unload="crc7"),
        init("crc7 signed by our smaller key named as the kernel's", "crc7.forged-other-size.ko",
             unload="crc7"),
        init("crc7 signed by our other-algorithm key named as the kernel's",
             "crc7.forged-other-algo.ko", unload="crc7"),
        init("crc7 signed with authenticated attributes", "crc7.authattrs.ko", unload="crc7"),
        init("crc7 signed with sha512 by a key the kernel lacks", "crc7.sha512.ko", unload="crc7"),
        {"case": "Debian-signed crc7, finit flags=IGNORE_VERMAGIC", "op": "finit",
         "file": "crc7.ko", "flags": 2, "unload": "crc7"},
        init("crc7, first ELF byte flipped", "crc7.ko", flip=0, unload="crc7"),
        init("crc7, an ELF byte in the middle flipped", "crc7.ko", flip=start // 2, unload="crc7"),
        init("crc7, last ELF byte flipped", "crc7.ko", flip=start - 1, unload="crc7"),
        {"case": "crc7, each trailer byte flipped in turn", "op": "sweep", "file": "crc7.ko",
         "range": [start, 0], "unload": "crc7"},
        {"case": "raid6_pq removed and loaded again while its init runs", "op": "race",
         "file": "raid6_pq.ko", "name": "raid6_pq"},
        # sig_enforce: bool_enable_only
        *({"case": f"write sig_enforce {v!r}", "op": "write",
           "path": "/sys/module/module/parameters/sig_enforce", "data": v}
          for v in ("N\n", "maybe\n", "\n", "Y\n")),
        {"case": "read sig_enforce after Y", "op": "read", "path": "/sys/module/module/parameters/sig_enforce"},
        *({"case": f"write sig_enforce {v!r} when Y", "op": "write",
           "path": "/sys/module/module/parameters/sig_enforce", "data": v}
          for v in ("N\n", "0\n", "1\n")),
        init("enforced: unsigned crc7", "crc7.unsigned.ko", unload="crc7"),
        init("enforced: crc7 signed by a key the kernel lacks", "crc7.ownkey.ko", unload="crc7"),
        init("enforced: crc7 with an unknown id_type", "crc7.ko", flip=id_type, unload="crc7"),
        init("enforced: crc7 with the magic's last byte flipped", "crc7.ko", flip=-1, unload="crc7"),
        init("enforced: crc7, an ELF byte flipped", "crc7.ko", flip=start // 2, unload="crc7"),
        init("enforced: Debian-signed crc7", "crc7.ko", unload="crc7"),
        {"case": "enforced: Debian-signed crc7, finit flags=IGNORE_MODVERSIONS", "op": "finit",
         "file": "crc7.ko", "flags": 1, "unload": "crc7"},
        init("md4, kept loaded", "md4.ko"),
        # modules_disabled: only 1, once
        *({"case": f"write modules_disabled {v!r}", "op": "write",
           "path": "/proc/sys/kernel/modules_disabled", "data": v}
          for v in ("0\n", "2\n", "-1\n", "abc\n", "\n", "0x1\n")),
        {"case": "write modules_disabled '1\\n'", "op": "write",
         "path": "/proc/sys/kernel/modules_disabled", "data": "1\n"},
        {"case": "read modules_disabled after 1", "op": "read", "path": "/proc/sys/kernel/modules_disabled"},
        {"case": "write modules_disabled '0\\n' after 1", "op": "write",
         "path": "/proc/sys/kernel/modules_disabled", "data": "0\n"},
        {"case": "write modules_disabled '1\\n' again", "op": "write",
         "path": "/proc/sys/kernel/modules_disabled", "data": "1\n"},
        init("modules_disabled: Debian-signed crc7", "crc7.ko", unload="crc7"),
        {"case": "modules_disabled: finit crc7", "op": "finit", "file": "crc7.ko"},
        {"case": "modules_disabled: delete md4", "op": "delete", "name": "md4"},
        {"case": "modules_disabled: delete a module not loaded", "op": "delete", "name": "nosuch"},
    ]
    locked = [
        {"case": "mount securityfs", "op": "mount_securityfs"},
        {"case": "read lockdown", "op": "read", "path": "/sys/kernel/security/lockdown"},
        {"case": "read sig_enforce", "op": "read", "path": "/sys/module/module/parameters/sig_enforce"},
        init("blacklisted Debian-signed crc7", "crc7.ko", unload="crc7"),
        init("blacklisted Debian-signed md4", "md4.ko", unload="md4"),
        init("blacklisted unsigned crc7 (signature is checked first)", "crc7.unsigned.ko",
             unload="crc7"),
        init("blacklisted crc7, an ELF byte flipped", "crc7.ko", flip=start // 2, unload="crc7"),
        init("unsigned crc_itu_t under lockdown", "crc_itu_t.unsigned.ko", unload="crc_itu_t"),
        init("Debian-signed crc_itu_t under lockdown", "crc_itu_t.ko", unload="crc_itu_t"),
        {"case": "Debian-signed crc_itu_t, finit flags=IGNORE_VERMAGIC, under lockdown",
         "op": "finit", "file": "crc_itu_t.ko", "flags": 2, "unload": "crc_itu_t"},
        *({"case": f"write lockdown {v!r}", "op": "write", "path": "/sys/kernel/security/lockdown",
           "data": v} for v in ("none\n", "integrity\n", "bogus\n", "confidentiality\n",
                                "integrity\n")),
        {"case": "read lockdown after confidentiality", "op": "read",
         "path": "/sys/kernel/security/lockdown"},
        init("unsigned crc_itu_t under confidentiality", "crc_itu_t.unsigned.ko",
             unload="crc_itu_t"),
    ]
    enforced = [
        {"case": "read sig_enforce", "op": "read", "path": "/sys/module/module/parameters/sig_enforce"},
        init("unsigned crc7", "crc7.unsigned.ko", unload="crc7"),
        init("crc7 signed by a key the kernel lacks", "crc7.ownkey.ko", unload="crc7"),
        {"case": "write sig_enforce 'N\\n'", "op": "write",
         "path": "/sys/module/module/parameters/sig_enforce", "data": "N\n"},
        init("Debian-signed crc7", "crc7.ko", unload="crc7"),
    ]
    return [{"name": "plain", "cmdline": "", "steps": plain},
            {"name": "blacklist+lockdown", "cmdline": "module_blacklist=crc7,md4 lockdown=integrity",
             "steps": locked},
            {"name": "sig_enforce", "cmdline": "module.sig_enforce=1", "steps": enforced}]


def record(release: str) -> dict:
    """Boot ``release`` once per plan under QEMU and return the recording."""
    from kmodlab.oracle import qemu
    from kmodlab.profile import load_profile
    from kmodlab.profile.debian import imported_profile
    prep = qemu.prepare(release)
    prof = load_profile() if release == R61 else load_profile(str(imported_profile(release)))
    images = module_images(prep.moddir, prof)
    out = {"about": "What Debian's real kernel answered to tests/test_policy.py's plans, one boot "
                    "per plan (its kernel command line), recorded under QEMU. Regenerate: "
                    "python3 tests/test_policy.py record " + release,
           "release": release, "boots": []}
    for plan in plans(images):
        files = {k: v for k, v in images.items()}
        files["plan.json"] = json.dumps(plan)
        files["test_policy.py"] = Path(__file__).read_bytes()
        script = '"$PYTHON" -S "$OUT/test_policy.py" guest "$OUT/plan.json" "$OUT/rec.json"\n'
        r = qemu.run_in_guest(script, timeout=400, release=release, files=files, smp=2,
                              append=plan["cmdline"]).check()
        rec = r.json("rec.json")
        rec["vm_seconds"] = round(r.seconds, 1)
        print(f"{release} {plan['name']}: {r.seconds:.1f} s", file=sys.stderr)
        out["boots"].append(rec)
    return out


if __name__ == "__main__" and sys.argv[1:2] == ["record"]:
    for rel in sys.argv[2:] or [R61, R612]:
        data_file(rel).write_text(json.dumps(record(rel), indent=1) + "\n")
    sys.exit(0)


# ============================================================================================
# The same plans through the sandbox kernel.

def _norm_log(lines: list[str]) -> list[str]:
    """current->comm is the calling process's name (the guest's python3.11, kmodlab's insmod):
    compared as <comm>.  The number pkcs7_parser.c prints for an unknown OID is enum OID's
    OID__NR, which the profiles do not record yet (the sandbox prints "?"): compared as <N>."""
    import re
    out = []
    for x in lines:
        x = re.sub(r"^Lockdown: [^:]+: ", "Lockdown: <comm>: ", x)
        x = re.sub(r"^(Unsupported (?:digest|pkey) algo: |PKCS7: Unsupported data type )(\d+|\?)$",
                   r"\1<N>", x)
        out.append(x)
    return out


def sandbox_call(k, step: dict, images: dict[str, bytes]) -> dict:
    """One plan step through a SandboxKernel (in memory), answered as the guest records it."""
    from kmodlab.sandbox import read_kernel_file, write_kernel_file
    op = step["op"]
    if op in ("init", "finit"):
        image = images[step["file"]]
        if "flip" in step:
            image = flip(image, step["flip"])
        if op == "init":
            res = k.init_module(image, step.get("args", ""))
            if res.errno == 38 and any("unmodelled" in x for x in res.log):
                # the emulator cannot run this init (a sandbox limit, not a policy answer):
                # loaded again with init skipped, so that later steps find it as the real
                # kernel left it
                k.run_init = False
                k.init_module(image, step.get("args", ""))
                k.run_init = True
                return {"ret": 0, "errno": 0, "log": [], "explained": res.log}
        else:
            import tempfile
            with tempfile.NamedTemporaryFile(suffix=".ko") as f:
                f.write(image)
                f.flush()
                res = k.finit_module(f.name, step.get("args", ""), step.get("flags", 0))
        out = {"ret": res.ret, "errno": res.errno, "log": res.log}
        if res.ret == 0 and step.get("unload"):
            d = k.delete_module(step["unload"], os.O_NONBLOCK)
            out["unloaded"] = {"ret": d.ret, "errno": d.errno, "log": d.log}
        return out
    if op == "delete":
        res = k.delete_module(step["name"], step.get("flags", os.O_NONBLOCK))
        return {"ret": res.ret, "errno": res.errno, "log": res.log}
    if op in ("read", "write"):
        with k.session(write=op == "write") as m:
            start = len(m.log)
            try:
                if op == "read":
                    return {"ret": 0, "errno": 0,
                            "data": read_kernel_file(m, step["path"]).decode("latin-1")}
                out = {"ret": write_kernel_file(m, step["path"], step["data"].encode("latin-1")),
                       "errno": 0}
            except OSError as e:
                if op == "read":
                    return {"ret": -1, "errno": e.errno}
                out = {"ret": -1, "errno": e.errno}
            out["log"] = [r.text for r in m.log[start:]]
            return out
    if op == "sweep":
        image = images[step["file"]]
        start, end = step["range"]
        rows = []
        for off in range(start if start >= 0 else len(image) + start,
                         end if end > 0 else len(image)):
            res = k.init_module(flip(image, off), "")
            row = [off, res.errno, res.log]
            if res.ret == 0:
                row.append(k.delete_module(step["unload"], os.O_NONBLOCK).errno)
            rows.append(row)
        return {"results": rows}
    if op == "mount_securityfs":
        return {"ret": 0, "errno": 0}
    raise ValueError(op)


def replay(boot: dict, profile, images: dict[str, bytes]) -> list[tuple[dict, dict, dict]]:
    """[(step, real, sandbox)] for one recorded boot, on a fresh in-memory machine booted
    with the same command line (the harness's own options dropped)."""
    from kmodlab.machine import Machine
    from kmodlab.sandbox import SandboxKernel
    cmdline = " ".join(w for w in boot["cmdline"].split()
                       if w.split("=", 1)[0] in ("module_blacklist", "lockdown",
                                                 "module.sig_enforce"))
    m = Machine.boot(profile.name, seed=1, profile=profile, cmdline=cmdline)
    k = SandboxKernel(machine=m)
    out = []
    for s in boot["steps"]:
        if s["step"]["op"] == "race":
            continue                 # two syscalls at once: the sandbox runs one at a time
        got = sandbox_call(k, s["step"], images)
        got["tainted"] = m.taint
        out.append((s["step"], s["real"], got))
    return out


def comparable(r: dict) -> dict:
    keep = {k: r[k] for k in ("ret", "errno", "data", "tainted") if k in r}
    if "log" in r:
        keep["log"] = _norm_log(r["log"])
    if "unloaded" in r:
        keep["unloaded"] = r["unloaded"]["errno"]
    if "results" in r:
        keep["results"] = [[o, e, _norm_log(lg), *rest] for o, e, lg, *rest in r["results"]]
    return keep


def differences(rec: dict, profile, images) -> list[str]:
    bad = []
    for boot in rec["boots"]:
        for step, real, got in replay(boot, profile, images):
            a, b = comparable(real), comparable(got)
            if step["op"] == "sweep":
                for x, y in zip(a["results"], b["results"]):
                    if x != y:
                        bad.append(f"{boot['name']}: {step['case']}: offset {x[0]}: real {x[1:]}"
                                   f", sandbox {y[1:]}")
                continue
            if "explained" in got:
                continue
            if a != b:
                bad.append(f"{boot['name']}: {step['case']}: real {a}, sandbox {b}")
    return bad


@pytest.fixture(scope="module")
def images61(profile):
    tree = Path(os.environ.get("KMODLAB_MODULES_DIR", "/nonexistent"))
    if not (tree / "kernel").is_dir():
        pytest.skip("no Debian 6.1 module tree")
    return module_images(tree, profile)


def test_61_policy_answers_as_the_real_kernel(profile, images61):
    """Every step of the 6.1 recording (RSA-4096 signatures): unsigned, Debian-signed,
    foreign-key, forged-identity, authattrs, each trailer byte flipped, sig_enforce and
    modules_disabled writes, module_blacklist= and lockdown=integrity — same errno, log, taint."""
    rec = json.loads(data_file(R61).read_text())
    bad = differences(rec, profile, images61)
    assert not bad, f"{len(bad)} differences:\n" + "\n".join(bad[:40])


@pytest.fixture(scope="module")
def release612():
    """Debian 13's 6.12.118 (the recorded release): its imported profile and module tree;
    skipped only when the registry no longer serves that release."""
    from kmodlab.profile import load_profile
    from kmodlab.profile.debian import extract_module_tree, imported_profile
    try:
        prof = load_profile(str(imported_profile(R612)))
        tree = extract_module_tree(R612)
    except Exception as e:                      # offline, or the release is gone
        pytest.skip(f"{R612} is not available: {e}")
    return prof, tree, module_images(tree, prof)


def test_612_policy_answers_as_the_real_kernel(release612):
    """The same plans on Debian 13's 6.12 (ECDSA P-384 signatures, sha256): same answers."""
    prof, _tree, images = release612
    from cryptography.hazmat.primitives.asymmetric import ec
    assert isinstance(kernel_cert(prof).public_key(), ec.EllipticCurvePublicKey)
    rec = json.loads(data_file(R612).read_text())
    bad = differences(rec, prof, images)
    assert not bad, f"{len(bad)} differences:\n" + "\n".join(bad[:40])


# ============================================================================================
# The same rules as users meet them: kmodlab's tools on a machine directory.

EX = ROOT / "examples"
ROOTFS = ROOT / "tests" / "rootfs" / "modprobe"


def km(*args, env: dict | None = None):
    """One kmodlab command through the CLI's entry point, in this process (each command its
    own SandboxKernel and MachineStore, as separate processes would have): rc, stdout, stderr."""
    import contextlib
    import io
    from types import SimpleNamespace
    from kmodlab.tools import main
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    out, err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["kmodlab", *map(str, args)])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    out.flush()
    return SimpleNamespace(returncode=rc, stdout=out.buffer.getvalue().decode(),
                           stderr=err.getvalue())


def test_cmdline_blacklist_and_lockdown(machine_dir, tmp_path):
    """A machine booted with ``module_blacklist=crc7 lockdown=integrity`` (KMODLAB_CMDLINE):
    /proc/cmdline and securityfs show it; an unsigned module is refused by lockdown before
    the blacklist is looked at (EPERM, the Lockdown notice with kmod's comm); a signed
    blacklisted module is EPERM "Module crc7 is blacklisted"; lockdown only goes up."""
    crc7 = ROOTFS / "lib/modules/6.1.0-56-amd64/kernel/lib/crc7.ko"
    env = {"KMODLAB_CMDLINE": "quiet module_blacklist=crc7 lockdown=integrity"}
    assert km("cat", "/proc/cmdline", env=env).stdout == \
        "quiet module_blacklist=crc7 lockdown=integrity\n"
    assert km("cat", "/sys/kernel/security/lockdown").stdout == "none [integrity] confidentiality\n"
    p = km("insmod", EX / "hello.ko")
    assert p.returncode == 1
    assert "could not insert module" in p.stderr and "Operation not permitted" in p.stderr
    assert "Lockdown: insmod: unsigned module loading is restricted; see man kernel_lockdown.7" \
        in p.stderr
    unsigned_crc7 = tmp_path / "crc7.ko"
    unsigned_crc7.write_bytes(unsigned(crc7.read_bytes()))
    assert "Lockdown: insmod" in km("insmod", unsigned_crc7).stderr
    p = km("insmod", crc7)
    assert p.returncode == 1 and "Module crc7 is blacklisted" in p.stderr
    assert "Operation not permitted" in p.stderr
    p = km("write", "/sys/kernel/security/lockdown", "none")
    assert p.returncode == 1 and "Operation not permitted" in p.stderr
    assert km("write", "/sys/kernel/security/lockdown", "confidentiality").returncode == 0
    log = km("dmesg").stdout
    assert "Kernel is locked down from command line; see man kernel_lockdown.7" in log
    assert "Kernel is locked down from securityfs; see man kernel_lockdown.7" in log
    assert "Kernel command line: quiet module_blacklist=crc7 lockdown=integrity" in log
    assert km("lsmod").stdout.splitlines()[1:] == []


def test_sig_enforce_at_runtime_and_wrong_keys(machine_dir, tmp_path, profile):
    """sig_enforce switched on with ``kmodlab write`` (never off again: EROFS): unsigned and
    foreign-key modules are "Key was rejected by service" with the kernel's reason; a module
    signed by our key named as the kernel's is rejected even before; Debian's own loads."""
    crc7 = (ROOTFS / "lib/modules/6.1.0-56-amd64/kernel/lib/crc7.ko").read_bytes()
    kc = kernel_cert(profile)
    own = tmp_path / "crc7-own.ko"
    own.write_bytes(sign_module(unsigned(crc7), own_key("rsa4096"),
                                certificate(own_key("rsa4096"))))
    forged = tmp_path / "crc7-forged.ko"
    forged.write_bytes(sign_module(unsigned(crc7), own_key("rsa4096"),
                                   certificate(own_key("rsa4096"), kc.issuer, kc.serial_number)))
    p = km("insmod", forged)
    assert p.returncode == 1 and "Key was rejected by service" in p.stderr
    assert km("insmod", own).returncode == 0                  # ENOKEY: soft, taint E
    assert int(km("cat", "/proc/sys/kernel/tainted").stdout) == 1 << 13     # E only: in-tree
    assert km("rmmod", "crc7").returncode == 0
    assert km("write", "/sys/module/module/parameters/sig_enforce", "1").returncode == 0
    assert km("cat", "/sys/module/module/parameters/sig_enforce").stdout == "Y\n"
    p = km("write", "/sys/module/module/parameters/sig_enforce", "0")
    assert p.returncode == 1 and "Read-only file system" in p.stderr
    p = km("insmod", own)
    assert p.returncode == 1 and "Key was rejected by service" in p.stderr
    assert "Loading of module with unavailable key is rejected" in p.stderr
    p = km("insmod", EX / "hello.ko")
    assert "Loading of unsigned module is rejected" in p.stderr
    p = km("insmod", "-f", ROOTFS / "lib/modules/6.1.0-56-amd64/kernel/lib/crc7.ko")
    assert "Loading of unsigned module is rejected" in p.stderr      # -f: a mangled module
    assert km("insmod", ROOTFS / "lib/modules/6.1.0-56-amd64/kernel/lib/crc7.ko").returncode == 0


def test_unsigned_taints_E_once_and_modules_disabled(machine_dir):
    """Without sig_enforce an unsigned module loads with taint E (in /proc/modules too) and the
    notice once per boot; modules_disabled=1 then makes every load and removal EPERM and
    cannot be undone."""
    assert km("insmod", EX / "hello.ko").returncode == 0
    assert km("insmod", EX / "kmodlab_provider.ko").returncode == 0
    log = km("dmesg").stdout
    assert log.count("module verification failed: signature and/or required key missing - "
                     "tainting kernel") == 1
    assert "hello: module verification failed" in log
    assert all("(OE)" in line for line in km("cat", "/proc/modules").stdout.splitlines())
    p = km("write", "/proc/sys/kernel/modules_disabled", "0")
    assert p.returncode == 1 and "Invalid argument" in p.stderr
    assert km("write", "/proc/sys/kernel/modules_disabled", "1").returncode == 0
    for args in (("insmod", EX / "kmodlab_consumer.ko"), ("rmmod", "hello")):
        p = km(*args)
        assert p.returncode == 1 and "Operation not permitted" in p.stderr, p.stderr
    p = km("write", "/proc/sys/kernel/modules_disabled", "0")
    assert p.returncode == 1 and "Invalid argument" in p.stderr
    assert km("cat", "/proc/sys/kernel/modules_disabled").stdout == "1\n"


def test_config_forces_sig_enforce_and_lockdown(profile):
    """CONFIG_MODULE_SIG_FORCE=y: sig_enforce is Y from boot; CONFIG_LOCK_DOWN_KERNEL_FORCE_
    INTEGRITY=y: locked down at boot ("from Kernel configuration"), and lockdown=integrity on
    the command line then changes nothing.  (Debian's kernels have neither: N and none.)"""
    import copy
    from kmodlab.machine import Machine
    from kmodlab.sandbox import SandboxKernel, read_kernel_file, write_kernel_file
    debian = Machine.boot(profile.name, seed=1, profile=profile)
    assert (debian.sig_enforce, debian.lockdown) == (False, 0)
    forced = copy.copy(profile)
    forced.config = dict(profile.config, MODULE_SIG_FORCE="y", LOCK_DOWN_KERNEL_FORCE_INTEGRITY="y")
    m = Machine.boot(profile.name, seed=1, profile=forced, cmdline="lockdown=integrity")
    assert read_kernel_file(m, "/sys/module/module/parameters/sig_enforce") == b"Y\n"
    assert read_kernel_file(m, "/sys/kernel/security/lockdown") == b"none [integrity] confidentiality\n"
    texts = [r.text for r in m.log]
    assert texts.count("Kernel is locked down from Kernel configuration; see man kernel_lockdown.7") == 1
    assert not any("from command line" in t for t in texts)
    with pytest.raises(OSError) as e:
        write_kernel_file(m, "/sys/module/module/parameters/sig_enforce", b"N\n")
    assert e.value.errno == EROFS
    res = SandboxKernel(machine=m).init_module((EX / "hello.ko").read_bytes(), "")
    assert res.errno == EKEYREJECTED and res.log == ["Loading of unsigned module is rejected"]


def test_modprobe_blacklists(tmp_path, machine_dir):
    """kmodlab modprobe: modprobe.d ``blacklist`` and the kernel command line's
    ``modprobe.blacklist=`` skip a module reached through an alias (exit 0, nothing loaded),
    ``-b`` applies them to names too; ``MODULE.PARAM=VALUE`` on the command line are options
    (kmod_config_parse_kcmdline, after the files)."""
    import shutil
    tree = tmp_path / "root"
    shutil.copytree(ROOTFS, tree)
    (tree / "etc" / "modprobe.d").mkdir(parents=True)
    (tree / "etc" / "modprobe.d" / "b.conf").write_text("blacklist md4\n")
    env = {"KMODLAB_CMDLINE": "quiet modprobe.blacklist=crc7 fat.codepage=850"}
    assert km("modprobe", "-d", tree, "crypto-md4", env=env).returncode == 0
    assert km("modprobe", "-b", "-d", tree, "crc7").returncode == 0
    assert km("lsmod").stdout.splitlines()[1:] == []
    p = km("modprobe", "-c", "-d", tree)
    assert "blacklist md4\n" in p.stdout and "blacklist crc7\n" in p.stdout
    assert "options fat codepage=850\n" in p.stdout
    p = km("modprobe", "-n", "-v", "-d", tree, "fat")
    assert p.stdout.endswith("fat.ko codepage=850 \n"), p.stdout
    assert km("modprobe", "-d", tree, "crc7").returncode == 0        # named: loaded
    assert [l.split()[0] for l in km("lsmod").stdout.splitlines()[1:]] == ["crc7"]


# ============================================================================================
# The real kernels again (-m qemu): the recordings still hold.

def _stable(rec: dict) -> list:
    """A recording without what changes from boot to boot (race timings, asynchronous log
    lines)."""
    from kmodlab.oracle.guest_cases import ASYNC_LOG
    out = []
    for boot in rec["boots"]:
        for s in boot["steps"]:
            r = dict(s["real"])
            if s["step"]["op"] == "race":
                r = {k: v for k, v in r.items() if not k.endswith("_s")}
            for k in ("log",):
                if k in r:
                    r[k] = [x for x in r[k] if not ASYNC_LOG.match(x)]
            if "results" in r:
                r["results"] = [[o, e, [x for x in lg if not ASYNC_LOG.match(x)], *rest]
                                for o, e, lg, *rest in r["results"]]
            out.append((boot["name"], s["step"]["case"], r))
    return out


@pytest.mark.qemu
@pytest.mark.parametrize("release", [R61, R612])
def test_real_kernel_still_answers_as_recorded(release):
    """Boot the release once per plan (about 1.5 min in all), run the plans again: the same
    answers as tests/data/policy_<release>.json, and the sandbox on that release's profile
    gives them too (keys of ours are made afresh: the answers depend on their kind only)."""
    import shutil as _sh
    if not _sh.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 not installed")
    from kmodlab.oracle import qemu
    try:
        qemu.prepare(release)
    except (qemu.OracleError, OSError) as e:
        pytest.skip(f"the {release} kernel is not available: {e}")
    fresh = record(release)
    assert _stable(fresh) == _stable(json.loads(data_file(release).read_text()))
    from kmodlab.profile import load_profile
    from kmodlab.profile.debian import imported_profile
    prof = load_profile() if release == R61 else load_profile(str(imported_profile(release)))
    bad = differences(fresh, prof, module_images(qemu.prepare(release).moddir, prof))
    assert not bad, "\n".join(bad[:40])
