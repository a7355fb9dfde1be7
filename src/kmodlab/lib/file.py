"""kmod's file layer: read a module file and undo its compression (libkmod-file.c and the
per-compressor back ends libkmod-file-{xz,zstd,zlib}.c).

Compression is detected by **magic bytes**, never by the file name (kmod-formats §1.5):
zstd ``28 B5 2F FD``, xz ``FD 37 7A 58 5A 00``, gzip ``1F 8B``.  The decompressors are imported
only when a file needs them (``lzma``, ``gzip`` from the standard library; ``zstandard`` from PyPI),
so reading a plain ``.ko`` costs one ``open``/``read``.

Failures are :class:`ModuleFileError` values carrying the errno kmod reports for the same file,
so a tool prints kmod's text with ``strerror(err.errno)``:

========================================  =========  =========================================
situation                                 errno      kmod 30 prints (modinfo)
========================================  =========  =========================================
file missing / unreadable                 ENOENT...  ``No such file or directory`` (open(2)'s)
shorter than the longest magic (6 bytes)  EINVAL     ``Invalid argument``
corrupt or truncated xz / gzip            EINVAL     ``Invalid argument``
corrupt zstd                              EINVAL     ``Invalid argument``
========================================  =========  =========================================

kmod quirk kept on purpose: a *truncated* zstd stream is not an error in kmod 30 — it keeps what
was decoded (often nothing, since zstd emits whole blocks), and the ELF reader then fails with
ENOEXEC.  :func:`read_module` does the same by default and marks the result ``complete=False``;
``strict=True`` turns it into an EINVAL error instead (the kernel-side loader wants that).

Module file names (``path_ends_with_kmod_ext``, ``path_to_modname``, ``modname_normalize``) live
here too: they are the other half of "what is a module file" and every tool needs them.
"""
from __future__ import annotations

import os
from ..errors import EINVAL, ENOENT, KmodlabError, strerror

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
XZ_MAGIC = b"\xfd\x37\x7a\x58\x5a\x00"
GZIP_MAGIC = b"\x1f\x8b"
MAGIC_SIZE_MAX = 6                    # kmod reads this many bytes before choosing a back end

COMPRESSIONS = ("none", "zstd", "xz", "gzip")

# Every file name kmod (built with zstd, xz and zlib) treats as a module.  Debian's kmod 30 is
# built without zlib, so it does not know ".ko.gz"; kmodlab does (see tools/modinfo.py).
KMOD_EXTENSIONS = (".ko", ".ko.gz", ".ko.xz", ".ko.zst")


class ModuleFileError(KmodlabError):
    """A module file could not be read or decompressed.

    ``errno`` is what kmod's library returns for the same file (positive); ``path`` the file;
    ``detail`` a plain-words reason (e.g. the decompressor's message).  ``str()`` gives
    ``strerror(errno)`` followed by the detail in parentheses when there is one.
    """

    def __init__(self, err: int, path: str, detail: str = ""):
        self.errno = abs(err)
        self.path = path
        self.detail = detail
        text = strerror(self.errno)
        super().__init__(f"{text} ({detail})" if detail else text)


