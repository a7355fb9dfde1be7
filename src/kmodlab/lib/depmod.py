"""depmod's work: find the modules of a tree, link their symbols, write the index files
(kmod 30's tools/depmod.c, with libkmod-elf.c's symbol readers and shared/hash.c's order).

The result is byte-identical with kmod 30's text files on a real tree (tests/test_depmod.py
compares them with the real ``depmod`` on Debian's 6.1 tree):

* ``modules.dep`` — one line per module, modules in ``modules.order`` order (modules the order
  file does not list follow, in the iteration order of kmod's 512-bucket hash of module names,
  as do all modules when there is no order file); dependencies are *all* transitive ones, sorted
  by their index in kmod's topological sort (``depmod_calculate_dependencies``: Kahn's algorithm
  with a LIFO stack of modules without users, seeded in module order, so a dependency's deepest
  providers come last).
* ``modules.alias`` / ``modules.softdep`` — the ``alias=`` / ``softdep=`` strings of each
  module's ``.modinfo``, in module order then section order.
* ``modules.symbols`` — every exported symbol with a module owner, in the iteration order of
  kmod's hash table (2048 buckets, Paul Hsieh's superfast hash, each bucket sorted by strcmp).
* ``modules.devname`` — ``devname:`` aliases with a ``char-``/``block-major-M-m`` alias.

Exports come from the module's ``__crc_<sym>`` symbols (their CRC read from the section they
point into) or, without them, from ``__ksymtab_strings``; needs are the undefined symbols of
``.symtab`` in table order, CRCs from ``__versions``, then the ``__versions`` entries no symbol
named (``module_layout``).  kmod's binary ``*.bin`` indexes are not written (see
tools/depmod.py): kmodlab's readers use the text files.
"""
from __future__ import annotations

import os
import struct

from ..errors import KmodlabError
from .file import path_ends_with_kmod_ext, path_to_modname, read_module

KMOD_EXTS = (".ko.zst", ".ko.xz", ".ko.gz", ".ko")


class DepmodError(KmodlabError):
    pass


class Mod:
    """kmod's ``struct mod``: one module file of the tree."""
    __slots__ = ("path", "relpath", "uncrelpath", "modname", "info", "exports", "needs", "deps",
                 "users", "sort_idx", "idx", "dep_sort_idx", "error")

    def __init__(self, path: str, relpath: str, sort_idx: int):
        self.path = path
        self.relpath = relpath
        self.uncrelpath = _strip_compression(relpath)
        self.modname = path_to_modname(relpath) or ""
        self.info: list[tuple[str, str]] = []
        self.exports: list[tuple[str, int]] = []
        self.needs: list[tuple[str, int, bool]] = []      # (name, crc, weak)
        self.deps: list[Mod] = []
        self.users = 0
        self.sort_idx = sort_idx
        self.idx = 0
        self.dep_sort_idx = 0
        self.error = ""

    def __repr__(self):
        return f"Mod({self.relpath})"


def _strip_compression(rel: str) -> str:
    for ext in (".zst", ".xz", ".gz"):
        if rel.endswith(".ko" + ext):
            return rel[: -len(ext)]
    return rel


# ---- libkmod-elf.c: the three symbol lists ---------------------------------------------------

_SHDR = struct.Struct("<IIQQQQIIQQ")


