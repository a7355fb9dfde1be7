"""cat: read the kernel's /proc and /sys files (of the sandbox machine, or the live kernel)."""
from __future__ import annotations

import sys

from ..syscalls import get_kernel
from .common import ToolParser


def main(argv: list[str]) -> int:
    p = ToolParser(prog="cat")
    p.add_argument("paths", nargs="+", metavar="PATH", help="e.g. /proc/modules, /sys/module/hello/refcnt")
    opts = p.parse_args(argv)
    kernel = get_kernel()
    rc = 0
    for path in opts.paths:
        try:
            data = kernel.read(path)
        except OSError as e:
            if e.errno == 21:
                try:
                    print("\n".join(kernel.listdir(path)))
                    continue
                except OSError:
                    pass
            print(f"cat: {path}: {e.strerror or e}", file=sys.stderr)
            rc = 1
            continue
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return rc
