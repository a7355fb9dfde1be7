"""insmod: hand one module file to the kernel (kmod's tools/insmod.c), plus kmodlab's why.

How the file reaches the kernel (finit_module, or init_module with a decompressed or
stripped image) is lib/module.py's insert_module, shared with modprobe.
Messages are kmod's; after them kmodlab prints the kernel's own reason for a failure.
"""
from __future__ import annotations

import os
import sys

from ..errors import ENOSYS, strerror
from ..kernel.module.internal import MODULE_INIT_IGNORE_MODVERSIONS, MODULE_INIT_IGNORE_VERMAGIC
from ..lib.args import options_from_array
from ..lib.file import ModuleFileError
from ..lib.module import insert_module
from ..syscalls import get_kernel
from .common import ToolParser, call_json, print_json
from .log import log_error, log_reason, mod_strerror

USAGE = """Usage:
\tinsmod [options] filename [args]
Options:
\t-V, --version     show version
\t-h, --help        show this help
kmodlab:
\t-f, --force       ignore vermagic and symbol versions (taints the kernel)
\t--json            print the result as JSON
\t--explain         narrate load_module's steps as the kernel performs them
\t--trace           list the kernel functions init called
\t--as-user         call without CAP_SYS_MODULE (the kernel says EPERM)
"""


def main(argv: list[str]) -> int:
    p = ToolParser(prog="insmod", add_help=False)
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("-s", "--syslog", action="store_true")
    p.add_argument("-p", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("-V", "--version", action="store_true")
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("--json", action="store_true")
    p.add_argument("--explain", action="store_true")
    p.add_argument("--trace", action="store_true")
    p.add_argument("--as-user", action="store_true")
    p.add_argument("filename", nargs="?")
    p.add_argument("args", nargs="*")
    opts = p.parse_args(argv)
    if opts.help:
        print(USAGE, end="")
        return 0
    if opts.version:
        print("kmodlab insmod (kmod version 30 compatible)")
        return 0
    if not opts.filename:
        log_error("insmod", "missing filename.")
        return 1
    if opts.filename == "-":
        log_error("insmod", "this tool does not support loading from stdin!")
        return 1
    args = options_from_array(opts.args)
    kernel = get_kernel()
    if hasattr(kernel, "cred"):
        kernel.cred.cap_sys_module = not opts.as_user
        kernel.trace = opts.trace or opts.json
    elif opts.as_user:
        log_error("insmod", "--as-user works with the sandbox kernel only")
        return 1
    flags = (MODULE_INIT_IGNORE_MODVERSIONS | MODULE_INIT_IGNORE_VERMAGIC) if opts.force else 0
    try:                                        # kmod_module_new_from_path: stat(2) only
        os.stat(opts.filename)
    except OSError as e:
        log_error("insmod", f"could not load module {opts.filename}: {strerror(e.errno)}")
        return 1
    try:
        res = insert_module(kernel, opts.filename, args, flags)
    except ModuleFileError as e:                # kmod_module_insert_module → kmod_file_open
        log_error("insmod", f"could not insert module {opts.filename}: {mod_strerror(e.errno)}")
        return 1
    if opts.json:
        d = res.details or {}
        print_json({"file": opts.filename, "name": d.get("name"), "ok": res.ok,
                    "errno": res.errno, "error": None if res.ok else mod_strerror(res.errno),
                    "message": res.reason, "log": res.log,
                    "coresize": d.get("coresize"), "initsize": d.get("initsize"),
                    "steps": [[s, _jsonable(v)] for s, v in d.get("steps", [])],
                    "calls": [call_json(c) for c in d.get("calls", [])]})
        return 0 if res.ok else 1
    if opts.explain:
        from .explain import explain
        explain(res, sys.stdout)
    if opts.trace:
        for line in (res.details or {}).get("trace", []):
            print(f"  {line}")
    if not res.ok:
        log_error("insmod", f"could not insert module {opts.filename}: {mod_strerror(res.errno)}")
        log_reason(why(res))
        return 1
    return 0


def why(res) -> list[str]:
    """The lines that say why: the kernel's warnings and errors from this call, else the reason."""
    lines = [l for l in res.log if l and not l.startswith("Linux version")]
    if res.reason and not any(res.reason in l for l in lines):
        lines.append(res.reason)
    if not lines and res.errno == ENOSYS:
        lines.append("the running kernel has no module support (CONFIG_MODULES is not set); "
                     "kmodlab's sandbox kernel (the default, without --live) has")
    return lines


def _jsonable(v):
    import dataclasses
    if dataclasses.is_dataclass(v):
        return dataclasses.asdict(v)
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v
