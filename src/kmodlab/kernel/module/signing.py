"""Module signature verification (kernel/module/signing.c + kernel/module_signature.c).

The trailer is split off first: ``[ELF][PKCS#7 blob][struct module_signature][marker]``; every
later check uses the shortened length.  The PKCS#7 SignedData is verified for real against the
profile's module-signing certificates (RSA + the digest it names, over the ELF bytes).
"""
from __future__ import annotations

import struct

from ...errors import EBADMSG, EKEYREJECTED, ENODATA, ENOKEY, ENOPKG, EPERM
from ..printk import KERN_ERR
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


def verify_pkcs7_signature(content: bytes, blob: bytes, certificates: list[bytes]) -> int:
    """Verify a detached PKCS#7 SignedData over ``content``: 0, -EBADMSG (malformed),
    -ENOPKG (unsupported algorithm), -ENOKEY (signer not in the keyring), -EKEYREJECTED (bad).

    RSA (PKCS#1 v1.5) and ECDSA (X9.62 DER signature) keys, with the SHA-1/SHA-2 digest the
    SignerInfo names, as crypto/asymmetric_keys/public_key.c verifies them."""
    from ...lib.signature import parse_pkcs7
    try:
        p7 = parse_pkcs7(blob)
    except Exception:
        return -EBADMSG
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    algos = {"sha1": hashes.SHA1, "sha224": hashes.SHA224, "sha256": hashes.SHA256,
             "sha384": hashes.SHA384, "sha512": hashes.SHA512}
    if p7.digest_algo not in algos:
        return -ENOPKG
    if p7.signed_attrs is not None:
        return -ENOPKG                  # modules are signed without authenticated attributes
    for der in certificates:
        cert = x509.load_der_x509_certificate(der)
        if cert.serial_number != int.from_bytes(p7.serial, "big") or \
                cert.issuer.public_bytes() != p7.issuer_der:
            continue
        key, digest = cert.public_key(), algos[p7.digest_algo]()
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
    return -ENOKEY


def mod_verify_sig(info: LoadInfo, certificates: list[bytes], printk) -> int:
    if info.len <= MODULE_SIGNATURE.size:
        return -EBADMSG
    ms = info.image[info.len - MODULE_SIGNATURE.size:info.len]
    err = mod_check_sig(ms, info.len, "module", printk)
    if err:
        return err
    sig_len = MODULE_SIGNATURE.unpack(ms)[-1]
    info.len -= sig_len + MODULE_SIGNATURE.size
    blob = info.image[info.len:info.len + sig_len]
    return verify_pkcs7_signature(info.image[:info.len], blob, certificates)


def module_sig_check(m, info: LoadInfo, flags: int) -> None:
    """Split off and verify the signature; soft failures only mark the module unsigned."""
    mangled = flags & (MODULE_INIT_IGNORE_MODVERSIONS | MODULE_INIT_IGNORE_VERMAGIC)
    err = -ENODATA
    reason = ""
    if not mangled and info.len > len(MODULE_SIG_STRING) and \
            info.image[info.len - len(MODULE_SIG_STRING):info.len] == MODULE_SIG_STRING:
        info.len -= len(MODULE_SIG_STRING)
        err = mod_verify_sig(info, m.profile.certificates, m.printk)
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
                        "Lockdown: insmod: unsigned module loading is restricted; see man kernel_lockdown.7")
