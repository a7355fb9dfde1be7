"""check: would these modules load on the profile's kernel, and if not, why?

``kmodlab check [--kernel PROFILE] [-j N] [--json] [--junit-xml F] [--sarif F] PATH...`` — files
or whole module trees.  Runs load_module up to relocation, parameter parsing and sysfs for each
module (init is not run), with the exports of the tree's other modules available, and says which
modules a loadable one needs loaded first.

Exit status: 0 every module would load; 1 at least one would not (or could not be read);
2 usage error (bad option, no such profile).
"""
from __future__ import annotations

import os
import sys
import time
from collections import Counter

from ..check import Checker, check_files, default_jobs, effective_jobs
from ..errors import KmodlabError, errno_name
from ..lib.file import KMOD_EXTENSIONS
from .common import ToolParser, print_json
from .log import log_error

EXIT_ALL_LOAD, EXIT_SOME_WOULD_NOT, EXIT_USAGE = 0, 1, 2


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


class Progress:
    """One status line on a terminal's stderr, redrawn at most ten times a second."""

    def __init__(self, stream, what: str):
        self.stream, self.what = stream, what
        self.t0 = self.last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.1 and done != total:
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-9)
        eta = (total - done) / rate if rate else 0
        self.stream.write(f"\r\x1b[K{self.what} {done}/{total} ({100 * done // total}%), "
                          f"{rate:.0f}/s, {eta:.0f} s left")
        self.stream.flush()

    def clear(self) -> None:
        self.stream.write("\r\x1b[K")
        self.stream.flush()


def outcome(r) -> str:
    if r.ok:
        return "would load"
    return f"{errno_name(r.errno)} in {r.step or 'read'}"


def summary_table(results, seconds: float, jobs: int) -> list[str]:
    counts = Counter(outcome(r) for r in results)
    rows = sorted(counts.items(), key=lambda kv: (kv[0] != "would load", -kv[1], kv[0]))
    width = max([len(k) for k in counts] + [7])
    out = [f"{'outcome':<{width}}  modules"]
    out += [f"{k:<{width}}  {v:7d}" for k, v in rows]
    n = len(results)
    out.append(f"{'total':<{width}}  {n:7d}   ({seconds:.2f} s, {n / max(seconds, 1e-9):.0f} "
               f"modules/s, {jobs} process{'es' if jobs > 1 else ''})")
    return out


def text_line(r) -> list[str]:
    if r.ok:
        needs = f", needs {', '.join(r.needs)}" if r.needs else ""
        return [f"{r.file}: {r.name}: ok{needs} (coresize {r.coresize}, initsize {r.initsize})"]
    out = [f"{r.file}: {r.name or '?'}: ERROR: {r.error} (errno {r.errno}, in {r.step or 'read'})"]
    out += [f"  {line}" for line in r.log]
    if r.message and not any(r.message in l for l in r.log):
        out.append(f"  {r.message}")
    return out


def main(argv: list[str]) -> int:
    p = ToolParser(prog="check", description=__doc__.split("\n\n")[0])
    p.add_argument("--kernel", metavar="PROFILE", help="kernel profile (default: the embedded one)")
    p.add_argument("-j", "--jobs", type=int, metavar="N",
                   help="processes to spread the modules over (default: one per CPU)")
    p.add_argument("--json", action="store_true", help="one JSON object per module and line")
    p.add_argument("--junit-xml", metavar="FILE", help="also write a JUnit XML report (one testcase per module)")
    p.add_argument("--sarif", metavar="FILE", help="also write a SARIF 2.1.0 report (one result per module that would not load)")
    p.add_argument("-q", "--quiet", action="store_true", help="print failures and the summary only")
    p.add_argument("paths", nargs="+", metavar="PATH")
    try:
        opts = p.parse_args(argv)
        if opts.jobs is not None and opts.jobs < 1:
            raise KmodlabError(f"-j needs a positive number, not {opts.jobs}")
        from ..profile import load_profile
        profile = load_profile(opts.kernel or os.environ.get("KMODLAB_PROFILE"))
    except KmodlabError as e:
        log_error("check", str(e))
        return EXIT_USAGE
    checker = Checker(profile)
    files = module_files(opts.paths)
    jobs = opts.jobs or default_jobs()
    progress = None
    if not opts.json and sys.stderr.isatty() and len(files) > 1:
        progress = Progress(sys.stderr, "checking")
    t0 = time.perf_counter()
    results = []
    try:
        for r in check_files(checker, files, jobs, progress):
            results.append(r)
            if opts.json:
                print_json(r.as_json())
            elif not r.ok or not opts.quiet:
                if progress:
                    progress.clear()
                print("\n".join(text_line(r)), flush=progress is not None)
    finally:
        if progress:
            progress.clear()
    took = time.perf_counter() - t0
    bad = sum(not r.ok for r in results)
    if opts.junit_xml or opts.sarif:
        from . import check_report
        if opts.junit_xml:
            check_report.write_junit(opts.junit_xml, results, profile.name, took)
        if opts.sarif:
            check_report.write_sarif(opts.sarif, results, profile.name)
    if not opts.json:
        print(f"{len(files)} checked, {len(files) - bad} would load, {bad} would not", file=sys.stderr)
        if len(files) > 1:
            print("\n".join(summary_table(results, took, effective_jobs(len(files), jobs))),
                  file=sys.stderr)
    return EXIT_SOME_WOULD_NOT if bad else EXIT_ALL_LOAD
