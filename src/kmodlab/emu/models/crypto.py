"""Crypto API registration (crypto/algapi.c, crypto/shash.c) for hash algorithms.

``crypto_register_shash`` runs the kernel's checks (``shash_prepare_alg``: digest/desc/state
size limits and export/import pairing; ``crypto_check_alg``: names, alignmask, blocksize,
priority; ``__crypto_register_alg``: a clash of cra_name/cra_driver_name with an algorithm
already in the list → -EEXIST), sets the type bits and refcount in the module's
``struct crypto_alg`` as the kernel does, and records the algorithm in
``emu.state["crypto"]`` — the sandbox's ``crypto_alg_list``, persisted by the caller so that
exit's ``crypto_unregister_shash`` finds it.  Unregistering an algorithm that is not registered
warns "Algorithm %s is not registered", as the kernel's WARN does.

Layouts are Debian 6.1 amd64's (checked against md4.ko's .data: ``struct shash_alg`` is 480
bytes, ``base`` at 96; in ``struct crypto_alg`` cra_flags 32, cra_blocksize 36,
cra_alignmask 44, cra_priority 48, cra_refcnt 52, cra_name 56, cra_driver_name 184,
cra_module 376).  Debian's kernel runs the crypto manager's self-tests when an algorithm
registers (CONFIG_CRYPTO_MANAGER=y, tests not disabled); the sandbox does not model them: they
do not change what registration returns outside FIPS mode, but their log lines ("alg: No test
for …") are missing (the QEMU oracle names this difference).
"""
from __future__ import annotations

from ..layouts import layout
from ..registry import data, model

EINVAL, EEXIST = 22, 17
# Struct members are (struct, member) keys of emu/layouts.py, read from the running kernel's
# BTF (this file is per profile): Linux 6.12 moved shash_alg's sizes behind a union with
# hash_alg_common and skcipher_alg's behind skcipher_alg_common, and shrank kpp_alg/akcipher_alg.
LAYOUT = layout("crypto")


def _o(emu, struct: str, member: str) -> int:
    return LAYOUT.of(emu)[struct, member]


def SHASH(emu, m: str) -> int:
    return _o(emu, "shash_alg", m)


def CRA(emu, m: str) -> int:
    return _o(emu, "crypto_alg", m)


CRYPTO_MAX_ALG_NAME = 128
CRYPTO_ALG_TYPE_MASK = 0xF
CRYPTO_ALG_TYPE_CIPHER = 0x1
CRYPTO_ALG_TYPE_SHASH = 0xE
CRYPTO_ALG_DEAD = 0x20
HASH_MAX_DIGESTSIZE, HASH_MAX_DESCSIZE, HASH_MAX_STATESIZE = 64, 8 + 360, 512
MAX_ALGAPI_ALIGNMASK, MAX_ALGAPI_BLOCKSIZE = 63, 160


def _names(emu, alg: int) -> tuple[str, str]:
    def s(off):
        return emu.cstr(alg + off, CRYPTO_MAX_ALG_NAME).decode("latin-1")
    return s(CRA(emu, "cra_name")), s(CRA(emu, "cra_driver_name"))


def _algs(emu) -> list[dict]:
    return emu.state.setdefault("crypto", [])


def crypto_check_alg(emu, alg: int) -> int:
    name, driver = _names(emu, alg)
    mask = emu.read_u(alg + CRA(emu, "cra_alignmask"), 4)
    if not name or not driver:
        return -EINVAL
    if mask & (mask + 1) or mask > MAX_ALGAPI_ALIGNMASK:
        return -EINVAL
    if emu.read_u(alg + CRA(emu, "cra_blocksize"), 4) > MAX_ALGAPI_BLOCKSIZE:
        return -EINVAL
    if emu.read_s(alg + CRA(emu, "cra_priority"), 4) < 0:
        return -EINVAL
    emu.write_u(alg + CRA(emu, "cra_refcnt"), 4, 1)
    return 0


def crypto_register_alg(emu, alg: int, kind: str) -> int:
    emu.write_u(alg + CRA(emu, "cra_flags"), 4, emu.read_u(alg + CRA(emu, "cra_flags"), 4) & ~CRYPTO_ALG_DEAD)
    err = crypto_check_alg(emu, alg)
    if err:
        return err
    name, driver = _names(emu, alg)
    for q in _algs(emu):
        if q["alg"] == alg or q["driver"] == name or q["name"] == driver:
            return -EEXIST
    _algs(emu).append({"alg": alg, "name": name, "driver": driver, "type": kind,
                       "priority": emu.read_s(alg + CRA(emu, "cra_priority"), 4),
                       "module": emu.read_u(alg + CRA(emu, "cra_module"), 8)})
    emu.note(f"{kind} {driver} ({name})")
    return 0


