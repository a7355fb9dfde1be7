"""module_decompress: finit_module's MODULE_INIT_COMPRESSED_FILE (kernel/module/decompress.c).

A kernel built with CONFIG_MODULE_DECOMPRESS decompresses exactly one format, the one its
MODULE_COMPRESS_* choice names (Debian 13: xz), and says which in /sys/module/compression (kmod
reads it to decide between finit_module with the flag and decompressing in user space).
Without it (Debian 12's 6.1) the flag fails with -EOPNOTSUPP after the file was read.

xz as the kernel's decoder sees it: the stream must start with the xz magic ("not an xz
compressed module", -EINVAL); the first stream is decoded; any end other than the stream's end
is "decompression failed with status %d" (-EINVAL) with the decoder's enum xz_ret: input that
stops early leaves it at XZ_OK (0), as the real kernel reports for a truncated .ko.xz.
"""
from __future__ import annotations

from ...errors import EINVAL, EOPNOTSUPP
from .internal import LoadError

XZ_MAGIC = b"\xfd7zXZ\x00"
# enum xz_ret (include/linux/xz.h)
XZ_OK, XZ_STREAM_END, XZ_UNSUPPORTED_CHECK, XZ_MEM_ERROR, XZ_MEMLIMIT_ERROR, XZ_FORMAT_ERROR, \
    XZ_OPTIONS_ERROR, XZ_DATA_ERROR, XZ_BUF_ERROR = range(9)
MAGICS = {"xz": XZ_MAGIC, "gzip": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd"}


def module_decompress(fmt: str | None, data: bytes) -> bytes:
    """The decompressed image, or LoadError as the release's kernel fails."""
    if fmt is None:
        raise LoadError(EOPNOTSUPP, "module_decompress",
                        reason="this kernel cannot decompress modules (no CONFIG_MODULE_DECOMPRESS)")
    if len(data) < len(MAGICS[fmt]) or not data.startswith(MAGICS[fmt]):
        raise LoadError(EINVAL, "module_decompress", f"not a{'n' if fmt == 'xz' else ''} "
                        f"{fmt} compressed module")
    if fmt == "xz":
        return _xz(data)
    from ...lib.file import decompress
    try:
        return decompress(data, fmt)
    except Exception as e:
        # gzip/zstd kernels word their failures otherwise; not checked against a real one
        raise LoadError(EINVAL, "module_decompress",
                        reason=f"kmodlab: {fmt} decompression failed ({e})") from None


def _xz(data: bytes) -> bytes:
    import lzma
    dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    try:
        out = dec.decompress(data)
        status = XZ_STREAM_END if dec.eof else XZ_OK
    except lzma.LZMAError as e:
        text = str(e).lower()
        status = (XZ_FORMAT_ERROR if "format" in text else
                  XZ_UNSUPPORTED_CHECK if "check" in text else
                  XZ_MEMLIMIT_ERROR if "memory" in text else XZ_DATA_ERROR)
        out = b""
    if status != XZ_STREAM_END:
        raise LoadError(EINVAL, "module_decompress", f"decompression failed with status {status}")
    return out
