"""Kernel threads (kernel/kthread.c) and the scheduler calls modules make on them
(kernel/sched/core.c: ``sched_set_fifo``, ``sched_set_fifo_low``, ``set_user_nice``).

Creation.  ``kthread_create_on_node`` asks kthreadd for a new task and returns once that task
has run the kernel's ``kthread()`` up to its first sleep: the task is SCHED_NORMAL at nice 0
(policy 0, static/normal/effective prio 120, rt_priority 0), in TASK_UNINTERRUPTIBLE, with
``comm`` set from the printf-style name truncated to TASK_COMM_LEN - 1 (15) characters.  The
model allocates a zeroed ``task_struct`` of the running kernel's BTF size on the sandbox heap
and writes exactly those fields (``comm``, ``__state``, ``policy``, ``rt_priority``,
``static_prio``, ``normal_prio``, ``prio``); the thread's function and data are kept as
machine state (``emu.state["kthreads"]``, by task address).  pid/tgid and the other fields
stay 0: the sandbox allocates no pids.  ``kthread_create_worker`` (``__kthread_create_worker``)
kzallocs a ``struct kthread_worker`` of its BTF size, initialises it as
``kthread_init_worker`` does (empty ``work_list`` and ``delayed_work_list``, lock 0), creates
its task running the kernel's ``kthread_worker_fn``, sets ``worker->flags`` and
``worker->task``, and wakes the task.

When threads run, honestly (the policy of models/workqueue.py for queued work):
``wake_up_process`` makes the thread runnable (``__state`` TASK_RUNNING, returns 1 if it was
not running, 0 otherwise) but the sandbox does not run the thread's function: on a real
machine it runs later, in its own context, while init goes on.  A worker thread runs the
kernel's ``kthread_worker_fn``, which with no queued work just sleeps, so a woken worker is
idle (no ``kthread_work`` can be queued: ``kthread_queue_work`` has no model).

``kthread_stop`` sets KTHREAD_SHOULD_STOP and wakes the thread: as the sandbox has not given
the thread the CPU, the kernel's ``kthread()`` sees the bit before calling the thread function
and exits with -EINTR (v6.1 and v6.12 alike), which is what kthread_stop returns — the same
ordering the workqueue model takes when pending work is cancelled before it ran.  On a real
machine a woken thread has usually run its function by then, and kthread_stop would return
what that function returns: module code that checks the value may differ from the real
kernel there.  Nothing that waits for the thread to have run (a completion it signals) is
modelled here.  The stopped thread is reaped and its task_struct freed.
``kthread_destroy_worker`` flushes the worker (its thread runs the kernel's
``kthread_worker_fn``, which with nothing queued only takes the flush), stops it (the worker
function clears ``worker->task`` and returns 0) and kfrees the worker; a worker without a task
(the kernel's WARN_ON) or with queued work is refused.  ``kthread_bind`` binds a thread not
yet woken to a CPU: the sandbox machine has CPU 0 only (another CPU, or a running thread: the
kernel's WARN, refused).

The scheduler calls change the fields ``__sched_setscheduler``/``set_user_nice`` change, on
tasks this model created (the emulator's own ``current`` has no real scheduling state: refused):
``sched_set_fifo`` is SCHED_FIFO at MAX_RT_PRIO/2 (rt_priority 50, normal_prio and prio 49),
``sched_set_fifo_low`` SCHED_FIFO at 1 (98), ``set_user_nice`` sets static_prio to 120 + nice
(out of [-20, 19] or unchanged: nothing) and, for a SCHED_NORMAL task, normal_prio and prio.

There is no process view in the sandbox (no /proc/<pid>, no ps): the threads are listed in
``emu.state["kthreads"]`` only.
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..layouts import layout
from ..registry import model
from .vsprintf import vsprintf

LAYOUT = layout("kthread")
TASK_COMM_LEN = 16
TASK_RUNNING, TASK_UNINTERRUPTIBLE = 0, 2
SCHED_NORMAL, SCHED_FIFO = 0, 1
MAX_RT_PRIO = 100
DEFAULT_PRIO = 120                  # NICE_TO_PRIO(0)
EINTR = 4
WORKER_FN = "kthread_worker_fn"     # the kernel's function a kthread_worker's task runs


def _o(emu, struct: str, member: str) -> int:
    return LAYOUT.of(emu)[struct, member]


def _threads(emu) -> dict:
    return emu.state.setdefault("kthreads", {})


def _thread(emu, task: int, fn: str) -> dict:
    t = _threads(emu).get(str(task))
    if t is None:
        raise Unmodelled(f"{fn} (task {task:#x} is not a kernel thread the sandbox created)",
                         what=emu.what)
    return t


def _set_prio(emu, task: int, policy: int, rt_priority: int, static: int, normal: int) -> None:
    emu.write_u(task + _o(emu, "task_struct", "policy"), 4, policy)
    emu.write_u(task + _o(emu, "task_struct", "rt_priority"), 4, rt_priority)
    emu.write_u(task + _o(emu, "task_struct", "static_prio"), 4, static)
    emu.write_u(task + _o(emu, "task_struct", "normal_prio"), 4, normal)
    emu.write_u(task + _o(emu, "task_struct", "prio"), 4, normal)


def create_thread(emu, fn: int | str, data: int, name: str) -> int:
    """A new kernel thread asleep before its function (see the module docstring)."""
    task = emu.kmalloc(_o(emu, "task_struct", "sizeof"), zero=True)
    comm = name.encode("latin-1", "replace")[:TASK_COMM_LEN - 1]
    emu.write(task + _o(emu, "task_struct", "comm"), comm + b"\0")
    emu.write_u(task + _o(emu, "task_struct", "__state"), 4, TASK_UNINTERRUPTIBLE)
    _set_prio(emu, task, SCHED_NORMAL, 0, DEFAULT_PRIO, DEFAULT_PRIO)
    _threads(emu)[str(task)] = {"name": name, "fn": fn, "data": data, "woken": False,
                                "policy": SCHED_NORMAL, "rt_priority": 0,
                                "static_prio": DEFAULT_PRIO}
    return task


@model("kthread_create_on_node")
def kthread_create_on_node(emu, threadfn, data, node, namefmt, *_):
    name = vsprintf(emu, emu.cstr(namefmt), emu.args_from(4))
    task = create_thread(emu, threadfn, data, name)
    emu.note(f"{name} ({emu.symbol(threadfn)})")
    return task


def _wake(emu, task: int) -> int:
    t = _thread(emu, task, "wake_up_process")
    if t["woken"]:
        return 0
    t["woken"] = True
    emu.write_u(task + _o(emu, "task_struct", "__state"), 4, TASK_RUNNING)
    return 1


@model("wake_up_process")
def wake_up_process(emu, p):
    """1 if the task was woken, 0 if it was already running; its function is not run."""
    r = _wake(emu, p)
    emu.note(_threads(emu)[str(p)]["name"])
    return r


def _reap(emu, task: int) -> None:
    _threads(emu).pop(str(task), None)
    if task in emu.heap.allocs:
        emu.kfree(task)


def _stop(emu, k: int, fn: str) -> int:
    t = _thread(emu, k, fn)
    emu.note(f"{t['name']}: -EINTR")
    _reap(emu, k)
    return -EINTR


@model("kthread_stop")
def kthread_stop(emu, k):
    """-EINTR: the thread's function never ran (see the module docstring)."""
    return _stop(emu, k, "kthread_stop")


