"""request_module() from emulated module code: kernel/kmod.c's usermode ``modprobe -q -- NAME``.

The sandbox serves ``__request_module`` (emu/models/kmod.py) through the machine's hook
(Machine.request_module): kmodlab's modprobe runs in-process against the machine's module tree
(the last ``kmodlab modprobe -d``, or Machine.use_module_tree) and loads the module — its init on
a second emulator — while the requesting init waits inside the model (Emulator.nested).

- the emulator's nested-run sync, on compiled C (what the parent wrote is visible to the hook;
  regions the hook added, changed or removed are what the parent sees afterwards);
- real Debian modules: nls_euc-jp's init does ``load_nls("cp932")``, which requests nls_cp932;
- synthetic modules (C compiled with ``gcc -mcmodel=kernel`` plus the metadata kbuild's
  ``.mod.c`` would add), loaded through load_module: ``__request_module(true, "kmodlab-%s", …)``
  with and without a tree, nowait, an empty modprobe_path, a stopped init taking its child back.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kmodlab.emu import Emulator, Oops
from kmodlab.kernel.mm import MODULES_VADDR
from kmodlab.sandbox import Sandbox
from test_emu_support import CFLAGS, EXPORTS, Export, build, needs_gcc

REL = "6.1.0-56-amd64"
REQUEST_MODULE = Export("__request_module", 0xFFFFFFFF810D7140)


# --- Emulator.nested: the memory sync around a nested load -------------------------------------

@needs_gcc
def test_nested_call_sees_parent_writes_and_parent_sees_its_changes():
    """Before the hook the parent's writes are in the AddressSpace; after it a new region (a
    child's core), a changed heap word and the hook's return value are what the parent's code
    sees."""
    src = r'''
    int __request_module(_Bool wait, const char *fmt, ...);
    int f(long *q, char **pp) {
        *q = 5;
        int r = __request_module(1, "probe-%d-%s", 42, "x");
        return r + (*pp)[0] + (int)*q;
    }'''
    exports = {**EXPORTS, "__request_module": REQUEST_MODULE}
    b = build(src, exports=exports)
    q, pp = b.heap.kmalloc(b.mm, 8, True), b.heap.kmalloc(b.mm, 8, True)
    child = MODULES_VADDR + 0x100000
    seen = []

    def hook(name, wait):
        seen.append((name, wait, b.mm.read_u64(q)))
        b.mm.map("child:core", child, 0x3000)
        b.mm.write(child + 0x2000, b"\x07")
        b.mm.write(q, (40).to_bytes(8, "little"))
        b.mm.write(pp, (child + 0x2000).to_bytes(8, "little"))
        return 256

    emu = Emulator(b.mm, b.heap, exports, printk=lambda *a: None, request_module=hook)
    assert emu.call(b.syms["f"], (q, pp)) == 256 + 7 + 40
    assert seen == [("probe-42-x", True, 5)]
    call = emu.calls[-1]
    assert call.name == "__request_module" and call.ret == 256
    assert call.note == "modprobe -q -- probe-42-x"


@needs_gcc
def test_nested_call_unmaps_regions_that_went_away():
    """A region the nested code freed (an init section, an unloaded module) is gone from the
    parent's CPU too: touching it afterwards is a page fault, not stale bytes."""
    src = r'''
    int __request_module(_Bool wait, const char *fmt, ...);
    int f(volatile char *p) { int x = *p; __request_module(1, "gone"); return x + *p; }'''
    exports = {**EXPORTS, "__request_module": REQUEST_MODULE}
    b = build(src, exports=exports)
    gone = MODULES_VADDR + 0x200000
    b.mm.map("old:init", gone, 0x1000, b"\x01")

    def hook(name, wait):
        b.mm.unmap("old:init")
        return 0

    emu = Emulator(b.mm, b.heap, exports, printk=lambda *a: None, request_module=hook)
    with pytest.raises(Oops) as e:
        emu.call(b.syms["f"], (gone,))
    assert e.value.headline == f"BUG: unable to handle page fault for address: {gone:016x}"


@needs_gcc
def test_without_a_hook_modprobe_finds_nothing():
    """No module tree at all: the kernel's answer when /sbin/modprobe exits 1 (wait status
    256); nowait returns 0 once the helper started; nothing is logged (-q)."""
    src = r'''
    int __request_module(_Bool wait, const char *fmt, ...);
    int f(int wait) { return __request_module(wait, "fs-%s", "nosuchfs"); }'''
    exports = {**EXPORTS, "__request_module": REQUEST_MODULE}
    b = build(src, exports=exports)
    log = []
    emu = Emulator(b.mm, b.heap, exports, printk=lambda *a: log.append(a))
    assert emu.call(b.syms["f"], (1,)) == 256
    assert emu.call(b.syms["f"], (0,)) == 0
    assert log == []


