"""The fuzz harness's short run, and the regressions its findings became.

fuzz/fuzz_load.py feeds (image, parameter string) through ``SandboxKernel.init_module`` into a
fresh machine per input.  CI runs its deterministic mutation loop (seeded ``random``: the same
inputs every run, no atheris needed) for a few thousand inputs: no internal error, no refused
load leaving state behind, no hang, bounded memory.  The long coverage-guided run is
``python3 fuzz/fuzz_load.py --runs 1000000`` (atheris, the ``fuzz`` extra).

Each finding is a test below with the answer Linux 6.1 gives (kernel/module/main.c,
kernel/params.c): an oops where the kernel reads a pointer the module supplied that is not
there (the sandbox's oops errno, EFAULT, with an oops report in the log and the load unwound),
the errno of the check otherwise.
"""
from __future__ import annotations

import importlib.util
import resource
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from kmodlab.machine import Machine
from kmodlab.oracle.malformed import Image
from kmodlab.sandbox import SandboxKernel

ROOT = Path(__file__).resolve().parents[1]
HELLO = (ROOT / "examples" / "hello.ko").read_bytes()
PROVIDER = (ROOT / "examples" / "kmodlab_provider.ko").read_bytes()


def _harness_module():
    spec = importlib.util.spec_from_file_location("fuzz_load", ROOT / "fuzz" / "fuzz_load.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def fuzz_load():
    return _harness_module()


def _kernel(profile) -> SandboxKernel:
    return SandboxKernel(machine=Machine.boot(profile.name, seed=1, profile=profile))


def _clean(k: SandboxKernel) -> None:
    """Nothing of a refused load is left: no module, no module memory, no kmalloc."""
    m = k.machine
    assert m.modules == []
    assert not [r for r in m.mm.regions if ":" in r]
    assert m.heap.allocs == {} and m.percpu_used == []


def test_short_fuzz_run(fuzz_load, tmp_path):
    """3,000 seeded mutations of the examples and small real modules of both releases (those
    in the cache): every input gets a kernel answer; nothing is torn, nothing hangs."""
    h = fuzz_load.Harness(findings=tmp_path, hang_s=60)
    seeds = [d for _n, d in fuzz_load.seed_images(fetch=False)]
    fuzz_load.random_loop(h, 3000, seed=1, seeds=seeds, report=lambda: None, every=0)
    s = h.summary()
    assert s["inputs"] == 3000
    assert s["internal_errors"] == 0, (s["internal_error_kinds"], sorted(p.name for p in tmp_path.iterdir()))
    assert s["torn_states"] == 0 and s["hangs"] == 0
    assert s["peak_rss_mb"] < 1024
    assert s["outcomes"].get("OK", 0) > 100 and s["outcomes"].get("ENOEXEC", 0) > 100


def test_param_rela_out_of_range_oopses_not_internal_error(profile):
    """The issue's example: .rela__param's sh_info out of range, so Linux 6.1 skips that RELA
    section (apply_relocations) and __param keeps NULL name pointers; the kernel faults when it
    first reads one.  The sandbox: an oops report, EFAULT, nothing left behind."""
    img = Image(HELLO).set_shdr(".rela__param", "info", 0xFFFF).bytes()
    k = _kernel(profile)
    r = k.init_module(img, "")
    assert r.errno == 14
    assert "BUG: kernel NULL pointer dereference, address: 0000000000000000" in r.log
    assert "Oops: 0000 [#1] PREEMPT SMP NOPTI" in r.log
    assert any(ln.startswith("RIP: 0010:") for ln in r.log)
    _clean(k)
    assert k.init_module(HELLO, "").errno == 0          # the machine is consistent


def test_param_rela_out_of_range_cli(tmp_path):
    """The same through `kmodlab insmod`: the kernel's words, no "internal error"."""
    bad = tmp_path / "bad.ko"
    bad.write_bytes(Image(HELLO).set_shdr(".rela__param", "info", 0xFFFF).bytes())
    env = {"KMODLAB_MACHINE": str(tmp_path / "m"), "PATH": "/usr/bin:/bin"}
    p = subprocess.run([sys.executable, "-m", "kmodlab", "insmod", str(bad)],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    assert p.returncode == 1
    assert "internal error" not in p.stderr and "Traceback" not in p.stderr
    assert "Bad address" in p.stderr
    d = subprocess.run([sys.executable, "-m", "kmodlab", "dmesg"], capture_output=True,
                       text=True, env=env, cwd=ROOT)
    assert "BUG: kernel NULL pointer dereference" in d.stdout


def test_symbol_name_past_the_string_table(profile):
    """6.1 checks no st_name: a name past .strtab's end is read on in the image (here the
    padding NULs after the table: an empty name).  Layout and kallsyms must not fail on it;
    Linux loads the module."""
    h = Image(HELLO)
    k = h.symbol_index("hello_init")
    img = h.set_sym(k, "name", h.shdr(".strtab").size).bytes()
    r = _kernel(profile).init_module(img, "")
    assert r.errno == 0, r.log


def test_ksymtab_not_a_whole_number_of_entries(profile):
    """__ksymtab of 13 bytes: num_syms = size / sizeof(struct kernel_symbol) = 1, the extra
    byte ignored; the module loads and exports its symbol."""
    img = Image(PROVIDER).set_shdr("__ksymtab", "size", 13).bytes()
    k = _kernel(profile)
    r = k.init_module(img, "")
    assert r.errno == 0, r.log
    assert "kmodlab_provider_calls" in [s.name for s in k.machine.modules[0].syms]


def test_4gib_section_loads_without_allocating_it(profile):
    """.bss claiming 4 GiB: the kernel's layout sizes are unsigned int, so the size wraps and
    Linux 6.1 loads the module (the malformed-module recording, case bss-4g); the sandbox
    does the same and never allocates anything near 4 GiB."""
    img = Image(HELLO).set_shdr(".bss", "size", 4 << 30).bytes()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    k = _kernel(profile)
    assert k.init_module(img, "").errno == 0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024
    assert k.machine.modules[0].core.size < 1 << 20


def test_6gib_section_sizes_wrap_to_a_refusal(profile):
    """.bss of 6 GiB + 768 MiB wraps to 2 GiB + 768 MiB: more than the module area → -ENOMEM,
    without allocating."""
    img = Image(HELLO).set_shdr(".bss", "size", (6 << 30) + (768 << 20)).bytes()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    k = _kernel(profile)
    assert k.init_module(img, "").errno == 12
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024
    _clean(k)


def test_768mib_section_is_the_sandbox_memory_bound(profile):
    """.bss of 768 MiB fits the module area, but one allocation above the sandbox's 64 MiB
    (vmalloc on a machine without that memory) fails with -ENOMEM; the fuzzer's 1.6 GB of RSS
    came from such sections being allocated, snapshotted and mapped."""
    img = Image(HELLO).set_shdr(".bss", "size", 768 << 20).bytes()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    k = _kernel(profile)
    assert k.init_module(img, "").errno == 12
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024


def test_reloc_offset_near_2_63(profile):
    """r_offset = 2^63 - 4: offset + width wrapped around and slipped past the bounds check
    (numpy IndexError).  Linux does not bound r_offset: it reads the target at
    sh_addr + r_offset, an unmapped address, and oopses (as it did for r_offset = 2^40 in the
    malformed-module recording); the sandbox: the oops report and EFAULT, unwound."""
    img = Image(HELLO).set_rela(".rela.rodata", 0, "offset", (1 << 63) - 4).bytes()
    k = _kernel(profile)
    r = k.init_module(img, "")
    assert r.errno == 14, r.log
    assert any(ln.startswith("BUG: unable to handle page fault for address: ") for ln in r.log) \
        or any(ln.startswith("general protection fault") for ln in r.log)
    _clean(k)


def test_empty_symbol_table(profile):
    """A symbol table of size 0 (no symbol 0): layout and simplify_symbols loop over nothing,
    as the kernel's do; the load ends in a kernel answer (the relocations then name symbols
    the table does not have), never an IndexError."""
    img = Image(HELLO).set_shdr(".symtab", "size", 0).bytes()
    k = _kernel(profile)
    r = k.init_module(img, "")
    assert r.errno == 8
    _clean(k)


def test_612_no_section_headers(profile_612):
    """6.12's elf_validity_cache_sechdrs reads section 0 even with e_shnum = 0 (the 64 bytes at
    e_shoff, here hello's section 0, SHT_NULL) and then refuses e_shstrndx >= e_shnum:
    -ENOEXEC, no IndexError."""
    img = Image(HELLO).set_ehdr("shnum", 0).bytes()
    r = _kernel(profile_612).init_module(img, "")
    assert r.errno == 8
    assert r.log == ["Invalid ELF section name index: 36 || e_shstrndx (36) >= e_shnum (0)"]


@pytest.fixture(scope="module")
def profile_612():
    """The imported 6.12 profile, from the cache the project's importer fills."""
    from kmodlab.profile import load_profile
    from kmodlab.profile.debian import cache_dir
    p = cache_dir().parent / "profiles" / "debian-6.12.118+deb13-amd64.kprofile"
    if not p.exists():
        pytest.skip("no imported 6.12 profile in the cache")
    return load_profile(str(p))


def test_split_input(fuzz_load):
    img, args = fuzz_load.split_input(b"\x7fELF..." + fuzz_load.SEP + b"who=x")
    assert (img, args) == (b"\x7fELF...", "who=x")
    assert fuzz_load.split_input(b"abc") == (b"abc", "")
    signed = HELLO + b"\x01" * 5 + bytes(8) + struct.pack(">I", 5) + fuzz_load.SIG_MAGIC
    assert fuzz_load.strip_signature(signed) == HELLO


def test_section_past_a_wrapped_allocation(profile):
    """.exit.data made NOBITS with a size that wraps the unsigned int core size back to 0x20:
    .data, placed before it, then lies past the (small) allocation, and copying it runs off
    the end (Linux's memcpy would oops).  The sandbox: an oops report, EFAULT, and the
    allocations freed (the fuzzer found them left mapped)."""
    k = _kernel(profile)
    k.run_init = False
    r = k.init_module(HELLO, "")
    lay = dict(r.details["steps"])["layout_and_allocate"]
    addr = {name: a for name, a, _size in lay["sections"]}
    x = addr[".data"] - lay["core"].base                  # .data's offset in core
    wrap = (1 << 32) - (x + 0x10) + 0x20                   # core size after .exit.data: 0x20
    img = Image(HELLO).set_shdr(".exit.data", "type", elf_nobits()).set_shdr(
        ".exit.data", "size", wrap).bytes()
    k = _kernel(profile)
    r = k.init_module(img, "")
    assert r.errno == 14, r.log
    assert any(ln.startswith("BUG: unable to handle page fault for address: ") for ln in r.log)
    assert "#PF: supervisor write access in kernel mode" in r.log
    _clean(k)


def elf_nobits() -> int:
    from kmodlab import elf
    return elf.SHT_NOBITS


def test_sysfs_read_of_a_bad_charp_oopses_not_internal_error(profile):
    """who (a charp) relocated to 2^40 past its string: reading /sys/module/hello/parameters/who
    makes param_get_charp's "%s" dereference it; the kernel oopses in the reader.  The
    sandbox: the oops report in the log and the read fails with EFAULT (not a Python Fault)."""
    img = Image(HELLO).set_rela(".rela.data", 0, "addend", 1 << 40).bytes()
    k = _kernel(profile)
    assert k.init_module(img, "").errno == 0
    with pytest.raises(OSError) as ei:
        k.read("/sys/module/hello/parameters/who")
    assert ei.value.errno == 14
    assert any("BUG: unable to handle page fault for address: 000000ff" in ln for ln in k.dmesg())


def test_long_run_findings_replay_without_internal_errors(fuzz_load, tmp_path):
    """The 1,000,000-input runs' findings (a NOBITS __versions past the file's end; an oops
    whose stack walk met an unmapped stack page; a printk format with a Latin-1 superscript
    digit as its width, which Python's isdigit takes and the kernel's does not; a mutated init
    that kmallocs and then fails, whose leak is the module's, as in Linux): each now gets a
    kernel answer, nothing torn."""
    h = fuzz_load.Harness(findings=tmp_path, hang_s=60)
    files = sorted((Path(__file__).parent / "data" / "fuzz_findings").glob("*.bin"))
    assert len(files) == 8
    for f in files:
        h.run(f.read_bytes())
    s = h.summary()
    assert s["inputs"] == 8 and s["internal_errors"] == 0, s["internal_error_kinds"]
    assert s["torn_states"] == 0