@model("kthread_bind")
def kthread_bind(emu, p, cpu):
    """Binds a thread not yet woken to ``cpu`` (the sandbox machine has CPU 0 only)."""
    t = _thread(emu, p, "kthread_bind")
    if t["woken"]:
        raise Unmodelled(f"kthread_bind (WARN_ON: {t['name']} is already running)",
                         what=emu.what)
    if cpu != 0:
        raise Unmodelled(f"kthread_bind (CPU {cpu}: the machine has CPU 0 only)",
                         what=emu.what)
    t["cpu"] = cpu
    emu.note(f"{t['name']} on CPU {cpu}")


def _list_init(emu, head: int) -> None:
    emu.write_u(head + _o(emu, "list_head", "next"), 8, head)
    emu.write_u(head + _o(emu, "list_head", "prev"), 8, head)


@model("kthread_create_worker")
def kthread_create_worker(emu, flags, namefmt, *_):
    name = vsprintf(emu, emu.cstr(namefmt), emu.args_from(2))
    worker = emu.kmalloc(_o(emu, "kthread_worker", "sizeof"), zero=True)
    _list_init(emu, worker + _o(emu, "kthread_worker", "work_list"))
    _list_init(emu, worker + _o(emu, "kthread_worker", "delayed_work_list"))
    task = create_thread(emu, WORKER_FN, worker, name)
    emu.write_u(worker + _o(emu, "kthread_worker", "flags"), 4, flags)
    emu.write_u(worker + _o(emu, "kthread_worker", "task"), 8, task)
    _wake(emu, task)
    emu.note(name)
    return worker


