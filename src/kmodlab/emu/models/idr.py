"""ID allocators and the XArray (lib/xarray.c, lib/idr.c, lib/radix-tree.c's IDR parts;
include/linux/xarray.h, idr.h), Linux 6.1 and 6.12.

**Where the entries live.**  Each array's contents are kept in ``emu.state["xarray"]`` keyed by
the address of its ``struct xarray`` (an IDR's ``idr_rt``, which is the same structure; an IDA's
``xa``): ``{"e": {index: entry}, "m": {index: marks}, "node": fake node or 0}``.  An entry that
is present is a key of ``e`` (its value may be 0: an IDR id allocated with a NULL pointer, which
the kernel keeps as a NULL slot whose IDR_FREE tag is clear).  An IDA's ids are kept in
``emu.state["ida"]`` (address → sorted ids).

**What module code sees in memory.**  The ``struct xarray`` itself is the module's (static,
``DEFINE_IDR``/``DEFINE_IDA``/``DEFINE_XARRAY_ALLOC``, or initialised by the inline
``xa_init_flags``/``idr_init_base``/``ida_init``): the models read ``xa_flags`` from it on every
call and keep it and ``xa_head`` as the kernel's would be:

* ``xa_head`` is NULL exactly when nothing is stored (``xa_empty``, ``idr_is_empty``); an array
  holding only index 0 has that entry itself in ``xa_head`` (as the kernel does: no node); any
  other content is represented by a heap block standing for the top ``struct xa_node`` (tagged
  ``| 2``, xa_mk_node).  That block is zeroed: code that walks the nodes itself (``xas_*``
  inlines reading ``xa_node``) would not see the entries — out of scope; the exported
  ``xas_*`` functions are not modelled and stop init by name.
* the mark bits of ``xa_flags`` (``XA_FLAGS_MARK(m)``, at ``__GFP_BITS_SHIFT``: 27 in Debian's
  6.1, 25 in 6.12 (``___GFP_LAST_BIT`` with CONFIG_SLAB_OBJ_EXT)) say whether any entry has
  mark m; in an array that tracks free entries (``XA_FLAGS_TRACK_FREE``, the IDR's
  ``ROOT_IS_IDR``) mark 0 is XA_FREE_MARK: set while some index is free within what the top node
  covers (index 0 alone when there is no node; ``XA_FLAGS_ZERO_BUSY`` keeps index 0 busy);
  ``XA_FLAGS_ALLOC_WRAPPED`` as ``__xa_alloc_cyclic`` sets and clears it.

The state of a structure in module memory outlives the module (nothing drops it at unload): a
later module laid out at the same address whose structure starts with xa_head NULL is taken as
re-initialised, except in the one case where the kernel's own root is NULL while an entry exists
(an IDR whose only id is 0, allocated with a NULL pointer).

Checked against Debian's binaries: ``ida_free``, ``ida_alloc_range``, ``idr_alloc_cyclic``,
``__xa_alloc_cyclic`` and the XA_ZERO_ENTRY → NULL results of ``__xa_store``/``__xa_erase``/
``__xa_cmpxchg`` in both vmlinux images; the mark shift in the static
``DEFINE_XARRAY_FLAGS(clients, XA_FLAGS_ALLOC)`` of ib_core (0x08000004 in 6.1, 0x02000004 in
6.12); idr_preload_end as a module compiles it (dca: ``decl %gs:__preempt_count``).

If ``xa_head`` is not what the models last wrote the structure was changed by code the models
do not see: NULL is a re-initialisation (the old contents are forgotten, as the kernel would
leak them); anything else stops the call as Unmodelled.

**Errors** are the kernel's: -ENOSPC (IDR/IDA full, or a range with no room), -EBUSY
(``__xa_insert`` on a present or reserved index, ``__xa_alloc`` with no free index),
-EINVAL (as ``XA_ERROR``, ``xa_mk_internal(errno)``, for the functions returning entries).
-ENOMEM never happens: the sandbox has memory.  The ``WARN_ON_ONCE`` paths (an internal entry
stored, ``__xa_alloc`` on an array without free tracking, ``idr_alloc`` with start < 0) stop
init as Unmodelled rather than print a WARNING whose source line the models do not know.
``ida_free`` of an id that is not allocated prints the kernel's WARN text (its WARNING line
without the register dump); a negative id is ignored (both kernels: ``if ((int)id < 0)
return``, checked in Debian's vmlinux).
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..layouts import layout
from ..registry import model

LAYOUT = layout("idr")
XA_FLAGS = ("xarray", "xa_flags")
XA_HEAD = ("xarray", "xa_head")
XA_NODE_SIZE = ("xa_node", "sizeof")
IDR_BASE = ("idr", "idr_base")
IDR_NEXT = ("idr", "idr_next")

ENOENT, ENOMEM, EBUSY, EINVAL, ENOSPC = 2, 12, 16, 22, 28
MASK64 = (1 << 64) - 1
INT_MAX = 0x7FFFFFFF
ULONG_MAX = MASK64
XA_FLAGS_TRACK_FREE, XA_FLAGS_ZERO_BUSY, XA_FLAGS_ALLOC_WRAPPED = 4, 8, 16
XA_FREE_MARK = 0
XA_MAX_MARKS = 3
XA_PRESENT = 8
XA_CHUNK_SHIFT = 6
XA_ZERO_ENTRY = (257 << 2) | 2               # xa_mk_internal(257)
XA_RETRY_ENTRY = (256 << 2) | 2              # xa_mk_internal(256)
MAX_ERRNO = 4095
IDA_BITMAP_BITS = 1024
BITS_PER_XA_VALUE = 63
IDA_BITMAP_SIZE = 128


def _o(emu, key):
    return LAYOUT.of(emu)[key]


def gfp_bits_shift(emu) -> int:
    """__GFP_BITS_SHIFT of the running kernel (Debian's configs: no LOCKDEP, no KASAN_HW_TAGS;
    6.12 counts ___GFP_NO_OBJ_EXT_BIT for CONFIG_SLAB_OBJ_EXT)."""
    return 25 if emu.kernel_version >= (6, 12) else 27


def mark_flag(emu, mark: int) -> int:
    return (1 << gfp_bits_shift(emu)) << mark


def xa_err(errno: int) -> int:
    """XA_ERROR(-errno): xa_mk_internal of the negative errno."""
    return ((-errno << 2) | 2) & MASK64


def is_internal(entry: int) -> bool:
    return entry & 3 == 2


def is_advanced(entry: int) -> bool:
    return is_internal(entry) and entry <= XA_RETRY_ENTRY


def _signed32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _warn_once(emu, fn: str, what: str):
    raise Unmodelled(f"{fn} (WARN_ON_ONCE: {what})", what=emu.what)


# --- the array's state and its in-memory root ---------------------------------------------------
class XA:
    """One struct xarray: its entries (state) and the root fields module code reads."""

    def __init__(self, emu, addr: int):
        self.emu, self.addr = emu, addr
        arrays = emu.state.setdefault("xarray", {})
        self.flags = emu.read_u(addr + _o(emu, XA_FLAGS), 4)
        head = emu.read_u(addr + _o(emu, XA_HEAD), 8)
        rec = arrays.get(str(addr))
        if rec is not None and head != rec["head"]:
            if head != 0:
                raise Unmodelled(f"{emu._model_name} (struct xarray at {addr:#x}: xa_head "
                                 f"{head:#x} was changed outside the models)", what=emu.what)
            rec = None                         # re-initialised (xa_init, idr_init, memset)
        if rec is None:
            if head != 0:
                raise Unmodelled(f"{emu._model_name} (struct xarray at {addr:#x} holds entries "
                                 "the models did not store: xa_head "
                                 f"{head:#x})", what=emu.what)
            rec = arrays[str(addr)] = {"e": {}, "m": {}, "node": 0, "head": 0}
        self.rec = rec

    # contents
    @property
    def entries(self) -> dict[str, int]:
        return self.rec["e"]

    def present(self, index: int) -> bool:
        return str(index) in self.entries

    def get(self, index: int) -> int | None:
        return self.entries.get(str(index))

    def indices(self) -> list[int]:
        return sorted(int(i) for i in self.entries)

    @property
    def track_free(self) -> bool:
        return bool(self.flags & XA_FLAGS_TRACK_FREE)

    @property
    def zero_busy(self) -> bool:
        return bool(self.flags & XA_FLAGS_ZERO_BUSY)

    def free(self, index: int) -> bool:
        """Allocatable by __xa_alloc / idr_get_free: not present (index 0 stays busy in a
        XA_FLAGS_ZERO_BUSY array)."""
        return not self.present(index) and not (index == 0 and self.zero_busy)

    def store(self, index: int, entry: int | None) -> None:
        if entry is None:
            self.entries.pop(str(index), None)
            self.rec["m"].pop(str(index), None)
        else:
            self.entries[str(index)] = entry

    def marks(self, index: int) -> int:
        return self.rec["m"].get(str(index), 0)

    def set_marks(self, index: int, bits: int) -> None:
        if bits:
            self.rec["m"][str(index)] = bits
        else:
            self.rec["m"].pop(str(index), None)

    def first_free(self, lo: int, hi: int) -> int | None:
        """The lowest allocatable index in [lo, hi], or None."""
        if lo > hi:
            return None
        i = lo
        taken = {int(k) for k in self.entries}
        while i <= hi:
            if i not in taken and not (i == 0 and self.zero_busy):
                return i
            i += 1
        return None

    def next_present(self, lo: int, hi: int, mark: int | None = None) -> int | None:
        """The lowest index in [lo, hi] holding an entry (a non-reserved one, with ``mark``
        if given), or None."""
        best = None
        for k, v in self.entries.items():
            i = int(k)
            if lo <= i <= hi and (best is None or i < best):
                if v == XA_ZERO_ENTRY and mark is None:
                    continue
                if mark is not None and not self.marks(i) & (1 << mark):
                    continue
                best = i
        return best

    # the root, as the kernel leaves it
    def _capacity(self) -> int:
        idx = self.indices()
        if not idx or idx == [0]:
            return 1
        top = max(idx)
        cap = 1 << XA_CHUNK_SHIFT
        while top >= cap:
            cap <<= XA_CHUNK_SHIFT
        return cap

    def sync(self) -> None:
        emu, rec = self.emu, self.rec
        idx = self.indices()
        if not idx:
            head = 0
        elif idx == [0]:
            head = self.entries["0"]
        else:
            head = None
        if head is not None and rec["node"]:
            emu.kfree(rec["node"])
            rec["node"] = 0
        if head is None:
            if not rec["node"]:
                rec["node"] = emu.kmalloc(_o(emu, XA_NODE_SIZE), zero=True)
            head = rec["node"] | 2                 # xa_mk_node
        rec["head"] = head
        emu.write_u(self.addr + _o(emu, XA_HEAD), 8, head)
        flags = self.flags
        for m in range(XA_MAX_MARKS):
            if m == XA_FREE_MARK and self.track_free:
                cap = self._capacity()
                on = len([i for i in idx if i < cap]) + (1 if self.zero_busy and
                                                         not self.present(0) else 0) < cap
            else:
                on = any(self.marks(i) & (1 << m) for i in idx)
            flags = flags | mark_flag(emu, m) if on else flags & ~mark_flag(emu, m)
        self.flags = flags
        emu.write_u(self.addr + _o(emu, XA_FLAGS), 4, flags)

    def forget(self) -> None:
        if self.rec["node"]:
            self.emu.kfree(self.rec["node"])
        self.rec.update(e={}, m={}, node=0)


def _zero_to_null(entry: int | None) -> int:
    return 0 if entry is None or entry == XA_ZERO_ENTRY else entry


# --- XArray -------------------------------------------------------------------------------------
@model("xa_load")
def xa_load(emu, xa, index):
    return _zero_to_null(XA(emu, xa).get(index))


def _store(emu, xa, index, entry, name):
    if is_advanced(entry):
        _warn_once(emu, name, f"internal entry {entry:#x}")
    a = XA(emu, xa)
    if a.track_free and not entry:
        entry = XA_ZERO_ENTRY
    old = a.get(index)
    a.store(index, entry or None)
    a.sync()
    return _zero_to_null(old)


@model("__xa_store")
def __xa_store(emu, xa, index, entry, gfp):
    """The old entry (NULL for none or a reserved one); storing NULL erases, except in an
    allocating array, where it reserves the index (XA_ZERO_ENTRY)."""
    return _store(emu, xa, index, entry, "__xa_store")


@model("xa_store")
def xa_store(emu, xa, index, entry, gfp):
    return _store(emu, xa, index, entry, "xa_store")


@model("__xa_insert")
def __xa_insert(emu, xa, index, entry, gfp):
    """0, or -EBUSY if the index holds an entry (a reserved one too); NULL reserves."""
    if is_advanced(entry):
        _warn_once(emu, "__xa_insert", f"internal entry {entry:#x}")
    a = XA(emu, xa)
    if a.present(index):
        return -EBUSY
    a.store(index, entry or XA_ZERO_ENTRY)
    a.sync()
    return 0


def _erase(emu, xa, index):
    a = XA(emu, xa)
    old = a.get(index)
    a.store(index, None)
    a.sync()
    return _zero_to_null(old)


@model("__xa_erase")
def __xa_erase(emu, xa, index):
    return _erase(emu, xa, index)


@model("xa_erase")
def xa_erase(emu, xa, index):
    return _erase(emu, xa, index)


@model("__xa_cmpxchg")
def __xa_cmpxchg(emu, xa, index, old, entry, gfp):
    """Stores ``entry`` if the index holds ``old`` (compared raw: a reserved index is not
    NULL); returns what it held (reserved → NULL)."""
    if is_advanced(entry):
        _warn_once(emu, "__xa_cmpxchg", f"internal entry {entry:#x}")
    a = XA(emu, xa)
    if a.track_free and not entry:
        entry = XA_ZERO_ENTRY
    curr = a.get(index)
    if (curr or 0) == old:
        a.store(index, entry or None)
        a.sync()
    return _zero_to_null(curr)


def _alloc(emu, a: XA, idp, entry, lo, hi, name) -> int:
    if is_advanced(entry):
        _warn_once(emu, name, f"internal entry {entry:#x}")
    if not a.track_free:
        _warn_once(emu, name, f"struct xarray at {a.addr:#x} does not track free entries")
    i = a.first_free(lo, hi)
    if i is None:
        return -EBUSY
    emu.write_u(idp, 4, i)
    a.store(i, entry or XA_ZERO_ENTRY)
    a.sync()
    return 0


@model("__xa_alloc")
def __xa_alloc(emu, xa, idp, entry, limit, gfp):
    """The lowest free index in [limit.min, limit.max] (struct xa_limit {u32 max, min} passed
    in one register) → *id, 0; -EBUSY when none is free."""
    hi, lo = limit & 0xFFFFFFFF, (limit >> 32) & 0xFFFFFFFF
    return _alloc(emu, XA(emu, xa), idp, entry, lo, hi, "__xa_alloc")


@model("__xa_alloc_cyclic")
def __xa_alloc_cyclic(emu, xa, idp, entry, limit, nextp, gfp):
    """From max(min, *next), wrapping to min once: 0, or 1 when the allocation wrapped (also
    when *next had wrapped past U32_MAX: XA_FLAGS_ALLOC_WRAPPED); *next = id + 1."""
    hi, lo = limit & 0xFFFFFFFF, (limit >> 32) & 0xFFFFFFFF
    nxt = emu.read_u(nextp, 4)
    a = XA(emu, xa)
    start = max(lo, nxt)
    ret = _alloc(emu, a, idp, entry, start, hi, "__xa_alloc_cyclic")
    if ret == 0 and a.flags & XA_FLAGS_ALLOC_WRAPPED:
        a.flags &= ~XA_FLAGS_ALLOC_WRAPPED
        emu.write_u(xa + _o(emu, XA_FLAGS), 4, a.flags)
        ret = 1
    if ret < 0 and start > lo:
        ret = _alloc(emu, a, idp, entry, lo, hi, "__xa_alloc_cyclic")
        if ret == 0:
            ret = 1
    if ret >= 0:
        n = (emu.read_u(idp, 4) + 1) & 0xFFFFFFFF
        emu.write_u(nextp, 4, n)
        if n == 0:
            a.flags |= XA_FLAGS_ALLOC_WRAPPED
            emu.write_u(xa + _o(emu, XA_FLAGS), 4, a.flags)
    return ret


def _find(emu, xa, indexp, lo, hi, filt):
    a = XA(emu, xa)
    if filt < XA_MAX_MARKS:
        if filt == XA_FREE_MARK and a.track_free:
            raise Unmodelled(f"{emu._model_name} (a search for XA_FREE_MARK)", what=emu.what)
        i = a.next_present(lo, hi, filt)
    else:
        i = a.next_present(lo, hi)
    if i is None:
        return 0
    emu.write_u(indexp, 8, i)
    return a.get(i)


@model("xa_find")
def xa_find(emu, xa, indexp, maxi, filt):
    """The first entry at an index in [*indexp, max] (XA_PRESENT, or having mark ``filt``);
    reserved entries are skipped; *indexp is set to its index; NULL if none."""
    return _find(emu, xa, indexp, emu.read_u(indexp, 8), maxi, filt)


@model("xa_find_after")
def xa_find_after(emu, xa, indexp, maxi, filt):
    lo = (emu.read_u(indexp, 8) + 1) & MASK64
    if lo == 0:
        return 0
    return _find(emu, xa, indexp, lo, maxi, filt)


@model("xa_destroy")
def xa_destroy(emu, xa):
    """Every entry gone; marks cleared, XA_FREE_MARK set again (not for ZERO_BUSY)."""
    a = XA(emu, xa)
    a.forget()
    a.sync()


def _mark(emu, xa, index, mark, on: bool):
    a = XA(emu, xa)
    if mark >= XA_MAX_MARKS or (mark == XA_FREE_MARK and a.track_free):
        raise Unmodelled(f"{emu._model_name} (mark {mark})", what=emu.what)
    if not a.present(index):
        return                                   # only entries carry marks
    bits = a.marks(index)
    a.set_marks(index, bits | (1 << mark) if on else bits & ~(1 << mark))
    a.sync()


for _n, _on in (("xa_set_mark", True), ("__xa_set_mark", True), ("xa_clear_mark", False),
                ("__xa_clear_mark", False)):
    model(_n)((lambda on: lambda emu, xa, index, mark: _mark(emu, xa, index, mark, on))(_on))


@model("xa_get_mark")
def xa_get_mark(emu, xa, index, mark):
    a = XA(emu, xa)
    if mark >= XA_MAX_MARKS or (mark == XA_FREE_MARK and a.track_free):
        raise Unmodelled(f"xa_get_mark (mark {mark})", what=emu.what)
    return 1 if a.present(index) and a.marks(index) & (1 << mark) else 0


# --- IDR (lib/idr.c; idr_rt is a struct xarray flagged ROOT_IS_IDR | IDR_FREE tag) --------------
def _idr_alloc_u32(emu, idr, ptr, nextp, maxv) -> int:
    a = XA(emu, idr)
    if not a.flags & XA_FLAGS_TRACK_FREE:
        _warn_once(emu, "idr_alloc_u32", f"struct idr at {idr:#x} is not initialised")
    base = emu.read_u(idr + _o(emu, IDR_BASE), 4)
    i = emu.read_u(nextp, 4)
    lo = 0 if i < base else i - base
    hi = min((maxv - base) & MASK64, 0xFFFFFFFF)      # idr_get_free's max; *nextid is a u32
    got = a.first_free(lo, hi)
    if got is None:
        return -ENOSPC
    emu.write_u(nextp, 4, got + base)
    a.store(got, ptr)
    a.sync()
    return 0


@model("idr_alloc_u32")
def idr_alloc_u32(emu, idr, ptr, nextp, maxv, gfp):
    """The lowest free id in [*nextid, max] → *nextid, 0; -ENOSPC when none (ids are offsets
    from idr_base)."""
    return _idr_alloc_u32(emu, idr, ptr, nextp, maxv)


def _scratch(emu, v: int) -> int:
    p = emu.state.setdefault("idr_scratch", 0) or emu.kmalloc(8, zero=True)
    emu.state["idr_scratch"] = p
    emu.write_u(p, 4, v)
    return p


@model("idr_alloc")
def idr_alloc(emu, idr, ptr, start, end, gfp):
    """The lowest free id in [start, end) (end <= 0: INT_MAX inclusive), or -ENOSPC."""
    start, end = _signed32(start), _signed32(end)
    if start < 0:
        _warn_once(emu, "idr_alloc", f"start {start}")
    p = _scratch(emu, start)
    ret = _idr_alloc_u32(emu, idr, ptr, p, end - 1 if end > 0 else INT_MAX)
    return ret if ret else emu.read_u(p, 4)


@model("idr_alloc_cyclic")
def idr_alloc_cyclic(emu, idr, ptr, start, end, gfp):
    """From idr_next (at least start), wrapping to start once; idr_next = id + 1."""
    start, end = _signed32(start), _signed32(end)
    i = emu.read_u(idr + _o(emu, IDR_NEXT), 4)
    maxv = end - 1 if end > 0 else INT_MAX
    if _signed32(i) < start:
        i = start & 0xFFFFFFFF
    p = _scratch(emu, i)
    err = _idr_alloc_u32(emu, idr, ptr, p, maxv)
    if err == -ENOSPC and i > (start & 0xFFFFFFFF):
        emu.write_u(p, 4, start)
        err = _idr_alloc_u32(emu, idr, ptr, p, maxv)
    if err:
        return err
    got = emu.read_u(p, 4)
    emu.write_u(idr + _o(emu, IDR_NEXT), 4, (got + 1) & 0xFFFFFFFF)
    return got


def _idr_index(emu, idr, id_) -> int:
    return (id_ - emu.read_u(idr + _o(emu, IDR_BASE), 4)) & MASK64


@model("idr_find")
def idr_find(emu, idr, id_):
    return XA(emu, idr).get(_idr_index(emu, idr, id_)) or 0


@model("idr_remove")
def idr_remove(emu, idr, id_):
    """The pointer that was at id (NULL if none); the id becomes free."""
    a = XA(emu, idr)
    i = _idr_index(emu, idr, id_)
    old = a.get(i)
    if old is None:
        return 0
    a.store(i, None)
    a.sync()
    return old


@model("idr_replace")
def idr_replace(emu, idr, ptr, id_):
    """The old pointer, or ERR_PTR(-ENOENT) for an id that is not allocated."""
    a = XA(emu, idr)
    i = _idr_index(emu, idr, id_)
    old = a.get(i)
    if old is None:
        return (-ENOENT) & MASK64
    a.store(i, ptr)
    a.sync()
    return old


def _next(emu, idr, lo):
    """(index, entry) of the first non-NULL entry at or after lo."""
    a = XA(emu, idr)
    best = None
    for k, v in a.entries.items():
        i = int(k)
        if i >= lo and v and (best is None or i < best[0]):
            best = (i, v)
    return best


@model("idr_get_next_ul")
def idr_get_next_ul(emu, idr, nextp):
    base = emu.read_u(idr + _o(emu, IDR_BASE), 4)
    i = emu.read_u(nextp, 8)
    got = _next(emu, idr, 0 if i < base else i - base)
    if got is None:
        return 0
    emu.write_u(nextp, 8, got[0] + base)
    return got[1]


@model("idr_get_next")
def idr_get_next(emu, idr, nextp):
    """The first non-NULL pointer at an id >= *nextid, *nextid set to that id; NULL if none."""
    base = emu.read_u(idr + _o(emu, IDR_BASE), 4)
    i = _signed32(emu.read_u(nextp, 4)) & MASK64    # int → unsigned long (sign-extended)
    got = _next(emu, idr, 0 if i < base else i - base)
    if got is None:
        return 0
    if got[0] + base > INT_MAX:
        _warn_once(emu, "idr_get_next", f"id {got[0] + base} > INT_MAX")
    emu.write_u(nextp, 4, got[0] + base)
    return got[1]


@model("idr_for_each")
def idr_for_each(emu, idr, fn, data):
    """Calls fn(id, ptr, data) for each non-NULL pointer in id order; stops at the first
    non-zero return, which it returns."""
    base = emu.read_u(idr + _o(emu, IDR_BASE), 4)
    lo = 0
    while True:
        got = _next(emu, idr, lo)
        if got is None:
            return 0
        i, v = got
        if i + base > INT_MAX:
            _warn_once(emu, "idr_for_each", f"id {i + base} > INT_MAX")
        ret = _signed32(emu.call_module(fn, (i + base, v, data)))
        if ret:
            return ret
        lo = i + 1


@model("idr_destroy")
def idr_destroy(emu, idr):
    """Frees the tree (not the pointers); the IDR is empty with its IDR_FREE tag set."""
    a = XA(emu, idr)
    a.forget()
    a.sync()


@model("idr_preload")
def idr_preload(emu, gfp):
    """Fills this CPU's radix-tree node cache and returns holding its local_lock, i.e. with
    preemption disabled; idr_preload_end() is the inline local_unlock → preempt_enable()."""
    from .locking import preempt_add
    preempt_add(emu, 1)


@model("radix_tree_tagged")
def radix_tree_tagged(emu, root, tag):
    """Whether any entry has the tag: the root's flag bit (idr_is_empty asks for IDR_FREE)."""
    a = XA(emu, root)
    return 1 if a.flags & mark_flag(emu, tag) else 0


