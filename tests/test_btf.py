"""The BTF reader (kmodlab.profile.btf): hand-built blobs for the format's corners, and the real
vmlinux/module BTF of Debian 6.1.0-56 and 6.12.118 checked against facts measured independently
(the size of a module's .gnu.linkonce.this_module, its init/cleanup relocations)."""
from __future__ import annotations

import json
import lzma
import random
import struct
import time
from pathlib import Path

import pytest

from kmodlab import elf
from kmodlab.errors import KmodlabError
from kmodlab.profile import btf as B
from kmodlab.profile.btf import (Btf, BtfBitfieldError, BtfError, BtfMemberError, BtfNotFound,
                                 btf_section, extract_layouts, extract_prototypes)

DEBS = Path.home() / ".cache" / "kmodlab" / "debs"


# ---- a tiny BTF writer, straight from the format (Documentation/bpf/btf.rst) ----------------

class Builder:
    """Builds a .BTF blob: add types in id order (ids start at ``first_id``), then ``blob()``."""

    def __init__(self, endian: str = "<", first_id: int = 1, first_str: int = 0):
        self.e = endian
        self.first_str = first_str
        self.strs = bytearray(b"" if first_str else b"\0")
        self.offs: dict[str, int] = {"": 0}
        self.types = bytearray()
        self.next_id = first_id

    def s(self, name: str) -> int:
        if name not in self.offs:
            self.offs[name] = self.first_str + len(self.strs)
            self.strs += name.encode() + b"\0"
        return self.offs[name]

    def _t(self, kind: int, name: str, vlen: int, sot: int, extra: bytes = b"",
           kflag: bool = False) -> int:
        info = (kflag << 31) | (kind << 24) | vlen
        self.types += struct.pack(self.e + "III", self.s(name), info, sot) + extra
        tid = self.next_id
        self.next_id += 1
        return tid

    def int_(self, name, size, bits=None, offset=0, signed=True):
        enc = (1 if signed else 0) << 24 | offset << 16 | (size * 8 if bits is None else bits)
        return self._t(B.KIND_INT, name, 0, size, struct.pack(self.e + "I", enc))

    def ptr(self, to):
        return self._t(B.KIND_PTR, "", 0, to)

    def array(self, elem, n, index_type=1):
        return self._t(B.KIND_ARRAY, "", 0, 0, struct.pack(self.e + "III", elem, index_type, n))

    def typedef(self, name, to):
        return self._t(B.KIND_TYPEDEF, name, 0, to)

    def const(self, to):
        return self._t(B.KIND_CONST, "", 0, to)

    def volatile(self, to):
        return self._t(B.KIND_VOLATILE, "", 0, to)

    def fwd(self, name):
        return self._t(B.KIND_FWD, name, 0, 0)

    def struct(self, name, size, members, union=False, kflag=False):
        """members: (name, type, bit_offset[, bitfield_size])."""
        extra = b""
        for m in members:
            mname, mtype, boff = m[:3]
            bsz = m[3] if len(m) > 3 else 0
            off = (bsz << 24 | boff) if kflag else boff
            extra += struct.pack(self.e + "III", self.s(mname), mtype, off)
        return self._t(B.KIND_UNION if union else B.KIND_STRUCT, name, len(members), size,
                       extra, kflag)

    def enum(self, name, values, size=4, signed=False):
        extra = b"".join(struct.pack(self.e + "Ii", self.s(n), v) for n, v in values)
        return self._t(B.KIND_ENUM, name, len(values), size, extra, signed)

    def enum64(self, name, values, signed=False):
        extra = b"".join(struct.pack(self.e + "III", self.s(n), v & 0xFFFFFFFF,
                                     (v >> 32) & 0xFFFFFFFF) for n, v in values)
        return self._t(B.KIND_ENUM64, name, len(values), 8, extra, signed)

    def func_proto(self, ret, params):
        extra = b"".join(struct.pack(self.e + "II", self.s(n), t) for n, t in params)
        return self._t(B.KIND_FUNC_PROTO, "", len(params), ret, extra)

    def func(self, name, proto, linkage=1):
        return self._t(B.KIND_FUNC, name, linkage, proto)

    def raw(self, kind, name_off, vlen, sot, extra=b""):
        self.types += struct.pack(self.e + "III", name_off, kind << 24 | vlen, sot) + extra
        self.next_id += 1
        return self.next_id - 1

    def blob(self) -> bytes:
        hdr = struct.pack(self.e + "HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(self.types),
                          len(self.types), len(self.strs))
        return hdr + bytes(self.types) + bytes(self.strs)


