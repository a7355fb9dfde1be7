"""The kernel's printf (lib/vsprintf.c): one renderer for printk and the sprintf family.

Follows the kernel rather than C where they differ: ``%#x`` of 0 prints ``0x0``, ``%.0d`` of
0 prints ``0``, plain ``%p`` prints a hashed pointer (``00000000`` + 32 hash bits, as
``ptr_to_id`` does on 64-bit), ``%px`` the raw value, ``%pS``/``%ps``/``%pB`` a symbol,
``%pe`` an errno name, ``%pV`` a nested format with its va_list, a bad ``%s`` pointer
``(null)``/``(efault)``, and an unsupported
conversion stops the output.  Integer qualifiers: hh h l ll L z Z t j.
"""
from __future__ import annotations

import errno as _errno
import hashlib
from typing import Iterator

from ..registry import model

LEFT, PLUS, SPACE, SPECIAL, ZEROPAD, SMALL = 1, 2, 4, 8, 16, 32
PAGE_SIZE = 4096
MAX_ERRNO = 4095
INT_MAX = 0x7FFFFFFF
_PTR_KEY = b"kmodlab ptr_key"

# lib/ctype.c's classes on a format's bytes (decoded as latin-1): isdigit is 0-9 only (Python's
# str.isdigit also takes '¹', '²' …); isalnum adds Latin-1's letters À-Ö, Ø-ö, ø-ÿ
DIGITS = frozenset("0123456789")
ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                  + "".join(map(chr, [*range(0xC0, 0xD7), *range(0xD8, 0xF7), *range(0xF8, 0x100)])))


class VaList:
    """An x86-64 ``va_list`` in emulated memory (gp_offset, fp_offset, overflow, reg_save)."""

    def __init__(self, emu, ap: int):
        self.emu, self.ap = emu, ap
        self.gp = emu.read_u(ap, 4)
        self.overflow = emu.read_u(ap + 8, 8)
        self.save = emu.read_u(ap + 16, 8)

    def __iter__(self) -> Iterator[int]:
        while True:
            if self.gp < 48:
                v = self.emu.read_u(self.save + self.gp, 8)
                self.gp += 8
            else:
                v = self.emu.read_u(self.overflow, 8)
                self.overflow += 8
            yield v

    def store(self) -> None:
        """Write the consumed position back, as the callee of a by-pointer va_list does."""
        self.emu.write_u(self.ap, 4, self.gp)
        self.emu.write_u(self.ap + 8, 8, self.overflow)


def _trunc(v: int, bits: int, signed: bool) -> int:
    v &= (1 << bits) - 1
    if signed and v >> (bits - 1):
        v -= 1 << bits
    return v


def number(num: int, base: int, flags: int, width: int, precision: int, signed: bool) -> str:
    """lib/vsprintf.c number(): sign, 0x/0 prefix, padding, as the kernel lays them out."""
    if flags & LEFT:
        flags &= ~ZEROPAD
    sign = ""
    size = width
    if signed:
        if num < 0:
            sign, num = "-", -num
        elif flags & PLUS:
            sign = "+"
        elif flags & SPACE:
            sign = " "
        if sign:
            size -= 1
    need_pfx = bool(flags & SPECIAL) and base != 10
    if need_pfx:
        size -= 2 if base == 16 else 1
    if base == 10:
        digits = str(num)
    elif base == 16:
        digits = format(num, "x" if flags & SMALL else "X")
    else:
        digits = format(num, "o")
    precision = max(precision, len(digits))
    size -= precision
    out = []
    if not flags & (ZEROPAD | LEFT) and size > 0:
        out.append(" " * size)
        size = 0
    out.append(sign)
    if need_pfx:
        if base == 16 or num != 0:
            out.append("0")
        if base == 16:
            out.append("x" if flags & SMALL else "X")
    if not flags & LEFT and size > 0:
        out.append(("0" if flags & ZEROPAD else " ") * size)
        size = 0
    out.append("0" * (precision - len(digits)))
    out.append(digits)
    if size > 0:
        out.append(" " * size)
    return "".join(out)


def widen(s: str, flags: int, width: int) -> str:
    if len(s) >= width:
        return s
    return s.ljust(width) if flags & LEFT else s.rjust(width)


