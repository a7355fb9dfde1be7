"""The command line's say over display drivers (emu/models/drm.py) on a real Debian module:
ast registers its PCI driver on the oracle's command line (no nomodeset: the real kernel's
record is ret 0, nothing logged) and refuses with -ENODEV under ``nomodeset``."""
from __future__ import annotations

from test_emu_models import insmod, kernel, tree  # noqa: F401  (fixtures)


def test_ast_loads_without_nomodeset(kernel, machine, tree):
    r = insmod(kernel, tree, "ast")
    assert r.errno == 0, r.reason
    assert "pci/ast" in machine.emu_state["driver"]["bus_driver"]


def test_ast_refused_with_nomodeset(tree, profile):
    from kmodlab.machine import Machine
    from kmodlab.sandbox import SandboxKernel
    m = Machine.boot(profile.name, seed=1, cmdline="quiet nomodeset")
    m.profile = profile
    r = insmod(SandboxKernel(machine=m), tree, "ast")
    assert r.errno == 19
    assert "pci/ast" not in m.emu_state.get("driver", {}).get("bus_driver", {})