def crypto_unregister_alg(emu, alg: int) -> None:
    algs = _algs(emu)
    for i, q in enumerate(algs):
        if q["alg"] == alg:
            del algs[i]
            return
    _, driver = _names(emu, alg)
    emu.printk(4, f"Algorithm {driver} is not registered\n")


def shash_prepare_alg(emu, alg: int) -> int:
    if (emu.read_u(alg + SHASH(emu, "digestsize"), 4) > HASH_MAX_DIGESTSIZE
            or emu.read_u(alg + SHASH(emu, "descsize"), 4) > HASH_MAX_DESCSIZE
            or emu.read_u(alg + SHASH(emu, "statesize"), 4) > HASH_MAX_STATESIZE):
        return -EINVAL
    if bool(emu.read_u(alg + SHASH(emu, "export"), 8)) != bool(emu.read_u(alg + SHASH(emu, "import"), 8)):
        return -EINVAL
    base = alg + SHASH(emu, "base")
    flags = emu.read_u(base + CRA(emu, "cra_flags"), 4)
    emu.write_u(base + CRA(emu, "cra_flags"), 4, (flags & ~CRYPTO_ALG_TYPE_MASK) | CRYPTO_ALG_TYPE_SHASH)
    if not emu.read_u(alg + SHASH(emu, "export"), 8):    # the default export copies the descriptor
        emu.write_u(alg + SHASH(emu, "statesize"), 4, emu.read_u(alg + SHASH(emu, "descsize"), 4))
    return 0


@model("crypto_register_shash")
def crypto_register_shash(emu, alg):
    err = shash_prepare_alg(emu, alg)
    return err or crypto_register_alg(emu, alg + SHASH(emu, "base"), "shash")


@model("crypto_unregister_shash")
def crypto_unregister_shash(emu, alg):
    crypto_unregister_alg(emu, alg + SHASH(emu, "base"))


@model("crypto_register_shashes")
def crypto_register_shashes(emu, algs, count):
    for i in range(count):
        err = crypto_register_shash(emu, algs + i * SHASH(emu, "sizeof"))
        if err:
            for j in range(i - 1, -1, -1):
                crypto_unregister_shash(emu, algs + j * SHASH(emu, "sizeof"))
            return err
    return 0


@model("crypto_unregister_shashes")
def crypto_unregister_shashes(emu, algs, count):
    for i in range(count - 1, -1, -1):
        crypto_unregister_shash(emu, algs + i * SHASH(emu, "sizeof"))


# --- ciphers and other plain algorithms, templates ----------------------------------------------


@model("crypto_register_alg")
def crypto_register_alg_model(emu, alg):
    return crypto_register_alg(emu, alg, "alg")


@model("crypto_unregister_alg")
def crypto_unregister_alg_model(emu, alg):
    crypto_unregister_alg(emu, alg)


@model("crypto_register_algs")
def crypto_register_algs(emu, algs, count):
    for i in range(count):
        err = crypto_register_alg(emu, algs + i * CRA(emu, "sizeof"), "alg")
        if err:
            for j in range(i - 1, -1, -1):
                crypto_unregister_alg(emu, algs + j * CRA(emu, "sizeof"))
            return err
    return 0


@model("crypto_unregister_algs")
def crypto_unregister_algs(emu, algs, count):
    for i in range(count):
        crypto_unregister_alg(emu, algs + i * CRA(emu, "sizeof"))


def _templates(emu) -> list[dict]:
    return emu.state.setdefault("crypto_templates", [])


@model("crypto_register_template")
def crypto_register_template(emu, tmpl):
    """crypto/algapi.c: -EEXIST if the same struct is already registered, else list it."""
    name = emu.cstr(tmpl + _o(emu, "crypto_template", "name"), CRYPTO_MAX_ALG_NAME).decode("latin-1")
    if any(t["tmpl"] == tmpl for t in _templates(emu)):
        return -EEXIST
    _templates(emu).append({"tmpl": tmpl, "name": name,
                            "module": emu.read_u(tmpl + _o(emu, "crypto_template", "module"), 8)})
    emu.note(f"template {name}")
    return 0


@model("crypto_unregister_template")
def crypto_unregister_template(emu, tmpl):
    ts = _templates(emu)
    for i, t in enumerate(ts):
        if t["tmpl"] == tmpl:
            del ts[i]
            return
    emu.printk(4, "WARNING: crypto_unregister_template: template not registered\n")


