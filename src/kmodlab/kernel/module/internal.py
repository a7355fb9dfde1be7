"""State shared between the load steps (the role of kernel/module/internal.h).

:class:`LoadInfo` is the kernel's ``struct load_info``: the image being loaded and the section
indices cached by ``setup_load_info``; it lives only during one ``load_module`` call.
:class:`Module` is the part of ``struct module`` the sandbox keeps while a module is in the
list; it is persisted with the machine, so it holds only plain data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# enum module_state
MODULE_STATE_LIVE = 0
MODULE_STATE_COMING = 1
MODULE_STATE_GOING = 2
MODULE_STATE_UNFORMED = 3
STATE_NAMES = {0: "live", 1: "coming", 2: "going", 3: "unformed"}

# finit_module flags (uapi/linux/module.h)
MODULE_INIT_IGNORE_MODVERSIONS = 1
MODULE_INIT_IGNORE_VERMAGIC = 2
MODULE_INIT_COMPRESSED_FILE = 4

# delete_module flags
O_NONBLOCK = 0o4000
O_TRUNC = 0o1000

MODULE_NAME_LEN = 56
MODULE_REF_BASE = 1

# Taint bits (kernel/panic.c, 6.1): (letter when set, letter when clear, module-specific?)
TAINT_FLAGS = [
    ("P", "G", True), ("F", " ", True), ("S", " ", False), ("R", " ", False),
    ("M", " ", False), ("B", " ", False), ("U", " ", False), ("D", " ", False),
    ("A", " ", False), ("W", " ", False), ("C", " ", True), ("I", " ", False),
    ("O", " ", True), ("E", " ", True), ("L", " ", False), ("K", " ", True),
    ("X", " ", True), ("T", " ", True), ("N", " ", True),
]
TAINT_PROPRIETARY_MODULE = 0
TAINT_FORCED_MODULE = 1
TAINT_FORCED_RMMOD = 3
TAINT_USER = 6
TAINT_WARN = 9
TAINT_CRAP = 10
TAINT_OOT_MODULE = 12
TAINT_UNSIGNED_MODULE = 13
TAINT_LIVEPATCH = 15
TAINT_TEST = 18


class LoadError(Exception):
    """A load step failed: its negative errno and the kernel log line(s) it printed (at KERN_ERR
    unless ``level`` says otherwise).  load_module unwinds and returns the errno."""

    def __init__(self, err: int, step: str, *log: str, level: int = 3, reason: str = ""):
        self.err = -abs(err)
        self.step = step
        self.log = list(log)            # written to the kernel log by load_module
        self.level = level
        self.reason = reason or (log[-1] if log else "")   # for the user only
        super().__init__(self.reason or step)


def module_flags_taint(taints: int) -> str:
    """Per-module taint letters in bit order, as /proc/modules and sysfs ``taint`` show them."""
    return "".join(t[0] for bit, t in enumerate(TAINT_FLAGS) if t[2] and taints & (1 << bit))


@dataclass
class LoadInfo:
    """``struct load_info``: one load in progress."""
    image: bytes                      # the buffer as copied from user space (signature included)
    len: int                          # ELF length once the signature trailer is split off
    flags: int = 0
    args: str = ""
    sig_ok: bool = False
    hdr: Any = None                   # elf.ElfHeader
    sechdrs: list = field(default_factory=list)   # list[elf.Section], rewritten in place
    secstrings: int = 0               # index of the section-name table
    name: str = ""                    # modinfo name=, else struct module's name
    modinfo: list[tuple[str, str]] = field(default_factory=list)
    index_sym: int = 0
    index_str: int = 0
    index_mod: int = 0
    index_vers: int = 0
    index_info: int = 0
    index_pcpu: int = 0
    versions: list = field(default_factory=list)      # __versions entries (crc, name)
    version_of: dict = field(default_factory=dict)    # name → crc of its first entry
    symtab: Any = None                # numpy Elf64_Sym array, simplified in place
    strtab: bytes = b""
    # layout results (kernel stores them in core_layout/init_layout)
    core: "Layout | None" = None
    init: "Layout | None" = None
    symoffs: int = 0
    stroffs: int = 0
    core_typeoffs: int = 0
    init_typeoffs: int = 0
    mod_kallsyms_init_off: int = 0
    ndst: int = 0                     # core kallsyms symbol count
    core_strtab_size: int = 0
    # 6.4+: module_memory sizes and bases by type (None on 6.1, whose layouts are core/init)
    mem: "list[int] | None" = None
    mem_base: "list[int] | None" = None
    kallsyms_core_base: int = 0       # where layout_symtab's core / init offsets count from
    kallsyms_init_base: int = 0
    core_mask: Any = None             # layout.core_symbol_mask once computed (symtab kept order)
    _modinfo_first: Any = field(default=None, repr=False, compare=False)
    _sec_by_name: Any = field(default=None, repr=False, compare=False)

    def get_modinfo(self, tag: str) -> str | None:
        """First ``tag=`` value in .modinfo (kernel get_modinfo), or None."""
        first = self._modinfo_first
        if first is None or first[0] is not self.modinfo:
            d: dict[str, str] = {}
            for t, v in self.modinfo:
                d.setdefault(t, v)
            first = self._modinfo_first = (self.modinfo, d)
        return first[1].get(tag)

    def find_sec(self, name: str, need_flags: int = 0) -> int:
        """elf.find_section over ``sechdrs`` through a name index built once (names never
        change during a load; flags may, and are checked at each call)."""
        idx = self._sec_by_name
        if idx is None or idx[0] is not self.sechdrs:
            d: dict[str, list[int]] = {}
            for i, sec in enumerate(self.sechdrs[1:], 1):
                d.setdefault(sec.name, []).append(i)
            idx = self._sec_by_name = (self.sechdrs, d)
        for i in idx[1].get(name, ()):
            if self.sechdrs[i].flags & need_flags == need_flags:
                return i
        return 0

    def get_modinfo_all(self, tag: str) -> list[str]:
        return [v for t, v in self.modinfo if t == tag]


@dataclass
class Layout:
    """``struct module_layout`` (6.1): base address and the page-rounded boundaries."""
    base: int = 0
    size: int = 0
    text_size: int = 0
    ro_size: int = 0
    ro_after_init_size: int = 0


@dataclass
class KernelSymbol:
    """An exported symbol of a loaded module (its __ksymtab entry resolved)."""
    name: str
    value: int
    gpl: bool
    crc: int | None = None
    namespace: str = ""


@dataclass
class ParamInfo:
    """One ``struct kernel_param`` of a loaded module, decoded for sysfs and parse_args."""
    name: str
    ops: str                          # kernel export name of the ops (e.g. "param_ops_int")
    perm: int
    level: int
    flags: int
    arg: int                          # address of the union (arg / str / arr)
    addr: int = 0                     # address of the struct kernel_param itself


@dataclass
class Module:
    """The sandbox's ``struct module`` for a module in the list (persisted with the machine)."""
    name: str
    state: int = MODULE_STATE_UNFORMED
    core: Layout = field(default_factory=Layout)
    init_layout: Layout = field(default_factory=Layout)
    taints: int = 0
    refcnt: int = MODULE_REF_BASE     # atomic refcnt; module_refcount() = refcnt - MODULE_REF_BASE
    source_list: list[str] = field(default_factory=list)   # modules using me, newest first
    target_list: list[str] = field(default_factory=list)   # modules I use, newest first
    init_fn: int = 0
    exit_fn: int = 0
    module_addr: int = 0              # address of the final struct module (this_module)
    syms: list[KernelSymbol] = field(default_factory=list)
    params: list[ParamInfo] = field(default_factory=list)
    sections: dict[str, int] = field(default_factory=dict)   # sysfs sections/<name> → address
    notes: dict[str, bytes] = field(default_factory=dict)
    kallsyms: dict[str, list[int]] = field(default_factory=dict)  # "init"/"core" → [symtab, n, strtab, typetab]
    args: str = ""
    version: str | None = None
    srcversion: str | None = None
    percpu: int = 0
    percpu_size: int = 0
    jump_entries: list[int] = field(default_factory=lambda: [0, 0])   # __jump_table: addr, count
    btf_data_size: int = 0            # mod->btf_data_size: its .BTF section (0: none)
    using_gplonly_symbols: bool = False
    sig_ok: bool = False
    filename: str = ""
    mem: list[list] = field(default_factory=list)   # its allocations: [type, base, size,
    #                                 region name]; 6.1: "core", "init"; 6.12: "text", "data",
    #                                 "rodata", "ro_after_init", "init_text", "init_data", …

    def contains(self, addr: int) -> bool:
        """within_module(): ``addr`` lies in one of the module's allocations."""
        return any(base <= addr < base + size for _t, base, size, _r in self.mem)

    def init_allocations(self) -> list[list]:
        return [a for a in self.mem if a[0].startswith("init")]

    def module_refcount(self) -> int:
        return self.refcnt - MODULE_REF_BASE

    @property
    def permanent(self) -> bool:
        return bool(self.init_fn) and not self.exit_fn
