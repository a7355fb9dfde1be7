"""The sandbox side of the mass-loading run (:mod:`.mass`), and the comparison.

:func:`replay` loads the recording's modules into one in-memory sandbox machine (the embedded
profile of the same release), in the same order, each placed exactly where the real kernel put
it (``placement`` = the real core base and the real init base seen by the kprobe), in two steps
per module:

1. ``load_module(..., run_init=False)``: the module is left COMING.  Compared now: errno of the
   load, the load-time log lines, coresize and initsize (initsize against the real
   ``init_layout.size`` logged by the kprobe), section names and offsets (core sections relative
   to the core base, ``.init*``/``.symtab``/``.strtab`` relative to the init base), and the
   whole core region byte for byte (:mod:`.bytediff`).
2. ``do_init_module``: the module's init under the emulator.  If it stops on an unmodelled
   kernel function the disagreement is *explained* (``unmodelled function X``: counted per
   name, the emulator's to-do list) and the module is loaded again with init skipped (its
   state goes COMING → LIVE as if init had returned 0), so later modules find it, as they do
   in the real kernel.  Compared then: the errno of the whole call, init's log lines, the taint,
   the /proc/modules line, sysfs refcnt/initstate/initsize/taint/holders.

At the end every module's /proc/modules line and holders are compared again (users arrive later).

Each disagreement gets a class: ``sandbox bug`` (load_module or sysfs/procfs gave another
answer than Linux), ``emulator`` (init ran to completion under emulation but did something else
than the real init: the emulator's models, not load_module), or ``explained: <reason>``.  The
reasons are specific and checked where they can be: an unmodelled function (named); runtime
references (only the part of a refcount beyond the user modules, which are compared exactly);
a dynamic device number (misc minor, char major) that is off by exactly the number of devices
registered before by inits the emulator did not complete (followed through /proc/misc and
/proc/devices after every real load); a ``%p`` hash; kernel-internal log lines (crypto
testmgr); hardware: a driver bound to one of the guest's own devices (its modalias matches
one the guest recorded), or a log that talks to a device such a driver created.
"""
from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..live import kmsg_text
from . import bytediff

# Kernel log lines printed not by the module's init but by kernel code its registration runs,
# which the emulator's models do not run (named, so that each stays an explained difference).
KERNEL_INTERNAL_LOG = [
    (re.compile(r"^alg: No test for "),
     "crypto testmgr: the self-test lookup run when an algorithm registers is not modelled"),
    (re.compile(r"^DRBG: "),
     "crypto DRBG: the default RNG's instantiation (and its jitterentropy fallback) is not modelled"),
]


def internal_only(real: list[str], sandbox: list[str]) -> str | None:
    """If ``real`` is ``sandbox`` plus lines of KERNEL_INTERNAL_LOG, the named reasons."""
    rest, reasons = [], []
    for line in real:
        hit = next((why for rx, why in KERNEL_INTERNAL_LOG if rx.search(line)), None)
        if hit:
            reasons.append(hit)
        else:
            rest.append(line)
    return "; ".join(dict.fromkeys(reasons)) if reasons and rest == sandbox else None


