"""Module parameters (kmodlab.kernel.params): kernel/params.c, lib/cmdline.c, lib/kstrtox.c.

Parameters live in a real AddressSpace: each test lays out a small module image with
struct.pack (variables, struct kernel_param, kparam_string, kparam_array) and decodes its
__param section, so set/get act on the same bytes the module code would.
"""
from __future__ import annotations

import errno
import struct

import pytest

from kmodlab.kernel import params as P
from kmodlab.kernel.mm import HEAP_BASE, MODULES_VADDR, AddressSpace, Heap
from kmodlab.kernel.module.internal import TAINT_USER

EINVAL, ERANGE, ENOSPC, EROFS, EPERM, ENOENT = (-errno.EINVAL, -errno.ERANGE, -errno.ENOSPC,
                                                -errno.EROFS, -errno.EPERM, -errno.ENOENT)

# Standard ops live in vmlinux: give each a fake link-time address the profile would map.
OPS_BASE = 0xFFFFFFFF82A00000
OPS_ADDR = {name: OPS_BASE + 0x40 * i for i, name in enumerate(sorted(P.PARAM_OPS))}
OPS_ADDR["param_ops_dyndbg_classes"] = OPS_BASE + 0x4000          # a real export we don't model
OPS_NAME = {a: n for n, a in OPS_ADDR.items()}


class Image:
    """A module's core region with parameters laid out the way the compiler would."""

    def __init__(self, modname: str = "m"):
        self.modname = modname
        self.mm = AddressSpace()
        self.mm.map("m:core", MODULES_VADDR, 0x10000)
        self.top = MODULES_VADDR
        self.entries: list[tuple] = []
        self.log: list[tuple[int, str]] = []
        self.taints: list[int] = []
        self.heap = Heap()
        self.params: list = []

    def alloc(self, data: bytes, align: int = 8) -> int:
        self.top = (self.top + align - 1) // align * align
        addr = self.top
        self.mm.write(addr, data)
        self.top += max(len(data), 1)
        return addr

    def cstr(self, s: bytes) -> int:
        return self.alloc(s + b"\0", 1)

    def param(self, name: str, ops, arg: int, perm: int = 0o644, level: int = -1,
              flags: int = 0) -> int:
        ops_addr = OPS_ADDR[ops] if isinstance(ops, str) else ops
        self.entries.append((name, ops_addr, perm, level, flags, arg))
        return arg

    def var(self, name: str, ops: str, fmt: str, init: int = 0, **kw) -> int:
        return self.param(name, ops, self.alloc(struct.pack("<" + fmt, init)), **kw)

    def charp(self, name: str, init: bytes | None = None, **kw) -> int:
        ptr = self.cstr(init) if init is not None else 0
        return self.param(name, "param_ops_charp", self.alloc(struct.pack("<Q", ptr)), **kw)

    def string(self, name: str, maxlen: int, init: bytes = b"", **kw) -> int:
        buf = self.alloc(init.ljust(maxlen, b"\0"))
        kps = self.alloc(struct.pack("<I4xQ", maxlen, buf))
        self.param(name, "param_ops_string", kps, **kw)
        return buf

    def array(self, name: str, elem_ops, max_: int, elemsize: int, with_num: bool = True,
              init: bytes = b"", num_init: int = 0, **kw) -> tuple[int, int]:
        elem = self.alloc(init.ljust(max_ * elemsize, b"\0"))
        num = self.alloc(struct.pack("<I", num_init)) if with_num else 0
        ops_addr = OPS_ADDR[elem_ops] if isinstance(elem_ops, str) else elem_ops
        arr = self.alloc(struct.pack("<IIQQQ", max_, elemsize, num, ops_addr, elem))
        self.param(name, "param_array_ops", arr, **kw)
        return elem, num

    def custom_ops(self, flags: int = 0, set_: int = 1, get: int = 1, free: int = 0) -> int:
        """A module-defined struct kernel_param_ops (function pointers are just non-zero)."""
        fn = MODULES_VADDR + 0x8000
        return self.alloc(struct.pack("<I4xQQQ", flags, fn * bool(set_), (fn + 16) * bool(get),
                                      (fn + 32) * bool(free)))

    def finish(self) -> list:
        """Write the __param section (relocated struct kernel_param[]) and decode it."""
        sec = b""
        for name, ops_addr, perm, level, flags, arg in self.entries:
            sec += struct.pack("<QQQHbB4xQ", self.cstr(name.encode()), MODULES_VADDR + 0xF000,
                               ops_addr, perm, level, flags, arg)
        base = self.alloc(sec, 64)
        self.params = P.decode_kernel_params(self.mm, base, len(self.entries), OPS_NAME.get)
        return self.params

    def ctx(self, **kw) -> P.ParamCtx:
        return P.ParamCtx(mm=self.mm, heap=self.heap, printk=lambda lv, t: self.log.append((lv, t)),
                          taint=self.taints.append, ops_name_of=OPS_NAME.get, **kw)

    def kp(self, name: str):
        return next(p for p in self.params if p.name == name)

    def u(self, addr: int, size: int) -> int:
        return self.mm.read_u(addr, size)

    def s(self, addr: int, size: int) -> int:
        v = self.mm.read_u(addr, size)
        return v - (1 << 8 * size) if v >> (8 * size - 1) else v


