"""A module's information list and how kmod finds a module by name (the libkmod role:
``kmod_module_get_info`` in libkmod-module.c, ``kmod_elf_new``/``kmod_elf_get_strings`` in
libkmod-elf.c, ``kmod_builtin_get_modinfo`` in libkmod-builtin.c and the lookups of libkmod.c).

* :func:`module_info` gives kmod's list for one module: the ``.modinfo`` strings in section order
  (split at the first ``=``), then — for a module file carrying a signature —
  ``sig_id, signer, sig_key, sig_hashalgo, signature``.  Keys and values are ``bytes``: modinfo
  prints them exactly as stored, whatever their encoding.
* :func:`elf_modinfo_strings` applies libkmod-elf.c's checks, with its errnos: not ELF or at most
  16 bytes → ENOEXEC; a bad class/byte order, a header that does not fit, a section table past
  the end or an unterminated section-name table → EINVAL; no ``.modinfo`` → ENOENT (kmod 30).  ELF32 and
  big-endian files are read too (kmod reads any module).
* :class:`ModuleDir` finds modules by name or alias under ``<root>/lib/modules/<kver>``.

**Lookup without depmod's binary indexes (a documented difference).**  kmod 30 reads only the
``*.bin`` indexes that depmod writes (without ``modules.dep.bin`` it reports "Module x not found"
even when the file exists).  kmodlab's depmod writes only the text files, so :class:`ModuleDir`
reads those, in kmod's lookup order:

1. ``modules.dep`` (module name → path); if that file is absent, a walk of the directory for
   ``<name>.ko``, ``.ko.xz``, ``.ko.zst``, ``.ko.gz`` (sorted paths, ``updates/`` first, first hit
   wins, as depmod's default search order would choose);
2. ``modules.symbols`` (``symbol:<name>`` aliases, exact match);
3. ``modules.alias`` (fnmatch patterns; matches in file order);
4. ``modules.builtin`` (built-in module names);
5. ``alias=`` entries of ``modules.builtin.modinfo`` (built-in aliases).

With depmod's files present the results equal kmod's, except that several alias matches are listed
in file order rather than in the binary index's order.
"""
from __future__ import annotations

import os
import struct

from ..errors import EINVAL, ENOEXEC, ENOENT, KmodlabError, strerror
from .file import (ModuleFile, Record, alias_normalize, modname_normalize, path_ends_with_kmod_ext,
                   path_to_modname, read_module)
from .signature import KmodSignatureFields, kmod_signature_fields

EI_NIDENT = 16
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB, ELFDATA2MSB = 1, 2


class ModinfoError(KmodlabError):
    """kmod_module_get_info failed: ``errno`` is the (positive) errno kmod reports."""

    def __init__(self, err: int, detail: str = ""):
        self.errno = abs(err)
        self.detail = detail
        super().__init__(strerror(self.errno) + (f" ({detail})" if detail else ""))


# ---- libkmod-elf.c --------------------------------------------------------------------------

# (header layout, e_shoff/e_shentsize/e_shnum/e_shstrndx offsets, section header size,
#  sh_name/sh_offset/sh_size formats) per ELF class; byte order is chosen at run time.
_ELF_LAYOUT = {
    ELFCLASS32: dict(ehsize=52, shoff=(32, "I"), shentsize=(46, "H"), shnum=(48, "H"),
                     shstrndx=(50, "H"), shdr=40, name=(0, "I"), offset=(16, "I"), size=(20, "I")),
    ELFCLASS64: dict(ehsize=64, shoff=(40, "Q"), shentsize=(58, "H"), shnum=(60, "H"),
                     shstrndx=(62, "H"), shdr=64, name=(0, "I"), offset=(24, "Q"), size=(32, "Q")),
}


