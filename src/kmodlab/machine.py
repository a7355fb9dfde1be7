"""One sandbox machine: a kernel profile plus everything a running kernel keeps between syscalls.

The module list, module memory, kmalloc heap, per-CPU area, kernel log, taint and once-per-boot
flags live in a :class:`Machine`; it is the only mutable state of the sandbox kernel.  Between
commands it is saved in a state directory (default ``$XDG_STATE_HOME/kmodlab/machine``;
``--machine DIR`` or ``KMODLAB_MACHINE`` choose another):

    DIR/lock            flock'ed for the whole of a command that changes the machine
    DIR/current         symlink to the live generation, switched atomically (rename)
    DIR/gen-N/state.json, DIR/gen-N/mem/<region>.bin

A command works on a copy in memory and either commits a whole new generation or nothing, so a
crash or a failed load never leaves the machine torn: a process killed at any point leaves
``current`` on the generation before its command or on the one after, never between; what it
left half-written (``.tmp-gen-*``, a ``gen-N`` that ``current`` never reached, ``.current-*``)
is garbage the next committing command removes; the flock dies with its process.
(``KMODLAB_TEST_KILL_AT=<point>`` makes a process SIGKILL itself at one named point of a
command — :func:`crash_point` — for tests/test_crash.py; unset, it does nothing.)

The machine's boot-time policy comes from the profile's configuration and from its kernel
command line (``KMODLAB_CMDLINE`` when the machine boots, shown in /proc/cmdline):
``module_blacklist=a,b`` (kernel/module/main.c blacklisted()), ``module.sig_enforce=1``
(CONFIG_MODULE_SIG_FORCE=y has it on from the start) and ``lockdown=integrity|confidentiality``
(security/lockdown, where the profile has CONFIG_SECURITY_LOCKDOWN_LSM).

``request_module()`` from a module's init or exit (kernel/kmod.c's usermode ``modprobe -q --
NAME``) is served by :meth:`Machine.request_module`: kmodlab's modprobe runs in-process against
the machine's *module tree* and loads into this same machine.  The tree is the one the last
``kmodlab modprobe -d BASEDIR [-S VERSION]`` against this machine used (``modprobe_tree`` =
[basedir, version], persisted; the sandbox profile's own Debian tree is
``kmodlab modprobe -d $(kmodlab modprobe --tree) …``); Python users set it with
:meth:`Machine.use_module_tree`.  Without a tree, modprobe finds nothing: exit 1, which
request_module returns as 256, like a kernel whose /lib/modules has no such module.
"""
from __future__ import annotations

import base64
import bisect
import dataclasses
import fcntl
import json
import os
import random
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from .kernel.mm import AddressSpace, Heap, PAGE_SIZE, PERCPU_AREA_SIZE, PERCPU_BASE, Region
from .kernel.module.internal import KernelSymbol, Layout, Module, ParamInfo
from .kernel.printk import KERN_INFO, KERN_NOTICE, KERN_WARNING, LogRecord

STATE_VERSION = 3
MAX_KMOD_CONCURRENT = 50            # kernel/kmod.c: usermode modprobes at once (max_modprobes)
MAX_KMOD_ALL_BUSY_TIMEOUT = 5       # seconds request_module waits for a free slot
ETIME = 62


LOCKDOWN_LEVELS = ("none", "integrity", "confidentiality")   # lockdown_levels[], in order


