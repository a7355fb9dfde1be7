"""Networking registries (net/core/rtnetlink.c, net/ethtool/common.c, net/core/
net_namespace.c, net/core/dev.c, net/core/sock.c, net/socket.c).

**The sandbox machine has no network devices, not even ``lo``** (see the netdevice notifier
section below): registering a netdevice notifier replays nothing.

- ``rtnl_link_register``: the kernel WARNs and returns -EINVAL when ``maxtype`` or
  ``slave_maxtype`` exceed RTNL_MAX_TYPE/RTNL_SLAVE_MAX_TYPE (its stack buffers' sizes: 50/40
  in 6.1, 50/44 in 6.12),
  -EEXIST when a link kind of that name is registered, fills in ``dellink`` (with
  ``unregister_netdevice_queue``) when the ops can create devices but have no dellink, and
  lists the ops in ``emu.state["rtnl_link"]``; the ``list`` link into the kernel's static
  ``link_ops`` is not written (its address is not in the profile).  ``rtnl_link_unregister``
  would destroy the devices of that kind in every namespace — the sandbox has created none —
  and unlists.
- ``ethtool_set_ethtool_phy_ops``: the single phy-ops pointer ethtool calls (set by libphy),
  kept in ``emu.state["ethtool_phy_ops"]``.
- ``rtnl_lock``/``rtnl_unlock``: the RTNL mutex, recorded as held in the emulator (taking it
  twice is the hang it is).

Every struct offset is read from the running kernel's BTF (emu/layouts.py, ``LAYOUT.of(emu)``):
the same models serve Linux 6.1 and 6.12 (6.12's ``struct pernet_operations`` gained
``exit_rtnl``, its ``struct net`` moved ``gen``).  Debian 6.1 amd64's values, for reference:
``struct rtnl_link_ops`` list 0, kind 16, priv_size 24, alloc 32, setup 40, netns_refund 48,
maxtype 52, policy 56, validate 64, newlink 72, changelink 80, dellink 88, …,
get_num_rx_queues 136, slave_maxtype 144.
"""
from __future__ import annotations

from ..errors import BudgetExceeded, Unmodelled
from ..layouts import layout
from ..registry import data, data_field, model

EINVAL, EEXIST = 22, 17
LAYOUT = layout("net")


def _o(emu, struct: str, member: str) -> int:
    return LAYOUT.of(emu)[struct, member]


def _opt(emu, struct: str, member: str) -> int | None:
    """The offset of a member one of the kernels lacks (6.12's pernet_operations.exit_rtnl),
    None where this kernel has no such member."""
    try:
        return LAYOUT.of(emu)[struct, member]
    except Unmodelled:
        return None


def require_init_net(emu, net: int, fn: str) -> None:
    """The machine has one network namespace: ``fn`` on another stops by name."""
    if net != emu.export_addr("init_net"):
        raise Unmodelled(f"{fn} (a network namespace other than init_net)", what=emu.what)


def _rtnl_max_types(emu) -> tuple[int, int]:
    """RTNL_MAX_TYPE / RTNL_SLAVE_MAX_TYPE of net/core/rtnetlink.c: 50/40 in 6.1, 50/44 in
    6.12 (its stack buffers' sizes)."""
    return (50, 44) if emu.kernel_version >= (6, 12) else (50, 40)


@model("rtnl_lock")
def rtnl_lock(emu):
    if getattr(emu, "rtnl_held", False):
        raise BudgetExceeded(emu.what, seconds=emu.timeout_s,
                             where="rtnl_lock (RTNL already held by this task)")
    emu.rtnl_held = True


@model("rtnl_unlock")
def rtnl_unlock(emu):
    emu.rtnl_held = False


@model("rtnl_is_locked")
def rtnl_is_locked(emu):
    return int(getattr(emu, "rtnl_held", False))


def _links(emu) -> dict:
    return emu.state.setdefault("rtnl_link", {})


