"""Red-black tree walks (lib/rbtree.c): ``rb_first``, ``rb_last``, ``rb_next``, ``rb_prev``.

A ``struct rb_node`` is {``__rb_parent_color``, ``rb_right``, ``rb_left``}: the parent's
address with the colour in bit 0 (the low two bits are not address); ``struct rb_root`` is one
``rb_node`` pointer.  A node is *empty* (RB_EMPTY_NODE, not in a tree) when its parent word is
its own address.  The walks only read: the in-order first/last node under a root, and the
in-order successor/predecessor of a node (up through the parents when it has no child on that
side).  Insertion and erasure rebalance the tree (``rb_insert_color``, ``rb_erase``) and are not
modelled: they stop init by name.

Offsets from the running kernel's BTF (Linux 6.1 and 6.12 agree: 0, 8, 16).
"""
from __future__ import annotations

from ..layouts import layout
from ..registry import model

LAYOUT = layout("rbtree")
PARENT, RIGHT, LEFT = ("rb_node", "__rb_parent_color"), ("rb_node", "rb_right"), \
    ("rb_node", "rb_left")
ROOT = ("rb_root", "rb_node")


def _get(emu, node: int, key) -> int:
    return emu.read_u(node + LAYOUT.of(emu)[key], 8)


def _parent(emu, node: int) -> int:
    return _get(emu, node, PARENT) & ~3


def _down(emu, node: int, side) -> int:
    while node:
        nxt = _get(emu, node, side)
        if not nxt:
            return node
        node = nxt
    return 0


def _step(emu, node: int, down, up) -> int:
    """rb_next (down = right, up = left) / rb_prev (the mirror)."""
    if _get(emu, node, PARENT) == node:            # RB_EMPTY_NODE
        return 0
    child = _get(emu, node, down)
    if child:
        return _down(emu, child, up)
    parent = _parent(emu, node)
    while parent and node == _get(emu, parent, down):
        node, parent = parent, _parent(emu, parent)
    return parent


@model("rb_first")
def rb_first(emu, root):
    return _down(emu, _get(emu, root, ROOT), LEFT)


@model("rb_last")
def rb_last(emu, root):
    return _down(emu, _get(emu, root, ROOT), RIGHT)


@model("rb_next")
def rb_next(emu, node):
    return _step(emu, node, RIGHT, LEFT)


@model("rb_prev")
def rb_prev(emu, node):
    return _step(emu, node, LEFT, RIGHT)
