"""Module parameters: the role of kernel/params.c, with lib/cmdline.c ``next_arg`` and lib/kstrtox.c.

Everything here works on the sandbox's kernel memory (:class:`~kmodlab.kernel.mm.AddressSpace`)
exactly where the module keeps its variables, so sysfs, the load path and emulated module code all
see the same bytes.  Written from the documented behaviour (reference §2.20, §4.3), not from the
kernel's source.

- Tokenising: :func:`next_arg`, :func:`skip_spaces` (C ``isspace`` as the *kernel's* ctype table
  has it: space, ``\\t\\n\\v\\f\\r`` and also byte 0xA0).  The kernel works on bytes, so do we:
  a ``str`` is encoded as UTF-8 (surrogateescape) and results are decoded back the same way.
- Numbers: :func:`kstrtoull`, :func:`kstrtoll`, the typed ``kstrtou8`` … ``kstrtos64`` from one
  table, and :func:`kstrtobool` (6.1 rules).  They return ``(err, value)``: ``err`` is 0 or the
  kernel's negative errno (-EINVAL / -ERANGE), ``value`` is None on error.
- The standard ``kernel_param_ops`` (``param_ops_int`` … ``param_array_ops``): ``set(ctx, kp, val)``
  returns 0 or a negative errno, ``get(ctx, kp)`` returns the sysfs text, ``free(ctx, kp)``.
  Dispatch by the ops' export name is :func:`param_set` / :func:`param_get` / :func:`param_free`.
- :func:`decode_kernel_params` turns a relocated ``__param`` section into ``ParamInfo`` records.
- :func:`parse_args` is the loop ``load_module`` runs; :func:`unknown_module_param_cb` is the
  module loader's callback for names the module does not declare.
- :func:`param_sysfs_read` / :func:`param_sysfs_write`: /sys/module/<m>/parameters/<p>.

Module-defined ops (``ParamInfo.ops == "custom"``) can only run as module code: they go through
``ctx.call_custom``; without it they raise :class:`ParamOpsUnavailable` — never a made-up success.
"""
from __future__ import annotations

import errno as _errno
import os
import struct
from dataclasses import dataclass, field, replace
from typing import Callable, Union

from ..errors import EINVAL, ENOENT, ENOSPC, ENOSYS, EPERM, ERANGE, EROFS, KernelError
from .mm import PAGE_SIZE, AddressSpace, Fault, Heap
from .module.internal import TAINT_USER, ParamInfo

# printk levels (include/linux/kern_levels.h)
KERN_ERR = 3
KERN_WARNING = 4
KERN_NOTICE = 5
KERN_INFO = 6

# include/linux/moduleparam.h
KERNEL_PARAM_OPS_FL_NOARG = 1 << 0      # kernel_param_ops.flags
KERNEL_PARAM_FL_UNSAFE = 1 << 0         # kernel_param.flags
KERNEL_PARAM_FL_HWPARAM = 1 << 1

# struct kernel_param (x86-64, 40 bytes): name, mod, ops, perm u16, level s8, flags u8, pad, union
KERNEL_PARAM = struct.Struct("<QQQHbB4xQ")
# struct kparam_string {unsigned int maxlen; char *string;}
KPARAM_STRING = struct.Struct("<I4xQ")
# struct kparam_array {unsigned int max, elemsize; unsigned int *num; const ops *ops; void *elem;}
KPARAM_ARRAY = struct.Struct("<IIQQQ")
# struct kernel_param_ops {unsigned int flags; set; get; free;}
KERNEL_PARAM_OPS = struct.Struct("<I4xQQQ")

CHARP_MAXLEN = 1024                     # param_set_charp's limit
KMALLOCED_PARAM_HDR = 16                # struct kmalloced_param {struct list_head list; char val[];}
MAX_ERRNO = 4095

AFTER_DASHES_WARNING = "%s: parameters '%s' after `--' ignored"   # printed by load_module (warn)

Val = Union[str, bytes, bytearray, None]


class ParamOpsUnavailable(KernelError):
    """A parameter whose ``kernel_param_ops`` the sandbox cannot run.

    Either module-defined ops (they need the emulator, ``ctx.call_custom``) or a vmlinux export
    that is not one of the standard types modelled here.  Carries ENOSYS as its errno: there is
    no kernel errno for "the simulation cannot do this"; callers should report it as such.
    """

    def __init__(self, param: str, ops: str, which: str, why: str):
        self.param, self.ops, self.which = param, ops, which
        super().__init__(ENOSYS, step="parse_args" if which == "set" else f"param_{which}",
                         reason=f"parameter '{param}': {which} via {ops}: {why}")


