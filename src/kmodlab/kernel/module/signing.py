"""Module signature verification (kernel/module/signing.c + kernel/module_signature.c).

The trailer is split off first: ``[ELF][PKCS#7 blob][struct module_signature][marker]``; every
later check uses the shortened length.  The PKCS#7 SignedData is decoded as the kernel's pkcs7_parser.c decodes it
(:class:`KernelPkcs7`) and verified for real against the profile's module-signing certificates
(RSA or ECDSA with the digest it names, over the ELF bytes).
"""
from __future__ import annotations

import copy
import functools
import struct

from ...errors import EBADMSG, EINVAL, EKEYREJECTED, ENODATA, ENOKEY, ENOPKG, EPERM
from ..printk import KERN_ERR, KERN_NOTICE, KERN_WARNING

KERN_DEFAULT = KERN_WARNING        # printk without a level: MESSAGE_LOGLEVEL_DEFAULT (4)
from .internal import (LoadError, LoadInfo, MODULE_INIT_IGNORE_MODVERSIONS,
                       MODULE_INIT_IGNORE_VERMAGIC)

MODULE_SIG_STRING = b"~Module signature appended~\n"
MODULE_SIGNATURE = struct.Struct(">BBBBB3sI")    # algo hash id_type signer_len key_id_len pad sig_len
PKEY_ID_PKCS7 = 2


def mod_check_sig(ms: bytes, file_len: int, name: str, printk) -> int:
    """Sanity of struct module_signature (module_signature.c); 0 or a negative errno."""
    algo, hash_, id_type, signer_len, key_id_len, pad, sig_len = MODULE_SIGNATURE.unpack(ms)
    if sig_len >= file_len - MODULE_SIGNATURE.size:
        return -EBADMSG
    if id_type != PKEY_ID_PKCS7:
        printk(KERN_ERR, f"{name}: not signed with expected PKCS#7 message")
        return -ENOPKG
    if algo or hash_ or signer_len or key_id_len or pad != b"\0\0\0":
        printk(KERN_ERR, f"{name}: PKCS#7 signature info has unexpected non-zero params")
        return -EBADMSG
    return 0


# Curves crypto/ecdsa.c offers for X.509 keys (ecdsa-nist-p192/p256/p384; p521 since 6.10,
# where module keys are at most P-384 in Debian).  Anything else: -ENOPKG, "unsupported crypto".
ECDSA_CURVES = ("secp192r1", "secp256r1", "secp384r1", "secp521r1")


def _der_int(n: int) -> bytes:
    """An INTEGER's content bytes (minimal two's complement), as an X.509 serial is encoded."""
    return n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big", signed=True)


@functools.lru_cache(maxsize=8)
def _keyring(ders: tuple[bytes, ...]) -> tuple:
    """The certificates parsed once, as the kernel loads its keyring once at boot: (cert, key)."""
    from cryptography import x509
    out = []
    for der in ders:
        cert = x509.load_der_x509_certificate(der)
        out.append((cert, cert.public_key()))
    return tuple(out)


def _find_key(p7: "KernelPkcs7", certificates: list[bytes]):
    """pkcs7_validate_trust_one without certificates in the message: the keyring's (cert, key)
    whose id is the SignerInfo's issuer+serial (or subjectKeyIdentifier)."""
    from cryptography import x509
    for cert, key in _keyring(tuple(certificates)):
        if p7.expect_skid:
            try:
                skid = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            except x509.ExtensionNotFound:
                continue
            if skid.value.digest == p7.raw_skid:
                return cert, key
        elif cert.issuer.public_bytes() == p7.raw_issuer and \
                _der_int(cert.serial_number) == p7.raw_serial:
            return cert, key
    return None


