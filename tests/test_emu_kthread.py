"""Kernel threads (emu/models/kthread.py): kernel/kthread.c, the scheduler calls on them.

C snippets for the rules (struct task_struct and struct kthread_worker read at Linux 6.1's BTF
offsets: task_struct {__state 24, prio 108, static_prio 112, normal_prio 116, rt_priority 120,
policy 972, comm 2976}; kthread_worker {flags 0, work_list 8, delayed_work_list 24, task 40}),
and real Debian modules whose init creates threads and whose exit stops them.
"""
from __future__ import annotations

import pytest

from kmodlab.emu import Unmodelled
from test_emu_models import _exports, insmod, kernel, run, tree  # noqa: F401  (fixtures)
from test_emu_support import needs_gcc

NAMES = ["kthread_create_on_node", "kthread_create_worker", "wake_up_process", "kthread_stop",
         "kthread_bind", "kthread_destroy_worker", "sched_set_fifo", "sched_set_fifo_low",
         "set_user_nice"]
EX = _exports(*[(n, 0xFFFFFFFF81A10000 + 0x40 * i) for i, n in enumerate(NAMES)])

HEADER = r'''
struct list_head { struct list_head *next, *prev; };
struct kthread_worker { unsigned int flags, lock; struct list_head work_list, delayed_work_list;
                        void *task, *current_work; };
#define T(p, off, type) (*(type *)((char *)(p) + (off)))
#define STATE(p) T(p, 24, unsigned int)
#define PRIO(p) T(p, 108, int)
#define STATIC(p) T(p, 112, int)
#define NORMAL(p) T(p, 116, int)
#define RTPRIO(p) T(p, 120, unsigned int)
#define POLICY(p) T(p, 972, unsigned int)
#define COMM(p) ((char *)(p) + 2976)
void *kthread_create_on_node(int (*)(void *), void *, int, const char *, ...);
struct kthread_worker *kthread_create_worker(unsigned int, const char *, ...);
int wake_up_process(void *);
int kthread_stop(void *);
void kthread_bind(void *, unsigned int);
void kthread_destroy_worker(struct kthread_worker *);
void sched_set_fifo(void *);
void sched_set_fifo_low(void *);
void set_user_nice(void *, long);
long r[40];
static int ran;
static int fn(void *data) { ran = 1; return 7; }
static long cmp(const char *a, const char *b) { while (*a && *a == *b) a++, b++; return *a == *b; }
'''


def _r(b, n):
    return [_s64(b.mm.read_u(b.syms["r"] + 8 * i, 8)) for i in range(n)]


def _s64(v):
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >> 63 else v


@needs_gcc
def test_create_wake_stop_a_thread_whose_function_never_runs():
    """kthread_create_on_node: comm from the format, truncated to 15 characters; the task is
    asleep (TASK_UNINTERRUPTIBLE), SCHED_NORMAL at prio 120.  wake_up_process: 1, then 0 for a
    running task; the function is not run.  kthread_stop: -EINTR (kthread() saw
    KTHREAD_SHOULD_STOP before the function), for a woken and for a never-woken thread."""
    src = HEADER + r'''
    long f(void) {
        void *t = kthread_create_on_node(fn, &ran, -1, "%s-%d-longer-than-comm", "kt", 42);
        r[0] = cmp(COMM(t), "kt-42-longer-th");
        r[1] = STATE(t); r[2] = POLICY(t); r[3] = PRIO(t); r[4] = STATIC(t); r[5] = NORMAL(t);
        r[6] = wake_up_process(t); r[7] = wake_up_process(t); r[8] = STATE(t);
        r[9] = ran;
        r[10] = kthread_stop(t);
        void *u = kthread_create_on_node(fn, 0, -1, "idle");
        r[11] = kthread_stop(u);
        r[12] = ran;
        return 0;
    }'''
    state = {}
    _ret, _log, _emu, b = run(src, EX, state=state)
    assert _r(b, 13) == [1, 2, 0, 120, 120, 120, 1, 0, 0, 0, -4, -4, 0]
    assert state["kthreads"] == {}              # both reaped


@needs_gcc
def test_worker_is_initialised_woken_and_destroyed():
    """kthread_create_worker: empty work lists, flags and task set, the task woken and named;
    sched_set_fifo: SCHED_FIFO, rt_priority 50, prio 49; kthread_destroy_worker reaps it."""
    src = HEADER + r'''
    long f(void) {
        struct kthread_worker *w = kthread_create_worker(1, "wd%c", 'x');
        void *t = w->task;
        r[0] = w->flags; r[1] = w->work_list.next == &w->work_list;
        r[2] = w->delayed_work_list.prev == &w->delayed_work_list;
        r[3] = cmp(COMM(t), "wdx"); r[4] = STATE(t);
        sched_set_fifo(t);
        r[5] = POLICY(t); r[6] = RTPRIO(t); r[7] = PRIO(t); r[8] = NORMAL(t); r[9] = STATIC(t);
        sched_set_fifo_low(t);
        r[10] = RTPRIO(t); r[11] = PRIO(t);
        kthread_destroy_worker(w);
        return 0;
    }'''
    state = {}
    _ret, _log, emu, b = run(src, EX, state=state)
    assert _r(b, 12) == [1, 1, 1, 1, 0, 1, 50, 49, 49, 120, 1, 98]
    assert state["kthreads"] == {}
    assert not emu.heap.allocs                  # worker and task_struct freed


