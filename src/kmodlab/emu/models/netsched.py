"""Traffic control registries (net/sched/sch_api.c, cls_api.c, act_api.c, ematch.c): queueing
disciplines, classifiers, actions and extended matches a module adds.

Each registry is a list the kernel walks by name (or kind/id); the module's ops go on it and
exit's unregister takes them off.  The lists' heads (``qdisc_base``, ``tcf_proto_base``,
``act_base``, ``ematch_ops``) are static in vmlinux at addresses the profile does not know, so
the ops' own link fields into them are not written (module code never reads them); the
registrations are ``emu.state["net_sched"][<registry>]``.  What the built-in kernel has on
the lists (pfifo, bfifo, pfifo_fast, mq, noqueue …) never shares a name with a module of the
same tree — a qdisc is built in or a module, not both.  As Linux 6.1 and 6.12 do it:

- ``register_qdisc``: an id already listed → -EEXIST; a missing ``peek`` with a ``dequeue``
  → -EINVAL; class ops without find/walk/leaf, or with ``tcf_block`` but without
  bind_tcf/unbind_tcf → -EINVAL.  A missing enqueue/dequeue/peek is filled from
  ``noop_qdisc_ops``, a static object whose functions' addresses the profile does not know:
  that case stops as Unmodelled.  ``unregister_qdisc`` of one not listed → -ENOENT.
- ``register_tcf_proto_ops``: a kind already listed → -EEXIST.
- ``tcf_register_action``: no act/dump/init → -EINVAL; the action's pernet operations are
  registered first (net.py's register_pernet_subsys: its init runs for init_net); an id or a
  kind already listed → -EEXIST (and the pernet operations are unregistered again).
- ``tcf_em_register``: no ``match`` → -EINVAL; a kind (a number) already listed → -EEXIST.

Nothing is logged by any of them.  Offsets are this kernel's, from its BTF (emu/layouts.py).
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..layouts import layout
from ..registry import model

EINVAL, EEXIST, ENOENT = 22, 17, 2
LAYOUT = layout("netsched")
IFNAMSIZ = 16


def _o(emu, struct: str, member: str) -> int:
    return LAYOUT.of(emu)[struct, member]


def _reg(emu, kind: str) -> dict:
    return emu.state.setdefault("net_sched", {}).setdefault(kind, {})


def _p(emu, base: int, struct: str, member: str) -> int:
    return emu.read_u(base + _o(emu, struct, member), 8)


@model("register_qdisc")
def register_qdisc(emu, qops):
    qid = emu.read(qops + _o(emu, "Qdisc_ops", "id"), IFNAMSIZ).split(b"\0")[0].decode("latin-1")
    qdiscs = _reg(emu, "qdisc")
    if qid in qdiscs:
        return -EEXIST
    enq, deq, peek = (_p(emu, qops, "Qdisc_ops", m) for m in ("enqueue", "dequeue", "peek"))
    if not peek and deq:
        return -EINVAL
    if not (enq and deq and peek):
        raise Unmodelled("register_qdisc (noop_qdisc_ops' functions fill in a missing "
                         "enqueue/dequeue/peek: their addresses are not in the profile)",
                         what=emu.what)
    cops = _p(emu, qops, "Qdisc_ops", "cl_ops")
    if cops:
        if not all(_p(emu, cops, "Qdisc_class_ops", m) for m in ("find", "walk", "leaf")):
            return -EINVAL
        if _p(emu, cops, "Qdisc_class_ops", "tcf_block") and not (
                _p(emu, cops, "Qdisc_class_ops", "bind_tcf")
                and _p(emu, cops, "Qdisc_class_ops", "unbind_tcf")):
            return -EINVAL
    emu.write_u(qops + _o(emu, "Qdisc_ops", "next"), 8, 0)
    qdiscs[qid] = qops
    emu.note(qid)
    return 0


@model("unregister_qdisc")
def unregister_qdisc(emu, qops):
    for qid, q in list(_reg(emu, "qdisc").items()):
        if q == qops:
            del _reg(emu, "qdisc")[qid]
            emu.write_u(qops + _o(emu, "Qdisc_ops", "next"), 8, 0)
            return 0
    return -ENOENT


def _kind(emu, ops: int, struct: str) -> str:
    """``char kind[IFNAMSIZ]`` of a classifier's or an action's ops."""
    a = ops + _o(emu, struct, "kind")
    return emu.read(a, IFNAMSIZ).split(b"\0")[0].decode("latin-1")


@model("register_tcf_proto_ops")
def register_tcf_proto_ops(emu, ops):
    kind = _kind(emu, ops, "tcf_proto_ops")
    if kind in _reg(emu, "cls"):
        return -EEXIST
    _reg(emu, "cls")[kind] = ops
    emu.note(kind)
    return 0


@model("unregister_tcf_proto_ops")
def unregister_tcf_proto_ops(emu, ops):
    for kind, o in list(_reg(emu, "cls").items()):
        if o == ops:
            del _reg(emu, "cls")[kind]
            return
    emu.printk(4, "WARNING: CPU: 0 at net/sched/cls_api.c unregister_tcf_proto_ops\n")


def _pernet(emu, name: str):
    why = emu.layout_refusal("net")
    if why is not None:
        raise Unmodelled(f"{name} ({why})", what=emu.what)
    from . import net
    return net


@model("tcf_register_action")
def tcf_register_action(emu, act, ops):
    if not all(_p(emu, act, "tc_action_ops", m) for m in ("act", "dump", "init")):
        return -EINVAL
    net = _pernet(emu, "tcf_register_action")
    ret = net.register_pernet_subsys(emu, ops)
    if ret:
        return ret
    kind = _kind(emu, act, "tc_action_ops")
    aid = emu.read_u(act + _o(emu, "tc_action_ops", "id"), 4)
    acts = _reg(emu, "act")
    if kind in acts or any(a["id"] == aid for a in acts.values()):
        net.unregister_pernet_device(emu, ops)
        return -EEXIST
    acts[kind] = {"ops": act, "id": aid, "pernet": ops}
    emu.note(kind)
    return 0


@model("tcf_unregister_action")
def tcf_unregister_action(emu, act, ops):
    for kind, a in list(_reg(emu, "act").items()):
        if a["ops"] == act:
            del _reg(emu, "act")[kind]
            _pernet(emu, "tcf_unregister_action").unregister_pernet_device(emu, ops)
            return 0
    return -ENOENT


@model("tcf_em_register")
def tcf_em_register(emu, ops):
    if not _p(emu, ops, "tcf_ematch_ops", "match"):
        return -EINVAL
    kind = str(emu.read_u(ops + _o(emu, "tcf_ematch_ops", "kind"), 4))
    if kind in _reg(emu, "ematch"):
        return -EEXIST
    _reg(emu, "ematch")[kind] = ops
    emu.note(f"ematch kind {kind}")
    return 0


@model("tcf_em_unregister")
def tcf_em_unregister(emu, ops):
    for kind, o in list(_reg(emu, "ematch").items()):
        if o == ops:
            del _reg(emu, "ematch")[kind]
