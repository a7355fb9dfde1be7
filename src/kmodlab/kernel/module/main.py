"""load_module and delete_module: Linux's kernel/module/main.c, one named function per step.

The steps are 6.1's; where 6.12 does a step otherwise, the step asks the release's
:class:`~.release.Rules` (``m.rules``) — release.py is the one table of what differs.

Read :func:`load_module` from top to bottom: it is the seed's list, in the kernel's order, and
each line says why the step runs there.  Every step takes the machine ``m`` (the kernel's global
state), the :class:`LoadInfo` and, once it exists, the :class:`Module`; it returns or raises
:class:`LoadError` with the kernel's errno and log text.  Failure unwinds through an undo stack in
the reverse order of acquisition, sending GOING to the notifier chain before anything is freed,
as the kernel's goto labels do.  Global taints are never rolled back (nor are they in Linux).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ... import elf
from ...errors import (EBUSY, EEXIST, EFAULT, EINVAL, ENOENT, ENOEXEC, ENOMEM, ENOSYS, EPERM,
                       EWOULDBLOCK, ETIMEDOUT, KmodlabError)
from ..mm import MODULES_END, MODULES_VADDR, PAGE_SIZE, PERCPU_MODULE_RESERVE, Fault, align
from ..printk import KERN_ALERT, KERN_ERR, KERN_INFO, KERN_NOTICE, KERN_WARNING
from . import kallsyms, layout, version
from .elf_validity import elf_validity_cache_copy, elf_validity_check
from .internal import (KernelSymbol, Layout, LoadError, LoadInfo, Module, MODULE_NAME_LEN,
                       MODULE_INIT_COMPRESSED_FILE, MODULE_INIT_IGNORE_MODVERSIONS,
                       MODULE_INIT_IGNORE_VERMAGIC, MODULE_REF_BASE, MODULE_STATE_COMING,
                       MODULE_STATE_GOING, MODULE_STATE_LIVE, MODULE_STATE_UNFORMED, O_TRUNC,
                       TAINT_CRAP, TAINT_FORCED_RMMOD, TAINT_OOT_MODULE, TAINT_PROPRIETARY_MODULE,
                       TAINT_TEST, TAINT_UNSIGNED_MODULE)
from .signing import module_sig_check

THIS_MODULE_NAME_OFFSET = 24          # offsetof(struct module, name) on x86-64 6.1
KERNEL_SYMBOL = struct.Struct("<iii")   # struct kernel_symbol with PREL32 offsets
GPL_COMPATIBLE = {"GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL",
                  "Dual MPL/GPL"}


@dataclass
class LoadResult:
    """What a load did, for the tools (--explain, --json) and the syscall result."""
    ret: int = 0
    name: str = ""
    step: str = ""                    # the failing step, if any
    reason: str = ""
    steps: list[tuple[str, dict]] = field(default_factory=list)
    calls: list = field(default_factory=list)      # kernel calls made by init (emulator trace)
    trace: list[str] = field(default_factory=list)  # the same, rendered with symbol names
    coresize: int = 0
    initsize: int = 0
    states: list[str] = field(default_factory=list)  # the module's states, in order (UNFORMED…)
    left_registered: list[str] = field(default_factory=list)  # rmmod: what exit did not undo


class Undo:
    """The unwind stack: push a release right after each acquisition; run in reverse."""

    def __init__(self):
        self._stack: list = []

    def push(self, fn, *args) -> None:
        self._stack.append((fn, args))

    def unwind(self) -> None:
        while self._stack:
            fn, args = self._stack.pop()
            try:
                fn(*args)
            except Fault:       # freeing read a bad pointer (a charp): the rest is freed anyway
                pass


# ---------------------------------------------------------------------------------------------
# The syscalls' kernel side

def may_init_module(m, cred) -> None:
    """CAP_SYS_MODULE in the initial namespace, and modules_disabled must be 0."""
    if not cred.cap_sys_module or m.modules_disabled:
        raise LoadError(EPERM, "may_init_module",
                        reason="loading modules needs CAP_SYS_MODULE"
                        if not cred.cap_sys_module else "modules_disabled is set")


def copy_module_from_user(image: bytes) -> LoadInfo:
    if len(image) < elf.EHDR.size:
        raise LoadError(ENOEXEC, "copy_module_from_user",
                        reason=f"image of {len(image)} bytes is shorter than an ELF header")
    return LoadInfo(image=bytes(image), len=len(image))


def check_finit_flags(flags: int) -> None:
    if flags & ~(MODULE_INIT_IGNORE_MODVERSIONS | MODULE_INIT_IGNORE_VERMAGIC |
                 MODULE_INIT_COMPRESSED_FILE):
        raise LoadError(EINVAL, "finit_module", reason=f"invalid flags {flags:#x}")


# ---------------------------------------------------------------------------------------------
# load_module's steps

def setup_load_info(m, info: LoadInfo, flags: int) -> None:
    """6.1: cache the indices of .modinfo, the symtab, this_module, __versions and the percpu
    section (6.4+ finds the first three in elf_validity_cache_copy)."""
    secs = info.sechdrs
    info.index_info = info.find_sec(".modinfo", elf.SHF_ALLOC)
    if info.index_info:
        info.modinfo = elf.parse_modinfo(elf.section_bytes(info.image, secs[info.index_info]))
        info.name = info.get_modinfo("name") or ""
    for i, s in enumerate(secs[1:], 1):
        if s.type == elf.SHT_SYMTAB:
            info.index_sym, info.index_str = i, s.link
            break
    who = info.name or "(missing .modinfo section or name field)"
    if not info.index_sym:
        raise LoadError(ENOEXEC, "setup_load_info", f"{who}: module has no symbols (stripped?)",
                        level=KERN_WARNING)
    info.index_mod = info.find_sec(".gnu.linkonce.this_module", elf.SHF_ALLOC)
    if not info.index_mod:
        raise LoadError(ENOEXEC, "setup_load_info", f"{who}: No module found in object",
                        level=KERN_WARNING)
    cache_load_info(info, flags)


def cache_load_info(info: LoadInfo, flags: int) -> None:
    """The rest of setup_load_info, the same in every release: the name from struct module
    when .modinfo has none, __versions (unless ignored), the percpu section, the strtab."""
    secs = info.sechdrs
    if not info.name:
        info.name = this_module_name(info)
    info.index_vers = 0 if flags & MODULE_INIT_IGNORE_MODVERSIONS else \
        info.find_sec("__versions", elf.SHF_ALLOC)
    info.index_pcpu = info.find_sec(".data..percpu", elf.SHF_ALLOC)
    strsec = secs[info.index_str]
    # info->strtab is a pointer into the image: a name past the table's end (6.1 checks no
    # st_name) reads on into the bytes after it, as strlen/strcmp there would
    info.strtab = info.image[strsec.offset:]
    info.versions = version.versions_table(info)
    info.version_of = {}
    for crc, name in info.versions:
        info.version_of.setdefault(name, crc)


def this_module_name(info: LoadInfo) -> str:
    """struct module's name[] inside the image's .gnu.linkonce.this_module."""
    sec = info.sechdrs[info.index_mod]
    raw = info.image[sec.offset + THIS_MODULE_NAME_OFFSET:
                     sec.offset + min(sec.size, THIS_MODULE_NAME_OFFSET + MODULE_NAME_LEN)]
    return raw.split(b"\0", 1)[0].decode("latin-1")


def blacklisted(m, info: LoadInfo) -> None:
    if info.name in m.blacklist:
        raise LoadError(EPERM, "blacklisted", f"Module {info.name} is blacklisted")


def rewrite_section_headers(info: LoadInfo) -> None:
    """Point sh_addr at the temporary image, and drop SHF_ALLOC from __versions and .modinfo."""
    for s in info.sechdrs:
        s.addr = s.offset                 # "hdr + sh_offset": an offset into info.image
    info.sechdrs[info.index_vers].flags &= ~elf.SHF_ALLOC
    info.sechdrs[info.index_info].flags &= ~elf.SHF_ALLOC


def check_modinfo(m, info: LoadInfo, mod: Module, flags: int) -> None:
    """vermagic and livepatch support; on 6.1 then the taints (6.4+ applies them only once the
    name proved unique: module_augment_kernel_taints)."""
    modmagic = None if flags & MODULE_INIT_IGNORE_VERMAGIC else info.get_modinfo("vermagic")
    if modmagic is None:
        if not version.try_to_force_load(m, mod, "bad vermagic"):
            raise LoadError(ENOEXEC, "check_modinfo", reason="no vermagic and MODULE_FORCE_LOAD is off")
    elif not version.same_magic(modmagic, m.profile.vermagic, bool(info.index_vers)):
        raise LoadError(ENOEXEC, "check_modinfo",
                        f"{info.name}: version magic '{modmagic}' should be '{m.profile.vermagic}'")
    if info.get_modinfo("livepatch") is not None and not m.profile_config_enabled("LIVEPATCH"):
        raise LoadError(ENOEXEC, "check_modinfo",
                        f"{mod.name}: module is marked as livepatch module, but livepatch support is disabled")
    if not m.rules.late_taints:
        modinfo_taints(m, info, mod)


def modinfo_taints(m, info: LoadInfo, mod: Module) -> None:
    """The out-of-tree, retpoline, staging, livepatch, licence and test checks."""
    if info.get_modinfo("intree") is None:
        if not m.taint & (1 << TAINT_OOT_MODULE):
            m.printk(KERN_WARNING, f"{mod.name}: loading out-of-tree module taints kernel.")
        add_taint_module(m, mod, TAINT_OOT_MODULE)
    if info.get_modinfo("retpoline") is None and m.profile_config_enabled("RETPOLINE"):
        # retpoline_module_ok (arch/x86/kernel/cpu/bugs.c) says so first, on every such load
        m.printk(KERN_ERR, "Spectre V2 : System may be vulnerable to spectre v2")
        m.printk(KERN_WARNING, f"{mod.name}: loading module not compiled with retpoline compiler.")
    if info.get_modinfo("staging") is not None:
        add_taint_module(m, mod, TAINT_CRAP)
        m.printk(KERN_WARNING, f"{mod.name}: module is from the staging directory, the quality is "
                 "unknown, you have been warned.")
    if info.get_modinfo("livepatch") is not None:
        from .internal import TAINT_LIVEPATCH
        if m.rules.late_taints:
            add_taint_module(m, mod, TAINT_LIVEPATCH)
            m.printk_once("module:livepatch", KERN_NOTICE,
                          f"{mod.name}: tainting kernel with TAINT_LIVEPATCH")
        else:
            if not m.taint & (1 << TAINT_LIVEPATCH):
                m.printk(KERN_WARNING, f"{mod.name}: tainting kernel with TAINT_LIVEPATCH")
            add_taint_module(m, mod, TAINT_LIVEPATCH)
    set_license(m, mod, info.get_modinfo("license"))
    if info.get_modinfo("test") is not None:
        if not m.taint & (1 << TAINT_TEST):
            m.printk(KERN_WARNING, f"{mod.name}: loading test module taints kernel.")
        add_taint_module(m, mod, TAINT_TEST)


def module_augment_kernel_taints(m, info: LoadInfo, mod: Module) -> None:
    """After add_unformed_module: 6.4+ applies every modinfo taint here, then (all releases)
    E for an unverified signature; 6.4+ also the licence special names."""
    if m.rules.late_taints:
        modinfo_taints(m, info, mod)
    mod.sig_ok = info.sig_ok
    if not mod.sig_ok:
        m.printk_once("module_sig:unsigned", KERN_NOTICE,
                      f"{mod.name}: module verification failed: signature and/or required key "
                      "missing - tainting kernel")
        add_taint_module(m, mod, TAINT_UNSIGNED_MODULE)
    if m.rules.late_taints:
        license_special_names(m, mod)


def license_special_names(m, mod: Module) -> None:
    """ndiswrapper taints the kernel only; driverloader and lve the module too."""
    prev = m.taint & (1 << TAINT_PROPRIETARY_MODULE)
    if mod.name == "ndiswrapper":
        m.add_taint(TAINT_PROPRIETARY_MODULE, unreliable=True)
    if mod.name in ("driverloader", "lve"):
        add_taint_module(m, mod, TAINT_PROPRIETARY_MODULE, unreliable=True)
    if not prev and m.taint & (1 << TAINT_PROPRIETARY_MODULE):
        m.printk(KERN_WARNING, f"{mod.name}: module license taints kernel.")


def add_taint_module(m, mod: Module, bit: int, unreliable: bool = False) -> None:
    m.add_taint(bit, unreliable)
    mod.taints |= 1 << bit


def license_is_gpl_compatible(license: str) -> bool:
    return license in GPL_COMPATIBLE


def set_license(m, mod: Module, license: str | None) -> None:
    license = license if license is not None else "unspecified"
    if not license_is_gpl_compatible(license):
        if not m.taint & (1 << TAINT_PROPRIETARY_MODULE):
            m.printk(KERN_WARNING, f"{mod.name}: module license '{license}' taints kernel.")
        add_taint_module(m, mod, TAINT_PROPRIETARY_MODULE, unreliable=True)


def module_enforce_rwx_sections(info: LoadInfo, mod: Module) -> None:
    for i, s in enumerate(info.sechdrs):
        if s.flags & elf.SHF_WRITE and s.flags & elf.SHF_EXECINSTR:
            raise LoadError(ENOEXEC, "module_enforce_rwx_sections",
                            f"{mod.name}: section {s.name} (index {i}) has invalid WRITE|EXEC flags")


def layout_and_allocate(m, info: LoadInfo, mod: Module, flags: int, placement=None) -> None:
    """(6.1: check modinfo,) mark sections, compute the layout and move the sections home."""
    if not m.rules.early_mod_check:
        check_modinfo(m, info, mod, flags)
    module_enforce_rwx_sections(info, mod)
    info.sechdrs[info.index_pcpu].flags &= ~elf.SHF_ALLOC
    for name in (".data..ro_after_init", "__jump_table"):
        ndx = info.find_sec(name, elf.SHF_ALLOC)
        if ndx:
            info.sechdrs[ndx].flags |= elf.SHF_RO_AFTER_INIT
    info.core, info.init = Layout(), Layout()
    info.symtab = elf.symbols(info.image, info.sechdrs[info.index_sym])
    used = [(r.base, len(r.data)) for r in m.mm.regions.values()
            if MODULES_VADDR <= r.base < MODULES_END]
    if m.rules.mod_mem:
        layout.layout_sections_mem(info)
        layout.layout_symtab_mem(info)
        mod.mem = layout.move_module_mem(info, m.mm, used, m.module_load_offset, mod.name,
                                         placement)
    else:
        layout.layout_sections(info)
        layout.layout_symtab(info)
        mod.mem = layout.move_module(info, m.mm, used, m.module_load_offset, mod.name, placement)
    mod.core = info.core
    mod.init_layout = info.init
    mod.module_addr = info.sechdrs[info.index_mod].addr


def module_patient_check_exists(m, name: str, step: str) -> None:
    """A module of that name in the list: LIVE → -EEXIST, coming, going or unformed → -EBUSY
    (the kernel waits for a COMING/UNFORMED one to settle; the sandbox runs one load at a
    time, so there is nothing to wait for)."""
    old = m.find_module(name, include_unformed=True)
    if old is not None:
        if old.state == MODULE_STATE_LIVE:
            raise LoadError(EEXIST, step, reason=f"module {name} is already loaded")
        raise LoadError(EBUSY, step, reason=f"module {name} is being loaded or removed")


def early_mod_check(m, info: LoadInfo, mod: Module, flags: int) -> None:
    """6.4+: vermagic (check_modinfo) and a first duplicate check, before any allocation."""
    check_modinfo(m, info, mod, flags)
    module_patient_check_exists(m, mod.name, "early_mod_check")


def add_unformed_module(m, mod: Module) -> None:
    """Reserve the name: a LIVE module of that name → -EEXIST, one coming or going → -EBUSY."""
    module_patient_check_exists(m, mod.name, "add_unformed_module")
    mod.state = MODULE_STATE_UNFORMED
    m.modules.insert(0, mod)


def percpu_modalloc(m, info: LoadInfo, mod: Module) -> None:
    if not info.index_pcpu:
        return
    sec = info.sechdrs[info.index_pcpu]
    if not sec.size:
        return
    al = sec.addralign or 1
    if al > PAGE_SIZE:
        m.printk(KERN_WARNING, f"{mod.name}: per-cpu alignment {al} > {PAGE_SIZE}")
        al = PAGE_SIZE
    static = m.profile.percpu_static_size       # the kernel's own .data..percpu comes first
    off = static
    for o, s, _ in sorted(m.percpu_used):
        if align(off, al) + sec.size <= o:
            break
        off = max(off, o + s)
    off = align(off, al)
    if off + sec.size > static + PERCPU_MODULE_RESERVE:
        raise LoadError(ENOMEM, "percpu_modalloc",
                        f"{mod.name}: Could not allocate {sec.size} bytes percpu data")
    m.percpu_used.append((off, sec.size, mod.name))
    mod.percpu, mod.percpu_size = off, sec.size


def module_unload_init(mod: Module) -> None:
    """refcnt = base + 1: the reference held while the module initialises."""
    mod.refcnt = MODULE_REF_BASE + 1
    mod.source_list, mod.target_list = [], []


@dataclass
class ModSections:
    """What find_module_sections found (section indices; counts derive from sizes)."""
    kp: int = 0
    syms: int = 0
    crcs: int = 0
    gpl_syms: int = 0
    gpl_crcs: int = 0


JUMP_ENTRY_SIZE = 16                          # struct jump_entry {s32 code, target; long key}


def find_module_sections(m, info: LoadInfo, mod: Module) -> ModSections:
    f = lambda name: info.find_sec(name, elf.SHF_ALLOC)
    ms = ModSections(kp=f("__param"), syms=f("__ksymtab"), crcs=f("__kcrctab"),
                     gpl_syms=f("__ksymtab_gpl"), gpl_crcs=f("__kcrctab_gpl"))
    if f(".ctors") and f(".init_array"):
        raise LoadError(EINVAL, "find_module_sections", f"{mod.name}: has both .ctors and .init_array.")
    if f("__obsparm"):
        m.printk(KERN_WARNING, f"{mod.name}: Ignoring obsolete parameters")
    btf = info.find_sec(".BTF")               # mod->btf_data (any section, as the kernel's)
    if btf:
        mod.btf_data_size = info.sechdrs[btf].size
    jt = f("__jump_table")                    # mod->jump_entries, num_jump_entries
    if jt:
        mod.jump_entries = [info.sechdrs[jt].addr, info.sechdrs[jt].size // JUMP_ENTRY_SIZE]
    return ms


def check_module_license_and_versions(m, info: LoadInfo, mod: Module, ms: ModSections) -> None:
    """6.1: the licence special names, then exports without CRCs (6.4+: only the latter,
    check_export_symbol_versions; the names moved to module_augment_kernel_taints)."""
    if not m.rules.late_taints:
        license_special_names(m, mod)
    nsyms = info.sechdrs[ms.syms].size // KERNEL_SYMBOL.size if ms.syms else 0
    ngpl = info.sechdrs[ms.gpl_syms].size // KERNEL_SYMBOL.size if ms.gpl_syms else 0
    if (nsyms and not ms.crcs) or (ngpl and not ms.gpl_crcs):
        if not version.try_to_force_load(m, mod, "no versions for exported symbols"):
            raise LoadError(ENOEXEC, "check_module_license_and_versions")


def setup_modinfo(info: LoadInfo, mod: Module) -> None:
    mod.version = info.get_modinfo("version")
    mod.srcversion = info.get_modinfo("srcversion")


# -- symbols ----------------------------------------------------------------------------------

@dataclass
class FoundSymbol:
    value: int
    crc: int | None
    gpl: bool
    namespace: str
    owner: Module | None               # None: vmlinux (or the check tree's placeholder)
    name: str


def find_symbol(m, name: str, gplok: bool, extra=None) -> FoundSymbol | None:
    """vmlinux's __ksymtab then __ksymtab_gpl, then every formed module, newest first."""
    e = m.profile.exports.get(name)
    if e is not None and (gplok or not e.gpl):
        return FoundSymbol(e.addr, e.crc, e.gpl, e.namespace, None, name)
    for mod in m.modules:
        if mod.state == MODULE_STATE_UNFORMED:
            continue
        for s in mod.syms:
            if s.name == name and (gplok or not s.gpl):
                return FoundSymbol(s.value, s.crc, s.gpl, s.namespace, mod, name)
    if extra is not None:
        return extra(name, gplok)
    return None