class DynamicNumbers:
    """Who holds which dynamically handed-out device number, in both kernels, to explain one
    that differs: a misc minor (misc.c hands them out from 127 down) or a char major
    (__register_chrdev_region: from 254 down to 234, then 511 down to 384).  The number a module
    gets depends on every registration before it: the real kernel's are followed through
    /proc/misc and /proc/devices (recorded at the start and after each load), the sandbox's are
    its registries plus the booted kernel's devices."""

    KINDS = {"misc": lambda n: n < 128,
             "chrdev": lambda n: 234 <= n <= 254 or 384 <= n <= 511}

    def __init__(self, rec: dict, kind: str):
        from ..kernel.module.release import kernel_version
        self.version = kernel_version(rec.get("release", ""))
        self.kind, self.dynamic = kind, self.KINDS[kind]
        if kind == "misc" and self.version >= (6, 12):
            self.dynamic = lambda n: n > 255           # 6.12.118: from 256 up
        self.real: dict[str, tuple[int, str]] = {}        # name → (number, module that added it)
        self.gone: dict[str, str] = {}                    # name → the load that removed it
        for ln in rec.get(f"{kind}_at_start", []):
            num, _sp, name = ln.partition(" ")
            self.real[name] = (int(num), "(boot)")

    def observe(self, module: str, obs: dict) -> None:
        for ln in obs.get(self.kind, {}).get("removed", []):
            self.real.pop(ln.partition(" ")[2], None)
            self.gone[ln.partition(" ")[2]] = module
        for ln in obs.get(self.kind, {}).get("added", []):
            num, _sp, name = ln.partition(" ")
            self.real[name] = (int(num), module)

    def sandbox(self, sb) -> dict[str, int]:
        from ..emu.models.driver import (BOOT_CHRDEVS, BOOT_CHRDEVS_612, BOOT_MISC,
                                         BOOT_MISC_612)
        new = self.version >= (6, 12)
        if self.kind == "misc":
            reg = sb.m.emu_state.get("driver", {}).get("misc", {})
            return {**(BOOT_MISC_612 if new else BOOT_MISC),
                    **{n: d["minor"] for n, d in reg.items()}}
        return {**{name: major for major, _lo, _n, name in
                   (BOOT_CHRDEVS_612 if new else BOOT_CHRDEVS)},
                **{r["name"]: r["major"] for r in sb.m.emu_state.get("chrdev", [])}}

    def explain(self, obs: dict, before: dict[str, int], after: dict[str, int],
                real_log: list[str], sb_log: list[str], incomplete: set[str]) -> str | None:
        """The reason if the logs differ only in the dynamic numbers this init was given, the
        two kernels' devices before it differ only by loads the emulator did not complete, and
        each kernel gave out the first numbers free in its own set."""
        added = {ln.partition(" ")[2]: int(ln.partition(" ")[0])
                 for ln in obs.get(self.kind, {}).get("added", [])}
        mine = {n: m for n, m in after.items() if n not in before}
        if not mine or set(mine) != set(added) or \
                not all(self.dynamic(m) for m in list(mine.values()) + list(added.values())):
            return None
        fixed = list(sb_log)
        for n, m in mine.items():
            fixed = [re.sub(rf"\b{m}\b", str(added[n]), ln) for ln in fixed]
        if fixed != real_log:
            return None
        # the two kernels' dynamic devices before this init may differ only through loads the
        # emulator did not complete (``incomplete``: inits skipped, or run against a module
        # whose init was skipped): devices the real kernel had that such an init registered,
        # and devices the sandbox still has that such a load removed in the real kernel
        # (speakup_spkout, through speakup, replaces speakup_soft's synth devices); the
        # numbers then differ as the free numbers do
        real_dyn = {n: who for n, (m, who) in self.real.items() if self.dynamic(m) and n not in added}
        sb_dyn = {n for n, m in before.items() if self.dynamic(m)}
        missing = {real_dyn[n] for n in set(real_dyn) - sb_dyn}
        surplus = {self.gone.get(n, "(never in the real kernel)") for n in sb_dyn - set(real_dyn)}
        if not (missing or surplus) or not (missing | surplus) <= incomplete:
            return None
        # and each kernel handed out the first free numbers of its own taken set
        real_taken = {m for n, (m, _w) in self.real.items() if n not in added}
        if set(added.values()) != set(self.first_free(real_taken, len(added))) or \
                set(mine.values()) != set(self.first_free(set(before.values()), len(mine))):
            return None
        return (f"explained: dynamic {'misc minor' if self.kind == 'misc' else 'char major'}: "
                "loads the emulator did not complete registered (or removed) devices before, "
                "so the two kernels had other numbers free")

    def first_free(self, taken: set[int], k: int) -> list[int]:
        """The first ``k`` numbers the kernel hands out when ``taken`` are in use."""
        from ..emu.models.driver import misc_dynamic_order
        order = misc_dynamic_order(self.version) if self.kind == "misc" else \
            [*range(254, 233, -1), *range(511, 383, -1)]
        from itertools import islice
        return list(islice((n for n in order if n not in taken), k))


HASHED_POINTER = re.compile(r"\b00000000[0-9a-f]{8}\b")


def hashed_pointers_only(real: list[str], sandbox: list[str]) -> str | None:
    """The reason if the logs differ only in plain-%p values: vsprintf prints a pointer as
    32 bits of siphash under a key drawn at boot (ptr_to_id), so no two boots agree."""
    mask = lambda lines: [HASHED_POINTER.sub("(hashed)", ln) for ln in lines]
    if len(real) == len(sandbox) and mask(real) == mask(sandbox) and real != sandbox:
        return "explained: %p prints pointers hashed with a key drawn at boot (ptr_to_id)"
    return None


def pending_work_only(real: list[str], sandbox: list[str], queued: list[str]) -> str | None:
    """The real log is the sandbox's followed by more lines, and the init left work queued
    that the sandbox never runs (emu/models/workqueue.py: a kworker runs it later): those
    lines are the work's (cfg80211's reg_work loading regulatory.db)."""
    if queued and len(real) > len(sandbox) and real[:len(sandbox)] == sandbox:
        return ("explained: the remaining lines are logged by work the init queued ("
                + ", ".join(dict.fromkeys(queued)) + "), which a kworker runs after it and the "
                "sandbox does not run")
    return None


UNMODELLED = re.compile(r"(?:init|exit) (?:called|read|wrote|ran an) unmodelled "
                        r"(?:kernel )?(function|data|CPU instruction) (\S+)")
PAGE = 4096
# Log lines load_module itself prints (kernel/module/*.c, §4.4): if the real kernel printed one,
# the sandbox must print it too, whether or not init is emulated.
LOAD_LOG = re.compile(r"(module verification failed|Unknown symbol|disagrees about version|"
                      r"no symbol version|taints kernel|version magic|exports duplicate symbol|"
                      r"module is already loaded|is blacklisted|Unknown rela relocation|"
                      r"overflow in relocation|invalid WRITE\|EXEC|parameters .* ignored|"
                      r"unknown parameter|module uses symbol|gave up waiting|"
                      r"Skipping invalid relocation|has both \.ctors|per-cpu alignment|"
                      r"Could not allocate .* percpu|please compile with -fno-common|"
                      r"module is from the staging directory)")
# Lines the kernel logs asynchronously or with machine-dependent numbers: not the call's own.
ASYNC = re.compile(r"^(random: |clocksource: |tsc: |hrtimer: |sched: RT throttling|workqueue: |rcu: |"
                   r"usb \d+-[\d.]+: |\S+ \d+-[\d.]+:\d+\.\d+ )")
# (a USB device "usb N-P:" or interface "drv N-P:C.I": the hub thread enumerating and binding)
TAINT_W = 1 << 9
LOAD_TAINTS = ~TAINT_W & 0x3FFFF       # taints load_module itself adds (all but W, in practice)
INIT_SECTION = re.compile(r"^\.init|^\.symtab$|^\.strtab$")


