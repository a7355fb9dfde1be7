#!/usr/bin/env python3
"""How far real modules' init runs under emulation: a sweep of Debian's tree, tallied.

    python benchmarks/bench_emu.py [--tree DIR] [--subdir crypto --subdir fs ...] [--limit N]
                                   [--json FILE] [--top N]

Every module under the chosen subdirectories of ``<tree>/kernel`` is loaded into a fresh
in-memory sandbox kernel after its dependencies (see ``kmodlab.emu.sweep``); the table counts
LIVE, init's own errno, unmodelled functions/data (by name), oopses, budget, load failures and
failed dependencies.  One process, one module at a time.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", type=Path)
    ap.add_argument("--subdir", action="append")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--json", type=Path)
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    from kmodlab.emu.sweep import DEFAULT_SUBDIRS, sweep
    tree = a.tree
    if tree is None:
        from kmodlab.profile import DEFAULT_PROFILE
        from kmodlab.profile.debian import extract_module_tree
        tree = extract_module_tree(DEFAULT_PROFILE.removeprefix("debian-"))

    def progress(i, n, name, outcome):
        if a.verbose:
            print(f"[{i + 1}/{n}] {name}: {outcome}", file=sys.stderr)

    t0 = time.monotonic()
    res = sweep(tree, tuple(a.subdir or DEFAULT_SUBDIRS), a.limit, progress)
    dt = time.monotonic() - t0
    print(res.render(a.top))
    print(f"{len(res.outcomes)} modules in {dt:.1f} s")
    if a.json:
        a.json.write_text(json.dumps({"outcomes": res.outcomes, "reasons": res.reasons},
                                     indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
