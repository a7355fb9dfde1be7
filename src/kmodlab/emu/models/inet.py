"""IP fragment reassembly set-up (net/ipv4/inet_fragment.c): ``inet_frags_init`` and
``inet_frags_fini``, which IPv4/IPv6 defragmentation, 6LoWPAN and nf_defrag call at init/exit.

``inet_frags_init`` creates the frag queues' slab cache (``kmem_cache_create(
f->frags_cache_name, f->qsize, 0, 0, NULL)``; NULL → -ENOMEM), sets ``f->refcnt`` to 1 and
initialises ``f->completion`` (done 0, an empty simple wait queue).  ``inet_frags_fini`` drops
that reference — the last one completes the completion — waits for it (with no namespace
holding a reference, which the sandbox's one namespace does only while its pernet init has run
and not exited: then waiting would never end and is a hang), destroys the cache and clears
``frags_cachep``.

A namespace's fragment queue directory: ``fqdir_init(fqdirp, f, net)`` kzallocs a ``struct
fqdir`` (NULL → -ENOMEM), sets ``f`` and ``net``, sets up its ``rhashtable`` with
``f->rhash_params`` (models/rhashtable.py; an error frees the fqdir and is returned), takes a
reference on ``f`` and stores the fqdir in ``*fqdirp``.  ``fqdir_exit`` (6.1 and 6.12)
INIT_WORKs ``destroy_work`` with ``fqdir_work_fn`` and queues it on the kernel's private
``inet_frag_wq``: it is recorded pending (models/workqueue.py), not run.  It runs when
``inet_frags_fini`` waits for its ``f`` (the waiter sleeps while kworkers run it): the work
destroys the rhashtable (an empty one: freeing queued fragments, ``inet_frags_free_cb``, is not
modelled), then the fqdir free work (6.1: ``queue_work(system_wq)``; 6.12: a delayed work, one
second later) drops the reference on ``f`` — the last completes ``f->completion`` — and kfrees
the fqdir.  6.12.118 exports ``fqdir_pre_exit`` (an inline that only wrote high_thresh and dead
before the December 2025 stable fix): high_thresh 0, dead true, then it flushes every queue of
the table (none in an empty table).

Layouts (Debian 6.1 amd64 BTF, the same in 6.12): ``struct inet_frags`` qsize 0,
frags_cachep 32, frags_cache_name 40, rhash_params 48, refcnt 88, completion 96; ``struct
completion`` done 0, wait 8; ``struct swait_queue_head`` lock 0, task_list 8; ``struct fqdir``
high_thresh 0, f 24, net 32, dead 40, rhashtable 64, destroy_work 264 (320 bytes).
"""
from __future__ import annotations

from ..errors import BudgetExceeded, Unmodelled
from ..layouts import layout
from ..registry import data, model
from .locking import init_list_head
from .slab import GFP_ZERO, _cache_create, _kfree, kmalloc_flags, kmem_cache_destroy

LAYOUT = layout("inet")

ENOMEM = 12
IF_QSIZE, IF_CACHEP, IF_CACHE_NAME, IF_REFCNT, IF_COMPLETION = 0, 32, 40, 88, 96
COMP_DONE, COMP_WAIT, SWQ_LOCK, SWQ_LIST = 0, 8, 0, 8


@model("inet_frags_init")
def inet_frags_init(emu, f):
    name = emu.read_u(f + IF_CACHE_NAME, 8)
    cache = _cache_create(emu, name, emu.read_u(f + IF_QSIZE, 4), 0, 0, 0)
    emu.write_u(f + IF_CACHEP, 8, cache)
    if not cache:
        return -ENOMEM
    emu.write_u(f + IF_REFCNT, 4, 1)
    c = f + IF_COMPLETION
    emu.write_u(c + COMP_DONE, 4, 0)
    emu.write_u(c + COMP_WAIT + SWQ_LOCK, 4, 0)
    init_list_head(emu, c + COMP_WAIT + SWQ_LIST)
    emu.note(emu.cstr(name, 64).decode("latin-1"))
    return 0


@model("inet_frags_fini")
def inet_frags_fini(emu, f):
    _run_fqdir_work(emu, f)                     # kworkers run it while fini waits
    n = emu.read_u(f + IF_REFCNT, 4)
    emu.write_u(f + IF_REFCNT, 4, n - 1)
    c = f + IF_COMPLETION
    if n == 1:
        emu.write_u(c + COMP_DONE, 4, emu.read_u(c + COMP_DONE, 4) + 1)
    if not emu.read_u(c + COMP_DONE, 4):
        raise BudgetExceeded(emu.what, seconds=emu.timeout_s,
                             where="inet_frags_fini (waits for namespaces still using it)")
    emu.write_u(c + COMP_DONE, 4, emu.read_u(c + COMP_DONE, 4) - 1)   # wait_for_completion
    kmem_cache_destroy(emu, emu.read_u(f + IF_CACHEP, 8))
    emu.write_u(f + IF_CACHEP, 8, 0)


