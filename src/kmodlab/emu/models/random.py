"""The kernel's random numbers (drivers/char/random.c): ``get_random_bytes`` and
``get_random_u8/u16/u32/u64``.

On the real machine these come from the ChaCha20 CRNG, seeded at boot: any value is as right
as any other, and no module can predict them.  The sandbox's are a SHA-256 stream keyed by the
machine's boot id and a counter kept in ``emu.state["random"]``: unpredictable to the module,
the same for the same machine and history (so a run can be replayed), different after
``machine reset``.  The CRNG is ready by the time modules load (it is seeded during boot), so
no call waits or warns.
"""
from __future__ import annotations

import hashlib

from ..registry import model


def random_bytes(emu, n: int) -> bytes:
    st = emu.state.setdefault("random", {"counter": 0})
    key = str(getattr(getattr(emu, "kernel", None), "boot_id", "")).encode()
    out = bytearray()
    while len(out) < n:
        st["counter"] += 1
        out += hashlib.sha256(key + st["counter"].to_bytes(8, "little")).digest()
    return bytes(out[:n])


@model("get_random_bytes")
def get_random_bytes(emu, buf, nbytes):
    n = nbytes & 0xFFFFFFFFFFFFFFFF
    if n:
        emu.write(buf, random_bytes(emu, n))


def _int(emu, size: int) -> int:
    return int.from_bytes(random_bytes(emu, size), "little")


@model("get_random_u8")
def get_random_u8(emu):
    return _int(emu, 1)


@model("get_random_u16")
def get_random_u16(emu):
    return _int(emu, 2)


@model("get_random_u32")
def get_random_u32(emu):
    return _int(emu, 4)


@model("get_random_u64")
def get_random_u64(emu):
    return _int(emu, 8)
