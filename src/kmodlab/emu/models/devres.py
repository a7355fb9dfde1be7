"""Managed device resources (drivers/base/devres.c): devres_alloc/add/free/find/get/remove/
destroy/release, devres groups, and the devm_ allocators and actions built on them.

**The list is the kernel's.**  A resource is a ``struct devres`` on the heap: a
``devres_node`` (``entry`` in the device's ``devres_head``, ``release``, ``name``, ``size``)
then the caller's data (the pointer every devres function takes and returns).  The list lives in
emulated memory, in the device, as the kernel keeps it, so a module that walks it or a later
run of the machine sees the same thing.  Searches (find_dr) walk it from the newest entry and
compare ``release`` then the module's ``match(dev, data, match_data)`` callback.

**Release.**  devres_release_all (driver detach, a failed probe, the device's release) takes the
entries out and calls each ``release(dev, data)`` newest first, then frees it; group markers
are freed with the group (remove_nodes' colouring: a group wholly inside the range goes with
it).  A ``release`` that is module code is called back; the kernel's own (devm_kmalloc_release,
devm_action_release, the group markers) are traps whose addresses persist in the machine state
(rhashtable.kernel_fn), so an entry added in one run is released in a later one.

**Sizes.**  6.1 allocates ``sizeof(struct devres) + size``; 6.2 on rounds that up to the
kmalloc bucket (kmalloc_size_roundup), which devm_krealloc reads back — devm_krealloc is not
modelled.  A size whose sum overflows gives NULL, as check_dr_size does.

**Refused** (Unmodelled by name): the WARN_ON / BUG_ON paths (an entry added twice, a
resource freed while still listed, devm_kfree of memory that is not a devm allocation, a
device whose list was never initialised).
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..layouts import layout
from ..registry import model
from .rhashtable import kernel_fn
from .slab import GFP_ZERO, ZERO_SIZE_PTR, _in_kernel_rodata, kmalloc_flags

ENOMEM, ENOENT, ENODEV = 12, 2, 19
GFP_KERNEL = 0xCC0
NUMA_NO_NODE = -1
MASK64 = (1 << 64) - 1

LAYOUT = layout("devres")
N_ENTRY, N_RELEASE = ("devres_node", "entry"), ("devres_node", "release")
N_NAME, N_SIZE = ("devres_node", "name"), ("devres_node", "size")
DR_DATA = ("devres", "data")
G_NODE, G_ID, G_COLOR, G_SIZE = ("devres_group", "node"), ("devres_group", "id"), \
    ("devres_group", "color"), ("devres_group", "sizeof")
N_SIZEOF = ("devres_node", "sizeof")
A_DATA, A_ACTION, A_SIZE = ("action_devres", "data"), ("action_devres", "action"), \
    ("action_devres", "sizeof")
D_DEVRES_HEAD = ("device", "devres_head")
L_NEXT, L_PREV = ("list_head", "next"), ("list_head", "prev")


def _o(emu, key) -> int:
    return LAYOUT.of(emu)[key]


def _rd(emu, a: int) -> int:
    return emu.read_u(a, 8)


# --- list_head ----------------------------------------------------------------------------------
def _next(emu, e: int) -> int:
    return _rd(emu, e + _o(emu, L_NEXT))


def _prev(emu, e: int) -> int:
    return _rd(emu, e + _o(emu, L_PREV))


def _link(emu, prev: int, nxt: int) -> None:
    emu.write_u(prev + _o(emu, L_NEXT), 8, nxt)
    emu.write_u(nxt + _o(emu, L_PREV), 8, prev)


def _init(emu, e: int) -> None:
    _link(emu, e, e)


def _empty(emu, e: int) -> bool:
    return _next(emu, e) == e


def _add_tail(emu, e: int, head: int) -> None:
    prev = _prev(emu, head)
    _link(emu, prev, e)
    _link(emu, e, head)


def _del_init(emu, e: int) -> None:
    _link(emu, _prev(emu, e), _next(emu, e))
    _init(emu, e)


def _move_tail(emu, e: int, head: int) -> None:
    _link(emu, _prev(emu, e), _next(emu, e))
    _add_tail(emu, e, head)


# --- the kernel's own release functions (identification traps) ---------------------------------
def _noop_release(emu, dev, res):
    return 0


def _action_release(emu, dev, res):
    """devm_action_release: the action called with its data."""
    emu.call_module(_rd(emu, res + _o(emu, A_ACTION)), (_rd(emu, res + _o(emu, A_DATA)),))
    return 0


KERNEL_RELEASES = {"devm_kmalloc_release": _noop_release,
                   "devm_action_release": _action_release,
                   "group_open_release": _noop_release,
                   "group_close_release": _noop_release}


def _kfn(emu, name: str) -> int:
    return kernel_fn(emu, name, KERNEL_RELEASES[name])


def _known(emu, name: str) -> int | None:
    """The address of the kernel function ``name`` if the machine ever handed it out."""
    return emu.state.get("kernel_fns", {}).get(name)


def _call_release(emu, release: int, dev: int, data: int) -> None:
    for name, a in emu.state.get("kernel_fns", {}).items():
        if a == release and name in KERNEL_RELEASES:
            KERNEL_RELEASES[name](emu, dev, data)
            return
    emu.call_module(release, (dev, data))


# --- nodes --------------------------------------------------------------------------------------
def _node_of(emu, res: int) -> int:
    """container_of(res, struct devres, data): the node (at the struct's start)."""
    return res - _o(emu, DR_DATA)


def _head(emu, dev: int) -> int:
    from .device import LAYOUT as DEVICE
    return dev + DEVICE.of(emu)[D_DEVRES_HEAD]


def alloc_dr(emu, release: int, size: int, gfp: int) -> int:
    """alloc_dr: the struct devres (0 on overflow or no memory), node cleared and released
    by ``release``; returns the node's address."""
    hdr = _o(emu, DR_DATA)
    if size + hdr > MASK64:
        return 0
    dr = kmalloc_flags(emu, size + hdr, gfp)
    if not dr or dr == ZERO_SIZE_PTR:
        return 0
    if not gfp & GFP_ZERO:
        emu.write(dr, bytes(hdr))
    _init(emu, dr + _o(emu, N_ENTRY))
    emu.write_u(dr + _o(emu, N_RELEASE), 8, release)
    return dr


def _set_dbginfo(emu, node: int, name: int, size: int) -> None:
    emu.write_u(node + _o(emu, N_NAME), 8, name)
    emu.write_u(node + _o(emu, N_SIZE), 8, size)


def _add_dr(emu, dev: int, node: int, who: str) -> None:
    entry = node + _o(emu, N_ENTRY)
    if not _empty(emu, entry):
        raise emu.oops([f"kernel BUG at drivers/base/devres.c ({who}: add_dr of a listed "
                        "resource)!", "invalid opcode: 0000 [#1] PREEMPT SMP NOPTI"])
    _add_tail(emu, entry, _head(emu, dev))


def _entries(emu, dev: int) -> list[int]:
    """The nodes on the device's list, oldest first."""
    head, out = _head(emu, dev), []
    e = _next(emu, head)
    while e != head:
        out.append(e - _o(emu, N_ENTRY))
        e = _next(emu, e)
    return out


def find_dr(emu, dev: int, release: int, match: int, match_data: int) -> int:
    for node in reversed(_entries(emu, dev)):
        if _rd(emu, node + _o(emu, N_RELEASE)) != release:
            continue
        data = node + _o(emu, DR_DATA)
        if match and not emu.call_module(match, (dev, data, match_data)) & 0xFFFFFFFF:
            continue
        return node
    return 0


@model("__devres_alloc_node")
def __devres_alloc_node(emu, release, size, gfp, nid, name):
    dr = alloc_dr(emu, release, size, gfp | GFP_ZERO)
    if not dr:
        return 0
    _set_dbginfo(emu, dr, name, size)
    return dr + _o(emu, DR_DATA)


@model("devres_free")
def devres_free(emu, res):
    if res:
        node = _node_of(emu, res)
        if not _empty(emu, node + _o(emu, N_ENTRY)):
            raise emu.oops(["kernel BUG at drivers/base/devres.c (devres_free of a listed "
                            "resource)!", "invalid opcode: 0000 [#1] PREEMPT SMP NOPTI"])
        emu.kfree(node)


@model("devres_add")
def devres_add(emu, dev, res):
    _add_dr(emu, dev, _node_of(emu, res), "devres_add")


@model("devres_find")
def devres_find(emu, dev, release, match, match_data):
    node = find_dr(emu, dev, release, match, match_data)
    return node + _o(emu, DR_DATA) if node else 0


@model("devres_get")
def devres_get(emu, dev, new_res, match, match_data):
    new = _node_of(emu, new_res)
    node = find_dr(emu, dev, _rd(emu, new + _o(emu, N_RELEASE)), match, match_data)
    if not node:
        _add_dr(emu, dev, new, "devres_get")
        return new_res
    devres_free(emu, new_res)
    return node + _o(emu, DR_DATA)


@model("devres_remove")
def devres_remove(emu, dev, release, match, match_data):
    node = find_dr(emu, dev, release, match, match_data)
    if not node:
        return 0
    _del_init(emu, node + _o(emu, N_ENTRY))
    return node + _o(emu, DR_DATA)


@model("devres_destroy")
def devres_destroy(emu, dev, release, match, match_data):
    res = devres_remove(emu, dev, release, match, match_data)
    if not res:
        return -ENOENT
    devres_free(emu, res)
    return 0


@model("devres_release")
def devres_release(emu, dev, release, match, match_data):
    res = devres_remove(emu, dev, release, match, match_data)
    if not res:
        return -ENOENT
    _call_release(emu, release, dev, res)
    devres_free(emu, res)
    return 0


# --- release of a range (remove_nodes / release_nodes) ------------------------------------------
def _markers(emu, grp: int) -> tuple[int, int]:
    """The group's opening and closing marker nodes (node[0], node[1])."""
    n0 = grp + _o(emu, G_NODE)
    return n0, n0 + _o(emu, N_SIZEOF)


def _group_of(emu, node: int) -> int:
    """node_to_group: the group whose opening or closing marker ``node`` is, else 0."""
    rel = _rd(emu, node + _o(emu, N_RELEASE))
    if rel == _known(emu, "group_open_release"):
        return node - _o(emu, G_NODE)
    if rel == _known(emu, "group_close_release"):
        return node - _o(emu, G_NODE) - _o(emu, N_SIZEOF)
    return 0


def _remove_nodes(emu, first: int, end: int, todo: int) -> int:
    """remove_nodes: move the ordinary entries of [first, end) to ``todo``, then the groups
    wholly inside the range (colour 2: both markers there, or an open group's first marker)."""
    ent = _o(emu, N_ENTRY)
    cnt = groups = 0
    cur = first
    while cur != end:
        node, cur = cur - ent, _next(emu, cur)
        grp = _group_of(emu, node)
        if grp:
            emu.write_u(grp + _o(emu, G_COLOR), 4, 0)
            groups += 1
        else:
            if node + ent == first:
                first = _next(emu, first)
            _move_tail(emu, node + ent, todo)
            cnt += 1
    if not groups:
        return cnt
    cur = first
    while cur != end:
        node, cur = cur - ent, _next(emu, cur)
        grp = _group_of(emu, node)
        g0, g1 = (m + ent for m in _markers(emu, grp))
        color = emu.read_s(grp + _o(emu, G_COLOR), 4) + 1
        if _empty(emu, g1):
            color += 1
        emu.write_u(grp + _o(emu, G_COLOR), 4, color)
        if color == 2:
            _move_tail(emu, g0, todo)
            _del_init(emu, g1)
    return cnt


def _release_nodes(emu, dev: int, first: int, end: int) -> int:
    todo = emu.priv_alloc(16, 16)              # the kernel's LIST_HEAD(todo) on its stack
    _init(emu, todo)
    cnt = _remove_nodes(emu, first, end, todo)
    ent = _o(emu, N_ENTRY)
    while not _empty(emu, todo):               # newest first, each taken off as released
        e = _prev(emu, todo)
        node = e - ent
        _del_init(emu, e)
        _call_release(emu, _rd(emu, node + _o(emu, N_RELEASE)), dev, node + _o(emu, DR_DATA))
        emu.kfree(node)
    return cnt


def devres_release_all(emu, dev: int) -> int:
    """devres_release_all: every resource of ``dev`` released, newest first; the number of
    ordinary entries released."""
    head = _head(emu, dev)
    if _next(emu, head) == 0:
        raise Unmodelled("devres_release_all (WARN_ON: a device whose devres list was never "
                         "initialised)", what=emu.what)
    if _empty(emu, head):
        return 0
    return _release_nodes(emu, dev, _next(emu, head), head)


def has_resources(emu, dev: int) -> bool:
    return not _empty(emu, _head(emu, dev))


# --- groups -------------------------------------------------------------------------------------
@model("devres_open_group")
def devres_open_group(emu, dev, id_, gfp):
    grp = kmalloc_flags(emu, _o(emu, G_SIZE), gfp)
    if not grp:
        return 0
    ent = _o(emu, N_ENTRY)
    n0, n1 = _markers(emu, grp)
    emu.write_u(n0 + _o(emu, N_RELEASE), 8, _kfn(emu, "group_open_release"))
    emu.write_u(n1 + _o(emu, N_RELEASE), 8, _kfn(emu, "group_close_release"))
    _init(emu, n0 + ent)
    _init(emu, n1 + ent)
    _set_dbginfo(emu, n0, _name_string(emu, "grp<"), 0)
    _set_dbginfo(emu, n1, _name_string(emu, "grp>"), 0)
    emu.write_u(grp + _o(emu, G_ID), 8, id_ or grp)
    _add_dr(emu, dev, n0, "devres_open_group")
    return id_ or grp


def _name_string(emu, s: str) -> int:
    """The address of one of devres.c's debug-name literals (kept in the machine state)."""
    names = emu.state.setdefault("devres_names", {})
    if s not in names:
        a = emu.kmalloc(len(s) + 1)
        emu.write(a, s.encode() + b"\0")
        names[s] = a
    return names[s]


def _find_group(emu, dev: int, id_: int) -> int:
    ent = _o(emu, N_ENTRY)
    opener = _known(emu, "group_open_release")
    for node in reversed(_entries(emu, dev)):
        if _rd(emu, node + _o(emu, N_RELEASE)) != opener:
            continue
        grp = node - _o(emu, G_NODE)
        if id_:
            if _rd(emu, grp + _o(emu, G_ID)) == id_:
                return grp
        elif _empty(emu, _markers(emu, grp)[1] + ent):
            return grp
    return 0


def _group(emu, dev: int, id_: int, fn: str) -> int:
    """find_group, or the kernel's WARN_ON for a group that is not there (not modelled)."""
    grp = _find_group(emu, dev, id_)
    if not grp:
        raise Unmodelled(f"{fn} (WARN_ON: no such devres group)", what=emu.what)
    return grp


@model("devres_close_group")
def devres_close_group(emu, dev, id_):
    _add_dr(emu, dev, _markers(emu, _group(emu, dev, id_, "devres_close_group"))[1],
            "devres_close_group")


@model("devres_remove_group")
def devres_remove_group(emu, dev, id_):
    grp = _group(emu, dev, id_, "devres_remove_group")
    g0, g1 = (m + _o(emu, N_ENTRY) for m in _markers(emu, grp))
    _del_init(emu, g0)
    if not _empty(emu, g1):
        _del_init(emu, g1)
    emu.kfree(grp)


@model("devres_release_group")
def devres_release_group(emu, dev, id_):
    g0, g1 = (m + _o(emu, N_ENTRY)
              for m in _markers(emu, _group(emu, dev, id_, "devres_release_group")))
    end = _head(emu, dev) if _empty(emu, g1) else _next(emu, g1)
    return _release_nodes(emu, dev, g0, end)


# --- devm_ allocators -------------------------------------------------------------------------
@model("devm_kmalloc")
def devm_kmalloc(emu, dev, size, gfp):
    if not size:
        return ZERO_SIZE_PTR
    dr = alloc_dr(emu, _kfn(emu, "devm_kmalloc_release"), size, gfp)
    if not dr:
        return 0
    _set_dbginfo(emu, dr, _name_string(emu, "devm_kzalloc_release"), size)
    _add_dr(emu, dev, dr, "devm_kmalloc")
    return dr + _o(emu, DR_DATA)


@model("devm_kfree")
def devm_kfree(emu, dev, p):
    if _in_kernel_rodata(emu, p) or p <= ZERO_SIZE_PTR:
        return
    release = _kfn(emu, "devm_kmalloc_release")
    for node in reversed(_entries(emu, dev)):
        if _rd(emu, node + _o(emu, N_RELEASE)) == release and node + _o(emu, DR_DATA) == p:
            _del_init(emu, node + _o(emu, N_ENTRY))
            emu.kfree(node)
            return
    raise Unmodelled(f"devm_kfree (WARN_ON: {p:#x} is not a devm allocation of the device)",
                     what=emu.what)


@model("devm_kstrdup")
def devm_kstrdup(emu, dev, s, gfp):
    if not s:
        return 0
    b = emu.cstr(s)
    p = devm_kmalloc(emu, dev, len(b) + 1, gfp)
    if p:
        emu.write(p, b + b"\0")
    return p


@model("devm_kstrdup_const")
def devm_kstrdup_const(emu, dev, s, gfp):
    return s if _in_kernel_rodata(emu, s) else devm_kstrdup(emu, dev, s, gfp)


@model("devm_kmemdup")
def devm_kmemdup(emu, dev, src, length, gfp):
    p = devm_kmalloc(emu, dev, length, gfp)
    if p > ZERO_SIZE_PTR:
        emu.write(p, emu.read(src, length))
    return p


def _devm_asprintf(emu, dev: int, gfp: int, fmt: int, args) -> int:
    from .vsprintf import vsprintf
    s = vsprintf(emu, emu.cstr(fmt), args).encode("latin-1")
    p = devm_kmalloc(emu, dev, len(s) + 1, gfp)
    if p:
        emu.write(p, s + b"\0")
    return p


@model("devm_kasprintf")
def devm_kasprintf(emu, dev, gfp, fmt, *_):
    return _devm_asprintf(emu, dev, gfp, fmt, emu.args_from(3))


@model("devm_kvasprintf")
def devm_kvasprintf(emu, dev, gfp, fmt, ap):
    from .vsprintf import VaList
    return _devm_asprintf(emu, dev, gfp, fmt, VaList(emu, ap))


# --- devm actions -------------------------------------------------------------------------------
def _add_action(emu, dev: int, action: int, data: int, name: int) -> int:
    res = __devres_alloc_node(emu, _kfn(emu, "devm_action_release"), _o(emu, A_SIZE),
                              GFP_KERNEL, NUMA_NO_NODE, name)
    if not res:
        return -ENOMEM
    emu.write_u(res + _o(emu, A_DATA), 8, data)
    emu.write_u(res + _o(emu, A_ACTION), 8, action)
    devres_add(emu, dev, res)
    return 0


@model("devm_add_action")
def devm_add_action(emu, dev, action, data):
    """6.1's devm_add_action (devres_alloc names the node "devm_action_release")."""
    return _add_action(emu, dev, action, data, _name_string(emu, "devm_action_release"))


@model("__devm_add_action")
def __devm_add_action(emu, dev, action, data, name):
    """6.12's: the caller's name (the action's, stringified by the macro)."""
    return _add_action(emu, dev, action, data, name)


def _take_action(emu, dev: int, action: int, data: int, fn: str) -> int:
    """devres_remove with devm_action_match: the newest action entry of (action, data)."""
    release = _kfn(emu, "devm_action_release")
    for node in reversed(_entries(emu, dev)):
        res = node + _o(emu, DR_DATA)
        if (_rd(emu, node + _o(emu, N_RELEASE)) == release
                and _rd(emu, res + _o(emu, A_ACTION)) == action
                and _rd(emu, res + _o(emu, A_DATA)) == data):
            _del_init(emu, node + _o(emu, N_ENTRY))
            return res
    raise Unmodelled(f"{fn} (WARN_ON: no such action on the device)", what=emu.what)


@model("devm_remove_action")
def devm_remove_action(emu, dev, action, data):
    devres_free(emu, _take_action(emu, dev, action, data, "devm_remove_action"))


@model("devm_release_action")
def devm_release_action(emu, dev, action, data):
    res = _take_action(emu, dev, action, data, "devm_release_action")
    _action_release(emu, dev, res)
    devres_free(emu, res)
