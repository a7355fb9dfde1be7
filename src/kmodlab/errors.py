"""Errors as values a user can read: the kernel's errno, its log line, and a plain reason.

Every failure of the sandbox kernel is a :class:`KernelError` carrying the negative errno the
syscall returns, the step (the kernel function's name) that failed, and the kernel log lines
that step printed.  Tools render ``strerror``-style text with kmod's wording (see tools/log.py).
"""
from __future__ import annotations

import errno as _errno
import os

# x86-64 values, named as the kernel names them (reference §0).
EPERM = _errno.EPERM
ENOENT = _errno.ENOENT
EINTR = _errno.EINTR
EIO = _errno.EIO
ENOEXEC = _errno.ENOEXEC
EBADF = _errno.EBADF
EAGAIN = EWOULDBLOCK = _errno.EAGAIN
ENOMEM = _errno.ENOMEM
EFAULT = _errno.EFAULT
EBUSY = _errno.EBUSY
EEXIST = _errno.EEXIST
ENODEV = _errno.ENODEV
EINVAL = _errno.EINVAL
ETXTBSY = _errno.ETXTBSY
EFBIG = _errno.EFBIG
ENOSPC = _errno.ENOSPC
EROFS = _errno.EROFS
ERANGE = _errno.ERANGE
ENOSYS = _errno.ENOSYS
ENODATA = _errno.ENODATA
ENOPKG = 65
EBADMSG = _errno.EBADMSG
EOPNOTSUPP = _errno.EOPNOTSUPP
ETIMEDOUT = _errno.ETIMEDOUT
ENOKEY = 126
EKEYREJECTED = 129


def strerror(err: int) -> str:
    """glibc's text for a (positive or negative) errno, e.g. 517 → 'Unknown error 517'."""
    return os.strerror(abs(err))


def errno_name(err: int) -> str:
    """Symbolic name of an errno ('ENOENT'), or 'E<n>' for kernel-internal ones."""
    return _errno.errorcode.get(abs(err), f"E{abs(err)}")


class KmodlabError(Exception):
    """Base class of every error kmodlab reports to a user (never shown as a traceback)."""


class KernelError(KmodlabError):
    """A syscall failed: ``errno`` is positive (as userspace sees it after ``-1``)."""

    def __init__(self, err: int, step: str = "", reason: str = "", log: list[str] | None = None):
        self.errno = abs(err)
        self.step = step
        self.reason = reason or strerror(err)
        self.log = list(log or [])
        super().__init__(f"{self.reason} ({errno_name(self.errno)}, in {step or '?'})")


class UsageError(KmodlabError):
    """Bad command line or bad user input outside the kernel (printed as 'prog: ERROR: …')."""