def sample(endian: str = "<") -> tuple[bytes, dict[str, int]]:
    """A blob with the corners a layout reader must get right; returns it and the ids."""
    b = Builder(endian)
    ids = {}
    ids["int"] = b.int_("int", 4)
    ids["uint"] = b.int_("unsigned int", 4, signed=False)
    ids["char"] = b.int_("char", 1)
    ids["short"] = b.int_("short", 2)
    ids["long"] = b.int_("long", 8)
    ids["__u32"] = b.typedef("__u32", ids["uint"])
    ids["u32"] = b.typedef("u32", ids["__u32"])                  # typedef chain
    ids["cv_u32"] = b.const(b.volatile(ids["u32"]))              # const volatile u32
    ids["cvt"] = b.typedef("cv_u32_t", ids["cv_u32"])
    ids["pchar"] = b.ptr(ids["char"])
    ids["name16"] = b.array(ids["char"], 16)
    ids["m34"] = b.array(b.array(ids["int"], 4), 3)              # int m[3][4]
    # struct inner { u32 a; short b; }  (8 bytes)
    ids["inner"] = b.struct("inner", 8, [("a", ids["u32"], 0), ("b", ids["short"], 32)])
    ids["inner4"] = b.array(ids["inner"], 4)
    # struct { short b2; short c; } anonymous, inside an anonymous union
    anon_s = b.struct("", 4, [("b2", ids["short"], 0), ("c", ids["short"], 16)])
    anon_u = b.struct("", 4, [("ua", ids["int"], 0), ("", anon_s, 0)], union=True)
    # struct bf (kind_flag): unsigned a:3; unsigned b:5; int c;  (8 bytes)
    ids["bf"] = b.struct("bf", 8, [("a", ids["uint"], 0, 3), ("b", ids["uint"], 3, 5),
                                   ("c", ids["int"], 32)], kflag=True)
    # old-style bitfield: the member's INT type says 4 bits at bit offset 2
    ids["int4"] = b.int_("int", 4, bits=4, offset=2)
    ids["oldbf"] = b.struct("oldbf", 8, [("x", ids["int4"], 0), ("y", ids["int"], 32)])
    ids["proto"] = b.func_proto(ids["int"], [("a", ids["int"]), ("b", ids["pchar"])])
    ids["pfn"] = b.ptr(ids["proto"])
    ids["fn"] = b.func("do_thing", ids["proto"])
    # struct outer { long x; union {int ua; struct {short b2, c;};}; char name[16];
    #                struct inner arr[4]; int m[3][4]; cv_u32_t cv; int (*fn)(int, char *);
    #                struct bf bits; int flex[]; }
    flex = b.array(ids["int"], 0)
    ids["outer"] = b.struct("outer", 152, [
        ("x", ids["long"], 0), ("", anon_u, 64), ("name", ids["name16"], 96),
        ("arr", ids["inner4"], 224), ("m", ids["m34"], 480), ("cv", ids["cvt"], 864),
        ("fn", ids["pfn"], 896), ("bits", ids["bf"], 960), ("flex", flex, 1216)])
    ids["outer_t"] = b.typedef("outer_t", ids["outer"])
    ids["u_named"] = b.struct("u_named", 8, [("l", ids["long"], 0), ("i", ids["int"], 0)],
                              union=True)
    ids["fwd"] = b.fwd("opaque")
    ids["color"] = b.enum("color", [("RED", 0), ("GREEN", 1), ("BLUE", 7)])
    ids["sgn"] = b.enum("sgn", [("NEG", -1), ("POS", 1)], signed=True)
    ids["big"] = b.enum64("big", [("HUGE", 1 << 40), ("NEGATIVE", -5)], signed=True)
    ids["ubig"] = b.enum64("ubig", [("TOP", (1 << 64) - 1)])
    ids["inner_dup"] = b.struct("inner", 4, [("z", ids["int"], 0)])   # same name, later id
    return b.blob(), ids


@pytest.fixture(scope="module")
def small():
    blob, ids = sample()
    return Btf.parse(blob), ids


# ---- the hand-built blob --------------------------------------------------------------------

