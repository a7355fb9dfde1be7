"""The whole-tree differential on Linux 6.12 (Debian 13): the real 6.12.118 kernel's answers on
every module of its tree (tests/data/mass_real_6.12.118+deb13.json.gz, recorded under QEMU by
``scripts/qemu_oracle.py --release 6.12.118+deb13-amd64 mass --real-only``) replayed through one
sandbox machine on that release's profile, at the same addresses (each module_memory region
where the real kernel put it).  Same classes and bar as the 6.1 run (tests/test_qemu_mass.py):
every disagreement is explained by name, none is a sandbox bug or an emulator disagreement.

The replay needs that release's module tree from the registry (it skips when the registry no
longer serves it); the byte comparison needs a VM run's memory dumps and is made by
``scripts/qemu_oracle.py replay --core DIR`` (figures in docs/oracle.md).
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.qemu

DATA = Path(__file__).resolve().parent / "data" / "mass_real_6.12.118+deb13.json.gz"


@pytest.fixture(scope="module")
def report612():
    from kmodlab.oracle import massdiff
    from kmodlab.profile.debian import extract_module_tree, imported_profile
    rec = json.loads(gzip.decompress(DATA.read_bytes()))["real"]
    try:
        profile = str(imported_profile(rec["release"]))
        moddir = extract_module_tree(rec["release"])
    except Exception as e:
        pytest.skip(f"linux-image-{rec['release']} is not available: {e}")
    rep = massdiff.replay(rec, moddir, None, profile=profile)
    print(f"\n6.12 mass replay: sandbox {rep.seconds['sandbox']}s\n" + massdiff.render(rep))
    return rec, rep


def test_the_real_kernel_loaded_the_tree(report612):
    rec, rep = report612
    assert rec["cmdline"].split().count("nokaslr") == 1
    loaded = [x for x in rec["loads"] if x["errno"] == 0]
    assert len(rec["loads"]) >= 4200 and len(loaded) >= 3900
    assert all("mem_coming" in x for x in loaded)
    assert rep.modules == len(rec["loads"])


def test_no_sandbox_bug_612(report612):
    _rec, rep = report612
    bugs = [f for f in rep.findings if f.cls == "sandbox bug"]
    assert not bugs, "\n".join(f"{f.module}: {f.field}: real {f.real!r} sandbox {f.sandbox!r}"
                               for f in bugs[:50])


def test_no_emulator_disagreement_612(report612):
    _rec, rep = report612
    emu = [f for f in rep.findings if f.cls == "emulator"]
    assert not emu, "\n".join(f"{f.module}: {f.field}: real {f.real!r} sandbox {f.sandbox!r}"
                              for f in emu[:50])


def test_every_disagreement_is_classified_612(report612):
    _rec, rep = report612
    assert all(f.cls in ("sandbox bug", "emulator") or f.cls.startswith("explained: ")
               for f in rep.findings)
    assert rep.agreements + len(rep.findings) == rep.fields_compared
    # the per-type sizes at COMING were compared for every load that reached init
    assert sum(1 for f in rep.findings if "size (COMING)" in f.field) == 0
