"""Locks and wait queues (kernel/locking/mutex.c, spinlock.c, kernel/sched/wait.c, swait.c).

The emulated code is the only task, on CPU 0, so a lock is always free unless the module itself
holds it.  The models keep the kernel's memory effects — ``mutex.owner`` holds ``current`` while
locked, a qspinlock's locked byte is 1, ``spin_lock`` raises ``__preempt_count`` by one,
``spin_lock_bh`` by ``SOFTIRQ_DISABLE_OFFSET``, ``_irqsave`` returns the flags with IF set and
masks interrupts — so that the inline fast paths compiled into modules (``mutex_is_locked``,
``spin_is_locked``, ``preemptible()``) see what they would.  Taking a lock the task already
holds never returns on Debian's kernel (no lockdep): the run ends as the hang it is
(:class:`BudgetExceeded`).  Layouts are Debian 6.1 amd64's (no lock debugging):
``struct mutex`` {owner 0, wait_lock 8, osq 12, wait_list 16}; ``wait_queue_head`` {lock 0,
head 8}; ``swait_queue_head`` {lock 0, task_list 8}.
"""
from __future__ import annotations

from ..errors import BudgetExceeded
from ..registry import model

X86_EFLAGS_IF = 0x200
SOFTIRQ_DISABLE_OFFSET = 0x200
MUTEX_FLAGS = 0x7


def _hang(emu, what: str):
    return BudgetExceeded(emu.what, seconds=emu.timeout_s, where=f"{what} (the lock is already "
                          "held by this task: it waits forever)")


def init_list_head(emu, head: int) -> None:
    emu.write_u(head, 8, head)
    emu.write_u(head + 8, 8, head)


def preempt_add(emu, n: int) -> None:
    a = emu.export_addr("__preempt_count")
    if a is None:
        return
    from ...kernel.mm import PERCPU_BASE
    v = emu.read_u(PERCPU_BASE + a, 4)
    emu.write_u(PERCPU_BASE + a, 4, v + n)


# --- mutexes -----------------------------------------------------------------------------------
@model("__mutex_init")
def __mutex_init(emu, lock, name, key):
    emu.write_u(lock, 8, 0)
    emu.write_u(lock + 8, 8, 0)                 # wait_lock, osq
    init_list_head(emu, lock + 16)


def _mutex_lock(emu, lock: int, who: str) -> None:
    owner = emu.read_u(lock, 8) & ~MUTEX_FLAGS
    if owner:
        raise _hang(emu, who)
    emu.write_u(lock, 8, emu.current)


@model("mutex_lock", "mutex_lock_nested", "mutex_lock_io")
def mutex_lock(emu, lock):
    _mutex_lock(emu, lock, "mutex_lock")


@model("mutex_lock_interruptible", "mutex_lock_killable")
def mutex_lock_interruptible(emu, lock):
    """0: nothing signals the insmod task while it waits (and it never waits)."""
    _mutex_lock(emu, lock, "mutex_lock_interruptible")
    return 0


@model("mutex_trylock")
def mutex_trylock(emu, lock):
    if emu.read_u(lock, 8) & ~MUTEX_FLAGS:
        return 0
    emu.write_u(lock, 8, emu.current)
    return 1


@model("mutex_unlock")
def mutex_unlock(emu, lock):
    emu.write_u(lock, 8, 0)


@model("mutex_is_locked")
def mutex_is_locked(emu, lock):
    return int(bool(emu.read_u(lock, 8) & ~MUTEX_FLAGS))


# --- rw semaphores (struct rw_semaphore: count 0, owner 8) -------------------------------------
RWSEM_WRITER_LOCKED, RWSEM_READER_BIAS = 1, 1 << 8


@model("__init_rwsem")
def __init_rwsem(emu, sem, name, key):
    """kernel/locking/rwsem.c (no lockdep, no DEBUG_RWSEMS on Debian): count
    RWSEM_UNLOCKED_VALUE 0, owner 0, osq unlocked, wait_lock unlocked, empty wait_list
    (Debian 6.1 amd64 BTF: count 0, owner 8, osq 16, wait_lock 20, wait_list 24; 40 bytes)."""
    emu.write_u(sem, 8, 0)
    emu.write_u(sem + 8, 8, 0)
    emu.write_u(sem + 16, 8, 0)
    init_list_head(emu, sem + 24)