# ---------------------------------------------------------------------------------------------
# next_arg

NEXT_ARG = [
    # reference §2.20 examples
    ('a="x y"', ("a", "x y", "")),
    ('"a=x y"', ("a", "x y", "")),
    ('a=x"y z"', ("a", 'x"y z"', "")),
    ("flag", ("flag", None, "")),
    # NULL vs empty value
    ("p=", ("p", "", "")),
    ('a=""', ("a", "", "")),
    ('a="', ("a", "", "")),
    # '=' at position 0 is not a separator; the next '=' is
    ("=x", ("=x", None, "")),
    ("=x=y", ("=x", "y", "")),
    ("==x", ("=", "x", "")),
    ("a=b=c", ("a", "b=c", "")),
    # whitespace = the kernel's isspace, rest keeps its own trailing spaces
    ("a b", ("a", None, "b")),
    ("a   b  ", ("a", None, "b  ")),
    ("a\tb", ("a", None, "b")), ("a\nb", ("a", None, "b")), ("a\vb", ("a", None, "b")),
    ("a\fb", ("a", None, "b")), ("a\rb", ("a", None, "b")),
    # quotes: toggle anywhere, no escapes, interior quotes kept
    ('"a b"', ("a b", None, "")),
    ('"a"', ("a", None, "")),
    ('a="x y', ("a", "x y", "")),            # unterminated quote runs to the end
    ('a="x"y', ("a", 'x"y', "")),            # closing quote not last: kept
    ('"a"=b', ('a"', "b", "")),              # quote before '=' belongs to the name
    ('"" x', ("", None, "x")),
    ('a="x y" b=1', ("a", "x y", "b=1")),
    ('-- rest of "it"', ("--", None, 'rest of "it"')),
]


@pytest.mark.parametrize("args,expected", NEXT_ARG, ids=[repr(a) for a, _ in NEXT_ARG])
def test_next_arg(args, expected):
    """lib/cmdline.c next_arg: token, '=' (not at 0), NULL vs "" value, quote stripping."""
    assert P.next_arg(args) == expected


def test_next_arg_bytes_and_nbsp():
    """lib/ctype.c: the kernel's isspace() is true for byte 0xA0, so it splits tokens, even the
    second byte of a UTF-8 "\\u00a0" or "à" (C3 A0); next_arg works on bytes."""
    assert P.next_arg(b"a\xa0b") == (b"a", None, b"b")
    assert P.next_arg(b"x=\xc3\xa0y") == (b"x", b"\xc3", b"y")
    assert P.next_arg(b"a\x85b") == (b"a\x85b", None, b"")       # 0x85 is not space here
    assert P.isspace(0xA0) and not P.isspace(0x85) and not P.isspace(0x1C)


# ---------------------------------------------------------------------------------------------
# kstrto*

KSTRTOULL = [
    ("0", 0, (0, 0)), ("10", 0, (0, 10)), ("010", 0, (0, 8)), ("0x10", 0, (0, 16)),
    ("0X1f", 0, (0, 31)), ("+5", 0, (0, 5)), ("5\n", 0, (0, 5)), ("5\n\n", 0, (EINVAL, None)),
    ("", 0, (EINVAL, None)), ("\n", 0, (EINVAL, None)), ("-1", 0, (EINVAL, None)),
    ("0x", 0, (EINVAL, None)), ("0xg", 0, (EINVAL, None)), ("08", 0, (EINVAL, None)),
    (" 5", 0, (EINVAL, None)), ("5 ", 0, (EINVAL, None)), ("++5", 0, (EINVAL, None)),
    ("18446744073709551615", 0, (0, 2**64 - 1)), ("18446744073709551616", 0, (ERANGE, None)),
    ("0xffffffffffffffff", 0, (0, 2**64 - 1)), ("0x10000000000000000", 0, (ERANGE, None)),
    ("99999999999999999999999x", 0, (ERANGE, None)),    # overflow is reported before junk
    ("ff", 16, (0, 255)), ("0xff", 16, (0, 255)), ("0x", 16, (EINVAL, None)),
    ("0x10", 10, (EINVAL, None)), ("777", 8, (0, 511)), ("8", 8, (EINVAL, None)),
    ("1010", 2, (0, 10)),
]


@pytest.mark.parametrize("s,base,expected", KSTRTOULL)
def test_kstrtoull(s, base, expected):
    """lib/kstrtox.c kstrtoull: radix fix-up (0x needs a hex digit after it), one '+', one
    trailing newline, -ERANGE on u64 overflow, -EINVAL otherwise."""
    assert P.kstrtoull(s, base) == expected


KSTRTOLL = [
    ("-1", (0, -1)), ("-0", (0, 0)), ("-0x10", (0, -16)), ("-010", (0, -8)),
    ("-9223372036854775808", (0, -2**63)), ("-9223372036854775809", (ERANGE, None)),
    ("9223372036854775807", (0, 2**63 - 1)), ("9223372036854775808", (ERANGE, None)),
    ("-18446744073709551615", (ERANGE, None)), ("+7\n", (0, 7)), ("-7\n", (0, -7)),
    ("-+1", (EINVAL, None)), ("+-1", (EINVAL, None)), ("--1", (EINVAL, None)),
    ("-", (EINVAL, None)),
]