def inherit_taint(m, mod: Module, owner: Module | None, name: str) -> bool:
    if owner is None or not owner.taints & (1 << TAINT_PROPRIETARY_MODULE):
        return True
    if mod.using_gplonly_symbols:
        m.printk(KERN_ERR, f"{mod.name}: module using GPL-only symbols uses symbols {name} from "
                 f"proprietary module {owner.name}.")
        return False
    if not mod.taints & (1 << TAINT_PROPRIETARY_MODULE):
        m.printk(KERN_WARNING, f"{mod.name}: module uses symbols {name} from proprietary module "
                 f"{owner.name}, inheriting taint.")
        mod.taints |= 1 << TAINT_PROPRIETARY_MODULE
    return True


def verify_namespace_is_imported(m, info: LoadInfo, sym: FoundSymbol, mod: Module) -> int:
    if sym.namespace:
        if sym.namespace in info.get_modinfo_all("import_ns"):
            return 0
        m.printk(KERN_ERR, f"{mod.name}: module uses symbol ({sym.name}) from namespace "
                 f"{sym.namespace}, but does not import it.")
        return -EINVAL
    return 0


def ref_module(m, a: Module, b: Module | None) -> int:
    """Record that ``a`` uses ``b``: +1 on b's refcount and a holders link (once per pair)."""
    if b is None or b.name in a.target_list:
        return 0
    if b.state == MODULE_STATE_COMING:
        return -EBUSY
    if b.state == MODULE_STATE_GOING or b.refcnt == 0:
        return -ENOENT
    b.refcnt += 1
    b.source_list.insert(0, a.name)
    a.target_list.insert(0, b.name)
    return 0