def test_ids_kinds_and_names(small):
    t, ids = small
    assert len(t) == t.last_id == max(ids.values())
    assert t.find("outer") == ids["outer"]
    assert t.find("struct outer") == ids["outer"]
    assert t.find("color", "enum") == ids["color"] == t.find("enum color")
    assert t.find("big", "enum") == ids["big"]                  # enum covers enum64
    assert t.find("outer_t", "typedef") == ids["outer_t"]
    assert t.find("u_named", "union") == ids["u_named"]
    assert t.find("u_named", None) == ids["u_named"]
    assert t.find("do_thing", "func") == ids["fn"]
    assert t.find("inner") == ids["inner"]                      # lowest id of duplicates
    assert t.find_all("inner") == [ids["inner"], ids["inner_dup"]]
    assert t.get("outer", "union") is None
    assert t.get("nope") is None
    with pytest.raises(BtfNotFound, match="struct nope") as ei:
        t.find("nope")
    assert isinstance(ei.value, KeyError) and isinstance(ei.value, KmodlabError)
    assert t.type(ids["outer"]).kind_name == "struct"
    assert t.type(0).name == "void"
    assert str(t.type(ids["pchar"])).startswith("anonymous ptr")
    fn = t.type(ids["proto"])
    assert [(p.name, p.type) for p in fn.params] == [("a", ids["int"]), ("b", ids["pchar"])]


def test_sizeof(small):
    t, ids = small
    assert t.sizeof("outer") == 152 == t.sizeof("outer_t") == t.sizeof(ids["outer"])
    assert t.sizeof("u32") == 4                                 # typedef → typedef → int
    assert t.sizeof(ids["cvt"]) == 4                            # typedef → const → volatile
    assert t.sizeof(ids["pchar"]) == 8 == t.sizeof(ids["pfn"])
    assert t.sizeof(ids["m34"]) == 48
    assert t.sizeof(ids["inner4"]) == 32
    assert t.sizeof("enum color") == 4 and t.sizeof("big") == 8
    for incomplete in (0, ids["fwd"], ids["proto"], ids["fn"]):
        with pytest.raises(BtfError):
            t.sizeof(incomplete)


def test_offsetof_paths(small):
    t, ids = small
    assert t.offsetof("outer", "x") == 0
    assert t.offsetof("outer", "ua") == 8                       # through the anonymous union
    assert t.offsetof("outer", "b2") == 8                       # … and the struct inside it
    assert t.offsetof("outer", "c") == 10
    assert t.offsetof("outer", "name") == 12
    assert t.offsetof("outer", "name[5]") == 17
    assert t.offsetof("outer", "arr") == 28
    assert t.offsetof("outer", "arr[2].b") == 28 + 16 + 4
    assert t.offsetof("outer", "arr[3].a") == 52
    assert t.offsetof("outer", "m[2][1]") == 60 + 2 * 16 + 4
    assert t.offsetof("outer", "m[1]") == 76
    assert t.offsetof("outer", "cv") == 108
    assert t.offsetof("outer", "bits.c") == 124
    assert t.offsetof("outer", "flex[10]") == 152 + 40           # flexible array: any index
    assert t.offsetof("outer_t", "arr[1].b") == 40               # through a typedef
    assert t.offsetof(ids["outer"], " arr [1] . b ") == 40       # whitespace tolerated
    assert t.member_size("outer", "arr[1]") == 8
    assert t.member_size("outer", "name") == 16
    assert t.member_size("outer", "m[1]") == 16
    assert t.type(t.member_type("outer", "arr[1]")).name == "inner"
    assert t.has_member("outer", "c") and not t.has_member("outer", "d")
    assert t.offsetof("u_named", "i") == 0


def test_offsetof_errors_name_struct_and_member(small):
    t, _ids = small
    with pytest.raises(BtfMemberError, match=r"struct outer has no member 'nosuch'"):
        t.offsetof("outer", "nosuch")
    with pytest.raises(BtfMemberError, match=r"struct outer\.arr\[1\] has no member 'q'"):
        t.offsetof("outer", "arr[1].q")
    with pytest.raises(BtfMemberError, match="not an array"):
        t.offsetof("outer", "x[1]")
    with pytest.raises(BtfMemberError, match="out of bounds"):
        t.offsetof("outer", "arr[4]")
    with pytest.raises(BtfMemberError, match="not a struct or union"):
        t.offsetof("outer", "x.y")
    with pytest.raises(BtfMemberError, match="bad member path"):
        t.offsetof("outer", "arr[")
    with pytest.raises(BtfMemberError, match="not a struct or union"):
        t.offsetof("color", "RED")
    with pytest.raises(BtfNotFound):
        t.offsetof("nosuch_struct", "x")
    err = BtfMemberError("x")
    assert isinstance(err, KeyError) and isinstance(err, KmodlabError)


