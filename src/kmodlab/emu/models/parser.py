"""Option-string parsing (lib/parser.c): ``match_token``, ``match_int`` / ``match_octal`` /
``match_hex``, ``match_strdup``.

``match_token(s, table, args)`` walks the ``struct match_token`` table until an entry's
pattern matches ``s`` and returns its token; the entry with a NULL pattern (a table's end,
``{Opt_err, NULL}``) matches anything.  A pattern matches when its literal parts equal ``s``
and each ``%`` conversion takes its part of ``s``: ``%s`` (``%<n>s``: at most n characters)
the rest of ``s``, non-empty; ``%d`` / ``%u`` / ``%o`` / ``%x`` as many characters as
simple_strtol / simple_strtoul take in base 0 / 0 / 8 / 16 (no white space, ``0x`` / ``0``
prefixes in base 0, a ``-`` for ``%d``), at least one; ``%%`` a ``%``; any other conversion,
or a fourth argument (MAX_OPT_ARGS 3), fails that entry.  Each conversion's ``[from, to)``
is written into ``args[i]`` (substring_t) as the kernel does, also for entries that fail later.
"""
from __future__ import annotations

from ..layouts import layout
from ..registry import model

LAYOUT = layout("parser")
MAX_OPT_ARGS = 3
NUMBER_BUF_LEN = 24


def _o(emu, struct: str, member: str) -> int:
    return LAYOUT.of(emu)[struct, member]


def _digits(s: bytes, i: int, base: int) -> int:
    """simple_strtoull's end: _parse_integer_fixup_radix then _parse_integer."""
    if base == 0:
        if s[i:i + 1] == b"0":
            nxt = s[i + 2:i + 3]
            base = 16 if s[i + 1:i + 2].lower() == b"x" and nxt and nxt in \
                b"0123456789abcdefABCDEF" else 8
        else:
            base = 10
    if base == 16 and s[i:i + 1] == b"0" and s[i + 1:i + 2].lower() == b"x":
        i += 2
    while i < len(s):
        c = s[i]
        v = c - 48 if 48 <= c <= 57 else (c | 0x20) - 87 if 97 <= (c | 0x20) <= 122 else 99
        if v >= base:
            break
        i += 1
    return i


def _match_one(emu, s: bytes, sp: int, p: bytes | None, args: int) -> bool:
    if p is None:
        return True
    argc, i, j = 0, 0, 0                        # i indexes s, j indexes p
    sub = LAYOUT.of(emu)["substring_t", "sizeof"]
    while True:
        k = p.find(b"%", j)
        if k < 0:
            return p[j:] == s[i:]
        lit = p[j:k]
        if s[i:i + len(lit)] != lit:                 # strncmp(p, s, meta - p)
            return False
        i += len(lit)
        j = k + 1
        length = -1
        if p[j:j + 1].isdigit():
            e = j
            while p[e:e + 1].isdigit():
                e += 1
            length, j = int(p[j:e]), e
        elif p[j:j + 1] == b"%":
            if s[i:i + 1] != b"%":
                return False
            i, j = i + 1, j + 1
            continue
        if argc >= MAX_OPT_ARGS:
            return False
        a = args + argc * sub
        emu.write_u(a + _o(emu, "substring_t", "from"), 8, sp + i)
        conv, j = p[j:j + 1], j + 1
        if conv == b"s":
            rest = len(s) - i
            if rest == 0:
                return False
            end = i + (rest if length == -1 or length > rest else length)
        elif conv in (b"d", b"u", b"o", b"x"):
            st = i + 1 if conv == b"d" and s[i:i + 1] == b"-" else i
            end = _digits(s, st, {b"d": 0, b"u": 0, b"o": 8, b"x": 16}[conv])
            emu.write_u(a + _o(emu, "substring_t", "to"), 8, sp + end)
            if end == i:
                return False
        else:
            return False
        emu.write_u(a + _o(emu, "substring_t", "to"), 8, sp + end)
        i = end
        argc += 1


@model("match_token")
def match_token(emu, s, table, args):
    text = emu.cstr(s, 1 << 16)
    step = LAYOUT.of(emu)["match_token", "sizeof"]
    entry = table
    while True:
        pp = emu.read_u(entry + _o(emu, "match_token", "pattern"), 8)
        pat = emu.cstr(pp, 4096) if pp else None
        if _match_one(emu, text, s, pat, args):
            tok = emu.read_s(entry + _o(emu, "match_token", "token"), 4)
            emu.note(f"{text.decode('latin-1')!r} -> {tok}")
            return tok
        entry += step


def _value(s: bytes, base: int) -> tuple[int, int]:
    """simple_strtol(s, &end, base): (value as a C long, end index); the unsigned part wraps
    modulo 2^64 as simple_strtoull's does."""
    neg = s[:1] == b"-"
    st = 1 if neg else 0
    end = _digits(s, st, base)
    digits, b = s[st:end], base
    if b == 0:
        b = 16 if digits[:2].lower() == b"0x" and end - st > 2 else 8 if digits[:1] == b"0" \
            else 10
    if b == 16 and digits[:2].lower() == b"0x":
        digits = digits[2:]
    v = int(digits, b) if digits else 0
    v = (-v if neg else v) & ((1 << 64) - 1)
    return (v - (1 << 64) if v >> 63 else v), end


def _substring(emu, sub: int) -> bytes:
    frm = emu.read_u(sub + _o(emu, "substring_t", "from"), 8)
    to = emu.read_u(sub + _o(emu, "substring_t", "to"), 8)
    return emu.read(frm, to - frm) if to > frm else b""


def _match_number(emu, sub: int, result: int, base: int) -> int:
    """match_number: the substring copied (6.1: match_strdup; 6.3+: a 24-byte local buffer,
    -ERANGE for 24 characters or more — so such substrings are Unmodelled here), simple_strtol
    on it; -EINVAL when no digit was taken, -ERANGE outside int, else *result (trailing
    characters are ignored, as the kernel's code does)."""
    raw = _substring(emu, sub)
    if len(raw) >= NUMBER_BUF_LEN:
        from ..errors import Unmodelled
        raise Unmodelled(f"{emu._model_name} (a {len(raw)}-character number: 6.1 parses it, "
                         "6.3+ returns -ERANGE)", what=emu.what)
    text = raw.split(b"\0")[0]
    val, end = _value(text, base)
    if end == 0:
        return -22
    if not -(1 << 31) <= val < (1 << 31):
        return -34
    emu.write_u(result, 4, val & 0xFFFFFFFF)
    return 0


@model("match_int")
def match_int(emu, sub, result):
    return _match_number(emu, sub, result, 0)


@model("match_octal")
def match_octal(emu, sub, result):
    return _match_number(emu, sub, result, 8)


@model("match_hex")
def match_hex(emu, sub, result):
    return _match_number(emu, sub, result, 16)


@model("match_strdup")
def match_strdup(emu, sub):
    """kmemdup_nul(from, to - from): a NUL-terminated heap copy."""
    text = _substring(emu, sub)
    buf = emu.kmalloc(len(text) + 1)
    emu.write(buf, text + b"\0")
    return buf
