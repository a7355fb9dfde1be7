#!/usr/bin/env python3
"""How long ``kmodlab modinfo`` takes, against a baseline measured in the same run.

    python benchmarks/bench_modinfo.py [--runs N] [--module PATH] [--tree DIR]

1. Wall time of ``kmodlab modinfo <module>`` as a subprocess (median of N runs), next to
   ``python -c pass`` with the same interpreter: the difference is what kmodlab costs on top of
   starting Python (the budget is 25 ms).  The real ``modinfo`` is timed too when installed.
   Bytecode caching is switched on for the children (PYTHONDONTWRITEBYTECODE removed,
   PYTHONPYCACHEPREFIX set to a temporary directory), as for an installed package; with it off
   every start compiles kmodlab's sources again.
2. In-process time per module of ``tools.modinfo.main`` over a whole module tree (output
   discarded), i.e. the library's cost without interpreter start-up.
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CACHE = tempfile.mkdtemp(prefix="kmodlab-bench-pyc-")
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPYCACHEPREFIX"] = _CACHE



def _default_tree() -> Path:
    """Debian's module tree of the embedded profile's release, fetched once into the cache."""
    from kmodlab.profile import DEFAULT_PROFILE
    from kmodlab.profile.debian import extract_module_tree
    return extract_module_tree(DEFAULT_PROFILE.removeprefix("debian-"))


TREE = Path(os.environ.get("KMODLAB_MODULES_DIR") or _default_tree())


def wall(cmds: list[list[str]], runs: int) -> list[tuple[float, float]]:
    """(median, min) wall time in ms of each command, run **interleaved** (one of each per
    round, after a warm-up round) so that load from other processes hits all of them alike."""
    for cmd in cmds:
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    times: list[list[float]] = [[] for _ in cmds]
    for _ in range(runs):
        for i, cmd in enumerate(cmds):
            t = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
            times[i].append((time.perf_counter() - t) * 1000)
    return [(statistics.median(t), min(t)) for t in times]


OWN = ("import sys, time\nt = time.perf_counter()\nfrom kmodlab.tools import main\n"
       "import io\nsys.stdout = io.TextIOWrapper(io.BytesIO())\n"
       "main(['kmodlab', 'modinfo', sys.argv[1]])\n"
       "sys.stderr.write('%f' % ((time.perf_counter() - t) * 1000))\n")


def own_cost(py: str, module: str, runs: int) -> list[float]:
    """ms from the first kmodlab import to the end of ``main`` in fresh interpreters: what
    kmodlab adds to Python's start-up, free of the start-up's own noise."""
    out = []
    for _ in range(runs):
        r = subprocess.run([py, "-c", OWN, module], capture_output=True, text=True, env=ENV)
        out.append(float(r.stderr.strip().splitlines()[-1]))
    return out


def in_process(files: list[str]) -> float:
    """Mean ms per module of tools.modinfo.main over ``files`` (batches of 100)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from kmodlab.tools import modinfo as tool
    saved = sys.stdout
    t = time.perf_counter()
    try:
        for i in range(0, len(files), 100):
            sys.stdout = io.TextIOWrapper(io.BytesIO())
            tool.main(files[i:i + 100])
            sys.stdout.flush()
    finally:
        sys.stdout = saved
    return (time.perf_counter() - t) * 1000 / max(1, len(files))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--module", default=str(TREE / "kernel/drivers/block/loop.ko"))
    ap.add_argument("--tree", type=Path, default=TREE / "kernel")
    args = ap.parse_args(argv)
    if not os.path.isfile(args.module):
        print(f"bench_modinfo: no module {args.module} (set KMODLAB_MODULES_DIR)", file=sys.stderr)
        return 1
    py = sys.executable
    cmds = {"python -c pass": [py, "-c", "pass"],
            "python -m kmodlab modinfo": [py, "-m", "kmodlab", "modinfo", args.module]}
    script = shutil.which("kmodlab")
    if script:
        cmds["kmodlab modinfo (script)"] = [script, "modinfo", args.module]
    real = next((p for p in ("/usr/sbin/modinfo", "/sbin/modinfo") if os.path.exists(p)), None)
    if real:
        cmds["kmod modinfo (C)"] = [real, args.module]
    res = dict(zip(cmds, wall(list(cmds.values()), args.runs)))
    base_med, base_min = res["python -c pass"]
    print(f"{args.runs} interleaved runs of each; module {args.module}")
    print(f"{'command':28} {'median':>9} {'min':>9}   over python -c pass (median / min)")
    for name, (med, mn) in res.items():
        extra = "" if name == "python -c pass" or name.startswith("kmod modinfo") else \
            f"   +{med - base_med:.1f} / +{mn - base_min:.1f} ms"
        print(f"{name:28} {med:7.1f}ms {mn:7.1f}ms{extra}")
    own = own_cost(py, args.module, args.runs)
    print(f"{'kmodlab work after start-up':28} {statistics.median(own):7.1f}ms {min(own):7.1f}ms"
          f"   (imports + run, timed inside a fresh interpreter)")
    files = sorted(str(p) for p in args.tree.rglob("*.ko*"))
    if files:
        per = in_process(files)
        print(f"in-process, {len(files)} modules      {per:7.3f} ms per module "
              f"({per * len(files) / 1000:.2f} s total)")
    shutil.rmtree(_CACHE, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