def test_bitfields(small):
    t, _ids = small
    with pytest.raises(BtfBitfieldError, match=r"struct bf\.b is a bitfield.*member_bits"):
        t.offsetof("bf", "b")
    assert t.member_bits("bf", "a") == (0, 3)
    assert t.member_bits("bf", "b") == (3, 5)
    assert t.member_bits("bf", "c") == (32, 32)
    assert t.offsetof("bf", "c") == 4
    assert t.member_bits("outer", "bits.b") == (960 + 3, 5)
    with pytest.raises(BtfBitfieldError):
        t.offsetof("outer", "bits.a")
    # the old encoding: no kind_flag, the INT type carries bits and a bit offset
    assert t.member_bits("oldbf", "x") == (2, 4)
    with pytest.raises(BtfBitfieldError):
        t.offsetof("oldbf", "x")
    assert t.offsetof("oldbf", "y") == 4


def test_struct_layout_flattens_anonymous_members(small):
    t, _ids = small
    lay = t.struct_layout("outer")
    assert lay["size"] == 152
    assert lay["members"] == {
        "x": [0, 8], "ua": [8, 4], "b2": [8, 2], "c": [10, 2], "name": [12, 16],
        "arr": [28, 32], "m": [60, 48], "cv": [108, 4], "fn": [112, 8], "bits": [120, 8],
        "flex": [152, 0]}
    assert "bitfields" not in lay
    bf = t.struct_layout("bf")
    assert bf == {"size": 8, "members": {"c": [4, 4]}, "bitfields": {"a": [0, 3], "b": [3, 5]}}
    json.dumps(lay)
    with pytest.raises(BtfError):
        t.struct_layout("color")


def test_enums(small):
    t, _ids = small
    assert t.enum_values("color") == {"RED": 0, "GREEN": 1, "BLUE": 7}
    assert list(t.enum_values("color")) == ["RED", "GREEN", "BLUE"]
    assert t.enum_values("sgn") == {"NEG": -1, "POS": 1}        # kind_flag: signed
    assert t.enum_values("big") == {"HUGE": 1 << 40, "NEGATIVE": -5}
    assert t.enum_values("ubig") == {"TOP": (1 << 64) - 1}      # unsigned enum64
    with pytest.raises(BtfError, match="not an enum"):
        t.enum_values(t.find("outer"))


def test_extract_layouts_records_absence(small):
    t, _ids = small
    got = extract_layouts(t, {
        "outer": ["x", "c", "arr[2].b", "sizeof(name)", "sizeof(arr[0])", "bits.b", "gone",
                  "arr[9]"],
        "struct bf": ["c"],
        "missing_struct": ["a"],
        "enum color": [],
        "enum sgn": ["NEG", "ZERO"],
        "enum missing": [],
    })
    assert got == {
        "outer": {"sizeof": 152, "x": 0, "c": 10, "arr[2].b": 48, "sizeof(name)": 16,
                  "sizeof(arr[0])": 8, "bits.b": [963, 5], "gone": None, "arr[9]": None},
        "struct bf": {"sizeof": 8, "c": 4},
        "missing_struct": None,
        "enum color": {"RED": 0, "GREEN": 1, "BLUE": 7},
        "enum sgn": {"NEG": -1, "ZERO": None},
        "enum missing": None,
    }
    assert json.loads(json.dumps(got)) == got


def test_big_endian_blob_reads_the_same():
    le, _ = sample("<")
    be, _ = sample(">")
    assert le != be
    a, b = Btf.parse(le), Btf.parse(be)
    assert b.endian == ">"
    for t in (a, b):
        assert t.offsetof("outer", "arr[2].b") == 48
        assert t.member_bits("bf", "b") == (3, 5)
        assert t.enum_values("big") == {"HUGE": 1 << 40, "NEGATIVE": -5}


def test_split_btf_on_a_hand_built_base(small):
    base, ids = small
    sb = Builder(first_id=base.last_id + 1, first_str=len(base._strs))
    # struct mine { struct outer *o; struct inner in; u32 n; }  — references into the base
    po = sb.ptr(ids["outer"])
    mine = sb.struct("mine", 20, [("o", po, 0), ("in", ids["inner"], 64),
                                  ("n", ids["u32"], 128)])
    inner = sb.struct("inner", 2, [("own", ids["short"], 0)])   # shadows the base's
    split = Btf.parse(sb.blob(), base=base)
    assert split.start_id == base.last_id + 1 == po
    assert split.last_id == inner
    assert list(split.own_ids()) == [po, mine, inner]
    assert split.find("mine") == mine
    assert split.sizeof("mine") == 20
    assert split.offsetof("mine", "in.b") == 12
    assert split.offsetof("mine", "n") == 16
    assert split.type(split.type(po).ref).name == "outer"       # a base type, via the split
    assert split.find("outer") == ids["outer"]
    assert split.find("inner") == inner                          # own definitions first
    assert split.find_all("inner") == [inner, ids["inner"], ids["inner_dup"]]
    assert split.string(sb.offs["mine"]) == "mine"                # own strings continue
    assert split.string(base._recs[0][1]) == "int"               # … after the base's
    assert base.get("mine") is None
    with pytest.raises(BtfError, match="out of range"):
        split.type(inner + 1)
    with pytest.raises(BtfError, match="different byte orders"):
        Btf.parse(Builder(">").blob(), base=base)