def _elf_sections(data: bytes):
    """kmod_elf_new: validate the header and return (sections, shstrtab) where sections is a
    list of (name_off, offset, size) for indices 1..n-1, None for a header out of the file."""
    size = len(data)
    if size <= EI_NIDENT or data[:4] != b"\x7fELF":
        raise ModinfoError(ENOEXEC, "not an ELF file")
    cls, order = data[4], data[5]
    lay = _ELF_LAYOUT.get(cls)
    if lay is None:
        raise ModinfoError(EINVAL, f"unknown ELF class {cls}")
    if size <= lay["ehsize"]:
        raise ModinfoError(EINVAL, "file too short for an ELF header")
    if order == ELFDATA2LSB:
        bo = "<"
    elif order == ELFDATA2MSB:
        bo = ">"
    else:
        raise ModinfoError(EINVAL, f"unknown ELF data encoding {order}")

    def rd(where, base=0):
        off, fmt = where
        return struct.unpack_from(bo + fmt, data, base + off)[0]

    shoff, shentsize, shnum, shstrndx = (rd(lay["shoff"]), rd(lay["shentsize"]),
                                         rd(lay["shnum"]), rd(lay["shstrndx"]))
    if shentsize != lay["shdr"]:
        raise ModinfoError(EINVAL, f"section header size {shentsize}, expected {lay['shdr']}")
    if shoff + shentsize * shnum > size:
        raise ModinfoError(EINVAL, "file is too short to hold its section headers")

    def info(idx):
        base = shoff + idx * shentsize
        off, sz = rd(lay["offset"], base), rd(lay["size"], base)
        if off + sz > size:
            return None
        return rd(lay["name"], base), off, sz

    if shstrndx == 0 or shstrndx >= shnum:
        raise ModinfoError(EINVAL, "no section-name table")
    strs = info(shstrndx)
    if strs is None:
        raise ModinfoError(EINVAL, "section-name table lies outside the file")
    _, soff, ssize = strs
    if ssize == 0 or data[soff + ssize - 1] != 0:
        raise ModinfoError(EINVAL, "section-name table does not end with NUL")
    return [info(i) for i in range(1, shnum)], data[soff:soff + ssize]


def elf_get_section(data: bytes, name: bytes) -> bytes:
    """kmod_elf_get_section: bytes of the first section called ``name`` (index ≥ 1), skipping
    sections that lie outside the file or whose name offset is out of range; ENOENT if none
    (kmod 30's errno: "No such file or directory"; later kmod says ENODATA)."""
    sections, names = _elf_sections(data)
    for sec in sections:
        if sec is None:
            continue
        noff, off, size = sec
        if noff >= len(names):
            continue
        end = names.find(b"\0", noff)
        if names[noff:end] == name:
            return data[off:off + size]
    raise ModinfoError(ENOENT, f"no {name.decode()} section")     # kmod 30 (HEAD: ENODATA)


def split_strings(sec: bytes) -> list[bytes]:
    """kmod_elf_get_strings on a section's bytes: leading NUL padding skipped, empty strings
    dropped, an unterminated last string kept — and (kmod quirk) nothing at all when at most one
    byte is left after the padding."""
    i = 0
    n = len(sec)
    while i < n - 1 and sec[i] == 0:
        i += 1
    if n - i <= 1:
        return []
    return [s for s in sec[i:].split(b"\0") if s]


def elf_modinfo_strings(data: bytes) -> list[bytes]:
    """The raw ``.modinfo`` strings of an ELF image, in section order (see module doc)."""
    return split_strings(elf_get_section(data, b".modinfo"))


def split_key_value(s: bytes) -> tuple[bytes, bytes]:
    """Split ``key=value`` at the first '='; a string without '=' is a key with an empty value."""
    k, _, v = s.partition(b"=")
    return k, v


# ---- the module object ---------------------------------------------------------------------

class Module(Record):
    """A module as kmod's lookups produce it: ``name``, ``path`` (None when built in or
    unknown), ``builtin``, and ``mdir``, the :class:`ModuleDir` it was found in."""
    __slots__ = ("name", "path", "builtin", "mdir")
    _defaults = {"path": None, "builtin": False, "mdir": None}


