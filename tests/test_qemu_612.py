"""Debian 13's real 6.12 kernel (6.12.118+deb13-amd64) under QEMU: the oracle boots it and
records module loads (.ko.xz through finit_module with MODULE_INIT_COMPRESSED_FILE).

One VM run (~25 s under TCG) of kmodlab.oracle.mass.small_cases: crc7.ko.xz loaded with flag 4,
loaded again (EEXIST), removed, and the failure cases of tests/data/oracle_cases_<rel>.json
(uncompressed file with flag 4, .ko.xz without it, truncated .ko.xz, /etc/hostname, a 10-byte
image, a flipped signature byte, an unsigned copy).  The answers must equal the recording.

The kernel booted is Debian 13's current one (whatever release trixie's linux-image-amd64
points at now; 6.12.118+deb13-amd64 when this was written), and the sandbox, on that release's
profile imported with the project's importer, must answer every case as the live kernel did.
Skipped when qemu or the package cannot be had.
Regenerate the data file with:
    python3 scripts/qemu_oracle.py --release 6.12.118+deb13-amd64 cases
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from kmodlab.oracle import mass, qemu

pytestmark = pytest.mark.qemu

PINNED = "6.12.118+deb13-amd64"          # the release of the stored recording
RELEASE = PINNED                         # the one booted: the current one (set by ``cases``)
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / mass.cases_name(PINNED)


def _current() -> str:
    from kmodlab.profile.debian import current_release
    try:
        return current_release("trixie")
    except Exception:                   # the registry cannot be asked: the pinned release
        return PINNED



@pytest.fixture(scope="module")
def cases():
    global RELEASE
    RELEASE = _current()
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 not installed (apt-get install qemu-system-x86)")
    try:
        qemu.prepare(RELEASE)
    except (qemu.OracleError, OSError) as e:
        pytest.skip(f"the {RELEASE} kernel is not available: {e}")
    rec, r = mass.run_cases(RELEASE, timeout=150)
    print(f"\nQEMU 6.12 cases: wall {r.seconds:.1f}s, guest {r.timings}")
    return rec


def _case(rec: dict, prefix: str) -> dict:
    hits = [c for c in rec["cases"] if c["case"].startswith(prefix)]
    assert hits, prefix
    return hits[0]


def test_boots_612_with_in_kernel_xz(cases):
    assert cases["release"] == RELEASE
    assert cases["module_compression"] == "xz"
    assert cases["tainted_at_start"] == 0
    lay = cases["mem_layout_btf"]            # struct module's mem[] found through BTF
    assert lay and lay["nr"] == 7 and list(lay["types"])[:1] == ["text"]


def test_finit_ko_xz_flag4_loads_once(cases):
    first = _case(cases, "finit_module(crc7.ko.xz, flags=MODULE_INIT_COMPRESSED_FILE=4)")
    assert (first["ret"], first["errno"]) == (0, 0)
    st = first["state"]
    assert re.fullmatch(r"crc7 \d+ 0 - Live 0x[0-9a-f]{16}", st["proc_modules"])
    # /proc/modules size = coresize = the sum of the core mem[] regions (init ones 0 when LIVE)
    size = int(st["proc_modules"].split()[1])
    assert size == int(st["coresize"]) == sum(m["size"] for m in st["mem"].values())
    assert st["initsize"].strip() == "0"
    assert int(st["proc_modules"].split()[5], 16) == st["mem"]["text"]["base"]
    again = _case(cases, "finit_module(crc7.ko.xz, flags=4) again")
    assert (again["ret"], again["errno"]) == (-1, 17)            # EEXIST
    rm = _case(cases, "delete_module(crc7, O_NONBLOCK)")
    assert rm["ret"] == 0


def test_failure_cases(cases):
    assert _case(cases, "finit_module(crc7.ko.xz, flags=0)")["log"] == \
        ["Invalid ELF header magic: != \\x7fELF"]
    plain = _case(cases, "finit_module(uncompressed copy crc7.ko, flags=4)")
    assert (plain["errno"], plain["log"]) == (22, ["not an xz compressed module"])
    assert _case(cases, "init_module(crc7.ko with the last byte of its signature")["errno"] \
        == 129                                                     # EKEYREJECTED


def test_sandbox_answers_as_the_live_kernel(cases):
    """The same calls through the sandbox kernel of that release: same return, errno, log."""
    from kmodlab.oracle.casediff import replay_cases
    from kmodlab.profile.debian import imported_profile
    results = replay_cases(cases, str(imported_profile(RELEASE)), qemu.prepare(RELEASE).moddir)
    *calls, (taint_real, taint_ours) = results
    for real, got in calls:
        assert (got.ret, got.errno, got.log) == (real["ret"], real["errno"], real["log"]), \
            real["case"]
    assert taint_ours == taint_real["tainted"]


def test_matches_recording(cases):
    if RELEASE != PINNED:
        pytest.skip(f"the recording is of {PINNED}; the registry serves {RELEASE} now")
    if not DATA.exists():
        pytest.skip(f"no {DATA.name}")
    want = json.loads(DATA.read_text())
    got = [(c["case"], c["ret"], c["errno"], c["log"], c["tainted"]) for c in cases["cases"]]
    exp = [(c["case"], c["ret"], c["errno"], c["log"], c["tainted"]) for c in want["cases"]]
    assert got == exp