@model("crypto_register_templates")
def crypto_register_templates(emu, tmpls, count):
    for i in range(count):
        err = crypto_register_template(emu, tmpls + i * _o(emu, "crypto_template", "sizeof"))
        if err:
            for j in range(i - 1, -1, -1):
                crypto_unregister_template(emu, tmpls + j * _o(emu, "crypto_template", "sizeof"))
            return err
    return 0


@model("crypto_unregister_templates")
def crypto_unregister_templates(emu, tmpls, count):
    for i in range(count - 1, -1, -1):
        crypto_unregister_template(emu, tmpls + i * _o(emu, "crypto_template", "sizeof"))


# --- the other algorithm types (crypto/skcipher.c, aead.c, ahash.c, rng.c, kpp.c, akcipher.c,
# scompress.c) ----------------------------------------------------------------------------------
# Each <type>_prepare_alg checks its sizes, sets the type bits in cra_flags (cra_type points at
# the kernel's static crypto_<type>_type, whose address the profile does not know: not
# written), then the common crypto_register_alg runs.  Offsets of ``base`` and the checked
# fields are this kernel's (BTF); the strides of the *_algs helpers are sizeof(struct <type>_alg).
# The self-tests cryptomgr runs on a registered algorithm (in a kernel thread) are not run;
# outside FIPS mode their result does not change what registration returns.  (Linux 6.12's
# skcipher statesize limit, PAGE_SIZE / 2, is not checked: no module comes near it.)
PAGE_SIZE = 4096
CRYPTO_ALG_TYPE = {"aead": 0x3, "skcipher": 0x5, "akcipher": 0x6, "kpp": 0x8,
                   "scomp": 0xB, "rng": 0xC, "ahash": 0xF}
ALG_BASE = {"skcipher": "base", "aead": "base", "ahash": "halg.base", "rng": "base",
            "kpp": "base", "akcipher": "base", "scomp": "base"}


def _base(emu, kind: str) -> int:
    return _o(emu, f"{kind}_alg", ALG_BASE[kind])


def _size(emu, kind: str) -> int:
    return _o(emu, f"{kind}_alg", "sizeof")


def _prepare(emu, kind: str, alg: int) -> int:
    base = alg + _base(emu, kind)
    st = f"{kind}_alg"

    def u32(m):
        return emu.read_u(alg + _o(emu, st, m), 4)

    def set32(m, v):
        emu.write_u(alg + _o(emu, st, m), 4, v)
    blocksize = emu.read_u(base + CRA(emu, "cra_blocksize"), 4)
    if kind == "skcipher":
        if max(u32("ivsize"), u32("chunksize"), u32("walksize")) > PAGE_SIZE // 8:
            return -EINVAL
        if not u32("chunksize"):
            set32("chunksize", blocksize)
        if not u32("walksize"):
            set32("walksize", u32("chunksize"))
    elif kind == "aead":
        if max(u32("maxauthsize"), u32("ivsize")) > PAGE_SIZE // 8:
            return -EINVAL
        if not u32("chunksize"):
            set32("chunksize", blocksize)
    elif kind == "ahash":
        if (u32("halg.digestsize") > HASH_MAX_DIGESTSIZE or u32("halg.statesize") == 0
                or u32("halg.statesize") > HASH_MAX_STATESIZE):
            return -EINVAL
    elif kind == "rng":
        if u32("seedsize") > PAGE_SIZE // 8:
            return -EINVAL
    flags = emu.read_u(base + CRA(emu, "cra_flags"), 4)
    emu.write_u(base + CRA(emu, "cra_flags"), 4,
                (flags & ~CRYPTO_ALG_TYPE_MASK) | CRYPTO_ALG_TYPE[kind])
    return 0


def _register_one(emu, kind: str, alg: int) -> int:
    return _prepare(emu, kind, alg) or crypto_register_alg(emu, alg + _base(emu, kind), kind)


def _register_family(kind: str) -> None:
    def reg(emu, alg):
        return _register_one(emu, kind, alg)

    def unreg(emu, alg):
        crypto_unregister_alg(emu, alg + _base(emu, kind))

    def reg_many(emu, algs, count):
        for i in range(count):
            err = _register_one(emu, kind, algs + i * _size(emu, kind))
            if err:
                for j in range(i - 1, -1, -1):
                    unreg(emu, algs + j * _size(emu, kind))
                return err
        return 0

    def unreg_many(emu, algs, count):
        for i in range(count - 1, -1, -1):
            unreg(emu, algs + i * _size(emu, kind))

    model(f"crypto_register_{kind}")(reg)
    model(f"crypto_unregister_{kind}")(unreg)
    plural = {"ahash": "ahashes"}.get(kind, f"{kind}s")
    model(f"crypto_register_{plural}")(reg_many)
    model(f"crypto_unregister_{plural}")(unreg_many)


