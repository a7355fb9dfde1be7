"""Relocated bytes, byte for byte (issue 4, part 3): the core region of every module the mass
run loaded (tests/test_qemu_mass.py; the same VM run), read from the real kernel's memory
through /proc/kcore, against the sandbox's copy of the same module loaded at the same core and
init bases (SandboxKernel placement) and left COMING, before init.  Every differing byte must be
attributed (kmodlab.oracle.bytediff) to a kernel step the sandbox deliberately skips, found
from the module's own sections (__mcount_loc, .return_sites, .retpoline_sites,
.altinstructions, .parainstructions, .smp_locks, __jump_table, .static_call_sites, the sorted
ORC/jump/static-call/mcount tables, struct module's kernel-owned fields, writable data written
at run time).  An unexplained byte in a relocated field is a sandbox relocation bug.
"""
from __future__ import annotations


import pytest
from conftest import oracle_or_skip

from kmodlab.oracle import massdiff, qemu

pytestmark = pytest.mark.qemu


@pytest.fixture(scope="module")
def totals():
    oracle_or_skip(same_release_as_sandbox=True)
    rec, _r, rep = massdiff.session_report()       # core bytes are taken at COMING
    t = rep.byte_totals()
    print(f"\ncore bytes: {t}")
    return rec, rep, t


def test_every_loaded_module_compared(totals):
    rec, rep, t = totals
    loaded = [x["name"] for x in rec["loads"] if x["errno"] == 0]
    assert sorted(b["module"] for b in rep.bytes) == sorted(loaded)
    assert t["compared"] > 10_000_000


def test_no_unexplained_byte(totals):
    _rec, rep, t = totals
    bad = [(b["module"], u) for b in rep.bytes for u in b["unexplained"]]
    assert t["unexplained"] == 0 and not bad, "\n".join(f"{m}: {u}" for m, u in bad[:50])


def test_sorted_tables_are_permutations(totals):
    """ORC, jump, static-call and mcount tables differ only by the kernel's sort (+ flags)."""
    _rec, rep, _t = totals
    failed = [(b["module"], k) for b in rep.bytes for k, v in b["checks"].items() if not v]
    assert not failed, failed


def test_code_patching_is_seen(totals):
    """The named steps really occur (the attribution is not vacuous)."""
    _rec, _rep, t = totals
    for reason in ("ftrace (__mcount_loc: call __fentry__ → nop)", "return thunks (.return_sites)",
                   "ORC sort", "struct module (kernel-owned fields)"):
        assert t["by_reason"].get(reason, 0) > 0, reason
