"""Would this module load?  load_module up to parameters and sysfs, without running init.

Each module is loaded into a fresh sandbox machine of the chosen kernel profile, with the
exports of the other modules of its tree available as they would be once those are loaded
(their names, CRCs, GPL-ness and namespaces, from the profile's Module.symvers and from the
files being checked), so dependencies resolve and modversions are compared for real.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from . import elf
from .errors import strerror
from .kernel.mm import MODULES_END, PAGE_SIZE

TREE_EXPORT_ADDR = MODULES_END - PAGE_SIZE      # where "another module's" symbols pretend to be


@dataclass
class CheckResult:
    file: str
    name: str = ""
    ok: bool = False
    errno: int = 0
    error: str = ""
    message: str = ""
    step: str = ""
    coresize: int = 0
    initsize: int = 0
    log: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"file": self.file, "name": self.name, "ok": self.ok, "errno": self.errno,
                "error": self.error, "message": self.message, "step": self.step,
                "coresize": self.coresize, "initsize": self.initsize, "log": self.log}


@dataclass(frozen=True)
class TreeExport:
    crc: int | None
    gpl: bool
    namespace: str
    owner: str


def file_exports(data: bytes) -> dict[str, TreeExport]:
    """A module file's exports, read from its symtab (__ksymtab_<name> symbols) and __kcrctab."""
    try:
        hdr = elf.parse_header(data)
        secs = elf.parse_sections(data, hdr.shoff, hdr.shnum)
        elf.name_sections(data, secs, hdr.shstrndx)
        symsec = next(s for s in secs if s.type == elf.SHT_SYMTAB)
        strtab = data[secs[symsec.link].offset:secs[symsec.link].offset + secs[symsec.link].size]
    except Exception:
        return {}
    out: dict[str, TreeExport] = {}
    for gpl, tab, crctab in ((False, "__ksymtab", "__kcrctab"), (True, "__ksymtab_gpl", "__kcrctab_gpl")):
        ti, ci = elf.find_section(secs, tab), elf.find_section(secs, crctab)
        if not ti:
            continue
        entries = []
        for st_name, _info, _o, shndx, value, _size in elf.SYM.iter_unpack(
                data[symsec.offset:symsec.offset + symsec.size - symsec.size % elf.SYM.size]):
            if shndx == ti:
                nm = elf.cstring(strtab, st_name)
                if nm.startswith("__ksymtab_"):
                    entries.append((value, nm[len("__ksymtab_"):]))
        crcs = []
        if ci:
            c = secs[ci]
            crcs = [int.from_bytes(data[c.offset + 4 * k:c.offset + 4 * k + 4], "little")
                    for k in range(c.size // 4)]
        for k, (_v, nm) in enumerate(sorted(entries)):
            out[nm] = TreeExport(crcs[k] if k < len(crcs) else None, gpl, "", "")
    return out


class Checker:
    def __init__(self, profile=None, files: list[str] | None = None):
        from .profile import load_profile
        self.profile = profile or load_profile()
        self.tree: dict[str, TreeExport] = {}
        for name, e in self.profile.module_exports.items():
            self.tree[name] = TreeExport(e.crc, e.gpl, e.namespace, e.owner)
        self.files = list(files or [])

    def add_file_exports(self, path: str, data: bytes) -> None:
        for name, e in file_exports(data).items():
            self.tree.setdefault(name, TreeExport(e.crc, e.gpl, e.namespace, os.path.basename(path)))

    def _extra(self, name: str, gplok: bool):
        from .kernel.module.main import FoundSymbol
        e = self.tree.get(name)
        if e is None or (e.gpl and not gplok):
            return None
        return FoundSymbol(TREE_EXPORT_ADDR, e.crc, e.gpl, e.namespace, None, name)

    def check(self, path: str, data: bytes | None = None) -> CheckResult:
        from .kernel.module import main
        from .lib.file import ModuleFileError, read_module
        from .machine import Machine
        from .tools.log import mod_strerror
        res = CheckResult(file=path)
        if data is None:
            try:
                data = read_module(path).data
            except ModuleFileError as e:
                res.errno, res.error, res.message = e.errno, strerror(e.errno), str(e)
                return res
        m = Machine.boot(self.profile.name, seed=0)
        m.profile = self.profile
        start = len(m.log)
        r = main.load_module(m, data, "", 0, run_init=False, extra=self._extra)
        res.name, res.step = r.name, r.step
        res.coresize, res.initsize = r.coresize, r.initsize
        res.log = [x.text for x in m.log[start:]]
        res.ok = r.ret >= 0
        if not res.ok:
            res.errno = -r.ret
            res.error = mod_strerror(res.errno)
            res.message = r.reason
        return res
