"""Hand-made malformed modules, and one driver that loads them into any kernel.

Each case is built in Python from a real small module of the project (``examples/hello.ko``,
and ``examples/kmodlab_provider.ko`` for duplicate exports): truncated at every header boundary,
the ELF header's class, byte order, machine and type wrong, offsets and sizes out of the file,
overlapping sections, bad name, string and symbol indexes, relocations outside their section,
against a non-allocated section or a section index out of range, this_module / .modinfo / name
missing, a duplicate export, a W+X section, a 4 GiB section.

:func:`drive` makes the calls on a kernel object (``LiveKernel`` in the QEMU guest, where
``python3 -S -m kmodlab.oracle.malformed OUT`` records the real answers; ``SandboxKernel`` in the
replay) and returns one record per call: errno and the kernel log lines.  The last cases may
oops the real kernel (Linux reads the module's unrelocated pointers): in the guest each runs in
a child process, and the record says how the child ended (killed by the oops) and the log.

Standard library only (the guest runs ``python3 -S``): the builders use kmodlab.elf's layouts.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .. import elf

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
SHDR_FIELD = {"name": (0, "I"), "type": (4, "I"), "flags": (8, "Q"), "addr": (16, "Q"),
              "offset": (24, "Q"), "size": (32, "Q"), "link": (40, "I"), "info": (44, "I"),
              "addralign": (48, "Q"), "entsize": (56, "Q")}
EHDR_FIELD = {"class": (4, "B"), "data": (5, "B"), "type": (16, "H"), "machine": (18, "H"),
              "shoff": (40, "Q"), "shentsize": (58, "H"), "shnum": (60, "H"),
              "shstrndx": (62, "H")}


class Image:
    """A module image being edited: section lookup by name, header and symbol setters."""

    def __init__(self, data: bytes):
        self.b = bytearray(data)
        self.hdr = elf.parse_header(self.b)
        self.secs = elf.parse_sections(self.b, self.hdr.shoff, self.hdr.shnum)
        elf.name_sections(bytes(self.b), self.secs, self.hdr.shstrndx)

    def ndx(self, name: str) -> int:
        return next(i for i, s in enumerate(self.secs) if s.name == name)

    def set_ehdr(self, fieldname: str, value: int) -> "Image":
        off, fmt = EHDR_FIELD[fieldname]
        struct.pack_into("<" + fmt, self.b, off, value)
        return self

    def set_shdr(self, sec: "str | int", fieldname: str, value: int) -> "Image":
        i = self.ndx(sec) if isinstance(sec, str) else sec
        off, fmt = SHDR_FIELD[fieldname]
        struct.pack_into("<" + fmt, self.b, self.hdr.shoff + 64 * i + off, value)
        return self

    def shdr(self, sec: str) -> elf.Section:
        return self.secs[self.ndx(sec)]

    def symbol_index(self, name: str) -> int:
        st = self.shdr(".symtab")
        strtab = self.secs[st.link]
        for k in range(st.size // 24):
            st_name, = struct.unpack_from("<I", self.b, st.offset + 24 * k)
            if elf.cstring(bytes(self.b), strtab.offset + st_name) == name:
                return k
        raise KeyError(name)

    def set_sym(self, k: int, fieldname: str, value: int) -> "Image":
        off, fmt = {"name": (0, "I"), "info": (4, "B"), "shndx": (6, "H"),
                    "value": (8, "Q")}[fieldname]
        struct.pack_into("<" + fmt, self.b, self.shdr(".symtab").offset + 24 * k + off, value)
        return self

    def set_rela(self, relsec: str, k: int, fieldname: str, value: int) -> "Image":
        off, fmt = {"offset": (0, "Q"), "info": (8, "Q"), "addend": (16, "q")}[fieldname]
        struct.pack_into("<" + fmt, self.b, self.shdr(relsec).offset + 24 * k + off, value)
        return self

    def replace(self, old: bytes, new: bytes, count: int = -1) -> "Image":
        assert len(old) == len(new) and old in self.b, old
        self.b[:] = bytes(self.b).replace(old, new, count)
        return self

    def bytes(self) -> bytes:
        return bytes(self.b)


@dataclass
class Case:
    """One call: load ``image`` with ``args`` (and remove it again if it loads, unless
    ``keep``), or remove module ``delete``.  ``isolate``: may oops the real kernel."""
    id: str
    what: str
    image: bytes = b""
    args: str = ""
    keep: bool = False
    delete: str = ""
    isolate: bool = False
    sha256: str = field(default="", init=False)

    def __post_init__(self):
        self.sha256 = hashlib.sha256(self.image).hexdigest() if self.image else ""


def cases(examples: Path = EXAMPLES) -> list[Case]:
    """The table, in the order it is run (one boot; once-per-boot messages and taints carry
    over from case to case, so the replay must keep the order)."""
    hello = (examples / "hello.ko").read_bytes()
    prov = (examples / "kmodlab_provider.ko").read_bytes()
    H = lambda: Image(hello)                                          # noqa: E731
    h = H()
    out: list[Case] = [Case("hello", "hello.ko as built (the base of every case)", hello)]

    # truncated at every header boundary: the ELF header, then each section header
    for n in (0, 1, 4, 16, 63, 64):
        out.append(Case(f"trunc-{n}", f"the first {n} bytes", hello[:n]))
    for i in range(0, h.hdr.shnum + 1, 4):
        n = h.hdr.shoff + 64 * i
        out.append(Case(f"trunc-shdr-{i}", f"cut after {i} section headers ({n} bytes)", hello[:n]))
    out.append(Case("trunc-last-byte", "the last byte missing", hello[:-1]))

    # the ELF header
    out += [
        Case("magic", "e_ident magic wrong", H().replace(b"\x7fELF", b"\x7fELG", 1).bytes()),
        Case("class32", "EI_CLASS = ELFCLASS32 (not checked)", H().set_ehdr("class", 1).bytes()),
        Case("bigendian", "EI_DATA = ELFDATA2MSB (not checked)", H().set_ehdr("data", 2).bytes()),
        Case("type-exec", "e_type = ET_EXEC", H().set_ehdr("type", 2).bytes()),
        Case("type-dyn", "e_type = ET_DYN", H().set_ehdr("type", 3).bytes()),
        Case("machine-386", "e_machine = EM_386", H().set_ehdr("machine", 3).bytes()),
        Case("machine-aarch64", "e_machine = EM_AARCH64", H().set_ehdr("machine", 183).bytes()),
        Case("shentsize", "e_shentsize = 40", H().set_ehdr("shentsize", 40).bytes()),
        Case("shoff-past-end", "e_shoff past the end", H().set_ehdr("shoff", len(hello)).bytes()),
        Case("shnum-too-big", "e_shnum one too many", H().set_ehdr("shnum", h.hdr.shnum + 1).bytes()),
        Case("shnum-zero", "e_shnum = 0", H().set_ehdr("shnum", 0).bytes()),
        Case("shstrndx-zero", "e_shstrndx = 0", H().set_ehdr("shstrndx", 0).bytes()),
        Case("shstrndx-shnum", "e_shstrndx = e_shnum", H().set_ehdr("shstrndx", h.hdr.shnum).bytes()),
    ]
    # sections: offsets and sizes out of the file, the name table, section 0
    sh = ".shstrtab"
    out += [
        Case("shstrtab-offset", "the section name table's offset past the end",
             H().set_shdr(sh, "offset", len(hello)).bytes()),
        Case("shstrtab-empty", "the section name table empty", H().set_shdr(sh, "size", 0).bytes()),
        Case("shstrtab-unterminated", "the section name table's last byte not NUL",
             H().set_shdr(sh, "size", h.shdr(sh).size - 1).bytes()),
        Case("sec0-type", "section 0 of type PROGBITS", H().set_shdr(0, "type", 1).bytes()),
        Case("sec0-size", "section 0 with a size", H().set_shdr(0, "size", 8).bytes()),
        Case("text-offset", ".init.text's offset past the end",
             H().set_shdr(".init.text", "offset", len(hello) + 16).bytes()),
        Case("text-size", ".init.text's size past the end",
             H().set_shdr(".init.text", "size", len(hello)).bytes()),
        Case("offset-overflow", ".rodata's offset + size wraps around 2^64",
             H().set_shdr(".rodata", "offset", 2**64 - 16).bytes()),
        Case("nonalloc-offset", ".comment (not allocated) past the end",
             H().set_shdr(".comment", "offset", len(hello) + 4096).bytes()),
        Case("nobits-offset", ".bss (NOBITS) with an offset past the end (not checked)",
             H().set_shdr(".bss", "offset", len(hello) + 4096).bytes()),
        Case("bss-4g", ".bss claims 4 GiB", H().set_shdr(".bss", "size", 4 << 30).bytes()),
        Case("alloc-name", "an allocated section's name offset past the name table",
             H().set_shdr(".rodata", "name", h.shdr(sh).size + 5).bytes()),
        Case("nonalloc-name", "a non-allocated section's name offset past the name table",
             H().set_shdr(".comment", "name", h.shdr(sh).size + 5).bytes()),
        Case("overlap", ".data overlapping .rodata (the same file bytes)",
             H().set_shdr(".data", "offset", h.shdr(".rodata").offset).bytes()),
        Case("symtab-link-0", ".symtab's sh_link = 0", H().set_shdr(".symtab", "link", 0).bytes()),
        Case("symtab-link-big", ".symtab's sh_link = e_shnum",
             H().set_shdr(".symtab", "link", h.hdr.shnum).bytes()),
        Case("no-symtab", "the symbol table turned into PROGBITS",
             H().set_shdr(".symtab", "type", elf.SHT_PROGBITS).bytes()),
        Case("wx", ".data made executable (W+X)",
             H().set_shdr(".data", "flags", elf.SHF_ALLOC | elf.SHF_WRITE | elf.SHF_EXECINSTR).bytes()),
    ]
    # symbols and strings
    k = h.symbol_index("hello_init")
    u = h.symbol_index("_printk")
    out += [
        Case("sym-shndx-reserved", "hello_init's st_shndx = 0xff00 (reserved)",
             H().set_sym(k, "shndx", 0xFF00).bytes()),
        Case("sym-shndx-big", "hello_init's st_shndx = e_shnum + 3",
             H().set_sym(k, "shndx", h.hdr.shnum + 3).bytes()),
        Case("sym-common", "hello_init made SHN_COMMON", H().set_sym(k, "shndx", elf.SHN_COMMON).bytes()),
        Case("undef-name-past-strtab", "_printk's name offset just past the string table",
             H().set_sym(u, "name", h.shdr(".strtab").size).bytes()),
        Case("undef-weak", "_printk made weak", H().set_sym(u, "info", (elf.STB_WEAK << 4) | 0).bytes()),
    ]
    # relocations
    r = ".rela.init.text"
    out += [
        Case("rela-unknown-type", "a relocation of type 9 (GOTPCREL)",
             H().set_rela(r, 0, "info", (h_info(h, r, 0) & ~0xFFFFFFFF) | 9).bytes()),
        Case("rela-nonzero-target", "a relocation whose target bytes are not zero (offset 0 of .init.text)",
             H().set_rela(r, 0, "offset", 0).bytes()),
        Case("rela-this-module-nonalloc", ".rela.gnu.linkonce.this_module aimed at .comment "
             "(not allocated: skipped, so no init)",
             H().set_shdr(".rela.gnu.linkonce.this_module", "info", h.ndx(".comment")).bytes()),
        Case("rela-this-module-info-range", ".rela.gnu.linkonce.this_module's sh_info out of "
             "range (skipped)", H().set_shdr(".rela.gnu.linkonce.this_module", "info", 0xFFFF).bytes()),
        Case("rela-outside-small", "a .rela.rodata entry 0x40 bytes past the end of .rodata",
             H().set_rela(".rela.rodata", 0, "offset", h.shdr(".rodata").size + 0x40).bytes()),
    ]
    # this_module, .modinfo, name, vermagic, parameters
    mod = ".gnu.linkonce.this_module"
    out += [
        Case("no-this-module", "this_module renamed", H().replace(b"gnu.linkonce.this_module\0",
                                                                  b"gnu.linkonce.this_modulx\0").bytes()),
        Case("this-module-nonalloc", "this_module not allocated",
             H().set_shdr(mod, "flags", elf.SHF_WRITE).bytes()),
        Case("no-modinfo", ".modinfo renamed (no vermagic: forced load)",
             H().replace(b".modinfo\0", b".modinfx\0").bytes()),
        Case("no-modinfo-name", "modinfo's name= tag renamed (the name from struct module)",
             H().replace(b"name=hello\0", b"nam_=hello\0").bytes()),
        Case("vermagic", "vermagic of another kernel",
             H().replace(b"vermagic=6.1.0-56-amd64 SMP", b"vermagic=6.1.0-56-amd64 UMP").bytes()),
        Case("param-bad", "hello with count=abc", hello, "count=abc"),
        Case("param-unknown", "hello with nosuch=1 who=x", hello, "nosuch=1 who=x"),
    ]
    # duplicate exports: the provider, then a copy under another name
    p2 = rename(prov, b"kmodlab_provideR")
    out += [
        Case("provider", "kmodlab_provider.ko (kept)", prov, keep=True),
        Case("duplicate-exports", "a copy named kmodlab_provideR exporting the same symbols", p2),
        Case("provider-rm", "remove kmodlab_provider", delete="kmodlab_provider"),
    ]
    # last: cases where Linux reads unrelocated module pointers (may oops the kernel)
    out += [
        Case("param-rela-info-range", ".rela__param's sh_info out of range (skipped: __param "
             "keeps NULL names)", Image(rename(hello, b"hellp")).set_shdr(
                 ".rela__param", "info", 0xFFFF).bytes(), isolate=True),
        Case("rela-offset-huge", "a .rela.rodata entry at offset 2^40 (written outside the module)",
             Image(rename(hello, b"hellq")).set_rela(".rela.rodata", 0, "offset", 1 << 40).bytes(),
             isolate=True),
    ]
    return out


def h_info(img: Image, relsec: str, k: int) -> int:
    return struct.unpack_from("<Q", img.b, img.shdr(relsec).offset + 24 * k + 8)[0]


def rename(image: bytes, new: bytes) -> bytes:
    """The module under another name of the same length: struct module's name and modinfo's
    name= (its symbols keep theirs).  A module the real kernel leaves behind after an oops
    then does not block the next case."""
    img = Image(image)
    old = module_name(image).encode()
    assert len(new) == len(old)
    img.replace(b"name=" + old + b"\0", b"name=" + new + b"\0")
    at = img.shdr(".gnu.linkonce.this_module").offset + 24
    img.b[at:at + len(new)] = new
    return img.bytes()


# ---------------------------------------------------------------------------------------------

def _record(c: Case, res) -> dict:
    return {"case": c.id, "what": c.what, "sha256": c.sha256, "args": c.args,
            "ret": res.ret, "errno": res.errno, "log": list(res.log)}


def drive(kernel, table: list[Case], isolate=None) -> list[dict]:
    """Run ``table`` on ``kernel``; a case that loads is removed again (unless ``keep``) and
    the removal recorded with it.  ``isolate(case)`` (the guest) runs an isolated case in a
    child process and returns its record."""
    out = []
    for c in table:
        if c.delete:
            rec = _record(c, kernel.delete_module(c.delete, os.O_NONBLOCK))
        elif c.isolate and isolate is not None:
            rec = isolate(c)
        else:
            rec = _record(c, kernel.init_module(c.image, c.args))
        out.append(rec)
        if c.image and rec["ret"] == 0 and not c.keep:
            name = module_name(c.image)
            d = kernel.delete_module(name, os.O_NONBLOCK)
            rec["delete"] = {"name": name, "ret": d.ret, "errno": d.errno, "log": list(d.log)}
    return out


def module_name(image: bytes) -> str:
    img = Image(image)
    sec = img.shdr(".gnu.linkonce.this_module") if any(
        s.name == ".gnu.linkonce.this_module" for s in img.secs) else None
    if sec is None:
        return ""
    return elf.cstring(image, sec.offset + 24, sec.offset + 24 + 56)


def _isolated(case: Case) -> dict:
    """Guest: the load in a child process; how it ended, and the kernel log of the call."""
    from ..live import LiveKernel, _KmsgWatch
    import signal
    import time
    watch = _KmsgWatch()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                    # child
        os.close(r)
        res = LiveKernel().init_module(case.image, case.args)
        os.write(w, json.dumps({"ret": res.ret, "errno": res.errno}).encode())
        os._exit(0)
    os.close(w)
    deadline = time.monotonic() + 20
    status = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    data = os.read(r, 4096)
    os.close(r)
    rec = {"case": case.id, "what": case.what, "sha256": case.sha256, "args": case.args}
    if data:
        rec.update(json.loads(data))
        rec["ended"] = "returned"
    else:
        rec.update({"ret": None, "errno": None,
                    "ended": f"killed by signal {os.WTERMSIG(status)}" if status is not None
                    and os.WIFSIGNALED(status) else "hung (killed after 20 s)"})
    rec["log"] = [t for _p, _s, _t, t in watch.new_records()]
    with open("/proc/modules") as f:
        rec["proc_modules"] = [ln.split()[0] + " " + ln.split()[4] for ln in f]
    return rec


def record(out: Path, examples: Path = EXAMPLES) -> dict:
    """Guest: run the table on the real kernel; write malformed.json into ``out``."""
    from ..live import LiveKernel
    k = LiveKernel()
    tainted = lambda: int(open("/proc/sys/kernel/tainted").read())   # noqa: E731
    rec = {"release": os.uname().release, "tainted_at_start": tainted()}
    rec["cases"] = drive(k, cases(examples), isolate=_isolated)
    rec["tainted_at_end"] = tainted()
    (out / "malformed.json").write_text(json.dumps(rec, indent=1))
    return rec


GUEST_SCRIPT = '"$PYTHON" -S -m kmodlab.oracle.malformed "$OUT"\n'


def run_oracle(release: str | None = None, timeout: float = 300) -> tuple[dict, object]:
    """Boot the real kernel once and record the table: (recording, GuestResult)."""
    from . import qemu
    r = qemu.run_in_guest(GUEST_SCRIPT, timeout=timeout, release=release).check()
    return r.json("malformed.json"), r


def recording_name(release: str | None = None) -> str:
    from . import qemu
    return f"malformed_cases_{(release or qemu.DEFAULT_RELEASE).removesuffix('-amd64')}.json"


def replay(rec: dict, profile: str | None = None) -> list[tuple[dict, dict]]:
    """The recorded table through a fresh sandbox machine, in order: [(real, sandbox)]."""
    from ..machine import Machine
    from ..profile import load_profile
    from ..sandbox import SandboxKernel
    prof = load_profile(profile)
    k = SandboxKernel(machine=Machine.boot(prof.name, seed=1, profile=prof))
    table = cases()
    by_id = {c.id: c for c in table}
    if [c["case"] for c in rec["cases"]] != [c.id for c in table] or any(
            by_id[c["case"]].sha256 != c["sha256"] for c in rec["cases"]):
        raise ValueError("the recording's cases are not the ones malformed.cases builds "
                         "(record again)")
    return list(zip(rec["cases"], drive(k, table)))


if __name__ == "__main__":
    record(Path(sys.argv[1]))
