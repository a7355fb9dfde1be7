"""`kmodlab check --run-init`: how far does each module's init run under emulation?

After the plain check (load_module up to sysfs, with the tree's exports), a module that would
load is loaded for real into a fresh in-memory sandbox machine of the same profile, after its
dependencies (``.modinfo`` ``depends=``, transitively, deepest first — or the tree's
modules.dep when depmod wrote one), each of which must itself become LIVE; then its init runs on
the emulated CPU.  A fresh machine per module (not one machine in modprobe order) keeps each
answer independent of which other modules happened to load before, so a tally over a tree does
not depend on file order, and a module's init is judged with exactly its dependencies present
(plus what its own request_module calls load, from the tree when it is the profile's installed
one: see ``InitRunner._kernel``).

Outcomes (``CheckResult.init``), with ``init_detail``:

- ``live``: init returned 0 (or a positive value; the kernel loads the module anyway);
- ``none``: the module has no init function (LIVE at once);
- ``init-error``: init returned a negative errno of its own (e.g. -ENODEV: no hardware) — detail
  the errno's name;
- ``unmodelled``: init called a kernel function, or read kernel data, the emulator does not
  model — detail ``function NAME`` or ``data NAME``;
- ``oops``: the emulated CPU faulted as the kernel would oops;
- ``budget``: init did not return within the instruction budget or time limit;
- ``dependency``: a dependency did not become LIVE — detail ``NAME: its outcome`` (or ``NAME:
  not among the checked files``);
- ``load-error``: load_module refused the module (the plain check's errno and step).
"""
from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

from .errors import errno_name

OUTCOMES = ("live", "none", "init-error", "unmodelled", "oops", "budget", "dependency", "load-error")
_UNMODELLED = re.compile(r"unmodelled (?:kernel )?(function|data|CPU instruction) (\S+)")


def module_name(path: str) -> str:
    return os.path.basename(path).split(".ko")[0].replace("-", "_")


def has_init(result) -> bool:
    """Did the load have an init to run?  From the load's own do_init_module record (mod->init
    as init_exit_pointers found it in this_module's relocations)."""
    for step, rec in result.details.get("steps") or []:
        if step == "do_init_module":
            return bool(rec.get("init"))
    return True


def classify(r) -> tuple[str, str]:
    """(outcome, detail) of one finit_module result of the sandbox kernel."""
    if r.errno == 0:
        return "live", ""
    reason = r.reason or ""
    m = _UNMODELLED.search(reason)
    if m:
        return "unmodelled", f"{m.group(1)} {m.group(2)}"
    step = (getattr(r, "details", None) or {}).get("step") or ""
    if "did not return within" in reason:
        return "budget", ""
    if r.errno == 14 and step in ("", "do_init_module"):
        return "oops", ""
    if step and step != "do_init_module":
        return "load-error", f"{errno_name(r.errno)} in {step}"
    return "init-error", f"-{errno_name(r.errno)}"


class InitRunner:
    """Runs inits for one checker's tree (``paths``: module name → file), remembering each
    dependency's own outcome so that a module needed by many is run once per process."""

    def __init__(self, profile, paths: dict[str, str]):
        self.profile = profile
        self.paths = paths
        self._dep_outcome: dict[str, tuple[str, str]] = {}
        self._deps: dict[str, list[str]] = {}
        self._modprobe_base: str | None = None      # "" once known to be none

    def deps_of(self, name: str) -> list[str]:
        if name not in self._deps:
            from .emu.sweep import module_deps
            self._deps.update(module_deps(_tree_root(self.paths), self.paths, [name]))
        return list(self._deps.get(name, []))

    def _kernel(self):
        """A fresh in-memory machine of the profile.  When the checked files are the profile's
        own installed tree (``…/lib/modules/<its release>`` with modules.dep), that tree is the
        machine's /lib/modules: an init's request_module (crypto_alloc_shash's "crypto-crc32c",
        a protocol family's alias) then loads from it, as modprobe does on a real machine with
        that tree installed."""
        from .machine import Machine
        from .sandbox import SandboxKernel
        m = Machine.boot(self.profile.name, profile=self.profile)
        if self._modprobe_base is None:
            self._modprobe_base = _modprobe_base(_tree_root(self.paths), self.profile.release)
        if self._modprobe_base:
            m.use_module_tree(self._modprobe_base, self.profile.release)
        return SandboxKernel(machine=m)

    def run(self, res) -> None:
        """Fill res.init / res.init_detail for a module the plain check judged."""
        if not res.ok:
            res.init, res.init_detail = "load-error", f"{errno_name(res.errno)} in {res.step or 'read'}"
            return
        name = res.name or module_name(res.file)
        deps = self.deps_of(name) if name in self.paths else []
        for n in res.needs:
            if n not in deps:
                deps.append(n)
        k = self._kernel()
        for d in deps:
            if d not in self.paths:
                res.init, res.init_detail = "dependency", f"{d}: not in the tree"
                return
            known = self._dep_outcome.get(d)
            if known is not None and known[0] not in ("live", "none"):
                res.init, res.init_detail = "dependency", f"{d}: {_text(*known)}"
                return
            r = _insmod(k, self.paths[d])
            if r.errno == 17:                       # EEXIST: loaded already, as another's dependency
                continue
            out = classify(r)
            self._dep_outcome.setdefault(d, out)
            if out[0] != "live":
                res.init, res.init_detail = "dependency", f"{d}: {_text(*out)}"
                return
        r = _insmod(k, res.file)
        res.init, res.init_detail = classify(r)
        if res.init == "live" and not has_init(r):
            res.init = "none"
        res.init_log = list(r.log)