# --- synthetic modules through load_module ---------------------------------------------------

# struct module of Debian 6.1 amd64 (examples/hello.mod.o): 0x380 bytes, cacheline aligned,
# name at 0x18, init at 0x138, exit at 0x350.
THIS_MODULE = r'''
int init_module(void);
void cleanup_module(void) { }
struct kmodlab_this_module {
    char pad0[0x18]; char name[56]; char pad1[0x138 - 0x50]; int (*init)(void);
    char pad2[0x350 - 0x140]; void (*exit)(void); char pad3[0x380 - 0x358];
} __attribute__((aligned(64)));
__attribute__((section(".gnu.linkonce.this_module"), used))
struct kmodlab_this_module __this_module = { .name = "%(name)s", .init = init_module,
                                             .exit = cleanup_module };
struct kmodlab_modversion { unsigned long crc; char name[56]; };
__attribute__((section("__versions"), used, aligned(32)))
static const struct kmodlab_modversion kmodlab_versions[] = { %(versions)s };
__attribute__((section(".modinfo"), used, aligned(1)))
static const char kmodlab_modinfo[] = "license=GPL\0%(alias)sdepends=\0retpoline=Y\0name=%(name)s\0vermagic=%(vermagic)s";
'''

PARENT = r'''
int __request_module(_Bool wait, const char *fmt, ...);
int _printk(const char *fmt, ...);
int init_module(void)
{
    int ret = __request_module(%(wait)d, "kmodlab-%%s", "%(what)s");
    _printk("\0016reqparent: request_module returned %%d\n", ret);
    %(after)s
    return 0;
}
'''

CHILD = r'''
int _printk(const char *fmt, ...);
int init_module(void) { _printk("\0016reqchild: init\n"); return 0; }
'''


def build_ko(out: Path, name: str, src: str, imports: list[str], profile, alias: str = "") -> Path:
    """``src`` (defining init_module) plus the metadata kbuild's .mod.c adds (this_module,
    __versions with the profile's CRCs, .modinfo), compiled into one relocatable .ko."""
    crcs = [("module_layout", profile.exports["module_layout"].crc)] + \
        [(n, profile.exports[n].crc) for n in imports]
    meta = THIS_MODULE % {
        "name": name, "vermagic": profile.vermagic,
        "alias": f"alias={alias}\\0" if alias else "",
        "versions": ", ".join(f'{{ {crc:#x}, "{n}" }}' for n, crc in crcs)}
    c = out.with_suffix(".c")
    c.write_text(src + meta)
    subprocess.run(["gcc", *CFLAGS, "-fcf-protection=none", "-c", str(c), "-o", str(out)],
                   check=True)
    return out


@pytest.fixture(scope="module")
def kos(tmp_path_factory, profile):
    if not shutil.which("gcc"):
        pytest.skip("gcc not installed")
    d = tmp_path_factory.mktemp("reqmod")
    base = d / "root"
    extra = base / "lib" / "modules" / REL / "extra"
    extra.mkdir(parents=True)
    build_ko(extra / "reqchild.ko", "reqchild", CHILD, ["_printk"], profile,
             alias="kmodlab-child")
    out = {"tree": base, "dir": d}

    def parent(tag: str, wait: int = 1, what: str = "child", after: str = "",
               imports=("__request_module", "_printk")) -> Path:
        src = PARENT % {"wait": wait, "what": what, "after": after}
        return build_ko(d / f"reqparent_{tag}.ko", "reqparent", src, list(imports), profile)
    out["parent"] = parent(1)
    out["parent_missing"] = parent("missing", what="missing")
    out["parent_nowait"] = parent("nowait", wait=0, what="missing")
    stop = next(n for n in ("kernel_read", "kthread_create_on_node", "proc_create")
                if n in profile.exports and _unmodelled(n))
    out["parent_stops"] = parent("stops", after=f"extern long {stop}(); {stop}();",
                                 imports=("__request_module", "_printk", stop))
    out["stop"] = stop
    mdir = base / "lib" / "modules" / REL
    (mdir / "modules.order").write_text("")
    (mdir / "modules.builtin").write_text("")
    from kmodlab.lib.depmod import Depmod
    dm = Depmod(str(mdir))
    dm.run()
    dm.write()
    assert "alias kmodlab-child reqchild" in (mdir / "modules.alias").read_text()
    return out


