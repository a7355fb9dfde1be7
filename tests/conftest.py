"""Shared fixtures: the embedded profile, real Debian modules (cached), the examples."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def pytest_configure(config):
    """Real modules for every test: the embedded profile's release of Debian's module tree,
    fetched and extracted once into the cache by the project's own fetcher; tests read it from
    KMODLAB_MODULES_DIR (set it to use another tree).  Without the registry, those tests skip."""
    if os.environ.get("KMODLAB_MODULES_DIR"):
        return
    try:
        from kmodlab.profile import DEFAULT_PROFILE
        from kmodlab.profile.debian import extract_module_tree
        release = DEFAULT_PROFILE.removeprefix("debian-")
        os.environ["KMODLAB_MODULES_DIR"] = str(extract_module_tree(release))
    except Exception as e:                      # offline, or the registry dropped the release
        print(f"conftest: no Debian module tree ({e}); tests that need one will skip")


@pytest.fixture(scope="session")
def profile():
    from kmodlab.profile import load_profile
    return load_profile()


@pytest.fixture(scope="session")
def debian_modules(profile) -> dict[str, bytes]:
    """A handful of real modules of the embedded profile's release, read from its linux-image
    package (downloaded once into the cache by the project's own fetcher)."""
    from kmodlab.profile.debian import fetch_packages, iter_deb_files
    wanted = {"dummy.ko", "loop.ko", "fat.ko", "vfat.ko", "crc7.ko", "md4.ko", "crc-itu-t.ko",
              "kvm.ko", "kvm-intel.ko", "nls_koi8-ru.ko", "binder_linux.ko", "xor.ko"}
    try:
        got = fetch_packages(profile.release)
    except Exception as e:                      # the registry dropped this release
        pytest.skip(f"linux-image-{profile.release} is not available: {e}")
    out = {}
    for p, _ti, f in iter_deb_files(got["image"]):
        base = os.path.basename(p)
        if base in wanted and base not in out:
            out[base] = f.read()
    return out


def oracle_or_skip(same_release_as_sandbox: bool = False):
    """The prepared QEMU oracle (Debian's kernel, initramfs), or skip the calling test: QEMU is
    not installed, the kernel cannot be had, or (when asked) the sandbox's profile is another
    release than the oracle's kernel."""
    import shutil
    from kmodlab.oracle import qemu
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 not installed (apt-get install qemu-system-x86)")
    try:
        prep = qemu.prepare()
    except qemu.OracleError as e:
        pytest.skip(f"oracle kernel not available: {e}")
    if same_release_as_sandbox:
        from kmodlab.profile import load_profile
        if load_profile().release != prep.release:
            pytest.skip("the sandbox's profile is another release than the oracle's kernel")
    return prep


@pytest.fixture(scope="session")
def debian_modules_tree() -> Path:
    """The Debian module tree of the embedded profile's release (lib/modules/<release>)."""
    tree = Path(os.environ.get("KMODLAB_MODULES_DIR", "/nonexistent"))
    if not (tree / "kernel").is_dir():
        pytest.skip("no Debian module tree (the registry may no longer serve this release)")
    return tree


@pytest.fixture
def machine(profile):
    """A fresh sandbox machine in memory, booted on the embedded profile."""
    from kmodlab.machine import Machine
    m = Machine.boot(profile.name, seed=1)
    m.profile = profile
    return m


@pytest.fixture
def machine_dir(tmp_path, monkeypatch):
    """A private on-disk machine for CLI tests (KMODLAB_MACHINE)."""
    d = tmp_path / "machine"
    monkeypatch.setenv("KMODLAB_MACHINE", str(d))
    monkeypatch.delenv("KMODLAB_KERNEL", raising=False)
    monkeypatch.delenv("KMODLAB_PROFILE", raising=False)
    return d


@pytest.fixture(scope="session")
def profile_612():
    """Debian 13's 6.12.118 profile as the user imported it (``kmodlab kernel import``), for
    tests of models on 6.12's layouts; skipped when it is not imported."""
    from kmodlab.profile import find_profile, read_profile_file
    try:
        return read_profile_file(find_profile("debian-6.12.118+deb13-amd64"))
    except Exception as e:                                  # noqa: BLE001
        pytest.skip(f"6.12 profile not imported: {e}")


@pytest.fixture(scope="session")
def trixie():
    """Debian 13's current kernel (whatever release the registry serves now in trixie):
    (profile, its module tree), imported with the project's own importer into the cache."""
    from kmodlab.profile import load_profile
    from kmodlab.profile.debian import cache_dir, extract_module_tree, imported_profile
    try:
        path = imported_profile(suite="trixie", out_dir=cache_dir().parent / "profiles")
        prof = load_profile(str(path))
        tree = extract_module_tree(prof.release)
    except Exception as e:                      # offline, or the registry is unreachable
        pytest.skip(f"Debian 13's kernel is not available: {e}")
    return prof, tree
