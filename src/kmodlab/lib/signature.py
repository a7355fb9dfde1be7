"""Module signatures: the appended trailer and the PKCS#7 blob inside it, decoded with our own
small DER walker (the roles of kmod's libkmod-signature.c and the kernel's
kernel/module/signing.c + crypto/asymmetric_keys/pkcs7_parser.c, parsing only).

A signed module is laid out as (scripts/sign-file.c)::

    [ ELF image ][ signer's name ][ key id ][ signature data ][ struct module_signature ][ magic ]

``struct module_signature`` is 12 bytes: algo, hash, id_type, signer_len, key_id_len (u8 each),
3 bytes of padding, sig_len (u32 **big-endian**); the magic is ``~Module signature appended~\\n``.
Modern kernels only produce id_type 2 (PKCS#7), with the other length/enum fields zero and the
signer/key/hash all inside the PKCS#7 SignedData.

Public API (also used by the kernel-side verifier):

* :func:`split_signature` ``(image) -> (elf_len, SigInfo | None)``: find and decode the trailer.
* :func:`parse_pkcs7` ``(blob) -> Pkcs7Info``: the first SignerInfo of a PKCS#7 SignedData.
* :func:`kmod_signature_fields`: what kmod 30's modinfo shows (its quirks included).

Nothing here imports a crypto library: verification belongs to the caller.
"""
from __future__ import annotations

import struct
from ..errors import EBADMSG, KmodlabError
from .file import Record

SIG_MAGIC = b"~Module signature appended~\n"
MODULE_SIGNATURE = struct.Struct(">BBBBB3xI")      # struct module_signature, 12 bytes

PKEY_ALGO = ("DSA", "RSA")
PKEY_HASH_ALGO = ("md4", "md5", "sha1", "rmd160", "sha256", "sha384", "sha512", "sha224", "sm3")
PKEY_ID_TYPE = ("PGP", "X509", "PKCS#7")
PKEY_ID_PKCS7 = 2


class SignatureError(KmodlabError):
    """A signature trailer or PKCS#7 blob that cannot be decoded; ``errno`` is EBADMSG."""

    def __init__(self, reason: str, err: int = EBADMSG):
        self.errno = err
        self.reason = reason
        super().__init__(reason)


class SigInfo(Record):
    """The decoded trailer: raw ``struct module_signature`` fields plus the three byte ranges.

    ``elf_len`` is where the signed ELF image ends (= where the signer's name starts);
    ``signer`` and ``key_id`` are empty for PKCS#7; ``blob`` is the signature data (the PKCS#7
    DER for id_type 2).  Range checks of the enum fields are left to the caller: the kernel and
    kmod disagree about them (see :func:`kmod_signature_fields`)."""
    __slots__ = ("algo", "hash", "id_type", "signer_len", "key_id_len", "sig_len", "elf_len", "signer", "key_id", "blob")

    @property
    def id_type_name(self) -> str:
        """"PKCS#7", "X509", "PGP" (or "id_type N" outside kmod's table)."""
        if self.id_type < len(PKEY_ID_TYPE):
            return PKEY_ID_TYPE[self.id_type]
        return f"id_type {self.id_type}"

    @property
    def trailer_len(self) -> int:
        """Bytes after the ELF image: signer + key id + signature + struct + magic."""
        return (self.signer_len + self.key_id_len + self.sig_len + MODULE_SIGNATURE.size
                + len(SIG_MAGIC))


def split_signature(image: bytes) -> tuple[int, SigInfo | None]:
    """Split a module image into its ELF part and its signature trailer.

    Returns ``(len(image), None)`` when the image does not end with the magic.  When it does,
    decodes ``struct module_signature`` and returns ``(elf_len, SigInfo)``.  Raises
    :class:`SignatureError` (EBADMSG) when the magic is there but the struct or the lengths it
    announces do not fit in the image.  The kernel's stricter rules (mod_check_sig: PKCS#7 only,
    other fields zero, ``sig_len < remaining``) are the caller's to apply on the raw fields.
    """
    size = len(image)
    if size < len(SIG_MAGIC) or image[size - len(SIG_MAGIC):] != SIG_MAGIC:
        return size, None
    size -= len(SIG_MAGIC)
    if size < MODULE_SIGNATURE.size:
        raise SignatureError("signature trailer too short for struct module_signature")
    size -= MODULE_SIGNATURE.size
    algo, hash_, id_type, signer_len, key_id_len, sig_len = MODULE_SIGNATURE.unpack_from(image, size)
    if sig_len + signer_len + key_id_len > size:
        raise SignatureError(f"signature length {sig_len} does not fit in the module")
    sig_start = size - sig_len
    key_start = sig_start - key_id_len
    elf_len = key_start - signer_len
    return elf_len, SigInfo(algo, hash_, id_type, signer_len, key_id_len, sig_len, elf_len,
                            bytes(image[elf_len:key_start]), bytes(image[key_start:sig_start]),
                            bytes(image[sig_start:size]))