def ptr_to_id(ptr: int) -> int:
    """The hashed value plain %p prints: 32 bits of a keyed hash, upper half zero."""
    h = hashlib.blake2b(ptr.to_bytes(8, "little"), key=_PTR_KEY, digest_size=4).digest()
    return int.from_bytes(h, "little")


def _errname(err: int) -> str | None:
    n = _errno.errorcode.get(err)
    return {"EWOULDBLOCK": "EAGAIN", "EDEADLOCK": "EDEADLK"}.get(n, n) if n else None


def _string(emu, ptr: int, flags: int, width: int, precision: int) -> str:
    if ptr < PAGE_SIZE:
        s = "(null)"
    elif ptr >= (1 << 64) - MAX_ERRNO or not emu.readable(ptr):
        s = "(efault)"
    else:
        limit = precision if precision >= 0 else 1 << 16
        try:
            s = emu.cstr(ptr, limit).decode("latin-1")
        except Exception:                       # noqa: BLE001 - runs off mapped memory
            s = "(efault)"
    if precision >= 0:
        s = s[:precision]
    return widen(s, flags, width)


def _pointer(emu, ext: str, ptr: int, flags: int, width: int, precision: int) -> str:
    c = ext[:1]
    if c == "V":
        # %pV: a struct va_format {fmt 0, va 8} printed in place (va_format): the inner
        # format with a copy of its va_list; width and flags do not apply
        if not ptr:
            return "(null)"
        if ptr >= (1 << 64) - MAX_ERRNO or not emu.readable(ptr, 16):
            return "(efault)"
        return vsprintf(emu, emu.cstr(emu.read_u(ptr, 8)), VaList(emu, emu.read_u(ptr + 8, 8)))
    if c in ("S", "s", "B"):
        sym = emu.symbol(ptr) if hasattr(emu, "symbol") else f"{ptr:#x}"
        if c == "s":
            name, _, rest = sym.partition("+")
            mod = rest[rest.find(" ["):] if " [" in rest else ""
            sym = name + mod
        return widen(sym, flags, width)
    if c == "x":
        return number(ptr, 16, (flags | SMALL | (ZEROPAD if width < 0 else 0)),
                      16 if width < 0 else width, precision, False)
    if c == "e":
        if ptr >= (1 << 64) - MAX_ERRNO:
            err = (1 << 64) - ptr
            name = _errname(err)
            return widen(f"-{name}" if name else str(-err), flags, width)
    if c == "a" and emu.readable(ptr, 8):     # %pa: phys_addr_t by reference
        return number(emu.read_u(ptr, 8), 16, flags | SPECIAL | SMALL | ZEROPAD, 18, -1, False)
    if c in ("M", "m") and emu.readable(ptr, 6):
        b = emu.read(ptr, 6)
        if ext[1:2] == "R":
            b = b[::-1]
        return widen((":" if c == "M" else "").join(f"{x:02x}" for x in b), flags, width)
    if c in ("I", "i") and ext[1:2] == "4" and emu.readable(ptr, 4):
        b = emu.read(ptr, 4)
        return widen(".".join((f"{x}" if c == "I" else f"{x:03d}") for x in b), flags, width)
    # default_pointer → ptr_to_id (also %pK with kptr_restrict=0, and unknown extensions)
    return number(ptr_to_id(ptr), 16, flags | SMALL | (ZEROPAD if width < 0 else 0),
                  16 if width < 0 else width, precision, False)