def resolve_symbol(m, info: LoadInfo, mod: Module, name: str, extra=None):
    """A FoundSymbol, None (not found) or a negative errno (found but refused)."""
    sym = find_symbol(m, name, not mod.taints & (1 << TAINT_PROPRIETARY_MODULE), extra)
    if sym is None:
        return None
    if sym.gpl:
        mod.using_gplonly_symbols = True
    if not inherit_taint(m, mod, sym.owner, name):
        return None
    if not version.check_version(m, info, name, mod, sym.crc):
        return -EINVAL
    err = verify_namespace_is_imported(m, info, sym, mod)
    if err:
        return err
    err = ref_module(m, mod, sym.owner)
    if err:
        if err == -EBUSY:
            m.printk(KERN_WARNING, f"{mod.name}: gave up waiting for init of module {sym.owner.name}.")
        return err
    return sym


FAST_SYMBOLS = True      # simplify_symbols decides the common case inline (tests turn it off)


def simplify_symbols(m, info: LoadInfo, mod: Module, extra=None) -> list[tuple[str, int, str]]:
    """Give every symbol its final value; report every unknown symbol, fail with the last error.

    Returns the resolved undefined symbols as (name, value, owner) for --explain."""
    import numpy as np
    sym = info.symtab
    shnum = info.hdr.shnum
    shndx = sym["st_shndx"]
    secaddr = np.array([s.addr for s in info.sechdrs] + [0], dtype=np.uint64)
    if info.index_pcpu:
        secaddr[info.index_pcpu] = mod.percpu
    defined = (shndx != elf.SHN_UNDEF) & (shndx < shnum)
    defined[:1] = False              # symbol 0 (an empty symbol table has none)
    idx = shndx[defined].astype(np.int64)
    sym["st_value"][defined] += secaddr[idx]
    special = np.flatnonzero(~defined)
    special = special[special > 0]
    ret = 0
    unknown: list[str] = []
    resolved: list[tuple[str, int, str]] = []
    found_at: list[int] = []
    found_val: list[int] = []
    strtab = info.strtab
    nstr = len(strtab)
    find = strtab.find
    rows = sym[special]
    # The common case, decided without side effects: a vmlinux export (or, with no formed
    # module in the list, an ``extra`` one) the module may use, with no namespace and a CRC
    # that matches its __versions entry (or no CRC).  Anything else takes resolve_symbol's
    # whole path, which then does exactly what it would have done.
    exports_get = m.profile.exports.get
    no_modules = all(x.state == MODULE_STATE_UNFORMED for x in m.modules)
    vers = info.version_of if info.index_vers else None
    fast = FAST_SYMBOLS
    for i, st_name, st_info, st_shndx in zip(special.tolist(), rows["st_name"].tolist(),
                                              rows["st_info"].tolist(), rows["st_shndx"].tolist()):
        if st_name < nstr:
            end = find(b"\0", st_name)
            name = strtab[st_name:end if end >= 0 else nstr].decode("latin-1")
        else:
            name = ""
        if st_shndx == elf.SHN_UNDEF and fast:
            gplok = not mod.taints & (1 << TAINT_PROPRIETARY_MODULE)
            e = exports_get(name)
            if e is not None:
                if not gplok and e.gpl:
                    e = None
                else:
                    value, crc, gpl, ns = e.addr, e.crc, e.gpl, e.namespace
            if e is None and no_modules and extra is not None:
                e = extra(name, gplok)
                if e is not None:
                    value, crc, gpl, ns = e.value, e.crc, e.gpl, e.namespace
            if e is not None and not ns and (crc is None or (vers is not None and vers.get(name) == crc)) \
                    and (e.owner is None if isinstance(e, FoundSymbol) else True):
                if gpl:
                    mod.using_gplonly_symbols = True
                value &= 0xFFFFFFFFFFFFFFFF
                found_at.append(i)
                found_val.append(value)
                resolved.append((name, value, "vmlinux"))
                continue
        if st_shndx == elf.SHN_COMMON:
            if name.startswith("__gnu_lto"):
                continue
            m.printk(KERN_WARNING, f"{mod.name}: please compile with -fno-common")
            ret = -ENOEXEC
        elif st_shndx in (elf.SHN_ABS, elf.SHN_LIVEPATCH):
            continue
        elif st_shndx == elf.SHN_UNDEF:
            ksym = resolve_symbol(m, info, mod, name, extra)
            if isinstance(ksym, FoundSymbol):
                value = ksym.value & 0xFFFFFFFFFFFFFFFF
                found_at.append(i)
                found_val.append(value)
                resolved.append((name, value, ksym.owner.name if ksym.owner else "vmlinux"))
                continue
            if ksym is None and ((st_info >> 4) == elf.STB_WEAK or name == "_GLOBAL_OFFSET_TABLE_"):
                continue
            ret = ksym if isinstance(ksym, int) else -ENOENT
            m.printk(KERN_WARNING, f"{mod.name}: Unknown symbol {name} (err {ret})")
            unknown.append(f"{name} (err {ret})")
        else:
            m.printk(KERN_ERR, f"{mod.name}: Symbol {name} has an invalid section index "
                     f"{st_shndx} (max {shnum - 1})")
            ret = -ENOEXEC
    if found_at:
        sym["st_value"][np.array(found_at, dtype=np.int64)] = np.array(found_val, dtype=np.uint64)
    if ret:
        raise LoadError(ret, "simplify_symbols",
                        reason="; ".join(f"Unknown symbol {u}" for u in unknown) if unknown else "")
    return resolved


