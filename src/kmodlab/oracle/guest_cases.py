"""The oracle's case list: run *inside the QEMU guest* as root, against the real kernel.

    $PYTHON -m kmodlab.oracle.guest_cases OUT.json

drives :class:`kmodlab.live.LiveKernel` through a fixed sequence of loads and unloads of real
Debian modules (crc7, md4) and of the example modules in ``examples/``, and records for each
call what the kernel answered: return value, errno, the kernel log lines the call produced,
the module's /proc/modules line and /sys/module files, and the taint mask after it.  The
sequence is fixed and runs on a fresh boot, so once-per-boot messages land in the same case
every time.  :func:`normalize` removes what differs between boots (KASLR addresses, timings,
asynchronous log lines) so a new recording can be compared with tests/data/oracle_<rel>.json.

Only the standard library and kmodlab's stdlib-only modules are used (it runs from any Python).
"""
from __future__ import annotations

import errno as _errno
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

from ..live import LiveKernel

SRC = Path(__file__).resolve().parents[2]
EXAMPLES = SRC.parent / "examples"
MODULE_INIT_IGNORE_MODVERSIONS, MODULE_INIT_IGNORE_VERMAGIC = 1, 2
DEBIAN_PATHS = {"crc7": "kernel/lib/crc7.ko", "md4": "kernel/crypto/md4.ko"}

# Kernel log lines that are not produced by the call they happen to follow.
ASYNC_LOG = re.compile(r"^(random: |clocksource: |tsc: |hrtimer: |sched: RT throttling|"
                       r"workqueue: |rcu: )")


def _errname(err: int) -> str:
    return _errno.errorcode.get(err, f"E{err}") if err else ""


def _read(k: LiveKernel, path: str) -> str | None:
    try:
        return k.read(path).decode(errors="replace")
    except OSError as e:
        return f"<{_errname(e.errno)}>"


def proc_modules_line(k: LiveKernel, name: str) -> str | None:
    for line in k.read("/proc/modules").decode().splitlines():
        if line.split(" ", 1)[0] == name:
            return line
    return None


def module_state(k: LiveKernel, name: str) -> dict:
    """What /proc/modules and /sys/module/<name> say about one module (None: not loaded)."""
    base = f"/sys/module/{name}"
    st = {"proc_modules": proc_modules_line(k, name), "sysfs": k.exists(base)}
    if not k.exists(base + "/initstate"):
        return st
    for f in ("initstate", "refcnt", "coresize", "initsize", "taint", "version", "srcversion"):
        if k.exists(f"{base}/{f}"):
            st[f] = _read(k, f"{base}/{f}")
    for d in ("holders", "parameters"):
        if k.exists(f"{base}/{d}"):
            st[d] = sorted(k.listdir(f"{base}/{d}"))
    if st.get("parameters"):
        st["parameter_values"] = {p: _read(k, f"{base}/parameters/{p}") for p in st["parameters"]}
    if k.exists(f"{base}/sections"):
        st["sections"] = sorted(k.listdir(f"{base}/sections"))
    return st


