"""The live backend against Debian's real 6.1 kernel, booted once under QEMU (TCG).

One VM run (35-45 s under TCG: boot 5 s, the cases 1 s, each `kmodlab --live` tool run ~3 s)
executes kmodlab.oracle.guest_cases in the guest: LiveKernel drives the raw syscalls with
real Debian modules (crc7, md4) and the examples/*.ko, and records what the kernel answered.
The tests below assert on those real answers, compare the whole recording with
tests/data/oracle_<release>.json (the sandbox's reference), and check the `kmodlab --live`
tools once they exist.

Needs qemu-system-x86_64, busybox-static and the cached linux-image .deb; skipped otherwise.
Regenerate the data file with:  python3 scripts/qemu_oracle.py record
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import oracle_or_skip

from kmodlab.oracle import qemu
from kmodlab.oracle.guest_cases import normalize

pytestmark = pytest.mark.qemu

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / qemu.oracle_name()
EXAMPLES = ROOT / "examples"
ADDR = r"0x[0-9a-f]{16}"


@pytest.fixture(scope="module")
def run():
    oracle_or_skip()
    r = qemu.run_in_guest(qemu.RECORD_SCRIPT.format(cli="--cli"), timeout=150)
    print(f"\nQEMU oracle run: wall {r.seconds:.1f}s, guest {r.timings}")
    return r.check()


@pytest.fixture(scope="module")
def rec(run):
    return run.json("oracle.json")


def case(rec, name):
    for c in rec["cases"]:
        if c["case"] == name:
            return c
    raise KeyError(name)


def test_vm_ran_the_debian_kernel(run, rec):
    assert rec["release"] == qemu.DEFAULT_RELEASE
    assert run.timings["9P-READY"] < 30
    assert run.seconds < 90


def test_finit_crc7_then_eexist(rec):
    c = case(rec, "finit crc7")
    assert (c["ret"], c["errno"]) == (0, 0)
    assert re.fullmatch(rf"crc7 16384 0 - Live {ADDR}", c["modules"]["crc7"]["proc_modules"])
    st = c["modules"]["crc7"]
    assert (st["initstate"], st["coresize"], st["initsize"], st["taint"]) == \
        ("live\n", "16384\n", "0\n", "\n")
    c = case(rec, "finit crc7 again")
    assert (c["ret"], c["errno_name"]) == (-1, "EEXIST")


def test_init_module_from_memory_and_delete(rec):
    c = case(rec, "init_module md4 from memory")
    assert c["ret"] == 0
    assert re.fullmatch(rf"md4 16384 0 - Live {ADDR}", c["modules"]["md4"]["proc_modules"])
    for name in ("delete md4", "delete crc7"):
        c = case(rec, name)
        assert c["ret"] == 0
        assert c["modules"][c["target"]] == {"proc_modules": None, "sysfs": False}
    for name in ("delete crc7 again", "delete unknown module", "delete empty name"):
        assert case(rec, name)["errno_name"] == "ENOENT"


def test_bad_flags_and_bad_files(rec):
    assert case(rec, "finit flags=8")["errno_name"] == "EINVAL"
    c = case(rec, "finit non-ELF 8 bytes")
    assert c["errno_name"] == "ENOEXEC"
    assert c["log"] == ["Invalid ELF header len 8"]          # captured in SyscallResult.log
    c = case(rec, "finit non-ELF 68 bytes")
    assert c["errno_name"] == "ENOEXEC"
    assert c["log"] == ["Invalid ELF header magic: != \\x7fELF"]
    c = case(rec, "init_module 8 bytes")             # copy_module_from_user: len < 64, no log
    assert (c["errno_name"], c["log"]) == ("ENOEXEC", [])
    assert case(rec, "finit fd opened O_WRONLY")["errno_name"] == "EBADF"


def test_unprivileged_gets_eperm(rec):
    u = rec["unprivileged_uid_65534"]
    assert u["uid"] == 65534
    for call in ("finit_module", "init_module", "delete_module"):
        assert (u[call]["ret"], u[call]["errno_name"], u[call]["log"]) == (-1, "EPERM", [])
    assert u["kmsg_readable"] == "EPERM"                 # dmesg_restrict=1: log stays empty
    assert case(rec, "delete crc7 after the unprivileged calls")["ret"] == 0


def test_forced_load_taints_f(rec):
    c = case(rec, "finit crc7 IGNORE_MODVERSIONS|IGNORE_VERMAGIC")
    assert c["ret"] == 0
    assert c["log"] == ["crc7: module_layout: kernel tainted."]
    assert c["modules"]["crc7"]["proc_modules"].endswith(" (FE)")
    assert c["tainted"] & 0b11 == 0b11                  # P (proprietary, earlier) and F


needs_examples = pytest.mark.skipif(not (EXAMPLES / "hello.ko").exists(),
                                    reason="examples/*.ko not built")


@needs_examples
def test_hello_with_parameters(rec):
    c = case(rec, "finit hello who=kmodlab count=3")
    assert c["ret"] == 0
    assert c["log"] == [
        "hello: loading out-of-tree module taints kernel.",
        "hello: module verification failed: signature and/or required key missing - "
        "tainting kernel",
        "hello: hello, kmodlab!", "hello: greeting 1 of 3", "hello: greeting 2 of 3",
        "hello: greeting 3 of 3"]
    st = c["modules"]["hello"]
    assert re.fullmatch(rf"hello 16384 0 - Live {ADDR} \(OE\)", st["proc_modules"])
    assert st["parameter_values"] == {"count": "3\n", "values": "", "verbose": "N\n",
                                      "who": "kmodlab\n"}
    assert (st["coresize"], st["initsize"], st["taint"]) == ("16384\n", "0\n", "OE\n")
    assert c["tainted"] == 4096 | 8192                  # O | E
    assert case(rec, "finit hello again")["errno_name"] == "EEXIST"
    assert case(rec, "delete hello")["log"] == ["hello: goodbye, kmodlab"]


@needs_examples
def test_hello_parameter_errors(rec):
    assert case(rec, "finit hello bogus=1")["log"][0] == "hello: unknown parameter 'bogus' ignored"
    assert case(rec, "finit hello bogus=1")["ret"] == 0
    c = case(rec, "finit hello count=abc")
    assert (c["errno_name"], c["log"]) == ("EINVAL", ["hello: `abc' invalid for parameter `count'"])
    c = case(rec, "finit hello values=1,2,3,4,5")
    assert c["errno_name"] == "EINVAL"
    assert c["log"] == ["values: can only take 4 arguments",
                        "hello: `1' invalid for parameter `values'"]
    assert case(rec, "finit hello count=99999999999")["errno_name"] == "ERANGE"


@needs_examples
def test_provider_consumer_failing_proprietary(rec):
    c = case(rec, "finit consumer without provider")
    assert c["errno_name"] == "ENOENT"
    assert c["log"] == ["kmodlab_consumer: Unknown symbol kmodlab_provider_add (err -2)",
                        "kmodlab_consumer: Unknown symbol kmodlab_provider_calls (err -2)"]
    c = case(rec, "finit consumer")
    prov = c["modules"]["kmodlab_provider"]
    assert re.fullmatch(rf"kmodlab_provider 16384 1 kmodlab_consumer, Live {ADDR} \(OE\)",
                        prov["proc_modules"])
    assert prov["holders"] == ["kmodlab_consumer"] and prov["refcnt"] == "1\n"
    assert case(rec, "delete provider while used")["errno_name"] == "EAGAIN"
    c = case(rec, "finit failing_init")
    assert (c["errno_name"], c["modules"]["failing_init"]["sysfs"]) == ("ENODEV", False)
    c = case(rec, "finit proprietary")
    assert c["errno_name"] == "ENOENT"
    assert c["log"] == ["proprietary: module license 'Proprietary' taints kernel.",
                        "Disabling lock debugging due to kernel taint",
                        "proprietary: Unknown symbol ktime_get (err -2)"]
    assert c["tainted"] & 1                              # P stays although the load failed


def test_recording_matches_saved_oracle(rec):
    """The saved tests/data file is what the real kernel says today (regenerate if not)."""
    assert DATA.exists(), f"missing {DATA}: run python3 scripts/qemu_oracle.py record"
    saved = normalize(json.loads(DATA.read_text()))
    new = normalize(rec)
    assert new["files"] == saved["files"], \
        "module files changed since the oracle was recorded: run scripts/qemu_oracle.py record"
    assert [c["case"] for c in new["cases"]] == [c["case"] for c in saved["cases"]]
    for a, b in zip(new["cases"], saved["cases"]):
        assert a == b, f"case {a['case']!r} differs from {DATA.name}"
    assert new == saved


def test_kmodlab_live_tools(run):
    """`python3 -m kmodlab --live insmod/lsmod/rmmod …` in the guest, once the tools exist."""
    runs = json.loads(run.files.get("cli.json", b"[]"))
    by = {}
    for r in runs:
        by.setdefault(r["argv"][2], []).append(r)
    if "insmod" not in by:
        pytest.skip("src/kmodlab/tools/insmod.py does not exist yet")
    ins = by["insmod"]
    assert ins[0]["rc"] == 0 and ins[0]["stderr"] == "", ins[0]
    want = ["File exists", "Invalid module format", "Unknown symbol in module", "No such device"]
    for r, text in zip(ins[1:5], want):
        assert r["rc"] != 0
        assert re.search(rf"^insmod: ERROR: could not insert module \S+: {text}$",
                         r["stderr"], re.M), r
    assert re.search(r"^insmod: ERROR: could not load module \S+no-such-file.ko: "
                     r"No such file or directory$", ins[5]["stderr"], re.M), ins[5]
    if "lsmod" in by:
        out = by["lsmod"][0]["stdout"].splitlines()
        assert out[0] == "Module                  Size  Used by"
        assert any(re.fullmatch(r"hello\s+16384\s+0", line) for line in out), out
    if "rmmod" in by:
        assert by["rmmod"][0]["rc"] == 0
        assert "rmmod: ERROR: Module hello is not currently loaded" in by["rmmod"][1]["stderr"]