def vsprintf(emu, fmt: bytes, args: Iterator[int]) -> str:
    """Render ``fmt`` with integer ``args`` (text as latin-1, byte for byte)."""
    out: list[str] = []
    f = fmt.decode("latin-1")
    i, n = 0, len(f)
    args = iter(args)
    while i < n:
        j = f.find("%", i)
        if j < 0:
            out.append(f[i:])
            break
        out.append(f[i:j])
        i = j + 1
        flags = 0
        while i < n and f[i] in "-+ #0":
            flags |= {"-": LEFT, "+": PLUS, " ": SPACE, "#": SPECIAL, "0": ZEROPAD}[f[i]]
            i += 1
        width = -1
        if i < n and f[i] == "*":
            width = _trunc(next(args), 32, True)
            if width < 0:
                flags |= LEFT
                width = -width
            i += 1
        else:
            k = i
            while i < n and f[i] in DIGITS:
                i += 1
            if i > k:
                width = int(f[k:i])
        precision = -1
        if i < n and f[i] == ".":
            i += 1
            if i < n and f[i] == "*":
                precision = max(_trunc(next(args), 32, True), -1)
                i += 1
            else:
                k = i
                while i < n and f[i] in DIGITS:
                    i += 1
                precision = int(f[k:i] or "0")
        qual = ""
        if i < n and f[i] in "hlLzZjt":
            qual = f[i]
            i += 1
            if i < n and qual in "hl" and f[i] == qual:
                qual *= 2
                i += 1
        if i >= n:
            break
        c = f[i]
        i += 1
        if c == "%":
            out.append("%")
        elif c == "c":
            out.append(widen(chr(next(args) & 0xFF), flags, max(width, 0)))
        elif c == "s":
            out.append(_string(emu, next(args), flags, max(width, 0), precision))
        elif c == "p":
            k = i
            while i < n and f[i] in ALNUM:
                i += 1
            out.append(_pointer(emu, f[k:i], next(args), flags, width, precision))
        elif c in "diuxXo":
            bits = {"hh": 8, "h": 16, "": 32}.get(qual, 64)
            signed = c in "di"
            base = {"x": 16, "X": 16, "o": 8}.get(c, 10)
            fl = flags | (SMALL if c == "x" else 0)
            out.append(number(_trunc(next(args), bits, signed), base, fl, max(width, 0),
                              precision, signed))
        else:                       # kernel: WARN "Please remove unsupported %<c>", stop
            break
    return "".join(out)


# --- the sprintf family -----------------------------------------------------------------------

def _put(emu, buf: int, size: int, text: str) -> None:
    if size == 0:
        return
    b = text.encode("latin-1")[:size - 1]
    emu.write(buf, b + b"\0")


def _vsnprintf(emu, buf: int, size: int, fmt: int, args) -> int:
    if size > INT_MAX:                          # WARN_ON_ONCE(size > INT_MAX) → 0
        return 0
    s = vsprintf(emu, emu.cstr(fmt), args)
    _put(emu, buf, size, s)
    emu.note(s)
    return len(s.encode("latin-1"))


def _scn(i: int, size: int) -> int:
    return i if i < size else (size - 1 if size else 0)


@model("snprintf")
def snprintf(emu, buf, size, fmt, *_):
    return _vsnprintf(emu, buf, size, fmt, emu.args_from(3))


@model("vsnprintf")
def vsnprintf(emu, buf, size, fmt, ap):
    return _vsnprintf(emu, buf, size, fmt, VaList(emu, ap))


@model("scnprintf")
def scnprintf(emu, buf, size, fmt, *_):
    return _scn(_vsnprintf(emu, buf, size, fmt, emu.args_from(3)), size)


@model("vscnprintf")
def vscnprintf(emu, buf, size, fmt, ap):
    return _scn(_vsnprintf(emu, buf, size, fmt, VaList(emu, ap)), size)


@model("sprintf")
def sprintf(emu, buf, fmt, *_):
    return _vsnprintf(emu, buf, INT_MAX, fmt, emu.args_from(2))


@model("vsprintf")
def vsprintf_model(emu, buf, fmt, ap):
    return _vsnprintf(emu, buf, INT_MAX, fmt, VaList(emu, ap))


def _kasprintf(emu, gfp: int, fmt: int, args) -> int:
    s = vsprintf(emu, emu.cstr(fmt), args).encode("latin-1")
    from .slab import kmalloc_flags
    p = kmalloc_flags(emu, len(s) + 1, gfp)
    if p:
        emu.write(p, s + b"\0")
    emu.note(s.decode("latin-1"))
    return p


@model("kasprintf")
def kasprintf(emu, gfp, fmt, *_):
    return _kasprintf(emu, gfp, fmt, emu.args_from(2))


@model("kvasprintf")
def kvasprintf(emu, gfp, fmt, ap):
    return _kasprintf(emu, gfp, fmt, VaList(emu, ap))
