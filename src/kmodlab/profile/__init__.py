"""A target kernel's description: what load_module needs to know about the kernel it runs in.

A :class:`Profile` holds the kernel's release, UTS version and vermagic, its whole ``.config``,
every vmlinux export with its link-time address (and CRC, GPL-ness, namespace, kind of memory),
the exports of the kernel's own modules (from Module.symvers), the module-signing certificates,
the built-in modules and the size of the static per-CPU area.  Profiles are built by importers
(:func:`import_debian` reads a Debian linux-image + linux-headers pair) and stored as one
zstd-compressed JSON file.  One profile is embedded (``data/``) and is the default.

Conventions
-----------
* ``config`` keys have the ``CONFIG_`` prefix stripped (``config["MODVERSIONS"] == "y"``);
  ``# CONFIG_X is not set`` options are absent; string values are unquoted
  (``config["MODULE_SIG_HASH"] == "sha256"``).  :meth:`Profile.enabled` answers y-or-m.
* ``exports`` and ``module_exports`` are read-only mappings (:class:`ExportTable`): they behave
  like ``dict[str, Export]`` for lookup, ``in``, ``len``, iteration, ``items()``/``values()``
  and ``|``, but build each :class:`Export` on first access so that loading stays fast.
  Iteration order is the kernel's: ``__ksymtab`` then ``__ksymtab_gpl`` (each sorted by name),
  and Module.symvers order for module exports.
* A profile is shared (``load_profile`` caches it per file): treat it as read-only.
"""
from __future__ import annotations

import base64
import bisect
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import KmodlabError, UsageError

__all__ = ["Export", "ExportTable", "Profile", "load_profile", "list_profiles", "save_profile",
           "import_debian", "profile_dir", "DEFAULT_PROFILE", "PROFILE_SUFFIX"]

DEFAULT_PROFILE = "debian-6.1.0-56-amd64"
PROFILE_SUFFIX = ".kprofile"
FORMAT = "kmodlab-profile"
FORMAT_VERSION = 1
DATA_DIR = Path(__file__).resolve().parent / "data"

KINDS = ("text", "rodata", "data", "bss", "percpu", "abs")


@dataclass(frozen=True)
class Export:
    name: str
    addr: int            # link-time address (vmlinux); per-CPU: offset in .data..percpu; 0 for modules
    crc: int | None      # modversions CRC
    gpl: bool            # EXPORT_SYMBOL_GPL
    namespace: str       # "" when none
    owner: str           # "vmlinux" or the module path from Module.symvers ("drivers/net/dummy")
    kind: str            # text/rodata/data/bss/percpu/abs for vmlinux; "" for module exports

    @property
    def owner_module(self) -> str | None:
        """Module name of the owner ("dummy"), or None for vmlinux."""
        if self.owner == "vmlinux":
            return None
        return self.owner.rsplit("/", 1)[-1].replace("-", "_")


# -- the compact per-export text (one tab-separated string per name) -------------------------

def _encode_vmlinux(e: Export) -> str:
    crc = "" if e.crc is None else f"{e.crc:08x}"
    return f"{e.addr:x}\t{crc}\t{'G' if e.gpl else ''}\t{e.namespace}\t{e.kind}"


# Building a frozen dataclass through its __init__ costs several microseconds per field set;
# an insmod reads all 10,503 vmlinux exports, so the decoders fill the instance dictionary in
# one step instead (the result is an ordinary Export: same fields, equality, repr, frozenness).
_new = object.__new__
_set = object.__setattr__


def _decode_vmlinux(name: str, s: str) -> Export:
    a, c, g, ns, kind = s.split("\t")
    e = _new(Export)
    _set(e, "__dict__", {"name": name, "addr": int(a, 16), "crc": int(c, 16) if c else None,
                         "gpl": g == "G", "namespace": ns, "owner": "vmlinux", "kind": kind})
    return e


def _bulk_vmlinux(raw: dict[str, str], cache: dict[str, Export]) -> dict[str, Export]:
    out = {}
    for name, s in raw.items():
        e = cache.get(name)
        if e is None:
            a, c, g, ns, kind = s.split("\t")
            e = _new(Export)
            _set(e, "__dict__", {"name": name, "addr": int(a, 16),
                                 "crc": int(c, 16) if c else None, "gpl": g == "G",
                                 "namespace": ns, "owner": "vmlinux", "kind": kind})
        out[name] = e
    return out