class ModuleInfo(Record):
    """Everything ``kmod_module_get_info`` returns, kept apart: ``fields``, the ``.modinfo``
    (key, value) pairs; ``signature``, a :class:`KmodSignatureFields` (None when unsigned or when
    kmod would not show one); ``compression`` and ``file``, the :class:`ModuleFile` read."""
    __slots__ = ("fields", "signature", "compression", "file")
    _defaults = {"signature": None, "compression": "none", "file": None}

    def items(self) -> list[tuple[bytes, bytes]]:
        """kmod's flat list: .modinfo pairs, then the five signature pairs (hex formatted)."""
        out = list(self.fields)
        s = self.signature
        if s is not None:
            out += [(b"sig_id", s.sig_id), (b"signer", s.signer),
                    (b"sig_key", hex_colon(s.sig_key)), (b"sig_hashalgo", s.sig_hashalgo),
                    (b"signature", hex_colon(s.signature))]
        return out


def hex_colon(raw: bytes, per_line: int = 20) -> bytes:
    """kmod's hex form: ``AA:BB:…`` upper case, a ":\\n\\t\\t" break after every 20 bytes."""
    if not raw:
        return b""
    parts = []
    for i in range(0, len(raw), per_line):
        parts.append(raw[i:i + per_line].hex(":").upper())
    return ":\n\t\t".join(parts).encode()


def module_info(mod: Module) -> ModuleInfo:
    """kmod_module_get_info for a file module or a built-in one.

    Raises :class:`ModinfoError` (or :class:`~kmodlab.lib.file.ModuleFileError`) with kmod's
    errno; a built-in module whose ``modules.builtin.modinfo`` is missing raises ENOENT, which the
    tool ignores as kmod does (an old kernel without that file).
    """
    if mod.builtin or mod.path is None:
        if mod.builtin and mod.mdir is not None:
            strings = mod.mdir.builtin_modinfo(mod.name)
            if strings is None:
                raise ModinfoError(ENOENT, "no modules.builtin.modinfo")
            return ModuleInfo([split_key_value(s) for s in strings])
        raise ModinfoError(ENOENT, "module has no file")
    mf = read_module(mod.path)
    fields = [split_key_value(s) for s in elf_modinfo_strings(mf.data)]
    return ModuleInfo(fields, kmod_signature_fields(mf.data), mf.compression, mf)


def module_from_path(path: str) -> Module:
    """kmod_module_new_from_path: the module of a file, its path made absolute as kmod does (the
    working directory prepended to a relative path, nothing normalised: "./x.ko" → "$PWD/./x.ko")."""
    if not path.startswith("/"):
        path = os.getcwd() + "/" + path
    return Module(path_to_modname(path) or "", path)


class Param(Record):
    """One parameter merged from its ``parm`` (``desc``) and ``parmtype`` (``type``) strings."""
    __slots__ = ("name", "desc", "type")
    _defaults = {"desc": None, "type": None}


def merge_params(items, on_invalid=None) -> list[Param]:
    """tools/modinfo.c's parameter list: one entry per name, later strings overwrite earlier
    ones, and the list is built by prepending, so the result is in **reverse order of first
    appearance**.  A value without ':' is reported through ``on_invalid(key, value)`` and
    skipped."""
    by_name: dict[bytes, Param] = {}
    order: list[Param] = []
    for key, value in items:
        if key != b"parm" and key != b"parmtype":
            continue
        name, colon, rest = value.partition(b":")
        if not colon:
            if on_invalid is not None:
                on_invalid(key, value)
            continue
        p = by_name.get(name)
        if p is None:
            p = by_name[name] = Param(name)
            order.append(p)
        if key == b"parm":
            p.desc = rest
        else:
            p.type = rest
    order.reverse()
    return order


# ---- finding modules: <root>/lib/modules/<kver> ---------------------------------------------