# ---- a small DER walker --------------------------------------------------------------------

class DerError(SignatureError):
    """Malformed DER (or BER) in a signature blob."""


class Tlv(Record):
    """One DER element: ``tag`` is the identifier byte (class | constructed | number, for
    numbers < 31), ``start``/``end`` bound the whole element, ``cstart``/``cend`` its content."""
    __slots__ = ("tag", "start", "cstart", "cend", "end")

    def __init__(self, tag: int, start: int, cstart: int, cend: int, end: int):
        self.tag, self.start, self.cstart, self.cend, self.end = tag, start, cstart, cend, end

    @property
    def constructed(self) -> bool:
        return bool(self.tag & 0x20)


def der_read(buf: bytes, pos: int, limit: int | None = None) -> Tlv:
    """Decode the element starting at ``pos`` (not past ``limit``).  Supports long-form and
    (for constructed elements) BER indefinite lengths; rejects high tag numbers (≥ 31), which
    no PKCS#7 structure uses."""
    end_lim = len(buf) if limit is None else limit
    if pos + 2 > end_lim:
        raise DerError("truncated DER element")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise DerError("high-tag-number form is not supported")
    first = buf[pos + 1]
    p = pos + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        if not tag & 0x20:
            raise DerError("indefinite length on a primitive element")
        q = p
        while True:
            if q + 2 > end_lim:
                raise DerError("unterminated indefinite-length element")
            if buf[q] == 0 and buf[q + 1] == 0:
                return Tlv(tag, pos, p, q, q + 2)
            q = der_read(buf, q, end_lim).end
    else:
        n = first & 0x7F
        if n > 8 or p + n > end_lim:
            raise DerError("bad DER length")
        length = int.from_bytes(buf[p:p + n], "big")
        p += n
    if p + length > end_lim:
        raise DerError("DER element runs past its container")
    return Tlv(tag, pos, p, p + length, p + length)


def der_children(buf: bytes, tlv: Tlv) -> list[Tlv]:
    """The elements inside a constructed element, in order."""
    out = []
    p = tlv.cstart
    while p < tlv.cend:
        child = der_read(buf, p, tlv.cend)
        out.append(child)
        p = child.end
    return out


def _expect(t: Tlv, tag: int, what: str) -> Tlv:
    if t.tag != tag:
        raise DerError(f"{what}: expected tag 0x{tag:02x}, found 0x{t.tag:02x}")
    return t


