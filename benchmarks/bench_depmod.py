#!/usr/bin/env python3
"""kmodlab depmod against kmod 30's depmod on the same tree, measured in the same run.

    python benchmarks/bench_depmod.py [--tree DIR/lib/modules/REL]

Both write into hard-linked copies of the tree (default: the embedded profile's Debian tree
from the cache); the table gives wall-clock seconds and whether the five text files are equal.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FILES = ("modules.dep", "modules.alias", "modules.softdep", "modules.symbols", "modules.devname")


def link_tree(src: Path, dst: Path) -> None:
    for top, _dirs, files in os.walk(src):
        rel = os.path.relpath(top, src)
        os.makedirs(dst / rel, exist_ok=True)
        for fn in files:
            if fn.startswith("modules.") and fn not in ("modules.order", "modules.builtin",
                                                        "modules.builtin.modinfo"):
                continue
            os.link(os.path.join(top, fn), dst / rel / fn)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", type=Path)
    a = ap.parse_args()
    tree = a.tree
    if tree is None:
        from kmodlab.profile import DEFAULT_PROFILE
        from kmodlab.profile.debian import extract_module_tree
        tree = extract_module_tree(DEFAULT_PROFILE.removeprefix("debian-"))
    rel = tree.name
    kmod = shutil.which("depmod") or "/usr/sbin/depmod"
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        rows = []
        for who, cmd in (("kmod 30 depmod", [kmod]),
                         ("kmodlab depmod", [sys.executable, "-m", "kmodlab", "depmod"])):
            base = t / who.split()[0]
            link_tree(tree, base / "lib/modules" / rel)
            start = time.perf_counter()
            subprocess.run([*cmd, "-b", str(base), rel], check=True)
            rows.append((who, time.perf_counter() - start, base / "lib/modules" / rel))
        same = all((rows[0][2] / f).read_bytes() == (rows[1][2] / f).read_bytes() for f in FILES)
        n = sum(1 for _ in open(rows[0][2] / "modules.dep"))
        print(f"{n} modules in {tree}")
        for who, secs, _ in rows:
            print(f"  {who:<16} {secs:6.2f} s")
        print(f"  text files identical: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