@dataclass
class ParamCtx:
    """What the parameter code needs from the machine (a small protocol; fill it per call site).

    ``kmalloced_params`` is the kernel's global ``kmalloced_params`` list (addresses of charp
    values param_set_charp allocated): share one set per machine and persist it.
    ``async_probe_requested`` and ``dyndbg_queries`` are written by :func:`unknown_module_param_cb`
    for the module being loaded (use a fresh ctx per load, or reset them).
    """
    mm: AddressSpace
    heap: Heap
    printk: Callable[[int, str], None]               # (level, text without "\n")
    taint: Callable[[int], None]                     # add_taint(bit)
    ops_name_of: Callable[[int], "str | None"]       # ops address -> kernel export name
    # call_custom(ops_addr, "set"|"get"|"free", kp, val) -> int (set/free) | str or -errno (get)
    call_custom: "Callable[[int, str, ParamInfo, bytes | None], int | str] | None" = None
    locked_down: bool = False                        # security_locked_down(MODULE_PARAMETERS)
    comm: str = "insmod"                             # current->comm, for the lockdown notice
    kmalloced_params: set[int] = field(default_factory=set)
    async_probe_requested: bool = False
    dyndbg_queries: list[tuple[str, str]] = field(default_factory=list)   # (modname, query)


# ---------------------------------------------------------------------------------------------
# bytes helpers: the kernel sees C strings

def _b(s: "str | bytes | bytearray") -> bytes:
    return s.encode("utf-8", "surrogateescape") if isinstance(s, str) else bytes(s)


def _s(b: "bytes | bytearray") -> str:
    return bytes(b).decode("utf-8", "surrogateescape")


def _cstr(val: Val) -> bytes:
    """The C string ``val`` points at: bytes up to the first NUL."""
    if val is None:
        raise ValueError("NULL value handed to a set() without KERNEL_PARAM_OPS_FL_NOARG "
                         "(the kernel would oops)")
    b = _b(val)
    n = b.find(b"\0")
    return b if n < 0 else b[:n]


def _scnprintf(b: bytes) -> bytes:
    """scnprintf(buf, PAGE_SIZE, ...): at most PAGE_SIZE - 1 characters."""
    return b[:PAGE_SIZE - 1]


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


# ---------------------------------------------------------------------------------------------
# lib/cmdline.c: skip_spaces, next_arg

_ISSPACE = frozenset(b" \t\n\v\f\r\xa0")     # lib/ctype.c marks 0xA0 (Latin-1 NBSP) _S|_SP


def isspace(c: int) -> bool:
    """The kernel's isspace() on one byte."""
    return c in _ISSPACE


def skip_spaces(b: bytes, pos: int = 0) -> int:
    while pos < len(b) and b[pos] in _ISSPACE:
        pos += 1
    return pos


def _next_arg(b: bytes, pos: int) -> tuple[bytes, "bytes | None", int]:
    """next_arg on ``b[pos:]``: (param, val or None, position of the next token)."""
    n = len(b)
    quoted = pos < n and b[pos] == 0x22
    start = pos + 1 if quoted else pos
    in_quote = quoted
    equals = None                      # the kernel's "equals == 0" means: none seen (yet)
    i = start
    while i < n:
        c = b[i]
        if c in _ISSPACE and not in_quote:
            break
        if equals is None and c == 0x3D and i > start:
            equals = i
        if c == 0x22:
            in_quote = not in_quote
        i += 1
    end = i                            # the token is b[start:end]
    last_cut = False                   # has the token's last byte been overwritten with NUL?
    if equals is None:
        param, val, vstart = b[start:end], None, end
    else:
        param, vstart = b[start:equals], equals + 1
        if vstart < end and b[vstart] == 0x22:
            vstart += 1
            if b[end - 1] == 0x22:
                last_cut = True
        val = b""
    if quoted and end > start and b[end - 1] == 0x22 and not last_cut and end - 1 != equals:
        last_cut = True
    if equals is None:
        if last_cut:
            param = param[:-1]
    else:
        val = b[vstart:end - 1] if last_cut else b[vstart:end]
    nxt = end + 1 if end < n else end
    return param, val, skip_spaces(b, nxt)


def next_arg(args: "str | bytes") -> tuple:
    """lib/cmdline.c next_arg: split the first token off ``args`` → ``(param, val, rest)``.

    ``args`` must start at a token (parse_args skips leading whitespace first).  Rules: a token
    ends at whitespace outside double quotes; a ``"`` toggles quoting anywhere; a leading ``"``
    is dropped and marks the token quoted.  ``param`` is the text before the first ``=`` that is
    not at position 0; no ``=`` → ``val`` is None (``p=`` gives "").  A value starting with ``"``
    loses it and, if the token ends with ``"``, that one too; a quoted token also loses a final
    ``"``.  No escapes.  ``rest`` has its leading whitespace skipped.  Same type in as out.
    """
    raw = _b(args)
    param, val, pos = _next_arg(raw, 0)
    if isinstance(args, str):
        return _s(param), (None if val is None else _s(val)), _s(raw[pos:])
    return param, val, raw[pos:]


# ---------------------------------------------------------------------------------------------
# lib/kstrtox.c

KSTRTOX_OVERFLOW = 1 << 31
ULLONG_MAX = (1 << 64) - 1


def _parse_integer_fixup_radix(s: bytes, base: int) -> tuple[bytes, int]:
    if base == 0:
        if s[:1] == b"0":
            if len(s) > 2 and s[1] | 0x20 == 0x78 and s[2:3] in _HEXDIGITS:
                base = 16
            else:
                base = 8
        else:
            base = 10
    if base == 16 and s[:1] == b"0" and len(s) > 1 and s[1] | 0x20 == 0x78:
        s = s[2:]
    return s, base


_HEXDIGITS = {bytes([c]) for c in b"0123456789abcdefABCDEF"}


