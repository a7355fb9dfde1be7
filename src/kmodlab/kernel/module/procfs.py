"""/proc/modules and the other /proc files of module loading (kernel/module/procfs.c)."""
from __future__ import annotations

from .internal import (MODULE_STATE_COMING, MODULE_STATE_GOING, MODULE_STATE_UNFORMED, Module,
                       module_flags_taint)


def module_flags(mod: Module) -> str:
    """' (OE)', ' (OE+)', '' — taint letters, then + for coming or - for going."""
    if not mod.taints:
        return ""
    s = module_flags_taint(mod.taints)
    if mod.state == MODULE_STATE_GOING:
        s += "-"
    elif mod.state == MODULE_STATE_COMING:
        s += "+"
    return f" ({s})"


def proc_modules_line(mod: Module, show_addr: bool = True) -> str:
    size = mod.core.size + mod.init_layout.size
    users = "".join(f"{u}," for u in mod.source_list)
    if mod.permanent:
        users += "[permanent],"
    state = {MODULE_STATE_GOING: "Unloading", MODULE_STATE_COMING: "Loading"}.get(mod.state, "Live")
    addr = mod.core.base if show_addr else 0
    return (f"{mod.name} {size} {mod.module_refcount()} {users or '-'} {state} "
            f"0x{addr:016x}{module_flags(mod)}\n")


def proc_modules(modules: list[Module], show_addr: bool = True) -> str:
    """Every formed module, most recently loaded first."""
    return "".join(proc_modules_line(m, show_addr) for m in modules if m.state != MODULE_STATE_UNFORMED)


def proc_kallsyms(mm, modules: list[Module]) -> str:
    """The module part of /proc/kallsyms: 'address type name\\t[module]'."""
    from .kallsyms import module_symbols
    out = []
    for mod in modules:
        for value, typ, name in module_symbols(mm, mod):
            out.append(f"{value:016x} {typ} {name}\t[{mod.name}]\n")
    return "".join(out)
