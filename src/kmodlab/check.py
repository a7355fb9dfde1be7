"""Would this module load?  load_module up to parameters and sysfs, without running init.

Each module is loaded into a fresh sandbox machine of the chosen kernel profile, with the
exports of the other modules of its tree available as they would be once those are loaded
(their names, CRCs, GPL-ness and namespaces, from the profile's Module.symvers and from the
files being checked), so dependencies resolve and modversions are compared for real.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from . import elf
from .errors import errno_name, strerror
from .kernel.mm import MODULES_END, PAGE_SIZE

TREE_EXPORT_ADDR = MODULES_END - PAGE_SIZE      # where "another module's" symbols pretend to be


@dataclass
class CheckResult:
    file: str
    name: str = ""
    ok: bool = False
    errno: int = 0
    error: str = ""
    message: str = ""
    step: str = ""
    coresize: int = 0
    initsize: int = 0
    log: list[str] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)   # modules whose exports it used, first use first
    seconds: float = 0.0                             # the load's own time (reports)
    init: str = ""                  # --run-init: live, none, init-error, unmodelled, … (check_init.py)
    init_detail: str = ""
    init_log: list[str] = field(default_factory=list)  # the kernel's lines of the real load + init

    def as_json(self) -> dict:
        return {"file": self.file, "name": self.name, "ok": self.ok, "errno": self.errno,
                "error": self.error, "message": self.message, "step": self.step,
                "coresize": self.coresize, "initsize": self.initsize, "needs": self.needs,
                "log": self.log,
                **({"init": self.init, "init_detail": self.init_detail, "init_log": self.init_log}
                   if self.init else {})}


@dataclass(frozen=True)
class TreeExport:
    crc: int | None
    gpl: bool
    namespace: str
    owner: str


def file_exports(data: bytes) -> dict[str, TreeExport]:
    """A module file's exports, read from its symtab (__ksymtab_<name> symbols) and __kcrctab."""
    try:
        hdr = elf.parse_header(data)
        secs = elf.parse_sections(data, hdr.shoff, hdr.shnum)
        names = secs[hdr.shstrndx]
        if b"__ksymtab" not in data[names.offset:names.offset + names.size]:
            return {}                  # no section can be called __ksymtab or __ksymtab_gpl
        elf.name_sections(data, secs, hdr.shstrndx)
        symsec = next(s for s in secs if s.type == elf.SHT_SYMTAB)
        strtab = data[secs[symsec.link].offset:secs[symsec.link].offset + secs[symsec.link].size]
    except Exception:
        return {}
    out: dict[str, TreeExport] = {}
    for gpl, tab, crctab in ((False, "__ksymtab", "__kcrctab"), (True, "__ksymtab_gpl", "__kcrctab_gpl")):
        ti, ci = elf.find_section(secs, tab), elf.find_section(secs, crctab)
        if not ti:
            continue
        entries = []
        for st_name, _info, _o, shndx, value, _size in elf.SYM.iter_unpack(
                data[symsec.offset:symsec.offset + symsec.size - symsec.size % elf.SYM.size]):
            if shndx == ti:
                nm = elf.cstring(strtab, st_name)
                if nm.startswith("__ksymtab_"):
                    entries.append((value, nm[len("__ksymtab_"):]))
        crcs = []
        if ci:
            c = secs[ci]
            crcs = [int.from_bytes(data[c.offset + 4 * k:c.offset + 4 * k + 4], "little")
                    for k in range(c.size // 4)]
        for k, (_v, nm) in enumerate(sorted(entries)):
            out[nm] = TreeExport(crcs[k] if k < len(crcs) else None, gpl, "", "")
    return out


def _owner_module(owner: str) -> str:
    """Module name of an export's owner: a Module.symvers path ("drivers/media/mc/mc") or a
    checked file's name ("mc.ko.xz"); "" for vmlinux."""
    if not owner or owner == "vmlinux":
        return ""
    return os.path.basename(owner).split(".ko")[0].replace("-", "_")


class Checker:
    def __init__(self, profile=None, files: list[str] | None = None):
        from .profile import load_profile
        self.profile = profile or load_profile()
        self.tree: dict[str, TreeExport] = {}
        for name, e in self.profile.module_exports.items():
            self.tree[name] = TreeExport(e.crc, e.gpl, e.namespace, e.owner)
        self.files = list(files or [])
        self._needs: list[str] = []
        self._owner_names: dict[str, str] = {}    # TreeExport.owner → _owner_module of it
        self.init_runner = None       # check_init.InitRunner: --run-init

    def add_file_exports(self, path: str, data: bytes) -> None:
        self.add_exports(path, file_exports(data))

    def add_exports(self, path: str, exports: dict[str, TreeExport]) -> None:
        """A checked file's exports join the tree unless the profile (or an earlier file) has
        the name already."""
        owner = os.path.basename(path)
        for name, e in exports.items():
            self.tree.setdefault(name, TreeExport(e.crc, e.gpl, e.namespace, owner))

    def check_file(self, path: str) -> CheckResult:
        """check() of a file read here (decompressed by its magic, as kmod would)."""
        data, err = _read(path)
        if data is None:
            res = _read_error(path, err)
            if self.init_runner:
                res.init, res.init_detail = "load-error", errno_name(err.errno)
            return res
        res = self.check(path, data)
        if self.init_runner:
            self.init_runner.run(res)
        return res

    def enable_run_init(self, files: list[str]) -> None:
        """Dependencies come from the checked files first, then from the module tree they lie
        in (the nearest directory above them with a kernel/ subdirectory), as modprobe finds
        them."""
        from .check_init import InitRunner, module_name, tree_paths
        paths: dict[str, str] = {}
        for f in files:
            paths.setdefault(module_name(f), f)
        for name, p in tree_paths(files).items():
            paths.setdefault(name, p)
        self.init_runner = InitRunner(self.profile, paths)

    def _extra(self, name: str, gplok: bool):
        from .kernel.module.main import FoundSymbol
        e = self.tree.get(name)
        if e is None or (e.gpl and not gplok):
            return None
        owner = self._owner_names.get(e.owner)
        if owner is None:
            owner = self._owner_names[e.owner] = _owner_module(e.owner)
        if owner and owner not in self._needs:
            self._needs.append(owner)
        return FoundSymbol(TREE_EXPORT_ADDR, e.crc, e.gpl, e.namespace, None, name)

    def check(self, path: str, data: bytes | None = None) -> CheckResult:
        from .kernel.module import main
        from .machine import Machine
        from .tools.log import mod_strerror
        if data is None:
            data, err = _read(path)
            if data is None:
                return _read_error(path, err)
        res = CheckResult(file=path)
        t0 = time.perf_counter()
        m = Machine.boot(self.profile.name, seed=0)
        m.profile = self.profile
        start = len(m.log)
        self._needs = []
        r = main.load_module(m, data, "", 0, run_init=False, extra=self._extra)
        res.name, res.step = r.name, r.step
        res.needs = self._needs
        res.seconds = time.perf_counter() - t0
        res.coresize, res.initsize = r.coresize, r.initsize
        res.log = [x.text for x in m.log[start:]]
        res.ok = r.ret >= 0
        if not res.ok:
            res.errno = -r.ret
            res.error = mod_strerror(res.errno)
            res.message = r.reason
        return res


# -- many files: the tree's exports first, then one load per module, over a process pool ------

def default_jobs() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def effective_jobs(n_files: int, jobs: int) -> int:
    """Processes worth starting: a fork and a profile per worker cost more than a few loads."""
    return max(1, min(jobs, n_files // 4 or 1))


def _read(path: str) -> tuple[bytes | None, object]:
    from .lib.file import ModuleFileError, read_module
    try:
        return read_module(path).data, None
    except ModuleFileError as e:
        return None, e


def _read_error(path: str, err) -> CheckResult:
    """The result for a file kmod's user space could not read (ModuleFileError's errno)."""
    return CheckResult(file=path, errno=err.errno, error=strerror(err.errno), message=str(err))


def _exports_of(path: str) -> dict[str, TreeExport]:
    data, _err = _read(path)
    return file_exports(data) if data is not None else {}


_worker: "Checker | None" = None       # the pool worker's checker (set once per worker process)


def _init_worker(checker: "Checker") -> None:
    global _worker
    _worker = checker


def _check_in_worker(path: str) -> CheckResult:
    return _worker.check_file(path)


def _pool(jobs: int, checker: "Checker | None"):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    # fork: the workers inherit the profile (and the tree) already decoded, nothing is pickled
    return ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork"),
                               initializer=_init_worker, initargs=(checker,))


def _chunk(n: int, jobs: int) -> int:
    return max(1, min(32, n // (jobs * 8) or 1))


def tree_exports(files: list[str], jobs: int = 1) -> list[dict[str, TreeExport]]:
    """Every file's exports, in file order (they do not depend on the kernel profile)."""
    jobs = effective_jobs(len(files), jobs)
    if jobs == 1:
        return [_exports_of(f) for f in files]
    with _pool(jobs, None) as ex:
        return list(ex.map(_exports_of, files, chunksize=_chunk(len(files), jobs)))


def check_files(checker: "Checker", files: list[str], jobs: int = 1, progress=None,
                exports: list[dict[str, TreeExport]] | None = None):
    """CheckResult of every file, in order: first every file's exports go into the checker's
    tree (file order decides between two files exporting one name), then each file is loaded.
    ``jobs`` > 1 spreads both passes over that many forked processes; ``progress(done, total)``
    is called as results arrive; ``exports`` (tree_exports' answer) saves the first pass."""
    if exports is None:
        exports = tree_exports(files, jobs)
    for f, exp in zip(files, exports):
        checker.add_exports(f, exp)
    jobs = effective_jobs(len(files), jobs)
    if jobs == 1:
        for k, f in enumerate(files):
            yield checker.check_file(f)
            if progress:
                progress(k + 1, len(files))
        return
    with _pool(jobs, checker) as ex:
        try:
            for k, r in enumerate(ex.map(_check_in_worker, files, chunksize=_chunk(len(files), jobs))):
                yield r
                if progress:
                    progress(k + 1, len(files))
        except BaseException:
            ex.shutdown(wait=False, cancel_futures=True)
            raise


def check_matrix(profiles: list, files: list[str], jobs: int = 1, progress=None,
                 run_init: bool = False):
    """(profile, CheckResult) for every profile × file, profile by profile, each file in order;
    the files' exports are read once for all profiles."""
    exports = tree_exports(files, jobs)
    total = len(files) * len(profiles)
    for k, prof in enumerate(profiles):
        sub = (lambda d, _t, k=k: progress(k * len(files) + d, total)) if progress else None
        checker = Checker(prof)
        if run_init:
            checker.enable_run_init(files)
        for r in check_files(checker, files, jobs, sub, exports):
            yield prof, r
