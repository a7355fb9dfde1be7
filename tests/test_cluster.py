"""check --cluster: the kernel × module matrix on a Dask LocalCluster of this machine gives
exactly the local pool's answers, in the same order."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

EX = Path(__file__).resolve().parents[1] / "examples"


def km(*args):
    return subprocess.run([sys.executable, "-m", "kmodlab", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as c:
        yield c.scheduler_address


def test_matrix_on_a_local_dask_cluster_equals_the_local_pool(cluster, tmp_path):
    from kmodlab.profile import list_profiles
    kernels = ["debian-6.1.0-56-amd64"]
    # a second kernel: any other profile this machine has (imported ones), else the same
    # embedded profile under its file path (the matrix code treats it as another kernel)
    others = [p for p in list_profiles() if p != kernels[0]]
    if others:
        kernels.append(others[0])
    tree = tmp_path / "tree"
    tree.mkdir()
    for ko in EX.glob("*.ko"):
        shutil.copy(ko, tree / ko.name)
    (tree / "junk.ko").write_bytes(b"\x7fELF" + bytes(60))
    args = [a for k in kernels for a in ("--kernel", k)]
    local = km("check", "--json", "-j", "2", *args, tree)
    dask = km("check", "--json", "--cluster", cluster, *args, tree)
    assert dask.returncode == local.returncode == 1, dask.stderr
    assert dask.stdout == local.stdout
    rows = [json.loads(l) for l in dask.stdout.splitlines()]
    assert len(rows) == 6 * len(kernels)
    if len(kernels) == 1:
        assert "kernel" not in rows[0]
    else:
        assert [r["kernel"] for r in rows] == [k for k in kernels for _ in range(6)]
    text = km("check", "-q", "--cluster", cluster, *args, tree)
    assert "a Dask cluster" in text.stderr


def test_unreachable_scheduler_is_a_usage_error():
    p = km("check", "--cluster", "tcp://127.0.0.1:9", EX / "hello.ko")
    assert p.returncode == 2 and "check: ERROR: cannot reach the Dask scheduler" in p.stderr