@pytest.mark.parametrize("s,expected", KSTRTOLL)
def test_kstrtoll(s, expected):
    """lib/kstrtox.c kstrtoll: one '-' or one '+', then the unsigned parse; s64 range."""
    assert P.kstrtoll(s) == expected


KSTRTOX_TYPED = [
    ("u8", "255", (0, 255)), ("u8", "256", (ERANGE, None)), ("u8", "-1", (EINVAL, None)),
    ("u8", "0377", (0, 255)), ("u8", "0400", (ERANGE, None)),
    ("s8", "-128", (0, -128)), ("s8", "128", (ERANGE, None)),
    ("u16", "65535", (0, 65535)), ("u16", "0x10000", (ERANGE, None)),
    ("s16", "-32768", (0, -32768)), ("s16", "-32769", (ERANGE, None)),
    ("s16", "32767\n", (0, 32767)),
    ("u32", "4294967295", (0, 2**32 - 1)), ("u32", "4294967296", (ERANGE, None)),
    ("s32", "-2147483648", (0, -2**31)), ("s32", "2147483648", (ERANGE, None)),
    ("int", "0x7fffffff", (0, 2**31 - 1)), ("uint", "-0", (EINVAL, None)),
    ("u64", "18446744073709551615", (0, 2**64 - 1)), ("s64", "-1", (0, -1)),
    ("ul", "1", (0, 1)), ("l", "-9223372036854775808", (0, -2**63)),
]


@pytest.mark.parametrize("kind,s,expected", KSTRTOX_TYPED)
def test_kstrtox_typed(kind, s, expected):
    """lib/kstrtox.c kstrto{u8,s8,u16,s16,uint,int,...}: parse as 64-bit, then -ERANGE unless
    the value fits the type; unsigned types reject '-'."""
    assert P.kstrtox(kind, s) == expected


def test_kstrtox_named_aliases():
    """lib/kstrtox.c: the named entry points are the table's kinds."""
    assert P.kstrtou8("255") == (0, 255) and P.kstrtos16("-1") == (0, -1)
    assert P.kstrtoint("-5") == (0, -5) and P.kstrtouint("5") == (0, 5)
    assert P.kstrtoul("5") == (0, 5) and P.kstrtol("-5") == (0, -5)
    assert P.kstrtou8.__name__ == "kstrtou8"


KSTRTOBOOL = [(c, (0, True)) for c in ["y", "Y", "t", "T", "1", "yes", "true", "1abc", "10",
                                        "on", "ON", "oN", "On"]] + \
             [(c, (0, False)) for c in ["n", "N", "f", "F", "0", "no", "false", "0x1",
                                         "of", "off", "OFF", "oF"]] + \
             [(c, (EINVAL, None)) for c in ["", "\n", "o", "ox", "x", "2", " y", "e", "d",
                                             "enable", None]]


@pytest.mark.parametrize("s,expected", KSTRTOBOOL, ids=[repr(s) for s, _ in KSTRTOBOOL])
def test_kstrtobool(s, expected):
    """lib/kstrtox.c kstrtobool (6.1): first char y/Y/t/T/1 or n/N/f/F/0, o/O + n/N or f/F;
    nothing else (e/d only exist in late-2025 kernels); NULL is -EINVAL."""
    assert P.kstrtobool(s) == expected


# ---------------------------------------------------------------------------------------------
# standard types: set/get round trips in module memory

NUMERIC = [
    # ops, struct fmt, value written, expected storage, expected sysfs text
    ("param_ops_byte", "B", "200", 200, "200\n"),
    ("param_ops_byte", "B", "0x10", 16, "16\n"),
    ("param_ops_short", "h", "-5", -5, "-5\n"),
    ("param_ops_ushort", "H", "65535", 65535, "65535\n"),
    ("param_ops_int", "i", "-2147483648", -2**31, "-2147483648\n"),
    ("param_ops_int", "i", "010", 8, "8\n"),
    ("param_ops_uint", "I", "4294967295", 2**32 - 1, "4294967295\n"),
    ("param_ops_long", "q", "-9223372036854775808", -2**63, "-9223372036854775808\n"),
    ("param_ops_ulong", "Q", "18446744073709551615", 2**64 - 1, "18446744073709551615\n"),
    ("param_ops_ullong", "Q", "0x8000000000000000", 2**63, "9223372036854775808\n"),
    ("param_ops_hexint", "I", "10", 10, "0x00000a\n"),
    ("param_ops_hexint", "I", "0", 0, "0x000000\n"),
    ("param_ops_hexint", "I", "0xdeadbeef", 0xDEADBEEF, "0xdeadbeef\n"),
]


@pytest.mark.parametrize("ops,fmt,val,stored,text", NUMERIC)
def test_numeric_round_trip(ops, fmt, val, stored, text):
    """kernel/params.c STANDARD_PARAM_DEF: set = kstrto<type>(val, 0) into the variable;
    get = "%hhu/%hi/%hu/%i/%u/%li/%lu/%llu\\n", hexint "%#08x\\n" (the kernel prints 0x even for 0)."""
    img = Image()
    addr = img.var("p", ops, fmt, 0)
    img.finish()
    ctx = img.ctx()
    assert P.param_set(ctx, img.kp("p"), val) == 0
    assert struct.unpack("<" + fmt, img.mm.read(addr, struct.calcsize(fmt)))[0] == stored
    assert P.param_get(ctx, img.kp("p")) == text