def _register(emu, ops: int) -> int:
    kind = emu.cstr(emu.read_u(ops + _o(emu, "rtnl_link_ops", "kind"), 8), 64).decode("latin-1")
    if kind in _links(emu):
        return -EEXIST
    dellink = ops + _o(emu, "rtnl_link_ops", "dellink")
    if (emu.read_u(ops + _o(emu, "rtnl_link_ops", "alloc"), 8)
            or emu.read_u(ops + _o(emu, "rtnl_link_ops", "setup"), 8)) and \
            not emu.read_u(dellink, 8):
        emu.write_u(dellink, 8, emu.export_addr("unregister_netdevice_queue") or 0)
    _links(emu)[kind] = {"ops": ops}
    emu.note(kind)
    return 0


@model("rtnl_link_register")
def rtnl_link_register(emu, ops):
    max_type, slave_max_type = _rtnl_max_types(emu)
    if (emu.read_u(ops + _o(emu, "rtnl_link_ops", "maxtype"), 4) > max_type
            or emu.read_u(ops + _o(emu, "rtnl_link_ops", "slave_maxtype"), 4) > slave_max_type):
        emu.printk(4, "WARNING: CPU: 0 at net/core/rtnetlink.c rtnl_link_register\n")
        return -EINVAL
    return _register(emu, ops)


@model("__rtnl_link_register")
def __rtnl_link_register(emu, ops):
    return _register(emu, ops)


def _unregister(emu, ops: int) -> None:
    for kind, l in list(_links(emu).items()):
        if l["ops"] == ops:
            del _links(emu)[kind]


@model("rtnl_link_unregister")
def rtnl_link_unregister(emu, ops):
    _unregister(emu, ops)


@model("__rtnl_link_unregister")
def __rtnl_link_unregister(emu, ops):
    _unregister(emu, ops)


@model("ethtool_set_ethtool_phy_ops")
def ethtool_set_ethtool_phy_ops(emu, ops):
    emu.state["ethtool_phy_ops"] = ops


@data("pernet_ops_rwsem", 40)
def pernet_ops_rwsem(emu) -> bytes:
    """net/core/net_namespace.c's rw_semaphore (6.1: count 0, owner 8, osq 16, wait_lock 20,
    wait_list 24): unlocked, no waiters — the list head points at itself."""
    a = emu.export_addr("pernet_ops_rwsem")
    wl = _o(emu, "rw_semaphore", "wait_list")
    out = bytearray(_o(emu, "rw_semaphore", "sizeof"))
    out[wl:wl + 16] = (a + wl).to_bytes(8, "little") * 2
    return bytes(out)


# --- network namespace operations (net/core/net_namespace.c) -------------------------------------
# struct pernet_operations (Debian 6.1 amd64, checked on ppp_generic's ppp_net_ops): list 0,
# init 16, pre_exit 24, exit 32, exit_batch 40, exit_batch_rtnl 48 (backported), id 56, size 64;
# 6.12 adds exit_rtnl (48) before exit_batch_rtnl (56), id 64, size 72.
MIN_PERNET_OPS_ID = 4          # (offsetof(struct net_generic, ptr) / sizeof(void *)) + 1


def _pernet(emu) -> list:
    return emu.state.setdefault("pernet", [])


# init_net.gen (struct net, Debian 6.1 amd64 BTF: gen at 3144; 6.12's at its own offset) points at a struct net_generic
# {s.len 0, s.rcu 8; ptr[] 0}: net_generic(net, id) — an inline in module code — reads
# gen->ptr[id].  The boot kernel's array (its len, the built-in subsystems' pointers) is not
# known; the sandbox's array holds the module-registered ids' pointers only (the other slots
# read 0 and no module reads them).  It starts as an empty array in the emulator's private
# memory; the first per-namespace allocation moves it to the heap, as net_assign_generic
# reallocates the kernel's, and ``emu.state["net_generic"]`` keeps its address.
NET_GEN_61 = 3144         # the data_field's place in 6.1; init_net_gen_612 serves 6.12's


@data_field("init_net", NET_GEN_61, 8, member=("net", "gen"))
def init_net_gen(emu) -> bytes:
    gen = emu.state.get("net_generic")
    if gen is None:
        gen = emu.priv_alloc(8 * MIN_PERNET_OPS_ID, 8)
    return gen.to_bytes(8, "little")


