"""LED triggers (drivers/leds/led-triggers.c) and list debugging (lib/list_debug.c).

``led_trigger_register``: -EEXIST when a trigger of that name (and the same or no hardware
trigger type) is registered; else the trigger's lock and ``led_cdevs`` list are initialised and
it is listed in ``emu.state["led_triggers"]``.  It would then be set on every LED whose default
trigger names it — the sandbox has no LEDs, so none.  The kernel links ``next_trig`` into its
static ``trigger_list``, whose address the profile does not know: that link is not written (the
registry is the state).  ``led_trigger_event`` on a trigger with no LEDs does nothing.
Layout (Debian 6.1 amd64 BTF, emu/layouts.py): name 0, activate 8, deactivate 16, brightness 24,
trigger_type 32, leddev_list_lock 40, led_cdevs 48, next_trig 64, groups 80 (88 bytes).

``__list_add_valid``/``__list_del_entry_valid`` (Debian: CONFIG_DEBUG_LIST=y,
CONFIG_BUG_ON_DATA_CORRUPTION=y): a corrupted list is reported and is a BUG.
"""
from __future__ import annotations

from ..layouts import layout
from ..registry import model
from .locking import init_list_head

EEXIST = 17
TRIG_NAME, TRIG_TYPE, TRIG_LOCK, TRIG_CDEVS, TRIG_SIZE = layout("leds").values(
    "led_trigger", "name", "trigger_type", "leddev_list_lock", "led_cdevs", "sizeof")
LIST_POISON1, LIST_POISON2 = 0xDEAD000000000100, 0xDEAD000000000122


def _trigs(emu) -> dict:
    return emu.state.setdefault("led_triggers", {})


@model("led_trigger_register")
def led_trigger_register(emu, trig):
    name = emu.cstr(emu.read_u(trig + TRIG_NAME, 8), 256).decode("latin-1")
    ttype = emu.read_u(trig + TRIG_TYPE, 8)
    for t in _trigs(emu).values():
        if t["name"] == name and (t["type"] == ttype or not t["type"]):
            return -EEXIST
    emu.write_u(trig + TRIG_LOCK, 4, 0)
    init_list_head(emu, trig + TRIG_CDEVS)
    _trigs(emu)[str(trig)] = {"name": name, "type": ttype}
    emu.note(f"{name}: no LEDs")
    return 0


@model("led_trigger_unregister")
def led_trigger_unregister(emu, trig):
    _trigs(emu).pop(str(trig), None)


@model("led_trigger_register_simple")
def led_trigger_register_simple(emu, name, tp):
    trig = emu.kmalloc(TRIG_SIZE, zero=True)
    emu.write_u(trig + TRIG_NAME, 8, name)
    err = led_trigger_register(emu, trig)
    if err < 0:
        emu.kfree(trig)
        trig = 0
        emu.printk(4, f"LED trigger {emu.cstr(name).decode('latin-1')} failed to register "
                      f"({err})\n")
    emu.write_u(tp, 8, trig)


@model("led_trigger_unregister_simple")
def led_trigger_unregister_simple(emu, trig):
    if trig:
        led_trigger_unregister(emu, trig)
    if trig:
        emu.kfree(trig)


@model("led_trigger_event")
def led_trigger_event(emu, trig, brightness):
    return None


@model("led_trigger_blink_oneshot")
def led_trigger_blink_oneshot(emu, trig, delay_on, delay_off, invert):
    return None


def _corrupt(emu, text: str):
    return emu.oops([text, "kernel BUG at lib/list_debug.c!",
                     "invalid opcode: 0000 [#1] PREEMPT SMP NOPTI"])


@model("__list_add_valid", "__list_add_valid_or_report")      # 6.1 / 6.6+ (CONFIG_LIST_HARDENED)
def __list_add_valid(emu, new, prev, nxt):
    if emu.read_u(nxt + 8, 8) != prev:
        raise _corrupt(emu, f"list_add corruption. next->prev should be prev ({prev:016x}), "
                            f"but was {emu.read_u(nxt + 8, 8):016x}. (next={nxt:016x}).")
    if emu.read_u(prev, 8) != nxt:
        raise _corrupt(emu, f"list_add corruption. prev->next should be next ({nxt:016x}), "
                            f"but was {emu.read_u(prev, 8):016x}. (prev={prev:016x}).")
    if new == prev or new == nxt:
        raise _corrupt(emu, f"list_add double add: new={new:016x}, prev={prev:016x}, "
                            f"next={nxt:016x}.")
    return 1


@model("__list_del_entry_valid_or_report")
def __list_del_entry_valid_or_report(emu, entry):
    """6.6+: the same checks, after two for NULL pointers."""
    nxt, prev = emu.read_u(entry, 8), emu.read_u(entry + 8, 8)
    if nxt == 0:
        raise _corrupt(emu, f"list_del corruption, {entry:016x}->next is NULL")
    if prev == 0:
        raise _corrupt(emu, f"list_del corruption, {entry:016x}->prev is NULL")
    return __list_del_entry_valid(emu, entry)


@model("__list_del_entry_valid")
def __list_del_entry_valid(emu, entry):
    nxt, prev = emu.read_u(entry, 8), emu.read_u(entry + 8, 8)
    if nxt == LIST_POISON1:
        raise _corrupt(emu, f"list_del corruption, {entry:016x}->next is LIST_POISON1 "
                            f"({LIST_POISON1:016x})")
    if prev == LIST_POISON2:
        raise _corrupt(emu, f"list_del corruption, {entry:016x}->prev is LIST_POISON2 "
                            f"({LIST_POISON2:016x})")
    if emu.read_u(prev, 8) != entry:
        raise _corrupt(emu, f"list_del corruption. prev->next should be {entry:016x}, but was "
                            f"{emu.read_u(prev, 8):016x}. (prev={prev:016x})")
    if emu.read_u(nxt + 8, 8) != entry:
        raise _corrupt(emu, f"list_del corruption. next->prev should be {entry:016x}, but was "
                            f"{emu.read_u(nxt + 8, 8):016x}. (next={nxt:016x})")
    return 1