def _parse_integer(s: bytes, base: int) -> tuple[int, int]:
    """(rv, value): rv = digits consumed, | KSTRTOX_OVERFLOW if the u64 overflowed."""
    res = rv = 0
    for c in s:
        if 0x30 <= c <= 0x39:
            v = c - 0x30
        elif 0x61 <= (c | 0x20) <= 0x66:
            v = (c | 0x20) - 0x61 + 10
        else:
            break
        if v >= base:
            break
        res = res * base + v
        if res > ULLONG_MAX:
            rv |= KSTRTOX_OVERFLOW
            res &= ULLONG_MAX
        rv += 1
    return rv, res


def _kstrtoull(s: bytes, base: int) -> tuple[int, "int | None"]:
    s, base = _parse_integer_fixup_radix(s, base)
    rv, res = _parse_integer(s, base)
    if rv & KSTRTOX_OVERFLOW:
        return -ERANGE, None
    if rv == 0:
        return -EINVAL, None
    rest = s[rv & ~KSTRTOX_OVERFLOW:]
    if rest[:1] == b"\n":
        rest = rest[1:]
    if rest:
        return -EINVAL, None
    return 0, res


def kstrtoull(s: "str | bytes", base: int = 0) -> tuple[int, "int | None"]:
    """kstrtoull: optional '+', base 0 = 0x hex / 0 octal / decimal, one trailing \\n allowed."""
    b = _cstr(s)
    if b[:1] == b"+":
        b = b[1:]
    return _kstrtoull(b, base)


def kstrtoll(s: "str | bytes", base: int = 0) -> tuple[int, "int | None"]:
    """kstrtoll: like kstrtoull with an optional '-' (not '+-' / '-+'), range of s64."""
    b = _cstr(s)
    if b[:1] == b"-":
        err, tmp = _kstrtoull(b[1:], base)
        if err:
            return err, None
        if tmp > 1 << 63:
            return -ERANGE, None
        return 0, -tmp
    err, tmp = kstrtoull(b, base)
    if err:
        return err, None
    if tmp >= 1 << 63:
        return -ERANGE, None
    return 0, tmp


# kind → (bits, signed).  kstrtoint/uint/long/ulong are the 32/64-bit kinds on x86-64.
KSTRTOX_TYPES = {
    "u8": (8, False), "s8": (8, True), "u16": (16, False), "s16": (16, True),
    "u32": (32, False), "s32": (32, True), "u64": (64, False), "s64": (64, True),
    "uint": (32, False), "int": (32, True), "ul": (64, False), "l": (64, True),
    "ull": (64, False), "ll": (64, True),
}


def kstrtox(kind: str, s: "str | bytes", base: int = 0) -> tuple[int, "int | None"]:
    """The typed kstrto<kind>: parse as (u)64 then -ERANGE unless the value fits ``kind``."""
    bits, signed = KSTRTOX_TYPES[kind]
    err, v = (kstrtoll if signed else kstrtoull)(s, base)
    if err:
        return err, None
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not lo <= v <= hi:
        return -ERANGE, None
    return 0, v


def _kstrto(kind: str) -> Callable:
    def f(s, base=0):
        return kstrtox(kind, s, base)
    f.__name__ = f.__qualname__ = "kstrto" + kind
    f.__doc__ = f"kstrto{kind}(s, base) -> (err, value)"
    return f


kstrtou8, kstrtos8 = _kstrto("u8"), _kstrto("s8")
kstrtou16, kstrtos16 = _kstrto("u16"), _kstrto("s16")
kstrtou32, kstrtos32 = _kstrto("u32"), _kstrto("s32")
kstrtou64, kstrtos64 = _kstrto("u64"), _kstrto("s64")
kstrtouint, kstrtoint = _kstrto("uint"), _kstrto("int")
kstrtoul, kstrtol = _kstrto("ul"), _kstrto("l")


def kstrtobool(s: Val) -> tuple[int, "bool | None"]:
    """kstrtobool (6.1): looks at one or two characters only.

    ``y Y t T 1`` → true, ``n N f F 0`` → false, ``o``/``O`` then ``n``/``N`` → true or
    ``f``/``F`` → false; anything else (NULL, "", "\\n", "on" without 'n'…) → -EINVAL.
    """
    if s is None:
        return -EINVAL, None
    b = _cstr(s)
    c0 = b[:1]
    if c0 and c0 in b"yYtT1":
        return 0, True
    if c0 and c0 in b"nNfF0":
        return 0, False
    if c0 and c0 in b"oO":
        c1 = b[1:2]
        if c1 and c1 in b"nN":
            return 0, True
        if c1 and c1 in b"fF":
            return 0, False
    return -EINVAL, None


# ---------------------------------------------------------------------------------------------
# the standard kernel_param_ops

@dataclass(frozen=True)
class KernelParamOps:
    """``struct kernel_param_ops`` modelled in Python (or an adapter to module code)."""
    name: str
    flags: int = 0
    set: "Callable[[ParamCtx, ParamInfo, Val], int] | None" = None
    get: "Callable[[ParamCtx, ParamInfo], str | int] | None" = None
    free: "Callable[[ParamCtx, ParamInfo], None] | None" = None


