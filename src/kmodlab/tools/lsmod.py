"""lsmod: the loaded modules (kmod's tools/lsmod.c format), from /proc/modules and sysfs."""
from __future__ import annotations

from ..syscalls import get_kernel
from .common import ToolParser, print_json
from .log import log_error


def main(argv: list[str]) -> int:
    p = ToolParser(prog="lsmod", add_help=False)
    p.add_argument("--json", action="store_true")
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("rest", nargs="*")
    opts = p.parse_args(argv)
    if opts.help or opts.rest:
        print("Usage: lsmod")
        return 0 if opts.help else 1
    kernel = get_kernel()
    try:
        text = kernel.read("/proc/modules").decode()
    except OSError as e:
        log_error("lsmod", f"could not open /proc/modules: {e.strerror}")
        print(f"Error: could not get list of modules: {e.strerror}")
        return 1
    rows = []
    for line in text.splitlines():
        f = line.split()
        if not f:
            continue
        name = f[0]
        try:
            size = int(kernel.read(f"/sys/module/{name}/coresize"))
        except (OSError, ValueError):
            size = int(f[1])
        try:
            refcnt = int(kernel.read(f"/sys/module/{name}/refcnt"))
        except (OSError, ValueError):
            refcnt = int(f[2]) if f[2].lstrip("-").isdigit() else 0
        try:
            holders = kernel.listdir(f"/sys/module/{name}/holders")
        except OSError:
            holders = []
        rows.append((name, size, refcnt, holders))
    if opts.json:
        print_json([{"name": n, "size": s, "refcnt": r, "used_by": h} for n, s, r, h in rows])
        return 0
    out = ["Module                  Size  Used by"]
    for name, size, refcnt, holders in rows:
        line = f"{name:<19} {size:8d}  {refcnt}"
        if holders:
            line += " " + ",".join(holders)
        out.append(line)
    print("\n".join(out))
    return 0
