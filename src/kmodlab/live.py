"""The live kernel: the real module syscalls through ctypes, the real /proc and /sys, /dev/kmsg.

:class:`LiveKernel` is the second backend behind :mod:`kmodlab.syscalls` (``kmodlab --live``).
It adds nothing to what the kernel says: each call is one raw ``syscall()`` (x86_64 numbers
init_module 175, delete_module 176, finit_module 313), the errno is read only when the call
returned -1 (glibc leaves a stale errno after a success), and the kernel log lines the call
produced are read back from /dev/kmsg: its end is noted before the call and the new records are
read after it.  If /dev/kmsg is unreadable (no privilege, ``dmesg_restrict``) the log stays empty.

Without CAP_SYS_MODULE the kernel itself answers EPERM; nothing is checked here in advance.
On a kernel built without module support the calls answer ENOSYS.

Only the standard library is imported, so this file runs from any Python (e.g. inside the QEMU
oracle's guest) with ``PYTHONPATH`` pointing at ``src``.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import os
import re
import platform

from .syscalls import SyscallResult

# Syscall numbers per architecture (include/uapi/asm-generic/unistd.h and arch tables).
_SYSCALL_NR = {
    "x86_64": {"init_module": 175, "delete_module": 176, "finit_module": 313},
    "aarch64": {"init_module": 105, "delete_module": 106, "finit_module": 273},
    "riscv64": {"init_module": 105, "delete_module": 106, "finit_module": 273},
}

KMSG = "/dev/kmsg"
_KMSG_RECORD_MAX = 8192          # CONSOLE_EXT_LOG_MAX: one read returns one whole record


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


# --- /dev/kmsg -------------------------------------------------------------------------------

def parse_kmsg_record(raw: bytes) -> tuple[int, int, int, str] | None:
    """One /dev/kmsg record "pri,seq,ts_usec,flags[,…];text\\n[ KEY=val\\n…]" →
    (level/facility word, seq, ts_usec, text), the text as dmesg shows it (:func:`kmsg_text`)."""
    head, sep, rest = raw.partition(b";")
    if not sep:
        return None
    fields = head.split(b",")
    try:
        pri, seq, ts = int(fields[0]), int(fields[1]), int(fields[2])
    except (ValueError, IndexError):
        return None
    text = rest.split(b"\n", 1)[0]          # continuation lines (" SUBSYSTEM=…") are dropped
    return pri, seq, ts, kmsg_text(text)


_KMSG_ESCAPE = re.compile(rb"\\x([0-9a-f]{2})")


def kmsg_text(escaped: bytes) -> str:
    """A record's text as util-linux dmesg shows it.  /dev/kmsg writes every byte below 0x20 or
    above 0x7e, and the backslash, as ``\\xNN`` (printk.c ``msg_add_ext_text``); dmesg undoes
    that and writes the text back with the bytes that are neither printable nor white space
    (0x7f, other control bytes, invalid UTF-8) as ``\\xNN`` again: a multi-line printk keeps its
    newlines, ``\\177ELF`` shows as ``\\x7fELF``.  The sandbox's log holds texts in this form."""
    raw = _KMSG_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), escaped)
    out = raw.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() or c in "\n\t " else f"\\x{ord(c):02x}"
                   for c in out) if not out.isprintable() else out


def format_kmsg(ts_usec: int, text: str) -> str:
    """dmesg's rendering: ``[%5lu.%06lu] text``."""
    return f"[{ts_usec // 1_000_000:5d}.{ts_usec % 1_000_000:06d}] {text}"


def _read_records(fd: int) -> list[tuple[int, int, int, str]]:
    """Every record readable from fd now (non-blocking), skipping over overwritten ones."""
    out = []
    while True:
        try:
            raw = os.read(fd, _KMSG_RECORD_MAX)
        except BlockingIOError:
            break
        except OSError as e:
            if e.errno == _errno.EPIPE:      # records were overwritten under us: go on
                continue
            if e.errno == _errno.EINTR:
                continue
            break
        if not raw:
            break
        rec = parse_kmsg_record(raw)
        if rec is not None:
            out.append(rec)
    return out