def tree_paths(files: list[str]) -> dict[str, str]:
    """Module name → file for the whole module tree the files lie in: the nearest directory
    above their common directory that has a kernel/ subdirectory containing them ({} if none)."""
    from .emu.sweep import module_paths
    if not files:
        return {}
    d = Path(os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files]))
    for up in (d, *d.parents):
        if (up / "kernel").is_dir() and (d == up / "kernel" or (up / "kernel") in d.parents
                                         or d == up):
            return module_paths(up)
    return {}


def _insmod(kernel, path: str):
    """What kmod's insmod does with a file: decompress it in user space (by its magic), then
    init_module(2) with the image."""
    from .lib.file import read_module
    return kernel.init_module(read_module(path).data, "")


def _tree_root(paths: dict[str, str]) -> Path:
    """The directory whose modules.dep (if depmod wrote one) covers these files: the nearest
    one above their common directory, else that directory (dependencies then from .modinfo)."""
    if not paths:
        return Path("/nonexistent")
    d = Path(os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths.values()]))
    for up in (d, *d.parents):
        if (up / "modules.dep").exists():
            return up
    return d


def _modprobe_base(root: Path, release: str) -> str:
    """The basedir whose lib/modules/<release> request_module's modprobe searches: the checked
    tree itself if it is ``…/lib/modules/<release>`` with depmod's files, the depmod'ed copy of
    it (``kmodlab modprobe --tree``'s) if it is the project's extracted Debian tree; else ""."""
    root = next((d for d in (root, *root.parents) if d.name == release
                 and d.parent.name == "modules" and d.parent.parent.name == "lib"), None)
    if root is None:
        return ""
    base = root.parent.parent.parent
    if (root / "modules.dep").exists():
        return str(base)
    if (base / ".complete").exists():                 # profile/debian.py's extracted tree
        from .tools.modprobe import prepare_tree
        return prepare_tree(release, root)
    return ""


def _text(outcome: str, detail: str) -> str:
    return f"{outcome} ({detail})" if detail else outcome


def init_text(res) -> str:
    return _text(res.init, res.init_detail)


def tally(results) -> list[str]:
    """The text report's end: outcomes, the share that ran to their end, and the unmodelled
    names ranked by how many modules they stop (directly or through a dependency)."""
    c = Counter(r.init for r in results if r.init)
    with_init = sum(v for k, v in c.items() if k != "none")
    ran = c["live"] + c["init-error"]
    out = ["init outcome  modules"]
    out += [f"{k:<12}  {c[k]:7d}" for k in OUTCOMES if c[k]]
    if with_init:
        out.append(f"live + init-error: {ran} of {with_init} modules with an init "
                   f"({100 * ran / with_init:.1f}%)")
    blockers: Counter = Counter()
    for r in results:
        m = re.search(r"(?:function|data) ([^\s)]+)", r.init_detail or "")
        if m and r.init in ("unmodelled", "dependency"):
            blockers[m.group(1)] += 1
    if blockers:
        out.append("unmodelled names, by modules they stop (directly or via a dependency):")
        out += [f"  {v:6d}  {k}" for k, v in blockers.most_common(40)]
    return out