@dataclass
class Finding:
    module: str
    field: str
    cls: str                 # "sandbox bug", "emulator", "explained: ..."
    real: object = None
    sandbox: object = None

    def as_dict(self):
        return {"module": self.module, "field": self.field, "class": self.cls,
                "real": self.real, "sandbox": self.sandbox}


@dataclass
class Report:
    modules: int = 0
    fields_compared: int = 0
    agreements: int = 0
    findings: list[Finding] = field(default_factory=list)
    unmodelled: Counter = field(default_factory=Counter)
    init_outcomes: Counter = field(default_factory=Counter)
    emulator_stops: dict = field(default_factory=dict)     # module → why its init stopped
    hardware: dict = field(default_factory=dict)           # module → the guest device involved
    preload_init_failed: dict = field(default_factory=dict)
    bytes: list = field(default_factory=list)
    seconds: dict = field(default_factory=dict)

    def add(self, module, fld, real, sandbox, cls_if_differs="sandbox bug"):
        self.fields_compared += 1
        if real == sandbox:
            self.agreements += 1
            return True
        self.findings.append(Finding(module, fld, cls_if_differs, real, sandbox))
        return False

    def by_class(self) -> Counter:
        return Counter(f.cls for f in self.findings)

    def unexplained(self) -> list[Finding]:
        return [f for f in self.findings if not f.cls.startswith("explained")]

    def byte_totals(self) -> dict:
        t = {"modules": len(self.bytes), "compared": 0, "differing": 0, "explained": 0,
             "unexplained": 0, "by_reason": Counter(), "runtime_in_relocated": 0}
        for b in self.bytes:
            t["compared"] += b["compared"]
            t["differing"] += b["differing"]
            t["explained"] += sum(b["explained"].values())
            t["unexplained"] += b["unexplained_bytes"]
            t["runtime_in_relocated"] += b["runtime_in_relocated"]
            t["by_reason"].update(b["explained"])
        t["by_reason"] = dict(t["by_reason"].most_common())
        return t

    def as_dict(self) -> dict:
        return {"modules": self.modules, "fields_compared": self.fields_compared,
                "agreements": self.agreements, "disagreements": len(self.findings),
                "by_class": dict(self.by_class().most_common()),
                "unmodelled": dict(self.unmodelled.most_common()),
                "init_outcomes": dict(self.init_outcomes.most_common()),
                "emulator_stops": self.emulator_stops, "hardware": self.hardware,
                "preload_init_failed": self.preload_init_failed,
                "findings": [f.as_dict() for f in self.findings],
                "bytes": {"totals": self.byte_totals(), "modules": self.bytes},
                "seconds": self.seconds}


def _real_core_base(st: dict) -> int:
    return int(st["proc_modules"].split()[5], 16)


def _init_base(st: dict, core: int, coresize: int, probe: dict | None) -> int:
    if probe and probe.get("base"):
        return probe["base"]
    init = [a for n, a in st["sections"].items()
            if isinstance(a, int) and not core <= a < core + coresize]
    return (min(init) & ~(PAGE - 1)) if init else 0


def _alt_layout(profile) -> tuple[int, int]:
    """(sizeof(struct alt_instr), offsetof(alt_instr, instrlen)) from the kernel's BTF."""
    a = (profile.structs or {}).get("alt_instr") or {}
    if a.get("sizeof") and a.get("instrlen") is not None:
        return a["sizeof"], a["instrlen"]
    return 12, 10                                   # 6.1 (profiles without the fact)


def _uses(sb, mod) -> set[str]:
    """Every module ``mod`` uses, directly or through the modules it uses."""
    seen: set[str] = set()
    todo = list(mod.target_list)
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        t = sb.m.find_module(n, include_unformed=True)
        if t is not None:
            todo.extend(t.target_list)
    return seen


def _mem_placement(mem: dict | None) -> dict | None:
    """6.4+: {type: base} of the recorded module_memory regions (the non-empty ones)."""
    if not mem:
        return None
    return {t: v["base"] for t, v in mem.items() if v.get("size") and v.get("base")}


def _mem_offsets(sections: dict[str, int], mem: dict[str, tuple[int, int]]) -> dict[str, str]:
    """6.4+: section → "<type>+0x…" from the base of the module_memory region it lies in
    (a section may end exactly at its region's end: an empty one placed last)."""
    out = {}
    for n, a in sections.items():
        hit = next((t for t, (b, sz) in mem.items() if isinstance(a, int) and b <= a <= b + sz),
                   None)
        out[n] = f"{hit}+{a - mem[hit][0]:#x}" if hit else str(a)
    return out


def _span(regions: list[tuple[int, bytes]]) -> tuple[int, bytes, int]:
    """Several regions as one byte string from the lowest base, gaps (guard pages, other
    allocations) zero-filled: (base, bytes, gap bytes)."""
    lo = min(b for b, _ in regions)
    hi = max(b + len(d) for b, d in regions)
    buf = bytearray(hi - lo)
    for b, d in regions:
        buf[b - lo:b - lo + len(d)] = d
    return lo, bytes(buf), (hi - lo) - sum(len(d) for _, d in regions)


def _offsets(sections: dict[str, int], core: int, init: int, coresize: int) -> dict[str, str]:
    """Section → "core+0x…" / "init+0x…" (sections outside the core region count from init)."""
    out = {}
    for n, a in sections.items():
        if not isinstance(a, int):
            out[n] = str(a)
        elif core <= a < core + coresize:
            out[n] = f"core+{a - core:#x}"
        else:
            out[n] = f"init+{a - init:#x}"
    return out


def _proc_fields(line: str | None) -> dict | None:
    if line is None:
        return None
    p = line.split(" ")
    out = {"size": p[1], "refcount": p[2], "used_by": p[3], "state": p[4], "address": p[5]}
    out["flags"] = " ".join(p[6:]) if len(p) > 6 else ""
    return out