NUMERIC_ERRORS = [
    ("param_ops_byte", "B", "256", ERANGE), ("param_ops_short", "h", "32768", ERANGE),
    ("param_ops_ushort", "H", "-1", EINVAL), ("param_ops_int", "i", "", EINVAL),
    ("param_ops_uint", "I", "12abc", EINVAL), ("param_ops_hexint", "I", "0x100000000", ERANGE),
]


@pytest.mark.parametrize("ops,fmt,val,err", NUMERIC_ERRORS)
def test_numeric_errors_leave_variable(ops, fmt, val, err):
    """lib/kstrtox.c: on error the kstrto* result is not stored, so the variable keeps its value."""
    img = Image()
    addr = img.var("p", ops, fmt, 7)
    img.finish()
    assert P.param_set(img.ctx(), img.kp("p"), val) == err
    assert img.u(addr, struct.calcsize(fmt)) == 7


def test_bool_family():
    """kernel/params.c: bool (NOARG: NULL means "1"), invbool stores the inverse and reads
    back inverted, bint stores int 0/1 and reads as %i; sysfs text Y/N."""
    img = Image()
    b = img.var("b", "param_ops_bool", "B", 0)
    inv = img.var("inv", "param_ops_invbool", "B", 0)
    bint = img.var("bi", "param_ops_bint", "i", 7)
    img.finish()
    ctx = img.ctx()
    assert P.param_get(ctx, img.kp("b")) == "N\n"
    assert P.param_set(ctx, img.kp("b"), None) == 0 and img.u(b, 1) == 1
    assert P.param_get(ctx, img.kp("b")) == "Y\n"
    assert P.param_set(ctx, img.kp("b"), "off") == 0 and img.u(b, 1) == 0
    assert P.param_set(ctx, img.kp("b"), "maybe") == EINVAL and img.u(b, 1) == 0
    assert P.param_get(ctx, img.kp("inv")) == "Y\n"                  # stored 0 → shown Y
    assert P.param_set(ctx, img.kp("inv"), "1") == 0 and img.u(inv, 1) == 0
    assert P.param_get(ctx, img.kp("inv")) == "Y\n"
    assert P.param_set(ctx, img.kp("inv"), "n") == 0 and img.u(inv, 1) == 1
    assert P.param_get(ctx, img.kp("inv")) == "N\n"
    assert P.param_set(ctx, img.kp("bi"), None) == 0 and img.u(bint, 4) == 1
    assert P.param_get(ctx, img.kp("bi")) == "1\n"
    assert P.param_set(ctx, img.kp("bi"), "N") == 0 and img.u(bint, 4) == 0
    assert P.PARAM_OPS["param_ops_invbool"].flags == 0                 # not NOARG


def test_bool_enable_only():
    """kernel/params.c param_set_bool_enable_only: N→N is a no-op, N→Y sets, Y→N is -EROFS."""
    img = Image()
    addr = img.var("e", "param_ops_bool_enable_only", "B", 0)
    img.finish()
    ctx, kp = img.ctx(), img.kp("e")
    assert P.param_set(ctx, kp, "n") == 0 and img.u(addr, 1) == 0
    assert P.param_set(ctx, kp, None) == 0 and img.u(addr, 1) == 1
    assert P.param_set(ctx, kp, "0") == EROFS and img.u(addr, 1) == 1
    assert P.param_set(ctx, kp, "x") == EINVAL
    assert P.param_set(ctx, kp, "y") == 0 and P.param_get(ctx, kp) == "Y\n"


def test_charp_kmalloc_and_free():
    """kernel/params.c param_set_charp: the variable points at a kmalloc'd copy (after a
    16-byte list_head); our old copy is freed first, the module's own literal never is;
    param_free_charp frees on unload; get prints "%s\\n", "(null)" for NULL."""
    img = Image()
    var = img.charp("c", b"default")
    img.charp("n", None)
    img.finish()
    ctx, kp = img.ctx(), img.kp("c")
    literal = img.mm.read_u64(var)
    assert P.param_get(ctx, kp) == "default\n"
    assert P.param_get(ctx, img.kp("n")) == "(null)\n"
    assert P.param_set(ctx, kp, "hello") == 0
    first = img.mm.read_u64(var)
    assert first >= HEAP_BASE and first in ctx.kmalloced_params
    assert img.heap.allocs == {first - 16: 16 + 6}
    assert img.mm.read_cstr(literal) == b"default"                  # literal untouched
    assert P.param_get(ctx, kp) == "hello\n"
    assert P.param_set(ctx, kp, "") == 0
    second = img.mm.read_u64(var)
    assert ctx.kmalloced_params == {second} and list(img.heap.allocs) == [second - 16]
    assert P.param_get(ctx, kp) == "\n"
    P.destroy_params(ctx, img.params)
    assert img.heap.allocs == {} and ctx.kmalloced_params == set()


