"""Code the kernel patches at load time, called unpatched (reference §2.18, checklist 22).

kmodlab's loader does not run ftrace, retpoline, return-thunk or static-call patching, so the
module calls the kernel's out-of-line versions:

- ``__fentry__`` (every function entry; ftrace would NOP it) → returns, registers untouched;
- ``__x86_return_thunk`` (every ``ret`` is ``jmp __x86_return_thunk``) → a plain ``ret``;
- ``__x86_indirect_thunk_<reg>`` (retpoline) → ``jmp *%reg`` (the return address stays);
- ``__stack_chk_fail`` → the stack-protector panic;
- ``fortify_panic`` → the fortify BUG.
"""
from __future__ import annotations

from ..registry import model

REGS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")


@model("__fentry__", control=True)
def __fentry__(emu):
    emu.do_ret()


@model("__x86_return_thunk", "zen_untrain_ret", "__x86_return_skl", control=True)
def __x86_return_thunk(emu):
    emu.do_ret()


def _indirect(reg: str):
    def thunk(emu):
        emu.set_reg("rip", emu.reg(reg))
    thunk.__name__ = f"__x86_indirect_thunk_{reg}"
    return thunk


for _r in REGS:
    model(f"__x86_indirect_thunk_{_r}", f"__x86_indirect_its_thunk_{_r}",
          control=True)(_indirect(_r))


@model("__stack_chk_fail")
def __stack_chk_fail(emu):
    caller = emu.read_u(emu.reg("rsp"), 8)
    raise emu.oops([f"Kernel panic - not syncing: stack-protector: Kernel stack is corrupted "
                    f"in: {emu.symbol(caller)}"], addr=caller)


@model("fortify_panic")
def fortify_panic(emu, name):
    fn = emu.cstr(name, 64).decode("latin-1")
    raise emu.oops([f"detected buffer overflow in {fn}",
                    "kernel BUG at lib/string_helpers.c (fortify_panic)!",
                    "invalid opcode: 0000 [#1] PREEMPT SMP NOPTI"])