def crash_point(name: str) -> None:
    """Test hook: SIGKILL this process here when ``KMODLAB_TEST_KILL_AT`` names this point
    (tests/test_crash.py drives it; unset, as for every user, it does nothing)."""
    if os.environ.get("KMODLAB_TEST_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def default_machine_dir() -> Path:
    env = os.environ.get("KMODLAB_MACHINE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "kmodlab" / "machine"


@dataclass
class Machine:
    profile_name: str
    boot_wall: float = field(default_factory=time.time)
    boot_id: str = ""
    taint: int = 0
    modules: list[Module] = field(default_factory=list)        # newest first, like the kernel's list
    mm: AddressSpace = field(default_factory=AddressSpace)
    heap: Heap = field(default_factory=Heap)
    log: list[LogRecord] = field(default_factory=list)
    once: set[str] = field(default_factory=set)
    events: list[tuple[int, str, str]] = field(default_factory=list)   # (ts_ns, event, module)
    module_load_offset: int = 0
    percpu_used: list[tuple[int, int, str]] = field(default_factory=list)  # (offset, size, module)
    modules_disabled: int = 0
    sig_enforce: bool = False
    blacklist: list[str] = field(default_factory=list)
    emu_state: dict = field(default_factory=dict)     # the modelled kernel's registries (JSON)
    lockdown: int = 0               # index in LOCKDOWN_LEVELS (security/lockdown kernel_locked_down)
    cmdline: str = ""               # the kernel command line it booted with (/proc/cmdline)
    last_unloaded: str = ""
    kmalloced_params: set[int] = field(default_factory=set)   # params.c's kmalloced_params
    modprobe_tree: list | None = None       # [basedir, version] request_module's modprobe uses
    modprobe_path: str = "/sbin/modprobe"   # kernel/kmod.c modprobe_path ("" = request_module off)
    profile: object = field(default=None, repr=False, compare=False)   # runtime only
    kmod_running: int = field(default=0, repr=False, compare=False)    # runtime: helpers in flight
    nested_loads: list = field(default_factory=list, repr=False, compare=False)  # runtime, per run
    comm: str = field(default="insmod", repr=False, compare=False)   # runtime: current->comm
    _emu_tables: tuple | None = field(default=None, repr=False, compare=False)  # runtime cache
    _symbol_index: dict = field(default_factory=dict, repr=False, compare=False)  # runtime cache

    # -- boot ----------------------------------------------------------------------------------
    @classmethod
    def boot(cls, profile_name: str, seed: int | None = None, profile=None,
             cmdline: str = "") -> "Machine":
        """A freshly booted machine; with ``profile`` it is attached and named in the banner,
        and its configuration and ``cmdline`` set the boot-time policy (:meth:`boot_policy`)."""
        rnd = random.Random(seed)
        m = cls(profile_name=profile_name, boot_id=f"{rnd.getrandbits(64):016x}",
                cmdline=" ".join(cmdline.split()))
        # x86-64 with KASLR: module_load_offset is a random whole number of pages in [1, 1024],
        # chosen once per boot (arch/x86/kernel/module.c).
        m.module_load_offset = rnd.randint(1, 1024) * PAGE_SIZE
        m.mm.map("percpu", PERCPU_BASE, PERCPU_AREA_SIZE)
        m.profile = profile
        if profile is not None:
            m.printk(KERN_INFO, f"Linux version {profile.release} (kmodlab sandbox kernel, profile "
                     f"{profile_name}) {profile.version}")
        else:
            m.printk(KERN_INFO, f"Linux version {profile_name} (kmodlab sandbox kernel)")
        m.boot_policy()
        return m

    def profile_has(self, option: str) -> bool:
        return self.profile is not None and self.profile.enabled(option)

    def boot_policy(self) -> None:
        """What the kernel decides at boot about who may load: CONFIG_MODULE_SIG_FORCE
        (sig_enforce's initial value), CONFIG_LOCK_DOWN_KERNEL_FORCE_* (lockdown_lsm_init), and
        the command line: ``lockdown=`` (an early_param: "integrity" or "confidentiality",
        anything else ignored), ``module.sig_enforce=`` (bool; bare = Y),
        ``module_blacklist=`` (charp, the last one wins).  Parameter names compare with '-'
        and '_' alike (parameq), values byte for byte."""
        from .kernel.params import kstrtobool, next_arg, parameq
        self.sig_enforce = self.profile_has("MODULE_SIG_FORCE")
        lsm = self.profile_has("SECURITY_LOCKDOWN_LSM")
        forced = 2 if self.profile_has("LOCK_DOWN_KERNEL_FORCE_CONFIDENTIALITY") else \
            1 if self.profile_has("LOCK_DOWN_KERNEL_FORCE_INTEGRITY") else 0
        if lsm and forced:                  # early LSM init, before the command line's turn
            self.lock_kernel_down("Kernel configuration", forced)
        rest = self.cmdline.lstrip()
        while rest:
            param, val, rest = next_arg(rest)
            if parameq(param, "lockdown") and lsm and val in LOCKDOWN_LEVELS[1:]:
                self.lock_kernel_down("command line", LOCKDOWN_LEVELS.index(val))
            elif parameq(param, "module.sig_enforce"):
                err, on = kstrtobool(val) if val is not None else (0, True)
                if not err:
                    self.sig_enforce = bool(on)
            elif parameq(param, "module_blacklist") and val is not None:
                self.blacklist = [x for x in val.split(",")] if val else []
        if self.cmdline:
            self.printk(KERN_NOTICE, f"Kernel command line: {self.cmdline}")

    def lock_kernel_down(self, where: str, level: int) -> int:
        """security/lockdown lock_kernel_down: only ever raised; 0 or -EPERM."""
        if self.lockdown >= level:
            return -1
        self.lockdown = level
        self.printk(KERN_NOTICE, f"Kernel is locked down from {where}; see man kernel_lockdown.7")
        return 0

    # -- the kernel's little services ------------------------------------------------------------
    def now_ns(self) -> int:
        return max(0, int((time.time() - self.boot_wall) * 1e9))

    def printk(self, level: int, text: str) -> LogRecord:
        rec = LogRecord(self.now_ns(), level, text)
        self.log.append(rec)
        return rec

    def printk_once(self, key: str, level: int, text: str) -> None:
        if key not in self.once:
            self.once.add(key)
            self.printk(level, text)

    def add_taint(self, bit: int, unreliable: bool = False) -> None:
        """kernel/panic.c add_taint: a taint that makes lock debugging unreliable
        (LOCKDEP_NOW_UNRELIABLE) switches it off, saying so the first time."""
        if unreliable and "debug_locks" not in self.once:
            self.once.add("debug_locks")
            self.printk(KERN_WARNING, "Disabling lock debugging due to kernel taint")
        self.taint |= 1 << bit

    def find_module(self, name: str, include_unformed: bool = False) -> Module | None:
        for mod in self.modules:
            if mod.name == name and (include_unformed or mod.state != 3):
                return mod
        return None

    def notify(self, event: str, mod: Module) -> None:
        """The module notifier chain: recorded so users (and tests) can see it run."""
        self.events.append((self.now_ns(), event, mod.name))

    @property
    def rules(self):
        """What the profile's release does differently (kernel/module/release.py)."""
        r = self.profile._rules                 # rules_for caches them on the profile
        if r is None:
            from .kernel.module.release import rules_for
            r = rules_for(self.profile)
        return r

    def profile_config_enabled(self, option: str) -> bool:
        return self.profile.enabled(option)

    def ops_name_of(self, addr: int) -> str | None:
        """Name of the kernel export at ``addr`` (param ops are kernel data exports)."""
        return self.profile.export_at(addr)

    def symbolize(self, addr: int) -> str | None:
        """'name+0xoff/0xsize [module]' for a module address, 'name+0xoff' for the kernel."""
        for mod in self.modules:
            if mod.contains(addr):
                values, names = self._module_symbol_index(mod)
                i = bisect.bisect_right(values, addr) - 1
                if i >= 0:
                    i = bisect.bisect_left(values, values[i])    # the first of equal addresses
                    return f"{names[i]}+{addr - values[i]:#x} [{mod.name}]"
                return f"{addr:#x} [{mod.name}]"
        near = self.profile.nearest(addr) if self.profile else None
        if near and near[1] < 0x100000:
            return f"{near[0]}+{near[1]:#x}"
        return None

    def _module_symbol_index(self, mod: Module) -> tuple[list[int], list[str]]:
        """The module's kallsyms sorted by address (for symbolize), kept while the module's
        table stays the same one (the full table while it initialises, the core copy after)."""
        from .kernel.module.kallsyms import module_symbols
        key = (id(mod), mod.core.base, len(mod.mem), repr(mod.kallsyms))
        hit = self._symbol_index.get(mod.name)
        if hit is None or hit[0] != key:
            syms = sorted(((v, n) for v, _t, n in module_symbols(self.mm, mod)),
                          key=lambda vn: vn[0])            # stable: table order among equals
            hit = self._symbol_index[mod.name] = (key, [v for v, _ in syms], [n for _, n in syms])
        return hit[1], hit[2]

    # -- request_module: the usermode modprobe -------------------------------------------------
    def use_module_tree(self, basedir: str | os.PathLike | None, version: str | None = None) -> None:
        """The module tree request_module's modprobe uses: ``<basedir>/lib/modules/<version>``
        (version: the profile's release); None: no tree (modprobe finds nothing)."""
        if basedir is None:
            self.modprobe_tree = None
            return
        version = version or (self.profile.release if self.profile is not None else self.profile_name)
        self.modprobe_tree = [os.path.abspath(os.fspath(basedir)), version]

    def request_module(self, name: str, wait: bool) -> int:
        """kernel/kmod.c after the name is formatted: throttle at ``MAX_KMOD_CONCURRENT``
        helpers in flight (nobody frees a slot while this one waits: after
        ``MAX_KMOD_ALL_BUSY_TIMEOUT`` seconds, -ETIME and the kernel's two warnings), then
        ``call_modprobe``: ``modprobe -q -- NAME`` runs against this machine and its module tree
        (see the module docstring); returns its wait status when ``wait`` (0, or 256 when
        modprobe exits 1), else 0 (UMH_WAIT_EXEC: the helper started — it runs to completion
        before the caller goes on, one of the orders the kernel allows).  Modules it loads are
        remembered so that a stopped init can take them back with it."""
        if self.kmod_running >= MAX_KMOD_CONCURRENT:
            self.printk(KERN_WARNING, f"request_module: kmod_concurrent_max (0) close to 0 "
                        f"(max_modprobes: {MAX_KMOD_CONCURRENT}), for module {name}, throttling...")
            self.printk(KERN_WARNING, f"request_module: modprobe {name} cannot be processed, kmod "
                        f"busy with {MAX_KMOD_CONCURRENT} threads for more than "
                        f"{MAX_KMOD_ALL_BUSY_TIMEOUT} seconds now")
            return -ETIME
        before = {id(x) for x in self.modules}
        self.kmod_running += 1
        try:
            code = self.run_modprobe(name)
        finally:
            self.kmod_running -= 1
        if self.nested_loads:
            self.nested_loads[-1].extend(x for x in self.modules if id(x) not in before)
        return (code & 0xFF) << 8 if wait else 0

    def run_modprobe(self, name: str) -> int:
        """``modprobe -q -- NAME`` in this process, against this machine; its exit code."""
        if not self.modprobe_tree:
            return 1                        # FATAL: Module NAME not found (silenced by -q)
        import contextlib
        import io
        from .sandbox import SandboxKernel
        from .tools.modprobe import usermode_modprobe
        basedir, version = self.modprobe_tree
        kernel = SandboxKernel(machine=self)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return usermode_modprobe(kernel, name, basedir, version)

    def _take_back_nested(self, parent: Module, loaded: list[Module]) -> None:
        """A stopped init is undone whole: modules its request_module loaded go too (newest
        first, without running their exit: the modelled kernel is rolled back anyway)."""
        from .kernel.module.internal import MODULE_STATE_GOING
        from .kernel.module.main import free_module
        for child in [x for x in self.modules if any(x is y for y in loaded)]:   # newest first
            self.printk(KERN_WARNING, f"kmodlab: {child.name}: unloaded with {parent.name}, whose "
                        f"stopped init had loaded it through request_module")
            child.state = MODULE_STATE_GOING
            self.notify("GOING", child)
            free_module(self, child)

    def run_module_code(self, mod: Module, addr: int, what: str, result, trace: bool = False) -> int:
        """Run a module function (init/exit) on the emulated CPU; returns its int result.

        When the run *stops* (an unmodelled function, an oops, the budget) — an event of the
        sandbox, not of the kernel — what the partial run did to the modelled kernel is undone,
        so that no registration or allocation points into a module that is then freed: an init
        is rolled back to before it ran, modules its request_module() loaded included; an
        exit's registrations into the module are dropped (the module goes anyway, as exit
        cannot fail).  A module init that runs for a request_module() (comm ``modprobe``) runs
        on its own emulator while the requesting one waits (``Emulator.nested``)."""
        import copy
        from .emu.emulator import SENTINEL, Emulator
        from .emu.errors import EmuError
        # what an undone init restores: the models' registries, the heap, and the bytes of every
        # other region (the init may have written into other modules' data: a lock it took in
        # a module it called, a list it linked itself into)
        memory = {} if what != "init" else {
            r.name: (r.data, bytes(r.data)) for r in self.mm.regions.values() if r.name != "heap"}
        saved = (copy.deepcopy(self.emu_state), dict(self.heap.allocs), list(self.heap.free),
                 self.heap.top, bytes(self.mm.regions["heap"].data) if "heap" in self.mm.regions else None,
                 set(self.kmalloced_params), memory)
        comm = "modprobe" if self.kmod_running else "insmod" if what == "init" else "rmmod"
        if self._emu_tables is None:
            from .emu.emulator import export_tables
            self._emu_tables = export_tables(self.profile.exports)
        emu = Emulator(self.mm, self.heap, self.profile.exports, printk=self.printk,
                       profile=self.profile,
                       symbolize=self.symbolize, trace=trace, state=self.emu_state, comm=comm,
                       request_module=self.request_module, modprobe_path=self.modprobe_path,
                       tables=self._emu_tables)
        emu.uptime_ns = self.now_ns()
        def where(a: int) -> str:
            return "(tail call)" if a == SENTINEL else (self.symbolize(a) or f"{a:#x}")
        self.nested_loads.append([])
        try:
            return emu.call(addr, what=what)
        except EmuError:
            if what == "init":
                self._take_back_nested(mod, self.nested_loads[-1])
                self._restore(saved)
            else:
                for _t, lo, size, _r in mod.mem:
                    self.emu_state = _purge_refs(self.emu_state, lo, lo + size)
            raise
        finally:
            emu.close()
            self.nested_loads.pop()
            # rendered now, while init's symbols are still known
            result.calls.extend(emu.calls)
            result.trace.extend(f"{what}: {c.render(where)}" for c in emu.calls)

    def _restore(self, saved) -> None:
        state, allocs, free, top, heap, kparams, memory = saved
        for name, (data, before) in memory.items():
            r = self.mm.regions.get(name)
            if r is not None and r.data is data:
                data[:] = before               # same length: in place
        self.emu_state.clear()
        self.emu_state.update(state)
        self.heap.allocs, self.heap.free, self.heap.top = allocs, free, top
        if heap is None:
            self.mm.unmap("heap")
        else:
            self.mm.regions["heap"].data[:] = heap
        self.kmalloced_params = kparams

    def param_context(self, mod: Module):
        from .kernel.params import ParamCtx
        return ParamCtx(mm=self.mm, heap=self.heap, printk=self.printk, taint=self.add_taint,
                        ops_name_of=self.ops_name_of, locked_down=bool(self.lockdown),
                        kmalloced_params=self.kmalloced_params, comm=self.comm)

    def free_params(self, mod: Module) -> None:
        """Free what parameters own (kmalloc'd charp strings) when the module goes."""
        from .kernel import params
        if mod.params:
            params.destroy_params(self.param_context(mod), mod.params)

    # -- persistence -----------------------------------------------------------------------------
    def to_json(self) -> dict:
        def enc(o):
            if dataclasses.is_dataclass(o):
                return {f.name: enc(getattr(o, f.name)) for f in dataclasses.fields(o)}
            if isinstance(o, (bytes, bytearray)):
                return {"__b64__": base64.b64encode(bytes(o)).decode()}
            if isinstance(o, dict):
                return {k: enc(v) for k, v in o.items()}
            if isinstance(o, (list, tuple)):
                return [enc(v) for v in o]
            if isinstance(o, set):
                return sorted(o)
            return o
        d = {k: enc(getattr(self, k)) for k in (
            "profile_name", "boot_wall", "boot_id", "taint", "modules", "log", "once", "events",
            "module_load_offset", "percpu_used", "modules_disabled", "sig_enforce", "blacklist",
            "emu_state", "lockdown", "last_unloaded", "kmalloced_params", "modprobe_tree",
            "modprobe_path", "cmdline")}
        d["heap"] = {"allocs": [[a, s] for a, s in self.heap.allocs.items()],
                     "free": self.heap.free, "top": self.heap.top}
        d["regions"] = [[r.name, r.base, len(r.data)] for r in self.mm.regions.values()]
        d["version"] = STATE_VERSION
        return d

    @classmethod
    def from_json(cls, d: dict, memdir: Path) -> "Machine":
        def dec(o):
            if isinstance(o, dict) and "__b64__" in o:
                return base64.b64decode(o["__b64__"])
            return o

        def module(md: dict) -> Module:
            md = dict(md)
            md["core"] = Layout(**md["core"])
            md["init_layout"] = Layout(**md["init_layout"])
            if "core_region" in md:          # a state written before per-type allocations
                core, init = md.pop("core_region"), md.pop("init_region")
                md["mem"] = [["core", md["core"].base, md["core"].size, core]] + (
                    [["init", md["init_layout"].base, md["init_layout"].size, init]] if init else [])
            md["syms"] = [KernelSymbol(**s) for s in md["syms"]]
            md["params"] = [ParamInfo(**p) for p in md["params"]]
            md["notes"] = {k: dec(v) for k, v in md["notes"].items()}
            return Module(**md)

        m = cls(profile_name=d["profile_name"])
        for k in ("boot_wall", "boot_id", "taint", "module_load_offset", "modules_disabled",
                  "sig_enforce", "blacklist", "emu_state", "lockdown", "last_unloaded"):
            setattr(m, k, d[k])
        m.lockdown = int(m.lockdown)                     # a bool in states written before levels
        for k in ("modprobe_tree", "modprobe_path", "cmdline"):   # absent in older states
            if k in d:
                setattr(m, k, d[k])
        m.modules = [module(x) for x in d["modules"]]
        m.log = [LogRecord(**r) for r in d["log"]]
        m.once = set(d["once"])
        m.kmalloced_params = set(d["kmalloced_params"])
        m.events = [tuple(e) for e in d["events"]]
        m.percpu_used = [tuple(p) for p in d["percpu_used"]]
        m.heap = Heap(allocs={a: s for a, s in d["heap"]["allocs"]},
                      free=[tuple(f) for f in d["heap"]["free"]], top=d["heap"]["top"])
        for i, (name, base, size) in enumerate(d["regions"]):
            data = bytearray((memdir / f"{i}.bin").read_bytes())
            if len(data) != size:
                raise OSError(f"machine state damaged: region {name} has {len(data)} bytes, not {size}")
            m.mm.regions[name] = Region(name, base, data)
        return m


def _purge_refs(obj, lo: int, hi: int):
    """``obj`` without the dict entries and list items that hold an address in [lo, hi)."""
    def refers(o) -> bool:
        if isinstance(o, bool):
            return False
        if isinstance(o, int):
            return lo <= o < hi
        if isinstance(o, str):
            try:
                return lo <= int(o, 0) < hi
            except ValueError:
                return False
        if isinstance(o, dict):
            return any(refers(k) or refers(v) for k, v in o.items())
        if isinstance(o, (list, tuple)):
            return any(refers(v) for v in o)
        return False

    def walk(o, top: bool):
        if isinstance(o, dict):
            return {k: walk(v, False) for k, v in o.items() if not (refers(k) or (not top and refers(v)))} \
                if not top else {k: walk(v, False) for k, v in o.items()}
        if isinstance(o, list):
            return [walk(v, False) for v in o if not refers(v)]
        return o
    return walk(obj, True)


class MachineStore:
    """The state directory of one machine: lock, load, atomic commit.

    Every command that reads or changes the machine holds ``lock`` (flock, exclusive) from
    before its load to after its commit, so commands of several processes are serialised whole
    (each one sees the machine as the previous one left it).  A commit writes
    ``.tmp-gen-N-PID/`` completely, renames it to ``gen-N``, points a fresh ``.current-PID``
    symlink at it and renames that over ``current``: the one step that changes what the
    machine is.  Garbage of killed processes is removed by the next commit."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else default_machine_dir()
        self._lock_fd: int | None = None

    def lock(self) -> None:
        from .errors import UsageError
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                                    0o644)
        except OSError as e:
            raise UsageError(f"cannot use the machine directory {self.path}: {e.strerror}") from None
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
                break
            except InterruptedError:            # a signal while waiting: wait on
                continue
        crash_point("locked")

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def exists(self) -> bool:
        return (self.path / "current").exists()

    def load(self) -> Machine:
        cur = self.path / "current"
        gen = cur.resolve()
        d = json.loads((gen / "state.json").read_text())
        if d.get("version") != STATE_VERSION:
            raise OSError(f"machine state in {self.path} has version {d.get('version')}, "
                          f"expected {STATE_VERSION}: run 'kmodlab machine reset'")
        return Machine.from_json(d, gen / "mem")

    def _collect_garbage(self, keep: str | None) -> None:
        """Remove what no committed state refers to: temporary generations and links of
        commits that never finished, and every generation but ``keep``.  Called with the lock
        held, so no other process is writing any of them."""
        for p in self.path.iterdir():
            name = p.name
            if name.startswith(".tmp-gen-") or (name.startswith("gen-") and name != keep):
                shutil.rmtree(p, ignore_errors=True)
                crash_point("commit-gc")
            elif name.startswith(".current-"):
                try:
                    p.unlink()
                except OSError:
                    pass

    def commit(self, m: Machine) -> None:
        """Write a whole new generation, then switch ``current`` to it in one rename."""
        self.path.mkdir(parents=True, exist_ok=True)
        crash_point("commit-start")
        gens = [int(p.name[4:]) for p in self.path.glob("gen-*") if p.name[4:].isdigit()]
        n = max(gens) + 1 if gens else 1
        tmp = self.path / f".tmp-gen-{n}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        (tmp / "mem").mkdir(parents=True)
        for i, r in enumerate(m.mm.regions.values()):
            (tmp / "mem" / f"{i}.bin").write_bytes(r.data)
            crash_point("commit-region")
        state = json.dumps(m.to_json()).encode()
        with open(tmp / "state.json", "wb") as f:
            f.write(state[:len(state) // 2])
            f.flush()
            crash_point("commit-state-half")
            f.write(state[len(state) // 2:])
        crash_point("commit-state")
        final = self.path / f"gen-{n}"
        os.rename(tmp, final)
        crash_point("commit-renamed")
        link = self.path / f".current-{os.getpid()}"
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(final.name, link)
        crash_point("commit-linked")
        os.replace(link, self.path / "current")         # the atomic switch
        crash_point("commit-switched")
        self._collect_garbage(keep=final.name)

    def reset(self) -> None:
        """Back to no machine: ``current`` goes first (one unlink: from then on the next
        command boots a fresh kernel), then everything else but the lock."""
        if not self.path.exists():
            return
        cur = self.path / "current"
        if cur.is_symlink() or cur.exists():
            cur.unlink()
        crash_point("reset-unlinked")
        for p in self.path.iterdir():
            if p.name == "lock":
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink()
