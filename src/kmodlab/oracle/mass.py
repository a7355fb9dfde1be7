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
    from .qemu import read_module          # .ko, or .ko.xz (Debian 13) decompressed
    moddir = Path(moddir)
    paths = module_paths(moddir)
    direct: dict[str, list[str]] = {}

    def depends(n: str) -> list[str]:
        if n not in direct:
            info = elf.parse_modinfo(read_module(paths[n]))
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


# ---------------------------------------------------------------------------------------------
# guest: 6.4+ (Debian 13's 6.12): struct module_memory mem[MOD_MEM_NUM_TYPES], read through BTF

class Btf:
    """Just enough of a BTF reader (/sys/kernel/btf/vmlinux) to find struct members: the types
    by id, struct/union members as (name, type id, bit offset), enums' values.  (Written for
    the oracle on its own, stdlib only: it runs in the guest under ``python3 -S``.)"""

    # extra bytes after the 12-byte btf_type, per kind: fixed, per vlen entry
    _EXTRA = {1: (4, 0), 2: (0, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 7: (0, 0),
              8: (0, 0), 9: (0, 0), 10: (0, 0), 11: (0, 0), 12: (0, 0), 13: (0, 8),
              14: (4, 0), 15: (0, 12), 16: (0, 0), 17: (4, 0), 18: (0, 0), 19: (0, 12)}

    def __init__(self, data: bytes):
        magic, _ver, _fl, hdr_len, type_off, type_len, str_off, str_len = \
            struct.unpack_from("<HBBIIIII", data, 0)
        if magic != 0xEB9F:
            raise ValueError("not BTF")
        self.strs = data[hdr_len + str_off:hdr_len + str_off + str_len]
        self.types: list = [None]                  # id 0 is void
        pos, end = hdr_len + type_off, hdr_len + type_off + type_len
        while pos < end:
            name_off, info, size = struct.unpack_from("<III", data, pos)
            kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
            fixed, per = self._EXTRA[kind]
            body = pos + 12
            self.types.append((kind, name_off, size, kflag, vlen, body))
            pos = body + fixed + per * vlen
        self.data = data
        self._by_name: dict | None = None

    def name(self, off: int) -> str:
        return self.strs[off:self.strs.index(b"\0", off)].decode()

    def find(self, name: str, kind: int) -> int:
        if self._by_name is None:
            self._by_name = {}
            for i, t in enumerate(self.types[1:], 1):
                if t[1]:
                    self._by_name.setdefault((self.name(t[1]), t[0]), i)
        return self._by_name[(name, kind)]

    def members(self, tid: int) -> dict[str, tuple[int, int]]:
        """struct/union members: name → (type id, byte offset)."""
        kind, _n, _size, kflag, vlen, body = self.types[tid]
        out = {}
        for i in range(vlen):
            name_off, typ, off = struct.unpack_from("<III", self.data, body + 12 * i)
            bits = off & 0xFFFFFF if kflag else off
            out[self.name(name_off)] = (typ, bits // 8)
        return out

    def size(self, tid: int) -> int:
        return self.types[tid][2]

    def resolve(self, tid: int) -> int:
        """Through typedef/volatile/const/restrict/type tags."""
        while self.types[tid][0] in (8, 9, 10, 11, 18):
            tid = self.types[tid][2]
        return tid

    def array(self, tid: int) -> tuple[int, int]:
        """(element type id, nelems) of an array type."""
        body = self.types[tid][5]
        elem, _idx, n = struct.unpack_from("<III", self.data, body)
        return elem, n

    def enum(self, name: str) -> dict[str, int]:
        tid = self.find(name, 6)
        _k, _n, _s, kflag, vlen, body = self.types[tid]
        out = {}
        for i in range(vlen):
            n, v = struct.unpack_from("<Ii" if kflag else "<II", self.data, body + 8 * i)
            out[self.name(n)] = v
        return out


MEM_TYPES = ["text", "data", "rodata", "ro_after_init", "init_text", "init_data",
             "init_rodata"]        # enum mod_mem_type order (MOD_TEXT … MOD_INIT_RODATA)


def mem_layout(path: str = "/sys/kernel/btf/vmlinux") -> dict | None:
    """Offsets in struct module of ``mem[type].base`` / ``.size`` and of ``name`` (from BTF), or
    None when this kernel has no ``mem[]`` (6.1: core_layout / init_layout)."""
    try:
        with open(path, "rb") as f:
            btf = Btf(f.read())
        mod = btf.find("module", 4)
    except (OSError, ValueError, KeyError):
        return None
    mm = btf.members(mod)
    if "mem" not in mm:
        return None
    arr, mem_off = mm["mem"]
    elem, n = btf.array(btf.resolve(arr))
    elem = btf.resolve(elem)
    em = btf.members(elem)
    stride = btf.size(elem)
    try:
        enum = btf.enum("mod_mem_type")
    except KeyError:
        enum = {}
    names = {v: k.removeprefix("MOD_").lower() for k, v in enum.items()
             if k.startswith("MOD_") and k != "MOD_MEM_NUM_TYPES"} or dict(enumerate(MEM_TYPES))
    types = {}
    for i in range(n):
        types[names.get(i, str(i))] = {"base": mem_off + i * stride + em["base"][1],
                                       "size": mem_off + i * stride + em["size"][1]}
    return {"mem": mem_off, "stride": stride, "nr": n, "name": mm["name"][1],
            "struct_module_size": btf.size(mod), "types": types}


def read_mem(kcore: "Kcore", layout: dict, modaddr: int) -> dict[str, dict[str, int]]:
    """{type: {base, size}} of a module's struct module at ``modaddr`` (its
    .gnu.linkonce.this_module section), read through /proc/kcore."""
    raw = kcore.read(modaddr, layout["struct_module_size"])
    return {t: {"base": struct.unpack_from("<Q", raw, o["base"])[0],
                "size": struct.unpack_from("<I", raw, o["size"])[0]}
            for t, o in layout["types"].items()}


class MemProbe:
    """6.12's InitProbe: a kprobe on do_init_module(mod) that logs ``mod->mem[t].base/size`` of
    every memory type while the module is COMING (init_* are zeroed once it is LIVE)."""

    TRACING = "/sys/kernel/tracing"

    def __init__(self, layout: dict):
        self.layout = layout
        self.ok = False
        self.error = ""

    def setup(self) -> None:
        try:
            if not os.path.exists(self.TRACING + "/kprobe_events"):
                os.system(f"mount -t tracefs tracefs {self.TRACING} 2>/dev/null")
            args = []
            for i, (t, o) in enumerate(self.layout["types"].items()):
                args.append(f"b{i}=+{o['base']}(%di):x64 s{i}=+{o['size']}(%di):u32")
            with open(self.TRACING + "/kprobe_events", "w") as f:
                f.write(f"p:kmodlab/doinit do_init_module {' '.join(args)} "
                        f"name=+{self.layout['name']}(%di):string\n")
            with open(self.TRACING + "/events/kmodlab/doinit/enable", "w") as f:
                f.write("1\n")
            with open(self.TRACING + "/trace", "w") as f:
                f.write("")
            self.ok = True
        except OSError as e:
            self.error = f"{type(e).__name__}: {e}"

    def take(self) -> dict[str, dict[str, dict[str, int]]]:
        """{name: {type: {base, size}}} logged since the last call."""
        if not self.ok:
            return {}
        types = list(self.layout["types"])
        out = {}
        with open(self.TRACING + "/trace") as f:
            for ln in f:
                m = re.search(r'name="([^"]*)"', ln)
                if not m:
                    continue
                vals = dict(re.findall(r'\b([bs]\d+)=(0x[0-9a-f]+|\d+)', ln))
                out[m.group(1)] = {t: {"base": int(vals.get(f"b{i}", "0"), 0),
                                       "size": int(vals.get(f"s{i}", "0"), 0)}
                                   for i, t in enumerate(types)}
        with open(self.TRACING + "/trace", "w") as f:
            f.write("")
        return out


def module_compression() -> str | None:
    """/sys/module/compression (CONFIG_MODULE_DECOMPRESS: "xz", "gzip", "zstd"), else None."""
    v = _r("/sys/module/compression")
    return None if v is None or v.startswith("<errno") else v.strip()


def load_flags(path: str, kernel_compression: str | None) -> int:
    """finit_module flags as kmod (30+) chooses them: a compressed file whose compression the
    kernel decompresses itself (/sys/module/compression) goes in with
    MODULE_INIT_COMPRESSED_FILE (4); an uncompressed .ko with 0."""
    ext = {".xz": "xz", ".gz": "gzip", ".zst": "zstd"}
    for suffix, kind in ext.items():
        if path.endswith(suffix):
            return 4 if kind == kernel_compression else 0
    return 0


def guest_main(out: Path, plan_file: Path, moddir: Path, dump_bytes: bool = True) -> dict:
    from ..live import LiveKernel
    t_start = time.monotonic()
    k = LiveKernel()
    kcore = Kcore()
    (out / "core").mkdir(exist_ok=True)
    entries = json.loads(plan_file.read_text())

    layout = mem_layout()        # 6.12: struct module_memory mem[]; None on 6.1
    compression = module_compression() if layout else None

    def dump(name: str, st: dict) -> None:
        if not st:
            return
        if layout:                   # 6.12: each memory type is its own allocation
            try:
                st["mem"] = read_mem(kcore, layout, st["sections"][".gnu.linkonce.this_module"])
            except (OSError, KeyError, TypeError) as e:
                st["mem_error"] = f"{type(e).__name__}: {e}"
                return
            if dump_bytes:
                for t, m in st["mem"].items():
                    if m["size"] and not t.startswith("init"):
                        try:
                            data = kcore.read(m["base"], m["size"])
                        except OSError as e:
                            st.setdefault("dump_errors", {})[t] = str(e)
                            continue
                        (out / "core" / f"{name}.{t}.bin").write_bytes(data)
            return
        if not dump_bytes:
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
    if layout:
        probe = MemProbe(layout)
        probe.setup()
        rec["init_probe"] = {"ok": probe.ok, "error": probe.error, "mem_layout": layout}
        rec["module_compression"] = compression
    else:
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
        flags = load_flags(path, compression) if layout else 0
        res = k.finit_module(path, "", flags)
        dt = time.monotonic() - t
        obs = {"name": e["name"], "path": e["path"], "ret": res.ret, "errno": res.errno,
               "log": res.log, "seconds": round(dt, 4),
               "tainted": int(_r("/proc/sys/kernel/tainted"))}
        if layout:
            obs["flags"] = flags
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
        if init and layout:
            obs["mem_coming"] = init          # every mem[] region while COMING
        elif init:
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


# ---------------------------------------------------------------------------------------------
# guest: the small cases (tests/data/oracle_cases_<release>.json), one fresh VM

SIG_MAGIC = b"~Module signature appended~\n"


def flip_signature_byte(image: bytes) -> tuple[bytes, int]:
    """The image with the last byte of its PKCS#7 signature (the RSA value's last byte,
    just before struct module_signature) inverted; (new image, offset flipped)."""
    if not image.endswith(SIG_MAGIC):
        raise ValueError("not signed")
    ms = len(image) - len(SIG_MAGIC) - 12          # struct module_signature (12 bytes)
    sig_len, = struct.unpack_from(">I", image, ms + 8)
    off = ms - 1                                   # the signature's last byte
    assert sig_len > 0 and off >= ms - sig_len
    return image[:off] + bytes([image[off] ^ 0xFF]) + image[off + 1:], off


def small_cases(out: Path, moddir: Path, module: str = "crc7") -> dict:
    """Run the failure and success cases the sandbox's 6.12 path is built against; write
    ``cases.json`` into ``out``.  Each case: what was done, ret, errno (and its name), the log
    lines of the call (text) and as dmesg shows them, the taint after."""
    import errno as _errno
    import lzma
    from ..live import LiveKernel
    k = LiveKernel()
    kcore = Kcore()
    layout = mem_layout()
    paths = {}
    for d, _s, files in os.walk(moddir / "kernel"):
        for f in files:
            paths.setdefault(f.split(".ko")[0].replace("-", "_"), os.path.join(d, f))
    xz_path = paths[module]
    xz = open(xz_path, "rb").read()
    raw = lzma.decompress(xz)
    tmp = Path("/tmp/kmodlab-cases")
    tmp.mkdir(exist_ok=True)
    plain = tmp / f"{module}.ko"
    plain.write_bytes(raw)
    trunc = tmp / f"{module}.truncated.ko.xz"
    trunc.write_bytes(xz[:len(xz) // 2])
    flipped, flip_off = flip_signature_byte(raw)
    sig_len, = struct.unpack_from(">I", raw, len(raw) - len(SIG_MAGIC) - 4)
    unsigned = raw[:len(raw) - len(SIG_MAGIC) - 12 - sig_len]
    rec = {"release": os.uname().release, "cmdline": _r("/proc/cmdline").strip(),
           "module_compression": module_compression(),
           "tainted_at_start": int(_r("/proc/sys/kernel/tainted")),
           "module": module, "module_path": os.path.relpath(xz_path, moddir),
           "module_sizes": {"ko.xz": len(xz), "ko": len(raw)},
           "mem_layout_btf": layout, "cases": []}

    def record(what: str, res, **extra) -> dict:
        c = {"case": what, "ret": res.ret, "errno": res.errno,
             "errno_name": _errno.errorcode.get(res.errno, "") if res.errno else "",
             "log": res.log, "dmesg": res.details.get("dmesg", []),
             "tainted": int(_r("/proc/sys/kernel/tainted"))}
        c.update(extra)
        rec["cases"].append(c)
        return c

    def state(name: str) -> dict | None:
        st = module_snapshot(name)
        if st and layout:
            st["mem"] = read_mem(kcore, layout, st["sections"][".gnu.linkonce.this_module"])
        if st:
            base = f"/sys/module/{name}"
            st["sysfs_files"] = sorted(os.listdir(base))
            st["sysfs_tree"] = {d: sorted(os.listdir(f"{base}/{d}"))
                                for d in st["sysfs_files"] if os.path.isdir(f"{base}/{d}")}
        return st

    c = record(f"finit_module({module}.ko.xz, flags=MODULE_INIT_COMPRESSED_FILE=4)",
               k.finit_module(xz_path, "", 4))
    c["state"] = state(module)
    record(f"finit_module({module}.ko.xz, flags=4) again (a module loaded twice)",
           k.finit_module(xz_path, "", 4))
    record(f"delete_module({module}, O_NONBLOCK)", k.delete_module(module))
    record(f"delete_module({module}) again (not loaded)", k.delete_module(module))
    record(f"finit_module({module}.ko.xz, flags=0) (compressed file, no flag 4)",
           k.finit_module(xz_path, "", 0))
    c = record(f"finit_module(uncompressed copy {module}.ko, flags=4)",
               k.finit_module(str(plain), "", 4))
    if c["ret"] == 0:
        k.delete_module(module)
    record(f"finit_module(truncated {module}.ko.xz: its first {len(xz) // 2} of {len(xz)} "
           f"bytes, flags=4)", k.finit_module(str(trunc), "", 4))
    record("finit_module(/etc/hostname, flags=0)", k.finit_module("/etc/hostname", "", 0),
           file=open("/etc/hostname", "rb").read().decode(errors="replace"))
    record("finit_module(/etc/hostname, flags=4)", k.finit_module("/etc/hostname", "", 4))
    record(f"finit_module({module}.ko.xz, flags=8) (unknown flag)",
           k.finit_module(xz_path, "", 8))
    record(f"init_module(first 10 bytes of {module}.ko)", k.init_module(raw[:10]),
           image_hex=raw[:10].hex())
    record("init_module(10 zero bytes)", k.init_module(bytes(10)))
    record(f"init_module({module}.ko xz-compressed image, i.e. the .ko.xz bytes)",
           k.init_module(xz))
    record(f"init_module({module}.ko with the last byte of its signature inverted, at file "
           f"offset {flip_off} of {len(raw)})", k.init_module(flipped),
           flipped_offset=flip_off)
    c = record(f"init_module({module}.ko decompressed, signed)", k.init_module(raw))
    c["state"] = state(module)
    record(f"init_module({module}.ko) again", k.init_module(raw))
    record(f"delete_module({module})", k.delete_module(module))
    # last: it taints the kernel (E) for the rest of the boot
    c = record(f"init_module({module}.ko with the signature stripped: unsigned, "
               f"{len(unsigned)} bytes)", k.init_module(unsigned))
    c["state"] = state(module)
    record(f"delete_module({module})", k.delete_module(module))
    with open("/proc/modules") as f:
        rec["proc_modules_at_end"] = [ln.rstrip("\n") for ln in f]
    rec["tainted_at_end"] = int(_r("/proc/sys/kernel/tainted"))
    (out / "cases.json").write_text(json.dumps(rec, indent=1))
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


CASES_SCRIPT = '"$PYTHON" -S -m kmodlab.oracle.mass cases "$OUT" "$MODDIR"\n'


def run_cases(release=None, timeout: float = 120):
    """Boot once and run :func:`small_cases`; (cases.json as a dict, GuestResult)."""
    from . import qemu
    r = qemu.run_in_guest(CASES_SCRIPT, timeout=timeout, release=release, append=APPEND).check()
    return r.json("cases.json"), r


def cases_name(release: str | None = None) -> str:
    """tests/data file of the small cases: oracle_cases_6.12.118+deb13.json."""
    from . import qemu
    return f"oracle_cases_{(release or qemu.DEFAULT_RELEASE).removesuffix('-amd64')}.json"


if __name__ == "__main__" and sys.argv[1:2] == ["cases"]:
    small_cases(Path(sys.argv[2]), Path(sys.argv[3]))
elif __name__ == "__main__":
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


def real_recording_name(release: str | None = None) -> str:
    """tests/data file of a real-only whole-tree run: mass_real_6.12.118+deb13.json.gz."""
    from . import qemu
    return f"mass_real_{(release or qemu.DEFAULT_RELEASE).removesuffix('-amd64')}.json.gz"


def summarize_real(rec: dict, vm_seconds: float) -> dict:
    """tests/data recording of the real kernel alone (no sandbox replay yet, no memory dumps)."""
    return {
        "about": "Mass-loading run of the real kernel only (kmodlab.oracle.mass): "
                 + ("every module" if not SUBDIRS else "the modules under kernel/{"
                    + ",".join(SUBDIRS) + "}") + " of Debian's tree (minus "
                 + ", ".join(EXCLUDE) + ") loaded with finit_module in dependency order in "
                 "QEMU (nokaslr). On 6.12 each load passes the flags kmod would "
                 "(MODULE_INIT_COMPRESSED_FILE for .ko.xz, /sys/module/compression = xz); "
                 "'mem_coming' is mod->mem[] at do_init_module (kprobe, offsets from BTF), "
                 "state.mem the same read from struct module through /proc/kcore at LIVE. "
                 "Regenerate: python3 scripts/qemu_oracle.py --release <rel> mass --real-only",
        "release": rec["release"],
        "excluded": EXCLUDE,
        "vm_seconds": round(vm_seconds, 1),
        "real": rec,
    }


def render_real(rec: dict) -> str:
    """A few lines: loads, errno tally, taint, time."""
    import errno as _errno
    from collections import Counter
    loads = rec["loads"]
    tally = Counter(_errno.errorcode.get(o["errno"], str(o["errno"])) for o in loads if o["ret"])
    slow = sorted(loads, key=lambda o: -o["seconds"])[:5]
    return "\n".join([
        f"release {rec['release']}: {len(loads)} loads, "
        f"{sum(1 for o in loads if o['ret'] == 0)} loaded; failures: "
        + ", ".join(f"{n} x {e}" for e, n in tally.most_common()),
        f"final taint {rec['final']['tainted']}, {len(rec['final']['proc_modules'])} modules "
        f"in /proc/modules; guest loads {rec.get('seconds')} s",
        "slowest: " + ", ".join(f"{o['name']} {o['seconds']:.1f}s" for o in slow)])
