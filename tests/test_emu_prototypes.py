"""Every model reads as many arguments as the running kernel's function takes (its BTF
prototype, recorded by the importer as profile.prototypes), on 6.1 and 6.12; a model that
does not refuses by name instead of misreading registers (emu/emulator.py prototype_refusal).
"""
from __future__ import annotations

from kmodlab.emu.registry import FUNCTIONS, Model, load_models
from kmodlab.profile import Prototypes, load_profile


def _disagreements(prototypes) -> list[str]:
    load_models()
    out = []
    for name, m in sorted(FUNCTIONS.items()):
        p = prototypes.get(name)
        if p is not None and not m.control and (p[0], p[1]) != (m.nargs, m.varargs):
            out.append(f"{name}: BTF {p}, model {m.nargs}{'+' if m.varargs else ''} ({m.file})")
    return out


def test_every_model_has_the_arity_of_61s_function():
    prof = load_profile()
    assert len(prof.prototypes) > 8000                    # the exported functions with a BTF FUNC
    assert prof.prototypes.get("_printk") == (1, True)
    assert _disagreements(prof.prototypes) == []


def test_every_model_has_the_arity_of_612s_function(profile_612):
    assert profile_612.prototypes.get("__kmalloc_node_noprof") == (4, False)
    assert _disagreements(profile_612.prototypes) == []


def test_a_model_with_another_arity_refuses_by_name():
    from kmodlab.emu.emulator import Emulator
    prof = load_profile()
    emu = Emulator.__new__(Emulator)                      # only the rule: no CPU needed
    emu.prototypes = prof.prototypes
    wrong = Model("kmemdup", lambda emu, a, b: 0, 2, False)
    assert emu.prototype_refusal(wrong) == \
        "this kernel's kmemdup takes 3 arguments, its model reads 2"
    assert emu.prototype_refusal(FUNCTIONS["kmemdup"]) is None
    assert emu.prototype_refusal(Model("_printk", lambda emu, f: 0, 1, False)) == \
        "this kernel's _printk takes 1 and more arguments, its model reads 1"


def test_prototype_block_round_trip():
    p = Prototypes({"a": [2, 1], "bb": [0, 1], "c": [3, 0]})
    q = Prototypes(p.to_bytes())
    assert q.get("a") == (2, True) and q.get("c") == (3, False) and q.get("x") is None
    assert q == p and len(q) == 3