def _unmodelled(name: str) -> bool:
    from kmodlab.emu.registry import FUNCTIONS, load_models
    load_models()
    return name not in FUNCTIONS


def sandbox(tree: Path | None) -> Sandbox:
    sb = Sandbox()
    with sb.kernel.session(write=True) as m:
        m.use_module_tree(tree)
    return sb


def lines(sb: Sandbox) -> list[str]:
    return [l.split("] ", 1)[1] for l in sb.dmesg()]


def proc_modules(sb: Sandbox) -> dict[str, str]:
    return {l.split()[0]: l for l in sb.read("/proc/modules").splitlines()}


def test_request_module_loads_the_child_from_the_tree(kos):
    """The parent's request_module("kmodlab-child") resolves the alias in the tree's
    modules.alias, loads reqchild (its init runs first), returns 0; the parent goes LIVE."""
    sb = sandbox(kos["tree"])
    res = sb.insmod(kos["parent"])
    mods = proc_modules(sb)
    assert set(mods) == {"reqchild", "reqparent"}
    assert " Live " in mods["reqchild"] and " Live " in mods["reqparent"]
    log = lines(sb)
    assert log.index("reqchild: init") < log.index("reqparent: request_module returned 0")
    req = [c for c in res.details["calls"] if c.name == "__request_module"]
    assert [(c.ret, c.note) for c in req] == [(0, "modprobe -q -- kmodlab-child")]
    with sb.kernel.session(write=False) as m:
        assert [mod.name for mod in m.modules] == ["reqchild", "reqparent"]   # newest first
        assert [e[1:] for e in m.events] == [("COMING", "reqparent"), ("COMING", "reqchild"),
                                             ("LIVE", "reqchild"), ("LIVE", "reqparent")]
        assert not any(r.endswith(":init") for r in m.mm.regions)   # both inits freed
    sb.rmmod("reqparent")
    sb.rmmod("reqchild")


def test_already_loaded_child_is_not_loaded_again(kos):
    sb = sandbox(kos["tree"])
    sb.insmod(kos["tree"] / "lib" / "modules" / REL / "extra" / "reqchild.ko")
    sb.insmod(kos["parent"])
    assert lines(sb).count("reqchild: init") == 1
    assert "reqparent: request_module returned 0" in lines(sb)


def test_without_a_tree_request_module_returns_256(kos):
    """No module tree configured: modprobe exits 1 → the kernel returns 256, and the parent's
    code sees (and prints) it; nothing else is logged; no child."""
    sb = sandbox(None)
    sb.insmod(kos["parent"])
    assert set(proc_modules(sb)) == {"reqparent"}
    assert "reqparent: request_module returned 256" in lines(sb)
    assert not any("modprobe" in l for l in lines(sb))


def test_module_missing_from_the_tree_returns_256_and_nowait_0(kos):
    sb = sandbox(kos["tree"])
    sb.insmod(kos["parent_missing"])
    assert "reqparent: request_module returned 256" in lines(sb)
    sb.rmmod("reqparent")
    sb.insmod(kos["parent_nowait"])
    assert lines(sb)[-1] == "reqparent: request_module returned 0"


def test_empty_modprobe_path_is_enoent(kos):
    sb = sandbox(kos["tree"])
    with sb.kernel.session(write=True) as m:
        m.modprobe_path = ""
    sb.insmod(kos["parent"])
    assert "reqparent: request_module returned -2" in lines(sb)
    assert "reqchild" not in proc_modules(sb)


def test_stopped_init_takes_its_requested_module_back(kos):
    """The parent loads the child, then stops on an unmodelled call: the machine goes back to
    before the parent's init — the child is unloaded with it, saying so."""
    from kmodlab.errors import KernelError
    sb = sandbox(kos["tree"])
    with pytest.raises(KernelError) as e:
        sb.insmod(kos["parent_stops"])
    assert e.value.errno == 38
    assert proc_modules(sb) == {}
    log = lines(sb)
    assert log.index("reqchild: init") < log.index("reqparent: request_module returned 0")
    assert ("kmodlab: reqchild: unloaded with reqparent, whose stopped init had loaded it "
            "through request_module") in log
    with sb.kernel.session(write=False) as m:
        assert not any(r.startswith(("reqchild:", "reqparent:")) for r in m.mm.regions)
        assert ("GOING", "reqchild") in [e[1:] for e in m.events]
    sb.insmod(kos["parent"])                 # and it all works again
    assert set(proc_modules(sb)) == {"reqchild", "reqparent"}


