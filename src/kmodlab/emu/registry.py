"""The model registry: kernel functions and kernel data the emulator implements, by export name.

In the style of CLE's ``externs/simdata``: each model is registered under the exported symbol
name(s) it stands for, and models are grouped in ``models/<subsystem>.py``.  Three kinds:

- :func:`model` — a kernel function.  ``def f(emu, a0, a1, ...) -> int``: the positional
  parameters after ``emu`` receive the integer arguments in ABI order (rdi, rsi, rdx, rcx, r8,
  r9, then the stack); the return value goes to rax and the model returns to its caller like
  ``ret`` does.  ``void`` functions return None (rax is left alone).  ``control=True`` models
  (``__x86_indirect_thunk_*``) set rip/rsp themselves and receive only ``emu``.
- :func:`data` — a kernel data export: ``def f(emu) -> bytes`` gives its contents; only these
  bytes may be read or written, anything else on the page is an :class:`Unmodelled` access.
- :func:`data_field` — one field of a kernel data export (e.g. ``init_net.gen``), same
  contract for just those bytes.
- :func:`percpu` — a per-CPU export (a small offset from the GS base), same contract.

There is no fallback: a name without a model is an error when the module reaches it.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Model:
    name: str
    fn: Callable
    nargs: int              # fixed integer arguments read for the model (and recorded)
    varargs: bool           # the C function is variadic (the model reads the rest itself)
    control: bool = False   # the model transfers control itself (no implicit ret)
    file: str = ""          # the models/<file>.py it is in (its struct layouts: emu/layouts.py)


@dataclass(frozen=True)
class DataModel:
    name: str
    size: int
    fn: Callable            # (emu) -> bytes of at most ``size``
    percpu: bool = False
    export: str = ""        # a field of this export (``data_field``), else the export ``name``
    offset: int = 0         # the field's offset in it
    file: str = ""          # the models/<file>.py it is in
    persist: bool = False   # a kernel variable module code writes: its bytes live in state
    member: tuple[str, str] | None = None   # (struct, member): ``offset`` is this kernel's (BTF)


FUNCTIONS: dict[str, Model] = {}
DATA: dict[str, DataModel] = {}


def _file(fn) -> str:
    """``driver`` for a function of emu/models/driver.py (the key of its facts in layouts.py)."""
    return fn.__module__.rpartition(".")[2]


def model(*names: str, control: bool = False):
    """Register a function model under one or more export names."""
    def deco(fn):
        params = list(inspect.signature(fn).parameters.values())[1:]
        fixed = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        var = any(p.kind is p.VAR_POSITIONAL for p in params)
        for n in names:
            if n in FUNCTIONS:
                raise ValueError(f"model for {n} registered twice")
            FUNCTIONS[n] = Model(n, fn, len(fixed), var, control, _file(fn))
        return fn
    return deco


def data(name: str, size: int, persist: bool = False):
    """Register the contents of a kernel data export of ``size`` bytes.  ``persist``: a
    variable module code may write (a pointer a module installs, a mode it sets): ``fn`` gives
    its value at boot, and what a run leaves in it is kept in the machine's state
    (``state["kernel_data"]``) for the next run, as the kernel's variable keeps it."""
    def deco(fn):
        DATA[name] = DataModel(name, size, fn, False, file=_file(fn), persist=persist)
        return fn
    return deco


def data_field(export: str, offset: int, size: int, member: tuple[str, str] | None = None):
    """Register one field of a kernel data export (``size`` bytes at ``offset``): only those
    bytes become readable, the rest of the object stays unmodelled.  ``member`` (struct,
    member): the field's offset is the running kernel's, from its BTF (``offset`` is Linux
    6.1's, used without a profile); a kernel whose BTF lacks the member leaves it unmapped."""
    def deco(fn):
        name = f"{export}+{offset:#x}"
        DATA[name] = DataModel(name, size, fn, False, export, offset, _file(fn), member=member)
        return fn
    return deco


def percpu(name: str, size: int | None):
    """Register the contents of a kernel per-CPU export (CPU 0's copy) of ``size`` bytes
    (None: as many as the model gives, which may depend on the running kernel's layout; the
    rest of the variable stays unmodelled)."""
    def deco(fn):
        DATA[name] = DataModel(name, size, fn, True, file=_file(fn))
        return fn
    return deco


def load_models() -> None:
    """Import every models/<subsystem>.py so that their decorators run (idempotent)."""
    from . import models  # noqa: F401  (the package imports its submodules)
