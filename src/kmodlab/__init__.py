"""kmodlab: load, check and understand Linux kernel modules.

``from kmodlab import Sandbox`` gives the sandbox kernel as a Python object (for pytest fixtures);
the ``kmodlab`` command gives kmod's tools over the sandbox or the live kernel.
"""
from __future__ import annotations

__all__ = ["Sandbox"]


def __getattr__(name: str):
    if name == "Sandbox":
        from .sandbox import Sandbox
        return Sandbox
    raise AttributeError(name)