def _net_assign_generic(emu, ident: int, data: int) -> None:
    net = emu.export_addr("init_net")
    ngen = net + _o(emu, "net", "gen")
    old = emu.read_u(ngen, 8)
    n = max([ident + 1, MIN_PERNET_OPS_ID] +
            [p["id"] + 1 for p in _pernet(emu) if p.get("id") is not None])
    gen = emu.state.get("net_generic")
    have = emu.state.get("net_generic_len", 0)
    if gen is None or n > have:
        new = emu.kmalloc(8 * n, zero=True)
        emu.write(new, emu.read(old, 8 * (have or MIN_PERNET_OPS_ID)))
        emu.write_u(new, 4, n)                             # s.len
        if gen is not None:
            emu.kfree(gen)
        emu.state["net_generic"], emu.state["net_generic_len"] = new, n
        emu.write_u(ngen, 8, new)
        gen = new
    emu.write_u(gen + 8 * ident, 8, data)


def _register_pernet(emu, ops: int, kind: str) -> int:
    """The sandbox has one namespace, init_net.  An ``id`` is allocated from net_generic_ids
    (the first free one from MIN_PERNET_OPS_ID; the kernel's own users hold lower ones at boot
    — which ids exactly is not known, so the value is the sandbox's); with a ``size`` a zeroed
    block is hung off ``init_net.gen`` at that id (ops_init); ``ops->init(&init_net)`` runs as
    a callback into the module (its accesses to init_net's fields are unmodelled data and say
    so, except the modelled ``gen`` and ``proc_net``); an init error frees the block."""
    idp = emu.read_u(ops + _o(emu, "pernet_operations", "id"), 8)
    size = emu.read_u(ops + _o(emu, "pernet_operations", "size"), 8)
    if any(p["ops"] == ops for p in _pernet(emu)):
        return -EEXIST
    ident = None
    if idp:
        used = {p["id"] for p in _pernet(emu) if p.get("id") is not None}
        ident = next(i for i in range(MIN_PERNET_OPS_ID, 1 << 16) if i not in used)
        emu.write_u(idp, 4, ident)
    net = emu.export_addr("init_net")
    block = 0
    if idp and size:
        block = emu.kmalloc(size, zero=True)
        _net_assign_generic(emu, ident, block)
    init = emu.read_u(ops + _o(emu, "pernet_operations", "init"), 8)
    if init:
        err = emu.call_module(init, (net,)) & 0xFFFFFFFF
        err = err - (1 << 32) if err & 0x80000000 else err
        if err:
            if block:
                emu.kfree(block)
                _net_assign_generic(emu, ident, 0)
            return err
    _pernet(emu).append({"ops": ops, "kind": kind, "id": ident, "data": block})
    emu.note(f"{kind}: {emu.symbol(init) if init else 'no init'}"
             + (f", {size} bytes at id {ident}" if block else ""))
    return 0


def _unregister_pernet(emu, ops: int) -> None:
    """free_exit_list over the one namespace there is: ``pre_exit(&init_net)``, then (after
    synchronize_rcu) ``exit(&init_net)`` and ``exit_batch(net_exit_list)`` — a list holding
    init_net's ``exit_list`` node, as __unregister_pernet_operations builds it — then the
    per-namespace block is freed.  The rtnl variants (6.1's backported exit_batch_rtnl, 6.12's
    exit_rtnl) hand the module a list of devices to kill, which is not modelled."""
    entries = [p for p in _pernet(emu) if p["ops"] == ops]
    if not entries:
        return
    net = emu.export_addr("init_net")
    rtnl = [m for m in ("exit_batch_rtnl", "exit_rtnl")
            if (off := _opt(emu, "pernet_operations", m)) is not None
            and emu.read_u(ops + off, 8)]
    if rtnl:
        raise Unmodelled(f"unregister_pernet_operations ({rtnl[0]}: the list of devices to "
                         "kill)", what=emu.what)
    for m in ("pre_exit", "exit"):                      # free_exit_list's order
        fn = emu.read_u(ops + _o(emu, "pernet_operations", m), 8)
        if fn:
            emu.call_module(fn, (net,))
    batch = emu.read_u(ops + _o(emu, "pernet_operations", "exit_batch"), 8)
    if batch:
        node = net + _o(emu, "net", "exit_list")
        head = emu.priv_alloc(16, 8)
        emu.write_u(head, 8, node)
        emu.write_u(head + 8, 8, node)
        emu.write_u(node, 8, head)
        emu.write_u(node + 8, 8, head)
        emu.call_module(batch, (head,))
        emu.write(node, bytes(16))                      # init_net is on no exit list again
    if entries[0].get("data"):                          # ops_free
        emu.kfree(entries[0]["data"])
        _net_assign_generic(emu, entries[0]["id"], 0)
    _pernet(emu).remove(entries[0])


