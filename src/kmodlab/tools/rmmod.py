"""rmmod: remove modules from the kernel (kmod's tools/rmmod.c), with kmod's pre-checks."""
from __future__ import annotations

import os

from ..errors import strerror
from ..kernel.module.internal import O_NONBLOCK, O_TRUNC
from ..syscalls import get_kernel
from .common import ToolParser, print_json
from .log import log_error, log_reason, log_warning

USAGE = """Usage:
\trmmod [options] modulename ...
Options:
\t-f, --force       forces a module unload and may crash your
\t                  machine. This requires Forced Module Removal
\t                  option in your kernel. DANGEROUS
\t-s, --syslog      print to syslog, not stderr
\t-v, --verbose     enables more messages
\t-V, --version     show version
\t-h, --help        show this help
kmodlab:
\t--json            print the results as JSON
\t--as-user         call without CAP_SYS_MODULE
"""


def module_name_of(arg: str) -> str:
    """A path names the module it contains; otherwise the argument is the name."""
    if os.path.isfile(arg):
        from .. import elf
        from ..lib.file import read_module
        try:
            data = read_module(arg).data
            hdr = elf.parse_header(data)
            secs = elf.parse_sections(data, hdr.shoff, hdr.shnum)
            elf.name_sections(data, secs, hdr.shstrndx)
            i = elf.find_section(secs, ".modinfo")
            for tag, value in elf.parse_modinfo(elf.section_bytes(data, secs[i])) if i else []:
                if tag == "name":
                    return value
        except Exception:
            pass
        base = os.path.basename(arg)
        return base.split(".ko")[0].replace("-", "_")
    return arg


def check_module_inuse(kernel, name: str, builtin: set[str]) -> str | None:
    """kmod's checks before delete_module; the message for a refusal, or None."""
    if name in builtin:
        return f"Module {name} is builtin."
    if not kernel.exists(f"/sys/module/{name}/initstate"):
        return f"Module {name} is not currently loaded"
    try:                         # kmod_module_get_holders: a directory it cannot open is "none"
        holders = kernel.listdir(f"/sys/module/{name}/holders")
    except OSError:
        holders = []
    if holders:
        return f"Module {name} is in use by: {' '.join(holders)}"
    try:
        refcnt = int(kernel.read(f"/sys/module/{name}/refcnt"))
    except OSError:
        return "Module unloading is not supported"
    if refcnt > 0:
        return f"Module {name} is in use"
    return None


def main(argv: list[str]) -> int:
    p = ToolParser(prog="rmmod", add_help=False)
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("-s", "--syslog", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("-w", "--wait", action="store_true")
    p.add_argument("-V", "--version", action="store_true")
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("--json", action="store_true")
    p.add_argument("--trace", action="store_true")
    p.add_argument("--as-user", action="store_true")
    p.add_argument("names", nargs="*")
    opts = p.parse_args(argv)
    if opts.help:
        print(USAGE, end="")
        return 0
    if opts.version:
        print("kmodlab rmmod (kmod version 30 compatible)")
        return 0
    if not opts.names:
        log_error("rmmod", "missing module name.")
        return 1
    kernel = get_kernel()
    if hasattr(kernel, "cred"):
        kernel.cred.cap_sys_module = not opts.as_user
        kernel.trace = opts.trace
    builtin = _builtin_names(kernel)
    rc = 0
    results = []
    for arg in opts.names:
        name = module_name_of(arg)
        if not opts.force:
            msg = check_module_inuse(kernel, name, builtin)
            if msg:
                results.append({"name": name, "ok": False, "message": msg})
                if not opts.json:
                    log_error("rmmod", msg)
                rc = 1
                continue
        res = kernel.delete_module(name, O_NONBLOCK | (O_TRUNC if opts.force else 0))
        left = (res.details or {}).get("left_registered", [])
        results.append({"name": name, "ok": res.ok, "errno": res.errno, "message": res.reason,
                        "log": res.log, **({"left_registered": left} if left else {})})
        if left and not opts.json:
            for what in left:
                log_warning("rmmod", f"{name}'s exit left {what} registered (the kernel keeps "
                                     "a pointer into the freed module)")
        if opts.trace:
            for line in (res.details or {}).get("trace", []):
                print(f"  {line}")
        if not res.ok:
            rc = 1
            if not opts.json:
                log_error("rmmod", f"could not remove module {name}: {strerror(res.errno)}")
                log_reason([res.reason] if res.reason else [])
    if opts.json:
        print_json(results)
    return rc


def _builtin_names(kernel) -> set[str]:
    if getattr(kernel, "name", "") == "sandbox":
        from ..profile import load_profile
        try:
            with kernel.session(write=False) as m:
                return set(m.profile.builtin)
        except Exception:
            return set()
    release = os.uname().release
    try:
        with open(f"/lib/modules/{release}/modules.builtin") as f:
            return {os.path.basename(l.strip()).split(".ko")[0].replace("-", "_") for l in f if l.strip()}
    except OSError:
        return set()