def verify_pkcs7_signature(content: bytes, blob: bytes, certificates: list[bytes],
                           printk=None, oid_nr: int | str = "?") -> int:
    """certs/system_keyring.c verify_pkcs7_signature for a module: 0 or a negative errno.

    pkcs7_parse_message (:class:`KernelPkcs7`: the kernel's decoding, its log lines and its
    errors in document order), the detached data supplied, pkcs7_verify's module rules (data
    type pkcs7-data, no authenticated attributes: -EKEYREJECTED), the digest, then the
    keyring: no key of that id → -ENOKEY; a key of another algorithm than the signature's, or
    a signature that does not verify → -EKEYREJECTED.  RSA (PKCS#1 v1.5) and ECDSA (X9.62)
    keys, as crypto/asymmetric_keys/public_key.c verifies them."""
    log = printk or (lambda level, text: None)
    try:
        p7 = pkcs7_parse_message(blob, log, oid_nr)
    except Pkcs7Error as e:
        return e.err
    if p7.signers == 0:
        return -EBADMSG
    if p7.data is not None:
        log(KERN_ERR, "PKCS#7 signature with non-detached data")
        return -EBADMSG
    if p7.data_type != "data":
        log(KERN_WARNING, "PKCS7: Invalid module sig (not pkcs7-data)")
        return -EKEYREJECTED
    if p7.authattrs:
        log(KERN_WARNING, "PKCS7: Invalid module sig (has authattrs)")
        return -EKEYREJECTED
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    algos = {"sha1": hashes.SHA1, "sha224": hashes.SHA224, "sha256": hashes.SHA256,
             "sha384": hashes.SHA384, "sha512": hashes.SHA512, "md5": hashes.MD5,
             "sha3-256": hashes.SHA3_256, "sha3-384": hashes.SHA3_384,
             "sha3-512": hashes.SHA3_512}
    if p7.digest not in algos:
        return -ENOPKG                  # no shash of that name: unsupported crypto
    found = _find_key(p7, certificates)
    if found is None:
        return -ENOKEY
    key, digest = found[1], algos[p7.digest]()
    if (p7.pkey_algo == "rsa") != isinstance(key, rsa.RSAPublicKey):
        return -EKEYREJECTED            # public_key_verify_signature: algorithms differ
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(p7.signature, content, padding.PKCS1v15(), digest)
        elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in ECDSA_CURVES:
            key.verify(p7.signature, content, ec.ECDSA(digest))
        else:
            return -ENOPKG
        return 0
    except InvalidSignature:
        return -EKEYREJECTED
    except (UnsupportedAlgorithm, ValueError):
        # a signature blob that is not a DER ECDSA-Sig-Value, or a digest/key mismatch
        return -EBADMSG if isinstance(key, ec.EllipticCurvePublicKey) else -ENOPKG


def mod_verify_sig(info: LoadInfo, certificates: list[bytes], printk,
                   oid_nr: int | str = "?") -> int:
    if info.len <= MODULE_SIGNATURE.size:
        return -EBADMSG
    ms = info.image[info.len - MODULE_SIGNATURE.size:info.len]
    err = mod_check_sig(ms, info.len, "module", printk)
    if err:
        return err
    sig_len = MODULE_SIGNATURE.unpack(ms)[-1]
    info.len -= sig_len + MODULE_SIGNATURE.size
    blob = info.image[info.len:info.len + sig_len]
    return verify_pkcs7_signature(info.image[:info.len], blob, certificates, printk, oid_nr)


def oid_registry_size(profile) -> int | str:
    """OID__NR of the kernel's enum OID (what pkcs7_parser.c prints for an unknown OID), from
    the profile's BTF when it recorded the enum; "?" when it did not."""
    try:
        return profile.enum_value("OID", "OID__NR")
    except Exception:
        return "?"


