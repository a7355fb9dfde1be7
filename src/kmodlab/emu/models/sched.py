"""The running task and preemption (kernel/sched/core.c, arch/x86 per-CPU variables).

The emulated code runs as the insmod/rmmod task on CPU 0 in process context:
``current_task`` points at a zeroed ``task_struct``-sized object the emulator owns,
``__preempt_count`` is ``PREEMPT_ENABLED`` (x86 keeps NEED_RESCHED inverted in bit 31, so an
idle count reads 0x80000000), ``cpu_number`` is 0, ``this_cpu_off`` is CPU 0's per-CPU base,
and ``fixed_percpu_data`` carries the stack canary read as ``%gs:0x28``.  Nothing else is
runnable, so ``cond_resched`` never reschedules (returns 0) and the might_sleep checks pass.
"""
from __future__ import annotations

from ...kernel.mm import PERCPU_BASE
from ..registry import model, percpu

PREEMPT_ENABLED = 0x80000000


@percpu("current_task", 8)
def current_task(emu) -> bytes:
    return emu.current.to_bytes(8, "little")


@percpu("pcpu_hot", None)
def pcpu_hot(emu) -> bytes:
    """Linux 6.12 keeps current, preempt_count and cpu_number in one per-CPU struct pcpu_hot
    (offsets from the kernel's BTF): those three are modelled, as the three per-CPU variables
    of 6.1 are; the fields after them (call depth, stack pointers) stay unmodelled."""
    lay = (emu.structs or {}).get("pcpu_hot") or {}
    fields = [("current_task", emu.current, 8), ("preempt_count", PREEMPT_ENABLED, 4),
              ("cpu_number", 0, 4)]
    if any(lay.get(f) is None for f, _v, _n in fields):
        return b""
    end = max(lay[f] + n for f, _v, n in fields)
    if end > 16:            # not the layout whose leading fields these are: model nothing
        return b""
    buf = bytearray(end)
    for f, v, n in fields:
        buf[lay[f]:lay[f] + n] = v.to_bytes(n, "little")
    return bytes(buf)


@percpu("__preempt_count", 4)
def preempt_count(emu) -> bytes:
    return PREEMPT_ENABLED.to_bytes(4, "little")


@percpu("cpu_number", 4)
def cpu_number(emu) -> bytes:
    return bytes(4)


@percpu("this_cpu_off", 8)
def this_cpu_off(emu) -> bytes:
    return PERCPU_BASE.to_bytes(8, "little")


@percpu("fixed_percpu_data", 48)
def fixed_percpu_data(emu) -> bytes:
    from ..emulator import STACK_CANARY
    return bytes(40) + STACK_CANARY.to_bytes(8, "little")


@percpu("cpu_current_top_of_stack", 8)
def cpu_current_top_of_stack(emu) -> bytes:
    from ..emulator import STACK_TOP
    return STACK_TOP.to_bytes(8, "little")


@model("__might_sleep")
def __might_sleep(emu, file, line):
    return None


@model("__might_resched")
def __might_resched(emu, file, line, offsets):
    return None


@model("__might_fault")
def __might_fault(emu, file, line):
    return None


@model("__cond_resched", "__SCT__cond_resched", "_cond_resched")
def __cond_resched(emu):
    return 0


@model("__SCT__might_resched")
def sct_might_resched(emu):
    return 0


@model("preempt_schedule", "preempt_schedule_notrace", "__SCT__preempt_schedule",
       "__SCT__preempt_schedule_notrace")
def preempt_schedule(emu):
    return None
