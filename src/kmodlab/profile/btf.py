"""A pure-Python reader of BTF, the kernel's own type information (struct layouts, enums).

Struct layouts a profile needs (``struct module`` and the structures hanging off it) come from
the target kernel's BTF rather than from constants: Debian builds with CONFIG_DEBUG_INFO_BTF, so
the ELF vmlinux carries a ``.BTF`` section, and every module carries its own ``.BTF`` (split
BTF, based on vmlinux's: its type ids continue after vmlinux's last id and its string offsets
after vmlinux's string section).

Format (Documentation/bpf/btf.rst, libbpf's ``btf.h``):

* header ``{u16 magic 0xEB9F, u8 version 1, u8 flags, u32 hdr_len, u32 type_off, u32 type_len,
  u32 str_off, u32 str_len}``; both offsets count from the end of the header (``hdr_len``).
  The byte order is the producer's: a byte-swapped magic means big-endian, which is read too.
* type records ``{u32 name_off, u32 info, u32 size_or_type}`` — ``info`` holds vlen (bits 0-15),
  kind (bits 24-28) and kind_flag (bit 31) — each followed by kind-specific data (see
  ``_EXTRA``).  Type id 0 is ``void``; the first record is id 1 (``base.last_id + 1`` in split
  BTF).
* struct/union members ``{name_off, type, offset}``: ``offset`` is in *bits*; with kind_flag
  set it is ``bitfield_size << 24 | bit_offset``.  Without kind_flag a bitfield shows as an INT
  type whose encoding gives fewer bits than its size (or a bit offset).
* enums: kind_flag set means signed values, clear means unsigned.

Use::

    vml = Btf.parse(btf_section(vmlinux_bytes))
    vml.sizeof("module"); vml.offsetof("module", "mem[1].size"); vml.enum_values("mod_mem_type")
    mod = Btf.parse(btf_section(ko_bytes), base=vml)        # split BTF of a module

Parsing walks the type section once to index the records (id → offset); names are indexed on
the first lookup by name, and members/values are decoded only for the types asked about.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from .. import elf
from ..errors import KmodlabError

__all__ = ["Btf", "BtfType", "Member", "Param", "BtfError", "BtfNotFound", "BtfMemberError",
           "BtfBitfieldError", "btf_section", "extract_layouts", "KIND_NAMES"]

BTF_MAGIC = 0xEB9F
HEADER_SIZE = 24
POINTER_SIZE = 8               # x86-64
MAX_CHAIN = 64                 # typedef/modifier chains longer than this are taken as a loop

(KIND_UNKN, KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_FWD,
 KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_FUNC, KIND_FUNC_PROTO, KIND_VAR,
 KIND_DATASEC, KIND_FLOAT, KIND_DECL_TAG, KIND_TYPE_TAG, KIND_ENUM64) = range(20)

KIND_NAMES = ("unkn", "int", "ptr", "array", "struct", "union", "enum", "fwd", "typedef",
              "volatile", "const", "restrict", "func", "func_proto", "var", "datasec", "float",
              "decl_tag", "type_tag", "enum64")
KIND_BY_NAME = {n: k for k, n in enumerate(KIND_NAMES)}

# Bytes after the 12-byte btf_type, per kind: (fixed, per vlen item).
_EXTRA = {
    KIND_INT: (4, 0), KIND_PTR: (0, 0), KIND_ARRAY: (12, 0), KIND_STRUCT: (0, 12),
    KIND_UNION: (0, 12), KIND_ENUM: (0, 8), KIND_FWD: (0, 0), KIND_TYPEDEF: (0, 0),
    KIND_VOLATILE: (0, 0), KIND_CONST: (0, 0), KIND_RESTRICT: (0, 0), KIND_FUNC: (0, 0),
    KIND_FUNC_PROTO: (0, 8), KIND_VAR: (4, 0), KIND_DATASEC: (0, 12), KIND_FLOAT: (0, 0),
    KIND_DECL_TAG: (4, 0), KIND_TYPE_TAG: (0, 0), KIND_ENUM64: (0, 12),
}
# Kinds whose third word is a size (the others: a type id).
_SIZED = frozenset({KIND_INT, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_DATASEC, KIND_FLOAT,
                    KIND_ENUM64})
# Kinds that only qualify or rename the type they point at.
_TRANSPARENT = frozenset({KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT,
                          KIND_TYPE_TAG})
_MODIFIERS = _TRANSPARENT - {KIND_TYPEDEF}

# What a bare name means, in lookup order, and the C keywords that pick one kind.
_DEFAULT_KINDS = (KIND_STRUCT, KIND_UNION, KIND_TYPEDEF, KIND_ENUM, KIND_ENUM64, KIND_INT,
                  KIND_FLOAT)
_KIND_GROUPS = {
    "struct": (KIND_STRUCT,), "union": (KIND_UNION,), "enum": (KIND_ENUM, KIND_ENUM64),
    "enum64": (KIND_ENUM64,), "typedef": (KIND_TYPEDEF,), "int": (KIND_INT,),
    "float": (KIND_FLOAT,), "fwd": (KIND_FWD,), "func": (KIND_FUNC,), "var": (KIND_VAR,),
    "datasec": (KIND_DATASEC,), "decl_tag": (KIND_DECL_TAG,), "type_tag": (KIND_TYPE_TAG,),
    "any": _DEFAULT_KINDS,
}
_C_PREFIX = re.compile(r"^(struct|union|enum)\s+(\S.*)$")
_PATH_PART = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*((?:\[\s*\d+\s*\]\s*)*)")
_INDEX = re.compile(r"\[\s*(\d+)\s*\]")


class BtfError(KmodlabError):
    """BTF data that cannot be read (bad header, truncated records, bad offsets or ids)."""


class BtfNotFound(BtfError, KeyError):
    """A type looked up by name is not in the BTF (also a KeyError)."""

    def __str__(self) -> str:               # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class BtfMemberError(BtfNotFound):
    """A member path does not resolve: the member is missing, or an index does not apply."""


class BtfBitfieldError(BtfError):
    """offsetof() of a bitfield (use Btf.member_bits())."""


@dataclass(frozen=True, slots=True)
class Member:
    """A struct/union member (bit_offset from the start of the enclosing type)."""
    name: str                # "" for an anonymous struct/union member
    type: int
    bit_offset: int
    bitfield_size: int       # 0 when not declared as a bitfield (kind_flag encoding)


@dataclass(frozen=True, slots=True)
class Param:
    """A FUNC_PROTO parameter (type 0 with an empty name: the '...' of a variadic function)."""
    name: str
    type: int


@dataclass(frozen=True, slots=True)
class BtfType:
    """One decoded type record.

    ``size`` is set for sized kinds (int, struct, union, enum, enum64, float, datasec) and
    ``ref`` (the referenced type id) for the others.  Kind-specific data: ``members`` (struct,
    union), ``values`` (enum, enum64: (name, value) pairs), ``params`` (func_proto), ``array``
    ((elem_type, index_type, nelems)), ``int_encoding`` ((encoding, bit_offset, bits)),
    ``linkage`` (var, func: vlen), ``vars`` (datasec: (type, offset, size)),
    ``component_idx`` (decl_tag).
    """
    id: int
    kind: int
    name: str
    kind_flag: bool
    vlen: int
    size: int | None = None
    ref: int | None = None
    members: tuple[Member, ...] = ()
    values: tuple[tuple[str, int], ...] = ()
    params: tuple[Param, ...] = ()
    array: tuple[int, int, int] | None = None
    int_encoding: tuple[int, int, int] | None = None
    linkage: int | None = None
    vars: tuple[tuple[int, int, int], ...] = ()
    component_idx: int | None = None

    @property
    def kind_name(self) -> str:
        return KIND_NAMES[self.kind]

    def __str__(self) -> str:
        k = self.kind_name
        return f"{k} {self.name}" if self.name else f"anonymous {k} #{self.id}"


def _struct(endian: str, fmt: str) -> struct.Struct:
    return struct.Struct(endian + fmt)


class Btf:
    """Type information from one .BTF blob, optionally split on top of a base (vmlinux) BTF."""

    def __init__(self, data: bytes, base: Btf | None, endian: str, types: list[tuple],
                 strings: bytes, start_id: int, start_str_off: int, header: dict):
        self.data = data
        self.base = base
        self.endian = endian
        self._recs = types                  # per own type: (offset, name_off, info, size_or_type)
        self._strs = strings
        self.start_id = start_id            # id of the first own type
        self.start_str_off = start_str_off  # string offset of our string section's first byte
        self.header = header
        self._names: dict[str, list[int]] | None = None
        self._cache: dict[int, BtfType] = {}
        self._u32 = _struct(endian, "I")
        self._u32x2 = _struct(endian, "II")
        self._u32x3 = _struct(endian, "III")
        self._s32 = _struct(endian, "i")
        self._ename = _struct(endian, "Ii")

    # ---- parsing --------------------------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes, base: Btf | None = None) -> Btf:
        """Index a .BTF blob (``base``: the BTF it is split from, e.g. vmlinux for a module)."""
        data = bytes(data)
        if len(data) < HEADER_SIZE:
            raise BtfError(f"BTF too short for its header ({len(data)} bytes, need {HEADER_SIZE})")
        magic_le = struct.unpack_from("<H", data, 0)[0]
        if magic_le == BTF_MAGIC:
            endian = "<"
        elif magic_le == 0x9FEB:
            endian = ">"
        else:
            raise BtfError(f"not BTF: magic {magic_le:#06x} (expected {BTF_MAGIC:#06x})")
        if base is not None and base.endian != endian:
            raise BtfError("split BTF and its base BTF have different byte orders")
        _m, version, flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
            endian + "HBBIIIII", data, 0)
        if version != 1:
            raise BtfError(f"unsupported BTF version {version} (expected 1)")
        if hdr_len < HEADER_SIZE or hdr_len > len(data):
            raise BtfError(f"bad BTF header length {hdr_len} (blob is {len(data)} bytes)")
        body = len(data) - hdr_len
        if not elf.range_valid(body, type_off, type_len):
            raise BtfError(f"BTF type section [{type_off}, +{type_len}) runs past the end of the "
                           f"data ({body} bytes after the header)")
        if not elf.range_valid(body, str_off, str_len):
            raise BtfError(f"BTF string section [{str_off}, +{str_len}) runs past the end of the "
                           f"data ({body} bytes after the header)")
        if type_off % 4 or type_len % 4:
            raise BtfError(f"BTF type section is not 4-byte aligned (off {type_off}, "
                           f"len {type_len})")
        if type_off < str_off + str_len and str_off < type_off + type_len:
            raise BtfError("BTF type and string sections overlap")
        strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
        if base is None:
            if not strings or strings[0] != 0:
                raise BtfError("BTF string section does not start with an empty string")
        if strings and strings[-1] != 0:
            raise BtfError("BTF string section is not NUL-terminated")
        header = {"version": version, "flags": flags, "hdr_len": hdr_len, "type_off": type_off,
                  "type_len": type_len, "str_off": str_off, "str_len": str_len}
        start_id = base.last_id + 1 if base is not None else 1
        start_str = base.start_str_off + len(base._strs) if base is not None else 0
        recs = _index_types(data, hdr_len + type_off, type_len, endian, start_id)
        return cls(data, base, endian, recs, strings, start_id, start_str, header)

    @classmethod
    def from_elf(cls, elf_bytes: bytes, base: Btf | None = None) -> Btf:
        """The BTF of an ELF image (vmlinux or a module); BtfError when it has none."""
        raw = btf_section(elf_bytes)
        if raw is None:
            raise BtfError("the ELF image has no .BTF section (kernel built without "
                           "CONFIG_DEBUG_INFO_BTF?)")
        return cls.parse(raw, base)

    # ---- raw access -----------------------------------------------------------------------

    @property
    def last_id(self) -> int:
        """The highest type id (own types; ids below start_id are the base's)."""
        return self.start_id + len(self._recs) - 1

    def __len__(self) -> int:
        """Number of types, void excluded, base included."""
        return self.last_id

    def own_ids(self) -> range:
        return range(self.start_id, self.last_id + 1)

    def string(self, off: int) -> str:
        """The string at a BTF string offset (split BTF: low offsets are the base's)."""
        if off < self.start_str_off:
            return self.base.string(off)                    # type: ignore[union-attr]
        rel = off - self.start_str_off
        s = self._strs
        if rel >= len(s):
            raise BtfError(f"string offset {off} is past the end of the BTF string section")
        end = s.find(b"\0", rel)
        return s[rel:end].decode("utf-8", "replace")

    def _rec(self, tid: int) -> tuple[Btf, tuple]:
        if tid >= self.start_id:
            i = tid - self.start_id
            if i < len(self._recs):
                return self, self._recs[i]
        elif self.base is not None and tid > 0:
            return self.base._rec(tid)
        raise BtfError(f"type id {tid} is out of range (1..{self.last_id})")

    def kind_of(self, tid: int) -> int:
        """The kind of a type id (0, unkn, for void) without decoding the record."""
        if tid == 0:
            return KIND_UNKN
        _owner, (_o, _n, info, _s) = self._rec(tid)
        return (info >> 24) & 0x1F

    def type(self, tid: int) -> BtfType:
        """The decoded record of a type id (cached)."""
        if tid == 0:
            return BtfType(0, KIND_UNKN, "void", False, 0)
        owner, rec = self._rec(tid)
        if owner is not self:
            return owner.type(tid)
        got = self._cache.get(tid)
        if got is None:
            got = self._cache[tid] = self._decode(tid, rec)
        return got

    def __getitem__(self, tid: int) -> BtfType:
        return self.type(tid)

    def _decode(self, tid: int, rec: tuple) -> BtfType:
        off, name_off, info, sot = rec
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kflag = bool(info >> 31)
        name = self.string(name_off)
        d = self.data
        p = off + 12
        kw: dict = {"size": sot} if kind in _SIZED else {"ref": sot}
        if kind in (KIND_STRUCT, KIND_UNION):
            ms = []
            for mname, mtype, moff in self._u32x3.iter_unpack(d[p:p + 12 * vlen]):
                if kflag:
                    ms.append(Member(self.string(mname), mtype, moff & 0xFFFFFF, moff >> 24))
                else:
                    ms.append(Member(self.string(mname), mtype, moff, 0))
            kw["members"] = tuple(ms)
        elif kind == KIND_ENUM:
            vals = []
            for vname, val in self._ename.iter_unpack(d[p:p + 8 * vlen]):
                vals.append((self.string(vname), val if kflag else val & 0xFFFFFFFF))
            kw["values"] = tuple(vals)
        elif kind == KIND_ENUM64:
            vals = []
            for vname, lo, hi in self._u32x3.iter_unpack(d[p:p + 12 * vlen]):
                v = hi << 32 | lo
                if kflag and v >> 63:
                    v -= 1 << 64
                vals.append((self.string(vname), v))
            kw["values"] = tuple(vals)
        elif kind == KIND_FUNC_PROTO:
            kw["params"] = tuple(Param(self.string(n), t)
                                 for n, t in self._u32x2.iter_unpack(d[p:p + 8 * vlen]))
        elif kind == KIND_ARRAY:
            kw["array"] = self._u32x3.unpack_from(d, p)
        elif kind == KIND_INT:
            (enc,) = self._u32.unpack_from(d, p)
            kw["int_encoding"] = ((enc >> 24) & 0xF, (enc >> 16) & 0xFF, enc & 0xFF)
        elif kind == KIND_VAR:
            kw["linkage"] = self._u32.unpack_from(d, p)[0]
        elif kind == KIND_FUNC:
            kw["linkage"] = vlen
        elif kind == KIND_DATASEC:
            kw["vars"] = tuple(self._u32x3.iter_unpack(d[p:p + 12 * vlen]))
        elif kind == KIND_DECL_TAG:
            kw["component_idx"] = self._s32.unpack_from(d, p)[0]
        return BtfType(tid, kind, name, kflag, vlen, **kw)

    # ---- lookup by name -------------------------------------------------------------------

    def _name_index(self) -> dict[str, list[int]]:
        idx = self._names
        if idx is None:
            idx = {}
            s = self._strs
            base_off = self.start_str_off
            nstr = len(s)
            tid = self.start_id
            for _o, name_off, _i, _s in self._recs:
                if name_off:
                    rel = name_off - base_off
                    if 0 <= rel < nstr:
                        name = s[rel:s.find(b"\0", rel)].decode("utf-8", "replace")
                    else:
                        name = self.string(name_off)        # base string, or a BtfError
                    lst = idx.get(name)
                    if lst is None:
                        idx[name] = [tid]
                    else:
                        lst.append(tid)
                tid += 1
            self._names = idx
        return idx

    def find_all(self, name: str, kind: str | None = None) -> list[int]:
        """Every type id called ``name`` of the given kind (see :meth:`find`), own types first
        (a module's own definitions shadow the base's), each group in id order."""
        kinds, name = _kinds_and_name(name, kind)
        out = []
        b: Btf | None = self
        while b is not None:
            for k in kinds:
                out.extend(t for t in b._name_index().get(name, ()) if b.kind_of(t) == k)
            b = b.base
        return out

    def get(self, name: str, kind: str | None = None) -> int | None:
        """Like :meth:`find`, but None when there is no such type."""
        found = self.find_all(name, kind)
        return found[0] if found else None

    def find(self, name: str, kind: str | None = "struct") -> int:
        """The type id of a named type.

        ``kind`` is a kind name ("struct", "union", "enum" — enum or enum64 —, "typedef",
        "int", "float", "fwd", "func", "var", "datasec"…) or None/"any" for struct, union,
        typedef, enum, int, float in that order.  ``name`` may carry a C keyword
        ("struct module", "enum mod_mem_type"), which overrides ``kind``.  With several
        matches (BTF may keep differing definitions of one name) the lowest id wins, own types
        before the base's.  Raises :class:`BtfNotFound` (a KeyError) when absent.
        """
        tid = self.get(name, kind)
        if tid is None:
            _kinds, bare = _kinds_and_name(name, kind)
            what = kind if kind and kind != "any" and not _C_PREFIX.match(name) else None
            label = f"{what} {bare}" if what else name
            raise BtfNotFound(f"no type {label!r} in the BTF")
        return tid

    def _resolve_ref(self, t: int | str, kind: str | None = None) -> int:
        return self.find(t, kind) if isinstance(t, str) else t

    # ---- sizes and layouts ----------------------------------------------------------------

    def strip(self, tid: int, typedefs: bool = True) -> int:
        """Follow const/volatile/restrict/type_tag (and typedef unless told not to) to the
        underlying type id."""
        kinds = _TRANSPARENT if typedefs else _MODIFIERS
        for _ in range(MAX_CHAIN):
            if tid == 0:
                return 0
            _owner, (_o, _n, info, sot) = self._rec(tid)
            if (info >> 24) & 0x1F not in kinds:
                return tid
            tid = sot
        raise BtfError(f"type chain through id {tid} is too long (a loop?)")

    def sizeof(self, t: int | str) -> int:
        """Size in bytes of a type id or name (typedefs, qualifiers, arrays, pointers)."""
        tid = self._resolve_ref(t, "any")
        mult = 1
        for _ in range(MAX_CHAIN):
            tid = self.strip(tid)
            if tid == 0:
                raise BtfError("sizeof(void) is undefined")
            _owner, (_o, _n, info, sot) = self._rec(tid)
            kind = (info >> 24) & 0x1F
            if kind in _SIZED:
                return mult * sot
            if kind == KIND_PTR:
                return mult * POINTER_SIZE
            if kind == KIND_ARRAY:
                elem, _index, nelems = self.type(tid).array          # type: ignore[misc]
                mult *= nelems
                tid = elem
                continue
            if kind == KIND_VAR:
                tid = sot
                continue
            raise BtfError(f"sizeof({self.type(tid)}) is undefined (incomplete or function type)")
        raise BtfError(f"type chain through id {tid} is too long (a loop?)")

    def _is_int_bitfield(self, mtype: int) -> tuple[int, int] | None:
        """For kind_flag-less structs: (extra bit offset, bits) when the member's INT type
        encodes a bitfield."""
        tid = self.strip(mtype)
        if tid == 0 or self.kind_of(tid) != KIND_INT:
            return None
        t = self.type(tid)
        _enc, boff, bits = t.int_encoding                            # type: ignore[misc]
        if boff or bits != 8 * (t.size or 0):
            return boff, bits
        return None

    def _member_bits(self, m: Member, kind_flag: bool) -> tuple[int, int, bool]:
        """(bit offset, bit size, is_bitfield) of one member."""
        if kind_flag and m.bitfield_size:
            return m.bit_offset, m.bitfield_size, True
        if not kind_flag:
            enc = self._is_int_bitfield(m.type)
            if enc is not None:
                return m.bit_offset + enc[0], enc[1], True
        try:
            size = self.sizeof(m.type) * 8
        except BtfError:
            size = 0
        return m.bit_offset, size, m.bit_offset % 8 != 0

    def _find_member(self, tid: int, name: str, depth: int = 0
                     ) -> tuple[Member, int, bool] | None:
        """The member ``name`` of a struct/union, looking through anonymous struct/union
        members as C does: (member, its bit offset from the start of ``tid``, kind_flag of the
        type declaring it)."""
        if depth > MAX_CHAIN:
            raise BtfError(f"anonymous members of type {tid} nest too deep (a loop?)")
        t = self.type(tid)
        for m in t.members:
            if m.name == name:
                return m, m.bit_offset, t.kind_flag
        for m in t.members:
            if not m.name:
                inner = self.strip(m.type)
                if self.kind_of(inner) in (KIND_STRUCT, KIND_UNION):
                    got = self._find_member(inner, name, depth + 1)
                    if got is not None:
                        return got[0], m.bit_offset + got[1], got[2]
        return None

    def _walk(self, struct_t: int | str, path: str) -> tuple[int, int, int, bool, str]:
        """Resolve a member path: (bit offset, bit size, member type, is_bitfield, label)."""
        root = self.strip(self._resolve_ref(struct_t, "any"))
        root_t = self.type(root)
        label = str(root_t)
        if root_t.kind not in (KIND_STRUCT, KIND_UNION):
            raise BtfMemberError(f"{label} is not a struct or union (looking up {path!r})")
        parts = _parse_path(path)
        if not parts:
            raise BtfMemberError(f"empty member path for {label}")
        cur = root
        bits = 0
        bit_size = 0
        bitfield = False
        mtype = root
        done = ""
        for name, indexes in parts:
            cur_t = self.type(cur)
            if cur_t.kind not in (KIND_STRUCT, KIND_UNION):
                raise BtfMemberError(f"{label}: {done} is a {cur_t.kind_name}, not a struct or "
                                     f"union, so it has no member {name!r}")
            if bitfield:
                raise BtfMemberError(f"{label}: {done} is a bitfield")
            got = self._find_member(cur, name)
            where = f"{label}.{done}" if done else label
            if got is None:
                raise BtfMemberError(f"{where} has no member {name!r}"
                                     + (f" (path {path!r})" if len(parts) > 1 or indexes
                                        else ""))
            m, moff, kflag = got
            done = f"{done}.{name}" if done else name
            boff, bit_size, bitfield = self._member_bits(m, kflag)
            bits += boff - m.bit_offset + moff
            mtype = m.type
            for idx in indexes:
                arr = self.strip(mtype)
                if self.kind_of(arr) != KIND_ARRAY:
                    raise BtfMemberError(f"{label}.{done} is not an array (path {path!r})")
                elem, _index_type, nelems = self.type(arr).array       # type: ignore[misc]
                if nelems and idx >= nelems:
                    raise BtfMemberError(f"{label}.{done}[{idx}] is out of bounds (the array "
                                         f"has {nelems} elements)")
                esize = self.sizeof(elem)
                bits += idx * esize * 8
                bit_size = esize * 8
                mtype = elem
                done += f"[{idx}]"
            cur = self.strip(mtype)
        return bits, bit_size, mtype, bitfield, f"{label}.{done}"

    def offsetof(self, struct_t: int | str, path: str) -> int:
        """Byte offset of a member path such as ``"mem[1].size"`` or ``"core_layout.base"``
        in a struct or union (name or id), looking through anonymous members.  Raises
        :class:`BtfMemberError` when the path does not resolve and :class:`BtfBitfieldError`
        for a bitfield (see :meth:`member_bits`)."""
        bits, size, _t, bitfield, label = self._walk(struct_t, path)
        if bitfield:
            raise BtfBitfieldError(f"{label} is a bitfield ({size} bits at bit offset {bits}); "
                                   f"use member_bits()")
        return bits // 8

    def member_bits(self, struct_t: int | str, path: str) -> tuple[int, int]:
        """(bit offset, size in bits) of a member path, bitfields included."""
        bits, size, _t, _bf, _label = self._walk(struct_t, path)
        return bits, size

    def member_type(self, struct_t: int | str, path: str) -> int:
        """Type id of a member path (as declared, typedefs and qualifiers kept)."""
        return self._walk(struct_t, path)[2]

    def member_size(self, struct_t: int | str, path: str) -> int:
        """sizeof() of a member path (BtfBitfieldError for a bitfield)."""
        bits, size, _t, bitfield, label = self._walk(struct_t, path)
        if bitfield:
            raise BtfBitfieldError(f"{label} is a bitfield ({size} bits at bit offset {bits}); "
                                   f"use member_bits()")
        return size // 8

    def has_member(self, struct_t: int | str, path: str) -> bool:
        try:
            self._walk(struct_t, path)
        except BtfMemberError:
            return False
        return True

    def enum_values(self, t: int | str) -> dict[str, int]:
        """Enumerators of an enum (or enum64), name → value, in declaration order."""
        tid = self.strip(self._resolve_ref(t, "enum"))
        e = self.type(tid)
        if e.kind not in (KIND_ENUM, KIND_ENUM64):
            raise BtfError(f"{e} is not an enum")
        return dict(e.values)

    def struct_layout(self, t: int | str) -> dict:
        """``{"size": n, "members": {name: [byte_offset, size]}}`` of a struct or union, with the
        members of anonymous structs/unions listed among their parent's as C sees them
        (offsets relative to the outer struct).  Bitfields go to ``"bitfields": {name:
        [bit_offset, bits]}`` (present only when there are some)."""
        tid = self.strip(self._resolve_ref(t, "any"))
        st = self.type(tid)
        if st.kind not in (KIND_STRUCT, KIND_UNION):
            raise BtfError(f"{st} is not a struct or union")
        members: dict[str, list[int]] = {}
        bitfields: dict[str, list[int]] = {}
        self._flatten(tid, 0, members, bitfields)
        out: dict = {"size": st.size, "members": members}
        if bitfields:
            out["bitfields"] = bitfields
        return out

    def _flatten(self, tid: int, base_bits: int, members: dict, bitfields: dict,
                 depth: int = 0) -> None:
        if depth > MAX_CHAIN:
            raise BtfError(f"anonymous members of type {tid} nest too deep (a loop?)")
        st = self.type(tid)
        for m in st.members:
            if not m.name:
                inner = self.strip(m.type)
                if self.kind_of(inner) in (KIND_STRUCT, KIND_UNION):
                    self._flatten(inner, base_bits + m.bit_offset, members, bitfields, depth + 1)
                continue
            boff, size, bf = self._member_bits(m, st.kind_flag)
            if bf:
                bitfields.setdefault(m.name, [base_bits + boff, size])
            else:
                members.setdefault(m.name, [(base_bits + boff) // 8, size // 8])


# ---- helpers -------------------------------------------------------------------------------

def _index_types(data: bytes, start: int, length: int, endian: str,
                 first_id: int) -> list[tuple]:
    """One pass over the type section: (offset, name_off, info, size_or_type) per record."""
    hdr = struct.Struct(endian + "III")
    unpack = hdr.unpack_from
    extra = [_EXTRA.get(k, (-1, 0)) for k in range(32)]
    out = []
    append = out.append
    off = start
    end = start + length
    while off < end:
        if off + 12 > end:
            raise BtfError(f"BTF type record #{first_id + len(out)} at offset {off - start} is "
                           f"truncated (type section ends at {length})")
        name_off, info, sot = unpack(data, off)
        fixed, per = extra[(info >> 24) & 0x1F]
        if fixed < 0:
            raise BtfError(f"BTF type #{first_id + len(out)} has unknown kind "
                           f"{(info >> 24) & 0x1F}")
        nxt = off + 12 + fixed + per * (info & 0xFFFF)
        if nxt > end:
            raise BtfError(f"BTF type record #{first_id + len(out)} at offset {off - start} "
                           f"runs past the end of the type section ({length} bytes)")
        append((off, name_off, info, sot))
        off = nxt
    return out


def _kinds_and_name(name: str, kind: str | None) -> tuple[tuple[int, ...], str]:
    m = _C_PREFIX.match(name)
    if m:
        return _KIND_GROUPS[m[1]], m[2].strip()
    if kind is None:
        return _DEFAULT_KINDS, name
    try:
        return _KIND_GROUPS[kind], name
    except KeyError:
        raise BtfError(f"unknown BTF kind {kind!r} (one of {', '.join(_KIND_GROUPS)})") from None


def _parse_path(path: str) -> list[tuple[str, list[int]]]:
    """``"mem[1].size"`` → [("mem", [1]), ("size", [])]."""
    parts = []
    for piece in path.split("."):
        m = _PATH_PART.fullmatch(piece)
        if m is None:
            raise BtfMemberError(f"bad member path {path!r} (expected e.g. 'mem[1].size')")
        parts.append((m[1], [int(i) for i in _INDEX.findall(m[2])]))
    return parts


def btf_section(elf_bytes: bytes) -> bytes | None:
    """The ``.BTF`` section of an ELF64 image (vmlinux or a module), or None when it has none.
    Raises BtfError when the image is not a readable ELF64 file."""
    buf = elf_bytes
    if len(buf) < elf.EHDR.size or buf[:4] != elf.ELFMAG:
        raise BtfError("not an ELF file")
    if buf[4] != 2:
        raise BtfError("not an ELF64 file")
    endian = "<" if buf[5] == 1 else ">"
    (shoff,) = struct.unpack_from(endian + "Q", buf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from(endian + "HHH", buf, 0x3A)
    if shnum == 0 and shoff and elf.range_valid(len(buf), shoff, 64):
        shnum = struct.unpack_from(endian + "Q", buf, shoff + 32)[0]     # sh_size of index 0
    if shentsize != 64 or not elf.range_valid(len(buf), shoff, shnum * 64):
        raise BtfError("ELF section headers are missing or run past the end of the file")
    shdr = struct.Struct(endian + "IIQQQQIIQQ")
    secs = [shdr.unpack_from(buf, shoff + i * 64) for i in range(shnum)]
    if shstrndx >= shnum:
        raise BtfError("ELF section-name table index is out of range")
    st = secs[shstrndx]
    if not elf.range_valid(len(buf), st[4], st[5]):
        raise BtfError("ELF section-name table runs past the end of the file")
    names = bytes(buf[st[4]:st[4] + st[5]])
    for name_off, stype, _f, _a, off, size, *_rest in secs:
        if names[name_off:name_off + 5] == b".BTF\0":
            if stype == elf.SHT_NOBITS:
                return None
            if not elf.range_valid(len(buf), off, size):
                raise BtfError(".BTF section runs past the end of the file")
            return bytes(buf[off:off + size])
    return None


def extract_layouts(btf: Btf, wanted: dict[str, list[str]]) -> dict:
    """The compact, JSON-able layout facts a profile stores.

    ``wanted`` maps a type to the facts asked about it:

    * a struct/union (``"module"``, ``"struct module"``, ``"union x"``) → member paths
      (``"name"``, ``"mem[0].base"``) giving byte offsets, and ``"sizeof(path)"`` giving a
      member's size; the result always has ``"sizeof"`` (the struct's own size — ``sizeof``
      being a C keyword, it cannot collide with a member name).  A bitfield member is recorded
      as ``[bit_offset, bits]``.
    * an enum (``"enum mod_mem_type"``) → enumerator names, or an empty list for all of them.

    Facts that do not exist in this kernel are recorded as None (a missing type as a None
    value for its key), so one list serves several kernel releases::

        {"module": {"sizeof": 896, "name": 24, "mem[0].base": None, ...},
         "enum mod_mem_type": None}
    """
    out: dict = {}
    for key, fields in wanted.items():
        m = _C_PREFIX.match(key)
        is_enum = bool(m and m[1] == "enum")
        tid = btf.get(key, None if m else "any")
        if tid is not None and not is_enum:
            tid = btf.strip(tid)
            if btf.kind_of(tid) not in (KIND_STRUCT, KIND_UNION):
                tid = None
        if tid is None:
            out[key] = None
            continue
        if is_enum:
            values = btf.enum_values(tid)
            out[key] = dict(values) if not fields else {f: values.get(f) for f in fields}
            continue
        rec: dict = {"sizeof": btf.sizeof(tid)}
        for f in fields:
            size_of = f.startswith("sizeof(") and f.endswith(")")
            path = f[7:-1] if size_of else f
            try:
                bits, size, _t, bitfield, _label = btf._walk(tid, path)
            except BtfMemberError:
                rec[f] = None
                continue
            if bitfield:
                rec[f] = [bits, size]
            else:
                rec[f] = size // 8 if size_of else bits // 8
        out[key] = rec
    return out


def extract_prototypes(btf: Btf, names) -> dict[str, list[int]]:
    """The argument counts of the named kernel functions, from their BTF ``FUNC`` records:
    ``{name: [fixed parameters, 1 if variadic else 0]}``.

    A function whose prototype lists no parameter is left out: BTF cannot tell ``f(void)`` from
    an assembly function that only has a C declaration somewhere (x86's memcpy), so nothing is
    claimed about it.  A name without a ``FUNC`` record (data, or not in BTF) is left out too.
    """
    out: dict[str, list[int]] = {}
    for name in names:
        ids = btf.find_all(name, "func")
        if not ids:
            continue
        proto = btf[btf[ids[0]].ref]
        params = proto.params or []
        variadic = bool(params) and params[-1].type == 0 and not params[-1].name
        fixed = len(params) - variadic
        if fixed or variadic:
            out[name] = [fixed, int(variadic)]
    return out