class _Sandbox:
    """One in-memory sandbox machine driven below the syscall layer (placement, COMING)."""

    def __init__(self, profile: str | None = None):
        from ..sandbox import SandboxKernel
        self.k = SandboxKernel(profile=profile)
        with self.k.session(write=True) as m:
            self.m = m

    def load(self, image: bytes, placement, run_init: bool):
        from ..kernel.module import main
        m = self.m
        start = len(m.log)
        res = main.load_module(m, image, "", 0, run_init=run_init, placement=placement)
        mod = m.find_module(res.name, include_unformed=True) if res.ret == 0 else None
        return res, mod, [r.text for r in m.log[start:]]

    def init(self, mod, skip: bool):
        """do_init_module: run init (or, ``skip``, go LIVE as if init had returned 0)."""
        from ..kernel.module import main
        m = self.m
        start = len(m.log)
        res = main.LoadResult(name=mod.name)
        saved = mod.init_fn
        if skip:
            mod.init_fn = 0
        try:
            ret = main.do_init_module(m, mod, res)
        finally:
            if skip:
                mod.init_fn = saved
        return ret, res, [r.text for r in m.log[start:]]

    def drop(self, name: str):
        """Remove a module the real kernel does not have (keeps the two machines in step)."""
        from ..kernel.module import main
        mod = self.m.find_module(name, include_unformed=True)
        if mod is not None:
            main.free_module(self.m, mod)

    def read(self, path: str) -> str | None:
        from ..sandbox import read_kernel_file
        try:
            return read_kernel_file(self.m, path).decode("latin-1")
        except OSError:
            return None

    def proc_line(self, name: str) -> str | None:
        """The module's /proc/modules line, rendered alone (the file is every module's line
        from the same function: rendering it whole per module made the replay quadratic)."""
        from ..kernel.module.internal import MODULE_STATE_UNFORMED
        from ..kernel.module.procfs import proc_modules_line
        mod = self.m.find_module(name, include_unformed=True)
        if mod is None or mod.state == MODULE_STATE_UNFORMED:
            return None
        return proc_modules_line(mod).rstrip("\n")

    def proc_lines(self) -> dict[str, str]:
        """Every line of /proc/modules, by module name (one read of the file)."""
        return {ln.split(" ", 1)[0]: ln for ln in (self.read("/proc/modules") or "").splitlines()}

    def holders(self, name: str) -> list[str]:
        from ..sandbox import list_kernel_dir
        try:
            return sorted(list_kernel_dir(self.m, f"/sys/module/{name}/holders"))
        except OSError:
            return []


