"""Array sorting (lib/sort.c): ``sort`` and ``sort_r``.

Linux 6.1's sort_r is a bottom-up heapsort over byte offsets: a heap is built by sifting down
each element from the middle to the front, then the root is repeatedly swapped with the last
unsorted element and sifted down again.  Each sift first follows the path of larger children to
a leaf (one compare per level, the right child taken when the left compares < 0), then
backtracks towards the start while the sifted element compares >= the path element, then
rotates the element into place with swaps going up.  The module's compare (and swap, when
given) callbacks are called in exactly that order, since a module can observe the sequence;
``sort`` is ``sort_r`` with the callbacks wrapped (cmp(a, b), swap(a, b, (int)size)) and
``sort_r`` passes ``priv`` as the last argument.  Without a swap callback the kernel swaps the
elements' bytes itself (by words or bytes: the result is the same).

Later releases changed the order (6.12 handles the final two or three elements specially):
only the 6.1 order is modelled, other releases raise ``Unmodelled``.
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..registry import model


def _parent(i: int, lsbit: int, size: int) -> int:
    i -= size
    if i & lsbit:
        i -= size
    return i // 2


def _heapsort(emu, base: int, num: int, size: int, cmp, swap) -> None:
    n, a = num * size, (num // 2) * size
    lsbit = size & -size
    if not a:
        return
    while True:
        if a:
            a -= size
        else:
            n -= size
            if not n:
                break
            swap(base, base + n)
        b = a
        while True:
            c = 2 * b + size
            d = c + size
            if d >= n:
                break
            b = c if cmp(base + c, base + d) >= 0 else d
        if d == n:
            b = c
        while b != a and cmp(base + a, base + b) >= 0:
            b = _parent(b, lsbit, size)
        c = b
        while b != a:
            b = _parent(b, lsbit, size)
            swap(base + b, base + c)


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _sort(emu, base, num, size, cmp_fn, swap_fn, priv=None):
    if tuple(emu.kernel_version[:2]) != (6, 1):
        raise Unmodelled(f"{emu._model_name} (only Linux 6.1's heapsort order is modelled)",
                         what=emu.what)
    if not cmp_fn:
        raise Unmodelled(f"{emu._model_name} (NULL compare function)", what=emu.what)
    extra = () if priv is None else (priv,)

    def cmp(x, y):
        return _s32(emu.call_module(cmp_fn, (x, y) + extra))

    def swap(x, y):
        if swap_fn:
            emu.call_module(swap_fn, (x, y, size & 0xFFFFFFFF) + extra)
            return
        bx, by = emu.read(x, size), emu.read(y, size)
        emu.write(x, by)
        emu.write(y, bx)
    _heapsort(emu, base, num, size, cmp, swap)


@model("sort")
def sort(emu, base, num, size, cmp_func, swap_func):
    _sort(emu, base, num, size, cmp_func, swap_func)


@model("sort_r")
def sort_r(emu, base, num, size, cmp_func, swap_func, priv):
    _sort(emu, base, num, size, cmp_func, swap_func, priv)