def _encode_module(e: Export) -> str:
    crc = "" if e.crc is None else f"{e.crc:08x}"
    return f"{crc}\t{'G' if e.gpl else ''}\t{e.namespace}\t{e.owner}"


def _decode_module(name: str, s: str) -> Export:
    c, g, ns, owner = s.split("\t")
    e = _new(Export)
    _set(e, "__dict__", {"name": name, "addr": 0, "crc": int(c, 16) if c else None,
                         "gpl": g == "G", "namespace": ns, "owner": owner, "kind": ""})
    return e


def _bulk_module(raw: dict[str, str], cache: dict[str, Export]) -> dict[str, Export]:
    out = {}
    for name, s in raw.items():
        e = cache.get(name)
        if e is None:
            c, g, ns, owner = s.split("\t")
            e = _new(Export)
            _set(e, "__dict__", {"name": name, "addr": 0, "crc": int(c, 16) if c else None,
                                 "gpl": g == "G", "namespace": ns, "owner": owner, "kind": ""})
        out[name] = e
    return out


_BULK = {_decode_vmlinux: _bulk_vmlinux, _decode_module: _bulk_module}


class ExportTable(Mapping):
    """Read-only ``name → Export`` mapping that decodes lazily (see the module docstring).

    It is built from parallel lists of names and encoded records, or from two newline-joined
    blocks of them (the profile file's form): the name index itself is then only built on
    first use, so a table nobody reads (module_exports during insmod) costs nothing."""

    __slots__ = ("_raw", "_blocks", "_cache", "_decode")

    def __init__(self, raw: Mapping[str, str] | None = None, decode=_decode_vmlinux,
                 blocks: tuple[str, str] | None = None):
        self._raw: dict[str, str] | None = dict(raw) if raw is not None else None
        self._blocks = blocks
        if self._raw is None and blocks is None:
            self._raw = {}
        self._cache: dict[str, Export] = {}
        self._decode = decode

    @classmethod
    def of(cls, exports: Mapping[str, Export] | list[Export], module: bool = False) -> ExportTable:
        """A table from Export objects (used by importers)."""
        items = exports.values() if isinstance(exports, Mapping) else exports
        enc = _encode_module if module else _encode_vmlinux
        return cls({e.name: enc(e) for e in items}, _decode_module if module else _decode_vmlinux)

    def raw(self) -> dict[str, str]:
        """name → encoded record (what the profile file stores)."""
        if self._raw is None:
            names, recs = self._blocks
            self._raw = dict(zip(names.split("\n"), recs.split("\n"))) if names else {}
            self._blocks = None
        return self._raw

    def blocks(self) -> tuple[str, str]:
        raw = self.raw()
        return "\n".join(raw), "\n".join(raw.values())

    def __getitem__(self, name: str) -> Export:
        e = self._cache.get(name)
        if e is None:
            e = self._decode(name, self.raw()[name])
            self._cache[name] = e
        return e

    def get(self, name, default=None):
        e = self._cache.get(name)                # the load path asks for the same names often
        if e is not None:
            return e
        r = self.raw().get(name)
        if r is None:
            return default
        e = self._cache[name] = self._decode(name, r)
        return e

    def _all(self) -> dict[str, Export]:
        """Every entry decoded, in table order (done once, in bulk)."""
        raw = self.raw()
        cache = self._cache
        if len(cache) != len(raw) or next(iter(cache), None) != next(iter(raw), None):
            bulk = _BULK.get(self._decode)
            if bulk is not None:
                cache = bulk(raw, cache)
            else:
                dec = self._decode
                cache = {n: cache.get(n) or dec(n, r) for n, r in raw.items()}
            self._cache = cache
        return cache

    def items(self):
        return self._all().items()

    def values(self):
        return self._all().values()

    def keys(self):
        return self.raw().keys()

    def __contains__(self, name) -> bool:
        return name in self.raw()

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw())

    def __len__(self) -> int:
        return len(self.raw())

    def __eq__(self, other) -> bool:
        if isinstance(other, ExportTable):
            return self._decode is other._decode and self.raw() == other.raw()
        return super().__eq__(other)

    __hash__ = None                                  # type: ignore[assignment]

    def __or__(self, other):
        return {**dict(self.items()), **dict(other)}

    def __ror__(self, other):
        return {**dict(other), **dict(self.items())}

    def __repr__(self) -> str:
        return f"<ExportTable of {len(self)} exports>"


