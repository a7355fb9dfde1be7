"""dmesg: the kernel log, rendered as util-linux's dmesg does by default."""
from __future__ import annotations

from ..syscalls import get_kernel
from .common import ToolParser, print_json


def main(argv: list[str]) -> int:
    p = ToolParser(prog="dmesg")
    p.add_argument("--json", action="store_true", help="records as JSON")
    p.add_argument("-t", "--notime", action="store_true", help="don't print timestamps")
    opts = p.parse_args(argv)
    lines = get_kernel().dmesg()
    if opts.notime:
        lines = [l.split("] ", 1)[1] if l.startswith("[") and "] " in l else l for l in lines]
    if opts.json:
        print_json(lines)
    else:
        for l in lines:
            print(l)
    return 0