def _fmt_hexint(v: int) -> bytes:
    """The kernel's "%#08x": the 0x prefix counts in the width and is printed even for 0."""
    return b"0x" + format(v, "x").rjust(6, "0").encode()


def _standard_param_def(name: str, size: int, kind: str, fmt=None):
    """STANDARD_PARAM_DEF: set = kstrto<kind>(val, 0) into the variable; get = format + "\\n"."""
    signed = KSTRTOX_TYPES[kind][1]

    def param_set(ctx: ParamCtx, kp: ParamInfo, val: Val) -> int:
        err, v = kstrtox(kind, _cstr(val), 0)
        if err:
            return err
        ctx.mm.write_u(kp.arg, size, v)
        return 0

    def param_get(ctx: ParamCtx, kp: ParamInfo) -> str:
        v = ctx.mm.read_u(kp.arg, size)
        if signed and v >> (8 * size - 1):
            v -= 1 << (8 * size)
        text = fmt(v) if fmt else str(v).encode()
        return _s(_scnprintf(text + b"\n"))

    param_set.__name__ = param_set.__qualname__ = f"param_set_{name}"
    param_get.__name__ = param_get.__qualname__ = f"param_get_{name}"
    return param_set, param_get


param_set_byte, param_get_byte = _standard_param_def("byte", 1, "u8")            # "%hhu"
param_set_short, param_get_short = _standard_param_def("short", 2, "s16")        # "%hi"
param_set_ushort, param_get_ushort = _standard_param_def("ushort", 2, "u16")     # "%hu"
param_set_int, param_get_int = _standard_param_def("int", 4, "int")              # "%i"
param_set_uint, param_get_uint = _standard_param_def("uint", 4, "uint")          # "%u"
param_set_long, param_get_long = _standard_param_def("long", 8, "l")             # "%li"
param_set_ulong, param_get_ulong = _standard_param_def("ulong", 8, "ul")         # "%lu"
param_set_ullong, param_get_ullong = _standard_param_def("ullong", 8, "ull")     # "%llu"
param_set_hexint, param_get_hexint = _standard_param_def("hexint", 4, "uint", _fmt_hexint)


# charp: values are kmalloc'd copies, remembered in ctx.kmalloced_params

def kmalloc_parameter(ctx: ParamCtx, size: int) -> int:
    """kmalloc a ``struct kmalloced_param`` with ``size`` bytes of value; returns ``p->val``.

    The 16-byte list_head is not filled in: the list itself is ``ctx.kmalloced_params``.
    """
    p = ctx.heap.kmalloc(ctx.mm, KMALLOCED_PARAM_HDR + size)
    val = p + KMALLOCED_PARAM_HDR
    ctx.kmalloced_params.add(val)
    return val


def maybe_kfree_parameter(ctx: ParamCtx, ptr: int) -> None:
    """Free ``ptr`` if param_set_charp allocated it; anything else (the module's own string
    literal, NULL) is left alone."""
    if ptr in ctx.kmalloced_params:
        ctx.kmalloced_params.discard(ptr)
        ctx.heap.kfree(ctx.mm, ptr - KMALLOCED_PARAM_HDR)


def param_set_charp(ctx: ParamCtx, kp: ParamInfo, val: Val) -> int:
    """Longer than 1024 → "%s: string parameter too long" + -ENOSPC; else free our old copy
    (before allocating) and point the variable at a fresh kmalloc'd copy."""
    v = _cstr(val)
    if len(v) > CHARP_MAXLEN:
        ctx.printk(KERN_ERR, f"{kp.name}: string parameter too long")
        return -ENOSPC
    maybe_kfree_parameter(ctx, ctx.mm.read_u64(kp.arg))
    p = kmalloc_parameter(ctx, len(v) + 1)
    ctx.mm.write(p, v + b"\0")
    ctx.mm.write_u(kp.arg, 8, p)
    return 0


def _vsprintf_string(mm: AddressSpace, ptr: int) -> bytes:
    """What "%s" prints for ``ptr``: "(null)", "(efault)" for tiny or ERR_PTR values."""
    if ptr == 0:
        return b"(null)"
    if ptr < PAGE_SIZE or ptr >= (1 << 64) - MAX_ERRNO:
        return b"(efault)"
    return mm.read_cstr(ptr, PAGE_SIZE)


def param_get_charp(ctx: ParamCtx, kp: ParamInfo) -> str:
    return _s(_scnprintf(_vsprintf_string(ctx.mm, ctx.mm.read_u64(kp.arg)) + b"\n"))


def param_free_charp(ctx: ParamCtx, kp: ParamInfo) -> None:
    maybe_kfree_parameter(ctx, ctx.mm.read_u64(kp.arg))


# bool family

def param_set_bool(ctx: ParamCtx, kp: ParamInfo, val: Val) -> int:
    """No value means "1"; then kstrtobool into the 1-byte bool."""
    err, v = kstrtobool(b"1" if val is None else val)
    if err:
        return err
    ctx.mm.write_u(kp.arg, 1, int(v))
    return 0


def param_get_bool(ctx: ParamCtx, kp: ParamInfo) -> str:
    return "Y\n" if ctx.mm.read_u(kp.arg, 1) else "N\n"