def test_charp_too_long():
    """kernel/params.c param_set_charp: up to 1024 bytes accepted; 1025 → -ENOSPC and
    "%s: string parameter too long" (kp->name), variable unchanged."""
    img = Image()
    var = img.charp("c", b"x")
    img.finish()
    ctx, kp = img.ctx(), img.kp("c")
    before = img.mm.read_u64(var)
    assert P.param_set(ctx, kp, "a" * 1025) == ENOSPC
    assert img.log == [(3, "c: string parameter too long")]
    assert img.mm.read_u64(var) == before and img.heap.allocs == {}
    assert P.param_set(ctx, kp, "a" * 1024) == 0
    assert P.param_get(ctx, kp) == "a" * 1024 + "\n"


def test_string_fits_and_too_long():
    """kernel/params.c param_set_copystring: strlen+1 > maxlen → -ENOSPC with
    "%s: string doesn't fit in %u chars." printing maxlen-1; get prints the buffer + "\\n"."""
    img = Image()
    buf = img.string("s", 8, b"init")
    img.finish()
    ctx, kp = img.ctx(), img.kp("s")
    assert P.param_get(ctx, kp) == "init\n"
    assert P.param_set(ctx, kp, "1234567") == 0
    assert img.mm.read(buf, 8) == b"1234567\0"
    assert P.param_set(ctx, kp, "12345678") == ENOSPC
    assert img.log == [(3, "s: string doesn't fit in 7 chars.")]
    assert P.param_get(ctx, kp) == "1234567\n"


def test_array_of_int():
    """kernel/params.c param_array: comma-split, each element through the element ops, *num
    counts the elements set; get joins element outputs with ","."""
    img = Image()
    elem, num = img.array("arr", "param_ops_int", 4, 4)
    img.finish()
    ctx, kp = img.ctx(), img.kp("arr")
    assert P.param_get(ctx, kp) == ""                               # num = 0: nothing, no "\n"
    assert P.param_set(ctx, kp, "1,-2,0x3") == 0
    assert img.u(num, 4) == 3
    assert struct.unpack("<4i", img.mm.read(elem, 16)) == (1, -2, 3, 0)
    assert P.param_get(ctx, kp) == "1,-2,3\n"


def test_array_too_many_and_bad_element():
    """kernel/params.c param_array: more than max → "%s: can only take %i arguments" and
    -EINVAL, the first max elements stay written and counted; an empty element fails in the
    element's set and *num keeps the count reached."""
    img = Image()
    elem, num = img.array("arr", "param_ops_int", 4, 4)
    img.finish()
    ctx, kp = img.ctx(), img.kp("arr")
    assert P.param_set(ctx, kp, "1,2,3,4,5") == EINVAL
    assert img.log == [(3, "arr: can only take 4 arguments")]
    assert img.u(num, 4) == 4 and struct.unpack("<4i", img.mm.read(elem, 16)) == (1, 2, 3, 4)
    assert P.param_set(ctx, kp, "9,,3") == EINVAL
    assert img.u(num, 4) == 1 and img.s(elem, 4) == 9
    assert P.param_set(ctx, kp, "") == EINVAL and img.u(num, 4) == 0


def test_array_without_num_and_other_elements():
    """kernel/params.c param_array_get: without a num pointer all max elements are shown;
    element types are any standard ops (bool, hexint, charp)."""
    img = Image()
    img.array("fixed", "param_ops_short", 3, 2, with_num=False, init=struct.pack("<3h", 1, -1, 2))
    img.array("flags", "param_ops_bool", 3, 1)
    img.array("hx", "param_ops_hexint", 2, 4)
    img.array("names", "param_ops_charp", 3, 8)
    img.finish()
    ctx = img.ctx()
    assert P.param_get(ctx, img.kp("fixed")) == "1,-1,2\n"
    assert P.param_set(ctx, img.kp("fixed"), "5") == 0
    assert P.param_get(ctx, img.kp("fixed")) == "5,-1,2\n"
    assert P.param_set(ctx, img.kp("flags"), "y,n,on") == 0
    assert P.param_get(ctx, img.kp("flags")) == "Y,N,Y\n"
    assert P.param_set(ctx, img.kp("hx"), "1,0xff") == 0
    assert P.param_get(ctx, img.kp("hx")) == "0x000001,0x0000ff\n"
    assert P.param_set(ctx, img.kp("names"), "a,,bc") == 0
    assert P.param_get(ctx, img.kp("names")) == "a,,bc\n"
    assert len(ctx.kmalloced_params) == 3
    P.destroy_params(ctx, img.params)                               # param_array_free → charp free
    assert img.heap.allocs == {} and ctx.kmalloced_params == set()


def test_decode_kernel_params():
    """struct kernel_param (x86-64, 40 bytes): name@0, mod@8, ops@16, perm u16@24, level s8@26,
    flags u8@27, union@32; an ops pointer that is no known export is module-defined ("custom")."""
    img = Image()
    arg = img.var("my_int", "param_ops_int", "i", 0, perm=0o444, level=-1,
                  flags=P.KERNEL_PARAM_FL_UNSAFE)
    cops = img.custom_ops()
    img.param("mine", cops, img.alloc(bytes(8)), perm=0o600, level=3)
    params = img.finish()
    a, b = params
    assert (a.name, a.ops, a.perm, a.level, a.flags, a.arg) == \
        ("my_int", "param_ops_int", 0o444, -1, 1, arg)
    assert (b.name, b.ops, b.perm, b.level) == ("mine", "custom", 0o600, 3)
    assert b.addr == a.addr + 40 and img.mm.read_u64(b.addr + 16) == cops


