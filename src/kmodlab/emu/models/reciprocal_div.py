"""lib/math/reciprocal_div.c: ``reciprocal_value(d)``, the multiplier and shifts that turn a
division by the constant ``d`` into a multiply (include/linux/reciprocal_div.h's
reciprocal_divide: ``(t + ((a - t) >> sh1)) >> sh2`` with ``t = (a * m) >> 32``).

The struct {u32 m; u8 sh1, sh2;} is returned in rax (8 bytes: m, then sh1, sh2).  ``d`` = 0
divides by zero in the kernel (a #DE oops): not modelled.
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..registry import model


def reciprocal(d: int) -> tuple[int, int, int]:
    """(m, sh1, sh2) for a non-zero 32-bit divisor, as the kernel computes them."""
    l = ((d - 1) & 0xFFFFFFFF).bit_length()                      # fls(d - 1)
    m = (((1 << 32) * ((1 << l) - d)) & ((1 << 64) - 1)) // d + 1
    return m & 0xFFFFFFFF, min(l, 1), max(l - 1, 0)


@model("reciprocal_value")
def reciprocal_value(emu, d):
    d &= 0xFFFFFFFF
    if d == 0:
        raise Unmodelled("reciprocal_value (a divisor of 0: divide error)", what=emu.what)
    m, sh1, sh2 = reciprocal(d)
    return m | sh1 << 32 | sh2 << 40