def param_set_bool_enable_only(ctx: ParamCtx, kp: ParamInfo, val: Val) -> int:
    """Parse like bool; Y → N is refused with -EROFS; N → N writes nothing."""
    err, new = kstrtobool(b"1" if val is None else val)
    if err:
        return err
    if not new and ctx.mm.read_u(kp.arg, 1):
        return -EROFS
    if new:
        return param_set_bool(ctx, kp, val)
    return 0


def param_set_invbool(ctx: ParamCtx, kp: ParamInfo, val: Val) -> int:
    err, v = kstrtobool(b"1" if val is None else val)
    if err == 0:
        ctx.mm.write_u(kp.arg, 1, int(not v))
    return err


def param_get_invbool(ctx: ParamCtx, kp: ParamInfo) -> str:
    return "N\n" if ctx.mm.read_u(kp.arg, 1) else "Y\n"


def param_set_bint(ctx: ParamCtx, kp: ParamInfo, val: Val) -> int:
    """Bool parsing, stored as an int 0/1 (read back with param_get_int)."""
    err, v = kstrtobool(b"1" if val is None else val)
    if err == 0:
        ctx.mm.write_u(kp.arg, 4, int(v))
    return err


# string (module_param_string): arg is a struct kparam_string

def param_set_copystring(ctx: ParamCtx, kp: ParamInfo, val: Val) -> int:
    """strlen+1 > maxlen → "%s: string doesn't fit in %u chars." (maxlen-1) + -ENOSPC."""
    v = _cstr(val)
    maxlen, string = KPARAM_STRING.unpack(ctx.mm.read(kp.arg, KPARAM_STRING.size))
    if len(v) + 1 > maxlen:
        shown = (maxlen - 1) & 0xFFFFFFFF                       # "%u" of maxlen-1
        ctx.printk(KERN_ERR, f"{kp.name}: string doesn't fit in {shown} chars.")
        return -ENOSPC
    ctx.mm.write(string, v + b"\0")
    return 0


def param_get_string(ctx: ParamCtx, kp: ParamInfo) -> str:
    _maxlen, string = KPARAM_STRING.unpack(ctx.mm.read(kp.arg, KPARAM_STRING.size))
    return _s(_scnprintf(_vsprintf_string(ctx.mm, string) + b"\n"))


# arrays: arg is a struct kparam_array

def _kparam_array(ctx: ParamCtx, kp: ParamInfo):
    mx, elemsize, num, ops_addr, elem = KPARAM_ARRAY.unpack(ctx.mm.read(kp.arg, KPARAM_ARRAY.size))
    ops = _resolve_ops(ctx, ctx.ops_name_of(ops_addr), ops_addr, kp.name)
    return mx, elemsize, num, ops, elem


def _elem_kp(kp: ParamInfo, ops: KernelParamOps, arg: int) -> ParamInfo:
    """The on-stack kernel_param param_array builds: name, arg and level only."""
    return ParamInfo(name=kp.name, ops=ops.name, perm=0, level=kp.level, flags=0, arg=arg, addr=0)


def param_array(ctx: ParamCtx, name: str, val: bytearray, min_: int, max_: int, elem: int,
                elemsize: int, ops: KernelParamOps, level: int, num: int) -> int:
    """Comma-split ``val`` (mangling it: each separator becomes NUL, as the kernel does) and
    set each element with the element ops; ``*num`` (if ``num`` != 0) counts the elements set,
    also when a later one fails.  More than ``max_`` → "%s: can only take %i arguments";
    fewer than ``min_`` → "%s: needs at least %i arguments"; both -EINVAL."""
    if ops.set is None:
        raise ParamOpsUnavailable(name, ops.name, "set", "element ops have no set()")
    count = 0
    if num:
        ctx.mm.write_u(num, 4, 0)
    kp = ParamInfo(name=name, ops=ops.name, perm=0, level=level, flags=0, arg=elem, addr=0)
    pos = 0
    n = val.find(0)
    n = len(val) if n < 0 else n
    while True:
        if count == max_:
            ctx.printk(KERN_ERR, f"{name}: can only take {_s32(max_)} arguments")
            return -EINVAL
        end = pos
        while end < n and val[end] != 0x2C:
            end += 1
        save = val[end] if end < n else 0
        if end < n:
            val[end] = 0
        ret = ops.set(ctx, kp, bytearray(val[pos:end]))
        if ret != 0:
            return ret
        kp = replace(kp, arg=kp.arg + elemsize)
        pos = end + 1
        count += 1
        if num:
            ctx.mm.write_u(num, 4, count)
        if save != 0x2C:
            break
    if count < min_:
        ctx.printk(KERN_ERR, f"{name}: needs at least {_s32(min_)} arguments")
        return -EINVAL
    return 0


def param_array_set(ctx: ParamCtx, kp: ParamInfo, val: Val) -> int:
    mx, elemsize, num, ops, elem = _kparam_array(ctx, kp)
    buf = val if isinstance(val, bytearray) else bytearray(_cstr(val))
    return param_array(ctx, kp.name, buf, 1, mx, elem, elemsize, ops, kp.level, num)