def test_cli_modprobe_d_makes_the_tree_the_machines(kos, machine_dir):
    """`kmodlab modprobe -d TREE reqparent`: the tree is recorded on the machine before the
    insert, so the parent's request_module loads reqchild from it; a later plain insmod uses
    the recorded tree too (persisted)."""
    shutil.copy(kos["parent"], kos["tree"] / "lib" / "modules" / REL / "extra" / "reqparent.ko")
    try:
        from kmodlab.lib.depmod import Depmod
        dm = Depmod(str(kos["tree"] / "lib" / "modules" / REL))
        dm.run()
        dm.write()

        def run(*args):
            p = subprocess.run([sys.executable, "-m", "kmodlab", *map(str, args)],
                               capture_output=True, text=True)
            return p.returncode, p.stdout, p.stderr
        rc, out, err = run("modprobe", "-d", kos["tree"], "reqparent")
        assert (rc, err) == (0, "")
        rc, out, _ = run("lsmod")
        assert {l.split()[0] for l in out.splitlines()[1:]} == {"reqchild", "reqparent"}
        rc, out, _ = run("dmesg")
        log = [l.split("] ", 1)[1] for l in out.splitlines()]
        assert log.index("reqchild: init") < log.index("reqparent: request_module returned 0")
        assert run("rmmod", "reqparent")[0] == 0 and run("rmmod", "reqchild")[0] == 0
        assert run("insmod", kos["parent"])[0] == 0          # the tree stayed the machine's
        rc, out, _ = run("lsmod")
        assert {l.split()[0] for l in out.splitlines()[1:]} == {"reqchild", "reqparent"}
    finally:
        os.unlink(kos["tree"] / "lib" / "modules" / REL / "extra" / "reqparent.ko")
        dm = Depmod(str(kos["tree"] / "lib" / "modules" / REL))
        dm.run()
        dm.write()


# --- real Debian modules ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def nls_tree(tmp_path_factory, debian_modules_tree):
    """A tree with the four NLS modules: nls_euc-jp needs cp932, nls_koi8-ru needs koi8-u."""
    base = tmp_path_factory.mktemp("nls") / "root"
    mdir = base / "lib" / "modules" / REL
    (mdir / "kernel" / "fs" / "nls").mkdir(parents=True)
    for n in ("nls_euc-jp", "nls_cp932", "nls_koi8-ru", "nls_koi8-u"):
        shutil.copy(debian_modules_tree / "kernel" / "fs" / "nls" / f"{n}.ko",
                    mdir / "kernel" / "fs" / "nls")
    for f in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        shutil.copy(debian_modules_tree / f, mdir / f)
    from kmodlab.lib.depmod import Depmod
    dm = Depmod(str(mdir))
    dm.run()
    dm.write()
    return base


@pytest.mark.parametrize("parent, child, charset", [("nls_euc-jp", "nls_cp932", "cp932"),
                                                    ("nls_koi8-ru", "nls_koi8_u", "koi8-u")])
def test_debian_nls_init_requests_its_base_charset(nls_tree, parent, child, charset):
    """nls_euc-jp's init is ``p_nls = load_nls("cp932")``: the charset is not registered, so
    the kernel runs modprobe for nls_cp932, whose init registers it; the parent copies the
    tables from it (reads the child's memory) and registers euc-jp."""
    sb = sandbox(nls_tree)
    res = sb.insmod(nls_tree / "lib" / "modules" / REL / "kernel" / "fs" / "nls" / f"{parent}.ko")
    mods = proc_modules(sb)
    pname = parent.replace("-", "_")
    assert set(mods) == {child, pname}
    assert " Live " in mods[child] and " Live " in mods[pname]
    with sb.kernel.session(write=False) as m:
        charsets = [t["charset"] for t in m.emu_state["nls"]]
        assert charsets == [parent[4:], charset]            # parent's table pushed last
    load = next(c for c in res.details["calls"] if c.name == "load_nls")
    assert load.note == f"request_module(nls_{charset}) = 0" and load.ret != 0
    assert sb.read("/proc/sys/kernel/tainted") == "0\n"     # signed Debian modules


def test_debian_nls_without_a_tree_fails_as_the_kernel_would(nls_tree):
    """No tree: load_nls gets NULL after modprobe fails; nls_euc-jp's init returns -EINVAL."""
    from kmodlab.errors import KernelError
    sb = sandbox(None)
    with pytest.raises(KernelError) as e:
        sb.insmod(nls_tree / "lib" / "modules" / REL / "kernel" / "fs" / "nls" / "nls_euc-jp.ko")
    assert e.value.errno == 22
    assert proc_modules(sb) == {}
