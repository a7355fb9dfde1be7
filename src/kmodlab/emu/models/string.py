"""String and memory functions (lib/string.c, arch/x86/lib/memcpy_64.S …) on emulated memory.

Return values are the kernel's: ``memcpy``/``memset``/``memmove``/``strcpy``/``strcat`` return
the destination, ``strscpy`` returns the copied length or ``-E2BIG`` when it truncated (the
destination is still NUL-terminated), ``strlcpy`` the source length, comparisons the sign of
the first differing byte (as unsigned char), ``strchr`` and friends a pointer or NULL.
"""
from __future__ import annotations

from ..registry import model

E2BIG = 7
MASK64 = (1 << 64) - 1


def _cmp(a: bytes, b: bytes) -> int:
    for x, y in zip(a, b):
        if x != y:
            return (x - y) & MASK64 if x < y else 1
    return 0


@model("memcpy", "__memcpy")
def memcpy(emu, dst, src, n):
    emu.write(dst, emu.read(src, n))
    return dst


@model("memmove", "__memmove")
def memmove(emu, dst, src, n):
    emu.write(dst, emu.read(src, n))
    return dst


@model("memset", "__memset")
def memset(emu, dst, c, n):
    emu.write(dst, bytes([c & 0xFF]) * n)
    return dst


@model("memcmp", "bcmp")
def memcmp(emu, a, b, n):
    return _cmp(emu.read(a, n), emu.read(b, n))


@model("memchr")
def memchr(emu, s, c, n):
    i = emu.read(s, n).find(bytes([c & 0xFF]))
    return 0 if i < 0 else s + i


@model("strlen")
def strlen(emu, s):
    return len(emu.cstr(s))


@model("strnlen")
def strnlen(emu, s, n):
    return len(emu.cstr(s, n))


@model("strcmp")
def strcmp(emu, a, b):
    return _cmp(emu.cstr(a) + b"\0", emu.cstr(b) + b"\0")


@model("strncmp")
def strncmp(emu, a, b, n):
    return _cmp((emu.cstr(a, n) + b"\0")[:n], (emu.cstr(b, n) + b"\0")[:n])


@model("strcasecmp")
def strcasecmp(emu, a, b):
    return _cmp(emu.cstr(a).lower() + b"\0", emu.cstr(b).lower() + b"\0")


@model("strncasecmp")
def strncasecmp(emu, a, b, n):
    return _cmp((emu.cstr(a, n).lower() + b"\0")[:n], (emu.cstr(b, n).lower() + b"\0")[:n])


@model("strcpy")
def strcpy(emu, dst, src):
    emu.write(dst, emu.cstr(src) + b"\0")
    return dst


@model("strncpy")
def strncpy(emu, dst, src, n):
    emu.write(dst, (emu.cstr(src, n)).ljust(n, b"\0")[:n])
    return dst


@model("strscpy", "sized_strscpy")                    # 6.12: strscpy() is a macro around the latter
def strscpy(emu, dst, src, size):
    if size == 0 or size > 0x7FFFFFFF:
        return -E2BIG
    s = emu.cstr(src, size)
    if len(s) >= size:
        emu.write(dst, s[:size - 1] + b"\0")
        return -E2BIG
    emu.write(dst, s + b"\0")
    return len(s)


@model("strlcpy")
def strlcpy(emu, dst, src, size):
    s = emu.cstr(src)
    if size:
        emu.write(dst, s[:size - 1] + b"\0")
    return len(s)


@model("strcat")
def strcat(emu, dst, src):
    emu.write(dst + len(emu.cstr(dst)), emu.cstr(src) + b"\0")
    return dst


@model("strncat")
def strncat(emu, dst, src, n):
    emu.write(dst + len(emu.cstr(dst)), emu.cstr(src, n) + b"\0")
    return dst


@model("strlcat")
def strlcat(emu, dst, src, size):
    d, s = emu.cstr(dst, size), emu.cstr(src)
    if len(d) < size:
        emu.write(dst + len(d), s[:size - len(d) - 1] + b"\0")
    return len(d) + len(s)


@model("strchr")
def strchr(emu, s, c):
    b = emu.cstr(s) + b"\0"
    i = b.find(bytes([c & 0xFF]))
    return 0 if i < 0 else s + i


@model("strrchr")
def strrchr(emu, s, c):
    b = emu.cstr(s) + b"\0"
    i = b.rfind(bytes([c & 0xFF]))
    return 0 if i < 0 else s + i


@model("strnchr")
def strnchr(emu, s, n, c):
    b = emu.cstr(s, n)
    i = b.find(bytes([c & 0xFF]))
    return 0 if i < 0 else s + i


@model("strstr")
def strstr(emu, s1, s2):
    i = emu.cstr(s1).find(emu.cstr(s2))
    return 0 if i < 0 else s1 + i


@model("strsep")
def strsep(emu, sp, ct):
    """``*s`` up to the first byte of ``ct``: that byte becomes NUL and ``*s`` moves past it
    (NULL when none is left); the token's start is returned (NULL if ``*s`` was NULL)."""
    s = emu.read_u(sp, 8)
    if not s:
        return 0
    text, delims = emu.cstr(s), set(emu.cstr(ct))
    i = next((i for i, b in enumerate(text) if b in delims), None)
    if i is None:
        emu.write_u(sp, 8, 0)
    else:
        emu.write_u(s + i, 1, 0)
        emu.write_u(sp, 8, s + i + 1)
    return s


@model("strpbrk")
def strpbrk(emu, cs, ct):
    text, delims = emu.cstr(cs), set(emu.cstr(ct))
    i = next((i for i, b in enumerate(text) if b in delims), None)
    return 0 if i is None else cs + i


@model("strspn")
def strspn(emu, s, accept):
    text, ok = emu.cstr(s), set(emu.cstr(accept))
    return next((i for i, b in enumerate(text) if b not in ok), len(text))


@model("strcspn")
def strcspn(emu, s, reject):
    text, bad = emu.cstr(s), set(emu.cstr(reject))
    return next((i for i, b in enumerate(text) if b in bad), len(text))
