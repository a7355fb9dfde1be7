"""check: would these modules load on the profile's kernel, and if not, why?

``kmodlab check [--kernel PROFILE] [--json] PATH...`` — files or whole module trees.  Runs
load_module up to relocation, parameter parsing and sysfs for each module (init is not run),
with the exports of the tree's other modules available.
"""
from __future__ import annotations

import os
import sys

from ..check import Checker
from ..lib.file import KMOD_EXTENSIONS
from .common import ToolParser, print_json


def module_files(paths: list[str]) -> list[str]:
    out = []
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs.sort()
                out += [os.path.join(root, f) for f in sorted(files) if f.endswith(KMOD_EXTENSIONS)]
        else:
            out.append(p)
    return out


def main(argv: list[str]) -> int:
    p = ToolParser(prog="check", description=__doc__.split("\n\n")[0])
    p.add_argument("--kernel", metavar="PROFILE", help="kernel profile (default: the embedded one)")
    p.add_argument("--json", action="store_true", help="one JSON object per module and line")
    p.add_argument("-q", "--quiet", action="store_true", help="print failures and the summary only")
    p.add_argument("paths", nargs="+", metavar="PATH")
    opts = p.parse_args(argv)
    from ..profile import load_profile
    checker = Checker(load_profile(opts.kernel or os.environ.get("KMODLAB_PROFILE")))
    files = module_files(opts.paths)
    from ..lib.file import ModuleFileError, read_module
    datas = {}
    for f in files:
        try:
            datas[f] = read_module(f).data
            checker.add_file_exports(f, datas[f])
        except ModuleFileError:
            datas[f] = None
    bad = 0
    for f in files:
        r = checker.check(f, datas[f])
        bad += not r.ok
        if opts.json:
            print_json(r.as_json())
        elif not r.ok:
            print(f"{f}: {r.name or '?'}: ERROR: {r.error} (errno {r.errno}, in {r.step or 'read'})")
            for line in r.log:
                print(f"  {line}")
            if r.message and not any(r.message in l for l in r.log):
                print(f"  {r.message}")
        elif not opts.quiet:
            print(f"{f}: {r.name}: ok (coresize {r.coresize}, initsize {r.initsize})")
    if not opts.json:
        print(f"{len(files)} checked, {len(files) - bad} would load, {bad} would not", file=sys.stderr)
    return 1 if bad else 0