def default_release() -> str:
    """The kernel release kmodlab's tools default to: the sandbox profile's when the profile
    package is there (loaded lazily, never for a plain file argument), else ``uname -r``."""
    try:
        from .. import profile  # type: ignore[attr-defined]
        for attr in ("default_release", "current_release", "release"):
            f = getattr(profile, attr, None)
            if callable(f):
                rel = f()
                if rel:
                    return str(rel)
            elif isinstance(f, str) and f:
                return f
        load = getattr(profile, "load_profile", None) or getattr(profile, "load", None)
        if callable(load):
            rel = getattr(load(), "release", None)
            if rel:
                return str(rel)
    except Exception:                       # no profile yet, or a broken one: use the host's
        pass
    return os.uname().release


def module_dirname(root: str | None, kver: str | None) -> str:
    """The directory kmod_new() is given: ``<root>/lib/modules/<kver>`` when ``-b`` or ``-k`` is
    used (root made absolute by prefixing the working directory, not normalised), else
    ``/lib/modules/<release>``."""
    if root is None and kver is None:
        return "/lib/modules/" + default_release()
    root = "" if root is None else root
    kver = default_release() if kver is None else kver
    d = f"{root}/lib/modules/{kver}"
    if not d.startswith("/"):
        d = os.getcwd() + "/" + d
    return d


class AliasIndex:
    """modules.alias's patterns, found as kmod's index finds them: every module whose pattern
    (fnmatch, in file order) matches a key, each module once.  Patterns are filed under their
    literal prefix (the text before the first ``*``, ``?`` or ``[``), so a lookup matches only
    the patterns whose prefix starts the key, instead of compiling all of them (tens of
    thousands in a distribution kernel's file, more than fnmatch's cache holds)."""

    def __init__(self, lines: list[tuple[str, str]]):
        self.by_prefix: dict[str, list[tuple[int, str, str]]] = {}
        for i, (pattern, mod) in enumerate(lines):
            cut = min((j for j in (pattern.find(c) for c in "*?[") if j >= 0),
                      default=len(pattern))
            self.by_prefix.setdefault(pattern[:cut], []).append((i, pattern, mod))

    def match(self, key: str) -> list[str]:
        import fnmatch
        cands = [c for n in range(len(key) + 1) for c in self.by_prefix.get(key[:n], ())]
        out: list[str] = []
        for _i, pattern, mod in sorted(cands):
            if mod not in out and fnmatch.fnmatchcase(key, pattern):
                out.append(mod)
        return out