# ---- malformed blobs: always a BtfError, never IndexError/struct.error ----------------------

def _blob_with_header(**changes) -> bytes:
    blob, _ = sample()
    fields = dict(zip(("magic", "version", "flags", "hdr_len", "type_off", "type_len",
                       "str_off", "str_len"), struct.unpack_from("<HBBIIIII", blob)))
    fields.update(changes)
    return struct.pack("<HBBIIIII", *fields.values()) + blob[24:]


@pytest.mark.parametrize("blob, message", [
    (b"", "too short"),
    (b"\x9f\xeb\x01\x00\x18\x00", "too short"),
    (b"\x00" * 64, "not BTF: magic"),
    (_blob_with_header(version=2), "version 2"),
    (_blob_with_header(hdr_len=8), "header length"),
    (_blob_with_header(hdr_len=1 << 30), "header length"),
    (_blob_with_header(type_len=1 << 20), "type section .* runs past the end"),
    (_blob_with_header(type_off=(1 << 32) - 4), "type section .* runs past the end"),
    (_blob_with_header(str_len=1 << 20), "string section .* runs past the end"),
    (_blob_with_header(type_len=10), "not 4-byte aligned"),
    (_blob_with_header(str_off=0), "overlap"),
])
def test_malformed_header(blob, message):
    with pytest.raises(BtfError, match=message):
        Btf.parse(blob)


def test_malformed_records():
    b = Builder()
    i = b.int_("int", 4)
    b.raw(B.KIND_STRUCT, b.s("s"), 5, 8, struct.pack("<III", 0, i, 0))   # claims 5 members
    with pytest.raises(BtfError, match=r"record #2 .* runs past the end"):
        Btf.parse(b.blob())
    b = Builder()
    b.raw(25, 0, 0, 0)
    with pytest.raises(BtfError, match="unknown kind 25"):
        Btf.parse(b.blob())
    b = Builder()
    b.int_("int", 4)
    blob = b.blob()
    cut = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 8, 8, 1) + blob[24:32] + b"\0"
    with pytest.raises(BtfError, match="truncated"):
        Btf.parse(cut)


def test_bad_string_offset_and_bad_ids():
    b = Builder()
    i = b.int_("int", 4)
    b.raw(B.KIND_STRUCT, 9999, 1, 4, struct.pack("<III", 0, i, 0))      # name past strings
    b.raw(B.KIND_STRUCT, b.s("dangling"), 1, 4, struct.pack("<III", b.s("m"), 77, 0))
    b.raw(B.KIND_TYPEDEF, b.s("loop"), 0, 4)                             # typedef to itself
    b.raw(B.KIND_STRUCT, b.s("selfish"), 1, 4, struct.pack("<III", 0, 5, 0))  # anon self
    t = Btf.parse(b.blob())
    with pytest.raises(BtfError, match="string offset 9999"):
        t.type(2)
    with pytest.raises(BtfError, match="string offset 9999"):
        t.find("int")                                    # the name index reads every name
    t = Btf.parse(b.blob())
    with pytest.raises(BtfError, match="type id 77 is out of range"):
        t.sizeof(t.member_type(3, "m"))
    with pytest.raises(BtfError, match="too long"):
        t.sizeof(4)
    with pytest.raises(BtfError, match="too deep"):
        t.offsetof(5, "x")
    with pytest.raises(BtfError, match="too deep"):
        t.struct_layout(5)
    for bad in (-1, 0x7FFFFFFF):
        with pytest.raises(BtfError, match="out of range"):
            t.type(bad)


def test_no_crash_on_corrupted_blobs():
    """Truncations and random byte flips of a valid blob: a BtfError or a result, nothing else."""
    blob, _ = sample()
    rng = random.Random(1234)
    variants = [blob[:n] for n in range(0, len(blob), 3)]
    for _ in range(400):
        buf = bytearray(blob)
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        variants.append(bytes(buf))
    for v in variants:
        try:
            t = Btf.parse(v)
            for tid in range(1, t.last_id + 1):
                t.type(tid)
                if t.kind_of(tid) in (B.KIND_STRUCT, B.KIND_UNION):
                    t.struct_layout(tid)
                    t.sizeof(tid)
            t.get("outer")
            t.offsetof("outer", "arr[2].b")
        except BtfError:
            pass


