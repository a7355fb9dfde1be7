"""kmodlab explain --svg/--html: the picture of a load is drawn from that load's records.

The SVG must parse; every section the kernel placed is named with its allocation, offset, size
and alignment; the relocation counts per section are the load's own (load_module's record, and
independently the file's RELA tables whose targets are allocated); the states are the ones the
module went through.  The machine the load ran on is a copy: nothing is committed.
"""
from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from kmodlab import elf
from kmodlab.tools import main as kmodlab

ROOT = Path(__file__).resolve().parent.parent
EX = ROOT / "examples"
SVG = "{http://www.w3.org/2000/svg}"


def explain(tmp_path, capsys, *args, rc=0) -> ET.Element:
    out = tmp_path / "load.svg"
    assert kmodlab(["kmodlab", "explain", *map(str, args), "--svg", str(out)]) == rc
    capsys.readouterr()
    return ET.parse(out).getroot()


def groups(root, cls):
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == cls]


def file_relocations(path: Path) -> Counter:
    """(target section, type) → count over the file's RELA sections whose target is
    SHF_ALLOC in the file: what apply_relocations must have applied (a load that succeeded)."""
    img = path.read_bytes()
    hdr = elf.parse_header(img)
    secs = elf.parse_sections(img, hdr.shoff, hdr.shnum)
    elf.name_sections(img, secs, hdr.shstrndx)
    c = Counter()
    for s in secs:
        if s.type == elf.SHT_RELA and secs[s.info].flags & elf.SHF_ALLOC:
            for t in (elf.relocations(img, s)["r_info"] & 0xFFFFFFFF).tolist():
                c[(secs[s.info].name, int(t))] += 1
    return c


def file_allocated(path: Path) -> set[str]:
    img = path.read_bytes()
    hdr = elf.parse_header(img)
    secs = elf.parse_sections(img, hdr.shoff, hdr.shnum)
    elf.name_sections(img, secs, hdr.shstrndx)
    return {s.name for s in secs if s.flags & elf.SHF_ALLOC}


def test_hello_on_61(tmp_path, capsys, machine_dir):
    """Every allocated section of hello.ko is placed in core or init (its offset, size and
    alignment as the load recorded them), .symtab/.strtab are appended to init, the kallsyms
    core copy is in core; relocation chips match the load and the file; UNFORMED→COMING→LIVE."""
    from kmodlab import Sandbox
    root = explain(tmp_path, capsys, "--fresh", EX / "hello.ko", "who=svg", "count=2")
    assert root.tag == f"{SVG}svg"
    placed = {g.get("data-name"): g for g in groups(root, "placed-section")}
    # the kernel drops SHF_ALLOC from .modinfo and __versions before the layout
    assert set(placed) == file_allocated(EX / "hello.ko") - {".modinfo", "__versions"} | {".symtab", ".strtab"}
    allocs = {g.get("data-alloc"): g for g in groups(root, "allocation")}
    assert set(allocs) == {"core", "init"}
    in_init = {g.get("data-name") for g in allocs["init"].iter(f"{SVG}g") if g.get("class") == "placed-section"}
    assert {".init.text", ".init.data", ".symtab", ".strtab"} == in_init
    # the same load through the Python API: its record of placements and relocations
    res = Sandbox().insmod(EX / "hello.ko", "who=svg count=2")
    steps = dict(res.details["steps"])
    for p in steps["layout_and_allocate"]["placement"]:
        g = placed[p["name"]]
        assert (int(g.get("data-offset")), int(g.get("data-size")), int(g.get("data-align"))) == \
            (p["offset"], p["size"], p["align"])
    chips = Counter({(g.get("data-section"), int(g.get("data-type"))): int(g.get("data-count"))
                     for g in groups(root, "reloc")})
    recorded = Counter({(sec, t): n for sec, per in steps["apply_relocations"]["by_section"].items()
                        for t, n in per.items()})
    assert chips == recorded == file_relocations(EX / "hello.ko")
    assert sum(chips.values()) == sum(steps["apply_relocations"]["counts"].values())
    kparts = [g.get("data-name") for g in groups(root, "kallsyms-part")]
    assert kparts.count("[kallsyms: types]") == 2 and "[kallsyms: symbols]" in kparts
    assert [g.get("data-state") for g in groups(root, "state")] == \
        ["finit_module(2)", "UNFORMED", "COMING", "LIVE"]
    (vmlinux,) = groups(root, "symbols")
    assert vmlinux.get("data-owner") == "vmlinux"
    names = {g.get("data-symbol") for g in vmlinux.iter(f"{SVG}g") if g.get("class") == "symbol"}
    assert {"_printk", "kfree", "param_ops_charp"} <= names
    text = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "insmod hello.ko who=svg count=2" in text and "returned 0" in text
    for name in placed:
        assert name in text