# --- IDA (lib/idr.c) ----------------------------------------------------------------------------
def _ida(emu, ida) -> tuple[XA, list[int]]:
    a = XA(emu, ida)
    ids = emu.state.setdefault("ida", {}).setdefault(str(ida), [])
    if not a.entries and ids:
        ids.clear()                              # re-initialised
    return a, ids


def _ida_sync(emu, a: XA, ids: list[int]) -> None:
    """The chunk entries of the IDA's xarray: a value entry (xa_mk_value(bits)) for a chunk
    whose ids are all < 63, else a struct ida_bitmap (kmalloc'd, its bits written)."""
    chunks: dict[int, list[int]] = {}
    for i in ids:
        chunks.setdefault(i // IDA_BITMAP_BITS, []).append(i % IDA_BITMAP_BITS)
    for k in list(a.entries):
        e = a.entries[k]
        if not e & 1:
            emu.kfree(e)
        a.store(int(k), None)
    for c, bits in chunks.items():
        if max(bits) < BITS_PER_XA_VALUE:
            a.store(c, (sum(1 << b for b in bits) << 1) | 1)
        else:
            p = emu.kmalloc(IDA_BITMAP_SIZE, zero=True)
            emu.write(p, sum(1 << b for b in bits).to_bytes(IDA_BITMAP_SIZE, "little"))
            a.store(c, p)
    a.sync()
    if a.flags & XA_FLAGS_TRACK_FREE:
        # XA_FREE_MARK on a chunk means it has a free bit: a full 1024-bit chunk is not free
        cap = a._capacity()
        full = [c for c, bits in chunks.items() if len(bits) == IDA_BITMAP_BITS and c < cap]
        on = len(full) < cap
        f = a.flags | mark_flag(emu, 0) if on else a.flags & ~mark_flag(emu, 0)
        a.flags = f
        emu.write_u(a.addr + _o(emu, XA_FLAGS), 4, f)


@model("ida_alloc_range")
def ida_alloc_range(emu, ida, lo, hi, gfp):
    """The lowest free id in [min, max] (max < 0 as an int: INT_MAX); -ENOSPC if min < 0 as
    an int or no id is free."""
    lo, hi = _signed32(lo), _signed32(hi)
    if lo < 0:
        return -ENOSPC
    if hi < 0:
        hi = INT_MAX
    a, ids = _ida(emu, ida)
    taken = set(ids)
    i = lo
    while i <= hi and i in taken:
        i += 1
    if i > hi:
        return -ENOSPC
    ids.append(i)
    ids.sort()
    _ida_sync(emu, a, ids)
    return i


@model("ida_free")
def ida_free(emu, ida, id_):
    i = _signed32(id_)
    if i < 0:
        return
    a, ids = _ida(emu, ida)
    if i not in ids:
        emu.printk(4, "------------[ cut here ]------------\n")
        emu.printk(4, f"ida_free called for id={i} which is not allocated.\n")
        emu.printk(4, f"WARNING: CPU: 0 PID: {emu.pid} at lib/idr.c ida_free\n")
        return
    ids.remove(i)
    _ida_sync(emu, a, ids)


@model("ida_destroy")
def ida_destroy(emu, ida):
    a, ids = _ida(emu, ida)
    ids.clear()
    _ida_sync(emu, a, ids)