def param_array_get(ctx: ParamCtx, kp: ParamInfo) -> "str | int":
    """Each element's get output, the previous one's final "\\n" replaced by ","."""
    mx, elemsize, num, ops, elem = _kparam_array(ctx, kp)
    if ops.get is None:
        raise ParamOpsUnavailable(kp.name, ops.name, "get", "element ops have no get()")
    count = ctx.mm.read_u(num, 4) if num else mx
    out = b""
    for i in range(count):
        if i and out:
            out = out[:-1] + b","
        r = ops.get(ctx, _elem_kp(kp, ops, elem + elemsize * i))
        if isinstance(r, int):
            if r < 0:
                return r
            r = ""
        out += _b(r)
    return _s(out)


def param_array_free(ctx: ParamCtx, kp: ParamInfo) -> None:
    mx, elemsize, num, ops, elem = _kparam_array(ctx, kp)
    if ops.free:
        for i in range(ctx.mm.read_u(num, 4) if num else mx):
            ops.free(ctx, _elem_kp(kp, ops, elem + elemsize * i))


_NOARG = KERNEL_PARAM_OPS_FL_NOARG
PARAM_OPS: dict[str, KernelParamOps] = {o.name: o for o in [
    KernelParamOps("param_ops_byte", 0, param_set_byte, param_get_byte),
    KernelParamOps("param_ops_short", 0, param_set_short, param_get_short),
    KernelParamOps("param_ops_ushort", 0, param_set_ushort, param_get_ushort),
    KernelParamOps("param_ops_int", 0, param_set_int, param_get_int),
    KernelParamOps("param_ops_uint", 0, param_set_uint, param_get_uint),
    KernelParamOps("param_ops_long", 0, param_set_long, param_get_long),
    KernelParamOps("param_ops_ulong", 0, param_set_ulong, param_get_ulong),
    KernelParamOps("param_ops_ullong", 0, param_set_ullong, param_get_ullong),
    KernelParamOps("param_ops_hexint", 0, param_set_hexint, param_get_hexint),
    KernelParamOps("param_ops_charp", 0, param_set_charp, param_get_charp, param_free_charp),
    KernelParamOps("param_ops_bool", _NOARG, param_set_bool, param_get_bool),
    KernelParamOps("param_ops_bool_enable_only", _NOARG, param_set_bool_enable_only,
                   param_get_bool),
    KernelParamOps("param_ops_invbool", 0, param_set_invbool, param_get_invbool),
    KernelParamOps("param_ops_bint", _NOARG, param_set_bint, param_get_int),
    KernelParamOps("param_ops_string", 0, param_set_copystring, param_get_string),
    KernelParamOps("param_array_ops", 0, param_array_set, param_array_get, param_array_free),
]}


def _custom_ops(ctx: ParamCtx, ops_addr: int, who: str) -> KernelParamOps:
    """Module-defined ops: flags and which hooks exist are read from the struct in module
    memory; the hooks themselves run through ``ctx.call_custom``."""
    name = f"custom ops at {ops_addr:#x}"
    try:
        flags, set_p, get_p, free_p = KERNEL_PARAM_OPS.unpack(
            ctx.mm.read(ops_addr, KERNEL_PARAM_OPS.size))
    except Fault as e:                  # not module memory: an unmodelled vmlinux object
        raise ParamOpsUnavailable(who, name, "set", f"cannot read the ops structure ({e})") from e

    def call(which: str):
        def hook(c: ParamCtx, kp: ParamInfo, val: Val = None):
            if c.call_custom is None:
                raise ParamOpsUnavailable(kp.name, name, which,
                                          "module-defined ops need module code to run, and the "
                                          "emulator hook (call_custom) is not available")
            raw = None if val is None else _cstr(val)
            return c.call_custom(ops_addr, which, kp, raw)
        return hook

    return KernelParamOps(name, flags, call("set") if set_p else None,
                          call("get") if get_p else None, call("free") if free_p else None)


def _resolve_ops(ctx: ParamCtx, name: "str | None", ops_addr: int, who: str) -> KernelParamOps:
    if name in PARAM_OPS:
        return PARAM_OPS[name]
    if name is None or name == "custom":
        return _custom_ops(ctx, ops_addr, who)
    raise ParamOpsUnavailable(who, name, "set", "this kernel_param_ops export is not modelled")


def param_ops_of(ctx: ParamCtx, kp: ParamInfo) -> KernelParamOps:
    """``kp->ops``: a standard type by name, or custom ops read via the kernel_param at kp.addr."""
    if kp.ops in PARAM_OPS:
        return PARAM_OPS[kp.ops]
    if not kp.addr:
        raise ParamOpsUnavailable(kp.name, kp.ops, "set", "no kernel_param address to read ops")
    ops_addr = ctx.mm.read_u64(kp.addr + 16)
    return _resolve_ops(ctx, None if kp.ops == "custom" else kp.ops, ops_addr, kp.name)


def param_set(ctx: ParamCtx, kp: ParamInfo, val: Val) -> int:
    """``kp->ops->set(val, kp)``: 0 or a negative errno (the variable is left as it was on
    error, except for arrays, whose earlier elements stay written)."""
    ops = param_ops_of(ctx, kp)
    if ops.set is None:
        raise ParamOpsUnavailable(kp.name, ops.name, "set", "ops have no set() (kernel oops)")
    return ops.set(ctx, kp, val)


