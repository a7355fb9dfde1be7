"""write: `echo VALUE > PATH` for the kernel's /proc and /sys files (sandbox or live).

    kmodlab write /proc/sys/kernel/modules_disabled 1
    kmodlab write /sys/module/module/parameters/sig_enforce Y
    kmodlab write /sys/module/hello/parameters/who kernel
"""
from __future__ import annotations

import sys

from ..syscalls import get_kernel
from .common import ToolParser


def main(argv: list[str]) -> int:
    p = ToolParser(prog="write", description=__doc__.split("\n\n")[0])
    p.add_argument("path")
    p.add_argument("value")
    p.add_argument("-n", action="store_true", help="no trailing newline (echo -n)")
    opts = p.parse_args(argv)
    data = (opts.value if opts.n else opts.value + "\n").encode()
    try:
        get_kernel().write(opts.path, data)
    except OSError as e:
        import os
        print(f"write: {opts.path}: {os.strerror(e.errno) if e.errno else e}", file=sys.stderr)
        return 1
    return 0