class Record:
    """A slotted record with keyword construction, equality and a readable repr.  (Used instead
    of dataclasses, whose import and class set-up cost ~10 ms on modinfo's start-up path.)"""
    __slots__ = ()

    def __init__(self, *args, **kwargs):
        names = self.__slots__
        defaults = getattr(type(self), "_defaults", {})
        for name, value in zip(names, args):
            object.__setattr__(self, name, value)
        for name in names[len(args):]:
            if name in kwargs:
                object.__setattr__(self, name, kwargs.pop(name))
            elif name in defaults:
                object.__setattr__(self, name, defaults[name])
            else:
                raise TypeError(f"{type(self).__name__}: missing field {name!r}")
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unknown fields {sorted(kwargs)}")

    def __eq__(self, other):
        return type(self) is type(other) and all(
            getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __repr__(self):
        body = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({body})"

    __hash__ = None


class ModuleFile(Record):
    """One module file as kmod sees it: ``path``, the (decompressed) ``data``, its
    ``compression`` (one of :data:`COMPRESSIONS`) and ``complete`` (False: a truncated zstd
    stream kept partially, the kmod quirk described above)."""
    __slots__ = ("path", "data", "compression", "complete")
    _defaults = {"compression": "none", "complete": True}


def detect_compression(head: bytes) -> str:
    """The compression named by the magic bytes at the start of ``head`` ("none" if unknown)."""
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(XZ_MAGIC):
        return "xz"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    return "none"


def read_module(path: str, strict: bool = False) -> ModuleFile:
    """Read ``path`` and decompress it according to its magic bytes (kmod_file_open).

    Raises :class:`ModuleFileError` with kmod's errno: open(2)'s errno when the file cannot be
    read, EINVAL when it is shorter than :data:`MAGIC_SIZE_MAX` bytes or its compressed stream is
    corrupt.  ``strict`` also rejects a truncated zstd stream (kmod accepts it; see module doc).
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ModuleFileError(e.errno or ENOENT, path, "") from None
    if len(raw) < MAGIC_SIZE_MAX:
        raise ModuleFileError(EINVAL, path, "file is shorter than any module")
    kind = detect_compression(raw)
    if kind == "none":
        return ModuleFile(path, raw, kind)
    data, complete = _decompress(raw, kind, path)
    if strict and not complete:
        raise ModuleFileError(EINVAL, path, f"truncated {kind} stream")
    return ModuleFile(path, data, kind, complete)


def decompress(data: bytes, compression: str | None = None) -> bytes:
    """Decompress ``data`` (compression detected from the magic when not given); strict."""
    kind = compression or detect_compression(data)
    if kind == "none":
        return data
    out, complete = _decompress(data, kind, "<memory>")
    if not complete:
        raise ModuleFileError(EINVAL, "<memory>", f"truncated {kind} stream")
    return out


def _decompress(raw: bytes, kind: str, path: str) -> tuple[bytes, bool]:
    if kind == "xz":
        return _decompress_xz(raw, path), True
    if kind == "gzip":
        return _decompress_gzip(raw, path), True
    if kind == "zstd":
        return _decompress_zstd(raw, path)
    raise ValueError(f"unknown compression {kind!r}")


def _decompress_xz(raw: bytes, path: str) -> bytes:
    """libkmod-file-xz.c: any liblzma error (corrupt, truncated, unsupported) is EINVAL."""
    import lzma
    try:
        return lzma.decompress(raw, format=lzma.FORMAT_XZ)
    except (lzma.LZMAError, EOFError) as e:
        raise ModuleFileError(EINVAL, path, f"xz: {e}") from None


def _decompress_gzip(raw: bytes, path: str) -> bytes:
    """libkmod-file-zlib.c: a gzip stream that does not inflate is EINVAL."""
    import gzip
    import zlib
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise ModuleFileError(EINVAL, path, f"gzip: {e}") from None


def _decompress_zstd(raw: bytes, path: str) -> tuple[bytes, bool]:
    """libkmod-file-zstd.c: stream-decode every frame; a decoder error is EINVAL, but input that
    simply ends early yields what was decoded so far (``complete=False``), as kmod 30 does."""
    try:
        import zstandard
    except ImportError:
        raise ModuleFileError(EINVAL, path,
                              "zstd support needs the 'zstandard' package") from None
    dctx = zstandard.ZstdDecompressor()
    out = []
    rest = raw
    try:
        while rest:
            dobj = dctx.decompressobj()
            out.append(dobj.decompress(rest))
            if not dobj.eof:
                return b"".join(out), False
            rest = dobj.unused_data
    except zstandard.ZstdError as e:
        raise ModuleFileError(EINVAL, path, f"zstd: {e}") from None
    return b"".join(out), True


def compress(data: bytes, compression: str, level: int | None = None) -> bytes:
    """Compress ``data`` the way kbuild does (for tests and fixtures): ``xz --check=crc32
    --lzma2=dict=1MiB``, ``zstd`` with content size, ``gzip -n``; "none" returns the data."""
    if compression == "none":
        return data
    if compression == "xz":
        import lzma
        filters = [{"id": lzma.FILTER_LZMA2, "preset": 6 if level is None else level,
                    "dict_size": 1 << 20}]
        return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, filters=filters)
    if compression == "gzip":
        import gzip
        return gzip.compress(data, compresslevel=9 if level is None else level, mtime=0)
    if compression == "zstd":
        import zstandard
        return zstandard.ZstdCompressor(level=19 if level is None else level,
                                        write_content_size=True).compress(data)
    raise ValueError(f"unknown compression {compression!r}")


def compressed_extension(compression: str) -> str:
    """The file name ending kbuild uses for a module stored with ``compression``."""
    return {"none": ".ko", "xz": ".ko.xz", "zstd": ".ko.zst", "gzip": ".ko.gz"}[compression]


# ---- module file names (shared/util.c) ------------------------------------------------------

def path_ends_with_kmod_ext(path: str | bytes) -> bool:
    """True when ``path`` ends in a module extension and has something before it."""
    p = os.fsdecode(path)
    return any(len(p) > len(ext) and p.endswith(ext) for ext in KMOD_EXTENSIONS)


def modname_normalize(name: str) -> str:
    """kmod's module-name normalisation: stop at the first '.', turn every '-' into '_'."""
    return name.split(".", 1)[0].replace("-", "_")


def path_to_modname(path: str) -> str | None:
    """The module name of a file path: normalised basename ("foo-bar.ko.xz" → "foo_bar")."""
    base = path.rsplit("/", 1)[-1]            # GNU basename(): "dir/" gives ""
    if not base:
        return None
    return modname_normalize(base)


def alias_normalize(alias: str) -> str | None:
    """kmod's alias normalisation: '-' → '_' except inside ``[...]`` ranges; None if a bracket
    is unbalanced (kmod returns -EINVAL and the lookup finds nothing)."""
    out = []
    i, n = 0, len(alias)
    while i < n:
        c = alias[i]
        if c == "-":
            out.append("_")
        elif c == "]":
            return None
        elif c == "[":
            j = alias.find("]", i)
            if j < 0:
                return None
            out.append(alias[i:j + 1])
            i = j
        else:
            out.append(c)
        i += 1
    return "".join(out)