def test_btf_section_of_elf():
    with pytest.raises(BtfError, match="not an ELF"):
        btf_section(b"hello")
    payload, _ = sample()
    img = _tiny_elf({".text": b"\x90" * 4, ".BTF": payload})
    assert btf_section(img) == payload
    assert Btf.from_elf(img).sizeof("outer") == 152
    assert btf_section(_tiny_elf({".text": b"\x90"})) is None
    with pytest.raises(BtfError, match="no .BTF"):
        Btf.from_elf(_tiny_elf({".BTF_ids": b"x"}))
    broken = bytearray(img)
    struct.pack_into("<Q", broken, 0x28, len(img) + 100)          # e_shoff past the end
    with pytest.raises(BtfError, match="section headers"):
        btf_section(bytes(broken))


def _tiny_elf(sections: dict[str, bytes]) -> bytes:
    names = b"\0" + b"".join(n.encode() + b"\0" for n in [*sections, ".shstrtab"])
    body = bytearray(b"\0" * 64)
    hdrs = [b"\0" * 64]
    name_off = 1
    for name, data in [*sections.items(), (".shstrtab", names)]:
        off = len(body)
        body += data
        stype = elf.SHT_STRTAB if name == ".shstrtab" else elf.SHT_PROGBITS
        hdrs.append(elf.SHDR.pack(name_off, stype, 0, 0, off, len(data), 0, 0, 1, 0))
        name_off += len(name) + 1
    shoff = len(body)
    body += b"".join(hdrs)
    ident = elf.ELFMAG + bytes([2, 1, 1]) + b"\0" * 9
    body[:64] = elf.EHDR.pack(ident, elf.ET_REL, elf.EM_X86_64, 1, 0, 0, shoff, 0, 64, 0, 0,
                              64, len(hdrs), len(hdrs) - 1)
    return bytes(body)


# ---- real Debian kernels ---------------------------------------------------------------------

TIMINGS: dict[str, float] = {}


def _real(release: str, module: str = "loop.ko") -> dict:
    """vmlinux BTF (parsed once, timed) and one module of a cached linux-image .deb."""
    from kmodlab.profile.debian import iter_deb_files
    from kmodlab.profile.vmlinux import decompress_bzimage
    debs = sorted(DEBS.glob(f"linux-image-{release}_*.deb"))
    if not debs:
        pytest.skip(f"linux-image-{release} is not in {DEBS}")
    vmlinuz = ko = None
    for p, _ti, f in iter_deb_files(debs[0]):                   # boot/ comes first
        if p.startswith("boot/vmlinuz-"):
            vmlinuz = f.read()
        elif p.endswith((f"/{module}", f"/{module}.xz")):
            ko = f.read()
            if p.endswith(".xz"):
                ko = lzma.decompress(ko)
        if vmlinuz is not None and ko is not None:
            break
    assert vmlinuz is not None and ko is not None, f"{debs[0]}: no vmlinuz or {module}"
    raw = btf_section(decompress_bzimage(vmlinuz))
    assert raw is not None, f"{release}: vmlinux has no .BTF"
    t0 = time.perf_counter()
    vml = Btf.parse(raw)
    vml.find("module")                                          # the name index, too
    TIMINGS[release] = time.perf_counter() - t0
    print(f"\n{release}: parsed {len(raw)} bytes of vmlinux BTF, {len(vml)} types, "
          f"in {TIMINGS[release]:.3f} s (name index included)")
    return {"vml": vml, "ko": ko, "module": module}


@pytest.fixture(scope="module")
def k61():
    return _real("6.1.0-56-amd64")


@pytest.fixture(scope="module")
def k612():
    return _real("6.12.118+deb13-amd64")


def this_module_facts(ko: bytes) -> tuple[int, dict[str, int]]:
    """(size of .gnu.linkonce.this_module, {symbol: offset} of its R_X86_64_64 relocations)."""
    hdr = elf.parse_header(ko)
    secs = elf.parse_sections(ko, hdr.shoff, hdr.shnum)
    elf.name_sections(ko, secs, hdr.shstrndx)
    tm = elf.find_section(secs, ".gnu.linkonce.this_module")
    rela = elf.find_section(secs, ".rela.gnu.linkonce.this_module")
    assert tm and rela and secs[rela].info == tm
    symtab = secs[secs[rela].link]
    strtab = secs[symtab.link]
    syms = elf.symbols(ko, symtab)
    out = {}
    for r in elf.relocations(ko, secs[rela]):
        info = int(r["r_info"])
        assert info & 0xFFFFFFFF == 1                           # R_X86_64_64
        name = elf.cstring(ko, strtab.offset + int(syms[info >> 32]["st_name"]),
                           strtab.offset + strtab.size)
        out[name] = int(r["r_offset"])
    return secs[tm].size, out


