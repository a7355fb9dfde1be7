"""Mass-loading differential run: many real Debian modules through the real kernel (in QEMU)
and through the sandbox, compared field by field (issue 4, part 2).

Three pieces:

- :func:`plan` (host): every module of the oracle's Debian tree (or those under
  :data:`SUBDIRS`), minus :data:`EXCLUDE` (their inits run self-tests for minutes under TCG),
  each after its dependencies (``.modinfo`` ``depends=``, transitively), in path order.
- :func:`guest_main` (runs *inside the guest* as root, stdlib only): ``finit_module`` each module
  of the plan in order through :class:`~kmodlab.live.LiveKernel` and record errno, the kernel log
  lines, the /proc/modules line, ``/sys/module/<name>/{coresize,initsize,taint,refcnt,initstate,
  holders,sections/*}``, the init layout seen by a kprobe on ``do_init_module`` (the real
  ``init_layout.base``/``size`` while the module is COMING: sysfs shows 0 once it is LIVE), and
  the module's whole core region read back through ``/proc/kcore`` (``core/<name>.bin``).
- :func:`kmodlab.oracle.massdiff.replay` (host): the same loads through one sandbox machine, each
  module placed where the real kernel put it, then the comparison.

The guest must boot with ``nokaslr`` (:data:`APPEND`): the sandbox relocates against the
profile's link-time addresses of vmlinux exports, so the bytes only match without a KASLR slide.
"""
from __future__ import annotations

import json
import os
import re
import struct
import sys
import time
from pathlib import Path

SUBDIRS: tuple[str, ...] | None = None      # None: every module of the tree
EXCLUDE = {
    "test_bpf": "its init runs 1026 BPF self-tests: 217 s under TCG, and finit_module cannot "
                "be interrupted",
    "tcrypt": "a crypto self-test module: its init runs tests for minutes, then fails on "
              "purpose (-EAGAIN)",
}
APPEND = "nokaslr"
MEMORY = "2G"        # the modules' memory (~200 MB for the whole tree) and the page cache
ADDR = re.compile(r"0x[0-9a-f]{16}")


# ---------------------------------------------------------------------------------------------
# host: the plan

def plan(moddir: Path, subdirs=SUBDIRS, exclude=EXCLUDE, only: list[str] | None = None) -> list[dict]:
    """[{name, path (relative to moddir)}] in load order: each module after its dependencies
    (``.modinfo`` depends=, transitively, deepest first), targets sorted by path."""
    from .. import elf
    from ..emu.sweep import module_paths
    moddir = Path(moddir)
    paths = module_paths(moddir)
    direct: dict[str, list[str]] = {}

    def depends(n: str) -> list[str]:
        if n not in direct:
            info = elf.parse_modinfo(Path(paths[n]).read_bytes())
            direct[n] = [d.replace("-", "_") for v in (v for k, v in info if k == "depends")
                         for d in v.split(",") if d]
        return direct[n]

    def closure(n: str, stack: tuple = ()) -> list[str]:
        out: list[str] = []
        for d in depends(n):
            if d in stack or d not in paths:
                continue
            for x in closure(d, stack + (n,)) + [d]:
                if x not in out:
                    out.append(x)
        return out

    roots = [str(moddir / "kernel" / s) + os.sep for s in (subdirs or ("",))]
    targets = sorted((p, n) for n, p in paths.items()
                     if any(p.startswith(r) for r in roots) and n not in exclude)
    if only is not None:
        want = {o.replace("-", "_") for o in only}
        targets = [(p, n) for p, n in targets if n in want]
    deps = {n: closure(n) for _p, n in targets}
    order: list[str] = []
    for _p, n in targets:
        for d in deps.get(n, []) + [n]:
            if d not in order and d in paths:
                order.append(d)
    return [{"name": n, "path": os.path.relpath(paths[n], moddir),
             "target": any(paths[n].startswith(r) for r in roots)} for n in order]


# ---------------------------------------------------------------------------------------------
# guest: the real kernel

class Kcore:
    """Read kernel virtual memory through /proc/kcore's PT_LOAD segments."""

    def __init__(self, path: str = "/proc/kcore"):
        self.fd = os.open(path, os.O_RDONLY)
        eh = os.pread(self.fd, 64, 0)
        phoff, = struct.unpack_from("<Q", eh, 32)
        phentsize, phnum = struct.unpack_from("<HH", eh, 54)
        ph = os.pread(self.fd, phentsize * phnum, phoff)
        self.loads = []
        for i in range(phnum):
            p_type, _fl, off, vaddr, _pa, filesz, _memsz, _al = \
                struct.unpack_from("<IIQQQQQQ", ph, i * phentsize)
            if p_type == 1:
                self.loads.append((vaddr, filesz, off))

    def read(self, addr: int, size: int) -> bytes:
        for vaddr, filesz, off in self.loads:
            if vaddr <= addr and addr + size <= vaddr + filesz:
                return os.pread(self.fd, size, off + addr - vaddr)
        raise OSError(f"{addr:#x}+{size:#x} is in no /proc/kcore segment")