# --- fqdir: a namespace's fragment queues ------------------------------------------------------
def _fqdir_work_fn(emu, work):
    raise Unmodelled("fqdir_work_fn (run by a kworker, not inside a module's call)",
                     what=emu.what)


def _inet_frag_wq(emu) -> int:
    """The kernel's ``inet_frag_wq`` (create_workqueue at boot, not exported): an object of
    the emulator's memory, named like the system queues."""
    wqs = emu.__dict__.setdefault("_system_wqs", {})
    if "inet_frag_wq" not in wqs:
        from .workqueue import WQ_STRUCT_SIZE
        wqs["inet_frag_wq"] = emu.priv_alloc(WQ_STRUCT_SIZE)
    return wqs["inet_frag_wq"]


@model("fqdir_init")
def fqdir_init(emu, fqdirp, f, net):
    from .rhashtable import init_table
    o = LAYOUT.of(emu)
    fq = kmalloc_flags(emu, o["fqdir", "sizeof"], GFP_ZERO)
    if not fq:
        return -ENOMEM
    emu.write_u(fq + o["fqdir", "f"], 8, f)
    emu.write_u(fq + o["fqdir", "net"], 8, net)
    res = init_table(emu, fq + o["fqdir", "rhashtable"], f + o["inet_frags", "rhash_params"])
    if res < 0:
        _kfree(emu, fq)
        return res
    r = f + o["inet_frags", "refcnt"]
    emu.write_u(r, 4, emu.read_u(r, 4) + 1)
    emu.write_u(fqdirp, 8, fq)
    return 0


@model("fqdir_pre_exit")
def fqdir_pre_exit(emu, fq):
    from .rhashtable import table_objects
    o = LAYOUT.of(emu)
    emu.write_u(fq + o["fqdir", "high_thresh"], 8, 0)
    emu.write_u(fq + o["fqdir", "dead"], 1, 1)
    if table_objects(emu, fq + o["fqdir", "rhashtable"]):
        raise Unmodelled("fqdir_pre_exit (flushing queued fragments: inet_frag_queue_flush)",
                         what=emu.what)


@model("fqdir_exit")
def fqdir_exit(emu, fq):
    from .rhashtable import kernel_fn, work_no_pool
    from .workqueue import _queue
    o = LAYOUT.of(emu)
    w = fq + o["fqdir", "destroy_work"]
    emu.write_u(w + o["work_struct", "data"], 8, work_no_pool(emu))     # INIT_WORK
    init_list_head(emu, w + o["work_struct", "entry"])
    emu.write_u(w + o["work_struct", "func"], 8, kernel_fn(emu, "fqdir_work_fn", _fqdir_work_fn))
    _queue(emu, _inet_frag_wq(emu), w)


def _run_fqdir_work(emu, f: int) -> None:
    """Run the pending ``fqdir_work_fn`` items of fqdirs of ``f`` (and the free work each
    queues): destroy the empty table, drop the reference on ``f``, kfree the fqdir."""
    from .rhashtable import free_and_destroy, kernel_fn, table_objects
    from .workqueue import _cancel, _work
    o = LAYOUT.of(emu)
    fn = kernel_fn(emu, "fqdir_work_fn", _fqdir_work_fn)
    for key, w in list(_work(emu).items()):
        fq = int(key) - o["fqdir", "destroy_work"]
        if w["func"] != fn or emu.read_u(fq + o["fqdir", "f"], 8) != f:
            continue
        ht = fq + o["fqdir", "rhashtable"]
        if table_objects(emu, ht):
            raise Unmodelled("fqdir_work_fn (freeing queued fragments: inet_frags_free_cb)",
                             what=emu.what)
        _cancel(emu, int(key))                  # taken off the queue: it runs now
        free_and_destroy(emu, ht, 0, 0)
        r = f + o["inet_frags", "refcnt"]
        n = emu.read_u(r, 4)
        emu.write_u(r, 4, n - 1)                # fqdir_free_fn: refcount_dec_and_test
        if n == 1:
            c = f + o["inet_frags", "completion"] + o["completion", "done"]
            emu.write_u(c, 4, emu.read_u(c, 4) + 1)
        _kfree(emu, fq)


@data("udp_tunnel_nic_ops", 8, persist=True)
def udp_tunnel_nic_ops(emu) -> bytes:
    """net/core/dev.c's ``const struct udp_tunnel_nic_ops *udp_tunnel_nic_ops``: NULL at boot
    (udp_tunnel is a module on Debian); udp_tunnel's init installs its ops and exit clears
    them, and drivers read it to find them: the variable keeps what they wrote."""
    return bytes(8)
