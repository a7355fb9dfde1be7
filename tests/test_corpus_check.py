"""Corpus: every module of Debian's current amd64 kernels through `kmodlab check`: Debian 12's
(the machine's own suite, Linux 6.1) and Debian 13's (trixie, Linux 6.12).

The packages are whatever Debian's registry serves now (linux-image-amd64's dependency), the
profile is built from them with the project's own importer, and each module runs load_module
up to relocation, parameters and sysfs with the tree's other modules' exports available.
Every real Debian module is expected to load; the few that may not are listed with the reason.
"""
from __future__ import annotations

import os
import time
from collections import Counter

import pytest

pytestmark = pytest.mark.corpus

# suite → name → (errno, why): modules a real kernel of that series refuses for reasons of its own.
EXPECTED_FAILURES: dict[str | None, dict[str, tuple[int, str]]] = {
    None: {},
    "trixie": {},
}


@pytest.fixture(scope="module", params=[None, "trixie"], ids=["debian12", "debian13"])
def current_tree(request, tmp_path_factory):
    from kmodlab.profile import import_debian, read_profile_file
    from kmodlab.profile.debian import fetch_packages, iter_deb_files
    try:
        got = fetch_packages(None, suite=request.param)
    except Exception as e:                      # the registry cannot be reached
        pytest.skip(f"no current kernel for suite {request.param or 'of this machine'}: {e}")
    out = tmp_path_factory.mktemp("profile")
    profile = read_profile_file(import_debian(got["image"], got["headers"], out))
    modules = {}
    for p, _ti, f in iter_deb_files(got["image"]):
        if "/kernel/" in p and p.endswith((".ko", ".ko.xz", ".ko.zst", ".ko.gz")):
            modules[p] = f.read()
    return got["release"], profile, modules, request.param


def test_every_module_of_the_current_kernel_would_load(current_tree):
    from kmodlab.check import Checker
    from kmodlab.lib.file import decompress
    release, profile, modules, suite = current_tree
    expected = EXPECTED_FAILURES[suite]
    assert len(modules) > 3000, f"only {len(modules)} modules in linux-image-{release}"
    checker = Checker(profile)
    datas = {p: decompress(d) for p, d in modules.items()}
    for p, d in datas.items():
        checker.add_file_exports(p, d)
    t0 = time.perf_counter()
    failures, steps = {}, Counter()
    for p, d in sorted(datas.items()):
        r = checker.check(p, d)
        assert r.coresize > 0 or not r.ok
        if not r.ok:
            failures[r.name or os.path.basename(p)] = (r.errno, r.step, r.message, r.log[-3:])
            steps[r.step] += 1
    took = time.perf_counter() - t0
    unexpected = {n: f for n, f in failures.items()
                  if n not in expected or expected[n][0] != f[0]}
    print(f"\n{release}: {len(datas)} modules checked in {took:.1f} s; "
          f"{len(failures)} would not load ({dict(steps)}), {len(unexpected)} unexpected")
    for n, f in sorted(failures.items()):
        print(f"  {n}: errno {f[0]} in {f[1]}: {f[2]}")
    assert not unexpected, unexpected


def test_run_init_over_part_of_the_current_tree(current_tree, tmp_path):
    """check --run-init's machinery on real modules of both current kernels: every module gets
    one of the outcomes, none is refused by load_module, dependencies are found in the tree,
    and most inits run to their end (a floor far below today's figure, to catch a path that
    breaks every init, e.g. compressed modules reaching the kernel undecompressed)."""
    from kmodlab.check import check_matrix
    from kmodlab.check_init import OUTCOMES
    release, profile, modules, _suite = current_tree
    root = tmp_path / "lib" / "modules" / release
    files = []
    for p, d in modules.items():
        rel = p.split(f"modules/{release}/", 1)[-1]
        out = root / rel                         # the whole tree: dependencies live anywhere
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(d)
        if rel.startswith(("kernel/crypto/", "kernel/fs/")):
            files.append(str(root / rel))
    files.sort()
    assert len(files) > 100
    results = [r for _p, r in check_matrix([profile], files, jobs=2, run_init=True)]
    assert all(r.init in OUTCOMES for r in results), {r.name: r.init for r in results if r.init not in OUTCOMES}
    assert not [r.name for r in results if r.init == "load-error"]
    assert not [r.name for r in results if "not in the tree" in r.init_detail]
    with_init = [r for r in results if r.init != "none"]
    ran = sum(r.init in ("live", "init-error") for r in with_init)
    print(f"\n{release}: --run-init over crypto/ and fs/: {ran} of {len(with_init)} inits ran to their end")
    assert ran >= 0.3 * len(with_init)