def _r(path: str) -> str | None:
    try:
        with open(path, "rb", buffering=0) as f:
            return f.read().decode(errors="replace")
    except OSError as e:
        return f"<errno {e.errno}>"


def module_snapshot(name: str) -> dict | None:
    """/proc/modules line and /sys/module/<name> files of one module (None: not loaded)."""
    line = None
    with open("/proc/modules") as f:
        for ln in f:
            if ln.split(" ", 1)[0] == name:
                line = ln.rstrip("\n")
    base = f"/sys/module/{name}"
    if line is None or not os.path.exists(base + "/initstate"):
        return None
    st = {"proc_modules": line}
    for k in ("initstate", "refcnt", "coresize", "initsize", "taint"):
        st[k] = _r(f"{base}/{k}")
    st["holders"] = sorted(os.listdir(f"{base}/holders"))
    secs = {}
    for s in os.listdir(f"{base}/sections"):
        v = _r(f"{base}/sections/{s}")
        secs[s] = int(v, 16) if v and v.startswith("0x") else v
    st["sections"] = secs
    return st


def _proc_numbers() -> dict[str, list[str]]:
    """The device numbers handed out so far, as "number name" lines: misc minors (/proc/misc)
    and char majors (/proc/devices).  Dynamic ones count down, so the number a module gets
    depends on every registration before it."""
    out = {"misc": [], "chrdev": []}
    try:
        with open("/proc/misc") as f:
            out["misc"] = [" ".join(ln.split()) for ln in f]
        with open("/proc/devices") as f:
            text = f.read()
        char = text.split("Block devices:")[0].splitlines()[1:]
        out["chrdev"] = [" ".join(ln.split()) for ln in char if ln.strip()]
    except OSError:
        pass
    return out


def _bus_devices() -> set[str]:
    """Every device on a bus of the guest, as ``/sys/bus/<bus>/devices/<name>`` (cheap: one
    listdir per bus, so that it can be taken after every load)."""
    out = set()
    for bus in os.listdir("/sys/bus"):
        d = f"/sys/bus/{bus}/devices"
        try:
            out.update(f"{d}/{dev}" for dev in os.listdir(d))
        except OSError:
            continue
    return out


def _devices(entries) -> dict[str, list[str]]:
    """The devices by their sysfs path (/sys/devices/…), with the aliases drivers match them
    by (the modalias; PnP devices: ``pnp:d<ID>`` per id)."""
    out: dict[str, list[str]] = {}
    for e in sorted(entries):
        aliases = []
        v = _r(f"{e}/modalias")
        if v and not v.startswith("<errno"):
            aliases.append(v.strip())
        elif e.startswith("/sys/bus/pnp/"):
            aliases += [f"pnp:d{pid}" for pid in (_r(f"{e}/id") or "").split()
                        if not pid.startswith("<errno")]
        out[os.path.realpath(e)] = aliases
    return out


