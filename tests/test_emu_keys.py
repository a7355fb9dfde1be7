"""The key retention service and the X.509 asymmetric key parser (emu/models/keys.py), and
lib/ctype.c's table (emu/models/ctype.py).

The description rules are x509_fabricate_name's and x509_key_preparse's
(crypto/asymmetric_keys/x509_cert_parser.c, x509_public_key.c), checked on certificates made
here with ``cryptography``; C snippets lay struct key out as Linux 6.1's (description 168), the
same in 6.12; the real cfg80211 loads Debian's four compiled-in regulatory certificates.
"""
from __future__ import annotations

import datetime

import pytest

from kmodlab.emu import Unmodelled
from test_emu_models import _exports, insmod, kernel, run, tree  # noqa: F401  (fixtures)
from test_emu_support import needs_gcc

REAL_61_CFG80211 = [
    "cfg80211: Loading compiled-in X.509 certificates for regulatory database",
    "cfg80211: Loaded X.509 cert 'benh@debian.org: 577e021cb980e0e820821ba7b54b4961b8b4fadf'",
    "cfg80211: Loaded X.509 cert 'romain.perier@gmail.com: "
    "3abbc6ec146e09d1b6016ab9d6cf71dd233f0328'",
    "cfg80211: Loaded X.509 cert 'sforshee: 00b28ddf47aef9cea7'",
    "cfg80211: Loaded X.509 cert 'wens: 61c038651aabdcf94bd0ac7ff06c7248db18c600'",
]


def _cert(attrs, serial=0x1234, skid=True, key=None, issuer_attrs=None) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(oid, v) for oid, v in attrs])
    issuer = x509.Name([x509.NameAttribute(oid, v) for oid, v in issuer_attrs]) \
        if issuer_attrs else name
    t = datetime.datetime(2024, 1, 1)
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer)
         .public_key(key.public_key()).serial_number(serial)
         .not_valid_before(t).not_valid_after(t + datetime.timedelta(days=365)))
    if skid:
        b = b.add_extension(x509.SubjectKeyIdentifier(bytes(range(1, 21))), critical=False)
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _desc(blob: bytes) -> str:
    from kmodlab.emu.models.keys import x509_description
    return x509_description(blob)


def test_description_is_subject_and_key_id_or_serial():
    """x509_fabricate_name: "O: CN" unless CN starts with O or shares its first 7 bytes; CN
    alone, O alone, else the email address; then ": " and the SKID's hex, or the raw serial's
    (its DER content: a leading 00 when the top bit is set)."""
    from cryptography.x509.oid import NameOID as N
    hexid = bytes(range(1, 21)).hex()
    assert _desc(_cert([(N.ORGANIZATION_NAME, "Acme"), (N.COMMON_NAME, "Signer")])) \
        == f"Acme: Signer: {hexid}"
    assert _desc(_cert([(N.ORGANIZATION_NAME, "Debian"), (N.COMMON_NAME, "Debian Secure")])) \
        == f"Debian Secure: {hexid}"
    assert _desc(_cert([(N.ORGANIZATION_NAME, "Example Ltd"),
                        (N.COMMON_NAME, "Example Signer")])) == f"Example Signer: {hexid}"
    assert _desc(_cert([(N.COMMON_NAME, "first"), (N.COMMON_NAME, "last")])) \
        == f"last: {hexid}"
    assert _desc(_cert([(N.EMAIL_ADDRESS, "a@b.c"), (N.COUNTRY_NAME, "FR")])) \
        == f"a@b.c: {hexid}"
    assert _desc(_cert([(N.COMMON_NAME, "sforshee")], serial=0xB28DDF47AEF9CEA7, skid=False)) \
        == "sforshee: 00b28ddf47aef9cea7"
    assert _desc(_cert([(N.COMMON_NAME, "s")], serial=0x7F01, skid=False)) == "s: 7f01"