def replay(rec: dict, moddir: Path, core_dir: Path | None = None, run_init: bool = True,
           progress=None, profile: str | None = None) -> Report:
    """Replay the recording through the sandbox and compare (see the module docstring).
    ``profile``: the sandbox's kernel profile (default: the current one), of the recorded
    release."""
    t0 = time.monotonic()
    rep = Report()
    sb = _Sandbox(profile)
    skipped: set[str] = set()     # modules LIVE in the sandbox with their init skipped
    partial: set[str] = set()     # inits that ran, calling into a module whose init was skipped
    if rec.get("release") != sb.m.profile.release:
        raise ValueError(f"recorded on {rec.get('release')}, sandbox profile is "
                         f"{sb.m.profile.release}")
    from ..oracle.qemu import module_index
    index = module_index(Path(moddir))
    # the 9p stack /init loaded before the script ran: the same modules, same places, LIVE
    for p in rec["preloaded"]:
        st = p["state"]
        core = _real_core_base(st)
        size = int(st["coresize"])
        img = _image(index[p["name"]])
        placement = _mem_placement(st.get("mem")) or (core, _init_base(st, core, size, None))
        res, mod, _log = sb.load(img, placement, run_init=False)
        if res.ret:
            rep.findings.append(Finding(p["name"], "preload", "sandbox bug", 0, res.ret))
            continue
        ret, _r, _l = sb.init(mod, skip=not run_init)     # e.g. virtio registers its bus
        if ret < 0:
            res, mod, _log = sb.load(img, placement, run_init=False)
            if res.ret == 0:
                sb.init(mod, skip=True)
            rep.preload_init_failed[p["name"]] = _r.reason
            skipped.add(p["name"])
    numbers = [DynamicNumbers(rec, "misc"), DynamicNumbers(rec, "chrdev")]
    uses_of: dict[str, set[str]] = {}       # module → every module it uses (in the sandbox)
    prev_taint = (rec.get("tainted_at_start", 0), sb.m.taint)
    explained_taint = 0
    for i, obs in enumerate(rec["loads"]):
        name = obs["name"]
        rep.modules += 1
        if i:                       # the real device numbers as they were before this load
            for d in numbers:
                d.observe(rec["loads"][i - 1]["name"], rec["loads"][i - 1])
        img = _image(Path(moddir) / obs["path"])
        st = obs.get("state")
        real_loaded = obs["errno"] == 0
        probe = obs.get("init_layout")
        mem_coming = obs.get("mem_coming")         # 6.4+: every module_memory region
        placement = None
        if mem_coming:
            placement = _mem_placement(mem_coming)
        elif st:
            core = _real_core_base(st)
            placement = (core, _init_base(st, core, int(st["coresize"]), probe))
        elif probe:
            placement = (None, probe["base"])
        if isinstance(placement, tuple) and placement[0] is None:
            placement = None
        # 1. load_module up to COMING
        res, mod, log1 = sb.load(img, placement, run_init=False)
        if progress:
            progress(i, len(rec["loads"]), name, res.ret)
        # as dmesg shows them (recordings before kmsg_text kept /dev/kmsg's \\xNN escapes)
        real_log = [kmsg_text(ln.encode()) for ln in obs["log"] if not ASYNC.match(ln)]
        real_load_log = [ln for ln in real_log if LOAD_LOG.search(ln)]
        sb_load_log = [ln for ln in log1 if LOAD_LOG.search(ln)]
        rep.add(name, "load_module log", real_load_log, sb_load_log)
        if res.ret != 0:
            # the sandbox refused before init: compare with the real errno
            rep.add(name, "errno", obs["errno"], -res.ret)
            rep.init_outcomes["load_module failed"] += 1
            rep.add(name, "taint added by the call", obs["tainted"] & ~prev_taint[0],
                    sb.m.taint & ~prev_taint[1])
            prev_taint = (obs["tainted"], sb.m.taint)
            continue
        if probe:
            rep.add(name, "initsize (COMING)", probe["size"], res.initsize)
        if mem_coming:
            ours = {t: sz for t, _b, sz, _r in mod.mem}
            for t, v in mem_coming.items():
                rep.add(name, f"mem[{t}] size (COMING)", v["size"], ours.get(t, 0))
        if not real_loaded and not (probe or mem_coming):
            # the real kernel refused before init (e.g. Unknown symbol), the sandbox did not
            rep.add(name, "errno", obs["errno"], 0)
            sb.drop(name)
            prev_taint = (obs["tainted"], sb.m.taint)
            continue
        coresize = res.coresize
        sb_mem = {t: (b, sz) for t, b, sz, _r in mod.mem}
        if mem_coming:
            sb_core = {t: sb.m.mm.read(b, sz) for t, (b, sz) in sb_mem.items()
                       if not t.startswith("init")}
        else:
            sb_core = sb.m.mm.read(mod.core.base, coresize)
        sb_sections = dict(mod.sections)
        init_base = mod.init_layout.base
        uses_of[name] = _uses(sb, mod)
        uses_skipped = sorted(uses_of[name] & skipped)
        if uses_skipped:
            partial.add(name)
        # 2. init
        numbers_before = [d.sandbox(sb) for d in numbers]
        work_before = set(sb.m.emu_state.get("work", {}))
        ret, ires, log2 = sb.init(mod, skip=not run_init)
        numbers_after = [d.sandbox(sb) for d in numbers]
        queued = [w.get("name") or "?" for k, w in sb.m.emu_state.get("work", {}).items()
                  if k not in work_before]
        um = UNMODELLED.search(ires.reason or "")
        if um:
            rep.unmodelled[um.group(2)] += 1
            rep.init_outcomes[f"unmodelled {um.group(1)}"] += 1
            why = f"explained: init called unmodelled kernel {um.group(1)} {um.group(2)}"
        elif not run_init:
            rep.init_outcomes["init not run"] += 1
            why = "explained: init not run (run_init=False)"
        elif ret < 0 and uses_skipped:
            # its init calls into a module (directly or through another) whose own init never
            # ran here: its state is missing
            rep.init_outcomes["stopped after using a module whose init was skipped"] += 1
            rep.emulator_stops[name] = ires.reason
            why = (f"explained: uses {', '.join(uses_skipped)}, whose init the emulator could not "
                   "complete (loaded with init skipped)")
        elif ret < 0 and ires.reason and "a busy-wait on the clock" in ires.reason:
            rep.init_outcomes["busy-wait on jiffies"] += 1
            rep.emulator_stops[name] = ires.reason
            why = ("explained: the init busy-waits on jiffies (it times its own code: raid6's "
                   "gen()/xor() benchmark); on the emulated CPU the clock moves only when code "
                   "sleeps")
        elif ret < 0 and ires.reason and "kmodlab" in ires.reason:
            rep.init_outcomes["emulation stopped: " + ires.reason.split(": ", 2)[-1][:90]] += 1
            rep.emulator_stops[name] = ires.reason
            why = "emulator"
        else:
            rep.init_outcomes["init ran to completion"] += 1
            why = None
        if ret < 0 and real_loaded:
            # load again with init skipped, so that later modules find it LIVE
            res2, mod2, _ = sb.load(img, placement, run_init=False)
            if res2.ret == 0:
                sb.init(mod2, skip=True)
                skipped.add(name)
        init_log_real = [ln for ln in real_log if not LOAD_LOG.search(ln)]
        init_log_sb = [ln for ln in log2 if not ln.startswith("kmodlab: ")]
        sb_errno = -ret if ret < 0 else 0
        if why is None:
            # an init that ran to completion on top of a module whose init was skipped (plip:
            # init returns 1, "loading module anyway", when parport's bus is missing)
            emu_cls = ("explained: uses " + ", ".join(uses_skipped) + ", whose init the emulator "
                       "could not complete (loaded with init skipped)") if uses_skipped else "emulator"
            rep.add(name, "errno", obs["errno"], sb_errno, emu_cls)
            internal = internal_only(init_log_real, init_log_sb)
            rep.add(name, "init log", init_log_real, init_log_sb,
                    f"explained: {internal}" if internal else
                    next(filter(None, (d.explain(obs, b, a, init_log_real, init_log_sb,
                                                 skipped | partial)
                                       for d, b, a in zip(numbers, numbers_before,
                                                          numbers_after))), None) or
                    hashed_pointers_only(init_log_real, init_log_sb) or
                    pending_work_only(init_log_real, init_log_sb, queued) or emu_cls)
        else:
            rep.add(name, "errno", obs["errno"], 0 if why.startswith("explained") and real_loaded
                    else sb_errno, why)
            rep.add(name, "init log", init_log_real, init_log_real if why.startswith("explained")
                    else init_log_sb, why)
        real_delta = obs["tainted"] & ~prev_taint[0]
        sb_delta = sb.m.taint & ~prev_taint[1]
        prev_taint = (obs["tainted"], sb.m.taint)
        tcls = why if why and why.startswith("explained") else \
            ("emulator" if why == "emulator" or real_delta & ~LOAD_TAINTS else "sandbox bug")
        if rep.add(name, "taint added by the call", real_delta, sb_delta, tcls) is False and \
                tcls.startswith("explained"):
            explained_taint |= real_delta ^ sb_delta
        if not real_loaded:
            if sb.m.find_module(name) is not None:
                sb.drop(name)
            continue
        # 3. the module's files, LIVE
        pr, ps = _proc_fields(st["proc_modules"]), _proc_fields(sb.proc_line(name))
        # a refcount is one per user module (used_by) + references running code took: where
        # the users agree and this module's own init did not complete here, the references
        # that init takes on its own module (try_module_get(THIS_MODULE), e.g. a protocol's
        # control sockets: sk_alloc takes prot->owner, sock_create the ops' owner) are missing
        # (or code of another module that reacts to this one's registrations: a notifier, as
        # crc64_rocksoft's crypto notifier takes the new crc64-rocksoft algorithm's module)
        more = ps is not None and pr["used_by"] == ps["used_by"] and \
            int(pr["refcount"]) > int(ps["refcount"])
        own = ("explained: references a module's own init takes on itself (try_module_get: "
               "e.g. a protocol's control sockets); its init did not complete under emulation") \
            if more and name in skipped else \
            ("explained: runtime references taken by code (try_module_get from other modules' "
             "inits: crypto tfms, nls tables, configfs, ...) that the sandbox did not run to "
             "completion") if more and skipped else "sandbox bug"
        for k in ("size", "refcount", "used_by", "state", "address", "flags"):
            rep.add(name, f"/proc/modules {k}", pr.get(k), ps.get(k) if ps else None,
                    own if k == "refcount" else "sandbox bug")
        for k in ("coresize", "initsize", "taint", "refcnt", "initstate"):
            rep.add(name, f"sysfs {k}", st[k], sb.read(f"/sys/module/{name}/{k}"),
                    own if k == "refcnt" else "sandbox bug")
        rep.add(name, "sysfs holders", st["holders"], sb.holders(name))
        if mem_coming:
            real_mem = {t: (v["base"], v["size"]) for t, v in mem_coming.items() if v["size"]}
            rsec, ssec = _mem_offsets(st["sections"], real_mem), _mem_offsets(sb_sections, sb_mem)
        else:
            real_core = _real_core_base(st)
            rsec = _offsets(st["sections"], real_core, placement[1], int(st["coresize"]))
            ssec = _offsets(sb_sections, mod.core.base, init_base, coresize)
        rep.add(name, "sections (names)", sorted(rsec), sorted(ssec))
        for sname in sorted(set(rsec) & set(ssec)):
            rep.add(name, f"section {sname}", rsec[sname], ssec[sname])
        # 4. the core bytes
        if core_dir is not None and mem_coming:
            # 6.4+: each core type is its own region; one span over them (gaps zero-filled in
            # both) lets a patch table in rodata explain bytes in text, as in one core region
            dumps = {t: Path(core_dir) / f"{name}.{t}.bin" for t in sb_core}
            if sb_core and all(f.exists() for f in dumps.values()):
                real = [(sb_mem[t][0], dumps[t].read_bytes()) for t in sb_core]
                ours = [(sb_mem[t][0], sb_core[t]) for t in sb_core]
                base, rbytes, gaps = _span(real)
                _b, sbytes, _g = _span(ours)
                br = bytediff.attribute(name, img, sb_sections, base, rbytes, sbytes,
                                        _alt_layout(sb.m.profile))
                d = br.as_dict()
                d["compared"] = d.get("compared", 0) - gaps
                rep.bytes.append(d)
        elif core_dir is not None and (Path(core_dir) / f"{name}.bin").exists():
            real_bytes = (Path(core_dir) / f"{name}.bin").read_bytes()
            br = bytediff.attribute(name, img, sb_sections, mod.core.base, real_bytes, sb_core)
            rep.bytes.append(br.as_dict())
    # the end state: users arrived after each module's own snapshot
    preloaded = {p["name"] for p in rec["preloaded"]}
    sb_final = sb.proc_lines()
    for line in rec["final"]["proc_modules"]:
        name = line.split(" ", 1)[0]
        pr, ps = _proc_fields(line), _proc_fields(sb_final.get(name))
        for k in ("used_by", "state"):
            rep.add(name, f"final /proc/modules {k}", pr.get(k), ps.get(k) if ps else None)
        # refcount = one per user module (used_by, compared above) + runtime references
        # (try_module_get: mounts, crypto tfms, nls tables, ... taken by running code)
        if ps is not None:
            users = lambda p: len([u for u in p["used_by"].split(",") if u and u != "-"])
            rep.add(name, "final refcount from users", users(pr), users(ps))
            rep.add(name, "final runtime references", int(pr["refcount"]) - users(pr),
                    int(ps["refcount"]) - users(ps),
                    "explained: runtime references (the oracle's 9p mounts hold the 9p stack)"
                    if name in preloaded else
                    "explained: runtime references taken by code (try_module_get from other "
                    "modules' inits: crypto tfms, nls tables, configfs, ...) that the sandbox "
                    "did not run to completion")
        rep.add(name, "final holders", rec["final"]["holders"].get(name), sb.holders(name))
    rep.add("(kernel)", "final tainted", rec["final"]["tainted"], sb.m.taint,
            "explained: taints added by inits the emulator did not complete (above)"
            if (rec["final"]["tainted"] ^ sb.m.taint) & ~explained_taint == 0 else "sandbox bug")
    explain_hardware(rep, rec, Path(moddir))
    explain_missing_devices(rep, rec, skipped | partial, uses_of)
    explain_contested_minors(rep, rec, skipped | partial)
    rep.seconds["sandbox"] = round(time.monotonic() - t0, 1)
    return rep