class _KmsgWatch:
    """Notes the end of the kernel log now; :meth:`new_lines` returns what was logged since."""

    def __init__(self) -> None:
        self.fd = -1
        try:
            self.fd = os.open(KMSG, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            os.lseek(self.fd, 0, os.SEEK_END)
        except OSError:
            self.close()

    def new_records(self) -> list[tuple[int, int, int, str]]:
        if self.fd < 0:
            return []
        try:
            return _read_records(self.fd)
        finally:
            self.close()

    def close(self) -> None:
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
        self.fd = -1


# --- the backend -----------------------------------------------------------------------------

class LiveKernel:
    """The running kernel, through the same interface as the sandbox (see kmodlab.syscalls)."""

    name = "live"

    def __init__(self, arch: str | None = None) -> None:
        self.arch = arch or platform.machine()
        self._nr = _SYSCALL_NR.get(self.arch)
        self._libc = _libc()

    # -- the syscalls ---------------------------------------------------------------------------
    def _syscall(self, call: str, *args) -> SyscallResult:
        if self._nr is None:
            return SyscallResult(ret=-1, errno=_errno.ENOSYS,
                                 details={"syscall": call, "arch": self.arch})
        watch = _KmsgWatch()
        ret = self._libc.syscall(ctypes.c_long(self._nr[call]), *args)
        err = ctypes.get_errno() if ret == -1 else 0      # errno is stale after a success
        records = watch.new_records()
        log = [text for _pri, _seq, _ts, text in records]
        res = SyscallResult(ret=int(ret), errno=err, log=log)
        res.details["syscall"] = call
        res.details["dmesg"] = [format_kmsg(ts, text) for _p, _s, ts, text in records]
        if ret == -1 and log:                              # the kernel's own words, if any
            res.reason = log[-1]
        return res

    def init_module(self, image: bytes, args: str = "") -> SyscallResult:
        buf = ctypes.create_string_buffer(bytes(image), len(image))
        return self._syscall("init_module", buf, ctypes.c_ulong(len(image)),
                             ctypes.c_char_p(args.encode()))

    def finit_module(self, path: str, args: str = "", flags: int = 0) -> SyscallResult:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            return SyscallResult(ret=-1, errno=e.errno or _errno.EIO,
                                 reason=f"could not open {path}: {os.strerror(e.errno or 5)}",
                                 details={"syscall": "open"})
        try:
            return self.finit_fd(fd, args, flags)
        finally:
            os.close(fd)

    def finit_fd(self, fd: int, args: str = "", flags: int = 0) -> SyscallResult:
        """finit_module on an already open descriptor (e.g. to see EBADF for an O_WRONLY fd)."""
        return self._syscall("finit_module", ctypes.c_int(fd), ctypes.c_char_p(args.encode()),
                             ctypes.c_int(flags))

    def delete_module(self, name: str, flags: int = os.O_NONBLOCK) -> SyscallResult:
        return self._syscall("delete_module", ctypes.c_char_p(name.encode()),
                             ctypes.c_uint(flags))

    # -- /proc, /sys, the log ----------------------------------------------------------------------
    def read(self, path: str) -> bytes:
        with open(path, "rb", buffering=0) as f:
            chunks = []
            while True:
                b = f.read(65536)
                if not b:
                    return b"".join(chunks)
                chunks.append(b)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)                 # readdir order, unsorted

    def write(self, path: str, data: bytes) -> int:
        """One write(2) to a /proc or /sys file (as `echo VALUE > PATH`)."""
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            return os.write(fd, data)
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def dmesg(self) -> list[str]:
        """The whole kernel log from /dev/kmsg, rendered as dmesg does; OSError if unreadable."""
        fd = os.open(KMSG, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            return [format_kmsg(ts, text) for _p, _s, ts, text in _read_records(fd)]
        finally:
            os.close(fd)

    def tainted(self) -> int:
        """/proc/sys/kernel/tainted as a number."""
        return int(self.read("/proc/sys/kernel/tainted").decode().strip() or 0)

    def close(self) -> None:
        pass