def apply_relocations(m, info: LoadInfo, mod: Module, by_section: dict | None = None) -> dict[int, int]:
    """Every RELA section whose target is allocated, through the arch's apply_relocate_add;
    the first failure (in section order) stops the load.  ``by_section``, when given, receives
    for the record {target section name: {type: count}} of the sections applied."""
    from ...arch.x86_64.module import RelocError, apply_relocate_add
    rela: list[int] = []
    refused = None
    for i, s in enumerate(info.sechdrs[1:], 1):
        t = s.info
        if t >= info.hdr.shnum or not info.sechdrs[t].flags & elf.SHF_ALLOC:
            continue
        if s.flags & elf.SHF_RELA_LIVEPATCH:
            refused = LoadError(ENOEXEC, "apply_relocations",
                                reason="livepatch relocations are not supported")
        elif s.type == elf.SHT_REL:
            refused = LoadError(ENOEXEC, "apply_relocations",
                                f"module {mod.name}: REL relocation unsupported")
        elif s.type == elf.SHT_RELA:
            rela.append(i)
        if refused:
            break
    try:
        per_section = apply_relocate_add(m.mm, info, rela, mod.name)
    except RelocError as e:
        raise LoadError(ENOEXEC, "apply_relocate_add", *e.log)
    if refused:
        raise refused
    counts: dict[int, int] = {}
    for i, per in per_section.items():
        for t, c in per.items():
            counts[t] = counts.get(t, 0) + c
        if by_section is not None:
            into = by_section.setdefault(info.sechdrs[info.sechdrs[i].info].name, {})
            for t, c in per.items():
                into[t] = into.get(t, 0) + c
    return counts