def module_sig_check(m, info: LoadInfo, flags: int) -> None:
    """Split off and verify the signature; soft failures only mark the module unsigned."""
    mangled = flags & (MODULE_INIT_IGNORE_MODVERSIONS | MODULE_INIT_IGNORE_VERMAGIC)
    err = -ENODATA
    reason = ""
    if not mangled and info.len > len(MODULE_SIG_STRING) and \
            info.image[info.len - len(MODULE_SIG_STRING):info.len] == MODULE_SIG_STRING:
        info.len -= len(MODULE_SIG_STRING)
        err = mod_verify_sig(info, m.profile.certificates, m.printk, oid_registry_size(m.profile))
        if err == 0:
            info.sig_ok = True
            return
    if err == -ENODATA:
        reason = "unsigned module"
    elif err == -ENOPKG:
        reason = "module with unsupported crypto"
    elif err == -ENOKEY:
        reason = "module with unavailable key"
    else:
        raise LoadError(err, "module_sig_check",
                        reason=f"module signature verification failed ({'malformed signature' if err == -EBADMSG else 'signature does not match'})")
    if m.sig_enforce:
        raise LoadError(EKEYREJECTED, "module_sig_check", f"Loading of {reason} is rejected")
    if m.lockdown:
        raise LoadError(EPERM, "module_sig_check",
                        f"Lockdown: {m.comm}: unsigned module loading is restricted; "
                        "see man kernel_lockdown.7", level=KERN_NOTICE)


# ---------------------------------------------------------------------------------------------
# crypto/asymmetric_keys/pkcs7_parser.c: the kernel's own decoding of the PKCS#7 message.
#
# The kernel decodes the blob with its ASN.1 BER decoder (lib/asn1_decoder.c) driven by the
# pkcs7.asn1 grammar; the grammar's actions run in document order as elements are matched (a
# constructed element's action when it ends), so which error wins depends on where the damage
# is.  Decoder rules kept here: a tag byte must match exactly (a SEQUENCE/SET may come without
# its constructed bit), high tag numbers are refused, lengths are short, 1- or 2-byte long
# forms or indefinite (constructed only), every element must fit in its container, a
# definite-length constructed element must be consumed exactly, an OPTIONAL element is skipped
# on a tag mismatch or at the container's end, and data after the outer element is ignored.
# Structural errors are -EBADMSG with nothing logged (the decoder's pr_debug).

PKCS7_OIDS = {   # the OID registry entries the PKCS#7 actions can meet (include/linux/oid_registry.h)
    "1.2.840.113549.1.7.1": "data", "1.2.840.113549.1.7.2": "signed_data",
    "1.2.840.113549.1.7.3": "enveloped_data", "1.2.840.113549.1.7.4": "signed_and_enveloped",
    "1.2.840.113549.1.7.5": "digested_data", "1.2.840.113549.1.7.6": "encrypted_data",
    "1.3.6.1.4.1.311.2.1.4": "msIndirectData",
    "1.2.840.113549.1.1.1": "rsaEncryption", "1.2.840.113549.1.1.2": "md2WithRSA",
    "1.2.840.113549.1.1.3": "md3WithRSA", "1.2.840.113549.1.1.4": "md4WithRSA",
    "1.2.840.113549.1.1.5": "sha1WithRSA", "1.2.840.113549.1.1.11": "sha256WithRSA",
    "1.2.840.113549.1.1.12": "sha384WithRSA", "1.2.840.113549.1.1.13": "sha512WithRSA",
    "1.2.840.113549.1.1.14": "sha224WithRSA",
    "1.2.840.10045.2.1": "id_ecPublicKey", "1.2.840.10045.4.1": "id_ecdsa_with_sha1",
    "1.2.840.10045.4.3.1": "id_ecdsa_with_sha224", "1.2.840.10045.4.3.2": "id_ecdsa_with_sha256",
    "1.2.840.10045.4.3.3": "id_ecdsa_with_sha384", "1.2.840.10045.4.3.4": "id_ecdsa_with_sha512",
    "1.2.840.113549.2.2": "md2", "1.2.840.113549.2.4": "md4", "1.2.840.113549.2.5": "md5",
    "1.3.14.3.2.26": "sha1", "2.16.840.1.101.3.4.2.1": "sha256", "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512", "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.8": "sha3_256", "2.16.840.1.101.3.4.2.9": "sha3_384",
    "2.16.840.1.101.3.4.2.10": "sha3_512", "1.2.156.10197.1.401": "sm3",
    "1.2.643.7.1.1.2.2": "gost2012Digest256", "1.2.643.7.1.1.2.3": "gost2012Digest512",
    "1.2.840.113549.1.9.1": "email_address", "1.2.840.113549.1.9.3": "contentType",
    "1.2.840.113549.1.9.4": "messageDigest", "1.2.840.113549.1.9.5": "signingTime",
    "1.2.840.113549.1.9.15": "smimeCapabilites",
    "2.5.4.3": "commonName", "2.5.4.4": "surname", "2.5.4.6": "countryName",
    "2.5.4.7": "locality", "2.5.4.8": "stateOrProvinceName", "2.5.4.10": "organizationName",
    "2.5.4.11": "organizationUnitName", "2.5.4.12": "title", "2.5.4.13": "description",
    "2.5.4.41": "name", "2.5.4.42": "givenName", "2.5.4.43": "initials",
    "2.5.4.44": "generationalQualifier", "1.3.132.0.34": "id_ansip384r1",
    "1.3.132.0.35": "id_ansip521r1", "1.2.840.10045.3.1.7": "id_prime256v1",
}
PKCS7_DIGESTS = {"md4": "md4", "md5": "md5", "sha1": "sha1", "sha256": "sha256",
                 "sha384": "sha384", "sha512": "sha512", "sha224": "sha224", "sm3": "sm3",
                 "sha3_256": "sha3-256", "sha3_384": "sha3-384", "sha3_512": "sha3-512",
                 "gost2012Digest256": "streebog256", "gost2012Digest512": "streebog512"}
