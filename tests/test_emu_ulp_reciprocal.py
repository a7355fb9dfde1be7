"""TCP upper-layer protocols (emu/models/tcp_ulp.py) on the real tls module, and
lib/math's reciprocal_value (reciprocal_div.py) against the division it replaces."""
from __future__ import annotations

import random

import pytest

from kmodlab.emu import Unmodelled
from kmodlab.emu.models.reciprocal_div import reciprocal
from test_emu_models import _exports, insmod, kernel, run, tree  # noqa: F401  (fixtures)
from test_emu_support import needs_gcc


def test_tls_registers_its_ulp_and_exit_removes_it(kernel, machine, tree):
    """tls's init (after its page for zero-copy and its workqueue) registers the "tls" ULP
    as the real kernel's does (ret 0, nothing logged); rmmod unregisters it."""
    r = insmod(kernel, tree, "tls")
    assert r.errno == 0, r.reason
    assert list(machine.emu_state["tcp_ulp"]) == ["tls"]
    assert kernel.delete_module("tls", 0).errno == 0
    assert machine.emu_state["tcp_ulp"] == {}


@needs_gcc
def test_a_builtin_ulp_name_is_taken():
    """"mptcp" is on the booted kernel's list (MPTCP=y): -EEXIST; a new name registers once."""
    src = r'''
    struct tcp_ulp_ops { void *list[2]; void *fn[6]; char name[16]; void *owner; };
    int tcp_register_ulp(struct tcp_ulp_ops *); void tcp_unregister_ulp(struct tcp_ulp_ops *);
    struct tcp_ulp_ops a = { .name = "mptcp" }, b = { .name = "sbx" }, c = { .name = "sbx" };
    long f(void) { int x = tcp_register_ulp(&a), y = tcp_register_ulp(&b), z = tcp_register_ulp(&c);
                   tcp_unregister_ulp(&b); return x * 10000 + y * 100 + z; }'''
    ex = _exports(("tcp_register_ulp", 0xFFFFFFFF81C00000),
                  ("tcp_unregister_ulp", 0xFFFFFFFF81C00040))
    state = {}
    ret, *_ = run(src, ex, state=state)
    assert ret == (-17) * 10000 + 0 * 100 + (-17)
    assert state["tcp_ulp"] == {}


def test_reciprocal_divides_like_the_division():
    rnd = random.Random(7)
    for d in [1, 2, 3, 7, 10, 641, 4096, 0xFFFFFFFF] + [rnd.randrange(1, 1 << 32)
                                                         for _ in range(300)]:
        m, sh1, sh2 = reciprocal(d)
        for a in [0, 1, d - 1, d, d + 1, 0xFFFFFFFF] + [rnd.randrange(1 << 32) for _ in range(10)]:
            t = (a * m) >> 32
            assert (t + ((a - t) >> sh1)) >> sh2 == a // d, (d, a)
    assert reciprocal(1) == (1, 0, 0) and reciprocal(7) == (0x24924925, 1, 2)


@needs_gcc
def test_reciprocal_value_returns_the_struct_in_rax():
    src = r'''
    struct reciprocal_value { unsigned int m; unsigned char sh1, sh2; };
    struct reciprocal_value reciprocal_value(unsigned int);
    long f(void) { struct reciprocal_value r = reciprocal_value(7);
                   return r.m == 0x24924925 && r.sh1 == 1 && r.sh2 == 2; }'''
    ex = _exports(("reciprocal_value", 0xFFFFFFFF81C00080))
    ret, *_ = run(src, ex)
    assert ret == 1
    with pytest.raises(Unmodelled, match="divisor of 0"):
        run(src.replace("reciprocal_value(7)", "reciprocal_value(0)"), ex)