def param_get(ctx: ParamCtx, kp: ParamInfo) -> "str | int":
    """``kp->ops->get(buf, kp)``: the text (sysfs form, usually ending in "\\n") or -errno.
    -EPERM when the ops have no get."""
    ops = param_ops_of(ctx, kp)
    if ops.get is None:
        return -EPERM
    return ops.get(ctx, kp)


def param_free(ctx: ParamCtx, kp: ParamInfo) -> None:
    """``kp->ops->free(kp->arg)`` if the ops have one (charp, arrays of charp)."""
    ops = param_ops_of(ctx, kp)
    if ops.free:
        ops.free(ctx, kp)


def destroy_params(ctx: ParamCtx, params: list[ParamInfo]) -> None:
    """destroy_params: free every parameter's storage (unload, or a load failing after
    parse_args).  charp values stay pointed-at but freed, as in the kernel."""
    for kp in params:
        try:
            param_free(ctx, kp)
        except (ParamOpsUnavailable, Fault):   # ops we cannot read have no free() we could run
            pass


# ---------------------------------------------------------------------------------------------
# decoding __param

def decode_kernel_params(mm: AddressSpace, addr: int, count: int,
                         ops_name_of: Callable[[int], "str | None"]) -> list[ParamInfo]:
    """Decode ``count`` relocated ``struct kernel_param`` entries at ``addr`` (the __param
    section).  ``ops_name_of(ops_ptr)`` gives the kernel export the ops pointer resolves to;
    None → module-defined ops, recorded as ``"custom"``.  ``ParamInfo.arg`` is the union's
    value (``kp->arg`` / ``kp->str`` / ``kp->arr``), ``addr`` the entry's own address."""
    raw = mm.read(addr, count * KERNEL_PARAM.size) if count else b""
    out = []
    for i in range(count):
        name_p, _mod, ops_p, perm, level, flags, arg = KERNEL_PARAM.unpack_from(
            raw, i * KERNEL_PARAM.size)
        out.append(ParamInfo(name=_s(mm.read_cstr(name_p)), ops=ops_name_of(ops_p) or "custom",
                             perm=perm, level=level, flags=flags, arg=arg,
                             addr=addr + i * KERNEL_PARAM.size))
    return out


# ---------------------------------------------------------------------------------------------
# parse_args

def parameq(a: "str | bytes", b: "str | bytes") -> bool:
    """Names equal byte for byte, '-' and '_' counting as the same character."""
    return _b(a).replace(b"-", b"_") == _b(b).replace(b"-", b"_")


def param_check_unsafe(ctx: ParamCtx, kp: ParamInfo) -> bool:
    """False for a hardware parameter under lockdown; a dangerous (unsafe) one is allowed but
    logged and taints the kernel (U)."""
    if kp.flags & KERNEL_PARAM_FL_HWPARAM and ctx.locked_down:
        ctx.printk(KERN_NOTICE, f"Lockdown: {ctx.comm}: unsafe module parameters is restricted; "
                                "see man kernel_lockdown.7")
        return False
    if kp.flags & KERNEL_PARAM_FL_UNSAFE:
        ctx.printk(KERN_NOTICE, f"Setting dangerous option {kp.name} - tainting kernel")
        ctx.taint(TAINT_USER)
    return True


UnknownCb = Callable[[ParamCtx, bytearray, "bytearray | None", str], int]


def ddebug_dyndbg_module_param_cb(ctx: ParamCtx, param: bytearray, val: "bytearray | None",
                                  modname: str) -> int:
    """lib/dynamic_debug.c: "dyndbg" / "<mod>.dyndbg" → the query (default "+p") is recorded in
    ``ctx.dyndbg_queries`` (not executed here); else -ENOENT.  Cuts ``param`` at its first '.'
    in place, which is why the unknown-parameter warning then shows only the part before it."""
    name = _cstr(param)
    sep = name.find(b".")
    if sep >= 0:
        param[sep] = 0
        modname, name = _s(name[:sep]), name[sep + 1:]
    if name != b"dyndbg":
        return -ENOENT
    ctx.dyndbg_queries.append((modname, "+p" if val is None else _s(_cstr(val))))
    return 0


def unknown_module_param_cb(ctx: ParamCtx, param: bytearray, val: "bytearray | None",
                            modname: str) -> int:
    """kernel/module/main.c: ``async_probe[=bool]`` (unparsable → true) sets
    ``ctx.async_probe_requested``; dyndbg goes to dynamic debug; anything else is logged as
    "%s: unknown parameter '%s' ignored" (warning).  Never an error."""
    if _cstr(param) == b"async_probe":
        err, v = kstrtobool(val)
        ctx.async_probe_requested = True if err else v
        return 0
    if ddebug_dyndbg_module_param_cb(ctx, param, val, modname) != 0:
        ctx.printk(KERN_WARNING, f"{modname}: unknown parameter '{_s(_cstr(param))}' ignored")
    return 0


