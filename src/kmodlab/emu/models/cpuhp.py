"""CPU hotplug states (kernel/cpu.c): ``__cpuhp_setup_state`` and ``__cpuhp_remove_state``, the
multi-instance ``__cpuhp_state_add_instance``/``__cpuhp_state_remove_instance``, and their
``_cpuslocked`` forms, in Linux 6.1's and 6.12's terms.

The machine has one CPU, CPU 0, online (its state is CPUHP_ONLINE).  The states the booted
kernel installed — fixed ones and the dynamic ones its built-in code took — are the real
guest's /sys/devices/system/cpu/hotplug/states right after boot (the boot record's
``cpuhp_states``); the enum's values (CPUHP_AP_ONLINE_DYN …) are the kernel's own, from BTF
(``enum cpuhp_state`` in the profile).  What modules install is ``emu.state["cpuhp"]``.

- setup: -EINVAL for a state outside (CPUHP_OFFLINE, CPUHP_ONLINE) or no name; a dynamic
  request (CPUHP_AP_ONLINE_DYN, CPUHP_BP_PREPARE_DYN) takes the first unnamed state of its
  range (-ENOSPC and the kernel's warning when none is left); a named fixed state is -EBUSY.
  With ``invoke`` and a single-instance ``startup``, startup(0) runs in the module (CPU 0 is at
  CPUHP_ONLINE, past every state); its error removes the state again (the rollback has no
  earlier CPU to undo) and is returned.  A multi-instance state has no instances yet: nothing
  runs.  Returns the state number for a dynamic request, else 0.
- remove: for a single-instance state with ``invoke`` and a teardown, teardown(0) runs; a
  multi-instance state with instances left warns "Error: Removing state %d which has
  instances left."; then the state is free again.
- add_instance: -EINVAL on a state that is not multi-instance; with ``invoke`` and a startup,
  startup(0, node) runs (an error: teardown(0, node) is not run — no CPU before 0 — and the
  error is returned); the node joins the state's list (hlist_add_head: ``node->next`` the
  previous first, ``node->pprev`` the list head, a stand-in of the emulator's).
  remove_instance: teardown(0, node) with ``invoke``; hlist_del poisons the node.
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..layouts import layout
from ..registry import model

LAYOUT = layout("cpuhp")

EINVAL, EBUSY, ENOSPC = 22, 16, 28
LIST_POISON1, LIST_POISON2 = 0xDEAD000000000100, 0xDEAD000000000122


def _enum(emu) -> dict[str, int]:
    prof = getattr(getattr(emu, "kernel", None), "profile", None)
    e = (getattr(prof, "structs", None) or {}).get("enum cpuhp_state")
    if not e:
        raise Unmodelled(f"{emu._model_name} (this profile does not record enum cpuhp_state: "
                         "re-import it)", what=emu.what)
    return e


def _boot_names(emu) -> dict[int, str]:
    from ...kernel.registrations import boot_views
    prof = getattr(getattr(emu, "kernel", None), "profile", None)
    lines = boot_views(prof.release).get("cpuhp_states")
    if not lines:
        raise Unmodelled(f"{emu._model_name} (the booted kernel's hotplug states were not "
                         "recorded)", what=emu.what)
    out = {}
    for ln in lines:
        num, _, name = ln.partition(":")
        out[int(num)] = name.strip()
    return out


def _steps(emu) -> dict:
    return emu.state.setdefault("cpuhp", {})


def _named(emu, state: int) -> bool:
    return state in _boot_names(emu) or str(state) in _steps(emu)


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _call(emu, fn: int, *args) -> int:
    return _s32(emu.call_module(fn, args))


def setup_state(emu, state, name, invoke, startup, teardown, multi) -> int:
    e = _enum(emu)
    state = _s32(state)
    if state <= e["CPUHP_OFFLINE"] or state >= e["CPUHP_ONLINE"] or not name:
        return -EINVAL
    label = emu.cstr(name, 128).decode("latin-1")
    dyn = None
    for kind in ("CPUHP_AP_ONLINE_DYN", "CPUHP_BP_PREPARE_DYN"):
        if state == e[kind]:
            dyn = kind
    if dyn is not None:
        free = [s for s in range(e[dyn], e[f"{dyn}_END"] + 1) if not _named(emu, s)]
        if not free:
            emu.printk(4, "No more dynamic states available for CPU hotplug\n")
            return -ENOSPC
        state = free[0]
    elif _named(emu, state):
        return -EBUSY
    key = str(state)
    _steps(emu)[key] = {"name": label, "startup": startup, "teardown": teardown,
                        "multi": bool(multi & 0xFF), "instances": []}
    emu.note(f"{state}: {label}")
    if invoke & 0xFF and startup and not multi & 0xFF:
        ret = _call(emu, startup, 0)
        if ret:
            _steps(emu).pop(key, None)
            return ret
    return state if dyn is not None else 0


@model("__cpuhp_setup_state", "__cpuhp_setup_state_cpuslocked")
def __cpuhp_setup_state(emu, state, name, invoke, startup, teardown, multi_instance):
    return setup_state(emu, state, name, invoke, startup, teardown, multi_instance)


@model("__cpuhp_remove_state", "__cpuhp_remove_state_cpuslocked")
def __cpuhp_remove_state(emu, state, invoke):
    e = _enum(emu)
    state = _s32(state)
    if state <= e["CPUHP_OFFLINE"] or state >= e["CPUHP_ONLINE"]:
        raise emu.oops([f"kernel BUG at kernel/cpu.c: __cpuhp_remove_state_cpuslocked of "
                        f"state {state}"])
    sp = _steps(emu).get(str(state))
    if sp is None:
        if state in _boot_names(emu):
            raise Unmodelled(f"__cpuhp_remove_state (state {state}, the booted kernel's "
                             f"{_boot_names(emu)[state]})", what=emu.what)
        return                               # an empty step: its callbacks are cleared again
    if sp["multi"]:
        if sp["instances"]:
            emu.printk(4, f"Error: Removing state {state} which has instances left.\n")
    elif invoke & 0xFF and sp["teardown"]:
        _call(emu, sp["teardown"], 0)
    _steps(emu).pop(str(state), None)


def _next(emu) -> int:
    return LAYOUT.of(emu)["hlist_node", "next"]


def _pprev(emu) -> int:
    return LAYOUT.of(emu)["hlist_node", "pprev"]


def _head(emu, state: int) -> int:
    """A stand-in for cpuhp_hp_states[state].list (the kernel's static array)."""
    heads = emu.__dict__.setdefault("_cpuhp_heads", {})
    if state not in heads:
        heads[state] = emu.priv_alloc(8, 8)
    return heads[state]


@model("__cpuhp_state_add_instance", "__cpuhp_state_add_instance_cpuslocked")
def __cpuhp_state_add_instance(emu, state, node, invoke):
    state = _s32(state)
    sp = _steps(emu).get(str(state))
    if sp is None:
        if state in _boot_names(emu):
            raise Unmodelled(f"__cpuhp_state_add_instance (state {state}, the booted kernel's "
                             f"{_boot_names(emu)[state]})", what=emu.what)
        return -EINVAL
    if not sp["multi"]:
        return -EINVAL
    if invoke & 0xFF and sp["startup"]:
        ret = _call(emu, sp["startup"], 0, node)
        if ret:
            return ret
    first = sp["instances"][0] if sp["instances"] else 0
    emu.write_u(node + _next(emu), 8, first)
    emu.write_u(node + _pprev(emu), 8, _head(emu, state))      # &list.first
    if first:
        emu.write_u(first + _pprev(emu), 8, node + _next(emu))
    sp["instances"].insert(0, node)
    return 0


@model("__cpuhp_state_remove_instance")
def __cpuhp_state_remove_instance(emu, state, node, invoke):
    state = _s32(state)
    sp = _steps(emu).get(str(state))
    if sp is None or not sp["multi"]:
        return -EINVAL
    if invoke & 0xFF and sp["teardown"]:
        _call(emu, sp["teardown"], 0, node)
    if node in sp["instances"]:
        i = sp["instances"].index(node)
        nxt = sp["instances"][i + 1] if i + 1 < len(sp["instances"]) else 0
        prev_link = _head(emu, state) if i == 0 else sp["instances"][i - 1] + _next(emu)
        if nxt:
            emu.write_u(nxt + _pprev(emu), 8, prev_link)
        if i > 0:
            emu.write_u(sp["instances"][i - 1] + _next(emu), 8, nxt)
        sp["instances"].pop(i)
    emu.write_u(node + _next(emu), 8, LIST_POISON1)
    emu.write_u(node + _pprev(emu), 8, LIST_POISON2)
    return 0
