"""Static keys (kernel/jump_label.c, arch/x86/kernel/jump_label.c): ``static_key_enable``,
``static_key_disable``, ``static_key_slow_inc``, ``static_key_slow_dec`` (and the
``_cpuslocked`` forms) on a key in a module's memory.

A static branch is a 2- or 5-byte site in module text, a NOP or a JMP to its target, listed in
the module's ``__jump_table`` (``struct jump_entry``: code and target as offsets from the entry,
the key as an offset whose low bits are the branch (1) and init (2) flags).  When a key's
count goes 0 → 1 or 1 → 0, jump_label_update rewrites every site of that key in every loaded
module: JMP where ``enabled ^ branch``, else NOP — the 2-byte forms EB rel8 / 66 90 where the
site is 2 bytes (it holds EB or 66 90), else E9 rel32 / 0F 1F 44 00 00.  Sites in init text
are left alone once the module's init memory is gone (no longer mapped).

``static_key_enable`` of a key already at 1 and ``static_key_disable`` of one at 0 change
nothing (the kernel's WARN_ON_ONCE for other counts is not modelled: such a key stops the
call).  A key in vmlinux stops the call as Unmodelled: the booted kernel's own sites and its
keys' states at boot are not known to the sandbox.
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..layouts import layout
from ..registry import model

LAYOUT = layout("jump_label")
JUMP_TYPE_TRUE = 1
NOP2, NOP5 = b"\x66\x90", b"\x0f\x1f\x44\x00\x00"


def _o(emu, struct: str, member: str) -> int:
    return LAYOUT.of(emu)[struct, member]


def _modules(emu) -> list:
    return list(getattr(getattr(emu, "kernel", None), "modules", []) or [])


def _check_key(emu, key: int, fn: str) -> None:
    if not any(m.contains(key) for m in _modules(emu)):
        raise Unmodelled(f"{fn} (a static key of the booted kernel: its sites and state are "
                         "not known)", what=emu.what)


def _s(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) & 1 else v


def jump_label_update(emu, key: int, enabled: bool) -> int:
    """Rewrite every site of ``key``; returns how many were rewritten."""
    size = _o(emu, "jump_entry", "sizeof")
    oc, ot, ok = (_o(emu, "jump_entry", m) for m in ("code", "target", "key"))
    n = 0
    for mod in _modules(emu):
        base, count = mod.jump_entries
        for i in range(count):
            e = base + i * size
            code = e + oc + _s(emu.read_u(e + oc, 4), 32)
            target = e + ot + _s(emu.read_u(e + ot, 4), 32)
            raw = (e + ok + _s(emu.read_u(e + ok, 8), 64)) & ((1 << 64) - 1)
            if raw & ~3 != key or not mod.contains(code):
                continue
            jmp = bool(enabled) ^ bool(raw & JUMP_TYPE_TRUE)
            cur = emu.read(code, 2)
            short = cur[:1] == b"\xeb" or cur == NOP2
            if short:
                new = (b"\xeb" + ((target - code - 2) & 0xFF).to_bytes(1, "little")) if jmp \
                    else NOP2
            else:
                new = (b"\xe9" + ((target - code - 5) & 0xFFFFFFFF).to_bytes(4, "little")) \
                    if jmp else NOP5
            emu.write(code, new)
            emu.uc.ctl_remove_cache(code, code + len(new))
            n += 1
    return n


def _set(emu, key: int, to: int, fn: str) -> None:
    emu.write_u(key + _o(emu, "static_key", "enabled"), 4, to)
    n = jump_label_update(emu, key, to > 0)
    emu.note(f"{emu.symbol(key)} → {to}, {n} site(s)")


def _count(emu, key: int) -> int:
    return _s(emu.read_u(key + _o(emu, "static_key", "enabled"), 4), 32)


@model("static_key_enable", "static_key_enable_cpuslocked")
def static_key_enable(emu, key):
    _check_key(emu, key, "static_key_enable")
    v = _count(emu, key)
    if v == 1:
        return
    if v != 0:
        raise Unmodelled(f"static_key_enable (count {v}: the kernel's WARN_ON_ONCE)",
                         what=emu.what)
    _set(emu, key, 1, "static_key_enable")


@model("static_key_disable", "static_key_disable_cpuslocked")
def static_key_disable(emu, key):
    _check_key(emu, key, "static_key_disable")
    v = _count(emu, key)
    if v == 0:
        return
    if v != 1:
        raise Unmodelled(f"static_key_disable (count {v}: the kernel's WARN_ON_ONCE)",
                         what=emu.what)
    _set(emu, key, 0, "static_key_disable")


@model("static_key_slow_inc", "static_key_slow_inc_cpuslocked")
def static_key_slow_inc(emu, key):
    _check_key(emu, key, "static_key_slow_inc")
    v = _count(emu, key)
    if v < 0:
        raise Unmodelled(f"static_key_slow_inc (count {v})", what=emu.what)
    if v:
        emu.write_u(key + _o(emu, "static_key", "enabled"), 4, v + 1)
    else:
        _set(emu, key, 1, "static_key_slow_inc")


@model("static_key_slow_dec", "static_key_slow_dec_cpuslocked")
def static_key_slow_dec(emu, key):
    _check_key(emu, key, "static_key_slow_dec")
    v = _count(emu, key)
    if v <= 0:
        raise Unmodelled(f"static_key_slow_dec (count {v}: the kernel's WARN)", what=emu.what)
    if v > 1:
        emu.write_u(key + _o(emu, "static_key", "enabled"), 4, v - 1)
    else:
        _set(emu, key, 0, "static_key_slow_dec")