# ---------------------------------------------------------------------------------------------
# parse_args

def basic_image() -> Image:
    img = Image("m")
    img.var("i", "param_ops_int", "i", 0)
    img.var("j", "param_ops_int", "i", 0)
    img.var("b", "param_ops_bool", "B", 0)
    img.var("inv", "param_ops_invbool", "B", 0)
    img.var("u", "param_ops_byte", "B", 0)
    img.charp("s", b"def")
    img.array("arr", "param_ops_int", 4, 4)
    img.var("my_param", "param_ops_int", "i", 0)
    img.var("my-dash", "param_ops_int", "i", 0)
    img.finish()
    return img


def val(img: Image, name: str, size: int = 4) -> int:
    return img.s(img.kp(name).arg, size)


def test_parse_args_basic():
    """kernel/params.c parse_args: leading/trailing whitespace skipped, each token set, no
    log, no error, no `--` → rest None."""
    img = basic_image()
    ctx = img.ctx()
    assert P.parse_args(ctx, "m", "  i=5\tb s=\"hello world\" arr=1,2\n", img.params) == (0, None)
    assert val(img, "i") == 5 and val(img, "b", 1) == 1
    assert P.param_get(ctx, img.kp("s")) == "hello world\n"
    assert P.param_get(ctx, img.kp("arr")) == "1,2\n"
    assert img.log == []
    assert P.parse_args(ctx, "m", "", img.params) == (0, None)
    assert P.parse_args(ctx, "m", "   ", img.params) == (0, None)


def test_parse_args_quoting():
    """lib/cmdline.c next_arg via parse_args: a quoted whole token, quoted values with spaces,
    interior quotes kept literally."""
    img = basic_image()
    ctx = img.ctx()
    assert P.parse_args(ctx, "m", '"s=a b" i=1', img.params) == (0, None)
    assert P.param_get(ctx, img.kp("s")) == "a b\n" and val(img, "i") == 1
    assert P.parse_args(ctx, "m", 's=x"y z"', img.params) == (0, None)
    assert P.param_get(ctx, img.kp("s")) == 'x"y z"\n'


def test_parse_args_dashes_equal_underscores():
    """kernel/params.c parameq: '-' and '_' are the same in both names; messages show the
    name as the user typed it, type errors the declared name."""
    img = basic_image()
    ctx = img.ctx()
    assert P.parse_args(ctx, "m", "my-param=3 my_dash=4", img.params) == (0, None)
    assert val(img, "my_param") == 3 and val(img, "my-dash") == 4
    assert P.parse_args(ctx, "m", "my-param=x", img.params) == (EINVAL, None)
    assert img.log == [(3, "m: `x' invalid for parameter `my-param'")]
    assert P.parameq("a-b_c", "a_b-c") and not P.parameq("ab", "abc")


def test_parse_args_first_match_in_array_order():
    """kernel/params.c parse_one: params are searched in __param order, first parameq match wins."""
    img = Image()
    first = img.var("x_y", "param_ops_int", "i", 0)
    second = img.var("x-y", "param_ops_int", "i", 0)
    img.finish()
    assert P.parse_args(img.ctx(), "m", "x-y=1", img.params) == (0, None)
    assert (img.s(first, 4), img.s(second, 4)) == (1, 0)


def test_parse_args_unknown_parameter_warns():
    """kernel/module/main.c unknown_module_param_cb: an undeclared name is logged as
    "%s: unknown parameter '%s' ignored" (warning) and is not an error; the dyndbg helper
    (lib/dynamic_debug.c) cuts the name at its first '.', so "a.b=1" is reported as 'a'."""
    img = basic_image()
    ctx = img.ctx()
    assert P.parse_args(ctx, "m", "nope=1 a.b=1 x.y.z async-probe i=2", img.params) == (0, None)
    assert img.log == [(4, "m: unknown parameter 'nope' ignored"),
                       (4, "m: unknown parameter 'a' ignored"),
                       (4, "m: unknown parameter 'x' ignored"),
                       (4, "m: unknown parameter 'async-probe' ignored")]
    assert val(img, "i") == 2


def test_parse_args_dyndbg_and_async_probe():
    """kernel/module/main.c + lib/dynamic_debug.c: dyndbg[=q] and <mod>.dyndbg[=q] go to
    dynamic debug (default query "+p"); async_probe[=bool] sets async probing, an unparsable
    value meaning true; none of them warns."""
    img = basic_image()
    ctx = img.ctx()
    args = "dyndbg=+pf dyndbg m.dyndbg=-p other.dyndbg async_probe=0"
    assert P.parse_args(ctx, "m", args, img.params) == (0, None)
    assert ctx.dyndbg_queries == [("m", "+pf"), ("m", "+p"), ("m", "-p"), ("other", "+p")]
    assert ctx.async_probe_requested is False and img.log == []
    for arg, expect in [("async_probe", True), ("async_probe=x", True), ("async_probe=n", False),
                        ("async_probe=on", True)]:
        assert P.parse_args(ctx, "m", arg, img.params) == (0, None)
        assert ctx.async_probe_requested is expect, arg