DEVICE_PREFIX = re.compile(r"^([a-z]+[0-9]+): ")


def _image(path) -> bytes:
    """A module file as the sandbox's finit_module receives it once decompressed."""
    from ..lib.file import decompress           # by magic, as kmod's file reader does
    return decompress(Path(path).read_bytes())


def hardware_bound(rec: dict, moddir: Path) -> dict[str, str]:
    """Module → the guest device it binds: a device the guest has at boot (its modalias,
    recorded in the guest) that one of the module's ``alias=`` patterns matches, as modprobe
    matches them.  QEMU's machine has a few (the PIIX IDE and SMBus functions, the PC speaker,
    the LPT port, ...); the sandbox machine has no devices at all."""
    from fnmatch import fnmatchcase
    from ..lib.modinfo import elf_modinfo_strings, split_key_value
    devices = rec.get("device_aliases", [])
    out: dict[str, str] = {}
    if not devices:
        return out
    for obs in rec["loads"]:
        img = _image(moddir / obs["path"])
        pats = [v.decode("latin-1") for k, v in map(split_key_value, elf_modinfo_strings(img))
                if k == b"alias"]
        hit = next((d for p in pats for d in devices if fnmatchcase(d, p)), None)
        if hit:
            out[obs["name"]] = hit
    return out