class Prototypes:
    """The argument counts of a kernel's exported functions, from its BTF (the importer's
    ``extract_prototypes``): ``get(name)`` is ``(fixed parameters, variadic)`` or None.

    Kept in the profile file as one block ("name N", "+" after N for a variadic function, a
    line each) and parsed on first use: only the emulator asks, so modinfo and check do not
    pay for ten thousand entries."""

    def __init__(self, source: dict | bytes):
        self._blob = b"\n" + source + b"\n" if isinstance(source, bytes) and source else None
        self._map: dict | None = None if self._blob is not None else \
            {n: (int(a), bool(v)) for n, (a, v) in dict(source or {}).items()}
        self._seen: dict[str, tuple[int, bool] | None] = {}

    @staticmethod
    def _entry(text: str) -> tuple[int, bool]:
        return int(text.rstrip("+")), text.endswith("+")

    def _table(self) -> dict:
        if self._map is None:
            self._map = {}
            for line in self._blob.decode().split("\n"):
                if line:
                    name, _, n = line.rpartition(" ")
                    self._map[name] = self._entry(n)
        return self._map

    def get(self, name: str) -> tuple[int, bool] | None:
        if self._map is not None:
            return self._map.get(name)
        if name not in self._seen:               # one search of the block per name asked
            key = b"\n" + name.encode() + b" "
            i = self._blob.find(key)
            self._seen[name] = None if i < 0 else self._entry(
                self._blob[i + len(key):self._blob.index(b"\n", i + 1)].decode())
        return self._seen[name]

    def __len__(self) -> int:
        return len(self._table())

    def items(self):
        return self._table().items()

    def to_bytes(self) -> bytes:
        if self._map is None:
            return self._blob[1:-1] if self._blob else b""
        return "\n".join(f"{n} {a}{'+' if v else ''}"
                         for n, (a, v) in sorted(self._map.items())).encode()

    def __eq__(self, other) -> bool:
        return isinstance(other, Prototypes) and self._table() == other._table()


