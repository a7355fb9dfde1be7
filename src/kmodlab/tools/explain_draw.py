"""kmodlab explain: a picture of what load_module did with one module (SVG, or an HTML page).

The data are the load's own records (load_module's step records in kernel/module/main.py: each
section's placement, the allocations, the kallsyms copy, the resolved symbols with their owners,
the relocations applied per target section, the module's states) from one real load on a
scratch copy of the sandbox machine: nothing is committed, the machine stays as it was.  The
file column is the module file's own section table, as readelf shows it.  Drawing only here,
with drawsvg (the ``explain`` extra); the words are tools/explain.py's, as insmod --explain.
"""
from __future__ import annotations

import html
import os
import sys
from dataclasses import dataclass, field

from ..errors import UsageError

USAGE = """Usage:
\tkmodlab explain [options] FILE [params...]
Draws what the sandbox kernel's load_module does with FILE: the ELF sections, where each goes
(core/init on 6.1, the module_memory types on 6.12) with sizes and alignment, the symbol table
appended, the relocations applied per section, where each symbol came from, the states passed.
The load runs on a copy of the sandbox machine (or a fresh one): nothing is committed.
Options:
\t--svg OUT.svg    write the picture
\t--html OUT.html  write a page: the picture, the step narrative, the kernel's log lines
\t--fresh          load on a freshly booted machine instead of a copy of the current one
\t-f, --force      ignore vermagic and symbol versions (MODULE_INIT_IGNORE_*)
\t--kernel PROFILE a kernel profile (a fresh machine when the current one runs another)
Without --svg/--html the step narrative is printed (as insmod --explain prints it).
"""

RELOC_SHORT = {1: "64", 2: "PC32", 4: "PLT32", 10: "32", 11: "32S", 24: "PC64", 0: "NONE"}

# One colour per destination; the init kinds lighter (that memory is freed after init).
KIND_COLOURS = {
    "text": "#4e79a7", "rodata": "#59a14f", "ro_after_init": "#9c6ade", "data": "#f28e2b",
    "init_text": "#a0c4e8", "init_rodata": "#a6d99a", "init_data": "#ffc58a",
    "kallsyms": "#e6b800", "percpu": "#e15759", "none": "#c9c4c0",
}
KIND_TEXT = {
    "text": "text (RX)", "rodata": "rodata (RO)", "ro_after_init": "ro_after_init",
    "data": "data (RW)", "init_text": "init text", "init_rodata": "init rodata",
    "init_data": "init data", "kallsyms": "symbol tables", "percpu": "per-CPU area",
    "none": "not copied",
}
MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"
SANS = "DejaVu Sans, Helvetica, Arial, sans-serif"
CH = 6.62                      # width of one 11px monospace character
# table columns: (x offset, text-anchor)
FILE_COLS = [(30, "end"), (40, "start"), (218, "start"), (326, "end"), (370, "end"),
             (382, "start"), (426, "start")]
MEM_COLS = [(8, "start"), (66, "start"), (300, "end"), (344, "end"), (356, "start")]
# text on white in the init kinds' colours would be too pale
INK = {"init_text": "#3f7cbf", "init_rodata": "#3f8f34", "init_data": "#d27a1f",
       "kallsyms": "#a88700"}
ROW = 17                       # a table row


def _drawsvg():
    try:
        import drawsvg
    except ImportError:
        raise UsageError("the picture needs the drawing library drawsvg: "
                         "pip install 'kmodlab[explain]' (or pip install drawsvg)") from None
    return drawsvg


# ---------------------------------------------------------------------------------------------
# the load

@dataclass
class LoadRecord:
    """One load_module as the sandbox kernel performed it, with what the picture needs."""
    file: str
    file_size: int
    args: str
    profile: str
    release: str
    mod_mem: bool                      # 6.4+: module_memory types (else core/init)
    where: str                         # which machine it ran on
    ok: bool
    errno: int
    step: str                          # the failing step, if any
    reason: str
    name: str
    steps: list = field(default_factory=list)      # load_module's (step, record) list
    states: list = field(default_factory=list)
    log: list = field(default_factory=list)
    file_sections: list = field(default_factory=list)   # the file's section headers
    file_note: str = ""

    def record(self, step: str) -> dict | None:
        return next((d for s, d in self.steps if s == step), None)

    def syscall_result(self):
        """The load as a SyscallResult, for tools/explain.py's narrative."""
        from ..syscalls import SyscallResult
        return SyscallResult(ret=0 if self.ok else -1, errno=self.errno, log=self.log,
                             reason=self.reason,
                             details={"name": self.name, "step": self.step, "steps": self.steps})