class InitProbe:
    """A kprobe on do_init_module(mod) that logs mod->init_layout.{base,size}: the real init
    region while the module is COMING (both read 0 once it is LIVE).  The field offsets are
    found in a loaded module's own struct module (core_layout.mtn.mod and init_layout.mtn.mod
    both point at the struct; core_layout.base/size are the /proc/modules address and size)."""

    TRACING = "/sys/kernel/tracing"

    def __init__(self):
        self.ok = False
        self.error = ""
        self.offsets = None

    def setup(self, kcore: Kcore) -> None:
        try:
            if not os.path.exists(self.TRACING + "/kprobe_events"):
                os.system(f"mount -t tracefs tracefs {self.TRACING} 2>/dev/null")
            off = self._find_offsets(kcore)
            if off is None:
                self.error = "could not locate init_layout in struct module"
                return
            self.offsets = off
            b, s = off
            with open(self.TRACING + "/kprobe_events", "w") as f:
                f.write(f"p:kmodlab/doinit do_init_module base=+{b}(%di):x64 size=+{s}(%di):u32 "
                        f"name=+24(%di):string\n")
            with open(self.TRACING + "/events/kmodlab/doinit/enable", "w") as f:
                f.write("1\n")
            with open(self.TRACING + "/trace", "w") as f:
                f.write("")
            self.ok = True
        except OSError as e:
            self.error = f"{type(e).__name__}: {e}"

    @staticmethod
    def _find_offsets(kcore: Kcore):
        with open("/proc/modules") as f:
            lines = [ln.split() for ln in f]
        for parts in lines:
            name, size, addr = parts[0], int(parts[1]), int(parts[5], 16)
            try:
                with open(f"/sys/module/{name}/sections/.gnu.linkonce.this_module") as f:
                    modaddr = int(f.read(), 16)
            except OSError:
                continue
            raw = kcore.read(modaddr, 896)
            for o in range(0, 896 - 8, 8):
                if struct.unpack_from("<Q", raw, o)[0] == addr and \
                        struct.unpack_from("<I", raw, o + 8)[0] == size:
                    # core_layout at o; its mtn.mod (o+24) points at the struct; init_layout
                    # follows the core layout (sizeof(struct module_layout) = 80 here)
                    for lay in (80, 64, 96, 128):
                        if o + lay + 32 <= 896 and \
                                struct.unpack_from("<Q", raw, o + 24)[0] == modaddr and \
                                struct.unpack_from("<Q", raw, o + lay + 24)[0] == modaddr:
                            return o + lay, o + lay + 8
            return None
        return None

    def take(self) -> dict[str, tuple[int, int]]:
        """{name: (init base, init size)} logged since the last call."""
        if not self.ok:
            return {}
        out = {}
        with open(self.TRACING + "/trace") as f:
            for ln in f:
                m = re.search(r'base=(0x[0-9a-f]+) size=(\d+) name="([^"]*)"', ln)
                if m:
                    out[m.group(3)] = (int(m.group(1), 16), int(m.group(2)))
        with open(self.TRACING + "/trace", "w") as f:
            f.write("")
        return out


def guest_main(out: Path, plan_file: Path, moddir: Path, dump_bytes: bool = True) -> dict:
    from ..live import LiveKernel
    t_start = time.monotonic()
    k = LiveKernel()
    kcore = Kcore()
    (out / "core").mkdir(exist_ok=True)
    entries = json.loads(plan_file.read_text())

    def dump(name: str, st: dict) -> None:
        if not dump_bytes or not st:
            return
        base = int(st["proc_modules"].split()[5], 16)
        size = int(st["coresize"])
        (out / "core" / f"{name}.bin").write_bytes(kcore.read(base, size))

    with open("/proc/modules") as f:
        preloaded = [ln.split()[0] for ln in f]
    rec = {"release": os.uname().release, "cmdline": _r("/proc/cmdline").strip(),
           "tainted_at_start": int(_r("/proc/sys/kernel/tainted")),
           "preloaded": [], "loads": []}
    for name in reversed(preloaded):                # oldest first = their load order
        st = module_snapshot(name)
        dump(name, st)
        rec["preloaded"].append({"name": name, "state": st})
    probe = InitProbe()
    probe.setup(kcore)
    rec["init_probe"] = {"ok": probe.ok, "error": probe.error, "offsets": probe.offsets}
    numbers = _proc_numbers()
    for kind, lines in numbers.items():
        rec[f"{kind}_at_start"] = lines
    bus_devices = _bus_devices()          # the hardware QEMU emulates, which drivers bind
    rec["devices"] = _devices(bus_devices)
    rec["device_aliases"] = sorted({a for al in rec["devices"].values() for a in al})
    progress = open(out / "progress.log", "a", buffering=1)      # survives a guest crash
    for e in entries:
        path = str(moddir / e["path"])
        progress.write(f"{e['name']}\n")
        os.fsync(progress.fileno())
        t = time.monotonic()
        res = k.finit_module(path, "", 0)
        dt = time.monotonic() - t
        obs = {"name": e["name"], "path": e["path"], "ret": res.ret, "errno": res.errno,
               "log": res.log, "seconds": round(dt, 4),
               "tainted": int(_r("/proc/sys/kernel/tainted"))}
        now = _proc_numbers()
        for kind, lines in now.items():     # device numbers this call took or gave back
            if lines != numbers[kind]:
                obs[kind] = {"added": sorted(set(lines) - set(numbers[kind]), key=lines.index),
                             "removed": sorted(set(numbers[kind]) - set(lines))}
        numbers = now
        now_devices = _bus_devices()      # devices this call created (e.g. on QEMU's hardware)
        if now_devices != bus_devices:
            obs["devices"] = {"added": sorted(os.path.realpath(e)
                                              for e in now_devices - bus_devices),
                              "removed": sorted(bus_devices - now_devices)}
        bus_devices = now_devices
        init = probe.take().get(e["name"])
        if init:
            obs["init_layout"] = {"base": init[0], "size": init[1]}
        if res.ret == 0:
            st = module_snapshot(e["name"])
            obs["state"] = st
            dump(e["name"], st)
        rec["loads"].append(obs)
    # the end state of every module (refcounts and holders change as users arrive)
    with open("/proc/modules") as f:
        final = [ln.rstrip("\n") for ln in f]
    rec["final"] = {"proc_modules": final,
                    "holders": {ln.split()[0]: sorted(os.listdir(f"/sys/module/{ln.split()[0]}/holders"))
                                for ln in final},
                    "tainted": int(_r("/proc/sys/kernel/tainted"))}
    rec["seconds"] = round(time.monotonic() - t_start, 2)
    (out / "mass.json").write_text(json.dumps(rec, indent=0))
    return rec


