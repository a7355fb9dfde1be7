"""The sandbox kernel's memory: named regions at kernel virtual addresses, and a kmalloc heap.

Everything the sandbox keeps in "kernel memory" lives here, so that the load path, the parameter
code, sysfs and the emulated CPU all see the same bytes:

- module memory: one region per module layout (``<mod>:core``, ``<mod>:init``) placed from
  ``MODULES_VADDR`` upward, as x86-64 ``module_alloc`` does;
- the per-CPU area of CPU 0 (``percpu``), whose base is the GS base the emulator uses; kernel
  per-CPU exports are small offsets into it, module per-CPU data is allocated after the kernel's
  static part (``PERCPU_STATIC_SIZE``) from the 8 KiB module reserve;
- the kmalloc heap (``heap``) in the direct map.

Regions are plain bytearrays so that the machine can persist them and Unicorn can map them.
An access outside every region raises :class:`Fault` (the emulator turns it into an oops).
"""
from __future__ import annotations

import struct
from bisect import bisect_right
from dataclasses import dataclass, field

PAGE_SIZE = 4096
MODULES_VADDR = 0xFFFFFFFFC0000000
MODULES_END = 0xFFFFFFFFFF000000
HEAP_BASE = 0xFFFF888100000000          # direct-map address for kmalloc memory
PERCPU_BASE = 0xFFFF88813BC00000        # CPU 0's per-CPU area (what %gs points at)
PERCPU_STATIC_SIZE = 0x35000            # Debian 6.1's static per-CPU area (reference §2.11); the
#                                         running kernel's is profile.percpu_static_size (6.12: 0x39000)
PERCPU_MODULE_RESERVE = 8 * 1024
PERCPU_AREA_SIZE = 0x80000              # the sandbox's mapping: any release's static area + reserve


def page_align(n: int) -> int:
    return (n + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


def align(n: int, a: int) -> int:
    a = a or 1
    return (n + a - 1) // a * a


class Fault(Exception):
    """An access to an address no region backs (the kernel would oops)."""

    def __init__(self, addr: int, size: int, write: bool):
        self.addr, self.size, self.write = addr, size, write
        super().__init__(f"unable to handle page fault for address {addr:#018x} "
                         f"({'write' if write else 'read'} of {size} bytes)")


@dataclass
class Region:
    name: str
    base: int
    data: bytearray

    @property
    def end(self) -> int:
        return self.base + len(self.data)


@dataclass
class AddressSpace:
    regions: dict[str, Region] = field(default_factory=dict)
    # find()'s index: the regions sorted by base (rebuilt when found stale)
    _sorted: list[Region] = field(default_factory=list, repr=False, compare=False)
    _bases: list[int] = field(default_factory=list, repr=False, compare=False)

    def map(self, name: str, base: int, size: int, data: bytes | None = None) -> Region:
        if name in self.regions:
            raise ValueError(f"region {name} already mapped")
        buf = bytearray(size)
        if data:
            buf[:len(data)] = data
        r = self.regions[name] = Region(name, base, buf)
        return r

    def unmap(self, name: str) -> None:
        self.regions.pop(name, None)

    def find(self, addr: int, size: int = 1) -> Region | None:
        """The region holding [addr, addr+size), by binary search over the regions sorted by
        base (they never overlap).  ``regions`` may be changed directly, so a hit is checked
        against it, and a miss falls back to a scan that rebuilds the index."""
        i = bisect_right(self._bases, addr) - 1
        if i >= 0:
            r = self._sorted[i]
            if r.base <= addr and addr + size <= r.base + len(r.data) \
                    and self.regions.get(r.name) is r:
                return r
        self._sorted = sorted(self.regions.values(), key=lambda r: r.base)
        self._bases = [r.base for r in self._sorted]
        for r in self._sorted:
            if r.base <= addr and addr + size <= r.end:
                return r
        return None

    def read(self, addr: int, size: int) -> bytes:
        r = self.find(addr, size)
        if r is None:
            raise Fault(addr, size, False)
        o = addr - r.base
        return bytes(r.data[o:o + size])

    def write(self, addr: int, data: bytes) -> None:
        r = self.find(addr, len(data))
        if r is None:
            raise Fault(addr, len(data), True)
        o = addr - r.base
        r.data[o:o + len(data)] = data

    def read_u(self, addr: int, size: int) -> int:
        return int.from_bytes(self.read(addr, size), "little")

    def write_u(self, addr: int, size: int, value: int) -> None:
        self.write(addr, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))

    def read_u64(self, addr: int) -> int:
        return struct.unpack("<Q", self.read(addr, 8))[0]

    def read_cstr(self, addr: int, limit: int = 4096) -> bytes:
        """Bytes of the NUL-terminated string at ``addr`` (without the NUL), at most ``limit``."""
        r = self.find(addr)
        if r is None:
            raise Fault(addr, 1, False)
        o = addr - r.base
        end = r.data.find(b"\0", o, min(len(r.data), o + limit))
        if end < 0:
            if o + limit <= len(r.data):
                return bytes(r.data[o:o + limit])
            raise Fault(r.end, 1, False)
        return bytes(r.data[o:end])


@dataclass
class Heap:
    """kmalloc/kfree on the ``heap`` region: a first-fit allocator with 16-byte granules.

    ``allocs`` maps address → requested size; ``free`` is a sorted list of (addr, size) holes.
    The region grows by whole pages when no hole fits.
    """
    allocs: dict[int, int] = field(default_factory=dict)
    free: list[tuple[int, int]] = field(default_factory=list)
    top: int = HEAP_BASE

    GRANULE = 16

    def kmalloc(self, mm: AddressSpace, size: int, zero: bool = False) -> int:
        need = align(max(size, 1), self.GRANULE)
        for i, (a, s) in enumerate(self.free):
            if s >= need:
                if s == need:
                    del self.free[i]
                else:
                    self.free[i] = (a + need, s - need)
                break
        else:
            a = self.top
            self.top += need
            region = mm.regions.get("heap") or mm.map("heap", HEAP_BASE, 0)
            if self.top > region.end:
                region.data.extend(bytes(page_align(self.top - HEAP_BASE) - len(region.data)))
        self.allocs[a] = size
        if zero:
            mm.write(a, bytes(size))
        else:                                   # slab poison-free but not zeroed: fill like SLUB
            mm.write(a, b"\x6b" * size)
        return a

    def kfree(self, mm: AddressSpace, addr: int) -> int:
        """Free ``addr``; returns the size freed.  Raises KeyError for a pointer never allocated."""
        size = self.allocs.pop(addr)
        self.free.append((addr, align(max(size, 1), self.GRANULE)))
        self.free.sort()
        merged: list[tuple[int, int]] = []
        for a, s in self.free:
            if merged and merged[-1][0] + merged[-1][1] == a:
                merged[-1] = (merged[-1][0], merged[-1][1] + s)
            else:
                merged.append((a, s))
        self.free = merged
        return size

    def ksize(self, addr: int) -> int:
        return self.allocs[addr]