def test_61_struct_module_matches_the_module_image(k61):
    vml = k61["vml"]
    size, relocs = this_module_facts(k61["ko"])
    assert vml.sizeof("module") == size == 896
    assert vml.offsetof("module", "name") == 24
    assert vml.offsetof("module", "init") == relocs["init_module"] == 312
    assert vml.offsetof("module", "exit") == relocs["cleanup_module"] == 848
    assert vml.member_size("module", "name") == 56              # MODULE_NAME_LEN
    assert vml.offsetof("module", "core_layout.size") == vml.offsetof("module", "core_layout") + 8
    assert not vml.has_member("module", "mem")
    with pytest.raises(BtfMemberError, match="struct module has no member 'mem'"):
        vml.offsetof("module", "mem[0].base")
    with pytest.raises(BtfNotFound):
        vml.find("mod_mem_type", "enum")
    assert vml.get("module_memory") is None
    assert vml.struct_layout("module_layout")["members"]["base"] == [0, 8]


def test_61_layouts_documented_in_the_models(k61):
    """Offsets the emulator's models state for Debian 6.1 (src/kmodlab/emu/models/*.py)."""
    vml = k61["vml"]
    assert vml.struct_layout("rw_semaphore") == {"size": 40, "members": {
        "count": [0, 8], "owner": [8, 8], "osq": [16, 4], "wait_lock": [20, 4],
        "wait_list": [24, 16]}}
    assert vml.sizeof("mempool_s") == 72
    assert [vml.offsetof("mempool_s", f) for f in ("lock", "min_nr", "curr_nr")] == [0, 4, 8]
    assert vml.sizeof("ts_ops") == 72
    assert [vml.offsetof("ts_ops", f) for f in ("name", "init", "find", "destroy")] == \
        [0, 8, 16, 24]
    assert vml.offsetof("net", "gen") == 3144
    assert vml.sizeof("kernel_symbol") == 12
    assert vml.sizeof("kernel_param") == 40
    assert vml.offsetof("kernel_param", "arg") == vml.offsetof("kernel_param", "str") == 32
    # sk_buff: a real kind_flag bitfield
    assert vml.type(vml.find("sk_buff")).kind_flag
    off, bits = vml.member_bits("sk_buff", "pkt_type")
    assert bits == 3
    with pytest.raises(BtfBitfieldError, match="struct sk_buff.pkt_type is a bitfield"):
        vml.offsetof("sk_buff", "pkt_type")


def test_612_struct_module_matches_the_module_image(k612):
    vml = k612["vml"]
    size, relocs = this_module_facts(k612["ko"])
    assert vml.sizeof("module") == size
    assert vml.offsetof("module", "init") == relocs["init_module"]
    assert vml.offsetof("module", "exit") == relocs["cleanup_module"]
    assert vml.offsetof("module", "name") == 24
    assert not vml.has_member("module", "core_layout")
    assert not vml.has_member("module", "init_layout")
    mem = vml.offsetof("module", "mem")
    n = vml.enum_values("mod_mem_type")["MOD_MEM_NUM_TYPES"]
    msize = vml.sizeof("module_memory")
    assert vml.member_size("module", "mem") == n * msize
    assert vml.offsetof("module", "mem[1].size") == mem + msize + 8
    assert vml.offsetof("module", f"mem[{n - 1}].base") == mem + (n - 1) * msize
    with pytest.raises(BtfMemberError, match="out of bounds"):
        vml.offsetof("module", f"mem[{n}]")


def test_612_mod_mem_type_and_module_memory(k612):
    vml = k612["vml"]
    vals = vml.enum_values("mod_mem_type")
    assert list(vals)[:8] == ["MOD_TEXT", "MOD_DATA", "MOD_RODATA", "MOD_RO_AFTER_INIT",
                              "MOD_INIT_TEXT", "MOD_INIT_DATA", "MOD_INIT_RODATA",
                              "MOD_MEM_NUM_TYPES"]
    assert [vals[k] for k in list(vals)[:8]] == list(range(8))
    assert vals.get("MOD_INVALID") == -1                        # a signed enum
    lay = vml.struct_layout("module_memory")
    assert lay["members"]["base"] == [0, 8]
    assert lay["members"]["size"] == [8, 4]
    assert lay["size"] == 72
    assert vml.struct_layout("mod_kallsyms")["size"] == 32