@data_field("init_net", 88, 8, member=("net", "user_ns"))
def init_net_user_ns(emu) -> bytes:
    """init_net.user_ns (6.1: 88): the initial user namespace, &init_user_ns."""
    return (emu.export_addr("init_user_ns") or 0).to_bytes(8, "little")


@data_field("init_net", 48, 16, member=("net", "exit_list"))
def init_net_exit_list(emu) -> bytes:
    """init_net.exit_list (6.1: 48): on no list (zero) but while unregister_pernet_operations
    hands it to an ``exit_batch`` (above)."""
    return bytes(16)


@model("register_pernet_device")
def register_pernet_device(emu, ops):
    return _register_pernet(emu, ops, "device")


@model("register_pernet_subsys")
def register_pernet_subsys(emu, ops):
    return _register_pernet(emu, ops, "subsys")


@model("unregister_pernet_device", "unregister_pernet_subsys")
def unregister_pernet_device(emu, ops):
    _unregister_pernet(emu, ops)


# --- netdevice notifiers (net/core/dev.c) ---------------------------------------------------------
# **The sandbox machine has no network devices — not even ``lo``.**  init_net's loopback device
# (and its struct net_device, whose ~2.5 KB of fields a notifier may read) is not modelled, and
# no model creates a net_device; ``emu.state["netdevs"]`` (a list of {"dev", "net", "up"},
# empty on every machine today) is the device list the replay walks.  So on this machine
# registering a netdevice notifier calls the notifier zero times, as a real kernel without
# network devices would.  The replay itself is the kernel's (call_netdevice_register_net_
# notifiers): for each device NETDEV_REGISTER, then NETDEV_UP if it is up; a notifier's error
# (notifier_to_errno) rolls back the devices already announced (NETDEV_GOING_DOWN, NETDEV_DOWN
# if up, NETDEV_UNREGISTER), unchains the block and is returned.  Unregistering announces the
# same three events for every device.  The chain is ``emu.state["notifiers"]["netdev"]``
# (``netdev@<net>`` for the per-namespace chains); a block already on it → the kernel's
# "notifier callback %ps already registered" warning and -EEXIST; unregistering one that is not
# → -ENOENT.  Both take the RTNL (held already by this task: the hang it is).
# struct netdev_notifier_info (Debian 6.1 amd64 BTF): dev 0, extack 8 (16 bytes).
NETDEV_UP, NETDEV_DOWN, NETDEV_REGISTER, NETDEV_UNREGISTER, NETDEV_GOING_DOWN = 1, 2, 5, 6, 10
NOTIFY_OK, NOTIFY_STOP_MASK = 1, 0x8000
ENOENT = 2


def notifier_to_errno(ret: int) -> int:
    ret = (ret & 0xFFFFFFFF) & ~NOTIFY_STOP_MASK
    ret = ret - (1 << 32) if ret & 0x80000000 else ret
    return NOTIFY_OK - ret if ret > NOTIFY_OK else 0


def _netdevs(emu, net: int | None = None) -> list:
    return [d for d in emu.state.get("netdevs", []) if net is None or d.get("net") == net]


def _nd_call(emu, nb: int, event: int, dev: int) -> int:
    info = emu.priv_alloc(_o(emu, "netdev_notifier_info", "sizeof"), 8)
    emu.write_u(info + _o(emu, "netdev_notifier_info", "dev"), 8, dev)
    emu.write_u(info + _o(emu, "netdev_notifier_info", "extack"), 8, 0)
    return emu.call_module(emu.read_u(nb, 8), (nb, event, info))