def read_symbols(data: bytes):
    """(modinfo pairs, exports [(name, crc)], needs [(name, crc, weak)]) of an ELF64 LE image,
    as kmod_module_get_info / kmod_elf_get_symbols / kmod_elf_get_dependency_symbols give them."""
    import numpy as np
    from ..elf import sym_dtype
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise DepmodError("not an ELF64 little-endian module")
    shoff, = struct.unpack_from("<Q", data, 40)
    shnum, shstrndx = struct.unpack_from("<HH", data, 60)
    if shoff + shnum * 64 > len(data) or shstrndx >= shnum:
        raise DepmodError("section headers out of the file")
    secs = [_SHDR.unpack_from(data, shoff + i * 64) for i in range(shnum)]
    so = secs[shstrndx][4]
    byname: dict[bytes, tuple] = {}
    for i in range(1, shnum):
        s = secs[i]
        n = data[so + s[0]:data.index(b"\0", so + s[0])]
        byname.setdefault(n, s)

    def sect(name: bytes) -> bytes | None:
        s = byname.get(name)
        if s is None or s[4] + s[5] > len(data):
            return None
        return data[s[4]:s[4] + s[5]]

    info: list[tuple[str, str]] = []
    mi = sect(b".modinfo")
    if mi is not None:
        from .modinfo import split_strings
        for raw in split_strings(mi):
            k, _, v = raw.decode("utf-8", "surrogateescape").partition("=")
            info.append((k, v))

    exports: list[tuple[str, int]] = []
    needs: list[tuple[str, int, bool]] = []
    st = byname.get(b".symtab")
    strtab = sect(b".strtab")
    if st is None or strtab is None:
        ks = sect(b"__ksymtab_strings")
        if ks:
            from .modinfo import split_strings
            exports = [(s.decode("utf-8", "surrogateescape"), 0) for s in split_strings(ks)]
        return info, exports, needs
    n = st[5] // 24
    syms = np.frombuffer(data, dtype=sym_dtype(), count=n, offset=st[4])
    sbuf = np.frombuffer(strtab + b"\0" * 8, dtype=np.uint8)
    names = syms["st_name"].astype(np.int64)
    names[names >= len(strtab)] = len(strtab)

    def name_at(off: int) -> str:
        end = strtab.find(b"\0", off)
        return strtab[off:end if end >= 0 else len(strtab)].decode("utf-8", "surrogateescape")

    # exports: __crc_<sym> symbols, or the strings of __ksymtab_strings
    mask = np.ones(n, dtype=bool)
    mask[0] = False
    for k, c in enumerate(b"__crc_"):
        mask &= sbuf[np.minimum(names + k, len(sbuf) - 1)] == c
    crc_idx = np.nonzero(mask)[0]
    if len(crc_idx):
        for i in crc_idx:
            s = syms[i]
            exports.append((name_at(int(s["st_name"]))[6:],
                            _resolve_crc(data, secs, int(s["st_value"]), int(s["st_shndx"]))))
    else:
        ks = sect(b"__ksymtab_strings")
        if ks:
            from .modinfo import split_strings
            exports = [(s.decode("utf-8", "surrogateescape"), 0) for s in split_strings(ks)]

    # needs: undefined symbols in table order, then __versions entries nobody named
    versions: dict[str, tuple[int, int]] = {}
    vs = sect(b"__versions")
    if vs:
        for j in range(len(vs) // 64):
            crc, = struct.unpack_from("<Q", vs, j * 64)
            raw = vs[j * 64 + 8:j * 64 + 64]
            nm = raw[:raw.find(b"\0")] if b"\0" in raw else raw
            versions.setdefault(nm.decode("utf-8", "surrogateescape"), (j, crc))
    visited = set()
    und = np.nonzero(syms["st_shndx"] == 0)[0]
    for i in und:
        if i == 0:
            continue
        s = syms[i]
        nm = name_at(int(s["st_name"]))
        if not nm:
            continue
        v = versions.get(nm)
        crc = 0
        if v is not None:
            visited.add(v[0])
            crc = v[1]
        needs.append((nm, crc, (int(s["st_info"]) >> 4) == 2))
    if vs:
        for nm, (j, crc) in sorted(versions.items(), key=lambda kv: kv[1][0]):
            if j not in visited:
                needs.append((nm, crc, False))
    return info, exports, needs


def _resolve_crc(data: bytes, secs, value: int, shndx: int) -> int:
    """kmod_elf_resolve_crc: an absolute CRC is the value; else a u32 in section shndx."""
    if shndx in (0, 0xFFF1):
        return value
    if shndx >= len(secs):
        return 0xFFFFFFFFFFFFFFFF
    off, size = secs[shndx][4], secs[shndx][5]
    if value > size - 4:
        return 0xFFFFFFFFFFFFFFFF
    return struct.unpack_from("<I", data, off + value)[0]


# ---- shared/hash.c: the order of modules.symbols ---------------------------------------------

def hash_superfast(key: bytes) -> int:
    """Paul Hsieh's SuperFastHash as shared/hash.c computes it (32-bit, little-endian reads)."""
    M = 0xFFFFFFFF
    ln = len(key)
    h = ln
    rem = ln & 3
    i = 0
    for _ in range(ln // 4):
        h = (h + (key[i] | key[i + 1] << 8)) & M
        tmp = (((key[i + 2] | key[i + 3] << 8) << 11) ^ h) & M
        h = ((h << 16) ^ tmp) & M
        i += 4
        h = (h + (h >> 11)) & M
    if rem == 3:
        h = (h + (key[i] | key[i + 1] << 8)) & M
        h ^= (h << 16) & M
        c = key[i + 2] - 256 if key[i + 2] > 127 else key[i + 2]     # signed char
        h ^= (c << 18) & M
        h = (h + (h >> 11)) & M
    elif rem == 2:
        h = (h + (key[i] | key[i + 1] << 8)) & M
        h ^= (h << 11) & M
        h = (h + (h >> 17)) & M
    elif rem == 1:
        c = key[i] - 256 if key[i] > 127 else key[i]
        h = (h + c) & M
        h ^= (h << 10) & M
        h = (h + (h >> 1)) & M
    h ^= (h << 3) & M
    h = (h + (h >> 5)) & M
    h ^= (h << 4) & M
    h = (h + (h >> 17)) & M
    h ^= (h << 25) & M
    h = (h + (h >> 6)) & M
    return h


def hash_order(keys, n_buckets: int = 2048) -> list[str]:
    """The keys in kmod's hash_iter order: bucket by bucket, strcmp order inside a bucket."""
    buckets: dict[int, list[bytes]] = {}
    for k in keys:
        b = k.encode("utf-8", "surrogateescape")
        buckets.setdefault(hash_superfast(b) & (n_buckets - 1), []).append(b)
    out = []
    for pos in sorted(buckets):
        out.extend(x.decode("utf-8", "surrogateescape") for x in sorted(buckets[pos]))
    return out


# ---- the tree --------------------------------------------------------------------------------

class Symbol:
    __slots__ = ("name", "crc", "owner")

    def __init__(self, name, crc, owner):
        self.name, self.crc, self.owner = name, crc, owner


class Problem:
    """One -e finding: ``kind`` is "unknown" or "version"."""
    __slots__ = ("path", "kind", "symbol")

    def __init__(self, path, kind, symbol):
        self.path, self.kind, self.symbol = path, kind, symbol

    def message(self) -> str:
        if self.kind == "unknown":
            return f"{self.path} needs unknown symbol {self.symbol}"
        return f"{self.path} disagrees about version of symbol {self.symbol}"

    def as_dict(self) -> dict:
        return {"path": self.path, "problem": self.kind, "symbol": self.symbol,
                "message": self.message()}


class Depmod:
    """kmod's ``struct depmod`` over ``dirname`` (``<basedir>/lib/modules/<version>``)."""

    def __init__(self, dirname: str, verbose: bool = False, show=None, warn=None):
        self.dirname = dirname.rstrip("/") or "/"
        self.modules: list[Mod] = []
        self.by_name: dict[str, Mod] = {}
        self.symbols: dict[str, Symbol] = {}
        self.kernel_symbols_loaded = False
        self.check_symvers = False
        self.problems: list[Problem] = []
        self.verbose = verbose
        self.show = show or (lambda line: None)        # -v lines (stdout)
        self.warn = warn or (lambda line: None)        # WARNING lines

    # -- depmod_modules_search / depmod_module_add --
    def search(self) -> None:
        if not os.path.isdir(self.dirname):
            raise DepmodError(f"could not open directory {self.dirname}: No such file or directory")
        found = []
        for top, dirs, files in os.walk(self.dirname):
            if top == self.dirname:
                dirs[:] = [d for d in dirs if d not in ("build", "source")]
            dirs.sort()
            for fn in sorted(files):
                if path_ends_with_kmod_ext(fn):
                    full = os.path.join(top, fn)
                    found.append((full, os.path.relpath(full, self.dirname)))
        for full, rel in found:
            self._add(full, rel)

    def _add(self, path: str, rel: str) -> None:
        mod = Mod(path, rel, len(self.modules) + 1)
        old = self.by_name.get(mod.modname)
        if old is not None:
            # depmod_module_is_higher_priority with the default search list ("updates" first)
            newp = 0 if rel.startswith("updates/") else 1
            oldp = 0 if old.relpath.startswith("updates/") else 1
            if newp > oldp:
                return
            self.modules.remove(old)
        self.modules.append(mod)
        self.by_name[mod.modname] = mod

    # -- depmod_modules_build_array / depmod_modules_sort --
    def sort(self) -> None:
        """kmod builds the module array by iterating ``modules_by_name`` (a 512-bucket hash of
        the names, each bucket in strcmp order) with every ``sort_idx`` still 1, then gives the
        modules listed in modules.order negative indexes and sorts (glibc's qsort is a stable
        merge sort here): modules.order's modules first, the others in hash order, not in the
        order the directory walk found them.  Without modules.order nothing is sorted."""
        self.modules = [self.by_name[n] for n in hash_order(self.by_name, 512)]
        for m in self.modules:
            m.sort_idx = 1
        path = os.path.join(self.dirname, "modules.order")
        try:
            with open(path, "rb") as f:
                lines = f.read().decode("utf-8", "surrogateescape").split("\n")
        except OSError as e:
            self.warn(f"could not open modules.order at {self.dirname}: {e.strerror}")
            lines = None
        if lines is not None:
            if lines and lines[-1] == "":
                lines.pop()
            total = len(lines) + 1
            by_unc = {m.uncrelpath: m for m in self.modules}
            for idx, line in enumerate(lines, 1):
                m = by_unc.get(line)
                if m is not None:
                    m.sort_idx = idx - total
            self.modules.sort(key=lambda m: m.sort_idx)
        for i, m in enumerate(self.modules):
            m.idx = i

    # -- kernel symbols (-E / -F / a profile) --
    def add_kernel_symbols(self, syms, check_crcs: bool) -> None:
        for name, crc in syms:
            self.symbols[name] = Symbol(name, crc, None)
        for fake in ("__this_module", "_GLOBAL_OFFSET_TABLE_"):
            self.symbols[fake] = Symbol(fake, 0, None)
        if "TOC." not in self.symbols:
            self.symbols["TOC."] = Symbol("TOC.", 0, None)
        self.kernel_symbols_loaded = True
        self.check_symvers = check_crcs

    # -- depmod_load_modules --
    def load_modules(self) -> None:
        for m in self.modules:
            try:
                data = read_module(m.path).data
                m.info, m.exports, m.needs = read_symbols(data)
            except Exception as e:          # kmod logs and keeps going with what it has
                m.error = str(e)
                self.warn(f"failed to load symbols from {m.path}: {e}")
                continue
            for name, crc in m.exports:
                self.symbols[name] = Symbol(name, crc, m)

    # -- depmod_load_dependencies --
    def load_dependencies(self, print_unknown: bool = False) -> None:
        for m in self.modules:
            for name, crc, weak in m.needs:
                sym = self.symbols.get(name)
                if sym is None:
                    if print_unknown and not weak:
                        self._problem(Problem(m.path, "unknown", name))
                    continue
                if self.check_symvers and sym.crc != crc and not weak:
                    if print_unknown:
                        self._problem(Problem(m.path, "version", name))
                owner = sym.owner
                if owner is None or owner is m or owner in m.deps:
                    continue
                m.deps.append(owner)
                owner.users += 1
                if self.verbose:
                    self.show(f'{m.path} needs "{name}": {owner.path}')

    def _problem(self, p: Problem) -> None:
        self.problems.append(p)
        self.warn(p.message())

    # -- depmod_calculate_dependencies --
    def calculate_dependencies(self) -> None:
        users = [m.users for m in self.modules]
        roots = [i for i, u in enumerate(users) if u == 0]
        n_sorted = 0
        while roots:
            src = self.modules[roots.pop()]
            src.dep_sort_idx = n_sorted
            n_sorted += 1
            for dst in src.deps:
                users[dst.idx] -= 1
                if users[dst.idx] == 0:
                    roots.append(dst.idx)
        if n_sorted < len(self.modules):
            cyc = [m.modname for i, m in enumerate(self.modules) if users[i] > 0]
            raise DepmodError(f"Found {len(cyc)} modules in dependency cycles!"
                              f" ({' '.join(cyc[:10])}{' …' if len(cyc) > 10 else ''})")
        for m in self.modules:
            m.deps.sort(key=lambda d: d.dep_sort_idx)

    def run(self, print_unknown: bool = False) -> None:
        self.search()
        self.sort()
        self.load_modules()
        self.load_dependencies(print_unknown)
        self.calculate_dependencies()

    # -- outputs --
    def all_deps(self, m: Mod) -> list[Mod]:
        """mod_get_all_sorted_dependencies: every transitive dependency, by dep_sort_idx."""
        seen: dict[int, Mod] = {}
        stack = list(m.deps)
        while stack:
            d = stack.pop()
            if d.idx in seen:
                continue
            seen[d.idx] = d
            stack.extend(d.deps)
        return sorted(seen.values(), key=lambda d: d.dep_sort_idx)

    def _path(self, m: Mod) -> str:
        return m.relpath

    def output_deps(self) -> str:
        out = []
        for m in self.modules:
            line = self._path(m) + ":"
            if m.deps:
                line += "".join(" " + self._path(d) for d in self.all_deps(m))
            out.append(line + "\n")
        return "".join(out)

    def output_aliases(self) -> str:
        out = ["# Aliases extracted from modules themselves.\n"]
        for m in self.modules:
            out.extend(f"alias {v} {m.modname}\n" for k, v in m.info if k == "alias")
        return "".join(out)

    def output_softdeps(self) -> str:
        out = ["# Soft dependencies extracted from modules themselves.\n"]
        for m in self.modules:
            out.extend(f"softdep {m.modname} {v}\n" for k, v in m.info if k == "softdep")
        return "".join(out)

    def output_symbols(self) -> str:
        out = ["# Aliases for symbols, used by symbol_request().\n"]
        for name in hash_order(self.symbols):
            sym = self.symbols[name]
            if sym.owner is not None:
                out.append(f"alias symbol:{name} {sym.owner.modname}\n")
        return "".join(out)

    def output_devname(self) -> str:
        import re
        out = []
        for m in self.modules:
            devname = None
            typ = ""
            major = minor = 0
            for k, v in m.info:
                if k != "alias":
                    continue
                if v.startswith("devname:"):
                    devname = v[8:]
                else:
                    r = re.match(r"(char|block)-major-(\d+)-(\d+)", v)
                    if r:
                        typ = "c" if r[1] == "char" else "b"
                        major, minor = int(r[2]), int(r[3])
                if typ and devname is not None:
                    break
            if devname is not None:
                if typ:
                    if not out:
                        out.append("# Device nodes to trigger on-demand module loading.\n")
                    out.append(f"{m.modname} {devname} {typ}{major}:{minor}\n")
                else:
                    self.warn(f"Module '{m.modname}' has devname ({devname}) but lacks major "
                              f"and minor information. Ignoring.")
        return "".join(out)

    OUTPUTS = (("modules.dep", "output_deps"), ("modules.alias", "output_aliases"),
               ("modules.softdep", "output_softdeps"), ("modules.symbols", "output_symbols"),
               ("modules.devname", "output_devname"))

    def outputs(self) -> list[tuple[str, str]]:
        return [(fname, getattr(self, meth)()) for fname, meth in self.OUTPUTS]

    def write(self) -> None:
        """Each file written to a temporary name and renamed into place, as depmod does."""
        for fname, text in self.outputs():
            tmp = os.path.join(self.dirname, f".{fname}.{os.getpid()}")
            with open(tmp, "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
                f.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, os.path.join(self.dirname, fname))


def is_up_to_date(dirname: str) -> bool:
    """depmod -A: modules.dep is newer than every module file (and modules.order)."""
    try:
        dep_mtime = os.stat(os.path.join(dirname, "modules.dep")).st_mtime
    except OSError:
        return False
    for top, _dirs, files in os.walk(dirname):
        for fn in files:
            if path_ends_with_kmod_ext(fn):
                if os.stat(os.path.join(top, fn)).st_mtime > dep_mtime:
                    return False
    return True


def parse_symvers_vmlinux(path: str) -> list[tuple[str, int]]:
    """depmod_load_symvers: the vmlinux lines of a Module.symvers as (symbol, crc)."""
    out = []
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3 or parts[2] != "vmlinux":
                continue
            try:
                out.append((parts[1], int(parts[0], 16)))
            except ValueError:
                continue
    return out


def parse_system_map(path: str) -> list[tuple[str, int]]:
    """depmod_load_system_map: the ``__ksymtab_<sym>`` lines of a System.map."""
    out = []
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2].startswith("__ksymtab_"):
                out.append((parts[2][10:], 0))
    return out


def read_modules_dep(dirname: str) -> dict[str, tuple[str, list[str]]] | None:
    """modules.dep as libkmod reads it: module name → (path, dependency paths), the paths made
    absolute under ``dirname`` when relative; None when the file is missing."""
    try:
        with open(os.path.join(dirname, "modules.dep"), "rb") as f:
            text = f.read().decode("utf-8", "surrogateescape")
    except OSError:
        return None
    out: dict[str, tuple[str, list[str]]] = {}

    def absolute(p: str) -> str:
        return p if p.startswith("/") else f"{dirname}/{p}"
    for line in text.splitlines():
        rel, colon, deps = line.partition(":")
        if not colon or not rel:
            continue
        name = path_to_modname(rel) or ""
        if name not in out:
            out[name] = (absolute(rel), [absolute(d) for d in deps.split()])
    return out
