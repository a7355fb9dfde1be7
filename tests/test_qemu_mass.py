"""Differential run over the whole module tree (issue 4, part 2): every module of Debian's
6.1.0-56-amd64 tree (minus test_bpf and tcrypt, whose inits run self-tests for minutes under
TCG), each after its dependencies, loaded by the real kernel under QEMU (one VM run, ~11 min)
and then by one sandbox machine at the same addresses (kmodlab.oracle.mass / massdiff).
Compared per module: errno, load_module's log lines, init's log lines, the taint each call
added, the /proc/modules line, /sys/module/<name>/{coresize,initsize,taint,refcnt,initstate,
holders}, initsize while COMING (real: a kprobe on do_init_module), every section's name and
offset from its core/init base, and at the end every module's users and holders.

Disagreements are classified: "explained: <reason>" (an init that calls a kernel function the
emulator does not model yet, runtime references, ...) or not.  The test fails on any
unexplained one: "sandbox bug" (load_module/procfs/sysfs) and "emulator" (init ran to completion
under emulation but did something else than the real init) are asserted separately.
"""
from __future__ import annotations


import pytest
from conftest import oracle_or_skip

from kmodlab.oracle import massdiff, qemu

pytestmark = pytest.mark.qemu


@pytest.fixture(scope="module")
def report():
    oracle_or_skip(same_release_as_sandbox=True)
    rec, r, rep = massdiff.session_report()
    print(f"\nmass run: VM {r.seconds:.1f}s (guest loads {rec['seconds']}s), "
          f"sandbox {rep.seconds['sandbox']}s\n" + massdiff.render(rep))
    return rec, rep


def test_vm_loaded_the_modules(report):
    rec, rep = report
    assert rec["cmdline"].split().count("nokaslr") == 1
    assert rec["init_probe"]["ok"], rec["init_probe"]
    loaded = [x for x in rec["loads"] if x["errno"] == 0]
    assert len(rec["loads"]) >= 4000 and len(loaded) >= 3700
    assert rep.modules == len(rec["loads"])


def test_no_sandbox_bug(report):
    _rec, rep = report
    bugs = [f for f in rep.findings if f.cls == "sandbox bug"]
    assert not bugs, "\n".join(f"{f.module}: {f.field}: real {f.real!r} sandbox {f.sandbox!r}"
                               for f in bugs)


def test_no_emulator_disagreement(report):
    """Inits the emulator ran to completion must do what the real ones did."""
    _rec, rep = report
    emu = [f for f in rep.findings if f.cls == "emulator"]
    assert not emu, "\n".join(f"{f.module}: {f.field}: real {f.real!r} sandbox {f.sandbox!r}"
                              for f in emu)


def test_every_disagreement_is_classified(report):
    _rec, rep = report
    assert all(f.cls in ("sandbox bug", "emulator") or f.cls.startswith("explained: ")
               for f in rep.findings)
    assert rep.agreements + len(rep.findings) == rep.fields_compared


def test_hardware_explanations_are_narrow(report):
    """"The guest has a device this driver binds" explains only drivers of QEMU's own chipset
    devices (and users of the ports they create), found from the guest's modaliases, not a
    blanket for whatever differs."""
    rec, rep = report
    assert rec["device_aliases"], "the guest recorded no device"
    bound = massdiff.hardware_bound(rec, qemu.prepare().moddir)
    assert {"ata_piix", "i2c_piix4", "pcspkr"} <= set(bound) and len(bound) <= 20, bound
    assert set(rep.hardware) <= set(bound) | {f.module for f in rep.findings}
    assert len(rep.hardware) <= 20, rep.hardware


def test_pending_work_explanations_are_narrow(report):
    """"Logged by work the init queued" explains only trailing lines of inits that left work
    pending (cfg80211's regulatory work loading regulatory.db), not a blanket."""
    _rec, rep = report
    hit = {f.module for f in rep.findings if f.cls.startswith("explained: the remaining lines")}
    assert hit <= {"cfg80211"}, hit
