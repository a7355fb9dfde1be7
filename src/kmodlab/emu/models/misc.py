"""Small kernel library objects modules embed: per-CPU counters (lib/percpu_counter.c).

``__percpu_counter_init`` (6.1) / ``__percpu_counter_init_many`` (6.12, ``nr_counters``
counters in an array, their s32 per-CPU slots in one allocation, 4 bytes apart): each
counter's lock is initialised (a raw spinlock, 0), ``count`` set to ``amount`` and
``counters`` pointed at its zeroed per-CPU s32 (percpu.py's allocator); when the allocation
fails the (first) counter's ``counters`` is NULL and -ENOMEM is returned.  The kernel then adds
each counter to its static ``percpu_counters`` list (CPU hotplug folds the dead CPU's slot into
``count``); that list head is not exported and the sandbox has no CPU hotplug, so the
counters are kept in ``emu.state["percpu_counters"]`` instead and the ``list`` links are not
written.  ``percpu_counter_destroy`` / ``percpu_counter_destroy_many`` do nothing when
``counters`` is NULL; otherwise they unlink each counter (``list_del``: the list poison values
are written into ``list``), free the per-CPU slots and set ``counters`` to NULL.

DMA engine clients (drivers/dma/dmaengine.c): ``dmaengine_get`` counts a client reference
(``emu.state["dmaengine_refs"]``) and takes a reference on every public channel of every
registered DMA device, rebalancing the per-CPU channel table on the first reference;
``dmaengine_put`` drops it (the kernel's BUG_ON below zero is an oops here).  The sandbox
models no DMA device registration (no model of ``dma_async_device_register``), so the device
list is empty and neither has anything else to do: the kernel's private channel table stays
empty, and nothing is logged.

Sleepable RCU (kernel/rcu/srcutree.c): ``init_srcu_struct`` sets ``srcu_idx`` 0 and points
``sda`` at a zeroed per-CPU ``struct srcu_data`` (6.12 first kzallocs the ``srcu_usage``
``srcu_sup`` and sets its ``srcu_ssp`` back-pointer); -ENOMEM when an allocation fails.  The
kernel also initialises the grace-period bookkeeping (mutexes, locks, sequence numbers, the
delayed work, each CPU's callback list): kernel-private state no module reads, not written
here.  ``__srcu_read_lock`` returns ``srcu_idx & 1`` after incrementing this CPU's
``srcu_lock_count[idx]``; ``__srcu_read_unlock`` increments ``srcu_unlock_count[idx]``.
``cleanup_srcu_struct`` frees the per-CPU data (and 6.12's ``srcu_sup``) and NULLs the
pointers; readers still inside (lock and unlock counts differ) are the kernel's WARN and a
leak, refused as Unmodelled, as is a struct ``init_srcu_struct`` did not set up (a static
``DEFINE_SRCU`` one).  No grace period is ever started (``synchronize_srcu``/``call_srcu`` are
not modelled).
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..layouts import layout
from ..registry import model

LAYOUT = layout("misc")
ENOMEM = 12
S32 = 4
LIST_POISON1, LIST_POISON2 = 0xdead000000000100, 0xdead000000000122


def _o(emu, member: str) -> int:
    return LAYOUT.of(emu)["percpu_counter", member]


def _live(emu) -> list:
    return emu.state.setdefault("percpu_counters", [])


def _init_many(emu, fbc: int, amount: int, nr: int) -> int:
    from .percpu import alloc_percpu
    size = _o(emu, "sizeof")
    counters = alloc_percpu(emu, nr * S32, S32)
    if not counters:
        emu.write_u(fbc + _o(emu, "counters"), 8, 0)
        return -ENOMEM
    for i in range(nr):
        c = fbc + i * size
        emu.write_u(c, 4, 0)                                 # raw_spin_lock_init
        emu.write_u(c + _o(emu, "count"), 8, amount)
        emu.write_u(c + _o(emu, "counters"), 8, counters + i * S32)
        _live(emu).append(c)
    return 0


def _destroy_many(emu, fbc: int, nr: int) -> None:
    from .percpu import free_percpu
    size = _o(emu, "sizeof")
    counters = emu.read_u(fbc + _o(emu, "counters"), 8)
    if not counters:
        return
    for i in range(nr):
        c = fbc + i * size
        if c not in _live(emu):
            raise Unmodelled(f"{emu._model_name} (counter {c:#x} was never initialised: "
                             "list_del of an unlisted entry)", what=emu.what)
        _live(emu).remove(c)
        emu.write_u(c + _o(emu, "list"), 8, LIST_POISON1)
        emu.write_u(c + _o(emu, "list") + 8, 8, LIST_POISON2)
    free_percpu(emu, counters)
    for i in range(nr):
        emu.write_u(fbc + i * size + _o(emu, "counters"), 8, 0)


@model("__percpu_counter_init")
def __percpu_counter_init(emu, fbc, amount, gfp, key):
    return _init_many(emu, fbc, amount, 1)


@model("__percpu_counter_init_many")
def __percpu_counter_init_many(emu, fbc, amount, gfp, nr_counters, key):
    return _init_many(emu, fbc, amount, nr_counters & 0xFFFFFFFF)


@model("percpu_counter_destroy")
def percpu_counter_destroy(emu, fbc):
    _destroy_many(emu, fbc, 1)


@model("percpu_counter_destroy_many")
def percpu_counter_destroy_many(emu, fbc, nr_counters):
    if not fbc:
        raise Unmodelled("percpu_counter_destroy_many (NULL array: the kernel's WARN_ON_ONCE)",
                         what=emu.what)
    _destroy_many(emu, fbc, nr_counters & 0xFFFFFFFF)


def _dma_refs(emu) -> int:
    return emu.state.get("dmaengine_refs", 0)


@model("dmaengine_get")
def dmaengine_get(emu):
    emu.state["dmaengine_refs"] = _dma_refs(emu) + 1


@model("dmaengine_put")
def dmaengine_put(emu):
    if _dma_refs(emu) <= 0:
        raise emu.oops(["kernel BUG at drivers/dma/dmaengine.c: dmaengine_put "
                        "(dmaengine_ref_count < 0)"])
    emu.state["dmaengine_refs"] = _dma_refs(emu) - 1


SRCU_DATA_ALIGN = 64          # ____cacheline_internodealigned_in_smp (x86-64, no vSMP)


def _so(emu, struct: str, member: str):
    return LAYOUT.of(emu)[struct, member]


def _srcus(emu) -> dict:
    return emu.state.setdefault("srcu", {})


@model("init_srcu_struct")
def init_srcu_struct(emu, ssp):
    from .percpu import alloc_percpu
    sup = 0
    if _sup_offset(emu) is not None:
        size = _so(emu, "srcu_usage", "sizeof")
        sup = emu.kmalloc(size, zero=True)
        if not sup:
            return -ENOMEM
        emu.write_u(ssp + _sup_offset(emu), 8, sup)
        emu.write_u(sup + _so(emu, "srcu_usage", "srcu_ssp"), 8, ssp)
    emu.write_u(ssp + _so(emu, "srcu_struct", "srcu_idx"), 4, 0)
    sda = alloc_percpu(emu, _so(emu, "srcu_data", "sizeof"), SRCU_DATA_ALIGN)
    if not sda:
        if sup:
            emu.kfree(sup)
            emu.write_u(ssp + _sup_offset(emu), 8, 0)
        return -ENOMEM
    emu.write_u(ssp + _so(emu, "srcu_struct", "sda"), 8, sda)
    _srcus(emu)[str(ssp)] = {"sda": sda, "sup": sup}
    return 0


def _sup_offset(emu):
    try:
        return _so(emu, "srcu_struct", "srcu_sup")
    except Unmodelled:
        return None


def _known(emu, ssp: int) -> dict:
    rec = _srcus(emu).get(str(ssp))
    if rec is None:
        raise Unmodelled(f"{emu._model_name} (an srcu_struct init_srcu_struct did not set up)",
                         what=emu.what)
    return rec


def _count(emu, rec: dict, member: str, idx: int) -> int:
    from ...kernel.mm import PERCPU_BASE
    return PERCPU_BASE + rec["sda"] + _so(emu, "srcu_data", member) + 8 * idx


@model("__srcu_read_lock")
def __srcu_read_lock(emu, ssp):
    rec = _known(emu, ssp)
    idx = emu.read_u(ssp + _so(emu, "srcu_struct", "srcu_idx"), 4) & 1
    a = _count(emu, rec, "srcu_lock_count", idx)
    emu.write_u(a, 8, (emu.read_u(a, 8) + 1) & (1 << 64) - 1)
    return idx


@model("__srcu_read_unlock")
def __srcu_read_unlock(emu, ssp, idx):
    rec = _known(emu, ssp)
    a = _count(emu, rec, "srcu_unlock_count", idx & 1)
    emu.write_u(a, 8, (emu.read_u(a, 8) + 1) & (1 << 64) - 1)


@model("cleanup_srcu_struct")
def cleanup_srcu_struct(emu, ssp):
    from .percpu import free_percpu
    rec = _known(emu, ssp)
    if any(emu.read_u(_count(emu, rec, "srcu_lock_count", i), 8)
           != emu.read_u(_count(emu, rec, "srcu_unlock_count", i), 8) for i in (0, 1)):
        raise Unmodelled("cleanup_srcu_struct (readers still active: the kernel's WARN and "
                         "leak)", what=emu.what)
    free_percpu(emu, rec["sda"])
    emu.write_u(ssp + _so(emu, "srcu_struct", "sda"), 8, 0)
    if rec["sup"]:
        emu.kfree(rec["sup"])
        emu.write_u(ssp + _sup_offset(emu), 8, 0)
    del _srcus(emu)[str(ssp)]