def parse_one(ctx: ParamCtx, param: bytearray, val: "bytearray | None", doing: str,
              params: list[ParamInfo], min_level: int, max_level: int,
              unknown: "UnknownCb | None") -> int:
    """The first declared parameter matching ``param`` (parameq, array order): outside the
    levels → ignored (0); no value and ops without NOARG → -EINVAL; refused by
    param_check_unsafe → -EPERM; else its set().  No match → ``unknown`` or -ENOENT."""
    name = _cstr(param)
    for kp in params:
        if parameq(name, kp.name):
            if kp.level < min_level or kp.level > max_level:
                return 0
            ops = param_ops_of(ctx, kp)
            if val is None and not ops.flags & KERNEL_PARAM_OPS_FL_NOARG:
                return -EINVAL
            if not param_check_unsafe(ctx, kp):
                return -EPERM
            if ops.set is None:
                raise ParamOpsUnavailable(kp.name, ops.name, "set", "ops have no set()")
            return ops.set(ctx, kp, val)
    if unknown is not None:
        return unknown(ctx, param, val, doing)
    return -ENOENT


def parse_args(ctx: ParamCtx, modname: str, args: "str | bytes", params: list[ParamInfo],
               min_level: int = -32768, max_level: int = 32767,
               unknown: "UnknownCb | None" = unknown_module_param_cb) -> tuple:
    """Parse ``args`` (``mod->args``) against the module's parameters → ``(err, rest)``.

    Each token goes through :func:`parse_one`; a failure is logged (pr_err, ``modname`` first)
    as "`%s' too large for parameter `%s'" (-ENOSPC), "Unknown parameter `%s'" (-ENOENT) or
    "`%s' invalid for parameter `%s'" (other), and parsing *continues*; ``err`` is the last
    failure (0 if none).  A bare ``--`` stops: ``rest`` is what follows it (possibly "") unless
    an error happened before it, in which case ``(err, None)``.  Without ``--``, ``rest`` is
    None.  load_module fails with ``err`` if non-zero, else warns
    ``AFTER_DASHES_WARNING % (modname, rest)`` whenever ``rest`` is not None.
    """
    raw = _cstr(args)
    as_str = isinstance(args, str)
    pos = skip_spaces(raw, 0)
    err = 0
    while pos < len(raw):
        p, v, pos = _next_arg(raw, pos)
        if v is None and p == b"--":
            if err:
                return err, None
            return 0, (_s(raw[pos:]) if as_str else raw[pos:])
        param = bytearray(p)
        val = None if v is None else bytearray(v)
        ret = parse_one(ctx, param, val, modname, params, min_level, max_level, unknown)
        if ret == 0:
            continue
        shown_p = _s(_cstr(param))
        shown_v = "" if val is None else _s(_cstr(val))    # as mangled by set (arrays)
        if ret == -ENOENT:
            ctx.printk(KERN_ERR, f"{modname}: Unknown parameter `{shown_p}'")
        elif ret == -ENOSPC:
            ctx.printk(KERN_ERR, f"{modname}: `{shown_v}' too large for parameter `{shown_p}'")
        else:
            ctx.printk(KERN_ERR, f"{modname}: `{shown_v}' invalid for parameter `{shown_p}'")
        err = ret
    return err, None


# ---------------------------------------------------------------------------------------------
# sysfs: /sys/module/<m>/parameters/<p>

def _oserror(err: int, what: str) -> OSError:
    return OSError(abs(err), os.strerror(abs(err)), what)


def param_sysfs_read(ctx: ParamCtx, kp: ParamInfo) -> bytes:
    """Reading the parameter's sysfs file (as root): the ops' get text.

    Raises OSError: ENOENT for perm 0 (no file), EACCES when no read bit is set (kernfs open),
    EPERM when the ops have no get, or the get's own errno.  Output longer than PAGE_SIZE - 1 is
    cut there (sysfs "bad count" case; its log line is not reproduced).
    """
    path = f"parameters/{kp.name}"
    if not kp.perm:
        raise _oserror(_errno.ENOENT, path)
    if not kp.perm & 0o444:
        raise _oserror(_errno.EACCES, path)
    try:
        r = param_get(ctx, kp)
    except Fault as f:              # get() read a pointer the module left bad: the reader oopses
        from ..emu.oops import kernel_fault_report
        for line in kernel_fault_report(f, f.__traceback__, comm="cat"):
            ctx.printk(1, line)
        raise _oserror(-_errno.EFAULT, path) from None
    if isinstance(r, int):
        if r < 0:
            raise _oserror(r, path)
        return b""
    return _b(r)[:PAGE_SIZE - 1]


def param_sysfs_write(ctx: ParamCtx, kp: ParamInfo, text: "str | bytes") -> int:
    """One write(2) of ``text`` to the parameter's sysfs file (as root) → bytes accepted.

    The ops' set sees the bytes as written (a trailing "\\n" from echo is kept: numbers accept
    it, charp/string store it).  ENOENT for perm 0, EACCES without a write bit, nothing done for
    an empty write, at most PAGE_SIZE bytes taken; param_check_unsafe applies (-EPERM); a set
    error is raised as OSError with its errno.
    """
    path = f"parameters/{kp.name}"
    if not kp.perm:
        raise _oserror(_errno.ENOENT, path)
    if not kp.perm & 0o222:
        raise _oserror(_errno.EACCES, path)
    data = _b(text)[:PAGE_SIZE]
    if not data:
        return 0
    ops = param_ops_of(ctx, kp)
    if ops.set is None:
        raise _oserror(EPERM, path)
    err = ops.set(ctx, kp, bytearray(data)) if param_check_unsafe(ctx, kp) else -EPERM
    if err:
        raise _oserror(err, path)
    return len(data)
