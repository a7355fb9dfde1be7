"""kmod's message format (tools/log.c): "<prog>: ERROR: <msg>" on stderr, plus kmodlab's reasons.

One errno → text table for every tool (kmod has two that disagree; we keep insmod's).
"""
from __future__ import annotations

import sys

from ..errors import ENOENT, ENOEXEC, EINVAL, strerror

ESRCH = 3


def log_error(prog: str, msg: str) -> None:
    print(f"{prog}: ERROR: {msg}", file=sys.stderr)


def log_warning(prog: str, msg: str) -> None:
    print(f"{prog}: WARNING: {msg}", file=sys.stderr)


def log_reason(lines: list[str]) -> None:
    """kmodlab's addition after kmod's line: the kernel's own words, indented."""
    for line in lines:
        print(f"  {line}", file=sys.stderr)


def mod_strerror(err: int) -> str:
    """tools/insmod.c mod_strerror: the only texts kmod's insmod changes."""
    err = abs(err)
    return {
        ENOEXEC: "Invalid module format",
        ENOENT: "Unknown symbol in module",
        ESRCH: "Module has wrong symbol version",
        EINVAL: "Invalid parameters",
    }.get(err) or strerror(err)
