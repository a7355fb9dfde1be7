"""LiveKernel and the QEMU harness without booting anything (the real kernel: test_qemu_live)."""
from __future__ import annotations

import ast
import errno
import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kmodlab import live
from kmodlab.live import LiveKernel, format_kmsg, parse_kmsg_record
from kmodlab.oracle import qemu
from kmodlab.syscalls import SyscallResult, get_kernel

SRC = Path(live.__file__).resolve().parent


def test_live_imports_only_stdlib():
    tree = ast.parse((SRC / "live.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            assert node.module == "syscalls"            # the one relative import
    assert names <= set(sys.stdlib_module_names) | {"__future__"}, names


def test_kmsg_record_parsing_and_rendering():
    raw = b"6,1234,15826375,-;Invalid ELF header len 8\n SUBSYSTEM=x\n"
    pri, seq, ts, text = parse_kmsg_record(raw)
    assert (pri, seq, ts, text) == (6, 1234, 15826375, "Invalid ELF header len 8")
    assert format_kmsg(ts, text) == "[   15.826375] Invalid ELF header len 8"
    assert format_kmsg(0, "x") == "[    0.000000] x"
    assert format_kmsg(123456_000001, "y") == "[123456.000001] y"
    # /dev/kmsg escapes bytes < 0x20, > 0x7e and the backslash; the text comes back as dmesg
    # shows it: newlines and UTF-8 restored, 0x7f (not printable) escaped again
    assert parse_kmsg_record(rb"3,5,9,c;Invalid ELF header magic: != \x7fELF" + b"\n")[3] == \
        r"Invalid ELF header magic: != \x7fELF"
    assert parse_kmsg_record(rb"6,7,9,-;natsemi v2.1\x0a  by Becker \x5c \xc2\xa9" + b"\n")[3] == \
        "natsemi v2.1\n  by Becker \\ \u00a9"
    assert parse_kmsg_record(b"garbage") is None


def test_get_kernel_live():
    k = get_kernel("live")
    assert isinstance(k, LiveKernel) and k.name == "live"


def test_syscalls_report_errno_here():
    """This machine's kernel has no module support (ENOSYS) — or we lack privilege (EPERM),
    or the name is unknown (ENOENT) on a real one.  Either way: ret -1 with that errno."""
    k = LiveKernel()
    r = k.delete_module("kmodlab_no_such_module_x", os.O_NONBLOCK)
    assert isinstance(r, SyscallResult)
    assert (r.ret, r.ok) == (-1, False)
    assert r.errno in (errno.ENOSYS, errno.EPERM, errno.ENOENT)
    assert r.details["syscall"] == "delete_module"
    r = k.init_module(b"\0" * 16, "")
    assert r.ret == -1 and r.errno in (errno.ENOSYS, errno.EPERM, errno.ENOEXEC)


def test_finit_of_missing_file_is_an_open_error(tmp_path):
    r = LiveKernel().finit_module(str(tmp_path / "nope.ko"), "")
    assert (r.ret, r.errno, r.details["syscall"]) == (-1, errno.ENOENT, "open")


def test_errno_is_read_only_on_failure(monkeypatch):
    """A stale errno next to ret 0 must not leak into the result."""
    k = LiveKernel()

    class FakeLibc:
        def syscall(self, *args):
            import ctypes
            ctypes.set_errno(errno.EEXIST)
            return 0

    k._libc = FakeLibc()
    r = k.delete_module("x", 0)
    assert (r.ret, r.errno, r.ok, r.reason) == (0, 0, True, "")


def test_proc_and_sys_reads():
    k = LiveKernel()
    assert k.read("/proc/self/stat").startswith(str(os.getpid()).encode())
    assert k.exists("/proc/self") and not k.exists("/proc/kmodlab-nope")
    with pytest.raises(OSError):
        k.read("/proc/kmodlab-nope")
    assert "self" in k.listdir("/proc")


def test_dmesg_renders_or_raises():
    k = LiveKernel()
    try:
        lines = k.dmesg()
    except OSError as e:
        assert e.errno in (errno.EPERM, errno.EACCES, errno.ENOENT)
        return
    for line in lines[:20]:
        assert line[0] == "[" and line[13:15] == "] "


def test_cpio_newc_is_readable_by_busybox(tmp_path):
    bb = shutil.which("busybox")
    if not bb:
        pytest.skip("busybox not installed")
    data = qemu._cpio_newc([("d", 0o040755, b"", 0, 0), ("d/f", 0o100644, b"hello\n", 0, 0),
                            ("dev/console", 0o020600, b"", 5, 1)])
    p = subprocess.run([bb, "cpio", "-t"], input=data, capture_output=True)
    assert p.stdout.decode().split() == ["d", "d/f", "dev/console"]


def test_initramfs_and_vmlinux_when_cached():
    try:
        prep = qemu.prepare()
    except qemu.OracleError as e:
        pytest.skip(str(e))
    assert prep.vmlinux.read_bytes()[:4] == b"\x7fELF"
    cpio = gzip.decompress(prep.initrd.read_bytes())
    for m in qemu.NINEP_STACK:
        assert f"lib/modules/{m}.ko".encode() in cpio
    assert b"guest_script=" in cpio
    assert prep.module("crc7").name == "crc7.ko"


def test_guest_output_dir_must_not_be_hidden(tmp_path):
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("no qemu")
    try:
        qemu.prepare()
    except qemu.OracleError as e:
        pytest.skip(str(e))
    with pytest.raises(qemu.OracleError):
        qemu.run_in_guest("true", outdir="/tmp/kmodlab-x")
