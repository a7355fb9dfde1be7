"""check: would these modules load on the profile's kernel, and if not, why?

``kmodlab check [--kernel PROFILE]... [-j N | --cluster ADDRESS] [--json] [--junit-xml F]
[--sarif F] PATH...`` — files or whole module trees.  Runs load_module up to relocation,
parameter parsing and sysfs for each module (init is not run), with the exports of the tree's
other modules available, and says which modules a loadable one needs loaded first.  Several
--kernel options check the matrix (every module on every kernel); --cluster spreads it over a
Dask cluster (``kmodlab[cluster]``) instead of local processes.

Exit status: 0 every module would load; 1 at least one would not (or could not be read);
2 usage error (bad option, no such profile).
"""
from __future__ import annotations

import os
import sys
import time
from collections import Counter

from ..check import check_matrix, default_jobs, effective_jobs
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


def summary_table(results, seconds: float, jobs) -> list[str]:
    counts = Counter(outcome(r) for r in results)
    rows = sorted(counts.items(), key=lambda kv: (kv[0] != "would load", -kv[1], kv[0]))
    width = max([len(k) for k in counts] + [7])
    out = [f"{'outcome':<{width}}  modules"]
    out += [f"{k:<{width}}  {v:7d}" for k, v in rows]
    n = len(results)
    how = jobs if isinstance(jobs, str) else f"{jobs} process{'es' if jobs > 1 else ''}"
    out.append(f"{'total':<{width}}  {n:7d}   ({seconds:.2f} s, {n / max(seconds, 1e-9):.0f} "
               f"modules/s, {how})")
    return out


def matrix_table(profiles, results) -> list[str]:
    """One row per kernel: how many modules would load on it, and the commonest refusals."""
    width = max(len(p.name) for p in profiles)
    out = [f"{'kernel':<{width}}  would load  would not  commonest refusals"]
    for p in profiles:
        rs = [r for q, r in results if q is p]
        bad = Counter(outcome(r) for r in rs if not r.ok)
        top = ", ".join(f"{k} {v}" for k, v in bad.most_common(3))
        out.append(f"{p.name:<{width}}  {len(rs) - sum(bad.values()):10d}  {sum(bad.values()):9d}  {top}")
    return out


def text_line(r, prefix: str = "") -> list[str]:
    if r.ok:
        needs = f", needs {', '.join(r.needs)}" if r.needs else ""
        init = ""
        if r.init:
            from ..check_init import init_text
            init = f"; init: {init_text(r)}"
        return [f"{prefix}{r.file}: {r.name}: ok{needs} (coresize {r.coresize}, initsize {r.initsize}){init}"]
    out = [f"{prefix}{r.file}: {r.name or '?'}: ERROR: {r.error} (errno {r.errno}, in {r.step or 'read'})"]
    out += [f"  {line}" for line in r.log]
    if r.message and not any(r.message in l for l in r.log):
        out.append(f"  {r.message}")
    return out


def main(argv: list[str]) -> int:
    p = ToolParser(prog="check", description=__doc__.split("\n\n")[0])
    p.add_argument("--kernel", metavar="PROFILE", action="append",
                   help="kernel profile (default: the embedded one); repeat for a matrix")
    p.add_argument("-j", "--jobs", type=int, metavar="N",
                   help="processes to spread the modules over (default: one per CPU)")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="a Dask scheduler (tcp://host:8786) to spread the work over instead")
    p.add_argument("--run-init", action="store_true",
                   help="also run each loadable module's init (after its dependencies) under "
                        "emulation, and tally how far the inits run")
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
        names = opts.kernel or [os.environ.get("KMODLAB_PROFILE")]
        profiles = []
        for n in names:
            prof = load_profile(n)
            if all(prof is not q for q in profiles):
                profiles.append(prof)
        if opts.cluster:
            from ..cluster import _client
            _client(opts.cluster).close()     # unreachable or no Dask: a usage error, now
    except KmodlabError as e:
        log_error("check", str(e))
        return EXIT_USAGE
    matrix = len(profiles) > 1
    files = module_files(opts.paths)
    jobs = opts.jobs or default_jobs()
    progress = None
    if not opts.json and sys.stderr.isatty() and len(files) * len(profiles) > 1:
        progress = Progress(sys.stderr, "checking")
    t0 = time.perf_counter()
    results = []
    if opts.cluster:
        from ..cluster import check_matrix_dask
        stream = check_matrix_dask(opts.cluster, profiles, files, progress, run_init=opts.run_init)
    else:
        stream = check_matrix(profiles, files, jobs, progress, run_init=opts.run_init)
    try:
        for prof, r in stream:
            results.append((prof, r))
            if opts.json:
                print_json({"kernel": prof.name, **r.as_json()} if matrix else r.as_json())
            elif not r.ok or not opts.quiet or r.init not in ("", "live", "none", "init-error"):
                if progress:
                    progress.clear()
                print("\n".join(text_line(r, f"{prof.name}: " if matrix else "")),
                      flush=progress is not None)
    finally:
        if progress:
            progress.clear()
    took = time.perf_counter() - t0
    bad = sum(not r.ok for _p, r in results)
    if opts.junit_xml or opts.sarif:
        from . import check_report
        runs = [(p.name, [r for q, r in results if q is p]) for p in profiles]
        if opts.junit_xml:
            check_report.write_junit(opts.junit_xml,
                                     [(n, rs, sum(r.seconds for r in rs)) for n, rs in runs])
        if opts.sarif:
            check_report.write_sarif(opts.sarif, runs)
    if not opts.json:
        n = len(results)
        where = f"on {len(profiles)} kernels, " if matrix else ""
        print(f"{n} checked, {where}{n - bad} would load, {bad} would not", file=sys.stderr)
        if matrix:
            print("\n".join(matrix_table(profiles, results)), file=sys.stderr)
        if opts.run_init:
            from ..check_init import tally
            for p in profiles:
                head = [f"{p.name}:"] if matrix else []
                print("\n".join(head + tally([r for q, r in results if q is p])), file=sys.stderr)
        if n > 1:
            used = "a Dask cluster" if opts.cluster else effective_jobs(len(files), jobs)
            print("\n".join(summary_table([r for _p, r in results], took, used)), file=sys.stderr)
    return EXIT_SOME_WOULD_NOT if bad else EXIT_ALL_LOAD