def _names_device_below(line: str, hw: list[str]) -> bool:
    """``line`` names a device (``… as /devices/…``) below one of the sysfs paths ``hw``."""
    if " as /devices/" not in line:
        return False
    path = "/sys" + line.split(" as ", 1)[1].split()[0]
    return any(path.startswith(h + "/") for h in hw)


def explain_hardware(rep: Report, rec: dict, moddir: Path) -> None:
    """Re-class the ``emulator`` findings that come from hardware: a module bound to a device
    of the guest (its probe ran there: log lines, errors), a module whose real load created
    devices below such a device (the guest recorded each load's new devices), or a module
    whose real log talks to a device such a module created (``parport0:`` after parport_pc
    found the LPT port)."""
    bound = hardware_bound(rec, moddir)
    logs = {o["name"]: o["log"] for o in rec["loads"]}
    # the guest's hardware: boot devices a driver of the tree binds; and, per load, the devices
    # the real call created below them (i2c clients an i2c driver detected on the SMBus)
    matched = set(bound.values())
    hw = [path for path, aliases in rec.get("devices", {}).items() if matched & set(aliases)]
    on_hw = {o["name"]: [d for d in o.get("devices", {}).get("added", [])
                         if any(d.startswith(h + "/") for h in hw)] for o in rec["loads"]}
    created: dict[str, str] = {}
    for name in bound:
        for ln in logs.get(name, []):
            m = DEVICE_PREFIX.match(ln)
            if m:
                created.setdefault(m.group(1), name)
    for f in rep.findings:
        if f.cls != "emulator":
            continue
        if f.module in bound:
            f.cls = ("explained: the guest has a device this driver binds (its probe ran in the "
                     "real kernel); the sandbox machine has no devices")
            rep.hardware[f.module] = bound[f.module]
        elif on_hw.get(f.module):
            f.cls = ("explained: the real init created devices on the guest's hardware (e.g. i2c "
                     "clients detected on the SMBus of QEMU's PIIX4); the sandbox has none")
            rep.hardware[f.module] = on_hw[f.module][0]
        elif f.field == "init log" and isinstance(f.real, list) and (extra := [
                ln for ln in f.real if ln not in (f.sandbox or [])]) and \
                all(_names_device_below(ln, hw) for ln in extra):
            # a device of the guest's hardware probed meanwhile by its own driver, e.g.
            # psmouse on i8042's serio1 (kseriod): "input: … as /devices/platform/i8042/…"
            f.cls = ("explained: a line from the guest's hardware being probed meanwhile by its "
                     "driver (e.g. psmouse on i8042's serio1); the sandbox has no devices")
            rep.hardware[f.module] = extra[0]
        elif f.field == "init log" and isinstance(f.real, list):
            devs = {m.group(1) for ln in f.real if (m := DEVICE_PREFIX.match(ln))} & set(created)
            if devs and not any(d in " ".join(f.sandbox or []) for d in devs):
                f.cls = ("explained: talks to a device a driver created for the guest's "
                         "hardware (e.g. parport0 from parport_pc); the sandbox has none")
                rep.hardware[f.module] = ", ".join(f"{d} (from {created[d]})" for d in sorted(devs))


def _subsequence(short: list[str], long: list[str]) -> bool:
    it = iter(long)
    return all(any(x == y for y in it) for x in short)