def test_parse_args_double_dash():
    """kernel/params.c parse_args: a bare `--` stops parsing and returns the rest (maybe "",
    which load_module still reports); `--=x` is an ordinary (unknown) parameter; an error
    before `--` wins and the rest is lost."""
    img = basic_image()
    ctx = img.ctx()
    assert P.parse_args(ctx, "m", "i=1 --  j=2 x", img.params) == (0, "j=2 x")
    assert val(img, "i") == 1 and val(img, "j") == 0
    assert P.parse_args(ctx, "m", "i=3 --", img.params) == (0, "")
    assert P.parse_args(ctx, "m", "-- i=9", img.params) == (0, "i=9") and val(img, "i") == 3
    assert P.parse_args(ctx, "m", "--=x", img.params) == (0, None)
    assert img.log == [(4, "m: unknown parameter '--' ignored")]
    img.log.clear()
    assert P.parse_args(ctx, "m", "i=bad -- j=2", img.params) == (EINVAL, None)
    assert img.log == [(3, "m: `bad' invalid for parameter `i'")]
    assert P.AFTER_DASHES_WARNING % ("m", "j=2") == "m: parameters 'j=2' after `--' ignored"


def test_parse_args_bytes_in_bytes_out():
    """kernel/params.c: args are a C string; bytes in give bytes back, a NUL ends the string."""
    img = basic_image()
    assert P.parse_args(img.ctx(), "m", b"i=4 -- r\xffest\0i=5", img.params) == (0, b"r\xffest")
    assert val(img, "i") == 4


def test_parse_args_noarg():
    """kernel/params.c parse_one: a bare name is only accepted by NOARG ops (bool, bint,
    bool_enable_only); others get -EINVAL and "`' invalid" (NULL printed as "")."""
    img = basic_image()
    ctx = img.ctx()
    assert P.parse_args(ctx, "m", "b", img.params) == (0, None) and val(img, "b", 1) == 1
    assert P.parse_args(ctx, "m", "i inv", img.params) == (EINVAL, None)
    assert img.log == [(3, "m: `' invalid for parameter `i'"),
                       (3, "m: `' invalid for parameter `inv'")]


def test_parse_args_errors_continue_last_wins():
    """kernel/params.c parse_args: each failure is logged with its own wording (-ENOSPC "too
    large", others "invalid"), later tokens are still applied, the last error is returned."""
    img = basic_image()
    ctx = img.ctx()
    long = "x" * 1025
    err, rest = P.parse_args(ctx, "m", f"u=256 j=5 s={long}", img.params)
    assert (err, rest) == (ENOSPC, None) and val(img, "j") == 5
    assert img.log == [(3, "m: `256' invalid for parameter `u'"),
                       (3, "s: string parameter too long"),
                       (3, f"m: `{long}' too large for parameter `s'")]
    img.log.clear()
    assert P.parse_args(ctx, "m", f"s={long} i=7 u=300", img.params) == (ERANGE, None)
    assert val(img, "i") == 7


def test_parse_args_array_message_shows_mangled_value():
    """kernel/params.c param_array: the value string is split in place (commas become NUL and
    are not restored), so parse_args' message shows only the first element."""
    img = basic_image()
    ctx = img.ctx()
    assert P.parse_args(ctx, "m", "arr=1,2,3,4,5", img.params) == (EINVAL, None)
    assert img.log == [(3, "arr: can only take 4 arguments"),
                       (3, "m: `1' invalid for parameter `arr'")]
    img.log.clear()
    assert P.parse_args(ctx, "m", "arr=x", img.params) == (EINVAL, None)
    assert img.log == [(3, "m: `x' invalid for parameter `arr'")]


def test_parse_args_level_filter():
    """kernel/params.c parse_one: a matching parameter whose level is outside
    [min_level, max_level] is silently skipped (return 0)."""
    img = Image()
    addr = img.var("lv", "param_ops_int", "i", 0, level=5)
    img.finish()
    ctx = img.ctx()
    assert P.parse_args(ctx, "m", "lv=1", img.params, 0, 3) == (0, None)
    assert img.s(addr, 4) == 0 and img.log == []
    assert P.parse_args(ctx, "m", "lv=2", img.params, 5, 5) == (0, None)
    assert img.s(addr, 4) == 2


def test_parse_args_unsafe_and_hwparam():
    """kernel/params.c param_check_unsafe: an unsafe parameter logs "Setting dangerous option
    %s - tainting kernel" and taints U; a hardware parameter under lockdown is -EPERM."""
    img = Image()
    unsafe = img.var("danger", "param_ops_int", "i", 0, flags=P.KERNEL_PARAM_FL_UNSAFE)
    hw = img.var("io", "param_ops_int", "i", 0, flags=P.KERNEL_PARAM_FL_HWPARAM)
    img.finish()
    ctx = img.ctx()
    assert P.parse_args(ctx, "m", "danger=1 io=2", img.params) == (0, None)
    assert img.log == [(5, "Setting dangerous option danger - tainting kernel")]
    assert img.taints == [TAINT_USER] and img.s(unsafe, 4) == 1 and img.s(hw, 4) == 2
    img.log.clear()
    locked = img.ctx(locked_down=True, comm="modprobe")
    assert P.parse_args(locked, "m", "io=3", img.params) == (EPERM, None)
    assert img.s(hw, 4) == 2
    assert img.log == [(5, "Lockdown: modprobe: unsafe module parameters is restricted; "
                           "see man kernel_lockdown.7"),
                       (3, "m: `3' invalid for parameter `io'")]