for _kind in ALG_BASE:
    _register_family(_kind)


# --- allocating a hash transform (crypto/api.c, crypto/shash.c) ---------------------------------
# crypto_alloc_shash(name, type, mask) is crypto_alloc_tfm(name, &crypto_shash_type, …):
# the frontend narrows the lookup to CRYPTO_ALG_TYPE_SHASH algorithms; __crypto_alg_lookup
# takes an algorithm whose cra_driver_name is the name (exact) or else the highest-priority
# one whose cra_name is; when none is listed and CRYPTO_NOLOAD is not in mask, the kernel asks
# for "crypto-<name>" (and "crypto-<name>-all" unless a fallback was excluded) through
# request_module and looks again.  Still nothing → ERR_PTR(-ENOENT) (the larval finds no
# template).  The sandbox's algorithm list is ``emu.state["crypto"]`` (what modules
# registered); registered algorithms count as tested (the kernel marks them CRYPTO_ALG_TESTED
# once cryptomgr's self-test passes — or finds no test — which it always does outside FIPS
# mode; the sandbox runs no self-tests).  Algorithms built into Debian's vmlinux (md5, sha1,
# sha224, sha256, digest_null: CONFIG_CRYPTO_MD5/SHA1/SHA256/NULL2=y) are not in the list and
# their struct addresses are not in the profile, and names with a template (``hmac(sha256)``)
# need cryptomgr's template instantiation: both stop as Unmodelled rather than pretend.
# The transform: kzalloc(8 + sizeof(struct crypto_tfm) 32 + cra_ctxsize) — struct crypto_shash
# {descsize 0, base 8} with base {refcnt 0, crt_flags 4, node 8, exit 16, __crt_alg 24,
# __crt_ctx 32} (Debian 6.1 amd64 BTF) — descsize copied from the shash_alg, refcnt 1,
# CRYPTO_TFM_NEED_KEY when the algorithm has a setkey and no CRYPTO_ALG_OPTIONAL_KEY, then the
# algorithm's init_tfm (shash_alg 64; exit_tfm 72) runs as a callback into its module.
# (tfm->exit would point at shash.c's static crypto_shash_exit_tfm, address unknown: it holds 0
# and crypto_destroy_tfm finds exit_tfm through the algorithm instead.)  Handed-out transforms
# are listed in ``emu.state["crypto_tfms"]``; crypto_free_shash — the inline
# crypto_destroy_tfm(tfm, &tfm->base), NULL or ERR_PTR allowed — runs exit_tfm, then
# kfree_sensitive (zeroed, freed).
CRYPTO_NOLOAD, CRYPTO_ALG_NEED_FALLBACK, CRYPTO_ALG_OPTIONAL_KEY = 0x8000, 0x100, 0x4000
CRYPTO_TFM_NEED_KEY = 0x1
ENOENT = 2
BUILTIN_SHASH = {"md5": "md5-generic", "sha1": "sha1-generic", "sha224": "sha224-generic",
                 "sha256": "sha256-generic", "digest_null": "digest_null-generic"}


def _lookup(emu, name: str, type_: int, mask: int) -> dict | None:
    best = None
    for q in _algs(emu):
        flags = emu.read_u(q["alg"] + CRA(emu, "cra_flags"), 4)
        if (flags ^ type_) & mask:
            continue
        if q["driver"] == name:
            return q
        if q["name"] == name and (best is None or q["priority"] > best["priority"]):
            best = q
    return best


