"""IP fragment reassembly set-up (net/ipv4/inet_fragment.c): ``inet_frags_init`` and
``inet_frags_fini``, which IPv4/IPv6 defragmentation, 6LoWPAN and nf_defrag call at init/exit.

``inet_frags_init`` creates the frag queues' slab cache (``kmem_cache_create(
f->frags_cache_name, f->qsize, 0, 0, NULL)``; NULL → -ENOMEM), sets ``f->refcnt`` to 1 and
initialises ``f->completion`` (done 0, an empty simple wait queue).  ``inet_frags_fini`` drops
that reference — the last one completes the completion — waits for it (with no namespace
holding a reference, which the sandbox's one namespace does only while its pernet init has run
and not exited: then waiting would never end and is a hang), destroys the cache and clears
``frags_cachep``.

Layouts (Debian 6.1 amd64 BTF, the same in 6.12): ``struct inet_frags`` qsize 0,
frags_cachep 32, frags_cache_name 40, refcnt 88, completion 96; ``struct completion`` done 0,
wait 8; ``struct swait_queue_head`` lock 0, task_list 8.
"""
from __future__ import annotations

from ..errors import BudgetExceeded
from ..registry import data, model
from .locking import init_list_head
from .slab import _cache_create, kmem_cache_destroy

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


@data("udp_tunnel_nic_ops", 8, persist=True)
def udp_tunnel_nic_ops(emu) -> bytes:
    """net/core/dev.c's ``const struct udp_tunnel_nic_ops *udp_tunnel_nic_ops``: NULL at boot
    (udp_tunnel is a module on Debian); udp_tunnel's init installs its ops and exit clears
    them, and drivers read it to find them: the variable keeps what they wrote."""
    return bytes(8)