def _nd_unannounce(emu, nb: int, d: dict) -> None:
    if d.get("up"):
        _nd_call(emu, nb, NETDEV_GOING_DOWN, d["dev"])
        _nd_call(emu, nb, NETDEV_DOWN, d["dev"])
    _nd_call(emu, nb, NETDEV_UNREGISTER, d["dev"])


def _nd_register(emu, chain: str, nb: int, net: int | None) -> int:
    rtnl_lock(emu)
    try:
        blocks = emu.state.setdefault("notifiers", {}).setdefault(chain, [])
        if nb in blocks:
            emu.printk(4, f"notifier callback {emu.symbol(emu.read_u(nb, 8))} already "
                          "registered\n")
            return -EEXIST
        blocks.append(nb)
        done: list = []
        for d in _netdevs(emu, net):
            err = notifier_to_errno(_nd_call(emu, nb, NETDEV_REGISTER, d["dev"]))
            if err:
                for prev in reversed(done):
                    _nd_unannounce(emu, nb, prev)
                blocks.remove(nb)
                return err
            if d.get("up"):
                _nd_call(emu, nb, NETDEV_UP, d["dev"])
            done.append(d)
        emu.note(f"{chain}: {emu.symbol(emu.read_u(nb, 8))}, {len(done)} device(s) replayed")
        return 0
    finally:
        rtnl_unlock(emu)


def _nd_unregister(emu, chain: str, nb: int, net: int | None) -> int:
    rtnl_lock(emu)
    try:
        blocks = emu.state.setdefault("notifiers", {}).setdefault(chain, [])
        if nb not in blocks:
            return -ENOENT
        blocks.remove(nb)
        for d in _netdevs(emu, net):
            _nd_unannounce(emu, nb, d)
        return 0
    finally:
        rtnl_unlock(emu)


@model("register_netdevice_notifier")
def register_netdevice_notifier(emu, nb):
    return _nd_register(emu, "netdev", nb, None)


@model("unregister_netdevice_notifier")
def unregister_netdevice_notifier(emu, nb):
    return _nd_unregister(emu, "netdev", nb, None)


@model("register_netdevice_notifier_net")
def register_netdevice_notifier_net(emu, net, nb):
    return _nd_register(emu, f"netdev@{net:#x}", nb, net)


@model("unregister_netdevice_notifier_net")
def unregister_netdevice_notifier_net(emu, net, nb):
    return _nd_unregister(emu, f"netdev@{net:#x}", nb, net)


# --- socket protocols (net/core/sock.c) -----------------------------------------------------------
# struct proto (Debian 6.1 amd64 BTF, 464 bytes): inuse_idx 224, slab 344, obj_size 352,
# slab_flags 356, useroffset 360, usersize 364, rsk_prot 376, twsk_prot 384, owner 400,
# name 408 (char[32]), node 440.  proto_register(prot, alloc_slab): with alloc_slab a
# SLAB_HWCACHE_ALIGN cache named prot->name of obj_size bytes (NULL → "%s: Can't create sock
# SLAB cache!" and -ENOBUFS); then assign_proto_idx under proto_list_mutex: the first clear bit
# of proto_inuse_idx (PROTO_INUSE_NR 64; the last index means "exhausted": "PROTO_INUSE_NR
# exhausted", -ENOSPC) into prot->inuse_idx.  The kernel's own protocols (tcp, udp, raw, unix,
# netlink, packet …) hold some low indices from boot — which ones is not known, so the index is
# the sandbox's, counted from 0 over module-registered protocols.  The ``node`` link into the
# kernel's static proto_list (address not in the profile) is not written; the registry is
# ``emu.state["proto"]``.  The kernel does not check for a double registration (it would
# list_add a listed node, which CONFIG_DEBUG_LIST reports): the sandbox stops there as
# Unmodelled.  request/timewait sock caches (rsk_prot/twsk_prot, TCP/DCCP-style protocols) are
# not modelled.
PROTO_INUSE_NR = 64
SLAB_HWCACHE_ALIGN = 0x2000
ENOBUFS, ENOSPC = 105, 28