def test_failures_draw_where_the_load_stopped(tmp_path, capsys, machine_dir):
    """failing_init: relocated, COMING, then GOING after init; the consumer without its
    provider: UNFORMED, stopped in simplify_symbols, its unknown symbols named; a module the
    kernel refuses in the ELF checks: nothing allocated."""
    root = explain(tmp_path, capsys, "--fresh", EX / "failing_init.ko")
    assert [g.get("data-state") for g in groups(root, "state")] == \
        ["finit_module(2)", "UNFORMED", "COMING", "GOING", "✗ do_init_module"]
    assert groups(root, "reloc")
    verdict = next(t.text for t in root.iter(f"{SVG}text") if t.get("class") == "verdict")
    assert "-ENODEV (No such device) in do_init_module" in verdict

    root = explain(tmp_path, capsys, "--fresh", EX / "kmodlab_consumer.ko")
    assert [g.get("data-state") for g in groups(root, "state")] == \
        ["finit_module(2)", "UNFORMED", "✗ simplify_symbols"]
    (unknown,) = [g for g in groups(root, "symbols") if g.get("data-owner") == "✗ unknown"]
    assert {g.get("data-symbol") for g in unknown.iter(f"{SVG}g") if g.get("class") == "symbol"} \
        == {"kmodlab_provider_add", "kmodlab_provider_calls"}
    assert not groups(root, "reloc")           # apply_relocations never ran

    bad = tmp_path / "truncated.ko"
    bad.write_bytes((EX / "hello.ko").read_bytes()[:4096])
    root = explain(tmp_path, capsys, "--fresh", bad)
    assert groups(root, "allocation") == []
    assert [g.get("data-state") for g in groups(root, "state")][-1].startswith("✗ elf_validity")


def test_symbols_from_a_module_and_nothing_committed(tmp_path, capsys, machine_dir):
    """On a copy of the current machine (the provider loaded by insmod) the consumer's two
    symbols come from kmodlab_provider; the machine still has only the provider after."""
    assert kmodlab(["kmodlab", "insmod", str(EX / "kmodlab_provider.ko")]) == 0
    root = explain(tmp_path, capsys, EX / "kmodlab_consumer.ko")
    owners = {g.get("data-owner"): int(g.get("data-count")) for g in groups(root, "symbols")}
    assert owners["kmodlab_provider"] == 2 and owners["vmlinux"] >= 1
    assert [g.get("data-state") for g in groups(root, "state")][-1] == "LIVE"
    assert kmodlab(["kmodlab", "lsmod"]) == 0
    lsmod = capsys.readouterr().out.splitlines()[1:]
    assert [l.split()[0] for l in lsmod] == ["kmodlab_provider"]


def test_html_page_has_the_picture_and_the_narrative(tmp_path, capsys, machine_dir):
    out = tmp_path / "hello.html"
    assert kmodlab(["kmodlab", "explain", "--fresh", str(EX / "hello.ko"), "--html", str(out)]) == 0
    page = out.read_text()
    svg = re.search(r"<svg .*</svg>", page, re.S).group(0)
    assert ET.fromstring(svg).tag == f"{SVG}svg"
    assert "apply_relocations: relocations:" in page      # tools/explain.py's narrative
    assert "<td><code>_printk</code></td>" in page
    assert "hello: hello, world!" in page                  # the kernel's lines of the call


def test_without_svg_prints_the_narrative(capsys, machine_dir):
    assert kmodlab(["kmodlab", "explain", "--fresh", str(EX / "hello.ko")]) == 0
    out = capsys.readouterr().out
    assert "layout_and_allocate" in out and "--svg OUT.svg" in out


def test_612_module_memory(tmp_path, trixie):
    """On 6.12 (Debian 13's profile) the picture shows module_memory allocations by type and
    the relocation counts of that load."""
    prof, tree = trixie
    ko = tree / "kernel/lib/crc7.ko.xz"
    out = tmp_path / "crc7.svg"
    p = subprocess.run([sys.executable, "-m", "kmodlab", "explain", "--fresh", "--kernel",
                        prof.name, str(ko), "--svg", str(out)], capture_output=True, text=True,
                       env={**__import__("os").environ, "KMODLAB_MACHINE": str(tmp_path / "m")},
                       timeout=120)
    assert p.returncode == 0, p.stderr
    root = ET.parse(out).getroot()
    allocs = {g.get("data-alloc") for g in groups(root, "allocation")}
    assert {"text", "rodata", "data", "init_data"} <= allocs and "core" not in allocs
    placed = {g.get("data-name") for g in groups(root, "placed-section")}
    assert {".text", "__ksymtab", ".gnu.linkonce.this_module", ".symtab", ".strtab"} <= placed
    from kmodlab.lib.file import read_module
    raw = tmp_path / "crc7.ko"
    raw.write_bytes(read_module(str(ko)).data)
    chips = Counter({(g.get("data-section"), int(g.get("data-type"))): int(g.get("data-count"))
                     for g in groups(root, "reloc")})
    assert chips == file_relocations(raw)
    text = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert f"Linux {prof.release}" in text


def _cli(*args, pre=""):
    code = (f"import sys; {pre}\nfrom kmodlab.tools import main\n"
            f"rc = main(['kmodlab', *sys.argv[1:]])\n")
    return subprocess.run([sys.executable, "-c", code + "sys.exit(rc)", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_errors_are_one_line(tmp_path, machine_dir):
    p = _cli("explain", "nothere.ko", "--svg", tmp_path / "x.svg")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.strip() == "explain: ERROR: could not load module nothere.ko: No such file or directory"
    p = _cli("explain", "--fresh", EX / "hello.ko", "--svg", tmp_path / "no" / "dir" / "x.svg")
    assert p.returncode == 1 and "explain: ERROR: cannot write" in p.stderr
    p = _cli("explain", EX / "hello.ko", "--svg", tmp_path / "x.svg", pre="sys.modules['drawsvg'] = None")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "pip install 'kmodlab[explain]'" in p.stderr


def test_modinfo_imports_neither_emulator_nor_drawing():
    p = _cli("modinfo", EX / "hello.ko", pre="import atexit; atexit.register(lambda: print("
             "sorted(m for m in ('drawsvg', 'unicorn', 'numpy', 'kmodlab.tools.explain_draw') "
             "if m in sys.modules), file=sys.stderr))")
    assert p.returncode == 0 and p.stderr.strip() == "[]"
