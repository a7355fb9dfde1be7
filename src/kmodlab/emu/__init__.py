"""Run module code (init, exit) under CPU emulation against modelled kernel functions.

``Emulator`` (emulator.py) does the Unicorn set-up once per call; ``models/`` holds the
modelled kernel functions and data by export name; ``errors.py`` the ways a run can fail.
Unicorn and capstone are imported only when code actually runs.
"""
from .emulator import CallRecord, Emulator
from .errors import BudgetExceeded, EmuError, Oops, Unmodelled

__all__ = ["Emulator", "CallRecord", "EmuError", "Unmodelled", "Oops", "BudgetExceeded"]