def _protos(emu) -> dict:
    return emu.state.setdefault("proto", {})


@model("proto_register")
def proto_register(emu, prot, alloc_slab):
    from .slab import kmem_cache_create_usercopy
    pr = LAYOUT.of(emu)
    name = emu.cstr(prot + pr["proto", "name"], 32).decode("latin-1")
    if str(prot) in _protos(emu):
        raise Unmodelled(f"proto_register (struct proto {name} registered twice: list_add of "
                         "a listed node)", what=emu.what)
    slab = 0
    if alloc_slab & 0xFFFFFFFF:
        if emu.read_u(prot + pr["proto", "rsk_prot"], 8) or \
                emu.read_u(prot + pr["proto", "twsk_prot"], 8):
            raise Unmodelled(f"proto_register ({name}: request/timewait sock caches)",
                             what=emu.what)
        slab = kmem_cache_create_usercopy(
            emu, prot + pr["proto", "name"], emu.read_u(prot + pr["proto", "obj_size"], 4), 0,
            SLAB_HWCACHE_ALIGN | emu.read_u(prot + pr["proto", "slab_flags"], 4),
            emu.read_u(prot + pr["proto", "useroffset"], 4),
            emu.read_u(prot + pr["proto", "usersize"], 4), 0)
        if not slab:
            emu.printk(2, f"{name}: Can't create sock SLAB cache!\n")
            return -ENOBUFS
        emu.write_u(prot + pr["proto", "slab"], 8, slab)
    used = {p["idx"] for p in _protos(emu).values()}
    idx = next(i for i in range(PROTO_INUSE_NR) if i not in used)
    if idx == PROTO_INUSE_NR - 1:
        emu.printk(3, "PROTO_INUSE_NR exhausted\n")
        if slab:
            from .slab import kmem_cache_destroy
            kmem_cache_destroy(emu, slab)
            emu.write_u(prot + pr["proto", "slab"], 8, 0)
        return -ENOSPC
    emu.write_u(prot + pr["proto", "inuse_idx"], 4, idx)
    _protos(emu)[str(prot)] = {"name": name, "idx": idx, "slab": slab}
    emu.note(f"{name} (inuse_idx {idx}{', own slab' if slab else ''})")
    return 0


@model("proto_unregister")
def proto_unregister(emu, prot):
    p = _protos(emu).pop(str(prot), None)
    if p is None:
        raise Unmodelled("proto_unregister (struct proto not registered: list_del of an "
                         "unlisted node)", what=emu.what)
    slab = emu.read_u(prot + _o(emu, "proto", "slab"), 8)
    if slab:
        from .slab import kmem_cache_destroy
        kmem_cache_destroy(emu, slab)
        emu.write_u(prot + _o(emu, "proto", "slab"), 8, 0)


# --- socket families (net/socket.c) ---------------------------------------------------------------
# sock_register(ops): struct net_proto_family {family 0, create 8, owner 16}; a family >= NPROTO
# (AF_MAX, 46 in 6.1) → "protocol %d >= NPROTO(%d)" and -ENOBUFS; a taken slot of net_families
# → -EEXIST; either way (registered or not) "NET: Registered PF_x protocol family" is logged,
# as the kernel does.  Families built into Debian's vmlinux hold their slots from boot
# (CONFIG_UNIX, INET, IPV6, PACKET, XDP_SOCKETS =y, and netlink); the module-registered ones are
# ``emu.state["net_families"]`` (family → ops).  sock_unregister clears the slot and logs
# "NET: Unregistered PF_x protocol family" (a family out of range is the kernel's BUG_ON).
PF_NAMES = ("PF_UNSPEC PF_UNIX PF_INET PF_AX25 PF_IPX PF_APPLETALK PF_NETROM PF_BRIDGE "
            "PF_ATMPVC PF_X25 PF_INET6 PF_ROSE PF_DECnet PF_NETBEUI PF_SECURITY PF_KEY "
            "PF_NETLINK PF_PACKET PF_ASH PF_ECONET PF_ATMSVC PF_RDS PF_SNA PF_IRDA PF_PPPOX "
            "PF_WANPIPE PF_LLC PF_IB PF_MPLS PF_CAN PF_TIPC PF_BLUETOOTH PF_IUCV PF_RXRPC "
            "PF_ISDN PF_PHONET PF_IEEE802154 PF_CAIF PF_ALG PF_NFC PF_VSOCK PF_KCM PF_QIPCRTR "
            "PF_SMC PF_XDP PF_MCTP").split()