@dataclass
class Profile:
    name: str                       # "debian-6.1.0-56-amd64"
    release: str                    # "6.1.0-56-amd64" (uname -r)
    version: str                    # UTS version (uname -v)
    vermagic: str                   # "6.1.0-56-amd64 SMP preempt mod_unload modversions "
    config: dict[str, str]          # CONFIG_ prefix stripped, strings unquoted, unset absent
    exports: ExportTable            # vmlinux exports, with addresses
    module_exports: ExportTable     # exports of the kernel's own modules (Module.symvers)
    certificates: list[bytes]       # DER X.509 module-signing certificates
    builtin: list[str]              # built-in module names (underscores, no path, no .ko)
    builtin_modinfo: bytes          # raw modules.builtin.modinfo
    percpu_static_size: int         # size of .data..percpu
    machine: str = "x86_64"         # uname -m
    sections: list[tuple[str, int, int, str]] = field(default_factory=list)
    #                                 vmlinux's allocated sections: (name, addr, size, kind)
    source: dict = field(default_factory=dict)   # where it was imported from (informational)
    builtin_sysfs: list[str] = field(default_factory=list)  # /sys/module dirs of built-ins
    #                                 (params with a mode, versions); [] in older profiles
    structs: dict = field(default_factory=dict)  # from the kernel's BTF: {"module": {"sizeof": n,
    #                                 "name": off, "mem[5].base": off, ...}, "enum mod_mem_type":
    #                                 {"MOD_TEXT": 0, ...}}; absent members are None
    prototypes: Prototypes = field(default_factory=lambda: Prototypes({}))
    #                                 from BTF: argument counts of exported functions; empty
    #                                 in older profiles
    path: Path | None = field(default=None, compare=False)   # file it was loaded from

    _by_addr: tuple | None = field(default=None, init=False, repr=False, compare=False)
    _rules: object = field(default=None, init=False, repr=False, compare=False)

    # -- config ------------------------------------------------------------------------------
    def enabled(self, option: str) -> bool:
        """CONFIG_<option> is y or m (the prefix is optional)."""
        return self.config.get(option.removeprefix("CONFIG_")) in ("y", "m")

    def config_value(self, option: str, default: str | None = None) -> str | None:
        return self.config.get(option.removeprefix("CONFIG_"), default)

    # -- addresses ---------------------------------------------------------------------------
    def symbols(self) -> list[tuple[int, str, str]]:
        """Every vmlinux export as (addr, name, kind), sorted by address then name — built in
        bulk without making Export objects (~10 ms; iterating ``exports.values()`` costs
        several times more).  Cached; do not modify."""
        if self._by_addr is None:
            syms = []
            for name, raw in self.exports.raw().items():
                f = raw.split("\t")
                syms.append((int(f[0], 16), name, f[4]))
            syms.sort()
            self._by_addr = (syms, [a for a, _, _ in syms], [n for _, n, _ in syms])
        return self._by_addr[0]

    def _index(self) -> tuple[list[int], list[str]]:
        self.symbols()
        return self._by_addr[1], self._by_addr[2]

    def export_at(self, addr: int) -> str | None:
        """The vmlinux export at exactly ``addr`` (the first by name when several share it)."""
        addrs, names = self._index()
        i = bisect.bisect_left(addrs, addr)
        return names[i] if i < len(addrs) and addrs[i] == addr else None

    def section_at(self, addr: int) -> tuple[str, int, int, str] | None:
        for sec in self.sections:
            if sec[1] <= addr < sec[1] + sec[2]:
                return sec
        return None

    def nearest(self, addr: int) -> tuple[str, int] | None:
        """(name, offset) of the nearest vmlinux export at or below ``addr``, in the same
        vmlinux section (None when there is none, e.g. for a module address)."""
        addrs, names = self._index()
        i = bisect.bisect_right(addrs, addr) - 1
        if i < 0:
            return None
        # among exports sharing that address, report the first by name
        j = bisect.bisect_left(addrs, addrs[i])
        if self.sections:
            here, there = self.section_at(addr), self.section_at(addrs[j])
            if here is None or here != there:
                return None
        return names[j], addr - addrs[j]

    # -- struct layouts (BTF) ---------------------------------------------------------------
    def struct_size(self, name: str) -> int | None:
        """sizeof(struct name) in this kernel, from its BTF (None: not recorded)."""
        return (self.structs.get(name) or {}).get("sizeof")

    def offsetof(self, name: str, member: str) -> int:
        """offsetof(struct name, member) in this kernel, from its BTF.  Raises ProfileError
        when the profile does not record it (an older profile, or a member this kernel lacks)."""
        off = (self.structs.get(name) or {}).get(member)
        if off is None:
            raise ProfileError(f"profile {self.name} does not know offsetof(struct {name}, "
                               f"{member}) (re-import it with 'kmodlab kernel import')")
        return off

    def enum_value(self, enum: str, name: str) -> int:
        vals = self.structs.get(f"enum {enum}") or {}
        if name not in vals:
            raise ProfileError(f"profile {self.name} does not know enum {enum}'s {name}")
        return vals[name]

    # -- certificates ------------------------------------------------------------------------
    def certificate_info(self) -> list[dict[str, str]]:
        """Subject, issuer, serial (upper-case hex) and validity of each certificate."""
        from cryptography import x509
        out = []
        for der in self.certificates:
            c = x509.load_der_x509_certificate(der)
            out.append({"subject": c.subject.rfc4514_string(),
                        "issuer": c.issuer.rfc4514_string(),
                        "serial": f"{c.serial_number:X}",
                        "not_before": str(getattr(c, "not_valid_before_utc", None)
                                          or c.not_valid_before),
                        "not_after": str(getattr(c, "not_valid_after_utc", None)
                                         or c.not_valid_after),
                        "key": f"{type(c.public_key()).__name__.lstrip('_')}"
                               f"-{getattr(c.public_key(), 'key_size', '?')}"})
        return out

    # -- serialisation -----------------------------------------------------------------------
    # A profile file is (optionally zstd- or xz-compressed):
    #   "kmodlab-profile <version>\n" + one line of JSON (the small fields and a list of
    #   [block name, byte length]) + "\n" + the blocks back to back.  Blocks hold the big
    #   tables as newline-joined text (names, and records parallel to them) so that loading is
    #   a few C-level splits, and builtin_modinfo as raw bytes.
    def to_bytes(self) -> bytes:
        ex_names, ex_recs = self.exports.blocks()
        mx_names, mx_recs = self.module_exports.blocks()
        blocks = [
            ("config.keys", "\n".join(self.config).encode()),
            ("config.values", "\n".join(self.config.values()).encode()),
            ("exports.names", ex_names.encode()),
            ("exports.records", ex_recs.encode()),
            ("module_exports.names", mx_names.encode()),
            ("module_exports.records", mx_recs.encode()),
            ("builtin_modinfo", bytes(self.builtin_modinfo)),
            ("prototypes", self.prototypes.to_bytes()),
        ]
        head = {
            "name": self.name, "release": self.release, "version": self.version,
            "vermagic": self.vermagic, "machine": self.machine,
            "percpu_static_size": self.percpu_static_size,
            "source": self.source,
            "sections": [list(s) for s in self.sections],
            "certificates": [base64.b64encode(c).decode() for c in self.certificates],
            "builtin": self.builtin,
            "structs": self.structs,
            "builtin_sysfs": self.builtin_sysfs,
            "blocks": [[n, len(b)] for n, b in blocks],
        }
        return b"".join([f"{FORMAT} {FORMAT_VERSION}\n".encode(),
                         json.dumps(head, separators=(",", ":")).encode(), b"\n",
                         *(b for _, b in blocks)])

    @classmethod
    def from_bytes(cls, data: bytes, path: Path | None = None) -> Profile:
        where = str(path) if path else "profile"
        magic, _, rest = data.partition(b"\n")
        fmt, _, ver = magic.partition(b" ")
        if fmt != FORMAT.encode():
            raise UsageError(f"{where}: not a kmodlab kernel profile")
        if ver != str(FORMAT_VERSION).encode():
            raise UsageError(f"{where}: profile format version {ver.decode(errors='replace')} is "
                             f"not supported (this kmodlab reads version {FORMAT_VERSION}); "
                             f"re-import it with 'kmodlab kernel import'")
        try:
            line, _, body = rest.partition(b"\n")
            head = json.loads(line)
            blk: dict[str, bytes] = {}
            pos = 0
            for bname, size in head["blocks"]:
                if pos + size > len(body):
                    raise ValueError(f"block {bname} is truncated")
                blk[bname] = body[pos:pos + size]
                pos += size

            def text(n: str) -> str:
                return blk[n].decode()

            keys, values = text("config.keys"), text("config.values")
            config = dict(zip(keys.split("\n"), values.split("\n"))) if keys else {}
            return cls(
                name=head["name"], release=head["release"], version=head["version"],
                vermagic=head["vermagic"], config=config,
                exports=ExportTable(None, _decode_vmlinux,
                                    (text("exports.names"), text("exports.records"))),
                module_exports=ExportTable(None, _decode_module,
                                           (text("module_exports.names"),
                                            text("module_exports.records"))),
                certificates=[base64.b64decode(c) for c in head["certificates"]],
                builtin=head["builtin"],
                builtin_modinfo=blk["builtin_modinfo"],
                percpu_static_size=int(head["percpu_static_size"]),
                machine=head.get("machine", "x86_64"),
                sections=[tuple(s) for s in head.get("sections", [])],
                source=head.get("source", {}),
                structs=head.get("structs", {}),
                prototypes=Prototypes(blk.get("prototypes", b"")),
                builtin_sysfs=head.get("builtin_sysfs", []),
                path=path,
            )
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as e:
            raise UsageError(f"{where}: damaged kernel profile ({type(e).__name__}: {e})") from None


