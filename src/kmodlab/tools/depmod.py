"""depmod: write modules.dep and the map files of a module tree (kmod 30's tools/depmod.c).

``kmodlab depmod [-a] [-A] [-b BASEDIR] [-e] [-E Module.symvers | -F System.map] [-n] [-v] [VERSION]``
works on ``<BASEDIR>/lib/modules/<VERSION>``.  VERSION defaults to the sandbox profile's release
(``uname -r`` with ``--live``), BASEDIR to ``/``.  The text files (modules.dep, .alias, .softdep,
.symbols, .devname) are kmod 30's byte for byte; kmod's binary ``*.bin`` indexes are not written
(kmodlab's modprobe and modinfo read the text files) — stale ones from an earlier real depmod are
removed so that the real kmod does not read an index that disagrees with the text.

kmodlab's additions: ``-e`` without ``-E``/``-F`` checks against the sandbox profile's vmlinux
exports and CRCs (kmod says "-e needs -E or -F"); ``--json`` prints the ``-e`` findings as JSON.
"""
from __future__ import annotations

import os
import re
import sys

from ..lib.depmod import (Depmod, DepmodError, is_up_to_date, parse_symvers_vmlinux,
                          parse_system_map)
from .common import ToolParser, print_json
from .log import log_error, log_warning

USAGE = """Usage:
\tdepmod -[aA] [options] [forced_version]

If no arguments (except options) are given, "depmod -a" is assumed

depmod will output a dependency list suitable for the modprobe utility.

Options:
\t-a, --all            Probe all modules
\t-A, --quick          Only does the work if there's a new module
\t-e, --errsyms        Report not supplied symbols
\t-n, --show           Write the dependency file on stdout only
\t-P, --symbol-prefix  Architecture symbol prefix
\t-C, --config=PATH    Read configuration from PATH
\t-v, --verbose        Enable verbose mode
\t-w, --warn           Warn on duplicates
\t-V, --version        show version
\t-h, --help           show this help

The following options are useful for people managing distributions:
\t-b, --basedir=DIR    Use an image of a module tree.
\t-F, --filesyms=FILE  Use the file instead of the
\t                     current kernel symbols.
\t-E, --symvers=FILE   Use Module.symvers file to check
\t                     symbol versions.
kmodlab:
\t--json               print the -e findings as JSON
"""

BIN_INDEXES = ("modules.dep.bin", "modules.alias.bin", "modules.symbols.bin",
               "modules.builtin.bin", "modules.builtin.alias.bin")


def default_version() -> str:
    if os.environ.get("KMODLAB_KERNEL") == "live":
        return os.uname().release
    from ..lib.modinfo import default_release
    return default_release()


def main(argv: list[str]) -> int:
    p = ToolParser(prog="depmod", add_help=False)
    for short, long in (("-a", "--all"), ("-A", "--quick"), ("-e", "--errsyms"),
                        ("-n", "--show"), ("-v", "--verbose"), ("-w", "--warn"),
                        ("-u", "--unresolved-error"), ("-q", "--quiet"), ("-r", "--root"),
                        ("-m", "--map"), ("-V", "--version"), ("-h", "--help")):
        p.add_argument(short, long, action="store_true")
    p.add_argument("--dry-run", dest="show", action="store_true")
    p.add_argument("-b", "--basedir")
    p.add_argument("-C", "--config", action="append")
    p.add_argument("-E", "--symvers")
    p.add_argument("-F", "--filesyms")
    p.add_argument("-P", "--symbol-prefix")
    p.add_argument("--json", action="store_true")
    p.add_argument("rest", nargs="*")
    opts = p.parse_args(argv)
    if opts.help:
        print(USAGE, end="")
        return 0
    if opts.version:
        print("kmodlab depmod (kmod version 30 compatible)")
        return 0
    version = None
    rest = list(opts.rest)
    if rest and re.match(r"^\d+\.\d+", rest[0]):
        version = rest.pop(0)
    if rest:
        log_error("depmod", "kmodlab's depmod works on whole trees only; "
                  f"module file arguments are not supported ({rest[0]})")
        return 1
    version = version or default_version()
    base = opts.basedir or ""
    if base and not base.startswith("/"):
        base = os.path.abspath(base)
    dirname = f"{base.rstrip('/')}/lib/modules/{version}"
    if not os.path.isdir(dirname):
        log_error("depmod", f"could not open directory {dirname}: No such file or directory")
        print(f"  kmodlab: no module tree for {version} there. Give one with -b BASEDIR "
              f"(a directory holding lib/modules/{version}); `kmodlab modprobe --tree` "
              f"extracts the sandbox profile's Debian tree and prints its BASEDIR.",
              file=sys.stderr)
        return 1
    if opts.quick and not opts.show and is_up_to_date(dirname):
        return 0

    if opts.json:
        warn = lambda line: None                       # noqa: E731
    else:
        warn = lambda line: log_warning("depmod", line)   # noqa: E731
    dm = Depmod(dirname, verbose=opts.verbose, show=print, warn=warn)
    print_unknown = opts.errsyms
    try:
        if opts.symvers:
            dm.add_kernel_symbols(parse_symvers_vmlinux(opts.symvers), check_crcs=True)
        elif opts.filesyms:
            dm.add_kernel_symbols(parse_system_map(opts.filesyms), check_crcs=False)
        elif print_unknown:
            if os.environ.get("KMODLAB_KERNEL") == "live":
                log_warning("depmod", "-e needs -E or -F")
                print_unknown = False
            else:
                from ..profile import load_profile
                prof = load_profile()
                dm.add_kernel_symbols(((n, e.crc or 0) for n, e in prof.exports.items()),
                                      check_crcs=prof.enabled("MODVERSIONS"))
        dm.run(print_unknown=print_unknown)
    except OSError as e:
        log_error("depmod", f"{e.filename}: {e.strerror}")
        return 1
    except DepmodError as e:
        log_error("depmod", str(e))
        return 1
    if opts.json:
        print_json([pr.as_dict() for pr in dm.problems])
    if opts.show:
        if not opts.json:
            out = sys.stdout.buffer
            for _fname, text in dm.outputs():
                out.write(text.encode("utf-8", "surrogateescape"))
            out.flush()
        return 0
    try:
        dm.write()
        for stale in BIN_INDEXES:
            try:
                os.unlink(os.path.join(dirname, stale))
            except FileNotFoundError:
                pass
    except OSError as e:
        log_error("depmod", f"could not write index files in {dirname}: {e.strerror}")
        return 1
    return 0
