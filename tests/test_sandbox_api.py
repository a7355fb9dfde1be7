"""`from kmodlab import Sandbox`: the sandbox kernel as a pytest fixture for driver developers."""
from __future__ import annotations

from pathlib import Path

import pytest

from kmodlab import Sandbox
from kmodlab.errors import KernelError

EX = Path(__file__).resolve().parent.parent / "examples"


def test_insmod_params_dmesg_modules_rmmod():
    sb = Sandbox()
    sb.insmod(EX / "hello.ko", who="pytest", count=2, values=[7, 8], verbose=True)
    text = "\n".join(sb.dmesg())
    assert "hello: hello, pytest!" in text and "hello: 2 value(s), sum 15" in text
    (mod,) = sb.modules()
    assert (mod.name, mod.size, mod.refcount, mod.state, mod.taints) == ("hello", 16384, 0, "Live", "OE")
    assert mod.params == {"who": "pytest", "count": "2", "verbose": "Y", "values": "7,8"}
    assert sb.tainted == (1 << 12) | (1 << 13)
    sb.rmmod("hello")
    assert sb.modules() == []
    assert "hello: goodbye, pytest" in "\n".join(sb.dmesg())


def test_errors_carry_errno_and_reason():
    sb = Sandbox()
    with pytest.raises(KernelError) as ei:
        sb.insmod(EX / "proprietary.ko")
    assert ei.value.errno == 2
    assert "Unknown symbol ktime_get" in ei.value.reason
    with pytest.raises(KernelError) as ei:
        sb.insmod(EX / "failing_init.ko")
    assert ei.value.errno == 19
    with pytest.raises(KernelError) as ei:
        sb.rmmod("nothere")
    assert ei.value.errno == 2


def test_two_sandboxes_are_independent():
    a, b = Sandbox(), Sandbox()
    a.insmod(EX / "kmodlab_provider.ko")
    with pytest.raises(KernelError):
        b.insmod(EX / "kmodlab_consumer.ko")       # b has no provider
    a.insmod(EX / "kmodlab_consumer.ko")
    assert [m.name for m in a.modules()] == ["kmodlab_consumer", "kmodlab_provider"]


def test_persistent_machine_dir(tmp_path):
    Sandbox(machine_dir=tmp_path).insmod(EX / "hello.ko")
    again = Sandbox(machine_dir=tmp_path)            # like a second command
    assert [m.name for m in again.modules()] == ["hello"]
    again.rmmod("hello")
    assert Sandbox(machine_dir=tmp_path).modules() == []


def test_a_stopped_init_leaves_nothing_behind(monkeypatch):
    """An init that stops on an unmodelled function (a sandbox event, not a kernel one) is
    rolled back: the kmalloc it made is gone, the module is not listed, the error is ENOSYS
    with the function's name, and the next attempt gets the same answer."""
    from kmodlab.emu import registry
    registry.load_models()
    monkeypatch.delitem(registry.FUNCTIONS, "snprintf")    # hello calls it after kmalloc
    sb = Sandbox()
    for _ in range(2):
        with pytest.raises(KernelError) as ei:
            sb.insmod(EX / "hello.ko")
        assert ei.value.errno == 38
        assert "init called unmodelled kernel function snprintf" in ei.value.reason
        with sb.kernel.session(write=False) as m:
            assert m.heap.allocs == {} and m.modules == []
