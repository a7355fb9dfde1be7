"""The kernel key retention service (security/keys) as modules use it, and the X.509 parser of
the asymmetric key type (crypto/asymmetric_keys): ``keyring_alloc``, ``key_create_or_update``,
``key_put``, ``register_key_type``/``unregister_key_type``,
``register_asymmetric_key_parser``/``unregister_asymmetric_key_parser`` and 6.12's
``x509_load_certificate_list``.

Keys and keyrings are machine state (``emu.state["keys"]``, by the address of their
``struct key``): type, description, usage count and, for a keyring, the keys linked into it
(by type and description, as the keyring's associative array indexes them).  A key's
``struct key`` is allocated from the sandbox heap with the members a module can read filled in
(usage, serial, uid, gid, perm, state, flags, len_desc, description).  The kernel lists keys in
/proc/keys only with CONFIG_KEYS_DEBUG_PROC_KEYS (not set in Debian's builds), so there is no
view to model.

``keyring_alloc`` covers a keyring that is not linked into another one and has no link
restriction (what modules' private keyrings are); ``key_create_or_update`` covers the
"asymmetric" type fed an X.509 certificate (Debian's kernel has only the "x509" parser built
in; a blob it refuses while a module's parser such as pkcs8_key_parser's is registered stops as
Unmodelled), into a keyring the sandbox made.  The certificate is
parsed with ``cryptography``; the key's description is the kernel's: the subject name made as
x509_fabricate_name does (the last CN, O and emailAddress attributes' raw bytes: CN alone when
it starts with O or shares 7 leading bytes with it, "O: CN" otherwise, then O, then the email
address) followed by ": " and the hex of the subject key identifier, or of the raw serial
number's content bytes when there is none.  A blob that does not parse as DER X.509 fails as
the kernel's ASN.1 decoder does (-EBADMSG); a public key algorithm the kernel's parser does not
know fails with -ENOPKG.  Self-signed certificates whose signature the sandbox cannot verify
stop as Unmodelled (the kernel would reject them with -EKEYREJECTED or accept them with an
unsupported signature, depending on the algorithm).
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..layouts import layout
from ..registry import model

LAYOUT = layout("keys")

EEXIST, EBADMSG, ENOPKG = 17, 74, 65
KEY_ALLOC_NOT_IN_QUOTA, KEY_ALLOC_BUILT_IN = 0x0002, 0x0004
KEY_FLAG_IN_QUOTA, KEY_FLAG_BUILTIN = 2, 6          # bits of key->flags
KEY_IS_POSITIVE = 1                                 # key->state once instantiated
# the key types the booted Debian kernel has built in (security/keys, crypto/asymmetric_keys,
# certs/blacklist.c): registering one of these names again fails with -EEXIST
BUILTIN_TYPES = ("keyring", ".dead", ".request_key_auth", "user", "logon", "asymmetric",
                 "blacklist")

OID_CN, OID_O, OID_EMAIL = "2.5.4.3", "2.5.4.10", "1.2.840.113549.1.9.1"


def _o(emu, struct: str, member: str) -> int:
    return LAYOUT.of(emu)[struct, member]


def _keys(emu) -> dict:
    return emu.state.setdefault("keys", {})


def _types(emu) -> dict:
    return emu.state.setdefault("key_types", {})


def _err(e: int) -> int:
    return -e & ((1 << 64) - 1)


def _serial(emu) -> int:
    """key_alloc_serial: a random positive serial above 2 not in use."""
    from .random import random_bytes
    used = {k["serial"] for k in _keys(emu).values()}
    while True:
        s = int.from_bytes(random_bytes(emu, 4), "little") >> 1
        if s >= 3 and s not in used:
            return s


def _new_key(emu, ktype: str, desc: bytes, uid: int, gid: int, perm: int, flags: int,
             keyring: bool) -> int:
    key = emu.kmalloc(_o(emu, "key", "sizeof"), zero=True)
    d = emu.kmalloc(len(desc) + 1)
    emu.write(d, desc + b"\0")
    serial = _serial(emu)
    emu.write_u(key + _o(emu, "key", "usage"), 4, 1)
    emu.write_u(key + _o(emu, "key", "serial"), 4, serial)
    emu.write_u(key + _o(emu, "key", "uid"), 4, uid)
    emu.write_u(key + _o(emu, "key", "gid"), 4, gid)
    emu.write_u(key + _o(emu, "key", "perm"), 4, perm)
    kflags = (1 << KEY_FLAG_BUILTIN if flags & KEY_ALLOC_BUILT_IN else 0) | \
        (0 if flags & KEY_ALLOC_NOT_IN_QUOTA else 1 << KEY_FLAG_IN_QUOTA)
    emu.write_u(key + _o(emu, "key", "flags"), 8, kflags)
    emu.write_u(key + _o(emu, "key", "state"), 2, KEY_IS_POSITIVE)
    emu.write_u(key + _o(emu, "key", "len_desc"), 8, len(desc))
    emu.write_u(key + _o(emu, "key", "description"), 8, d)
    _keys(emu)[str(key)] = {"type": ktype, "description": desc.decode("latin-1"),
                            "serial": serial, "usage": 1, "desc_addr": d,
                            "links": {} if keyring else None}
    return key


def _usage(emu, key: int) -> int:
    return emu.read_u(key + _o(emu, "key", "usage"), 4)


@model("keyring_alloc")
def keyring_alloc(emu, description, uid, gid, cred, perm, flags, restrict_link, dest):
    """A new keyring named ``description`` (its owner uid/gid and permissions as given)."""
    if dest:
        raise Unmodelled("keyring_alloc (linking the new keyring into a destination keyring)")
    if restrict_link:
        raise Unmodelled("keyring_alloc (a keyring with a link restriction)")
    desc = emu.cstr(description, 4096)
    return _new_key(emu, "keyring", desc, uid & 0xFFFFFFFF, gid & 0xFFFFFFFF,
                    perm & 0xFFFFFFFF, flags, True)


# --- X.509 (crypto/asymmetric_keys/x509_cert_parser.c, x509_public_key.c) ---------------------

def _der(buf: bytes, i: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``buf[i]``."""
    tag, n = buf[i], buf[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(buf[i:i + k], "big")
        i += k
    return tag, i, i + n


def _children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    while start < end:
        t, s, e = _der(buf, start)
        out.append((t, s, e))
        start = e
    return out


def _oid(raw: bytes) -> str:
    parts, v = [], 0
    for b in raw:
        v = (v << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(v)
            v = 0
    first = min(parts[0] // 40, 2)
    return ".".join(map(str, [first, parts[0] - 40 * first, *parts[1:]]))


def _subject_name(name_der: bytes) -> bytes:
    """x509_fabricate_name over a Name's DER (the last CN, O and email attribute win)."""
    found: dict[str, bytes] = {}
    _, s, e = _der(name_der, 0)
    for _, rs, re_ in _children(name_der, s, e):            # SET OF
        for _, as_, ae in _children(name_der, rs, re_):      # SEQUENCE {OID, value}
            (_, os_, oe), (_, vs, ve) = _children(name_der, as_, ae)[:2]
            oid = _oid(name_der[os_:oe])
            if oid in (OID_CN, OID_O, OID_EMAIL):
                found[oid] = name_der[vs:ve]
    cn, o, email = found.get(OID_CN, b""), found.get(OID_O, b""), found.get(OID_EMAIL, b"")
    if cn and o:
        if (len(cn) >= len(o) and cn[:len(o)] == o) or \
                (len(cn) >= 7 and len(o) >= 7 and cn[:7] == o[:7]):
            return cn
        return o + b": " + cn
    return cn or o or email


def _raw_serial(cert) -> bytes:
    """The serial INTEGER's content bytes as the certificate encodes them."""
    tbs = cert.tbs_certificate_bytes
    _, s, e = _der(tbs, 0)
    fields = _children(tbs, s, e)
    if fields[0][0] == 0xA0:                                 # [0] version
        fields = fields[1:]
    _, ss, se = fields[0]
    return tbs[ss:se]


def _check_key_algo(cert) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    pub = cert.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        return
    if isinstance(pub, ec.EllipticCurvePublicKey):
        if pub.curve.name in ("secp192r1", "secp256r1", "secp384r1"):
            return
        raise _Fail(ENOPKG)
    raise Unmodelled(f"key_create_or_update (an X.509 public key of type {type(pub).__name__})")


class _Fail(Exception):
    def __init__(self, errno: int):
        super().__init__(errno)
        self.errno = errno


def _check_self_signed(cert) -> None:
    if cert.issuer.public_bytes() != cert.subject.public_bytes():
        return
    try:
        cert.verify_directly_issued_by(cert)
    except Exception as e:                                   # noqa: BLE001
        raise Unmodelled("key_create_or_update (a self-signed X.509 certificate whose "
                         f"signature the sandbox cannot verify: {e})") from None


def x509_description(blob: bytes) -> str:
    """The description x509_key_preparse proposes for a DER certificate; raises _Fail with the
    kernel's errno when the kernel's parser refuses it."""
    from cryptography import x509
    try:
        cert = x509.load_der_x509_certificate(blob)
        subject = _subject_name(cert.subject.public_bytes())
        serial = _raw_serial(cert)
    except (ValueError, IndexError) as e:
        raise _Fail(EBADMSG) from e
    _check_key_algo(cert)
    _check_self_signed(cert)
    try:
        q = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        q = serial
    return subject.decode("latin-1") + ": " + q.hex()


def _create(emu, keyring_ref: int, ktype: str, description: int, payload: int, plen: int,
            perm: int, flags: int) -> int:
    ring = keyring_ref & ~1
    kr = _keys(emu).get(str(ring))
    if kr is None or kr["links"] is None:
        raise Unmodelled("key_create_or_update (a keyring the sandbox did not make)")
    if ktype != "asymmetric":
        raise Unmodelled(f"key_create_or_update (key type {ktype!r})")
    try:
        desc = x509_description(emu.read(payload, plen))
    except _Fail as f:
        if f.errno == EBADMSG and _parsers(emu):
            raise Unmodelled("key_create_or_update (a blob the x509 parser refuses, "
                             "for a module's parser)") from None
        return _err(f.errno)
    if description:
        desc = emu.cstr(description, 4096).decode("latin-1")
    key = _new_key(emu, ktype, desc.encode("latin-1"), 0, 0, perm & 0xFFFFFFFF, flags, False)
    old = kr["links"].get(f"{ktype}:{desc}")
    kr["links"][f"{ktype}:{desc}"] = key
    emu.write_u(key + _o(emu, "key", "usage"), 4, 2)         # the keyring's link + the caller's
    _keys(emu)[str(key)]["usage"] = 2
    if old is not None:
        _put(emu, old)
    return key | (keyring_ref & 1)


@model("key_create_or_update")
def key_create_or_update(emu, keyring_ref, type, description, payload, plen, perm, flags):
    """Create a key of ``type`` from ``payload`` in the keyring and return a reference to it."""
    return _create(emu, keyring_ref, emu.cstr(type, 64).decode("latin-1"), description,
                   payload, plen, perm, flags)


def _put(emu, key: int) -> None:
    k = _keys(emu).get(str(key))
    if k is None:
        raise Unmodelled("key_put (a key the sandbox did not make)")
    n = _usage(emu, key) - 1
    emu.write_u(key + _o(emu, "key", "usage"), 4, n)
    k["usage"] = n
    if n == 0:                                               # the key GC destroys it
        for sub in (k["links"] or {}).values():
            _put(emu, sub)
        _keys(emu).pop(str(key))
        emu.kfree(k["desc_addr"])
        emu.kfree(key)


@model("key_put")
def key_put(emu, key):
    """Drop a reference to a key; the last one hands it to the garbage collector."""
    if key:
        _put(emu, key)


@model("x509_load_certificate_list")
def x509_load_certificate_list(emu, cert_list, list_size, keyring):
    """Load each DER certificate of a concatenated list into ``keyring`` as an asymmetric key,
    printing what it loaded (crypto/asymmetric_keys/x509_loader.c); always returns 0."""
    p, end = cert_list, cert_list + list_size
    while p < end:
        if end - p < 4:
            break
        h = emu.read(p, 4)
        if h[0] != 0x30 or h[1] != 0x82:
            break
        plen = ((h[2] << 8) | h[3]) + 4
        if plen > end - p:
            break
        ref = _create(emu, keyring | 1, "asymmetric", 0, p, plen, 0x1f030000, 0x0e)
        if ref >= (1 << 64) - 4095:
            emu.printk(3, f"Problem loading in-kernel X.509 certificate ({ref - (1 << 64)})\n")
        else:
            d = emu.cstr(emu.read_u((ref & ~1) + _o(emu, "key", "description"), 8), 4096)
            emu.printk(5, f"Loaded X.509 cert '{d.decode('latin-1')}'\n")
            _put(emu, ref & ~1)
        p += plen
    else:
        return 0
    emu.printk(3, "Problem parsing in-kernel X.509 certificate list\n")
    return 0


@model("register_key_type")
def register_key_type(emu, ktype):
    """Add a key type by its name (-EEXIST if one of that name exists); prints its name."""
    name = emu.cstr(emu.read_u(ktype + _o(emu, "key_type", "name"), 8), 256).decode("latin-1")
    if name in BUILTIN_TYPES or name in _types(emu).values():
        return _err(EEXIST)
    _types(emu)[str(ktype)] = name
    emu.printk(5, f"Key type {name} registered\n")
    return 0


@model("unregister_key_type")
def unregister_key_type(emu, ktype):
    """Remove a key type (its keys are garbage-collected); prints its name."""
    name = _types(emu).pop(str(ktype), None)
    if name is None:
        raise Unmodelled("unregister_key_type (a key type that is not registered)")
    for k in _keys(emu).values():
        if k["type"] == name:
            raise Unmodelled("unregister_key_type (a key type that still has keys)")
    emu.printk(5, f"Key type {name} unregistered\n")


def _parsers(emu) -> dict:
    return emu.state.setdefault("asymmetric_parsers", {})


@model("register_asymmetric_key_parser")
def register_asymmetric_key_parser(emu, parser):
    """Add a blob parser of the asymmetric key type after the others (-EEXIST, with an error
    line, if one of that name exists: Debian's kernel has "x509" built in)."""
    name = emu.cstr(emu.read_u(parser + _o(emu, "asymmetric_key_parser", "name"), 8),
                    256).decode("latin-1")
    if name == "x509" or name in _parsers(emu).values():
        emu.printk(3, f"Asymmetric key parser '{name}' already registered\n")
        return _err(EEXIST)
    _parsers(emu)[str(parser)] = name
    emu.printk(5, f"Asymmetric key parser '{name}' registered\n")
    return 0


@model("unregister_asymmetric_key_parser")
def unregister_asymmetric_key_parser(emu, parser):
    """Take a blob parser off the asymmetric key type's list; prints its name."""
    name = _parsers(emu).pop(str(parser), None)
    if name is None:
        raise Unmodelled("unregister_asymmetric_key_parser (a parser that is not registered)")
    emu.printk(5, f"Asymmetric key parser '{name}' unregistered\n")