NPROTO = len(PF_NAMES)
BUILTIN_FAMILIES = {1, 2, 10, 16, 17, 44}       # unix, inet, inet6, netlink, packet, xdp


def _families(emu) -> dict:
    return emu.state.setdefault("net_families", {})


@model("sock_register")
def sock_register(emu, ops):
    family = emu.read_s(ops, 4)
    if family >= NPROTO:
        emu.printk(2, f"protocol {family} >= NPROTO({NPROTO})\n")
        return -ENOBUFS
    if family in BUILTIN_FAMILIES or str(family) in _families(emu):
        err = -EEXIST
    else:
        _families(emu)[str(family)] = ops
        err = 0
    emu.printk(6, f"NET: Registered {PF_NAMES[family]} protocol family\n")
    emu.note(PF_NAMES[family])
    return err


@model("sock_unregister")
def sock_unregister(emu, family):
    family &= 0xFFFFFFFF
    family = family - (1 << 32) if family & 0x80000000 else family
    if not 0 <= family < NPROTO:
        raise emu.oops([f"kernel BUG at net/socket.c (sock_unregister({family}))",
                        "invalid opcode: 0000 [#1] PREEMPT SMP NOPTI"])
    _families(emu).pop(str(family), None)
    emu.printk(6, f"NET: Unregistered {PF_NAMES[family]} protocol family\n")


# --- packet handlers (net/core/dev.c) -------------------------------------------------------------
# dev_add_pack(pt): struct packet_type (Debian 6.1 amd64 BTF, 72 bytes) type 0 (__be16),
# ignore_outgoing 2, dev 8, func 16, list_func 24, id_match 32, af_packet_net 40,
# af_packet_priv 48, list 56.  ETH_P_ALL handlers go on ptype_all, the others on
# ptype_base[ntohs(type) & 15] (or the device's lists when ``dev`` is set); the heads are the
# kernel's statics (addresses not in the profile), so the ``list`` link is not written and
# ``emu.state["ptype"]`` (address → {type, dev, func}) is the registry.  No packet ever arrives
# on a machine without network devices, so ``func`` is never called.  Adding a listed handler
# again is a list_add of a listed node (CONFIG_DEBUG_LIST + BUG_ON_DATA_CORRUPTION: a BUG) —
# the sandbox stops as Unmodelled; __dev_remove_pack of an unlisted handler logs the kernel's
# "dev_remove_pack: %p not found".  dev_remove_pack = __dev_remove_pack + synchronize_net.


def _ptypes(emu) -> dict:
    return emu.state.setdefault("ptype", {})


@model("dev_add_pack")
def dev_add_pack(emu, pt):
    if str(pt) in _ptypes(emu):
        raise Unmodelled("dev_add_pack (packet_type already listed: list_add of a listed node)",
                         what=emu.what)
    t = emu.read_u(pt + _o(emu, "packet_type", "type"), 2)
    t = ((t & 0xFF) << 8) | (t >> 8)                    # ntohs
    func = emu.read_u(pt + _o(emu, "packet_type", "func"), 8)
    _ptypes(emu)[str(pt)] = {"type": t, "dev": emu.read_u(pt + _o(emu, "packet_type", "dev"), 8),
                             "func": func}
    emu.note(f"type {t:#06x} → {emu.symbol(func)}")


@model("__dev_remove_pack", "dev_remove_pack")
def dev_remove_pack(emu, pt):
    if _ptypes(emu).pop(str(pt), None) is None:
        from .vsprintf import vsprintf
        emu.printk(4, vsprintf(emu, b"dev_remove_pack: %p not found\n", iter([pt])))