def explain_missing_devices(rep: Report, rec: dict, incomplete: set[str],
                            uses_of: dict[str, set[str]]) -> None:
    """Re-class an ``emulator`` init-log finding whose real log only adds lines to the
    sandbox's, when an earlier load that the sandbox did not complete — or one bound to the
    guest's hardware — created devices in the real kernel (its recorded ``devices.added``)
    through a module this one uses too: the real init met those devices (ftl and rfd_ftl read
    mtdram's mtd0 through mtd; sg and sr_mod attach to the SCSI devices of ata_piix and
    scsi_debug through scsi_mod); the sandbox has none of them."""
    bound = set(rep.hardware)
    order = [o["name"] for o in rec["loads"]]
    created = {o["name"]: o.get("devices", {}).get("added", []) for o in rec["loads"]}
    for f in rep.findings:
        if f.cls != "emulator" or f.field != "init log" or not isinstance(f.real, list) or \
                not _subsequence(list(f.sandbox or []), f.real) or f.module not in order:
            continue
        mine = uses_of.get(f.module, set())
        before = order[:order.index(f.module)]
        makers = [x for x in before if created.get(x) and (x in incomplete or x in bound)
                  and (uses_of.get(x, set()) & mine or x in mine)]
        if makers:
            f.cls = ("explained: the real init met devices an earlier load created there and "
                     "not in the sandbox (its init did not complete, or it drives the guest's "
                     "hardware)")
            rep.hardware.setdefault(f.module, ", ".join(f"{x}: {created[x][-1]}"
                                                        for x in makers[-2:]))


MISC_MINOR = re.compile(r"\bminor[= ](\d+)\b")


def explain_contested_minors(rep: Report, rec: dict, incomplete: set[str]) -> None:
    """Re-class ``emulator`` findings of a module whose fixed misc minor (below 256, e.g.
    WATCHDOG_MINOR 130) was held, when it loaded, by different modules in the two kernels
    because of loads the sandbox did not complete: in the real run an earlier module that the
    sandbox could not complete held it (advantechwdt, stopped at a platform device), so the real
    registration failed where the sandbox's succeeded — and from then on the sandbox's holder,
    a module whose own outcome already differed this way, holds it instead (cpu5wdt, then
    sbc60xxwdt's "cannot register miscdev on minor=130")."""
    holder: dict[int, str] = {}                       # the real run: minor → module holding it
    diverged: set[str] = set()
    byname = {}
    for f in rep.findings:
        byname.setdefault(f.module, []).append(f)
    for obs in rec["loads"]:
        name = obs["name"]
        added = [int(ln.partition(" ")[0]) for ln in obs.get("misc", {}).get("added", [])]
        fs = [f for f in byname.get(name, []) if f.cls == "emulator"]
        if fs:
            logs = " ".join(str(f.real) + " " + str(f.sandbox) for f in byname.get(name, []))
            wanted = {int(m) for m in MISC_MINOR.findall(logs)}
            if not wanted and obs["errno"] == 16 and "misc" in " ".join(obs.get("log", [])):
                wanted = {m for m in holder if m < 256}      # "misc_register failed": -EBUSY
            contested = [m for m in wanted if holder.get(m) in incomplete | diverged]
            if contested:
                for f in fs:
                    f.cls = ("explained: a fixed misc minor held by another module in the real "
                             "run (" + ", ".join(f"{m} by {holder[m]}" for m in contested) +
                             "), whose load the sandbox did not complete or that already "
                             "differed for this reason")
                diverged.add(name)
        for m in added:
            holder[m] = name
        for ln in obs.get("misc", {}).get("removed", []):
            holder.pop(int(ln.partition(" ")[0]), None)


def render(rep: Report) -> str:
    d = rep.as_dict()
    lines = [f"{d['modules']} modules; {d['fields_compared']} fields compared, "
             f"{d['agreements']} agree, {d['disagreements']} disagree"]
    for k, v in d["by_class"].items():
        lines.append(f"  {v:5d}  {k}")
    lines.append("init outcomes in the sandbox:")
    for k, v in d["init_outcomes"].items():
        lines.append(f"  {v:5d}  {k}")
    lines.append("unmodelled kernel functions/data (modules stopped):")
    for k, v in d["unmodelled"].items():
        lines.append(f"  {v:5d}  {k}")
    t = d["bytes"]["totals"]
    lines.append(f"core bytes: {t['modules']} modules, {t['compared']} compared, "
                 f"{t['differing']} differ: {t['explained']} explained, "
                 f"{t['unexplained']} unexplained")
    for k, v in t["by_reason"].items():
        lines.append(f"  {v:8d}  {k}")
    for f in rep.unexplained():
        lines.append(f"  UNEXPLAINED [{f.cls}] {f.module}: {f.field}: real {f.real!r} "
                     f"sandbox {f.sandbox!r}")
    for b in d["bytes"]["modules"]:
        for u in b["unexplained"]:
            lines.append(f"  UNEXPLAINED BYTES {b['module']}: {json.dumps(u)}")
    return "\n".join(lines)


_REPORTS: dict = {}


def profile_for(release: str | None) -> str | None:
    """The sandbox profile of a recorded release: the current one for the default oracle
    release, else that release's Debian profile (imported once with the project's importer)."""
    from . import qemu
    if release is None or release == qemu.DEFAULT_RELEASE:
        return None
    from ..profile.debian import imported_profile
    return str(imported_profile(release))


def session_report(release: str | None = None):
    """The shared mass run (:func:`kmodlab.oracle.mass.session`) replayed once per process:
    (recording, GuestResult, Report).  Core bytes are taken at COMING, before init runs."""
    from . import mass, qemu
    key = release or qemu.DEFAULT_RELEASE
    if key not in _REPORTS:
        rec, r, core = mass.session(release)
        rep = replay(rec, qemu.prepare(release).moddir, core, profile=profile_for(release))
        rep.seconds["vm"] = round(r.seconds, 1)
        _REPORTS[key] = (rec, r, rep)
    return _REPORTS[key]
