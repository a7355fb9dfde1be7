"""The one interface the tools drive: the module syscalls and the kernel's /proc and /sys files.

Two real backends stand behind it — the sandbox kernel (kmodlab.sandbox, the default) and the
live kernel (kmodlab.live, real syscalls through ctypes) — chosen in one place,
:func:`get_kernel`, from ``KMODLAB_KERNEL`` (``sandbox`` | ``live``; ``kmodlab --live`` sets it).
The tools never know which one they talk to: this is kmod's ``do_finit_module`` seam.

A syscall returns a :class:`SyscallResult` instead of raising, like the real call returns -1 and
sets errno; ``log`` holds the kernel log lines the call produced (read back from the kernel's
log on the live side where it is readable), which is how tools say *why* a load failed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class SyscallResult:
    ret: int = 0                     # the syscall's return value (0 on success, -1 on failure)
    errno: int = 0                   # positive errno when ret == -1
    log: list[str] = field(default_factory=list)   # kernel log lines emitted by this call
    reason: str = ""                 # the failing step's message in the kernel's words
    details: dict = field(default_factory=dict)    # backend extras (sandbox: trace, layout…)

    @property
    def ok(self) -> bool:
        return self.ret >= 0


class Kernel(Protocol):
    """What a kernel backend offers.  Paths are the kernel's own (/proc/modules, /sys/module/…)."""
    name: str

    def init_module(self, image: bytes, args: str) -> SyscallResult: ...

    def finit_module(self, path: str, args: str, flags: int = 0) -> SyscallResult: ...

    def delete_module(self, name: str, flags: int) -> SyscallResult: ...

    def read(self, path: str) -> bytes:
        """Contents of a /proc or /sys file; raises OSError(errno) like open/read would."""

    def listdir(self, path: str) -> list[str]:
        """Entries of a /sys directory (readdir order); raises OSError like opendir would."""

    def exists(self, path: str) -> bool: ...

    def write(self, path: str, data: bytes) -> int:
        """One write(2) to a /proc or /sys file; raises OSError(errno) as write would."""

    def dmesg(self) -> list[str]:
        """The kernel log as dmesg prints it ('[    1.234567] text')."""

    def close(self) -> None: ...


def get_kernel(kind: str | None = None) -> Kernel:
    """The backend the tools use: ``KMODLAB_KERNEL`` or the sandbox machine by default."""
    kind = kind or os.environ.get("KMODLAB_KERNEL", "sandbox")
    if kind == "live":
        from .live import LiveKernel
        return LiveKernel()
    if kind == "sandbox":
        from .sandbox import SandboxKernel
        return SandboxKernel.open_default()
    from .errors import UsageError
    raise UsageError(f"unknown kernel backend '{kind}' (sandbox or live)")