class ModuleDir:
    """The modules of one kernel release, looked up as kmod does (see the module doc)."""

    def __init__(self, dirname: str):
        self.dirname = dirname
        self._dep: dict[str, str] | None = None
        self._aliases: AliasIndex | None = None
        self._symbols: dict[str, str] | None = None
        self._builtin: set[str] | None = None
        self._builtin_info: dict[str, list[bytes]] | None = None
        self._builtin_info_missing = False

    # -- the text files (each read once, on first use) --
    def _read(self, name: str) -> bytes | None:
        try:
            with open(os.path.join(self.dirname, name), "rb") as f:
                return f.read()
        except OSError:
            return None

    def deps(self) -> dict[str, str]:
        """Module name → path (absolute, or relative to the directory as written by depmod)."""
        if self._dep is None:
            text = self._read("modules.dep")
            dep: dict[str, str] = {}
            if text is not None:
                for line in text.decode("utf-8", "surrogateescape").splitlines():
                    rel, colon, _ = line.partition(":")
                    if colon and rel:
                        dep.setdefault(path_to_modname(rel) or "", rel)
            else:
                dep = self._walk()
            self._dep = dep
        return self._dep

    def _walk(self) -> dict[str, str]:
        found: list[str] = []
        for top, dirs, files in os.walk(self.dirname):
            dirs.sort()
            for fn in files:
                if path_ends_with_kmod_ext(fn):
                    found.append(os.path.relpath(os.path.join(top, fn), self.dirname))
        found.sort(key=lambda r: (not r.startswith("updates/"), r))
        dep: dict[str, str] = {}
        for rel in found:
            dep.setdefault(path_to_modname(rel) or "", rel)
        return dep

    def _alias_lines(self, fname: str) -> list[tuple[str, str]]:
        text = self._read(fname)
        out = []
        if text:
            for line in text.decode("utf-8", "surrogateescape").splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[0] == "alias":
                    # depmod stores the patterns normalised ('-' → '_') in its .bin indexes
                    out.append((alias_normalize(parts[1]) or parts[1], parts[2]))
        return out

    def builtin_names(self) -> set[str]:
        if self._builtin is None:
            text = self._read("modules.builtin") or b""
            self._builtin = {path_to_modname(l) or "" for l in
                             text.decode("utf-8", "surrogateescape").splitlines() if l.strip()}
        return self._builtin

    def _builtin_modinfo_all(self) -> dict[str, list[bytes]] | None:
        if self._builtin_info is None and not self._builtin_info_missing:
            raw = self._read("modules.builtin.modinfo")
            if raw is None:
                self._builtin_info_missing = True
                return None
            info: dict[str, list[bytes]] = {}
            for s in raw.split(b"\0"):
                mod, dot, rest = s.partition(b".")
                if dot and rest:
                    info.setdefault(mod.decode("utf-8", "surrogateescape"), []).append(rest)
            self._builtin_info = info
        return self._builtin_info

    def builtin_modinfo(self, name: str) -> list[bytes] | None:
        """kmod_builtin_get_modinfo: the ``key=value`` strings of a built-in module (None when
        ``modules.builtin.modinfo`` is missing)."""
        info = self._builtin_modinfo_all()
        if info is None:
            return None
        return list(info.get(name, []))

    # -- lookups --
    def _from_dep(self, name: str) -> Module | None:
        rel = self.deps().get(name)
        if rel is None:
            return None
        path = rel if rel.startswith("/") else f"{self.dirname}/{rel}"
        return Module(name, path, mdir=self)

    def _module_named(self, name: str) -> Module:
        """kmod_module_new_from_name + its path lookup: a file module if modules.dep knows it,
        a built-in one if modules.builtin does, else a module without a file."""
        m = self._from_dep(name)
        if m is not None:
            return m
        return Module(name, None, name in self.builtin_names(), self)

    def lookup_name(self, name: str) -> Module | None:
        """kmod_module_new_from_name_lookup (``modinfo -m``): modules.dep, then built-ins."""
        name = modname_normalize(name)
        m = self._from_dep(name)
        if m is None and name in self.builtin_names():
            m = Module(name, None, True, self)
        return m

    def lookup(self, alias: str) -> list[Module]:
        """kmod_module_new_from_lookup: every module an alias (or a name) resolves to."""
        key = alias_normalize(alias)
        if key is None:
            return []
        m = self._from_dep(key)
        if m is not None:
            return [m]
        if key.startswith("symbol:"):
            if self._symbols is None:
                self._symbols = dict(reversed(self._alias_lines("modules.symbols")))
            hit = self._symbols.get(key)
            if hit is not None:
                return [self._module_named(hit)]
        if self._aliases is None:
            self._aliases = AliasIndex(self._alias_lines("modules.alias"))
        import fnmatch
        out = [self._module_named(mod) for mod in self._aliases.match(key)]
        if out:
            return out
        if key in self.builtin_names():
            return [Module(key, None, True, self)]
        info = self._builtin_modinfo_all() or {}
        for mod, strings in info.items():
            for s in strings:
                pat = s[6:].decode("utf-8", "surrogateescape")
                if s.startswith(b"alias=") and fnmatch.fnmatchcase(
                        key, alias_normalize(pat) or pat):
                    out.append(Module(mod, None, True, self))
                    break
        return out
