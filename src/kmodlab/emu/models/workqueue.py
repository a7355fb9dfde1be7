"""Workqueues (kernel/workqueue.c): alloc/destroy, queue, cancel, flush.

What the sandbox does with work, honestly: ``queue_work_on`` sets the work's PENDING bit (bit 0
of ``work_struct.data``) and records the item in ``emu.state["work"]`` — it does not run it, as
on a real machine the kworker runs it later, in another context, while init goes on; cancelling
it before that (``cancel_work_sync`` …) is a valid ordering and is modelled.  Anything that has
to *wait for* pending work (``flush_work``, ``__flush_workqueue``, ``drain_workqueue``,
``destroy_workqueue`` of a queue with pending work) would run it first: that stops the run with
:class:`Unmodelled` naming the work function.  An idle queue is destroyed, and freed.

Layouts (Debian 6.1 amd64): ``work_struct`` {data 0, entry 8, func 24} (32 bytes);
``delayed_work`` {work 0, timer 32, wq 72, cpu 80}.  ``struct workqueue_struct`` is private to
workqueue.c: module code only passes the pointer around, so a queue is an opaque heap object
whose name and flags are kept in ``emu.state["workqueues"]``.  The system queues
(``system_wq`` …) are objects of the emulator's private memory.
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..registry import data, model
from .vsprintf import vsprintf

WORK_STRUCT_PENDING = 1
WORK_FUNC, DWORK_TIMER, DWORK_WQ, DWORK_CPU = 24, 32, 72, 80
WQ_STRUCT_SIZE = 0x180
SYSTEM_WQS = ("system_wq", "system_highpri_wq", "system_long_wq", "system_unbound_wq",
              "system_freezable_wq", "system_power_efficient_wq",
              "system_freezable_power_efficient_wq",
              "system_percpu_wq", "system_dfl_wq")        # 6.12.118's backported names


def _wqs(emu) -> dict:
    return emu.state.setdefault("workqueues", {})


def _work(emu) -> dict:
    return emu.state.setdefault("work", {})


def _system(name: str):
    def fn(emu) -> bytes:
        cache = emu.__dict__.setdefault("_system_wqs", {})
        if name not in cache:
            cache[name] = emu.priv_alloc(WQ_STRUCT_SIZE)
        return cache[name].to_bytes(8, "little")
    fn.__name__ = name
    return fn


for _n in SYSTEM_WQS:
    data(_n, 8)(_system(_n))


def wq_name(emu, wq: int) -> str:
    q = _wqs(emu).get(str(wq))
    if q:
        return q["name"]
    for n, a in emu.__dict__.get("_system_wqs", {}).items():
        if a == wq:
            return n
    return f"{wq:#x}"


@model("alloc_workqueue")
def alloc_workqueue(emu, fmt, flags, max_active, *_):
    name = vsprintf(emu, emu.cstr(fmt), emu.args_from(3))
    wq = emu.kmalloc(WQ_STRUCT_SIZE, zero=True)
    _wqs(emu)[str(wq)] = {"name": name, "flags": flags & 0xFFFFFFFF,
                          "max_active": max_active & 0xFFFFFFFF}
    emu.note(name)
    return wq


def _pending_on(emu, wq: int) -> list[tuple[str, dict]]:
    return [(k, w) for k, w in _work(emu).items() if w["wq"] == wq]


def _must_run(emu, items, why: str):
    k, w = items[0]
    return Unmodelled(f"{why} (queued work {emu.symbol(w['func'])} would run now)",
                      what=emu.what)


@model("destroy_workqueue")
def destroy_workqueue(emu, wq):
    items = _pending_on(emu, wq)
    if items:
        raise _must_run(emu, items, "destroy_workqueue")
    _wqs(emu).pop(str(wq), None)
    if wq in emu.heap.allocs:
        emu.kfree(wq)


@model("__flush_workqueue", "drain_workqueue")
def __flush_workqueue(emu, wq):
    items = _pending_on(emu, wq)
    if items:
        raise _must_run(emu, items, "flush_workqueue")


def _queue(emu, wq: int, work: int, delay: int = 0) -> int:
    d = emu.read_u(work, 8)
    if d & WORK_STRUCT_PENDING:
        return 0
    emu.write_u(work, 8, d | WORK_STRUCT_PENDING)
    func = emu.read_u(work + WORK_FUNC, 8)
    _work(emu)[str(work)] = {"wq": wq, "func": func, "delay": delay, "name": emu.symbol(func)}
    emu.note(f"{emu.symbol(func)} on {wq_name(emu, wq)}")
    return 1


@model("queue_work_on")
def queue_work_on(emu, cpu, wq, work):
    """true if queued, false if it was already pending; the work is not run (see above)."""
    return _queue(emu, wq, work)


@model("queue_delayed_work_on")
def queue_delayed_work_on(emu, cpu, wq, dwork, delay):
    r = _queue(emu, wq, dwork, delay)
    if r:
        emu.write_u(dwork + DWORK_WQ, 8, wq)
        emu.write_u(dwork + DWORK_CPU, 4, cpu)
    return r


@model("mod_delayed_work_on")
def mod_delayed_work_on(emu, cpu, wq, dwork, delay):
    was = _cancel(emu, dwork)
    _queue(emu, wq, dwork, delay)
    emu.write_u(dwork + DWORK_WQ, 8, wq)
    return was


def _cancel(emu, work: int) -> int:
    d = emu.read_u(work, 8)
    _work(emu).pop(str(work), None)
    emu.write_u(work, 8, d & ~WORK_STRUCT_PENDING)
    return int(bool(d & WORK_STRUCT_PENDING))


@model("cancel_work_sync", "cancel_delayed_work_sync", "cancel_delayed_work", "cancel_work")
def cancel_work_sync(emu, work):
    """true if the work was pending (it is removed before it ran), false otherwise."""
    return _cancel(emu, work)


@model("flush_work", "flush_delayed_work")
def flush_work(emu, work):
    w = _work(emu).get(str(work))
    if w:
        raise _must_run(emu, [(str(work), w)], "flush_work")
    return 0