def test_parse_args_without_unknown_callback():
    """kernel/params.c parse_one/parse_args: with no unknown callback an undeclared name is
    -ENOENT and "%s: Unknown parameter `%s'" (the built-in path; modules never get it)."""
    img = basic_image()
    assert P.parse_args(img.ctx(), "m", "zz=1", img.params, unknown=None) == (ENOENT, None)
    assert img.log == [(3, "m: Unknown parameter `zz'")]


def test_custom_ops_fail_cleanly_until_emulated():
    """kernel/params.c parse_one: module-defined ops run module code.  The NOARG flag is read
    from the module's struct kernel_param_ops; the set itself needs ctx.call_custom and
    otherwise raises ParamOpsUnavailable — never a pretended success."""
    img = Image()
    cops = img.custom_ops(flags=0)
    arg = img.alloc(bytes(8))
    img.param("tmo", cops, arg)
    img.finish()
    ctx = img.ctx()
    assert P.parse_args(ctx, "m", "tmo", img.params) == (EINVAL, None)
    with pytest.raises(P.ParamOpsUnavailable) as ei:
        P.parse_args(ctx, "m", "tmo=5", img.params)
    assert ei.value.errno == errno.ENOSYS and "tmo" in str(ei.value)
    calls = []

    def call_custom(ops_addr, which, kp, v):
        calls.append((ops_addr, which, kp.name, kp.arg, v))
        return -errno.EINVAL if v == b"bad" else 0

    ctx2 = img.ctx(call_custom=call_custom)
    assert P.parse_args(ctx2, "m", "tmo=5 tmo=bad", img.params) == (EINVAL, None)
    assert calls == [(cops, "set", "tmo", arg, b"5"), (cops, "set", "tmo", arg, b"bad")]


def test_unmodelled_kernel_ops_raise():
    """A kernel_param_ops export other than the standard ones (e.g. 6.1's
    param_ops_dyndbg_classes) is vmlinux code we do not model: raise, don't guess."""
    img = Image()
    img.param("cls", "param_ops_dyndbg_classes", img.alloc(bytes(8)))
    img.finish()
    assert img.kp("cls").ops == "param_ops_dyndbg_classes"
    with pytest.raises(P.ParamOpsUnavailable):
        P.parse_args(img.ctx(), "m", "cls=1", img.params)


# ---------------------------------------------------------------------------------------------
# sysfs

def test_sysfs_read():
    """kernel/params.c param_attr_show + fs/kernfs: perm 0 → no file (ENOENT); no read bit →
    EACCES at open; ops without get → EPERM; otherwise the get text as bytes."""
    img = Image()
    img.var("i", "param_ops_int", "i", -3, perm=0o444)
    img.var("hidden", "param_ops_int", "i", 0, perm=0)
    img.var("wo", "param_ops_int", "i", 0, perm=0o200)
    img.param("noget", img.custom_ops(get=0), img.alloc(bytes(8)), perm=0o444)
    img.param("cget", img.custom_ops(), img.alloc(bytes(8)), perm=0o444)
    img.charp("c", b"\xffraw")
    img.finish()
    ctx = img.ctx()
    assert P.param_sysfs_read(ctx, img.kp("i")) == b"-3\n"
    assert P.param_sysfs_read(ctx, img.kp("c")) == b"\xffraw\n"
    for name, code in [("hidden", errno.ENOENT), ("wo", errno.EACCES), ("noget", errno.EPERM)]:
        with pytest.raises(OSError) as ei:
            P.param_sysfs_read(ctx, img.kp(name))
        assert ei.value.errno == code, name
    with pytest.raises(P.ParamOpsUnavailable):
        P.param_sysfs_read(ctx, img.kp("cget"))
    ctx2 = img.ctx(call_custom=lambda a, which, kp, v: "42\n")
    assert P.param_sysfs_read(ctx2, img.kp("cget")) == b"42\n"


def test_sysfs_write():
    """kernel/params.c param_attr_store + fs/sysfs: the written bytes go to set as they are
    (numbers accept echo's trailing newline, charp keeps it); errors come back as errno;
    no write bit → EACCES; an empty write does nothing."""
    img = Image()
    i = img.var("i", "param_ops_int", "i", 0, perm=0o644)
    img.var("ro", "param_ops_int", "i", 0, perm=0o444)
    img.charp("c", b"x", perm=0o644)
    img.finish()
    ctx = img.ctx()
    assert P.param_sysfs_write(ctx, img.kp("i"), "12\n") == 3 and img.s(i, 4) == 12
    assert P.param_sysfs_write(ctx, img.kp("c"), "abc\n") == 4
    assert P.param_sysfs_read(ctx, img.kp("c")) == b"abc\n\n"
    assert P.param_sysfs_write(ctx, img.kp("i"), "") == 0
    with pytest.raises(OSError) as ei:
        P.param_sysfs_write(ctx, img.kp("i"), "12x\n")
    assert ei.value.errno == errno.EINVAL and img.s(i, 4) == 12
    with pytest.raises(OSError) as ei:
        P.param_sysfs_write(ctx, img.kp("ro"), "1")
    assert ei.value.errno == errno.EACCES
