"""Timers (kernel/time/timer.c): init_timer_key, mod_timer, add_timer, timer_delete(_sync).

``struct timer_list`` (Debian 6.1 amd64): entry {next 0, pprev 8}, expires 16, function 24,
flags 32.  ``timer_pending()`` is inline in modules and tests ``entry.pprev != NULL``, so a
pending timer's ``pprev`` points at a bucket of the machine's timer wheel (one heap object,
allocated on first use and kept in ``emu.state["timer_wheel"]``) and the pending timers are
listed in ``emu.state["timers"]`` ({address: [expires, function]}).

Timers never fire while init or exit runs unless the emulated clock passes their expiry (only
``msleep``/``udelay`` advance it): the callback would then run in softirq context, which the
sandbox does not do — :func:`check_expired` stops the run with :class:`Unmodelled` naming the
timer's function rather than pretending it ran.  A timer still pending when the module is gone
is what the kernel would later call into freed module text; the models do not hide it (it stays
listed).
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..registry import model

TIMER_ENTRY_PPREV, TIMER_EXPIRES, TIMER_FUNCTION, TIMER_FLAGS = 8, 16, 24, 32
TIMER_CPUMASK = 0x0003FFFF
MASK64 = (1 << 64) - 1


def _timers(emu) -> dict:
    return emu.state.setdefault("timers", {})


def _wheel(emu) -> int:
    w = emu.state.get("timer_wheel")
    if not w:
        w = emu.state["timer_wheel"] = emu.kmalloc(64 * 8, zero=True)
    return w


def pending(emu, timer: int) -> bool:
    return emu.read_u(timer + TIMER_ENTRY_PPREV, 8) != 0


@model("init_timer_key")
def init_timer_key(emu, timer, func, flags, name, key):
    emu.write_u(timer, 8, 0)
    emu.write_u(timer + TIMER_ENTRY_PPREV, 8, 0)
    emu.write_u(timer + TIMER_FUNCTION, 8, func)
    emu.write_u(timer + TIMER_FLAGS, 4, (flags & ~TIMER_CPUMASK) | 0)   # this CPU: 0


def _enqueue(emu, timer: int, expires: int) -> None:
    emu.write_u(timer + TIMER_EXPIRES, 8, expires)
    emu.write_u(timer + TIMER_ENTRY_PPREV, 8, _wheel(emu))
    _timers(emu)[str(timer)] = [expires & MASK64, emu.read_u(timer + TIMER_FUNCTION, 8)]


def _detach(emu, timer: int) -> int:
    was = pending(emu, timer)
    _timers(emu).pop(str(timer), None)
    if was:
        emu.write_u(timer + TIMER_ENTRY_PPREV, 8, 0)
    return int(was)


@model("mod_timer", "timer_reduce")
def mod_timer(emu, timer, expires):
    """1 if the timer was pending (its expiry is changed), 0 if it was inactive (now armed).

    A timer whose function is NULL was shut down (``timer_shutdown``, backported to Debian's
    6.1): it is silently not armed, and 0 is returned."""
    if not emu.read_u(timer + TIMER_FUNCTION, 8):
        return 0
    was = pending(emu, timer)
    _enqueue(emu, timer, expires)
    return int(was)


@model("add_timer")
def add_timer(emu, timer):
    if pending(emu, timer):
        raise emu.oops(["kernel BUG at kernel/time/timer.c: add_timer of a pending timer",
                        "invalid opcode: 0000 [#1] PREEMPT SMP NOPTI"])
    _enqueue(emu, timer, emu.read_u(timer + TIMER_EXPIRES, 8))


@model("add_timer_on")
def add_timer_on(emu, timer, cpu):
    add_timer(emu, timer)


@model("del_timer", "timer_delete", "try_to_del_timer_sync")
def del_timer(emu, timer):
    """1 if a pending timer was deactivated, 0 if it was not pending."""
    return _detach(emu, timer)


@model("del_timer_sync", "timer_delete_sync")
def del_timer_sync(emu, timer):
    """As del_timer: the callback is never running concurrently in the sandbox."""
    return _detach(emu, timer)


@model("timer_shutdown", "timer_shutdown_sync")
def timer_shutdown(emu, timer):
    """Deactivate and clear ``function``, so that later arming is ignored (Debian's 6.1 has
    the timer_shutdown backport under the 6.2 names; del_timer* became timer_delete*)."""
    r = _detach(emu, timer)
    emu.write_u(timer + TIMER_FUNCTION, 8, 0)
    return r


def check_expired(emu, jiffies: int) -> None:
    """Called when the clock advances: an expired pending timer would run now."""
    for addr, (expires, fn) in _timers(emu).items():
        if ((jiffies - expires) & MASK64) < (1 << 63):
            raise Unmodelled(f"run_timer_softirq (timer {emu.symbol(fn)} expired during "
                             f"{emu.what})", what=emu.what)
