"""Module references taken by module code (kernel/module/main.c): ``try_module_get``,
``__module_get``, ``module_put``, ``module_refcount``.

The reference count is the sandbox's own: the ``refcnt`` of the machine's module whose
``struct module`` is at that address (``Module.module_addr``), the count /proc/modules,
``lsmod``'s "Used by" and /sys/module/<name>/refcnt show and ``delete_module`` checks — as the
kernel's atomic ``module->refcnt`` is all of these.  As Linux 6.1 and 6.12 do it:

- ``try_module_get(NULL)`` and ``__module_get(NULL)`` (built-in code's THIS_MODULE) succeed
  and count nothing;
- ``try_module_get`` fails (false) when the module is GOING (``module_is_live``) or its
  refcnt is 0 (``atomic_inc_not_zero``: delete_module took the base reference away),
  else +1; a module in its own init (COMING) may take references on itself;
- ``__module_get`` adds one unconditionally;
- ``module_put``: ``atomic_dec_if_positive`` — a count that would go below zero is left as it
  is and the kernel WARNs (``WARN_ON(ret < 0)`` at kernel/module/main.c).

A pointer that is not the struct module of a module in the machine's list is not something the
sandbox knows (vmlinux has no struct module of its own): the call stops as Unmodelled.  When an
init stops, the references it took are given back with the rest of that init
(:attr:`Emulator.undo`).
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..registry import model

MODULE_STATE_GOING = 2


def _module(emu, addr: int):
    machine = emu.kernel
    for mod in getattr(machine, "modules", None) or ():
        if mod.module_addr == addr:
            return mod
    raise Unmodelled(f"{emu._model_name} (struct module at {addr:#x} is not a module in the "
                     "machine's list)", what=emu.what)


def _add(emu, mod, n: int) -> None:
    mod.refcnt += n

    def back(mod=mod, n=n):
        mod.refcnt -= n
    emu.undo.append(back)
    emu.note(f"{mod.name}: refcnt {mod.module_refcount()}")


@model("try_module_get")
def try_module_get(emu, module):
    if not module:
        return 1
    mod = _module(emu, module)
    if mod.state == MODULE_STATE_GOING or mod.refcnt == 0:
        emu.note(f"{mod.name}: not live")
        return 0
    _add(emu, mod, 1)
    return 1


@model("__module_get")
def __module_get(emu, module):
    if module:
        _add(emu, _module(emu, module), 1)


@model("module_put")
def module_put(emu, module):
    if not module:
        return
    mod = _module(emu, module)
    if mod.refcnt <= 0:
        emu.printk(4, "WARNING: CPU: 0 at kernel/module/main.c module_put\n")
        return
    _add(emu, mod, -1)


@model("module_refcount")
def module_refcount(emu, module):
    return _module(emu, module).module_refcount()