def _list_empty(emu, head: int) -> bool:
    return emu.read_u(head + _o(emu, "list_head", "next"), 8) == head


@model("kthread_destroy_worker")
def kthread_destroy_worker(emu, worker):
    task = emu.read_u(worker + _o(emu, "kthread_worker", "task"), 8)
    if not task:
        raise Unmodelled("kthread_destroy_worker (WARN_ON: the worker has no task)",
                         what=emu.what)
    for lst in ("work_list", "delayed_work_list"):
        if not _list_empty(emu, worker + _o(emu, "kthread_worker", lst)):
            raise Unmodelled(f"kthread_destroy_worker (the worker's {lst} is not empty: "
                             "its work would run now)", what=emu.what)
    t = _thread(emu, task, "kthread_destroy_worker")
    if t["fn"] != WORKER_FN or t["data"] != worker:
        raise Unmodelled(f"kthread_destroy_worker ({task:#x} is not this worker's thread)",
                         what=emu.what)
    # the flush runs the worker's kthread_worker_fn (idle: nothing queued); the stop then
    # ends it: it clears worker->task and returns 0, and the worker is freed
    emu.write_u(worker + _o(emu, "kthread_worker", "task"), 8, 0)
    emu.note(t["name"])
    _reap(emu, task)
    if worker in emu.heap.allocs:
        emu.kfree(worker)


def _sched(emu, p: int, fn: str, policy: int, rt_priority: int) -> None:
    t = _thread(emu, p, fn)
    t.update(policy=policy, rt_priority=rt_priority)
    _set_prio(emu, p, policy, rt_priority, t["static_prio"], MAX_RT_PRIO - 1 - rt_priority)
    emu.note(t["name"])


@model("sched_set_fifo")
def sched_set_fifo(emu, p):
    _sched(emu, p, "sched_set_fifo", SCHED_FIFO, MAX_RT_PRIO // 2)


@model("sched_set_fifo_low")
def sched_set_fifo_low(emu, p):
    _sched(emu, p, "sched_set_fifo_low", SCHED_FIFO, 1)


@model("set_user_nice")
def set_user_nice(emu, p, nice):
    t = _thread(emu, p, "set_user_nice")
    nice = nice - (1 << 64) if nice >= 1 << 63 else nice
    static = DEFAULT_PRIO + nice
    if static == t["static_prio"] or not -20 <= nice <= 19:
        return
    t["static_prio"] = static
    emu.write_u(p + _o(emu, "task_struct", "static_prio"), 4, static)
    if t["policy"] == SCHED_NORMAL:
        emu.write_u(p + _o(emu, "task_struct", "normal_prio"), 4, static)
        emu.write_u(p + _o(emu, "task_struct", "prio"), 4, static)
    emu.note(f"{t['name']}: {nice}")