# -- files ---------------------------------------------------------------------------------

def profile_dir() -> Path:
    """The user's profile directory: $XDG_DATA_HOME/kmodlab/profiles."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "kmodlab" / "profiles"


def _decompress(blob: bytes, where: str) -> bytes:
    try:
        if blob[:4] == b"\x28\xb5\x2f\xfd":
            import zstandard
            return zstandard.ZstdDecompressor().decompress(blob)
        if blob[:6] == b"\xfd7zXZ\x00":
            import lzma
            return lzma.decompress(blob)
    except Exception as e:
        raise UsageError(f"{where}: cannot decompress kernel profile: {e}") from None
    return blob


def read_profile_file(path: Path) -> Profile:
    try:
        blob = path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read kernel profile {path}: {e.strerror}") from None
    return Profile.from_bytes(_decompress(blob, str(path)), path)


def save_profile(profile: Profile, path: Path | None = None, level: int = 19) -> Path:
    """Write ``profile`` (atomically) to ``path`` or the user's profile directory."""
    import zstandard
    if path is None:
        path = profile_dir() / f"{profile.name}{PROFILE_SUFFIX}"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = zstandard.ZstdCompressor(level=level).compress(profile.to_bytes())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(blob)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _embedded() -> dict[str, Path]:
    try:
        return {p.name[:-len(PROFILE_SUFFIX)]: p for p in DATA_DIR.iterdir()
                if p.name.endswith(PROFILE_SUFFIX)}
    except OSError:
        return {}