def oid_to_str(body: bytes) -> str:
    """Dotted-decimal text of an OBJECT IDENTIFIER's content bytes."""
    if not body:
        raise DerError("empty OBJECT IDENTIFIER")
    parts = []
    val = 0
    for b in body:
        val = (val << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(val)
            val = 0
    first = parts[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(x) for x in head + parts[1:])


OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_COMMON_NAME = "2.5.4.3"

# OpenSSL's long names (OBJ_obj2txt with no_name=0), which is what kmod prints as sig_hashalgo.
OID_NAMES = {
    "1.2.840.113549.2.2": "md2",
    "1.2.840.113549.2.4": "md4",
    "1.2.840.113549.2.5": "md5",
    "1.3.14.3.2.26": "sha1",
    "1.3.36.3.2.1": "ripemd160",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.5": "sha512-224",
    "2.16.840.1.101.3.4.2.6": "sha512-256",
    "2.16.840.1.101.3.4.2.7": "sha3-224",
    "2.16.840.1.101.3.4.2.8": "sha3-256",
    "2.16.840.1.101.3.4.2.9": "sha3-384",
    "2.16.840.1.101.3.4.2.10": "sha3-512",
    "2.16.840.1.101.3.4.2.11": "shake128",
    "2.16.840.1.101.3.4.2.12": "shake256",
    "1.2.156.10197.1.401": "sm3",
    "1.2.840.113549.1.1.1": "rsaEncryption",
    "1.2.840.113549.1.1.4": "md5WithRSAEncryption",
    "1.2.840.113549.1.1.5": "sha1WithRSAEncryption",
    "1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
    "1.2.840.113549.1.1.12": "sha384WithRSAEncryption",
    "1.2.840.113549.1.1.13": "sha512WithRSAEncryption",
    "1.2.840.113549.1.1.14": "sha224WithRSAEncryption",
    "1.2.840.10045.2.1": "id-ecPublicKey",
    "1.2.840.10045.4.3.2": "ecdsa-with-SHA256",
    "1.2.840.10045.4.3.3": "ecdsa-with-SHA384",
    "1.2.840.10045.4.3.4": "ecdsa-with-SHA512",
    "1.3.101.112": "ED25519",
}


def oid_name(oid: str) -> str:
    """OpenSSL's long name for ``oid`` when we know it, else the dotted form (as OpenSSL does)."""
    return OID_NAMES.get(oid, oid)


class NameEntry(Record):
    """One AttributeTypeAndValue of an X.501 Name: its OID and the value's raw content bytes."""
    __slots__ = ("oid", "value_tag", "value")


class Pkcs7Info(Record):
    """The first SignerInfo of a PKCS#7 SignedData, plus what the kernel needs to verify it.

    ``digest_algo``: OpenSSL long name of the digest ("sha256"); ``digest_oid`` its OID.
    ``issuer_cn``: the issuer's first commonName (None if it has none); ``issuer_der``: the whole
    issuer Name element (tag and length included), as the kernel's key-id lookup hashes it;
    ``issuer_entries``: every name entry in order.  ``serial``: the serial INTEGER's content bytes
    as encoded (a leading 0x00 kept — the kernel uses them raw).  ``skid``: the subjectKeyIdentifier
    when the signer is identified that way (CMS v3) instead of issuer+serial (then ``issuer_*``
    and ``serial`` are empty).  ``signature``: the encryptedDigest bytes.  ``signed_attrs``: the
    authenticatedAttributes re-tagged as a SET (0x31…), i.e. the bytes the digest is computed
    over, or None when there are none (sign-file uses ``-noattr``).  ``content``: the embedded
    data, None for a detached signature (modules are always detached).
    """
    __slots__ = ("digest_algo", "digest_oid", "sig_algo_oid", "issuer_cn", "issuer_der", "issuer_entries", "serial", "skid", "signature", "signed_attrs", "content")

    @property
    def serial_magnitude(self) -> bytes:
        """The serial as OpenSSL's BN_bn2bin gives it (what kmod shows as sig_key): the
        big-endian magnitude without leading zero bytes (b"" for 0)."""
        n = int.from_bytes(self.serial, "big", signed=True) if self.serial else 0
        n = abs(n)
        return n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""


def _name_entries(buf: bytes, name: Tlv) -> tuple[NameEntry, ...]:
    out = []
    for rdn in der_children(buf, _expect(name, 0x30, "Name")):
        for atv in der_children(buf, _expect(rdn, 0x31, "RelativeDistinguishedName")):
            kids = der_children(buf, _expect(atv, 0x30, "AttributeTypeAndValue"))
            if len(kids) < 2:
                raise DerError("AttributeTypeAndValue needs a type and a value")
            oid = _expect(kids[0], 0x06, "attribute type")
            val = kids[1]
            out.append(NameEntry(oid_to_str(buf[oid.cstart:oid.cend]), val.tag,
                                 bytes(buf[val.cstart:val.cend])))
    return tuple(out)


def _alg_oid(buf: bytes, alg: Tlv, what: str) -> str:
    kids = der_children(buf, _expect(alg, 0x30, what))
    if not kids:
        raise DerError(f"{what}: empty AlgorithmIdentifier")
    oid = _expect(kids[0], 0x06, what)
    return oid_to_str(buf[oid.cstart:oid.cend])


def parse_pkcs7(blob: bytes) -> Pkcs7Info:
    """Decode a PKCS#7 ContentInfo holding SignedData and return its first SignerInfo.

    Raises :class:`DerError` (EBADMSG) on anything that is not such a structure.
    """
    buf = bytes(blob)
    ci = _expect(der_read(buf, 0), 0x30, "ContentInfo")
    kids = der_children(buf, ci)
    if len(kids) < 2:
        raise DerError("ContentInfo without content")
    ctype = oid_to_str(buf[_expect(kids[0], 0x06, "contentType").cstart:kids[0].cend])
    if ctype != OID_SIGNED_DATA:
        raise DerError(f"contentType {ctype} is not signedData")
    wrapper = _expect(kids[1], 0xA0, "content [0]")
    inner = der_children(buf, wrapper)
    if not inner:
        raise DerError("empty SignedData wrapper")
    sd = der_children(buf, _expect(inner[0], 0x30, "SignedData"))
    # version, digestAlgorithms, contentInfo, [0] certificates, [1] crls, signerInfos
    if len(sd) < 4:
        raise DerError("SignedData is too short")
    _expect(sd[0], 0x02, "SignedData.version")
    _expect(sd[1], 0x31, "digestAlgorithms")
    content = None
    eci = der_children(buf, _expect(sd[2], 0x30, "encapContentInfo"))
    if len(eci) >= 2 and eci[1].tag == 0xA0:
        econ = der_children(buf, eci[1])
        if econ:
            content = bytes(buf[econ[0].cstart:econ[0].cend])
    signer_infos = _expect(sd[-1], 0x31, "signerInfos")
    sis = der_children(buf, signer_infos)
    if not sis:
        raise DerError("no SignerInfo")
    si = der_children(buf, _expect(sis[0], 0x30, "SignerInfo"))
    if len(si) < 5:
        raise DerError("SignerInfo is too short")
    _expect(si[0], 0x02, "SignerInfo.version")
    sid = si[1]
    issuer_der, entries, serial, skid = b"", (), b"", None
    if sid.tag == 0x30:                               # issuerAndSerialNumber
        ias = der_children(buf, sid)
        if len(ias) != 2:
            raise DerError("issuerAndSerialNumber needs an issuer and a serial")
        issuer_der = bytes(buf[ias[0].start:ias[0].end])
        entries = _name_entries(buf, ias[0])
        serial = bytes(buf[_expect(ias[1], 0x02, "serialNumber").cstart:ias[1].cend])
    elif sid.tag == 0x80:                             # [0] subjectKeyIdentifier (CMS)
        skid = bytes(buf[sid.cstart:sid.cend])
    else:
        raise DerError(f"unknown signer identifier tag 0x{sid.tag:02x}")
    digest_oid = _alg_oid(buf, si[2], "digestAlgorithm")
    i = 3
    signed_attrs = None
    if si[i].tag == 0xA0:                             # [0] IMPLICIT authenticatedAttributes
        signed_attrs = b"\x31" + buf[si[i].start + 1:si[i].end]
        i += 1
    if i + 1 >= len(si):
        raise DerError("SignerInfo lacks its signature")
    sig_algo_oid = _alg_oid(buf, si[i], "digestEncryptionAlgorithm")
    sig = _expect(si[i + 1], 0x04, "encryptedDigest")
    cn = next((e.value for e in entries if e.oid == OID_COMMON_NAME), None)
    return Pkcs7Info(
        digest_algo=oid_name(digest_oid), digest_oid=digest_oid, sig_algo_oid=sig_algo_oid,
        issuer_cn=None if cn is None else cn.decode("utf-8", "replace"),
        issuer_der=issuer_der, issuer_entries=entries, serial=serial, skid=skid,
        signature=bytes(buf[sig.cstart:sig.cend]), signed_attrs=signed_attrs, content=content)


# ---- what kmod 30's modinfo shows ------------------------------------------------------------

class KmodSignatureFields(Record):
    """The five values kmod appends to a module's info list (all bytes, ready to print)."""
    __slots__ = ("sig_id", "signer", "sig_key", "sig_hashalgo", "signature")


def kmod_signature_fields(image: bytes) -> KmodSignatureFields | None:
    """kmod_module_signature_info() with OpenSSL (Debian's +LIBCRYPTO build), quirks included:

    * no signature unless: magic present, struct fits, ``algo < 2``, ``hash < 9``,
      ``id_type < 3``, ``sig_len != 0`` and ``sig_len + signer_len + key_id_len`` fits;
    * id_type PGP/X509: signer, key id and signature are the raw trailer ranges, the hash name
      comes from kmod's table (``md4`` … ``sm3``);
    * PKCS#7: a blob that does not parse means *no signature at all* (no ``sig_*`` lines);
      ``sig_key`` is the serial number's magnitude (leading zeros dropped); ``signer`` is the
      issuer's first commonName — or, when there is none, the **last** name entry's value
      (x509_name_to_str leaves its loop variable on the last entry), or empty for an empty
      Name; ``sig_hashalgo`` is OpenSSL's long name of the digest OID, dotted when unknown;
    * the signer is printed with ``%s``, so it stops at its first NUL byte.
    """
    try:
        _, si = split_signature(image)
    except SignatureError:
        return None
    if si is None:
        return None
    if si.algo >= len(PKEY_ALGO) or si.hash >= len(PKEY_HASH_ALGO) \
            or si.id_type >= len(PKEY_ID_TYPE) or si.sig_len == 0:
        return None
    id_type = PKEY_ID_TYPE[si.id_type].encode()
    if si.id_type != PKEY_ID_PKCS7:
        return KmodSignatureFields(id_type, si.signer.split(b"\0", 1)[0], si.key_id,
                                   PKEY_HASH_ALGO[si.hash].encode(), si.blob)
    try:
        p7 = parse_pkcs7(si.blob)
    except SignatureError:
        return None
    if p7.skid is not None:              # d2i_PKCS7 cannot represent a CMS SKID signer
        return None
    signer = b""
    if p7.issuer_entries:
        hit = next((e for e in p7.issuer_entries if e.oid == OID_COMMON_NAME),
                   p7.issuer_entries[-1])
        signer = hit.value.split(b"\0", 1)[0]
    return KmodSignatureFields(id_type, signer, p7.serial_magnitude,
                               p7.digest_algo.encode(), p7.signature)