class Recorder:
    def __init__(self, k: LiveKernel, moddir: Path | None):
        self.k = k
        self.moddir = moddir
        self.cases: list[dict] = []
        self._index = None

    def debian(self, name: str) -> str:
        if name in DEBIAN_PATHS:                    # walking the tree over 9p is slow
            return str(self.moddir / DEBIAN_PATHS[name])
        from .qemu import module_index
        return str(module_index(self.moddir)[name])

    def example(self, name: str) -> str:
        return str(EXAMPLES / f"{name}.ko")

    def record(self, case: str, call: str, target: str, res, args: str = "", flags: int = 0,
               show: tuple[str, ...] = ()) -> dict:
        obs = {"case": case, "call": call, "target": target, "args": args, "flags": flags,
               "ret": res.ret, "errno": res.errno, "errno_name": _errname(res.errno),
               "strerror": os.strerror(res.errno) if res.errno else "",
               "log": list(res.log), "seconds": res.details.get("seconds"),
               "tainted": self.k.tainted()}
        for name in show:
            obs.setdefault("modules", {})[name] = module_state(self.k, name)
        self.cases.append(obs)
        return obs

    def finit(self, case, path, args="", flags=0, show=()):
        t = time.monotonic()
        res = self.k.finit_module(path, args, flags)
        res.details["seconds"] = round(time.monotonic() - t, 4)
        return self.record(case, "finit_module", Path(path).name, res, args, flags, show)

    def init(self, case, path, args="", show=()):
        image = Path(path).read_bytes()
        t = time.monotonic()
        res = self.k.init_module(image, args)
        res.details["seconds"] = round(time.monotonic() - t, 4)
        return self.record(case, "init_module", Path(path).name, res, args, 0, show)

    def delete(self, case, name, flags=os.O_NONBLOCK, show=()):
        t = time.monotonic()
        res = self.k.delete_module(name, flags)
        res.details["seconds"] = round(time.monotonic() - t, 4)
        return self.record(case, "delete_module", name, res, "", flags,
                           show or ((name,) if name else ()))


def _unprivileged(path: str, loaded: str) -> dict:
    """Module calls as uid/gid 65534 in a forked child: what an unprivileged caller sees.
    The module file is opened and read before dropping privileges (/root is 0700)."""
    image = Path(path).read_bytes()
    fd = os.open(path, os.O_RDONLY)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                    # child
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            k = LiveKernel()
            out = {"uid": os.getuid()}
            for label, res in (("finit_module", k.finit_fd(fd, "", 0)),
                               ("init_module", k.init_module(image, "")),
                               ("delete_module", k.delete_module(loaded, os.O_NONBLOCK))):
                out[label] = {"ret": res.ret, "errno": res.errno,
                              "errno_name": _errname(res.errno), "log": res.log}
            try:
                k.dmesg()
                out["kmsg_readable"] = True
            except OSError as e:
                out["kmsg_readable"] = _errname(e.errno)
            os.write(w, json.dumps(out).encode())
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            os._exit(0)
    os.close(w)
    os.close(fd)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)