def _user() -> dict[str, Path]:
    try:
        return {p.name[:-len(PROFILE_SUFFIX)]: p for p in profile_dir().iterdir()
                if p.name.endswith(PROFILE_SUFFIX) and not p.name.startswith(".")}
    except OSError:
        return {}


def list_profiles() -> list[str]:
    """Names of the user's profiles and the embedded ones (a user profile hides an embedded
    one of the same name), sorted."""
    return sorted(set(_user()) | set(_embedded()))


def find_profile(name: str | None = None) -> Path:
    """The file a profile name (or path) refers to."""
    if name is None:
        name = os.environ.get("KMODLAB_PROFILE") or DEFAULT_PROFILE
    user, emb = _user(), _embedded()
    if name in user:
        return user[name]
    if name in emb:
        return emb[name]
    p = Path(name).expanduser()
    if os.sep in name or name.endswith(PROFILE_SUFFIX) or p.is_file():
        if p.is_file():
            return p
        raise UsageError(f"kernel profile file {name} does not exist")
    # A kernel release as `uname -r` prints it names the one profile built for it
    # (6.12.118+deb13-amd64 → debian-6.12.118+deb13-amd64).
    by_release = sorted({n for n in (*user, *emb) if n.endswith("-" + name)})
    if len(by_release) == 1:
        return user.get(by_release[0]) or emb[by_release[0]]
    known = ", ".join(list_profiles()) or "none"
    raise UsageError(f"unknown kernel profile '{name}' (known: {known}; "
                     f"'kmodlab kernel import' adds one)")


_cache: dict[tuple, Profile] = {}


def load_profile(name: str | None = None) -> Profile:
    """The profile ``name``: a name in the user's profile directory, an embedded name, or a
    path to a profile file; None → $KMODLAB_PROFILE or the embedded default."""
    path = find_profile(name)
    try:
        st = path.stat()
    except OSError as e:
        raise UsageError(f"cannot read kernel profile {path}: {e.strerror}") from None
    key = (str(path), st.st_mtime_ns, st.st_size)
    prof = _cache.get(key)
    if prof is None:
        prof = _cache[key] = read_profile_file(path)
    return prof


def import_debian(image_deb: Path, headers_debs: list[Path], out_dir: Path | None = None) -> Path:
    """Build a profile from a Debian linux-image .deb and its linux-headers .deb(s), save it
    in ``out_dir`` (default: the user's profile directory) and return its path."""
    from .debian import import_debian as _imp
    return _imp(image_deb, headers_debs, out_dir)


class ProfileError(KmodlabError):
    """An importer could not make sense of its input."""
