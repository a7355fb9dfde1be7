"""CPU frequency governors (drivers/cpufreq/cpufreq.c): ``cpufreq_register_governor`` and
``cpufreq_unregister_governor``.

Registering refuses a NULL governor (-EINVAL) and, with cpufreq switched off on the command
line (``cpufreq.off=1``), answers -ENODEV; a governor whose name is already registered
(compared case-insensitively over CPUFREQ_NAME_LEN, 16 bytes, as find_governor does) is
-EBUSY.  The governors built into the running vmlinux (the profile's CONFIG_CPU_FREQ_GOV_<NAME>=y:
performance and schedutil in Debian's) are registered at boot.  The booted machine has no cpufreq driver and
so no policy: no governor is ever started, and unregistering has no inactive policy to clear.
The registered governors are machine state (``emu.state["cpufreq_governors"]``: name →
address); the list links into the kernel's static governor list (whose address the profile
does not know) are not written — no module reads them.
"""
from __future__ import annotations

from ..layouts import layout
from ..registry import model

LAYOUT = layout("cpufreq")
EINVAL, ENODEV, EBUSY = 22, 19, 16
CPUFREQ_NAME_LEN = 16
GOVERNORS = ("performance", "powersave", "userspace", "ondemand", "conservative", "schedutil")


def _built_in(emu) -> set[str]:
    config = getattr(getattr(emu.kernel, "profile", None), "config", None) or {}
    return {g for g in GOVERNORS if config.get(f"CPU_FREQ_GOV_{g.upper()}") == "y"}


def _governors(emu) -> dict:
    return emu.state.setdefault("cpufreq_governors", {})


def _disabled(emu) -> bool:
    """cpufreq.off=N on the command line (a module_param int of the built-in core), N != 0."""
    off = 0
    for tok in getattr(emu.kernel, "cmdline", "").split():
        if tok.startswith("cpufreq.off="):
            try:
                off = int(tok.partition("=")[2], 0)
            except ValueError:
                pass
    return off != 0


def _key(name: bytes) -> str:
    return name[:CPUFREQ_NAME_LEN].decode("latin-1").lower()


@model("cpufreq_register_governor")
def cpufreq_register_governor(emu, governor):
    if not governor:
        return -EINVAL
    if _disabled(emu):
        return -ENODEV
    name = emu.cstr(governor + LAYOUT.of(emu)["cpufreq_governor", "name"], CPUFREQ_NAME_LEN)
    key = _key(name)
    regs = _governors(emu)
    if key in _built_in(emu) or key in regs:
        return -EBUSY
    regs[key] = governor
    emu.note(name.decode("latin-1"))
    return 0


@model("cpufreq_unregister_governor")
def cpufreq_unregister_governor(emu, governor):
    if not governor or _disabled(emu):
        return None
    regs = _governors(emu)
    for key, addr in list(regs.items()):
        if addr == governor:
            del regs[key]
    return None
