"""The auxiliary bus's drivers (emu/models/auxiliary.py) and cpufreq governors
(emu/models/cpufreq.py), on real Debian modules: each init registers as the kernel does (the
real kernel's records: every one of these returns 0 with nothing logged), exit undoes it."""
from __future__ import annotations

import pytest

from test_emu_models import insmod, kernel, tree  # noqa: F401  (fixtures)


def test_auxiliary_driver_named_after_its_module(kernel, machine, tree):
    """An auxiliary driver is called "<KBUILD_MODNAME>" (intel_sdsi's has no name of its own)
    on the auxiliary bus, with the bus, owner and mod_name set; the machine has no auxiliary
    device, so no probe runs; rmmod takes it off the bus."""
    r = insmod(kernel, tree, "intel_sdsi")
    assert r.errno == 0, r.reason
    drivers = machine.emu_state["driver"]["bus_driver"]
    key = next(k for k in drivers if k.startswith("auxiliary/"))
    assert key == "auxiliary/intel_sdsi"
    drv = drivers[key]["drv"]
    mod = machine.find_module("intel_sdsi")
    assert machine.mm.read_u64(drv + 16) != 0                         # owner: the module
    assert machine.mm.read(machine.mm.read_u64(drv + 24), 11) == b"intel_sdsi\0"    # mod_name
    assert not any("probe" in c.name for c in r.details["calls"])
    assert mod is not None
    assert kernel.delete_module("intel_sdsi", 0).errno == 0
    assert not any(k.startswith("auxiliary/") for k in machine.emu_state["driver"]["bus_driver"])


@pytest.mark.parametrize("mod, name", [("cpufreq_ondemand", "ondemand"),
                                       ("cpufreq_conservative", "conservative"),
                                       ("cpufreq_userspace", "userspace"),
                                       ("cpufreq_powersave", "powersave")])
def test_governor_registered_and_unregistered(kernel, machine, tree, mod, name):
    r = insmod(kernel, tree, mod)
    assert r.errno == 0, r.reason
    assert list(machine.emu_state["cpufreq_governors"]) == [name]
    assert kernel.delete_module(mod, 0).errno == 0
    assert machine.emu_state["cpufreq_governors"] == {}


def test_governor_refused_with_cpufreq_off(tree, profile):
    """cpufreq.off=1 on the command line: cpufreq_register_governor answers -ENODEV, which
    the governor's init returns."""
    from kmodlab.machine import Machine
    from kmodlab.sandbox import SandboxKernel
    m = Machine.boot(profile.name, seed=1, cmdline="quiet cpufreq.off=1")
    m.profile = profile
    r = insmod(SandboxKernel(machine=m), tree, "cpufreq_ondemand")
    assert r.errno == 19
    assert m.emu_state.get("cpufreq_governors", {}) == {}


def test_auxiliary_driver_with_a_name(kernel, machine, tree):
    """irdma registers two: i40iw's compatibility driver (name "gen_1": "irdma.gen_1") and its
    own, unnamed ("irdma")."""
    r = insmod(kernel, tree, "irdma")
    assert r.errno == 0, r.reason
    aux = sorted(k for k in machine.emu_state["driver"]["bus_driver"] if k.startswith("auxiliary/"))
    assert aux == ["auxiliary/irdma", "auxiliary/irdma.gen_1"]