GUEST_SCRIPT = '"$PYTHON" -S -m kmodlab.oracle.mass "$OUT" "$OUT/plan.json" "$MODDIR" {bytes}\n'


def run(entries: list[dict], timeout: float = 600, dump_bytes: bool = True, release=None,
        memory: str = MEMORY):
    """Boot once (nokaslr) and load ``entries`` in the real kernel; (recording, GuestResult).
    The guest writes each module's name to ``progress.log`` before loading it, so a run that
    dies (a hang, a panic) names the module it died on."""
    from . import qemu
    r = qemu.run_in_guest(GUEST_SCRIPT.format(bytes="" if dump_bytes else "--no-bytes"),
                          timeout=timeout, release=release, append=APPEND, memory=memory,
                          files={"plan.json": json.dumps(entries)})
    if "mass.json" not in r.files:
        done = r.files.get("progress.log", b"").decode().split()
        raise qemu.OracleError(f"the mass run did not finish (rc={r.rc}, timed out: "
                               f"{r.timed_out}, VM {r.seconds:.0f}s, {len(done)} loads started, "
                               f"the last: {done[-1] if done else 'none'})"
                               f"\n--- serial\n{r.serial_log[-3000:]}")
    r.check()
    return r.json("mass.json"), r


if __name__ == "__main__":
    a = sys.argv[1:]
    guest_main(Path(a[0]), Path(a[1]), Path(a[2]), dump_bytes="--no-bytes" not in a)


_SESSION: dict = {}


def session(release: str | None = None, timeout: float = 1800) -> tuple[dict, "object", Path]:
    """One VM run of the whole plan per process (shared by the qemu tests):
    (recording, GuestResult, directory of the core dumps)."""
    from . import qemu
    key = release or qemu.DEFAULT_RELEASE
    if key not in _SESSION:
        prep = qemu.prepare(release)
        rec, r = run(plan(prep.moddir), timeout=timeout, release=release)
        _SESSION[key] = (rec, r, Path(r.outdir) / "core")
    return _SESSION[key]


def recording_name(release: str | None = None) -> str:
    from . import qemu
    return f"mass_{(release or qemu.DEFAULT_RELEASE).removesuffix('-amd64')}.json.gz"


def summarize(rec: dict, rep, vm_seconds: float) -> dict:
    """tests/data recording: the real kernel's answers (no memory dumps) + the comparison."""
    d = rep.as_dict()
    per_module_bytes = [{k: b[k] for k in ("module", "compared", "differing", "explained",
                                             "unexplained_bytes", "runtime_in_relocated")}
                        for b in d["bytes"]["modules"]]
    return {
        "about": "Mass-loading differential run (kmodlab.oracle.mass / massdiff / bytediff): "
                 + ("every module" if not SUBDIRS else "the modules under kernel/{"
                    + ",".join(SUBDIRS) + "}") + " of Debian's tree (minus "
                 + ", ".join(EXCLUDE) + ") loaded in dependency order by the real kernel "
                 "in QEMU (nokaslr) and by the sandbox at the same addresses. 'real' is what "
                 "the real kernel answered; 'comparison' the field-by-field and byte-by-byte "
                 "result. Regenerate: python3 scripts/qemu_oracle.py mass",
        "release": rec["release"],
        "excluded": EXCLUDE,
        "vm_seconds": round(vm_seconds, 1),
        "comparison": {**{k: v for k, v in d.items() if k != "bytes"},
                       "bytes": {"totals": d["bytes"]["totals"], "modules": per_module_bytes}},
        "real": rec,
    }