def test_refusals_are_the_kernels():
    """Not DER X.509: -EBADMSG (the ASN.1 decoder's); an EC curve the parser lacks: -ENOPKG;
    a self-signed certificate whose signature does not verify stops as Unmodelled."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID as N
    from kmodlab.emu.models.keys import _Fail
    with pytest.raises(_Fail) as e:
        _desc(b"\x30\x82\x01\x00" + b"\0" * 256)
    assert e.value.errno == 74
    with pytest.raises(_Fail) as e:
        _desc(_cert([(N.COMMON_NAME, "k1")], key=ec.generate_private_key(ec.SECP521R1())))
    assert e.value.errno == 65
    bad = bytearray(_cert([(N.COMMON_NAME, "selfsigned")]))
    bad[-3] ^= 0xFF                                             # inside the signature
    with pytest.raises(Unmodelled):
        _desc(bytes(bad))
    # issued by another name: not self-signed, the kernel does not check the signature
    assert _desc(_cert([(N.COMMON_NAME, "leaf")], issuer_attrs=[(N.COMMON_NAME, "ca")])) \
        .startswith("leaf: ")


def _c_bytes(blob: bytes) -> str:
    return ",".join(str(b) for b in blob)


KEY_EX = _exports(("keyring_alloc", 0xFFFFFFFF81A10000),
                  ("key_create_or_update", 0xFFFFFFFF81A10010),
                  ("key_put", 0xFFFFFFFF81A10020), ("register_key_type", 0xFFFFFFFF81A10030),
                  ("unregister_key_type", 0xFFFFFFFF81A10040),
                  ("x509_load_certificate_list", 0xFFFFFFFF81A10050))

KEY_HEADER = r'''
struct key;
struct key *keyring_alloc(const char *, unsigned int, unsigned int, const void *, unsigned int,
                          unsigned long, void *, struct key *);
void *key_create_or_update(void *, const char *, const char *, const void *, unsigned long,
                           unsigned int, unsigned long);
void key_put(struct key *);
int register_key_type(void *); void unregister_key_type(void *);
int x509_load_certificate_list(const unsigned char *, unsigned long, const struct key *);
#define DESC(k) (*(char **)((char *)(k) + 168))
#define USAGE(k) (*(int *)((char *)(k) + 0))
'''


@needs_gcc
def test_keyring_and_asymmetric_key_from_a_certificate():
    """keyring_alloc then key_create_or_update: the reference keeps the keyring ref's
    possession bit, ->description is the parser's, the keyring holds a reference (usage 2)
    until key_put and the keyring's last put frees the key; garbage is -EBADMSG."""
    from cryptography.x509.oid import NameOID as N
    blob = _cert([(N.COMMON_NAME, "wens")])
    src = KEY_HEADER + rf'''
    unsigned char cert[] = {{{_c_bytes(blob)}}};
    unsigned char junk[300] = {{0x30, 0x82, 0x01, 0x28}};
    char got[128]; long usage1, usage2, err, bit;
    long f(void) {{
        struct key *kr = keyring_alloc(".test", 0, 0, 0, 0x1f0b0000, 2, 0, 0);
        void *ref = key_create_or_update((void *)((unsigned long)kr | 1), "asymmetric", 0,
                                         cert, sizeof(cert), 0x1f030000, 0xe);
        struct key *k = (struct key *)((unsigned long)ref & ~1UL);
        bit = (unsigned long)ref & 1;
        for (int i = 0; i < 127 && DESC(k)[i]; i++) got[i] = DESC(k)[i];
        usage1 = USAGE(k);
        key_put(k);
        usage2 = USAGE(k);
        err = (long)key_create_or_update((void *)((unsigned long)kr | 1), "asymmetric", 0,
                                         junk, sizeof(junk), 0x1f030000, 0xe);
        key_put(kr);
        return 0; }}'''
    _, _, emu, b = run(src, KEY_EX, state={})
    assert emu.cstr(b.syms["got"]).decode() == "wens: " + bytes(range(1, 21)).hex()
    assert [emu.read_s(b.syms[n], 8) for n in ("bit", "usage1", "usage2", "err")] == [1, 2, 1, -74]
    assert emu.state["keys"] == {}


@needs_gcc
def test_key_types_register_once():
    """register_key_type: -EEXIST for a built-in type's name or a second registration;
    a "Key type %s registered" notice; unregister prints "… unregistered"."""
    src = KEY_HEADER + r'''
    struct kt { const char *name; char rest[168]; } a = {"psk"}, b = {"psk"}, u = {"user"};
    long f(void) { int x = register_key_type(&a), y = register_key_type(&b),
                   z = register_key_type(&u);
                   unregister_key_type(&a); return x * 10000 + y * 100 + z; }'''
    ret, log, *_ = run(src, KEY_EX, state={})
    assert ret == 0 * 10000 + (-17) * 100 + (-17)
    assert [t for _, t in log] == ["Key type psk registered", "Key type psk unregistered"]