def run_cases(outdir: Path) -> dict:
    t0 = time.monotonic()
    k = LiveKernel()
    moddir = Path(os.environ["MODDIR"]) if os.environ.get("MODDIR") else None
    rec = Recorder(k, moddir)
    crc7, md4 = rec.debian("crc7"), rec.debian("md4")
    result = {
        "about": "What Debian's real kernel answered, recorded in QEMU by "
                 "kmodlab.oracle.guest_cases on a fresh boot (cases in order: once-per-boot "
                 "messages land where they first happen). Per case: ret/errno of the syscall, "
                 "log = kernel log lines it produced (/dev/kmsg, kernel escaping kept), "
                 "tainted = /proc/sys/kernel/tainted after it, modules = /proc/modules line and "
                 "/sys/module/<name> files after it. Addresses are normalized to 0xADDR. "
                 "Regenerate: python3 scripts/qemu_oracle.py record",
        "release": os.uname().release,
        "uname_version": os.uname().version,
        "boot": {"tainted": k.tainted(),
                 "sig_enforce": _read(k, "/sys/module/module/parameters/sig_enforce"),
                 "modules_disabled": _read(k, "/proc/sys/kernel/modules_disabled"),
                 "dmesg_restrict": _read(k, "/proc/sys/kernel/dmesg_restrict"),
                 "kptr_restrict": _read(k, "/proc/sys/kernel/kptr_restrict"),
                 "proc_modules": k.read("/proc/modules").decode().splitlines()},
        "files": {},
    }
    for name, p in (("crc7", crc7), ("md4", md4)):
        result["files"][name] = {"size": Path(p).stat().st_size,
                                 "sha256": hashlib.sha256(Path(p).read_bytes()).hexdigest()}
    for name in ("hello", "kmodlab_provider", "kmodlab_consumer", "failing_init", "proprietary"):
        p = Path(rec.example(name))
        if p.exists():
            result["files"][name] = {"size": p.stat().st_size,
                                     "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}

    # --- real Debian modules, the syscalls' basic answers
    rec.finit("finit crc7", crc7, show=("crc7",))
    rec.finit("finit crc7 again", crc7, show=("crc7",))
    rec.init("init_module md4 from memory", md4, show=("md4",))
    rec.delete("delete md4", "md4")
    rec.delete("delete crc7", "crc7")
    rec.delete("delete crc7 again", "crc7")
    rec.delete("delete unknown module", "no_such_module")
    rec.delete("delete empty name", "")
    rec.finit("finit flags=8", crc7, flags=8, show=("crc7",))
    short = outdir / "not-elf.txt"
    short.write_bytes(b"kmodlab\n")
    rec.finit("finit non-ELF 8 bytes", str(short))
    longer = outdir / "not-elf-long.txt"
    longer.write_bytes(b"kmodlab: this is not an ELF file, only text of more than 64 bytes.\n")
    rec.finit("finit non-ELF 68 bytes", str(longer))
    rec.init("init_module 8 bytes", str(short))
    wfd = os.open(short, os.O_WRONLY)
    t = time.monotonic()
    res = k.finit_fd(wfd, "", 0)
    res.details["seconds"] = round(time.monotonic() - t, 4)
    os.close(wfd)
    rec.record("finit fd opened O_WRONLY", "finit_module", short.name, res)
    rec.finit("finit crc7 (for the unprivileged delete)", crc7)
    result["unprivileged_uid_65534"] = _unprivileged(crc7, "crc7")
    rec.delete("delete crc7 after the unprivileged calls", "crc7")

    # --- the example modules (built for this release)
    if Path(rec.example("hello")).exists():
        hello = rec.example("hello")
        rec.finit("finit hello who=kmodlab count=3", hello, "who=kmodlab count=3",
                  show=("hello",))
        rec.finit("finit hello again", hello, show=("hello",))
        rec.delete("delete hello", "hello")
        rec.init("init_module hello values=1,2,3 verbose=1", hello, "values=1,2,3 verbose=1",
                 show=("hello",))
        rec.delete("delete hello (2)", "hello")
        for args in ("bogus=1", "count=abc", "values=1,2,3,4,5", "verbose=maybe",
                     "count=99999999999", 'who="two words" count=2'):
            if rec.finit(f"finit hello {args}", hello, args, show=("hello",))["ret"] == 0:
                rec.delete(f"delete hello after {args}", "hello")
    if Path(rec.example("kmodlab_provider")).exists():
        prov, cons = rec.example("kmodlab_provider"), rec.example("kmodlab_consumer")
        rec.finit("finit consumer without provider", cons, show=("kmodlab_consumer",))
        rec.finit("finit provider", prov, show=("kmodlab_provider",))
        rec.finit("finit consumer", cons, show=("kmodlab_consumer", "kmodlab_provider"))
        rec.delete("delete provider while used", "kmodlab_provider")
        rec.delete("delete consumer", "kmodlab_consumer", show=("kmodlab_consumer",
                                                                "kmodlab_provider"))
        rec.delete("delete provider", "kmodlab_provider")
    if Path(rec.example("failing_init")).exists():
        rec.finit("finit failing_init", rec.example("failing_init"), show=("failing_init",))
    if Path(rec.example("proprietary")).exists():
        rec.finit("finit proprietary", rec.example("proprietary"), show=("proprietary",))
    # forced load of a Debian module: taints F even though the signature is fine
    rec.finit("finit crc7 IGNORE_MODVERSIONS|IGNORE_VERMAGIC", crc7,
              flags=MODULE_INIT_IGNORE_MODVERSIONS | MODULE_INIT_IGNORE_VERMAGIC,
              show=("crc7",))
    rec.delete("delete forced crc7", "crc7")
    result["cases"] = rec.cases
    result["seconds"] = round(time.monotonic() - t0, 3)
    result["end"] = {"tainted": k.tainted(),
                     "proc_modules": k.read("/proc/modules").decode().splitlines()}
    return result


# --- comparison ----------------------------------------------------------------------------------

_ADDR = re.compile(r"0x[0-9a-f]{16}")


_HARNESS_MODULES = {"virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
                    "virtio_pci", "netfs", "fscache", "9pnet", "9pnet_virtio", "9p"}


def normalize(obs: dict) -> dict:
    """A recording with what changes from boot to boot removed: KASLR addresses become
    0xADDR, timings are dropped, asynchronous kernel log lines are filtered out."""
    obs = json.loads(json.dumps(obs))

    def fix(v):
        if isinstance(v, str):
            return _ADDR.sub("0xADDR", v)
        if isinstance(v, list):
            return [fix(x) for x in v]
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        return v

    # the 9p stack is the harness's own: its refcounts count the harness's mounts
    for part in ("boot", "end"):
        if isinstance(obs.get(part), dict) and "proc_modules" in obs[part]:
            obs[part]["proc_modules"] = [l for l in obs[part]["proc_modules"]
                                         if l.split(" ", 1)[0] not in _HARNESS_MODULES]
    for c in obs.get("cases", []):
        c.pop("seconds", None)
        c["log"] = [line for line in c["log"] if not ASYNC_LOG.match(line)]
    obs.pop("uname_version", None)
    obs.pop("seconds", None)
    return fix(obs)


# --- the kmodlab tools with --live ---------------------------------------------------------

def _tool_exists(name: str) -> bool:
    return (SRC / "kmodlab" / "tools" / f"{name}.py").exists()


def run_cli(outdir: Path) -> list[dict]:
    """``python3 -m kmodlab --live TOOL …`` for each tool that exists: rc, stdout, stderr."""
    import subprocess
    hello = str(EXAMPLES / "hello.ko")
    notelf = outdir / "not-elf-cli.txt"
    notelf.write_bytes(b"kmodlab\n")
    steps = [("insmod", [hello, "who=cli", "count=2"]),
             ("lsmod", []),
             ("insmod", [hello]),
             ("rmmod", ["hello"]),
             ("rmmod", ["hello"]),
             ("insmod", [str(notelf)]),
             ("insmod", [str(EXAMPLES / "kmodlab_consumer.ko")]),
             ("insmod", [str(EXAMPLES / "failing_init.ko")]),
             ("insmod", [str(outdir / "no-such-file.ko")])]
    # Under TCG the interpreter's start-up costs ~3 s, 2 of them in site's .pth hooks: run with
    # -S and the site-packages directories on PYTHONPATH instead (same modules, no hooks).
    import site
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *site.getsitepackages()])
    runs = []
    for tool, args in steps:
        if not _tool_exists(tool):
            continue
        argv = [sys.executable, "-S", "-m", "kmodlab", "--live", tool, *args]
        t = time.monotonic()
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
        shown = [Path(a).name if "/" in a else a for a in args]
        runs.append({"seconds": round(time.monotonic() - t, 3),
                     "argv": ["kmodlab", "--live", tool, *shown],
                     "rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr})
    return runs


def main(argv: list[str]) -> int:
    cli = "--cli" in argv
    argv = [a for a in argv if a != "--cli"]
    out = Path(argv[0]) if argv else Path(os.environ.get("OUT", ".")) / "oracle.json"
    result = run_cases(out.parent)
    out.write_text(json.dumps(result, indent=1, sort_keys=False) + "\n")
    if cli:
        (out.parent / "cli.json").write_text(json.dumps(run_cli(out.parent), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