def post_relocation(m, info: LoadInfo, mod: Module) -> None:
    """Copy the percpu template, build kallsyms, and the arch's module_finalize."""
    if info.index_pcpu and mod.percpu_size:
        sec = info.sechdrs[info.index_pcpu]
        if sec.type != elf.SHT_NOBITS:
            m.mm.write(m.mm.regions["percpu"].base + mod.percpu,
                       info.image[sec.offset:sec.offset + sec.size])
    kallsyms.add_kallsyms(m.mm, info, mod)


def decode_exports(m, info: LoadInfo, mod: Module, ms: ModSections) -> None:
    """Read the relocated __ksymtab(_gpl) entries (PREL32: value, name, namespace) and CRCs."""
    out: list[KernelSymbol] = []
    for idx, crcidx, gpl in ((ms.syms, ms.crcs, False), (ms.gpl_syms, ms.gpl_crcs, True)):
        if not idx:
            continue
        sec = info.sechdrs[idx]
        data = m.mm.read(sec.addr, sec.size - sec.size % KERNEL_SYMBOL.size)   # num_syms entries
        crcs = None
        if crcidx:
            csec = info.sechdrs[crcidx]
            crcs = struct.unpack(f"<{csec.size // 4}I", m.mm.read(csec.addr, csec.size - csec.size % 4))
        for k, (voff, noff, nsoff) in enumerate(KERNEL_SYMBOL.iter_unpack(data)):
            base = sec.addr + k * KERNEL_SYMBOL.size
            value = (base + voff) & 0xFFFFFFFFFFFFFFFF
            name = m.mm.read_cstr((base + 4 + noff) & 0xFFFFFFFFFFFFFFFF, 256).decode("latin-1")
            ns = m.mm.read_cstr((base + 8 + nsoff) & 0xFFFFFFFFFFFFFFFF, 256).decode("latin-1") \
                if nsoff else ""
            out.append(KernelSymbol(name, value, gpl, crcs[k] if crcs and k < len(crcs) else None, ns))
    mod.syms = out


