"""I/O port and memory resources (kernel/resource.c): ``__request_region``, ``__release_region``,
``request_resource``, ``release_resource``, and the trees /proc/ioports and /proc/iomem show.

The booted machine is the oracle's QEMU guest, so its two trees — ``ioport_resource`` and
``iomem_resource`` with every node the kernel and its built-in drivers put there while booting
(their flags tell a claimed region, IORESOURCE_BUSY, from a window such as "PCI Bus 0000:00")
— are the ones read from each real kernel through /proc/kcore right after boot
(``profile/data/boot-views-<release>.json``, ``resources``; oracle/views.py).  The first model
call copies that tree into ``emu.state["resources"]``; module requests then change it there.
Node: ``{"s": start, "e": end, "n": name, "f": flags, "d": desc, "a": address, "c": [...]}``.

- ``__request_region(parent, start, n, name, flags)`` as __request_region_locked does it: a
  zeroed ``struct resource`` (kzalloc) with [start, start + n - 1], the name pointer, flags =
  the parent's type bits | IORESOURCE_BUSY | ``flags``, the parent's desc; inserted among the
  parent's children in address order when it overlaps none (__request_resource); when it
  overlaps one that is not busy (a window), the request descends into that one and tries again;
  an overlap with a busy region, or a range outside the parent, fails: the resource is freed,
  NULL is returned.  Two IORESOURCE_MUXED requests for one range make the second sleep until
  the first is released: that wait is not modelled (Unmodelled, named).
- ``__release_region(parent, start, n)`` finds the busy region of exactly that range, descending
  through windows that contain it, unlinks and frees it; otherwise the kernel's warning "Trying
  to free nonexistent resource <0x…-0x…>" (``%pa``: 16 hex digits).
- ``request_resource(root, new)``: the module's own ``struct resource`` inserted as is (its
  start, end, name and flags read from module memory): 0, or -EBUSY on any overlap or a range
  outside root.  ``release_resource(old)``: unlinked with its children (-EINVAL if not in the
  tree).

- ``__devm_request_region(dev, parent, start, n, name)``: the same request, remembered as a
  ``struct region_devres`` (parent, start, n) on the device's devres list (released with
  ``devm_region_release``, which releases the region); NULL and nothing listed on failure.
  ``__devm_release_region`` releases the newest such entry of that exact range now.

A parent that is neither root nor a node of the tree (a module's struct resource that was not
requested through these models) stops the call as Unmodelled.
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..layouts import layout
from ..registry import model
from .devres import KERNEL_RELEASES

LAYOUT = layout("resource")
EBUSY, EINVAL = 16, 22
IORESOURCE_TYPE_BITS, IORESOURCE_EXT_TYPE_BITS = 0x1F00, 0x01000000
IORESOURCE_BUSY, IORESOURCE_MUXED = 0x80000000, 0x00400000
IORES_DESC_DEVICE_PRIVATE_MEMORY = 6
DEFAULT_RELEASE = "6.1.0-56-amd64"     # a bare emulator (no machine): the embedded kernel's


def _o(emu, member: str) -> int:
    return LAYOUT.of(emu)["resource", member]


def trees(emu) -> dict:
    """The two trees, copied from the boot record on first use."""
    st = emu.state.get("resources")
    if st is None:
        from ...kernel.registrations import boot_resources
        prof = getattr(getattr(emu, "kernel", None), "profile", None)
        try:
            st = boot_resources(getattr(prof, "release", DEFAULT_RELEASE), emu.export_addr)
        except LookupError:
            raise Unmodelled(f"{emu._model_name} (this kernel's boot resource tree was not "
                             "recorded)", what=emu.what) from None
        emu.state["resources"] = st
    return st


def _nodes(emu):
    """Every (node, its parent) of both trees, depth first (a root's parent is None)."""
    def walk(n, parent):
        yield n, parent
        for c in n["c"]:
            yield from walk(c, n)
    for root in trees(emu).values():
        yield from walk(root, None)


def _find(emu, addr: int) -> dict:
    """The node at ``addr`` (a root or any node of either tree)."""
    got = next((n for n, _p in _nodes(emu) if n["a"] == addr), None)
    if got is None:
        raise Unmodelled(f"{emu._model_name} (parent resource {emu.symbol(addr)} is not in "
                         "the kernel's resource trees)", what=emu.what)
    return got


def _parent_of(emu, node: dict) -> dict | None:
    return next((p for n, p in _nodes(emu) if n is node), None)


def _request(root: dict, new: dict) -> dict | None:
    """__request_resource: insert ``new`` among root's children; the conflicting node (root
    itself for a bad range) or None."""
    s, e = new["s"], new["e"]
    if e < s or s < root["s"] or e > root["e"]:
        return root
    kids = root["c"]
    for i, t in enumerate(kids):
        if t["s"] > e:
            kids.insert(i, new)
            return None
        if t["e"] < s:
            continue
        return t
    kids.append(new)
    return None


def _write(emu, addr: int, node: dict, parent: dict) -> None:
    for m, v in (("start", node["s"]), ("end", node["e"]), ("flags", node["f"]),
                 ("desc", node["d"]), ("parent", parent["a"])):
        emu.write_u(addr + _o(emu, m), 8, v)


@model("__request_region")
def __request_region(emu, parent, start, n, name, flags):
    flags &= 0xFFFFFFFF
    res = emu.kmalloc(_o(emu, "sizeof"), zero=True)
    emu.write_u(res + _o(emu, "name"), 8, name)
    label = emu.cstr(name, 64).decode("latin-1") if name else "<BAD>"
    p = _find(emu, parent)
    node = {"s": start, "e": (start + n - 1) & ((1 << 64) - 1), "n": label, "a": res, "c": []}
    while True:
        node["f"] = (p["f"] & (IORESOURCE_TYPE_BITS | IORESOURCE_EXT_TYPE_BITS)) | \
            IORESOURCE_BUSY | flags
        node["d"] = p["d"]
        conflict = _request(p, node)
        if conflict is None:
            break
        if conflict["d"] == IORES_DESC_DEVICE_PRIVATE_MEMORY:
            raise Unmodelled("__request_region (a range of device-private memory)",
                             what=emu.what)
        if conflict is not p and not conflict["f"] & IORESOURCE_BUSY:
            p = conflict                       # a window: look inside it
            continue
        if conflict["f"] & flags & IORESOURCE_MUXED:
            raise Unmodelled(f"__request_region (a muxed region held by {conflict['n']}: the "
                             "caller sleeps until it is released)", what=emu.what)
        emu.kfree(res)
        emu.note(f"{start:#x}+{n:#x} {label!r}: busy ({conflict['n']})")
        return 0
    _write(emu, res, node, p)
    emu.note(f"{node['s']:#x}-{node['e']:#x} {label!r} under {p['n']}")
    return res


@model("__release_region")
def __release_region(emu, parent, start, n):
    p = _find(emu, parent)
    end = (start + n - 1) & ((1 << 64) - 1)
    kids = p["c"]
    i = 0
    while i < len(kids):
        r = kids[i]
        if r["s"] <= start and r["e"] >= end:
            if not r["f"] & IORESOURCE_BUSY:
                kids, i = r["c"], 0                # descend into the window
                continue
            if r["s"] != start or r["e"] != end:
                break
            del kids[i]
            if r["f"] & IORESOURCE_MUXED:
                pass                               # wake_up(&muxed_resource_wait): no waiters
            emu.kfree(r["a"])
            return
        i += 1
    emu.printk(4, f"Trying to free nonexistent resource <{start:#018x}-{end:#018x}>\n")


@model("request_resource")
def request_resource(emu, root, new):
    p = _find(emu, root)
    nm = emu.read_u(new + _o(emu, "name"), 8)
    node = {"s": emu.read_u(new + _o(emu, "start"), 8), "e": emu.read_u(new + _o(emu, "end"), 8),
            "n": emu.cstr(nm, 64).decode("latin-1") if nm else "<BAD>",
            "f": emu.read_u(new + _o(emu, "flags"), 8), "d": emu.read_u(new + _o(emu, "desc"), 8),
            "a": new, "c": []}
    if _request(p, node) is not None:
        return -EBUSY
    emu.write_u(new + _o(emu, "parent"), 8, p["a"])
    return 0


@model("release_resource")
def release_resource(emu, old):
    try:
        node = _find(emu, old)
    except Unmodelled:
        return -EINVAL
    parent = _parent_of(emu, node)
    if parent is None:
        return -EINVAL
    parent["c"].remove(node)
    emu.write_u(old + _o(emu, "parent"), 8, 0)
    return 0


# --- managed regions --------------------------------------------------------------------------
def _rd_o(emu, member: str) -> int:
    return LAYOUT.of(emu)["region_devres", member]


def _devm_region_release(emu, dev, res):
    """devm_region_release: __release_region of the remembered range."""
    __release_region(emu, *(emu.read_u(res + _rd_o(emu, m), 8) for m in ("parent", "start", "n")))
    return 0


@model("__devm_request_region")
def __devm_request_region(emu, dev, parent, start, n, name):
    from .devres import GFP_KERNEL, NUMA_NO_NODE, __devres_alloc_node, _kfn, _name_string, \
        devres_add, devres_free
    dr = __devres_alloc_node(emu, _kfn(emu, "devm_region_release"), _rd_o(emu, "sizeof"),
                             GFP_KERNEL, NUMA_NO_NODE, _name_string(emu, "devm_region_release"))
    if not dr:
        return 0
    for m, v in (("parent", parent), ("start", start), ("n", n)):
        emu.write_u(dr + _rd_o(emu, m), 8, v)
    res = __request_region(emu, parent, start, n, name, 0)
    if res:
        devres_add(emu, dev, dr)
    else:
        devres_free(emu, dr)
    return res


@model("__devm_release_region")
def __devm_release_region(emu, dev, parent, start, n):
    from .devres import N_RELEASE, _entries, _known, _o as dro, DR_DATA, _del_init, N_ENTRY, \
        devres_free
    release = _known(emu, "devm_region_release")
    for node in reversed(_entries(emu, dev)):
        res = node + dro(emu, DR_DATA)
        if emu.read_u(node + dro(emu, N_RELEASE), 8) == release and all(
                emu.read_u(res + _rd_o(emu, m), 8) == v
                for m, v in (("parent", parent), ("start", start), ("n", n))):
            _del_init(emu, node + dro(emu, N_ENTRY))
            _devm_region_release(emu, dev, res)
            devres_free(emu, res)
            return
    raise Unmodelled("__devm_release_region (WARN_ON: no such managed region)", what=emu.what)


KERNEL_RELEASES["devm_region_release"] = _devm_region_release
