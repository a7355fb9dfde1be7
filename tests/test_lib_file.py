"""kmod's file layer (lib/file.py): magic-byte detection, the three decompressors, kmod's errnos,
and module file names.  Rules from libkmod-file*.c and shared/util.c (kmod-formats §1.5)."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from kmodlab.lib.file import (ModuleFile, ModuleFileError, alias_normalize, compress,
                              compressed_extension, decompress, detect_compression,
                              modname_normalize, path_ends_with_kmod_ext, path_to_modname,
                              read_module)

MODDIR = Path(os.environ.get("KMODLAB_MODULES_DIR", "/nonexistent"))
SAMPLE = ["kernel/drivers/block/loop.ko", "kernel/drivers/net/dummy.ko", "kernel/lib/crc7.ko",
          "kernel/fs/fat/vfat.ko"]
COMPRESSORS = ["xz", "zstd", "gzip"]


def real_modules():
    found = [MODDIR / p for p in SAMPLE if (MODDIR / p).is_file()]
    if not found:
        pytest.skip(f"no Debian module tree at {MODDIR} (set KMODLAB_MODULES_DIR)")
    return found


def test_detect_by_magic_not_name():
    """kmod chooses the back end from the first bytes, whatever the file is called."""
    assert detect_compression(b"\x28\xb5\x2f\xfd....") == "zstd"
    assert detect_compression(b"\xfd7zXZ\x00....") == "xz"
    assert detect_compression(b"\x1f\x8b\x08\x00") == "gzip"
    assert detect_compression(b"\x7fELF\x02\x01") == "none"
    assert detect_compression(b"\xfd7zXZ\x01") == "none"       # all six xz bytes must match


@pytest.mark.parametrize("kind", COMPRESSORS)
def test_round_trip_synthetic(kind, tmp_path):
    data = bytes(range(256)) * 300 + b"\x7fELF tail"
    blob = compress(data, kind)
    assert detect_compression(blob) == kind
    assert decompress(blob) == data
    p = tmp_path / f"x{compressed_extension(kind)}"
    p.write_bytes(blob)
    mf = read_module(str(p))
    assert isinstance(mf, ModuleFile)
    assert (mf.data, mf.compression, mf.complete) == (data, kind, True)


@pytest.mark.parametrize("kind", COMPRESSORS)
def test_round_trip_real_modules(kind, tmp_path):
    """Each real module, compressed as kbuild does, reads back byte-identical."""
    for src in real_modules():
        raw = src.read_bytes()
        p = tmp_path / (src.name[:-3] + compressed_extension(kind))
        p.write_bytes(compress(raw, kind))
        mf = read_module(str(p))
        assert mf.compression == kind and mf.data == raw, src


def test_plain_file_is_returned_as_is():
    for src in real_modules():
        mf = read_module(str(src))
        assert mf.compression == "none" and mf.data == src.read_bytes()


def test_missing_file_is_enoent(tmp_path):
    with pytest.raises(ModuleFileError) as ei:
        read_module(str(tmp_path / "nope.ko"))
    assert ei.value.errno == errno.ENOENT
    assert str(ei.value) == "No such file or directory"


def test_shorter_than_magic_is_einval(tmp_path):
    """kmod reads 6 magic bytes first; a shorter file is EINVAL ('Invalid argument')."""
    for size in (0, 1, 5):
        p = tmp_path / f"s{size}.ko"
        p.write_bytes(b"\x7fELF\x02"[:size])
        with pytest.raises(ModuleFileError) as ei:
            read_module(str(p))
        assert ei.value.errno == errno.EINVAL


@pytest.mark.parametrize("kind", ["xz", "gzip"])
def test_truncated_or_corrupt_stream_is_einval(kind, tmp_path):
    blob = compress(os.urandom(50000), kind)
    for bad in (blob[: len(blob) // 2], blob[:8] + b"garbage" * 10):
        p = tmp_path / "bad.ko"
        p.write_bytes(bad)
        with pytest.raises(ModuleFileError) as ei:
            read_module(str(p))
        assert ei.value.errno == errno.EINVAL
        assert kind in ei.value.detail


def test_corrupt_zstd_is_einval(tmp_path):
    p = tmp_path / "g.ko.zst"
    p.write_bytes(b"\x28\xb5\x2f\xfdgarbagegarbage")
    with pytest.raises(ModuleFileError) as ei:
        read_module(str(p))
    assert ei.value.errno == errno.EINVAL


def test_truncated_zstd_keeps_partial_output_like_kmod(tmp_path):
    """kmod 30 treats a zstd stream that ends early as data (usually empty: zstd emits whole
    blocks), so modinfo later says 'Exec format error'; strict=True refuses it."""
    blob = compress(os.urandom(300000), "zstd")
    p = tmp_path / "t.ko.zst"
    p.write_bytes(blob[:3000])
    mf = read_module(str(p))
    assert mf.complete is False and mf.compression == "zstd" and len(mf.data) < 300000
    with pytest.raises(ModuleFileError) as ei:
        read_module(str(p), strict=True)
    assert ei.value.errno == errno.EINVAL
    with pytest.raises(ModuleFileError):
        decompress(blob[:3000])


def test_multi_frame_zstd(tmp_path):
    a, b = os.urandom(1000), os.urandom(2000)
    assert decompress(compress(a, "zstd") + compress(b, "zstd")) == a + b


def test_module_names():
    """shared/util.c: basename, cut at the first '.', '-' → '_'; '.ko' alone is no module."""
    assert path_to_modname("/x/y/foo-bar.ko.xz") == "foo_bar"
    assert path_to_modname("nf_conntrack.ko") == "nf_conntrack"
    assert path_to_modname("dir/") is None
    assert modname_normalize("snd-hda-intel") == "snd_hda_intel"
    assert path_ends_with_kmod_ext("a.ko") and path_ends_with_kmod_ext("a.ko.zst")
    assert path_ends_with_kmod_ext("a.ko.gz") and path_ends_with_kmod_ext("a.ko.xz")
    assert not path_ends_with_kmod_ext(".ko") and not path_ends_with_kmod_ext("a.ko.bz2")
    assert not path_ends_with_kmod_ext("a.o")


def test_alias_normalize_keeps_bracket_ranges():
    assert alias_normalize("pci:v0000-8086") == "pci:v0000_8086"
    assert alias_normalize("char-major-[0-9]-x") == "char_major_[0-9]_x"
    assert alias_normalize("bad]") is None and alias_normalize("bad[0-") is None