def verify_exported_symbols(m, mod: Module, extra=None) -> None:
    for s in mod.syms:
        found = find_symbol(m, s.name, True)
        if found is not None:
            owner = found.owner.name if found.owner else "kernel"
            raise LoadError(ENOEXEC, "verify_exported_symbols",
                            f"{mod.name}: exports duplicate symbol {s.name} (owned by {owner})")


def complete_formation(m, info: LoadInfo, mod: Module) -> None:
    """No duplicate exports; RO/NX (nothing to do in the sandbox); state COMING."""
    verify_exported_symbols(m, mod)
    mod.state = MODULE_STATE_COMING


def prepare_coming_module(m, mod: Module) -> None:
    m.notify("COMING", mod)


def init_exit_pointers(m, info: LoadInfo, mod: Module) -> None:
    """mod->init / mod->exit: the relocated pointers in this_module that refer to the symbols
    init_module / cleanup_module (their offsets depend on the config, so take them from the
    relocations rather than constants)."""
    relsecs = [s for s in info.sechdrs if s.type == elf.SHT_RELA and s.info == info.index_mod]
    names = {}
    for rs in relsecs:
        for r in elf.relocations(info.image, rs).tolist():
            off, rinfo = r[0], r[1]
            si = rinfo >> 32
            nm = elf.cstring(info.strtab, int(info.symtab["st_name"][si]))
            names[nm] = off
    base = info.sechdrs[info.index_mod].addr
    if "init_module" in names:
        mod.init_fn = m.mm.read_u64(base + names["init_module"])
    if "cleanup_module" in names:
        mod.exit_fn = m.mm.read_u64(base + names["cleanup_module"])