@model("crypto_alloc_shash")
def crypto_alloc_shash(emu, alg_name, type_, mask):
    from ..errors import Unmodelled
    from .driver import err_ptr
    from .kmod import request_module
    from .slab import kmalloc_flags
    name = emu.cstr(alg_name, CRYPTO_MAX_ALG_NAME).decode("latin-1")
    type_, mask = type_ & 0xFFFFFFFF, mask & 0xFFFFFFFF
    t = (type_ & ~CRYPTO_ALG_TYPE_MASK) | CRYPTO_ALG_TYPE_SHASH
    m = (mask & ~CRYPTO_ALG_TYPE_MASK) | CRYPTO_ALG_TYPE_MASK
    q = _lookup(emu, name, t, m)
    if q is None and not mask & CRYPTO_NOLOAD:
        request_module(emu, True, f"crypto-{name}")
        if not ((type_ ^ CRYPTO_ALG_NEED_FALLBACK) & mask & CRYPTO_ALG_NEED_FALLBACK):
            request_module(emu, True, f"crypto-{name}-all")
        q = _lookup(emu, name, t, m)
    if q is None:
        if name in BUILTIN_SHASH or name in BUILTIN_SHASH.values():
            raise Unmodelled(f"crypto_alloc_shash (algorithm {name} built into vmlinux)",
                             what=emu.what)
        if "(" in name:
            raise Unmodelled(f"crypto_alloc_shash (template instantiation of {name})",
                             what=emu.what)
        emu.note(f"{name}: not found")
        return err_ptr(ENOENT)
    alg = q["alg"]
    salg = alg - SHASH(emu, "base")
    mem = kmalloc_flags(emu, _o(emu, "crypto_shash", "base") + _o(emu, "crypto_tfm", "sizeof") + emu.read_u(alg + CRA(emu, "cra_ctxsize"), 4),
                        0xCC0 | 0x100)
    tfm = mem + _o(emu, "crypto_shash", "base")
    emu.write_u(tfm, 4, 1)                                  # refcnt
    emu.write_u(tfm + _o(emu, "crypto_tfm", "__crt_alg"), 8, alg)
    emu.write_u(tfm + 8, 4, 0xFFFFFFFF)                     # node NUMA_NO_NODE
    emu.write_u(mem, 4, emu.read_u(salg + SHASH(emu, "descsize"), 4))
    if emu.read_u(salg + SHASH(emu, "setkey"), 8) and \
            not emu.read_u(alg + CRA(emu, "cra_flags"), 4) & CRYPTO_ALG_OPTIONAL_KEY:
        emu.write_u(tfm + _o(emu, "crypto_tfm", "crt_flags"), 4, CRYPTO_TFM_NEED_KEY)
    init = emu.read_u(salg + SHASH(emu, "init_tfm"), 8)
    if init:
        err = emu.call_module(init, (mem,)) & 0xFFFFFFFF
        if err:
            emu.heap.kfree(emu.mm, mem)
            return err_ptr((1 << 32) - err)
    emu.state.setdefault("crypto_tfms", {})[str(mem)] = q["driver"]
    emu.note(f"{name} → {q['driver']}")
    return mem


@model("crypto_destroy_tfm")
def crypto_destroy_tfm(emu, mem, tfm):
    """crypto_free_shash(tfm) is crypto_destroy_tfm(tfm, &tfm->base) (an inline)."""
    from ..errors import Unmodelled
    from .driver import is_err
    from .slab import _kfree
    if not mem or is_err(mem):
        return
    if str(mem) not in emu.state.setdefault("crypto_tfms", {}):
        raise Unmodelled("crypto_destroy_tfm (a transform not allocated by crypto_alloc_shash)",
                         what=emu.what)
    alg = emu.read_u(tfm + _o(emu, "crypto_tfm", "__crt_alg"), 8)
    exit_ = emu.read_u(alg - SHASH(emu, "base") + SHASH(emu, "exit_tfm"), 8)
    if exit_:
        emu.call_module(exit_, (mem,))
    del emu.state["crypto_tfms"][str(mem)]
    emu.write(mem, bytes(_o(emu, "crypto_shash", "base") + _o(emu, "crypto_tfm", "sizeof") + emu.read_u(alg + CRA(emu, "cra_ctxsize"), 4)))
    _kfree(emu, mem, "kfree_sensitive")


# --- request queues (crypto/algapi.c; struct crypto_queue: list 0, backlog 16, qlen 24,
# max_qlen 28 in 6.1 and 6.12) ----------------------------------------------------------------


@model("crypto_init_queue")
def crypto_init_queue(emu, queue, max_qlen):
    """An empty queue: the list points at itself, the backlog at the list, qlen 0."""
    head = queue + _o(emu, "crypto_queue", "list")
    emu.write_u(head, 8, head)
    emu.write_u(head + 8, 8, head)
    emu.write_u(queue + _o(emu, "crypto_queue", "backlog"), 8, head)
    emu.write_u(queue + _o(emu, "crypto_queue", "qlen"), 4, 0)
    emu.write_u(queue + _o(emu, "crypto_queue", "max_qlen"), 4, max_qlen)


# crypto/fips.c: fips_enabled is set by the "fips=" boot parameter; the oracle's guests (and so
# the sandbox machine) boot without it: 0.
@data("fips_enabled", 4)
def fips_enabled(emu) -> bytes:
    cmdline = getattr(getattr(emu, "kernel", None), "cmdline", "") or ""
    if any(w.startswith("fips=") for w in cmdline.split()):
        from ..errors import Unmodelled
        raise Unmodelled("fips_enabled (the fips= boot parameter)", kind="data", what=emu.what)
    return bytes(4)
