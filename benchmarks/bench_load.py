"""How fast is load_module on real modules?  Figures against baselines measured in the same run.

For every module of a Debian tree (or the first N): the time to (a) read the file, (b) parse its
ELF header and section table with our reader — the floor any loader pays in Python —, and (c) run
the sandbox's load_module up to sysfs (`kmodlab check`'s work: signature verification, layout,
symbol resolution, relocations, parameters).  Prints totals, per-module medians, and (c)/(b).

    python3 benchmarks/bench_load.py [--limit N] [TREE]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("tree", nargs="?")
    ap.add_argument("--limit", type=int, default=0)
    opts = ap.parse_args()
    tree = opts.tree or os.environ.get("KMODLAB_MODULES_DIR")
    if not tree:
        from kmodlab.profile import DEFAULT_PROFILE
        from kmodlab.profile.debian import extract_module_tree
        tree = str(extract_module_tree(DEFAULT_PROFILE.removeprefix("debian-")))
    files = sorted(str(p) for p in Path(tree).rglob("*.ko"))
    if opts.limit:
        files = files[:opts.limit]
    from kmodlab import elf
    from kmodlab.check import Checker
    checker = Checker()
    datas = {}
    t0 = time.perf_counter()
    for f in files:
        datas[f] = Path(f).read_bytes()
    t_read = time.perf_counter() - t0
    for f, d in datas.items():
        checker.add_file_exports(f, d)
    checker.check(files[0], datas[files[0]])             # warm imports (numpy, cryptography)
    parse, load, ok = [], [], 0
    for f, d in datas.items():
        t = time.perf_counter()
        h = elf.parse_header(d)
        secs = elf.parse_sections(d, h.shoff, h.shnum)
        elf.name_sections(d, secs, h.shstrndx)
        parse.append(time.perf_counter() - t)
        t = time.perf_counter()
        ok += checker.check(f, d).ok
        load.append(time.perf_counter() - t)
    mb = sum(len(d) for d in datas.values()) / 1e6
    print(f"{len(files)} modules, {mb:.1f} MB, {ok} would load")
    print(f"(a) read files          {t_read:8.2f} s")
    print(f"(b) ELF header+sections {sum(parse):8.2f} s   median {statistics.median(parse) * 1e3:.3f} ms/module")
    print(f"(c) load_module (check) {sum(load):8.2f} s   median {statistics.median(load) * 1e3:.3f} ms/module")
    print(f"(c)/(b) = {sum(load) / sum(parse):.0f}x   (c) per MB = {sum(load) / mb * 1e3:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