PKCS7_PKEY_ALGOS = {"rsaEncryption": "rsa", "id_ecdsa_with_sha1": "ecdsa",
                    "id_ecdsa_with_sha224": "ecdsa", "id_ecdsa_with_sha256": "ecdsa",
                    "id_ecdsa_with_sha384": "ecdsa", "id_ecdsa_with_sha512": "ecdsa"}


def sprint_oid(v: bytes) -> str:
    """lib/oid_registry.c sprint_oid: the first byte as two arcs (n/40, n%40) as it is, then
    base-128 arcs; an arc cut off by the end → "(bad)" after what was printed."""
    if not v:
        return "(bad)"
    out = f"{v[0] // 40}.{v[0] % 40}"
    i = 1
    while i < len(v):
        n = v[i]
        i += 1
        num = n & 0x7F
        while n & 0x80:
            if i >= len(v):
                return out + "(bad)"
            n = v[i]
            i += 1
            num = (num << 7) | (n & 0x7F)
        out += f".{num}"
    return out


def oid_arcs(v: bytes) -> str | None:
    """The dotted OID as the registry's lookup sees it (None if badly encoded)."""
    if not v or v[-1] & 0x80:
        return None
    from ...lib.signature import oid_to_str
    return oid_to_str(v)


def pkcs7_parse_message(blob: bytes, printk, oid_nr) -> "KernelPkcs7":
    """The message decoded as pkcs7_parse_message does (raises Pkcs7Error).

    A module's message ends with its signature value (the SignerInfo's last element, an
    OCTET STRING whose content the decoder does not look into), and a kernel's modules are
    signed alike: their messages differ only there.  So a message that has the same length
    and the same bytes before the signature value as the last one decoded without a log line
    decodes the same way, but for its own signature value, which is all that is taken anew.
    That shape is memoised in :data:`_LAST_SHAPE` (a cache of this pure function, one entry)."""
    last = _LAST_SHAPE.get("p7")
    if last is not None and len(blob) == len(last.d) and \
            blob[:last.sig_at] == last.d[:last.sig_at]:
        p7 = copy.copy(last)
        p7.d, p7.printk = bytes(blob), printk
        p7.signature = p7.d[p7.sig_at:]
        return p7
    quiet = []
    p7 = KernelPkcs7(blob, lambda level, text: (quiet.append(text), printk(level, text)), oid_nr)
    p7.parse()
    if not quiet and p7.sig_at is not None and p7.sig_at + len(p7.signature) == len(p7.d):
        _LAST_SHAPE["p7"] = p7
    p7.printk = printk
    return p7


