"""Errors of an emulated module function (init/exit): what the user reads when a run stops.

The emulator never makes up a value.  A run ends in one of four ways: the function returns to
its caller (the value is the result), it calls or reads kernel code/data kmodlab does not model
(:class:`Unmodelled`), the CPU faults the way the kernel would oops (:class:`Oops`), or it runs
out of its instruction budget or wall-clock time (:class:`BudgetExceeded`).  All are
:class:`~kmodlab.errors.KmodlabError`, so the tools print them as messages, never as tracebacks.
"""
from __future__ import annotations

from ..errors import KmodlabError


class EmuError(KmodlabError):
    """Base class: a module function could not be run to completion under emulation."""


class Unmodelled(EmuError):
    """The module called a kernel function, or touched kernel data, that has no model.

    ``name`` is the export (or ``export+0xoff`` for an access inside one); ``kind`` is
    ``"function"``, ``"data"`` or ``"instruction"`` (an instruction the guest's CPU has and
    the emulated one lacks, e.g. ADX's adcx: its mnemonic); ``what`` names the function being run (``init``/``exit``).
    """

    def __init__(self, name: str, *, kind: str = "function", what: str = "init",
                 write: bool = False):
        self.name, self.kind, self.what, self.write = name, kind, what, write
        if kind == "function":
            msg = f"{what} called unmodelled kernel function {name}"
        elif kind == "instruction":              # valid x86-64 the emulated CPU cannot run
            msg = f"{what} ran an unmodelled CPU instruction {name}"
        else:
            msg = f"{what} {'wrote' if write else 'read'} unmodelled kernel data {name}"
        super().__init__(msg)


class Oops(EmuError):
    """The emulated CPU did something the kernel would oops (or panic) on.

    ``addr`` is the faulting data address (or the instruction address for #UD/#GP/#BP),
    ``rip`` the instruction pointer, ``text`` the oops-style report (several lines, the first
    one being the kernel's headline, e.g. ``BUG: kernel NULL pointer dereference, address: …``).
    """

    def __init__(self, addr: int, rip: int, text: str):
        self.addr, self.rip, self.text = addr, rip, text
        super().__init__(text)

    @property
    def headline(self) -> str:
        return self.text.splitlines()[0] if self.text else ""


class BudgetExceeded(EmuError):
    """The function did not return within its instruction budget or its time limit."""

    def __init__(self, what: str, *, instructions: int | None = None, seconds: float | None = None,
                 rip: int = 0, where: str = "", jiffies_polls: int = 0):
        self.what, self.instructions, self.seconds, self.rip = what, instructions, seconds, rip
        self.jiffies_polls = jiffies_polls
        if seconds is not None:
            limit = f"its time limit of {seconds:g} s"
        else:
            limit = f"its budget of {instructions:,} instructions"
        at = f" (last at {where})" if where else ""
        # code that reads jiffies over and over without sleeping waits for the clock to move,
        # which on the emulated CPU only sleeping does (a busy-wait, a timed benchmark)
        spin = (f"; it read jiffies {jiffies_polls:,} times without sleeping: a busy-wait on the "
                "clock" if jiffies_polls >= BUSY_WAIT_POLLS else "")
        super().__init__(f"{what} did not return within {limit}{at}{spin}")


BUSY_WAIT_POLLS = 1000
