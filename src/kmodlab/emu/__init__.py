"""Run module code (init, exit) under CPU emulation against modelled kernel functions.

``Emulator`` (emulator.py) does the Unicorn set-up once per call; ``models/`` holds the
modelled kernel functions and data by export name; ``errors.py`` the ways a run can fail;
``layouts.py`` the kernel struct layouts the models assume (plain data: the profile importer
reads it without loading the emulator, hence the lazy names below).
Unicorn and capstone are imported only when code actually runs.
"""
from .errors import BudgetExceeded, EmuError, Oops, Unmodelled

__all__ = ["Emulator", "CallRecord", "EmuError", "Unmodelled", "Oops", "BudgetExceeded"]


def __getattr__(name: str):
    if name in ("Emulator", "CallRecord"):
        from . import emulator
        return getattr(emulator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