_LAST_SHAPE: dict[str, "KernelPkcs7"] = {}


class Pkcs7Error(Exception):
    def __init__(self, err: int):
        self.err = err


class KernelPkcs7:
    """What pkcs7_parse_message keeps of a module signature (one SignerInfo)."""

    def __init__(self, blob: bytes, printk, oid_nr: int):
        self.d = bytes(blob)
        self.printk = printk
        self.oid_nr = oid_nr                  # enum OID's OID__NR: what an unknown OID "is"
        self.last_oid: str | None = None
        self.version = 0
        self.data_type: str | None = None
        self.data: bytes | None = None
        self.expect_skid = False
        self.raw_issuer = b""
        self.raw_serial = b""
        self.raw_skid = b""
        self.digest: str | None = None
        self.pkey_algo: str | None = None
        self.signature = b""
        self.sig_at: int | None = None
        self.authattrs = False
        self.signers = 0

    # -- the decoder's element reading --
    def _header(self, dp: int, end: int):
        """(tag, content start, content end or None for indefinite)."""
        d = self.d
        if end - dp < 2:
            raise Pkcs7Error(-EBADMSG)
        tag = d[dp]
        if tag & 0x1F == 0x1F:
            raise Pkcs7Error(-EBADMSG)
        n = d[dp + 1]
        dp += 2
        if n == 0x80:
            if not tag & 0x20 or end - dp < 2:
                raise Pkcs7Error(-EBADMSG)
            return tag, dp, None
        if n > 0x80:
            k = n - 0x80
            if k > 2 or k > end - dp:
                raise Pkcs7Error(-EBADMSG)
            n = int.from_bytes(d[dp:dp + k], "big")
            dp += k
        if n > end - dp:
            raise Pkcs7Error(-EBADMSG)
        return tag, dp, dp + n

    def _indefinite_end(self, dp: int, end: int) -> int:
        """asn1_find_indefinite_length: the position after the EOC that closes [dp, …)."""
        while True:
            if end - dp < 2:
                raise Pkcs7Error(-EBADMSG)
            if self.d[dp] == 0 and self.d[dp + 1] == 0:
                return dp + 2
            tag, c, e = self._header(dp, end)
            dp = self._indefinite_end(c, end) if e is None else e

    @staticmethod
    def _matches(tag: int, want: int) -> bool:
        return ((want ^ tag) & ~(want & 0x20)) == 0

    def element(self, dp: int, end: int, want: int | None, optional: bool = False):
        """Match one element (``want`` None: ANY).  (tag, content start, content end or None,
        element end) or None when an OPTIONAL one is absent."""
        if optional and dp == end:
            return None
        if end - dp < 2:
            raise Pkcs7Error(-EBADMSG)
        tag = self.d[dp]
        if tag & 0x1F == 0x1F:
            raise Pkcs7Error(-EBADMSG)
        if want is not None and not self._matches(tag, want):
            if optional:
                return None
            raise Pkcs7Error(-EBADMSG)
        tag, c, e = self._header(dp, end)
        cons = (want is not None and want & 0x20) or (want is None and tag & 0x20)
        if e is None:
            if want is None or not cons:
                after = self._indefinite_end(c, end)
                return tag, c, after - 2, after
            return tag, c, None, None          # constructed, indefinite: the caller walks it
        return tag, c, e, e

    def constructed(self, dp: int, end: int, want: int, body, optional: bool = False,
                    of: bool = False):
        """A SEQUENCE/SET (or [n]) element whose content ``body(pos, end) -> pos`` parses
        (repeatedly when ``of``); returns (content start, content end, element end) or None."""
        got = self.element(dp, end, want, optional)
        if got is None:
            return None
        _tag, c, e, after = got
        if e is None:                              # indefinite: children, then the EOC
            p = c
            while True:
                if end - p < 2:
                    raise Pkcs7Error(-EBADMSG)
                if self.d[p] == 0:
                    if self.d[p + 1] != 0:
                        raise Pkcs7Error(-EBADMSG)
                    return c, p, p + 2
                p = body(p, end)
                if not of:
                    if end - p < 2 or self.d[p] != 0 or self.d[p + 1] != 0:
                        raise Pkcs7Error(-EBADMSG)
                    return c, p, p + 2
        p = body(c, e)
        while of and p < e:
            p = body(p, e)
        if p != e:
            raise Pkcs7Error(-EBADMSG)
        return c, e, after

    def primitive(self, dp: int, end: int, want: int | None, action=None,
                  optional: bool = False):
        got = self.element(dp, end, want, optional)
        if got is None:
            return dp
        _tag, c, e, after = got
        if action is not None:
            action(self.d[c:e], c)
        return after

    # -- the grammar (pkcs7.asn1) --
    def parse(self) -> None:
        def content_info(p, end):
            p = self.primitive(p, end, 0x06, self.note_oid)
            self.check_content_type()
            got = self.constructed(p, end, 0xA0, self.signed_data, optional=True)
            return got[2] if got else p
        self.constructed(0, len(self.d), 0x30, content_info)

    def note_oid(self, v: bytes, at: int) -> None:
        arcs = oid_arcs(v)
        self.last_oid = PKCS7_OIDS.get(arcs) if arcs else None
        if self.last_oid is None:
            self.printk(KERN_DEFAULT, f"PKCS7: Unknown OID: [{at}] {sprint_oid(v)}")

    def _oid_number(self) -> int:
        return self.oid_nr

    def check_content_type(self) -> None:
        if self.last_oid != "signed_data":
            self.printk(KERN_WARNING, "PKCS7: Only support pkcs7_signedData type")
            raise Pkcs7Error(-EINVAL)

    def alg_identifier(self, p, end):
        """SEQUENCE { algorithm OBJECT IDENTIFIER, parameters ANY OPTIONAL }: its body."""
        p = self.primitive(p, end, 0x06, self.note_oid)
        return self.primitive(p, end, None, optional=True)

    def signed_data(self, p, end):
        def body(p, end):
            p = self.primitive(p, end, 0x02, self.note_signeddata_version)
            # digestAlgorithms: SET OF or SEQUENCE OF DigestAlgorithmIdentifier
            got = self.constructed(p, end, 0x31, self._algs, optional=True, of=True)
            if got is None:
                got = self.constructed(p, end, 0x30, self._algs, of=True)
            p = got[2]
            p = self.constructed(p, end, 0x30, self.inner_content_info)[2]
            self.note_content()
            for want in (0xA0, 0xA2):              # certificates (a CHOICE, OPTIONAL)
                got = self.constructed(p, end, want, self._any_list, optional=True, of=True)
                if got is not None:
                    p = got[2]
                    break
            for want in (0xA1, 0xA3):              # crls
                got = self.constructed(p, end, want, self._any_list, optional=True, of=True)
                if got is not None:
                    p = got[2]
                    break
            got = self.constructed(p, end, 0x31, self.signer_info_el, optional=True, of=True)
            if got is None:
                got = self.constructed(p, end, 0x30, self.signer_info_el, of=True)
            return got[2]
        return self.constructed(p, end, 0x30, body)[2]

    def _algs(self, p, end):
        return self.constructed(p, end, 0x30, self.alg_identifier)[2]

    def _any_list(self, p, end):
        return self.primitive(p, end, None)

    def inner_content_info(self, p, end):
        # contentType ContentType ({ pkcs7_note_OID }): the type's action and the element's
        def twice(v, at):
            self.note_oid(v, at)
            self.note_oid(v, at)
        p = self.primitive(p, end, 0x06, twice)
        got = self.constructed(p, end, 0xA0, lambda q, e: self.primitive(q, e, None, self.note_data),
                               optional=True)
        return got[2] if got else p

    def note_signeddata_version(self, v: bytes, at: int) -> None:
        if len(v) != 1 or v[0] not in (1, 3):
            self.printk(KERN_WARNING, "PKCS7: Unsupported SignedData version")
            raise Pkcs7Error(-EINVAL)
        self.version = v[0]

    def note_content(self) -> None:
        if self.last_oid not in ("data", "msIndirectData"):
            self.printk(KERN_WARNING, f"PKCS7: Unsupported data type {self._oid_number()}")
            raise Pkcs7Error(-EINVAL)
        self.data_type = self.last_oid

    def note_data(self, v: bytes, at: int) -> None:
        self.data = v

    def signer_info_el(self, p, end):
        return self.constructed(p, end, 0x30, self.signer_info)[2]

    def signer_info(self, p, end):
        p = self.primitive(p, end, 0x02, self.note_signerinfo_version)
        # sid: issuerAndSerialNumber SEQUENCE | [0] IMPLICIT subjectKeyIdentifier
        got = self.constructed(p, end, 0x30, self.issuer_and_serial, optional=True)
        if got is not None:
            p = got[2]
        else:
            got = self.element(p, end, 0x80)
            self.raw_skid = self.d[got[1]:got[2]]
            p = got[3]
        p = self.constructed(p, end, 0x30, self.alg_identifier)[2]
        self.note_digest_algo()
        for want in (0xA0, 0xA2):                  # authenticatedAttributes
            got = self.constructed(p, end, want, self._any_list, optional=True, of=True)
            if got is not None:
                self.authattrs = True
                p = got[2]
                break
        p = self.constructed(p, end, 0x30, self.alg_identifier)[2]
        self.note_pkey_algo()
        p = self.primitive(p, end, 0x04, self.note_signature)
        for want in (0xA1, 0xA3):                  # unauthenticatedAttributes
            got = self.constructed(p, end, want, self._any_list, optional=True, of=True)
            if got is not None:
                p = got[2]
                break
        self.signers += 1
        return p

    def issuer_and_serial(self, p, end):
        def ava(q, e):
            def twice(v, at):
                self.note_oid(v, at)
                self.note_oid(v, at)
            q = self.primitive(q, e, 0x06, twice)
            return self.primitive(q, e, None)
        rdn = lambda q, e: self.constructed(q, e, 0x31,                      # noqa: E731
                                            lambda r, f: self.constructed(r, f, 0x30, ava)[2],
                                            of=True)[2]
        start = p
        got = self.constructed(p, end, 0x30, rdn, of=True)
        self.raw_issuer = self.d[start:got[2]]
        p = got[2]
        got = self.element(p, end, 0x02)
        self.raw_serial = self.d[got[1]:got[2]]
        return got[3]

    def note_signerinfo_version(self, v: bytes, at: int) -> None:
        if len(v) != 1 or v[0] not in (1, 3):
            self.printk(KERN_WARNING, "PKCS7: Unsupported SignerInfo version")
            raise Pkcs7Error(-EINVAL)
        if (v[0] == 1) != (self.version == 1):
            self.printk(KERN_WARNING, "PKCS7: SignedData-SignerInfo version mismatch")
            raise Pkcs7Error(-EBADMSG)
        self.expect_skid = v[0] == 3

    def note_digest_algo(self) -> None:
        if self.last_oid not in PKCS7_DIGESTS:
            self.printk(KERN_DEFAULT, f"Unsupported digest algo: {self._oid_number()}")
            raise Pkcs7Error(-ENOPKG)
        self.digest = PKCS7_DIGESTS[self.last_oid]

    def note_pkey_algo(self) -> None:
        if self.last_oid not in PKCS7_PKEY_ALGOS:
            self.printk(KERN_DEFAULT, f"Unsupported pkey algo: {self._oid_number()}")
            raise Pkcs7Error(-ENOPKG)
        self.pkey_algo = PKCS7_PKEY_ALGOS[self.last_oid]

    def note_signature(self, v: bytes, at: int) -> None:
        self.signature = v
        self.sig_at = at if self.signers == 0 else None      # one SignerInfo: where its value is