@model("down_write", "down_write_killable")
def down_write(emu, sem):
    if emu.read_u(sem, 8):
        raise _hang(emu, "down_write")
    emu.write_u(sem, 8, RWSEM_WRITER_LOCKED)
    emu.write_u(sem + 8, 8, emu.current)
    return 0


@model("up_write")
def up_write(emu, sem):
    emu.write_u(sem + 8, 8, 0)
    emu.write_u(sem, 8, 0)


@model("down_read", "down_read_killable")
def down_read(emu, sem):
    c = emu.read_u(sem, 8)
    if c & RWSEM_WRITER_LOCKED:
        raise _hang(emu, "down_read")
    emu.write_u(sem, 8, c + RWSEM_READER_BIAS)
    return 0


@model("up_read")
def up_read(emu, sem):
    emu.write_u(sem, 8, emu.read_u(sem, 8) - RWSEM_READER_BIAS)


# --- spinlocks (queued spinlocks: the locked byte is byte 0) --------------------------------------
def _spin_lock(emu, lock: int, who: str) -> None:
    if emu.read_u(lock, 4):
        raise _hang(emu, who)
    emu.write_u(lock, 4, 1)


@model("_raw_spin_lock")
def _raw_spin_lock(emu, lock):
    preempt_add(emu, 1)
    _spin_lock(emu, lock, "_raw_spin_lock")


@model("_raw_spin_unlock")
def _raw_spin_unlock(emu, lock):
    emu.write_u(lock, 1, 0)
    preempt_add(emu, -1)


@model("_raw_spin_lock_bh")
def _raw_spin_lock_bh(emu, lock):
    preempt_add(emu, SOFTIRQ_DISABLE_OFFSET)
    _spin_lock(emu, lock, "_raw_spin_lock_bh")


@model("_raw_spin_unlock_bh")
def _raw_spin_unlock_bh(emu, lock):
    emu.write_u(lock, 1, 0)
    preempt_add(emu, -SOFTIRQ_DISABLE_OFFSET)


def _irqs(emu) -> bool:
    return getattr(emu, "irqs_enabled", True)


@model("_raw_spin_lock_irqsave")
def _raw_spin_lock_irqsave(emu, lock):
    flags = X86_EFLAGS_IF if _irqs(emu) else 0
    emu.irqs_enabled = False
    preempt_add(emu, 1)
    _spin_lock(emu, lock, "_raw_spin_lock_irqsave")
    return flags


@model("_raw_spin_unlock_irqrestore")
def _raw_spin_unlock_irqrestore(emu, lock, flags):
    emu.write_u(lock, 1, 0)
    emu.irqs_enabled = bool(flags & X86_EFLAGS_IF)
    preempt_add(emu, -1)


@model("_raw_spin_lock_irq")
def _raw_spin_lock_irq(emu, lock):
    emu.irqs_enabled = False
    preempt_add(emu, 1)
    _spin_lock(emu, lock, "_raw_spin_lock_irq")


@model("_raw_spin_unlock_irq")
def _raw_spin_unlock_irq(emu, lock):
    emu.write_u(lock, 1, 0)
    emu.irqs_enabled = True
    preempt_add(emu, -1)


@model("_raw_spin_trylock")
def _raw_spin_trylock(emu, lock):
    if emu.read_u(lock, 4):
        return 0
    preempt_add(emu, 1)
    emu.write_u(lock, 4, 1)
    return 1


# --- wait queues -------------------------------------------------------------------------------
@model("__init_waitqueue_head")
def __init_waitqueue_head(emu, wq, name, key):
    emu.write_u(wq, 4, 0)
    init_list_head(emu, wq + 8)


@model("__init_swait_queue_head")
def __init_swait_queue_head(emu, q, name, key):
    emu.write_u(q, 4, 0)
    init_list_head(emu, q + 8)


