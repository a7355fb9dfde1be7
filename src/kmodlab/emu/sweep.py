"""Run real modules' init under emulation and tally how each run ends (a corpus sweep).

Each module is loaded into a fresh in-memory :class:`~kmodlab.sandbox.SandboxKernel` after its
dependencies (each dependency's own init must run and leave it LIVE, as modprobe would need),
and the outcome is one of:

- ``LIVE`` — init returned 0 (or a positive value: the kernel loads the module anyway);
- ``init errno N`` — init returned ``-N`` itself (its own honest failure, e.g. -ENODEV);
- ``unmodelled function F`` / ``unmodelled data D`` — the run stopped on a kernel function or
  data export without a model;
- ``oops`` — the emulated CPU faulted the way the kernel would oops;
- ``budget`` — the run did not return within its instruction budget or time limit;
- ``load failed (step, errno N)`` — load_module refused the module before init;
- ``dependency X: <outcome>`` — a dependency did not become LIVE.

Dependencies come from the tree's ``modules.dep`` when depmod has written one; Debian's package
ships none, so otherwise each module's ``.modinfo`` ``depends=`` (what modpost computed, the
same symbol-level dependencies) is followed transitively, deepest first.

``benchmarks/bench_emu.py`` prints the table for a tree.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_SUBDIRS = ("crypto", "lib", "fs", "drivers/net")
_UNMODELLED = re.compile(r"(?:init|exit) (?:called|read|wrote) unmodelled kernel "
                         r"(function|data) (\S+)")


def _modname(path: str) -> str:
    base = os.path.basename(path)
    return base.split(".ko")[0].replace("-", "_")


def module_paths(tree: Path) -> dict[str, str]:
    """Module name (``-`` folded to ``_``) → path of its file, for every module in the tree."""
    out: dict[str, str] = {}
    for d, _sub, files in os.walk(tree / "kernel"):
        for f in files:
            if ".ko" in f:
                out.setdefault(_modname(f), os.path.join(d, f))
    return out


def module_deps(tree: Path, paths: dict[str, str],
                names: list[str] | None = None) -> dict[str, list[str]]:
    """Module name → its dependencies' names in load order (deepest first), for ``names``
    (default: every module in ``paths``; .modinfo is read only for the modules needed)."""
    dep_file = tree / "modules.dep"
    if dep_file.exists():
        out: dict[str, list[str]] = {}
        for line in dep_file.read_text().splitlines():
            if ":" not in line:
                continue
            mod, deps = line.split(":", 1)
            # modules.dep lists the whole closure, the deepest last: load in reverse
            out[_modname(mod)] = [_modname(d) for d in reversed(deps.split())]
        return out
    from .. import elf
    direct: dict[str, list[str]] = {}

    def direct_deps(name: str) -> list[str]:
        if name not in direct:
            try:                                # .ko.xz/.zst/.gz: decompressed by magic
                from ..lib.file import decompress
                info = elf.parse_modinfo(decompress(Path(paths[name]).read_bytes()))
            except Exception:                   # noqa: BLE001 - missing/broken: no deps
                info = []
            deps = ",".join(v for k, v in info if k == "depends")
            direct[name] = [d.replace("-", "_") for d in deps.split(",") if d]
        return direct[name]

    closure: dict[str, list[str]] = {}

    def visit(n: str, stack: tuple[str, ...]) -> list[str]:
        if n in closure:
            return closure[n]
        order: list[str] = []
        for d in direct_deps(n):
            if d in stack:
                continue
            for x in visit(d, stack + (n,)) + [d]:
                if x not in order:
                    order.append(x)
        closure[n] = order
        return order

    for n in (paths if names is None else names):
        visit(n, ())
    return closure


def classify(r) -> str:
    """The outcome of one finit_module result, as a table key."""
    if r.errno == 0:
        return "LIVE"
    reason = r.reason or ""
    m = _UNMODELLED.search(reason)
    if m:
        return f"unmodelled {m.group(1)} {m.group(2)}"
    step = (getattr(r, "details", None) or {}).get("step") or ""
    if "did not return within" in reason:
        return "budget"
    if r.errno == 14 and step in ("", "do_init_module"):
        return "oops"
    if step and step != "do_init_module":
        return f"load failed ({step}, errno {r.errno})"
    return f"init errno {r.errno}"


@dataclass
class SweepResult:
    outcomes: dict[str, str] = field(default_factory=dict)       # module → outcome
    reasons: dict[str, str] = field(default_factory=dict)        # module → the reason text

    def table(self) -> Counter:
        return Counter(self.outcomes.values())

    def kinds(self) -> Counter:
        """Outcomes folded into LIVE / init errno / unmodelled / oops / budget / load / dep."""
        c: Counter = Counter()
        for o in self.outcomes.values():
            c[o.split(" ")[0] if not o.startswith("init errno") else "init-errno"] += 1
        return c

    def unmodelled(self, through_deps: bool = True) -> Counter:
        """Unmodelled names, counted once per module they stop (also via a dependency)."""
        c: Counter = Counter()
        for o in self.outcomes.values():
            m = re.search(r"unmodelled (?:function|data) (\S+)", o)
            if m and (through_deps or not o.startswith("dependency")):
                c[m.group(1)] += 1
        return c

    def render(self, top: int = 40) -> str:
        n = len(self.outcomes)
        lines = [f"{n} modules"]
        for k, v in sorted(self.kinds().items(), key=lambda kv: -kv[1]):
            lines.append(f"  {k:<14} {v:5d}")
        lines.append("outcomes:")
        for k, v in self.table().most_common(top):
            lines.append(f"  {v:5d}  {k}")
        lines.append("unmodelled names (modules stopped, directly or via a dependency):")
        for k, v in self.unmodelled().most_common(top):
            lines.append(f"  {v:5d}  {k}")
        return "\n".join(lines)


def sweep(tree: Path, subdirs=DEFAULT_SUBDIRS, limit: int | None = None,
          progress=None) -> SweepResult:
    """Load every module under ``tree/kernel/<subdir>`` (sorted by path) as described above."""
    from ..sandbox import SandboxKernel
    tree = Path(tree)
    paths = module_paths(tree)
    roots = [str(tree / "kernel" / s) + os.sep for s in subdirs]
    targets = sorted((p, n) for n, p in paths.items() if any(p.startswith(r) for r in roots))
    if limit is not None:
        targets = targets[:limit]
    deps = module_deps(tree, paths, [n for _p, n in targets])
    res = SweepResult()
    standalone: dict[str, str] = {}          # a dependency's outcome (after its own deps)
    for i, (path, name) in enumerate(targets):
        k = SandboxKernel()
        outcome = None
        for d in deps.get(name, []):
            if d not in paths:
                outcome = f"dependency {d}: not in tree"
                break
            if standalone.get(d, "LIVE") != "LIVE":
                outcome = f"dependency {d}: {standalone[d]}"
                break
            r = k.finit_module(paths[d], "", 0)
            standalone[d] = classify(r)
            if r.errno:
                outcome = f"dependency {d}: {standalone[d]}"
                break
        if outcome is None:
            r = k.finit_module(path, "", 0)
            outcome = classify(r)
            res.reasons[name] = r.reason or ""
        res.outcomes[name] = outcome
        if progress:
            progress(i, len(targets), name, outcome)
    return res