def test_split_btf_of_real_modules(k61, k612):
    for k in (k61, k612):
        vml = k["vml"]
        raw = btf_section(k["ko"])
        assert raw is not None
        mod = Btf.parse(raw, base=vml)
        assert mod.start_id == vml.last_id + 1
        assert mod.start_str_off == vml.header["str_len"]
        ld = mod.find("loop_device")
        assert ld >= mod.start_id and vml.get("loop_device") is None
        assert mod.sizeof("loop_device") > mod.offsetof("loop_device", "lo_disk")
        disk = mod.type(mod.strip(mod.member_type("loop_device", "lo_disk")))
        assert disk.kind_name == "ptr"
        target = mod.type(disk.ref)
        assert target.name == "gendisk" and target.id < mod.start_id   # a vmlinux type
        assert mod.find("module") == vml.find("module")
        assert mod.sizeof("module") == vml.sizeof("module")
        # every own type decodes and every reference resolves
        for tid in mod.own_ids():
            t = mod.type(tid)
            if t.kind_name in ("struct", "union"):
                mod.struct_layout(tid)


WANTED = {
    "module": ["name", "state", "init", "exit", "core_layout", "init_layout", "mem",
               "mem[0].base", "mem[1].size", "num_syms", "syms", "kp", "num_kp", "taints",
               "args", "percpu", "percpu_size", "refcnt", "kallsyms", "core_kallsyms",
               "sizeof(name)"],
    "module_layout": ["base", "size", "text_size", "ro_size", "ro_after_init_size"],
    "module_memory": ["base", "size"],
    "kernel_param": ["name", "mod", "ops", "perm", "level", "flags", "arg"],
    "kernel_symbol": ["value_offset", "name_offset", "namespace_offset"],
    "mod_kallsyms": ["symtab", "num_symtab", "strtab", "typetab"],
    "enum mod_mem_type": [],
}


def test_extract_layouts_serves_both_releases(k61, k612):
    a = extract_layouts(k61["vml"], WANTED)
    b = extract_layouts(k612["vml"], WANTED)
    for got in (a, b):
        assert json.loads(json.dumps(got)) == got
        assert got["module"]["name"] == 24 and got["module"]["sizeof(name)"] == 56
        assert got["kernel_symbol"] == {"sizeof": 12, "value_offset": 0, "name_offset": 4,
                                        "namespace_offset": 8}
    assert a["module"]["sizeof"] == 896 and a["module"]["exit"] == 848
    assert a["module"]["mem"] is None and a["module"]["mem[1].size"] is None
    assert a["module"]["core_layout"] is not None
    assert a["module_memory"] is None and a["enum mod_mem_type"] is None
    assert b["module"]["core_layout"] is None and b["module_layout"] is None
    assert b["module"]["mem[0].base"] == b["module"]["mem"]
    assert b["module_memory"] == {"sizeof": 72, "base": 0, "size": 8}
    assert b["enum mod_mem_type"]["MOD_INIT_RODATA"] == 6


def test_extract_prototypes_counts_fixed_and_variadic_parameters():
    b = Builder()
    i = b.int_("int", 4)
    pc = b.ptr(b.int_("char", 1))
    b.func("two", b.func_proto(i, [("a", i), ("s", pc)]))
    b.func("fmt", b.func_proto(i, [("f", pc), ("", 0)]))        # int fmt(const char *, ...)
    b.func("none", b.func_proto(i, []))                          # f(void) or assembly: unknown
    btf = Btf.parse(b.blob())
    assert extract_prototypes(btf, ["two", "fmt", "none", "absent"]) == \
        {"two": [2, 0], "fmt": [1, 1]}


def test_real_prototypes_of_both_releases(k61, k612):
    """6.12 (CONFIG_SLAB_BUCKETS) gave __kmalloc_node_noprof the caller's kmem_buckets after
    the size; 6.1's __kmalloc_node had three parameters; _printk is variadic in both."""
    p61 = extract_prototypes(k61["vml"], ["__kmalloc_node", "_printk", "kmemdup", "memcpy"])
    assert p61 == {"__kmalloc_node": [3, 0], "_printk": [1, 1], "kmemdup": [3, 0]}
    p612 = extract_prototypes(k612["vml"], ["__kmalloc_node_noprof", "_printk"])
    assert p612 == {"__kmalloc_node_noprof": [4, 0], "_printk": [1, 1]}
