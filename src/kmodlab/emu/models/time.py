"""Time (kernel/time/jiffies.c, timer.c, arch/x86/lib/delay.c): jiffies and delays.

HZ is 250 on Debian; jiffies start at INITIAL_JIFFIES (5 minutes before wrap) and advance with
the emulator's clock (``emu.uptime_ns``).  ``msleep``/``usleep_range_state``/``udelay`` advance
that clock (nothing else runs meanwhile) and update jiffies in memory.
"""
from __future__ import annotations

from ..registry import data, model

HZ = 250
INITIAL_JIFFIES = (-300 * HZ) & 0xFFFFFFFF
MASK64 = (1 << 64) - 1


def jiffies_now(emu) -> int:
    return (INITIAL_JIFFIES + emu.uptime_ns * HZ // 1_000_000_000) & MASK64


@data("jiffies", 8)
def jiffies(emu) -> bytes:
    return jiffies_now(emu).to_bytes(8, "little")


@data("jiffies_64", 8)
def jiffies_64(emu) -> bytes:
    return jiffies_now(emu).to_bytes(8, "little")


def advance(emu, ns: int) -> None:
    emu.uptime_ns += ns
    emu.jiffies_polls = 0                       # the clock moved: no busy-wait (emulator.py)
    for name in ("jiffies", "jiffies_64"):
        a = emu.export_addr(name)
        if a is not None:
            emu.write_u(a, 8, jiffies_now(emu))
    from .timer import check_expired
    check_expired(emu, jiffies_now(emu))


@model("msleep")
def msleep(emu, msecs):
    msecs &= 0xFFFFFFFF
    # msleep sleeps at least msecs_to_jiffies(msecs) + 1 jiffies
    advance(emu, ((msecs * HZ + 999) // 1000 + 1) * (1_000_000_000 // HZ))


@model("usleep_range_state")
def usleep_range_state(emu, umin, umax, state):
    advance(emu, umin * 1000)


@model("__udelay")
def __udelay(emu, usecs):
    advance(emu, usecs * 1000)


@model("__ndelay")
def __ndelay(emu, nsecs):
    advance(emu, nsecs)


@model("__const_udelay")
def __const_udelay(emu, xloops):
    # xloops = usecs * 2**32 / 10**6 (the 0x10c7 multiplier, rounded up)
    advance(emu, (xloops & MASK64) * 1_000_000_000 >> 32)


@model("jiffies_to_msecs")
def jiffies_to_msecs(emu, j):
    return (j * 1000 // HZ) & 0xFFFFFFFF


@model("__msecs_to_jiffies")
def __msecs_to_jiffies(emu, m):
    m &= 0xFFFFFFFF
    return 0x3FFFFFFFFFFFFFFE if m >= 0x80000000 else (m * HZ + 999) // 1000


@model("ktime_get", "ktime_get_raw", "ktime_get_mono_fast_ns", "ktime_get_raw_fast_ns",
       "ktime_get_boot_fast_ns")
def ktime_get(emu):
    """CLOCK_MONOTONIC in ns: the machine's uptime (nothing suspends in the sandbox)."""
    return emu.uptime_ns


@model("ktime_get_with_offset")
def ktime_get_with_offset(emu, offs):
    return emu.uptime_ns


# kernel/time/timer.c: round a timeout to a whole second so that timers of many subsystems
# expire together.  CPU 0 (the machine's only CPU) has no skew (cpu * 3 jiffies).
def _round_common(emu, j: int, force_up: bool) -> int:
    original = j & MASK64
    j = original                                  # + cpu * 3, cpu 0
    rem = j % HZ
    if rem < HZ // 4 and not force_up:
        j -= rem
    else:
        j = j - rem + HZ
    j &= MASK64
    now = jiffies_now(emu)
    after = ((now - j) & MASK64) >> 63            # time_is_after_jiffies(j): jiffies < j
    return j if after else original


@model("round_jiffies")
def round_jiffies(emu, j):
    return _round_common(emu, j, False)


@model("round_jiffies_up")
def round_jiffies_up(emu, j):
    return _round_common(emu, j, True)


@model("round_jiffies_relative")
def round_jiffies_relative(emu, j):
    now = jiffies_now(emu)
    return (_round_common(emu, (j + now) & MASK64, False) - now) & MASK64


@model("round_jiffies_up_relative")
def round_jiffies_up_relative(emu, j):
    now = jiffies_now(emu)
    return (_round_common(emu, (j + now) & MASK64, True) - now) & MASK64