@model("__wake_up")
def __wake_up(emu, wq, mode, nr, key):
    """Nothing sleeps in the sandbox: the list is empty unless the module queued an entry."""
    head = wq + 8
    if emu.read_u(head, 8) != head:
        from ..errors import Unmodelled
        raise Unmodelled("__wake_up (a wait queue with waiters)", what=emu.what)


# --- RCU: one CPU, no readers but the caller ------------------------------------------------------
@model("synchronize_rcu", "synchronize_rcu_expedited", "synchronize_net")
def synchronize_rcu(emu):
    """A grace period ends at once: the only task is the caller, outside any read section."""
    return None


@model("rcu_barrier")
def rcu_barrier(emu):
    pending = emu.state.get("call_rcu", [])
    if pending:
        from ..errors import Unmodelled
        raise Unmodelled("rcu_barrier (pending call_rcu callbacks would run)", what=emu.what)
    return None


@model("__rcu_read_lock")
def __rcu_read_lock(emu):
    return None


@model("__rcu_read_unlock")
def __rcu_read_unlock(emu):
    return None


# --- reader-writer spinlocks (kernel/locking/qrwlock.c; struct qrwlock: cnts 0, wait_lock 4) -----
# cnts holds the writer byte (_QW_LOCKED 0xff) and the readers in units of _QR_BIAS (1 << 9).
# One table serves every flavour: how much it raises __preempt_count and what it does to
# interrupts (the _irqsave flavours return the flags with IF as it was).
QW_LOCKED, QR_BIAS, QW_WMASK = 0xFF, 1 << 9, 0x1FF
_RW_FLAVOURS = {"": (1, None), "_bh": (SOFTIRQ_DISABLE_OFFSET, None), "_irq": (1, "irq"),
                "_irqsave": (1, "save")}


def _rw_lock(emu, lock: int, write: bool, flavour: str, who: str) -> int | None:
    count, irq = _RW_FLAVOURS[flavour]
    flags = X86_EFLAGS_IF if _irqs(emu) else 0
    if irq:
        emu.irqs_enabled = False
    preempt_add(emu, count)
    cnts = emu.read_u(lock, 4)
    if cnts & QW_WMASK or (write and cnts):
        raise _hang(emu, who)
    emu.write_u(lock, 4, QW_LOCKED if write else cnts + QR_BIAS)
    return flags if irq == "save" else None


def _rw_unlock(emu, lock: int, write: bool, flavour: str, flags: int = 0) -> None:
    count, irq = _RW_FLAVOURS[flavour]
    if write:
        emu.write_u(lock, 1, 0)                      # the writer byte
    else:
        emu.write_u(lock, 4, emu.read_u(lock, 4) - QR_BIAS)
    if irq == "irq":
        emu.irqs_enabled = True
    elif irq == "save":
        emu.irqs_enabled = bool(flags & X86_EFLAGS_IF)
    preempt_add(emu, -count)


def _rw_models():
    """Register every flavour's lock and unlock (keyword-only defaults: not C arguments)."""
    for flavour in _RW_FLAVOURS:
        for rw, write in (("read", False), ("write", True)):
            name = f"_raw_{rw}_lock{flavour}"

            def lock(emu, lk, *, _w=write, _f=flavour, _n=name):
                return _rw_lock(emu, lk, _w, _f, _n)

            if flavour == "_irqsave":
                def unlock(emu, lk, flags, *, _w=write, _f=flavour):
                    _rw_unlock(emu, lk, _w, _f, flags)
            else:
                def unlock(emu, lk, *, _w=write, _f=flavour):
                    _rw_unlock(emu, lk, _w, _f)
            lock.__module__ = unlock.__module__ = __name__
            model(name)(lock)
            model(f"_raw_{rw}_unlock{'_irqrestore' if flavour == '_irqsave' else flavour}")(
                unlock)


_rw_models()


@model("_raw_read_trylock", "_raw_write_trylock")
def _raw_rw_trylock(emu, lock):
    write = emu._model_name == "_raw_write_trylock"
    cnts = emu.read_u(lock, 4)
    if cnts & QW_WMASK or (write and cnts):
        return 0
    preempt_add(emu, 1)
    emu.write_u(lock, 4, QW_LOCKED if write else cnts + QR_BIAS)
    return 1
