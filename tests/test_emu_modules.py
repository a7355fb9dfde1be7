"""The emulator on whole modules, through the sandbox kernel's init_module/delete_module.

The loader places and relocates; these tests check what the emulated init/exit do: the example
modules (examples/*.ko, built against Debian 6.1 headers) and small real Debian modules whose
init registers a crypto algorithm or template (crypto/algapi.c semantics: listed on init,
removed on exit, a duplicate fails with -EEXIST).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DEBIAN = Path(os.environ.get("KMODLAB_MODULES_DIR", "/nonexistent")) / "kernel"


def ko(path: Path) -> bytes:
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path.read_bytes()


@pytest.fixture
def kernel(machine):
    from kmodlab.sandbox import SandboxKernel
    return SandboxKernel(machine=machine)


def test_hello_init_prints_allocates_and_exit_frees(kernel, machine):
    r = kernel.init_module(ko(EXAMPLES / "hello.ko"), "who=emu count=2 values=4,5 verbose=1")
    assert r.ok, r.reason
    text = [l.split("] ", 1)[1] for l in kernel.dmesg()]
    for line in ["hello: hello, emu!", "hello: greeting 2 of 2", "hello: values[1] = 5",
                 "hello: 2 value(s), sum 9", 'hello: verbose: buffer holds "hello emu x2"']:
        assert line in text
    kept = [a for a, n in machine.heap.allocs.items() if n == 64]   # hello_buf (charp is 20)
    assert len(kept) == 1
    assert machine.mm.read(kept[0], 13) == b"hello emu x2\0"
    r = kernel.delete_module("hello", 0)
    assert r.ok, r.reason
    assert kept[0] not in machine.heap.allocs


def test_failing_init_returns_its_errno(kernel):
    r = kernel.init_module(ko(EXAMPLES / "failing_init.ko"), "")
    assert not r.ok and r.errno == 19


def test_md4_registers_and_unregisters_shash(kernel, machine):
    r = kernel.init_module(ko(DEBIAN / "crypto/md4.ko"), "")
    assert r.ok, r.reason
    algs = machine.emu_state["crypto"]
    assert [(a["name"], a["driver"], a["type"]) for a in algs] == [("md4", "md4-generic", "shash")]
    flags = machine.mm.read_u(algs[0]["alg"] + 32, 4)
    assert flags & 0xF == 0xE                       # CRYPTO_ALG_TYPE_SHASH set by the kernel
    assert kernel.delete_module("md4", 0).ok
    assert machine.emu_state["crypto"] == []
    assert kernel.init_module(ko(DEBIAN / "crypto/md4.ko"), "").ok   # and again


def test_ecb_registers_a_template(kernel, machine):
    r = kernel.init_module(ko(DEBIAN / "crypto/ecb.ko"), "")
    assert r.ok, r.reason
    assert [t["name"] for t in machine.emu_state["crypto_templates"]] == ["ecb"]
    assert kernel.delete_module("ecb", 0).ok
    assert machine.emu_state["crypto_templates"] == []