@needs_gcc
def test_612_certificate_list(profile_612):
    """6.12's x509_load_certificate_list: one key per DER certificate, "Loaded X.509 cert"
    (no prefix), a bad one's error, and a tail that is not a certificate ends the list."""
    from cryptography.x509.oid import NameOID as N
    blob = _cert([(N.COMMON_NAME, "one")]) + _cert([(N.COMMON_NAME, "two")], skid=False,
                                                   serial=0x42)
    src = KEY_HEADER + rf'''
    unsigned char list[] = {{{_c_bytes(blob)}, 0x30, 0x82, 0x01, 0x00, 0, 0, 0, 0, 1, 2}};
    long f(void) {{
        struct key *kr = keyring_alloc(".t612", 0, 0, 0, 0x1f0b0000, 2, 0, 0);
        return x509_load_certificate_list(list, sizeof(list), kr); }}'''
    ret, log, emu, _ = run(src, KEY_EX, state={}, profile=profile_612)
    assert ret == 0
    assert [t for _, t in log] == [
        "Loaded X.509 cert 'one: " + bytes(range(1, 21)).hex() + "'",
        "Loaded X.509 cert 'two: 42'",
        "Problem parsing in-kernel X.509 certificate list"]
    (ring,) = [k for k in emu.state["keys"].values() if k["type"] == "keyring"]
    assert sorted(ring["links"]) == ["asymmetric:one: " + bytes(range(1, 21)).hex(),
                                     "asymmetric:two: 42"]


def test_ctype_table():
    """lib/ctype.c's classes: ASCII, no class for 128-159, Latin-1 letters above."""
    from kmodlab.emu.models.ctype import TABLE
    assert TABLE[ord(" ")] == 0xA0 and TABLE[ord("\t")] == 0x28 and TABLE[0] == 0x08
    assert TABLE[ord("a")] == 0x42 and TABLE[ord("g")] == 0x02 and TABLE[ord("F")] == 0x41
    assert TABLE[ord("7")] == 0x04 and TABLE[ord("~")] == 0x10 and TABLE[127] == 0x08
    assert TABLE[0x80] == 0 and TABLE[0xA0] == 0xA0 and TABLE[0xD7] == 0x10
    assert TABLE[0xC0] == 0x01 and TABLE[0xDF] == 0x02 and TABLE[0xF7] == 0x10


def test_cfg80211_loads_its_regulatory_certificates(kernel, machine, tree):
    """The real cfg80211: keyring ".builtin_regdb_keys" with Debian's four certificates,
    printed as the real 6.1 kernel prints them; its exit's key_put frees them all."""
    r = insmod(kernel, tree, "cfg80211")
    assert r.errno == 0, r.reason
    assert r.log[:5] == REAL_61_CFG80211
    keys = machine.emu_state["keys"]
    (ring,) = [k for k in keys.values() if k["type"] == "keyring"]
    assert ring["description"] == ".builtin_regdb_keys" and len(ring["links"]) == 4
    assert sorted(k["description"] for k in keys.values() if k["type"] == "asymmetric") \
        == sorted(line.split("'")[1] for line in REAL_61_CFG80211[1:])
    assert kernel.delete_module("cfg80211", 0).errno == 0
    assert machine.emu_state["keys"] == {}


@needs_gcc
def test_drop_reasons_subsys_slot():
    """net/core/skbuff.c: a subsystem's list fills its slot and unregister empties it; the
    core's slot (0) is the kernel's WARN path, not modelled."""
    ex = _exports(("drop_reasons_register_subsys", 0xFFFFFFFF81A10100),
                  ("drop_reasons_unregister_subsys", 0xFFFFFFFF81A10110))
    src = r'''
    struct drop_reason_list { const char *const *reasons; unsigned long n; };
    void drop_reasons_register_subsys(int, const struct drop_reason_list *);
    void drop_reasons_unregister_subsys(int);
    static const char *const names[] = {"A", "B"};
    const struct drop_reason_list l = {names, 2};
    long f(void) { drop_reasons_register_subsys(1, &l); return 0; }
    long g(void) { drop_reasons_unregister_subsys(1); return 0; }
    long h(void) { drop_reasons_register_subsys(0, &l); return 0; }'''
    state: dict = {}
    _, _, emu, b = run(src, ex, state=state)
    assert state["drop_reasons"] == {"1": b.syms["l"]}
    run(src, ex, fn="g", state=state)
    assert state["drop_reasons"] == {}
    with pytest.raises(Unmodelled):
        run(src, ex, fn="h", state={})