def _scratch_machine(fresh: bool):
    """The machine to load on, never committed: a copy of the current sandbox machine (read
    under its lock), or a fresh boot — always when asked, when there is none yet, or when the
    requested --kernel is not the one it runs."""
    from ..machine import Machine, MachineStore
    from ..profile import load_profile
    want = os.environ.get("KMODLAB_PROFILE") or None
    prof = load_profile(want)
    store = MachineStore()
    if not fresh and store.exists():
        store.lock()
        try:
            m = store.load()
        except (OSError, ValueError, KeyError) as e:
            raise UsageError(f"cannot read the sandbox machine in {store.path}: {e}; "
                             "use --fresh, or 'kmodlab machine reset'") from None
        finally:
            store.unlock()
        if want is None or prof.name == m.profile_name:
            m.profile = load_profile(m.profile_name)
            return m, f"a copy of the sandbox machine {store.path} (not committed)"
        return Machine.boot(prof.name, profile=prof), (
            f"a freshly booted {prof.name} machine (the sandbox machine runs {m.profile_name})")
    return Machine.boot(prof.name, profile=prof), f"a freshly booted {prof.name} machine"


def _file_sections(image: bytes) -> tuple[list[dict], str]:
    """The file's section headers (name, type, flags, size, alignment, RELA target), as the
    file says them — before load_module rewrites any flag."""
    from .. import elf
    try:
        hdr = elf.parse_header(image)
        if not elf.range_valid(len(image), hdr.shoff, hdr.shnum * elf.SHDR.size) or \
                hdr.shstrndx >= hdr.shnum:
            return [], "the section header table lies outside the file"
        secs = elf.parse_sections(image, hdr.shoff, hdr.shnum)
        elf.name_sections(image, secs, hdr.shstrndx)
    except Exception as e:                      # a broken file: the kernel's checks say why
        return [], f"the section headers cannot be read ({e})"
    out = []
    for i, s in enumerate(secs):
        if i == 0:
            continue
        out.append({"index": i, "name": s.name or f"[{i}]", "type": s.type, "flags": s.flags,
                    "size": s.size, "align": s.addralign, "info": s.info,
                    "rela_target": secs[s.info].name if s.type == elf.SHT_RELA and
                    0 < s.info < len(secs) else None,
                    "entries": s.size // elf.RELA.size if s.type == elf.SHT_RELA else 0})
    return out, ""


def record_load(path: str, args: str = "", flags: int = 0, fresh: bool = False) -> LoadRecord:
    """Load ``path`` on a scratch machine through load_module and keep its records."""
    from ..kernel.module import main as kmain
    from ..lib.file import ModuleFileError, read_module
    try:
        mf = read_module(path)
    except ModuleFileError as e:
        raise UsageError(f"could not read module {path}: {e}") from None
    m, where = _scratch_machine(fresh)
    start = len(m.log)
    res = kmain.load_module(m, mf.data, args, flags)
    sections, note = _file_sections(mf.data)
    return LoadRecord(
        file=path, file_size=len(mf.data), args=args, profile=m.profile.name,
        release=m.profile.release, mod_mem=bool(m.rules.mod_mem), where=where, ok=res.ret >= 0,
        errno=-res.ret if res.ret < 0 else 0, step=res.step, reason=res.reason, name=res.name,
        steps=list(res.steps), states=list(res.states),
        log=[r.text for r in m.log[start:]], file_sections=sections, file_note=note)


# ---------------------------------------------------------------------------------------------
# from the records to boxes and rows

def _get(o, k, default=0):
    return o.get(k, default) if isinstance(o, dict) else getattr(o, k, default)


@dataclass
class Row:
    """One line in an allocation: a section (or a kallsyms part) at an offset."""
    name: str
    offset: int
    size: int
    align: int
    kind: str
    nobits: bool = False
    note: str = ""
    relocs: dict = field(default_factory=dict)
    index: int = 0                     # ELF section index (0: not a section)
    y: float = 0


@dataclass
class Alloc:
    name: str                          # "core", "init", or a module_memory type
    base: int
    size: int
    parts: list                        # (kind, start, end) bands: core's text/rodata/…
    rows: list


def _kind_61(alloc: str, off: int, size: int, lay) -> str:
    """Which part of core/init an offset falls in (the page-aligned boundaries the layout
    recorded: text_size, ro_size, ro_after_init_size)."""
    init = alloc == "init"
    t, ro, roai = _get(lay, "text_size"), _get(lay, "ro_size"), _get(lay, "ro_after_init_size")
    if off < t or (size == 0 and off == 0 and t):
        return "init_text" if init else "text"
    if off < ro:
        return "init_rodata" if init else "rodata"
    if off < roai and not init:
        return "ro_after_init"
    return "init_data" if init else "data"


def allocations(rec: LoadRecord) -> list[Alloc]:
    d = rec.record("layout_and_allocate")
    if d is None:
        return []
    by_section = (rec.record("apply_relocations") or {}).get("by_section", {})
    ks = d.get("kallsyms") or {}
    if rec.mod_mem:
        allocs = {t: Alloc(t, base, size, [(t, 0, size)], []) for t, base, size in d["mem"]}
    else:
        allocs = {}
        for name in ("core", "init"):
            lay = d[name]
            size = _get(lay, "size")
            if not size:
                continue
            bounds = [("text", 0, _get(lay, "text_size")),
                      ("rodata", _get(lay, "text_size"), _get(lay, "ro_size"))]
            if name == "core":
                bounds.append(("ro_after_init", _get(lay, "ro_size"), _get(lay, "ro_after_init_size")))
                bounds.append(("data", _get(lay, "ro_after_init_size"), size))
            else:
                bounds.append(("data", _get(lay, "ro_size"), size))
            pre = "init_" if name == "init" else ""
            allocs[name] = Alloc(name, _get(lay, "base"), size,
                                 [(pre + k, a, b) for k, a, b in bounds if b > a], [])
    for p in d.get("placement", []):
        a = allocs.get(p["alloc"])
        if a is None:
            continue
        kind = p["alloc"] if rec.mod_mem else _kind_61(p["alloc"], p["offset"], p["size"],
                                                       d[p["alloc"]])
        note = ""
        if p["name"] in (".symtab", ".strtab"):
            kind, note = "kallsyms", "whole table, appended (layout_symtab)"
        a.rows.append(Row(p["name"], p["offset"], p["size"], p["align"], kind, p["nobits"], note,
                          dict(by_section.get(p["name"], {})), p["index"]))
    if ks:
        core, init = allocs.get(ks["core_alloc"]), allocs.get(ks["init_alloc"])
        if core is not None:
            core.rows.append(Row("[kallsyms: symbols]", ks["symoffs"], ks["stroffs"] - ks["symoffs"],
                                 8, "kallsyms", note=f"core copy: {ks['ndst']} of {ks['nsyms']} symbols"))
            core.rows.append(Row("[kallsyms: names]", ks["stroffs"], ks["strtab_size"], 1,
                                 "kallsyms", note="their names"))
            core.rows.append(Row("[kallsyms: types]", ks["typeoffs"], ks["ndst"], 1, "kallsyms",
                                 note="one type letter each"))
        if init is not None:
            init.rows.append(Row("[struct mod_kallsyms]", ks["mod_kallsyms_init_off"], 32, 8,
                                 "kallsyms", note="init's kallsyms header"))
            init.rows.append(Row("[kallsyms: types]", ks["init_typeoffs"], ks["nsyms"], 1,
                                 "kallsyms", note="a type letter per symbol"))
    for a in allocs.values():
        a.rows.sort(key=lambda r: (r.offset, r.size))
    return list(allocs.values())


def _cut(name: str, n: int = 26) -> str:
    return name if len(name) <= n else name[:n - 1] + "…"


def _hx(n: int) -> str:
    return f"{n:#x}"


def _bytes(n: int) -> str:
    return f"{n:,} B"


def _flags(f: int) -> str:
    from .. import elf
    return ("A" if f & elf.SHF_ALLOC else "-") + ("W" if f & elf.SHF_WRITE else "-") + \
        ("X" if f & elf.SHF_EXECINSTR else "-")


def _relocs_text(counts: dict) -> str:
    return "  ".join(f"{RELOC_SHORT.get(int(t), t)}×{n}"
                     for t, n in sorted(counts.items(), key=lambda x: int(x[0])))


# ---------------------------------------------------------------------------------------------
# drawing

class Picture:
    """The SVG, built top to bottom: header, states and steps, the file and the memory, the
    symbols.  Coordinates are computed here; drawsvg writes the SVG."""
    W = 1400

    def __init__(self, rec: LoadRecord):
        self.dw = _drawsvg()
        self.rec = rec
        self.items: list = []
        self.h = 0

    # helpers ---------------------------------------------------------------------------------
    def add(self, el):
        self.items.append(el)
        return el

    def text(self, s, x, y, size=11, mono=False, **kw):
        kw.setdefault("fill", "#222")
        return self.add(self.dw.Text(s, size, x, y, font_family=MONO if mono else SANS, **kw))

    def rect(self, x, y, w, h, **kw):
        return self.add(self.dw.Rectangle(x, y, w, h, **kw))

    def cells(self, parent, x: float, y: float, cols, values, size=11, **kw) -> None:
        """One table row: each value at its column (x offset, anchor), so columns line up in
        every renderer (SVG collapses runs of spaces)."""
        kw.setdefault("fill", "#222")
        for (cx, anchor), v in zip(cols, values):
            if v != "":
                parent.append(self.dw.Text(str(v), size, x + cx, y, font_family=MONO,
                                           text_anchor=anchor, **kw))

    # parts -----------------------------------------------------------------------------------
    def header(self, y: float) -> float:
        r = self.rec
        base = os.path.basename(r.file)
        self.text(f"load_module({base})", 24, y + 30, 24, font_weight="bold", fill="#1d3557")
        self.text(f"on Linux {r.release} — kernel profile {r.profile}; the load ran on {r.where}",
                  24, y + 52, 12, fill="#555")
        cmd = f"insmod {base}" + (f" {r.args}" if r.args else "")
        if r.ok:
            verdict, colour = "returned 0: the module is LIVE", "#2a7a2a"
        else:
            from ..errors import errno_name, strerror
            from .log import mod_strerror
            said = mod_strerror(r.errno)
            verdict = (f"failed: -{errno_name(r.errno)} ({strerror(r.errno)}"
                       + (f"; insmod says '{said}'" if said != strerror(r.errno) else "")
                       + f") in {r.step or '?'}")
            colour = "#b3261e"
        self.text(f"{cmd}  →  {verdict}", 24, y + 76, 13, mono=True, fill=colour,
                  font_weight="bold", class_="verdict")
        if not r.ok and r.reason:
            reason = r.reason if len(r.reason) < 170 else r.reason[:167] + "…"
            self.text(f"the kernel: {reason}", 24, y + 94, 12, fill=colour)
            return y + 108
        return y + 92

    def lifecycle(self, y: float) -> float:
        """The module's states as chips, with the function that moved it on each arrow; then
        load_module's recorded steps as a row of pills."""
        dw, r = self.dw, self.rec
        self.text("The module's states", 24, y + 16, 14, font_weight="bold")
        chips = [("finit_module(2)", "#6c757d", "the file, in kernel memory")]
        why = {"UNFORMED": "add_unformed_module", "COMING": "complete_formation"}
        colours = {"UNFORMED": "#8d99ae", "COMING": "#e9a23b", "LIVE": "#2a9d8f", "GOING": "#d62828"}
        for i, s in enumerate(r.states):
            if s == "UNFORMED":
                label = why[s]
            elif s == "COMING":
                label = why[s]
            elif s == "LIVE":
                label = "do_init_module: init returned ≥ 0"
            else:
                label = "do_init_module: init failed" if r.step == "do_init_module" else \
                    f"{r.step} failed: coming_cleanup"
            chips.append((s, colours.get(s, "#888"), label))
        if not r.ok:
            freed = "unlinked, memory freed" if r.states else (
                "nothing allocated" if r.record("layout_and_allocate") is None else "memory freed")
            chips.append((f"✗ {r.step or 'refused'}", "#b3261e",
                          freed if r.states else f"refused: {freed}"))
        x, cy = 24, y + 30
        for i, (label, colour, caption) in enumerate(chips):
            w = max(110, len(label) * 8.2 + 28)
            g = dw.Group(class_="state", data_state=label)
            g.append(dw.Rectangle(x, cy, w, 34, rx=17, fill=colour))
            g.append(dw.Text(label, 14, x + w / 2, cy + 22, text_anchor="middle", fill="white",
                             font_family=SANS, font_weight="bold"))
            self.add(g)
            if i + 1 < len(chips):
                nxt = chips[i + 1][2]
                aw = max(150, len(nxt) * 6.4 + 24)
                self.add(dw.Line(x + w + 4, cy + 17, x + w + aw - 6, cy + 17, stroke="#555",
                                 stroke_width=2, marker_end=self.arrow))
                self.text(nxt, x + w + aw / 2, cy + 12, 10.5, text_anchor="middle", fill="#444")
                x += w + aw
            else:
                x += w
        y = cy + 50
        self.text("load_module's steps, as recorded", 24, y + 12, 12, fill="#555")
        x, y = 24, y + 20
        names = [s for s, _ in r.steps]
        if not r.ok and r.step and r.step not in names:
            names.append(r.step)
        for i, s in enumerate(names):
            failed = not r.ok and s == r.step
            w = len(s) * 6.2 + 16
            if x + w > self.W - 24:
                x, y = 24, y + 26
            self.rect(x, y, w, 20, rx=10, fill="#fde2e1" if failed else "#e8eef6",
                      stroke="#b3261e" if failed else "#9fb3c8", class_="step", data_step=s)
            self.text(f"{s}", x + 8, y + 14, 10.5, mono=True,
                      fill="#b3261e" if failed else "#1d3557")
            x += w + 6
        return y + 34

    def legend(self, y: float) -> float:
        x = 24
        kinds = ["text", "rodata", "ro_after_init", "data", "init_text", "init_rodata",
                 "init_data", "kallsyms", "percpu", "none"]
        for k in kinds:
            self.rect(x, y, 14, 14, rx=3, fill=KIND_COLOURS[k])
            self.text(KIND_TEXT[k], x + 19, y + 11, 11)
            x += 30 + len(KIND_TEXT[k]) * 6.4
        y += 22
        self.rect(24, y, 52, 14, rx=6, fill="#1d3557")
        self.text("PC32×9", 29, y + 11, 10, mono=True, fill="white")
        self.text("relocations applied to the section: R_X86_64_<type> × count", 84, y + 11, 11,
                  fill="#444")
        self.text("size* = NOBITS: zero-filled, nothing copied", 500, y + 11, 11, fill="#444")
        self.text("dashed box: init memory, freed when init returns", 800, y + 11, 11, fill="#444")
        return y + 24

    def file_and_memory(self, y: float) -> float:
        dw, r = self.dw, self.rec
        allocs = allocations(r)
        placed = {row.index: (a, row) for a in allocs for row in a.rows if row.index}
        lx, lw = 24, 584                        # the file column
        rx, rw = 800, self.W - 800 - 24         # the memory column
        self.text(f"ELF file: {os.path.basename(r.file)}", lx, y + 14, 14, font_weight="bold")
        self.text(f"{_bytes(r.file_size)}, {len(r.file_sections)} sections"
                  + (f" — {r.file_note}" if r.file_note else ""), lx, y + 30, 11, fill="#555")
        title = "Module memory" + (" (module_memory: an allocation per type)" if r.mod_mem
                                   else " (core and init layouts)")
        if allocs and not r.ok:
            title += " — freed again"
        self.text(title, rx, y + 14, 14, font_weight="bold")
        hdr = self.dw.Group(fill="#555")
        self.cells(hdr, rx + 10, y + 48, MEM_COLS, ["offset", "section", "size", "align",
                                                  "relocations applied / note"], fill="#555")
        self.cells(hdr, lx, y + 48, FILE_COLS, ["idx", "section", "type", "size", "align",
                                              "flags", "what load_module does with it"],
                   fill="#555")
        self.add(hdr)
        top = y + 56
        # the file's sections
        from .. import elf
        ly = top
        left_y = {}
        for s in r.file_sections:
            where = placed.get(s["index"])
            if where:
                kind = where[1].kind
            elif s["name"] == ".data..percpu":
                kind = "percpu"
            else:
                kind = "none"
            alloc_in_file = bool(s["flags"] & elf.SHF_ALLOC)
            fill = KIND_COLOURS[kind] if kind != "none" else ("#efeae6" if alloc_in_file else "#f4f4f4")
            g = dw.Group(class_="file-section", data_name=s["name"], data_kind=kind)
            g.append(dw.Rectangle(lx, ly, lw, ROW - 2, rx=3, fill=fill,
                                  fill_opacity=0.35 if kind != "none" else 1))
            g.append(dw.Rectangle(lx, ly, 6, ROW - 2, fill=KIND_COLOURS[kind]))
            tname = {elf.SHT_NOBITS: "NOBITS", elf.SHT_RELA: "RELA", elf.SHT_SYMTAB: "SYMTAB",
                     elf.SHT_STRTAB: "STRTAB", elf.SHT_NOTE: "NOTE"}.get(s["type"], "PROGBITS"
                                                                         if s["type"] == 1 else str(s["type"]))
            self.cells(g, lx, ly + 11.5, FILE_COLS[:6],
                       [s["index"], _cut(s["name"], 25), tname, s["size"], s["align"], _flags(s["flags"])])
            if s["rela_target"]:
                note = (f"{s['entries']} relocation{'s' * (s['entries'] != 1)} → "
                        f"{s['rela_target']}")[:36]
            elif s["name"] in ("__versions", ".modinfo"):
                note = "read in place, SHF_ALLOC dropped"
            elif kind == "percpu":
                note = "to the per-CPU area"
            elif where:
                note = f"→ {where[0].name} +{where[1].offset:#x}"
            elif s["name"] == ".shstrtab":
                note = "section names (not copied)"
            else:
                note = "not copied"
            g.append(dw.Text(note, 10, lx + FILE_COLS[6][0], ly + 11, font_family=SANS,
                             fill="#555"))
            self.add(g)
            left_y[s["index"]] = ly + (ROW - 2) / 2
            ly += ROW
        # the allocations
        ry = top
        links = []
        if not allocs:
            self.rect(rx, ry, rw, 60, rx=8, fill="#fafafa", stroke="#ccc", stroke_dasharray="5,4")
            self.text(f"nothing allocated: the load stopped in {r.step or '?'} before "
                      "layout_and_allocate", rx + 16, ry + 34, 12, fill="#b3261e")
            ry += 70
        for a in allocs:
            ry = self.allocation(a, rx, ry, rw)
            for row in a.rows:
                if row.index in left_y:
                    links.append((left_y[row.index], row.y, KIND_COLOURS[row.kind], row.name))
        # the arrows from the file to memory, under everything else
        x0, x1 = lx + lw + 2, rx - 2
        paths = []
        for y0, y1, colour, name in links:
            p = dw.Path(stroke=colour, stroke_width=1.6, fill="none", stroke_opacity=0.75,
                        class_="move", data_section=name)
            p.M(x0, y0).C(x0 + 110, y0, x1 - 110, y1, x1, y1)
            paths.append(p)
        self.items[:0] = paths
        return max(ly, ry) + 10

    def allocation(self, a: Alloc, x: float, y: float, w: float) -> float:
        """One allocation: a header with its address, a bar with every section at its offset
        (page boundaries ticked), then its parts (6.1: text, rodata, ro_after_init, data) with
        one row per section and the relocations applied to it."""
        dw = self.dw
        kind0 = a.parts[0][0]
        init = a.name.startswith("init")
        n_pages = -(-a.size // 4096)
        banded = not self.rec.mod_mem            # 6.1: name the parts inside the allocation
        groups: list[list[Row]] = [[] for _ in a.parts]
        for row in a.rows:
            k = next((i for i, (_, s, e) in enumerate(a.parts) if row.offset < e), len(a.parts) - 1)
            groups[k].append(row)
        h = 52 + ROW * len(a.rows) + (16 * len(a.parts) if banded else 0) + 6
        box = dw.Group(class_="allocation", data_alloc=a.name, data_base=_hx(a.base),
                       data_size=str(a.size))
        box.append(dw.Rectangle(x, y, w, h, rx=8, fill="#ffffff", stroke=KIND_COLOURS[kind0],
                                stroke_width=1.5, stroke_dasharray="6,4" if init else None))
        box.append(dw.Text(a.name, 13, x + 10, y + 18, font_family=SANS, font_weight="bold",
                           fill="#1d3557"))
        box.append(dw.Text(f"@ {_hx(a.base)} — {_bytes(a.size)} ({n_pages} page{'s' * (n_pages != 1)})"
                           + ("  — freed after init" if init else ""), 11,
                           x + 18 + len(a.name) * 8.5, y + 18, font_family=MONO, fill="#444"))
        bx, bw, by = x + 10, w - 20, y + 26       # the bar: the allocation's bytes
        box.append(dw.Rectangle(bx, by, bw, 14, fill="#f4f4f4", stroke="#bbb"))
        scale = bw / max(a.size, 1)
        for k, s, e in a.parts:
            box.append(dw.Rectangle(bx + s * scale, by, (e - s) * scale, 14,
                                    fill=KIND_COLOURS.get(k, "#ccc"), fill_opacity=0.18))
        for row in a.rows:
            if row.size:
                box.append(dw.Rectangle(bx + row.offset * scale, by + 1, max(row.size * scale, 1.2),
                                        12, fill=KIND_COLOURS[row.kind]))
        for pg in range(1, n_pages):
            box.append(dw.Line(bx + pg * 4096 * scale, by - 2, bx + pg * 4096 * scale, by + 16,
                               stroke="#333", stroke_width=1))
        yy = by + 22
        for (k, s, e), rows in zip(a.parts, groups):
            if banded:
                box.append(dw.Text(f"{KIND_TEXT[k]}: +{_hx(s)} … +{_hx(e)} ({_bytes(e - s)}, "
                                   "page-aligned)", 10.5, x + 10, yy + 11, font_family=SANS,
                                   fill=INK.get(k, KIND_COLOURS[k]), font_weight="bold"))
                yy += 16
            for row in rows:
                self.row(box, row, x + 10, yy, w - 20)
                yy += ROW
        self.add(box)
        return y + h + 12

    def row(self, box, row: Row, x: float, y: float, w: float) -> None:
        dw = self.dw
        row.y = y + (ROW - 2) / 2
        g = dw.Group(class_="placed-section" if row.index else "kallsyms-part",
                     data_name=row.name, data_offset=str(row.offset), data_size=str(row.size),
                     data_align=str(row.align))
        g.append(dw.Rectangle(x, y, w, ROW - 2, rx=3, fill=KIND_COLOURS[row.kind],
                              fill_opacity=0.22))
        g.append(dw.Rectangle(x, y, 6, ROW - 2, fill=KIND_COLOURS[row.kind]))
        self.cells(g, x, y + 11.5, MEM_COLS[:4], [f"+{row.offset:#06x}", _cut(row.name),
                                                  f"{row.size}{'*' if row.nobits else ''}",
                                                  row.align])
        tx = x + MEM_COLS[4][0]
        if row.relocs:
            for t, n in sorted(row.relocs.items(), key=lambda x: int(x[0])):
                label = f"{RELOC_SHORT.get(int(t), t)}×{n}"
                cw = len(label) * 6.2 + 10
                c = dw.Group(class_="reloc", data_section=row.name, data_type=str(int(t)),
                             data_count=str(n))
                c.append(dw.Rectangle(tx, y + 1, cw, ROW - 4, rx=6, fill="#1d3557"))
                c.append(dw.Text(label, 10, tx + 5, y + 11, font_family=MONO, fill="white"))
                g.append(c)
                tx += cw + 4
        elif row.note:
            g.append(dw.Text(row.note, 10, tx, y + 11, font_family=SANS, fill="#555"))
        box.append(g)

    def symbols(self, y: float) -> float:
        """simplify_symbols: which undefined symbol came from vmlinux, which from which module;
        unknown ones from the kernel's reason."""
        dw, r = self.dw, self.rec
        d = r.record("simplify_symbols")
        self.text("Undefined symbols, resolved by simplify_symbols", 24, y + 16, 14,
                  font_weight="bold")
        y += 26
        groups: dict[str, list] = {}
        for name, value, owner in (d or {}).get("resolved", []):
            groups.setdefault(owner, []).append((name, value))
        unknown = [l.split("Unknown symbol ", 1)[1] for l in r.log if "Unknown symbol " in l]
        if unknown:
            groups["✗ unknown"] = [tuple(u.split(" ", 1)) if " " in u else (u, "") for u in unknown]
        if not groups:
            self.text("none: the load stopped before simplify_symbols" if d is None and not unknown
                      else "none: the module uses no outside symbol", 24, y + 14, 12, fill="#555")
            return y + 30
        colw, limit = 330, 160
        for owner, syms in groups.items():
            shown = syms[:limit]
            cols = max(1, min(4, -(-len(shown) // 6)))
            rows = -(-len(shown) // cols)
            h = 30 + rows * 15 + (16 if len(syms) > limit else 0)
            bad = owner.startswith("✗")
            title = (f"unknown ({len(syms)}): no export this module may use"
                     if bad else f"from {owner} ({len(syms)})" if owner == "vmlinux"
                     else f"from module {owner} ({len(syms)}) — {r.name} now holds a reference")
            g = dw.Group(class_="symbols", data_owner=owner, data_count=str(len(syms)))
            g.append(dw.Rectangle(24, y, self.W - 48, h, rx=8,
                                  fill="#fdecea" if bad else "#f4f7fb",
                                  stroke="#b3261e" if bad else "#9fb3c8"))
            g.append(dw.Text(title, 12, 36, y + 19, font_family=SANS, font_weight="bold",
                             fill="#b3261e" if bad else "#1d3557"))
            for i, (name, value) in enumerate(shown):
                cx = 36 + (i // rows) * colw
                cy = y + 36 + (i % rows) * 15
                s = dw.Group(class_="symbol", data_symbol=name)
                self.cells(s, cx, cy, [(0, "start"), (172, "start")],
                           [_cut(name), value if isinstance(value, str) else f"{value:#x}"],
                           size=10.5, **({"fill": "#b3261e"} if bad else {}))
                g.append(s)
            if len(syms) > limit:
                g.append(dw.Text(f"… and {len(syms) - limit} more (the HTML page lists all)", 10.5,
                                 36, y + h - 8, font_family=SANS, fill="#555"))
            self.add(g)
            y += h + 10
        return y

    def footer(self, y: float) -> float:
        r = self.rec
        bits = []
        pa = r.record("parse_args")
        if pa is not None:
            bits.append(f"parse_args: '{pa['args']}' against {len(pa['params'])} declared "
                        f"parameters ({', '.join(pa['params']) or 'none'})")
        di = r.record("do_init_module")
        if di is not None and di.get("init"):
            bits.append(f"init at {di['init']:#x} ran on the emulated CPU: {di['calls']} kernel "
                        f"calls, returned {di['ret']}")
        for b in bits:
            self.text(b, 24, y + 14, 11.5, fill="#333")
            y += 18
        if r.log:
            shown = r.log[:14]
            y += 6
            self.text("The kernel's log lines of this call", 24, y + 14, 14, font_weight="bold")
            y += 22
            g = self.dw.Group(class_="kernel-log")
            g.append(self.dw.Rectangle(24, y, self.W - 48, 12 + 15 * len(shown) +
                                       (15 if len(r.log) > 14 else 0), rx=6, fill="#1e1e24"))
            for i, line in enumerate(shown):
                g.append(self.dw.Text(line[:180], 11, 36, y + 18 + 15 * i, font_family=MONO,
                                      fill="#ffb4a8" if not r.ok and i == len(r.log) - 1
                                      else "#e6e6e6"))
            if len(r.log) > 14:
                g.append(self.dw.Text(f"… {len(r.log) - 14} more (kmodlab dmesg)", 11, 36,
                                      y + 18 + 15 * len(shown), font_family=MONO, fill="#aaa"))
            self.add(g)
            y += 22 + 15 * len(shown) + (15 if len(r.log) > 14 else 0)
        self.text("Drawn by kmodlab explain from the records the sandbox kernel's load_module made "
                  "at its step boundaries.", 24, y + 18, 10, fill="#888")
        return y + 28

    # the whole ------------------------------------------------------------------------------------
    def render(self):
        dw = self.dw
        self.arrow = dw.Marker(-0.1, -0.5, 0.9, 0.5, scale=5, orient="auto")
        self.arrow.append(dw.Lines(-0.1, -0.5, -0.1, 0.5, 0.9, 0, fill="#555", close=True))
        y = self.header(0)
        y = self.lifecycle(y)
        y = self.legend(y + 4)
        y = self.file_and_memory(y + 6)
        y = self.symbols(y + 6)
        y = self.footer(y)
        d = dw.Drawing(self.W, y, font_family=SANS)
        d.append(dw.Rectangle(0, 0, self.W, y, fill="white"))
        for el in self.items:
            d.append(el)
        d.append_title(f"load_module({os.path.basename(self.rec.file)}) on {self.rec.release}")
        return d


def draw_svg(rec: LoadRecord) -> str:
    return Picture(rec).render().as_svg()


def narrative(rec: LoadRecord) -> str:
    import io
    from .explain import explain
    buf = io.StringIO()
    explain(rec.syscall_result(), buf)
    return buf.getvalue()


def html_page(rec: LoadRecord, svg: str) -> str:
    """The picture, the step narrative (insmod --explain's words), the kernel's log lines of
    the call and every resolved symbol, in one self-contained page."""
    e = html.escape
    d = rec.record("simplify_symbols") or {}
    syms = "".join(f"<tr><td><code>{e(n)}</code></td><td><code>{v:#x}</code></td><td>{e(o)}</td></tr>"
                   for n, v, o in d.get("resolved", []))
    log = "\n".join(rec.log) or "(nothing)"
    title = f"load_module({os.path.basename(rec.file)}) on Linux {rec.release}"
    svg_body = svg.split("?>", 1)[1] if svg.startswith("<?xml") else svg
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>
body {{ font-family: {SANS}; margin: 24px; color: #222; max-width: 1440px; }}
h1 {{ color: #1d3557; font-size: 22px; }} h2 {{ color: #1d3557; font-size: 17px; margin-top: 28px; }}
pre {{ background: #f6f8fa; border: 1px solid #dde3ea; border-radius: 6px; padding: 12px;
       font-size: 12.5px; line-height: 1.45; overflow-x: auto; }}
table {{ border-collapse: collapse; font-size: 13px; }}
td, th {{ border-bottom: 1px solid #e4e8ee; padding: 3px 14px 3px 0; text-align: left; }}
.picture {{ border: 1px solid #dde3ea; border-radius: 8px; }}
.picture svg {{ display: block; width: 100%; height: auto; }}
</style></head>
<body>
<h1>{e(title)}</h1>
<p>What the sandbox kernel's <code>load_module</code> did with <code>{e(rec.file)}</code>
({e(rec.where)}), drawn from the records it made at its step boundaries.</p>
<div class="picture">{svg_body}</div>
<h2>The steps, in the kernel's order</h2>
<pre>{e(narrative(rec))}</pre>
<h2>The kernel's log lines of this call</h2>
<pre>{e(log)}</pre>
<h2>Every undefined symbol and where it came from</h2>
<table><tr><th>symbol</th><th>value</th><th>from</th></tr>{syms or '<tr><td colspan="3">none</td></tr>'}</table>
</body></html>
"""


# ---------------------------------------------------------------------------------------------

def _write(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}") from None


def main(argv: list[str]) -> int:
    from ..kernel.module.internal import MODULE_INIT_IGNORE_MODVERSIONS, MODULE_INIT_IGNORE_VERMAGIC
    from ..lib.args import options_from_array
    from .common import ToolParser
    p = ToolParser(prog="explain", add_help=False)
    p.add_argument("--svg")
    p.add_argument("--html")
    p.add_argument("--fresh", action="store_true")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("filename", nargs="?")
    p.add_argument("args", nargs="*")
    opts = p.parse_args(argv)
    if opts.help:
        print(USAGE, end="")
        return 0
    if not opts.filename:
        raise UsageError("missing filename (kmodlab explain FILE [params] --svg OUT.svg)")
    if os.environ.get("KMODLAB_KERNEL", "sandbox") != "sandbox":
        raise UsageError("explain draws the sandbox kernel's load; it does not drive --live")
    if not os.path.isfile(opts.filename):
        raise UsageError(f"could not load module {opts.filename}: "
                         f"{'No such file or directory' if not os.path.exists(opts.filename) else 'not a regular file'}")
    if opts.svg or opts.html:
        _drawsvg()                              # say it now, before a load for nothing
    flags = (MODULE_INIT_IGNORE_MODVERSIONS | MODULE_INIT_IGNORE_VERMAGIC) if opts.force else 0
    rec = record_load(opts.filename, options_from_array(opts.args), flags, opts.fresh)
    print(f"explain: {os.path.basename(rec.file)} loaded on {rec.where}")
    if not (opts.svg or opts.html):
        sys.stdout.write(narrative(rec))
        print("(kmodlab explain FILE --svg OUT.svg | --html OUT.html draws it)")
        return 0 if rec.ok else 1
    svg = draw_svg(rec)
    if opts.svg:
        _write(opts.svg, svg)
        print(f"explain: wrote {opts.svg}")
    if opts.html:
        _write(opts.html, html_page(rec, svg))
        print(f"explain: wrote {opts.html}")
    return 0
