"""Formatted input (lib/vsprintf.c's vsscanf, with lib/kstrtox.c's integer parsing).

The kernel's scanner, not C's: whitespace in the format matches any run of whitespace
(the kernel's ``isspace``, which includes Latin-1's 0xA0); ``%*`` skips to the next
whitespace of the input; a field width of 0 ends the scan; ``%[`` takes no ranges, needs a
width and cannot be suppressed; integers (``%d %i %u %o %x %X``, qualifiers ``hh h l ll L z``)
are simple_strntoll/simple_strntoull's, which wrap on overflow instead of failing; ``%n``
stores the characters read so far.  The count of conversions stored is returned; a mismatch or
the input's end stops the scan.  No floating point, as in the kernel.
"""
from __future__ import annotations

from ..registry import model

SPACE = frozenset(b" \t\n\v\f\r\xa0")
DIGITS = {c: int(chr(c), 36) for c in b"0123456789abcdefABCDEF"}
INT_MAX = (1 << 31) - 1
SHRT_MAX = (1 << 15) - 1
WIDTH = {"H": 1, "h": 2, "l": 8, "L": 8, "z": 8, None: 4}


def _skip(s: bytes, i: int) -> int:
    while i < len(s) and s[i] in SPACE:
        i += 1
    return i


def _at(s: bytes, i: int) -> int:
    return s[i] if i < len(s) else 0


def strntoull(s: bytes, i: int, max_chars: int, base: int) -> tuple[int, int]:
    """simple_strntoull: (value mod 2**64, index after the digits taken)."""
    start = i
    if base == 0:
        if _at(s, i) == ord("0"):
            base = 16 if (chr(_at(s, i + 1)).lower() == "x"
                          and chr(_at(s, i + 2)) in "0123456789abcdefABCDEF") else 8
        else:
            base = 10
    if base == 16 and _at(s, i) == ord("0") and chr(_at(s, i + 1)).lower() == "x":
        i += 2
    if i - start >= max_chars:
        return 0, start + max_chars
    left, val = max_chars - (i - start), 0
    while left and _at(s, i) in DIGITS and DIGITS[s[i]] < base:
        val = (val * base + DIGITS[s[i]]) & ((1 << 64) - 1)
        i += 1
        left -= 1
    return val, i


def strntoll(s: bytes, i: int, max_chars: int, base: int) -> tuple[int, int]:
    if _at(s, i) == ord("-") and max_chars > 0:
        v, j = strntoull(s, i + 1, max_chars - 1, base)
        return -v, j
    return strntoull(s, i, max_chars, base)


def vsscanf(emu, buf: bytes, fmt: bytes, args) -> int:
    """The scan of ``buf`` by ``fmt``; results stored through the pointers ``args`` yields."""
    args = iter(args)
    s, f, i, k, num = buf, fmt, 0, 0, 0
    while k < len(f):
        if f[k] in SPACE:
            k = _skip(f, k + 1)
            i = _skip(s, i)
        if k < len(f) and f[k] != ord("%"):
            if f[k] != _at(s, i):
                break
            k, i = k + 1, i + 1
            continue
        if k >= len(f):
            break
        k += 1
        if _at(f, k) == ord("*"):
            if not _at(s, i):
                break
            while k < len(f) and f[k] not in SPACE and f[k] != ord("%"):
                if f[k] == ord("["):
                    return num
                k += 1
            while i < len(s) and s[i] not in SPACE:
                i += 1
            continue
        width = -1
        if chr(_at(f, k)).isdigit():
            j = k
            while chr(_at(f, k)).isdigit():
                k += 1
            width = int(f[j:k])
            if width > SHRT_MAX:                         # the kernel keeps it in an s16
                width = (width + (1 << 15)) % (1 << 16) - (1 << 15)
            if width <= 0:
                break
        qual = None
        c = chr(_at(f, k))
        if c in "hlLz":
            qual, k = c, k + 1
            if chr(_at(f, k)) == c and c in "hl":
                qual, k = ("H" if c == "h" else "L"), k + 1
        if k >= len(f):
            break
        conv = chr(f[k])
        if conv == "n":
            emu.write_u(next(args), 4, i & 0xFFFFFFFF)
            k += 1
            continue
        if not _at(s, i):
            break
        k += 1
        if conv == "c":
            out, n = bytearray(), width if width != -1 else 1
            while True:
                out.append(s[i])
                i += 1
                n -= 1
                if n <= 0 or not _at(s, i):
                    break
            emu.write(next(args), bytes(out))
            num += 1
            continue
        if conv == "s":
            n = width if width != -1 else SHRT_MAX
            i = _skip(s, i)
            j = i
            while j < len(s) and s[j] not in SPACE and n:
                j, n = j + 1, n - 1
            emu.write(next(args), s[i:j] + b"\0")
            i = j
            num += 1
            continue
        if conv == "[":
            dst = next(args)
            if width == -1:
                return num
            negate = _at(f, k) == ord("^")
            if negate:
                k += 1
            j = k
            while k < len(f) and f[k] != ord("]"):
                k += 1
            chars = set(f[j:k])
            if k >= len(f) or not chars:
                return num
            k += 1
            ok = (lambda b: b and b not in chars) if negate else (lambda b: b in chars)
            if not ok(_at(s, i)):
                return num
            j = i
            while ok(_at(s, j)) and width:
                j, width = j + 1, width - 1
            emu.write(dst, s[i:j] + b"\0")
            i = j
            num += 1
            continue
        if conv == "%":
            if _at(s, i) != ord("%"):
                return num
            i += 1
            continue
        base = {"o": 8, "x": 16, "X": 16, "i": 0, "d": 10, "u": 10}.get(conv)
        if base is None:
            return num
        signed = conv in "id"
        i = _skip(s, i)
        digit = _at(s, i)
        if signed and digit == ord("-"):
            if width == 1:
                break
            digit = _at(s, i + 1)
        d = chr(digit) if digit else ""
        if (not d or (base == 16 and d not in "0123456789abcdefABCDEF")
                or (base in (10, 0) and not d.isdigit())
                or (base == 8 and d not in "01234567")):
            break
        limit = width if width >= 0 else INT_MAX
        val, i = (strntoll if signed else strntoull)(s, i, limit, base)
        size = WIDTH[qual]
        emu.write_u(next(args), size, val & ((1 << (8 * size)) - 1))
        num += 1
    return num


@model("sscanf")
def sscanf(emu, buf, fmt, *_):
    return vsscanf(emu, emu.cstr(buf), emu.cstr(fmt), emu.args_from(2))


@model("vsscanf")
def vsscanf_model(emu, buf, fmt, ap):
    from .vsprintf import VaList
    return vsscanf(emu, emu.cstr(buf), emu.cstr(fmt), VaList(emu, ap))
