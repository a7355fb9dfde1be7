"""kernel/kmod.c: ``__request_module`` — the kernel asks user space to load a module.

``request_module(fmt, ...)`` / ``request_module_nowait`` compile to
``__request_module(bool wait, const char *fmt, ...)``.  As Linux 6.1 does it:

1. ``modprobe_path`` empty (``/proc/sys/kernel/modprobe`` cleared) → ``-ENOENT``;
2. the name is formatted into a ``MODULE_NAME_LEN`` (64) buffer with vsnprintf; a name that
   does not fit → ``-ENAMETOOLONG``;
3. the security hook (no LSM refuses on Debian's default boot) and the ``kmod_concurrent_max``
   throttle (``MAX_KMOD_CONCURRENT`` = 50 helpers at once) — the throttle is the caller's
   hook's (:meth:`kmodlab.machine.Machine.request_module`), which knows what is in flight;
4. ``call_modprobe``: ``modprobe -q -- NAME`` as the usermode helper, waited for
   (UMH_WAIT_PROC: the helper's wait status, 0 or exit code << 8 — 256 when modprobe finds
   nothing) or only started (UMH_WAIT_EXEC: 0).

Nothing is logged on the way (``-q``; the kernel prints only the throttle's warnings).  The
result is never made up: :meth:`Emulator.request_module` runs the caller's hook — the sandbox
machine's in-process modprobe against its module tree — or, without a hook, answers as a kernel
whose modprobe finds nothing.
"""
from __future__ import annotations

from ..registry import model
from .vsprintf import vsprintf

ENOENT, ENAMETOOLONG = 2, 36
MODULE_NAME_LEN = 64


def request_module(emu, wait: bool, name: str) -> int:
    """``__request_module`` after formatting: what a model that requests a module calls."""
    if not emu.modprobe_path:
        return -ENOENT
    if len(name.encode("latin-1")) >= MODULE_NAME_LEN:
        return -ENAMETOOLONG
    return emu.request_module(name, bool(wait))


@model("__request_module")
def __request_module(emu, wait, fmt, *_):
    if not emu.modprobe_path:
        return -ENOENT
    name = vsprintf(emu, emu.cstr(fmt), emu.args_from(2))
    emu.note(f"modprobe -q -- {name}" + ("" if wait & 0xFF else " (nowait)"))
    return request_module(emu, wait & 0xFF, name)