@needs_gcc
def test_set_user_nice_and_bind():
    """set_user_nice: static_prio 120 + nice, and normal/effective prio for SCHED_NORMAL; a
    nice out of [-20, 19] changes nothing.  kthread_bind on CPU 0 before the wake-up."""
    src = HEADER + r'''
    long f(void) {
        void *t = kthread_create_on_node(fn, 0, -1, "n");
        set_user_nice(t, -5); r[0] = STATIC(t); r[1] = PRIO(t); r[2] = NORMAL(t);
        set_user_nice(t, 40); r[3] = STATIC(t);
        kthread_bind(t, 0);
        sched_set_fifo(t); set_user_nice(t, 3);
        r[4] = STATIC(t); r[5] = PRIO(t);       /* an RT task keeps its RT prio */
        return kthread_stop(t);
    }'''
    state = {}
    ret, _log, _emu, b = run(src, EX, state=state)
    assert _s64(ret) == -4
    assert _r(b, 6) == [115, 115, 115, 115, 123, 49]


@needs_gcc
@pytest.mark.parametrize("body,why", [
    ("void *t = kthread_create_on_node(fn, 0, -1, \"b\"); wake_up_process(t); "
     "kthread_bind(t, 0);", "already running"),
    ("void *t = kthread_create_on_node(fn, 0, -1, \"b\"); kthread_bind(t, 3);", "CPU 3"),
    ("sched_set_fifo(r);", "not a kernel thread"),
    ("struct kthread_worker w = {0}; kthread_destroy_worker(&w);", "no task"),
])
def test_refusals(body, why):
    src = HEADER + "long f(void) { " + body + " return 0; }"
    with pytest.raises(Unmodelled, match=why):
        run(src, EX, state={})


@needs_gcc
def test_612_offsets(profile_612):
    """On 6.12 the model reads task_struct/kthread_worker from that kernel's BTF (the same
    offsets for the fields it writes: the snippet's 6.1 macros still hold)."""
    src = HEADER + r'''
    long f(void) {
        struct kthread_worker *w = kthread_create_worker(0, "w");
        sched_set_fifo(w->task);
        r[0] = POLICY(w->task); r[1] = cmp(COMM(w->task), "w");
        kthread_destroy_worker(w);
        return 0;
    }'''
    _ret, _log, _emu, b = run(src, EX, state={}, profile=profile_612)
    assert _r(b, 2) == [1, 1]


# --- real modules -------------------------------------------------------------------------------

def _comm(machine, task):
    comm = machine.profile.structs["task_struct"]["comm"]
    return machine.mm.read(task + comm, 16).split(b"\0")[0].decode()


def test_watchdog_core_worker_and_exit(kernel, machine, tree):
    """drivers/watchdog: watchdog_dev_init's kthread_create_worker(0, "watchdogd") and
    sched_set_fifo on its task, then the class and chrdev region; the real kernel's init
    returns 0 with no log line.  Exit's kthread_destroy_worker reaps the thread."""
    kernel.trace = True
    r = insmod(kernel, tree, "watchdog")
    assert r.errno == 0, r.reason
    assert not r.log or not any("watchdog" in line for line in r.log)
    (task, t), = machine.emu_state["kthreads"].items()
    assert t["name"] == "watchdogd" and t["woken"] and t["policy"] == 1
    assert t["rt_priority"] == 50
    assert _comm(machine, int(task)) == "watchdogd"
    lay = machine.profile.structs["kthread_worker"]
    assert machine.mm.read_u(t["data"] + lay["task"], 8) == int(task)
    d = kernel.delete_module("watchdog", 0)
    assert d.errno == 0, d.reason
    assert "kthread_destroy_worker" in [c.name for c in d.details.get("calls", [])]
    assert machine.emu_state["kthreads"] == {}


@pytest.mark.parametrize("mod,threads", [
    ("rfcomm", ["krfcommd"]),
    ("jfs", ["jfsIO", "jfsCommit", "jfsSync"]),
    ("bnx2fc", ["bnx2fc_l2_thread", "bnx2fc_thread/0"]),
])
def test_module_threads_started_and_stopped(kernel, machine, tree, mod, threads):
    """kthread_run (create + wake_up_process) in init; exit's kthread_stop returns -EINTR for
    threads the sandbox never ran, and every thread is reaped."""
    r = insmod(kernel, tree, mod)
    assert r.errno == 0, r.reason
    got = machine.emu_state["kthreads"].values()
    assert sorted(t["name"] for t in got) == sorted(threads)
    assert all(t["woken"] for t in got)
    kernel.trace = True
    d = kernel.delete_module(mod, 0)
    assert d.errno == 0, d.reason
    assert not any("unmodelled" in line for line in d.log), d.log
    stops = [c for c in d.details.get("calls", []) if c.name == "kthread_stop"]
    assert stops and all(_s64(c.ret) == -4 for c in stops)
    assert machine.emu_state["kthreads"] == {}