def parse_module_args(m, info: LoadInfo, mod: Module, ms: ModSections, ctx) -> None:
    """parse_args over the module's __param array; unknown names only warn."""
    from .. import params
    if ms.kp:
        sec = info.sechdrs[ms.kp]
        mod.params = params.decode_kernel_params(m.mm, sec.addr, sec.size // 40, m.ops_name_of)
    start = len(m.log)
    try:
        err, after = params.parse_args(ctx, mod.name, mod.args, mod.params)
    except params.ParamOpsUnavailable as e:     # module-defined ops need code we cannot run here
        raise LoadError(ENOSYS, "parse_args", f"kmodlab: {mod.name}: {e.reason}")
    if err:
        said = [r.text for r in m.log[start:] if r.level <= KERN_ERR]
        raise LoadError(err, "parse_args", reason=said[-1] if said else "")
    if after is not None:
        m.printk(KERN_WARNING, f"{mod.name}: parameters '{after}' after `--' ignored")


def mod_sysfs_setup(m, info: LoadInfo, mod: Module) -> None:
    """/sys/module/<name>: refused when it exists already (a built-in of that name)."""
    from .sysfs import builtin_has_sysfs_dir
    if builtin_has_sysfs_dir(m.profile, mod.name):
        raise LoadError(EINVAL, "mod_sysfs_setup", f"{mod.name}: module is already loaded")
    mod.sections = {s.name: s.addr for s in info.sechdrs if s.flags & elf.SHF_ALLOC and s.size}
    mod.notes = {s.name: elf.section_bytes(info.image, s) for s in info.sechdrs
                 if s.type == elf.SHT_NOTE and s.size}


# ---------------------------------------------------------------------------------------------
# freeing

def free_module(m, mod: Module) -> None:
    """Drop the references on used modules, free params, percpu and memory; unlink."""
    module_unload_free(m, mod)
    m.free_params(mod)
    free_percpu(m, mod)
    free_memory(m, mod)
    unlink_module(m, mod)


def kernel_oops(m, fault: Fault, step: str = "") -> LoadError:
    """A Fault raised by the sandbox kernel's own code (it read a pointer the module supplied):
    the oops report the kernel would print, as a LoadError with the sandbox's oops errno
    (EFAULT; Linux would kill the loading process).  The caller logs it and unwinds."""
    from ...emu.oops import kernel_fault_report
    lines = kernel_fault_report(fault, fault.__traceback__)
    where = next(ln for ln in lines if ln.startswith("RIP: 0010:"))[len("RIP: 0010:"):]
    return LoadError(EFAULT, step or where, *lines, level=KERN_ALERT, reason=lines[0])


def emulation_failure(m, mod: Module, e: KmodlabError, result: LoadResult) -> int:
    """A module function stopped under emulation: say why in the log; return the errno the
    sandbox reports (not a kernel errno: Linux would have run on, or oopsed and killed insmod).
    Unmodelled kernel function → ENOSYS; oops → EFAULT; out of budget → ETIMEDOUT."""
    from ...emu.errors import BudgetExceeded, Oops
    if isinstance(e, Oops):
        for line in e.text.splitlines():
            m.printk(KERN_ALERT, line)
        result.reason = f"{mod.name}: {e.headline}"
        return EFAULT
    m.printk(KERN_ERR, f"kmodlab: {mod.name}: {e}")
    result.reason = f"kmodlab: {mod.name}: {e}"
    return ETIMEDOUT if isinstance(e, BudgetExceeded) else ENOSYS


def do_init_module(m, mod: Module, result: LoadResult, trace: bool = False) -> int:
    """Run init; on failure GOING + free; on success LIVE, drop the init reference, free init."""
    ret = 0
    if mod.init_fn:
        try:
            ret = m.run_module_code(mod, mod.init_fn, "init", result, trace)
        except KmodlabError as e:
            ret = -emulation_failure(m, mod, e, result)
        except Fault as f:                    # a model read module memory that is not there
            oops = kernel_oops(m, f, "do_init_module")
            for line in oops.log:
                m.printk(oops.level, line)
            result.reason = f"{mod.name}: {oops.reason}"
            ret = -EFAULT
    if ret < 0:
        mod.state = MODULE_STATE_GOING
        mod.refcnt -= 1
        m.notify("GOING", mod)
        free_module(m, mod)
        return ret
    if ret > 0:
        m.printk(KERN_WARNING, f"do_init_module: '{mod.name}'->init suspiciously returned {ret}, "
                 "it should follow 0/-E convention")
        m.printk(KERN_WARNING, "do_init_module: loading module anyway...")
    mod.state = MODULE_STATE_LIVE
    m.notify("LIVE", mod)
    mod.refcnt -= 1                         # module_put of the init reference
    for a in mod.init_allocations():
        m.mm.unmap(a[3])
    mod.mem = [a for a in mod.mem if not a[0].startswith("init")]
    mod.kallsyms.pop("init", None)             # kallsyms switches to the core copy
    mod.init_layout = Layout()
    mod.sections = {k: v for k, v in mod.sections.items()}   # sysfs keeps stale .init.* entries
    return 0


# ---------------------------------------------------------------------------------------------

def load_module(m, image: bytes, args: str, flags: int = 0, *, run_init: bool = True,
                extra=None, trace: bool = False, placement=None) -> LoadResult:
    """The seed's load_module, in Linux 6.1's order.  Returns a LoadResult with ret 0 or -errno."""
    result = LoadResult()
    undo = Undo()
    mod: Module | None = None
    info: LoadInfo | None = None
    formed = False

    def step(_step: str, **detail) -> None:
        result.steps.append((_step, detail))

    try:
        info = LoadInfo(image=bytes(image), len=len(image), flags=flags, args=args)
        module_sig_check(m, info, flags)          # first: needs only the length, trims it
        step("module_sig_check", sig_ok=info.sig_ok, file_len=len(image), elf_len=info.len,
             mangled=bool(flags & (MODULE_INIT_IGNORE_MODVERSIONS | MODULE_INIT_IGNORE_VERMAGIC)))
        if m.rules.elf_validity_cache:            # 6.4+: checks and section cache in one pass
            elf_validity_cache_copy(info, m.rules.sizeof_module)
            cache_load_info(info, flags)
            checks = "elf_validity_cache_copy"
        else:
            elf_validity_check(info)              # ELF structure, before any section is trusted
            step("elf_validity_check", sections=len(info.sechdrs), shoff=info.hdr.shoff)
            setup_load_info(m, info, flags)       # cache the interesting sections, find a name
            checks = "setup_load_info"
        result.name = info.name
        step(checks, name=info.name, symtab=info.index_sym, this_module=info.index_mod,
             versions=len(info.versions), percpu=info.index_pcpu, sections=len(info.sechdrs),
             shoff=info.hdr.shoff, sizeof_module=m.rules.sizeof_module,
             modinfo=[f"{t}={v}" for t, v in info.modinfo if t in ("vermagic", "license", "depends")])
        blacklisted(m, info)
        rewrite_section_headers(info)
        mod = Module(name=this_module_name(info), filename="")
        result.name = mod.name
        version.check_modstruct_version(m, info, mod)   # module_layout CRC, before using mod
        step("check_modstruct_version", kernel_crc=m.profile.exports["module_layout"].crc,
             module_crc=next((c for c, n in info.versions if n == "module_layout"), None))
        if m.rules.early_mod_check:
            early_mod_check(m, info, mod, flags)  # 6.4+: vermagic, name not taken, no memory yet
            step("early_mod_check", vermagic=info.get_modinfo("vermagic"),
                 kernel_vermagic=m.profile.vermagic)
        layout_and_allocate(m, info, mod, flags, placement)  # (6.1: vermagic, taints,) layout, move
        undo.push(free_memory, m, mod)
        result.coresize, result.initsize = info.core.size, info.init.size
        step("layout_and_allocate", vermagic=info.get_modinfo("vermagic"),
             kernel_vermagic=m.profile.vermagic, core=info.core, init=info.init,
             mem=[a[:3] for a in mod.mem] if m.rules.mod_mem else None,
             taints=mod.taints, sections=[(s.name, s.addr, s.size) for s in info.sechdrs
                                          if s.flags & elf.SHF_ALLOC],
             placement=layout.placement_record(info), kallsyms=layout.kallsyms_record(info))
        add_unformed_module(m, mod)               # name reserved in the list (UNFORMED)
        result.states.append("UNFORMED")
        undo.push(unlink_module, m, mod)
        module_augment_kernel_taints(m, info, mod)  # E (6.4+: every modinfo taint) once unique
        percpu_modalloc(m, info, mod)             # once we are unique
        undo.push(free_percpu, m, mod)
        module_unload_init(mod)
        ms = find_module_sections(m, info, mod)
        undo.push(module_unload_free, m, mod)
        check_module_license_and_versions(m, info, mod, ms)
        setup_modinfo(info, mod)
        resolved = simplify_symbols(m, info, mod, extra)  # every symbol gets its final value
        step("simplify_symbols", resolved=resolved, users_of=list(mod.target_list))
        by_section: dict = {}
        counts = apply_relocations(m, info, mod, by_section)
        step("apply_relocations", counts=counts, by_section=by_section)
        post_relocation(m, info, mod)
        mod.args = args
        decode_exports(m, info, mod, ms)
        init_exit_pointers(m, info, mod)
        complete_formation(m, info, mod)          # duplicate exports; state COMING
        formed = True
        result.states.append("COMING")
        prepare_coming_module(m, mod)             # notifier chain: COMING
        undo.push(coming_cleanup, m, mod)
        ctx = m.param_context(mod)
        parse_module_args(m, info, mod, ms, ctx)  # may run module code; the module is COMING
        step("parse_args", args=args, params=[p.name for p in mod.params])
        mod_sysfs_setup(m, info, mod)
        step("mod_sysfs_setup", state="COMING", events=["COMING"])
    except (LoadError, Fault) as e:
        if isinstance(e, Fault):                  # kernel code read module memory that is not
            e = kernel_oops(m, e)                 # there: the kernel would oops right here
        for line in e.log:
            m.printk(e.level, line)
        undo.unwind()
        if formed:
            result.states.append("GOING")         # coming_cleanup
        result.name = result.name or (info.name if info is not None else "")
        result.ret, result.step = e.err, e.step
        result.reason = e.reason or (e.log[-1] if e.log else "")
        return result
    if not run_init:
        return result
    ret = do_init_module(m, mod, result, trace)
    result.states.append("LIVE" if ret >= 0 else "GOING")
    step("do_init_module", ret=ret, init=mod.init_fn, calls=len(result.calls),
         state="LIVE" if ret >= 0 else "GOING (freed)")
    result.ret = ret
    if ret < 0:
        result.step = "do_init_module"
    return result


# undo actions -------------------------------------------------------------------------------

def free_memory(m, mod: Module) -> None:
    for a in mod.mem:
        m.mm.unmap(a[3])
    mod.mem = []


def unlink_module(m, mod: Module) -> None:
    if mod in m.modules:
        m.modules.remove(mod)


def free_percpu(m, mod: Module) -> None:
    m.percpu_used = [p for p in m.percpu_used if p[2] != mod.name]


def module_unload_free(m, mod: Module) -> None:
    for tname in mod.target_list:
        t = m.find_module(tname, include_unformed=True)
        if t is not None:
            t.refcnt -= 1
            if mod.name in t.source_list:
                t.source_list.remove(mod.name)
    mod.target_list = []


def coming_cleanup(m, mod: Module) -> None:
    mod.state = MODULE_STATE_GOING
    m.free_params(mod)
    m.notify("GOING", mod)


# ---------------------------------------------------------------------------------------------

def delete_module(m, name: str, flags: int, trace: bool = False) -> LoadResult:
    """sys_delete_module: refuse while used or not live; run exit; GOING; free."""
    result = LoadResult(name=name)
    if not name or len(name.encode()) >= MODULE_NAME_LEN:
        result.ret, result.reason = -ENOENT, f"module name '{name}' is empty or too long"
        return result
    mod = m.find_module(name)
    if mod is None:
        result.ret, result.reason = -ENOENT, f"module {name} is not loaded"
        return result
    if mod.source_list:
        result.ret, result.reason = -EWOULDBLOCK, f"{name} is in use by: {' '.join(mod.source_list)}"
        return result
    if mod.state != MODULE_STATE_LIVE:
        result.ret, result.reason = -EBUSY, f"{name} is not live"
        return result
    forced = False
    if mod.init_fn and not mod.exit_fn:
        forced = bool(flags & O_TRUNC)
        if forced:
            m.add_taint(TAINT_FORCED_RMMOD, unreliable=True)
        else:
            result.ret, result.reason = -EBUSY, f"{name} has no exit function (permanent)"
            return result
    if mod.refcnt - MODULE_REF_BASE != 0:
        if flags & O_TRUNC:
            m.add_taint(TAINT_FORCED_RMMOD, unreliable=True)
        else:
            result.ret, result.reason = -EWOULDBLOCK, f"{name} is in use (refcount {mod.module_refcount()})"
            return result
    mod.refcnt -= MODULE_REF_BASE
    mod.state = MODULE_STATE_GOING
    if mod.exit_fn:
        try:
            m.run_module_code(mod, mod.exit_fn, "exit", result, trace)
        except KmodlabError as e:
            emulation_failure(m, mod, e, result)   # exit returns void: the unload goes on
    m.notify("GOING", mod)
    m.last_unloaded = f"{mod.name}"
    warn_left_registered(m, mod, result)
    free_module(m, mod)
    return result


def warn_left_registered(m, mod: Module, result: LoadResult) -> None:
    """After exit: registrations that still point into the module (a filesystem, a misc
    device, a driver its exit did not unregister).  Linux says nothing and keeps the dangling
    pointer until its next use oopses; the sandbox says so in the log and drops them with the
    module's memory, so that the machine stays usable."""
    from ..registrations import left_registered
    regions = [(lo, lo + size) for _t, lo, size, _r in mod.mem]
    left = left_registered(m.emu_state, regions)
    for what in left:
        m.printk(KERN_WARNING, f"kmodlab: {mod.name}: exit left {what} registered "
                               "(Linux keeps a pointer into the freed module)")
    if left:
        from ...machine import _purge_refs
        for lo, hi in regions:
            m.emu_state = _purge_refs(m.emu_state, lo, hi)
    result.left_registered = left
