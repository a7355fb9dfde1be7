"""kmodlab's ``--live`` depmod, modprobe and lsmod next to kmod's own, *inside the QEMU guest*.

    $PYTHON -S -m kmodlab.oracle.tools_cases OUT.json

1. **depmod**: a subset of the guest's module tree (``$MODDIR``: crypto, lib, fs/fat, fs/nls,
   fs/fuse, loop, with modules.order/.builtin) plus the example modules in ``extra/`` is
   copied twice under /tmp; ``kmodlab --live depmod -b A $KREL`` runs on one copy and kmod's
   ``depmod -b B $KREL`` on the other; the text index files of both are recorded.
2. **modprobe**: the same list of steps (:data:`STEPS`) is run twice on the real kernel, once
   with ``kmodlab --live modprobe``/``lsmod`` on the tree kmodlab's depmod wrote, once with
   kmod's ``modprobe``/``lsmod`` on the tree kmod's depmod wrote (each tree is renamed to the
   same path, :data:`TREE`, for its pass, so both print the same paths).  Per step: exit code,
   stdout, stderr, and afterwards the non-harness lines of /proc/modules (address dropped) and
   hello's parameters.  The tree's ``etc/modprobe.d/kmodlab-test.conf`` holds
   ``options hello who=conf`` and ``blacklist md4``: kmodlab reads modprobe.d under the ``-d``
   basedir, kmod 30 only the host's /etc/modprobe.d, /run, /usr/local/lib and /lib/modprobe.d —
   the steps with ``-C $TREE/etc/modprobe.d`` give both the same configuration.

kmodlab runs in-process after a fork (:func:`run_kmodlab`: ``kmodlab.tools.main`` with stdout
and stderr on files, exactly the CLI's entry point) because every interpreter start costs ~3 s
under TCG; one step is also run as a real ``python3 -S -m kmodlab --live …`` subprocess to show
that both paths print the same.  Only the standard library and kmodlab are needed (numpy for
depmod, found through the site-packages directories).
"""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

SRC = Path(__file__).resolve().parents[2]
EXAMPLES = SRC.parent / "examples"
TOP = "/tmp/kmodlab-tools"          # tmpfs in the guest
TREE = f"{TOP}/tree"                # the basedir each pass sees (-d TREE)
CONF_NAME = "kmodlab-test.conf"
CONF = ("options hello who=conf\nblacklist md4\n"
        "install crc16 /bin/echo install-crc16 $CMDLINE_OPTS\nremove crc16 /bin/echo remove-crc16\n"
        "install crc8 /bin/false\nremove crc8 /bin/false\n"
        "install ts_bm /bin/echo $MODPROBE_MODULE [$MODPROBE_OPTIONS]\n")
SUBSET = ("kernel/crypto", "kernel/lib", "kernel/fs/fat", "kernel/fs/nls", "kernel/fs/fuse",
          "kernel/drivers/block/loop.ko")
TOP_FILES = ("modules.order", "modules.builtin", "modules.builtin.modinfo")
EXTRA = ("kmodlab_provider", "kmodlab_consumer", "hello")
TEXT_FILES = ("modules.dep", "modules.alias", "modules.softdep", "modules.symbols",
              "modules.devname")
HARNESS = {"virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
           "virtio_pci", "netfs", "fscache", "9pnet", "9pnet_virtio", "9p"}
PARAM_MODULES = ("hello",)

T = TREE
C = ["-C", f"{TREE}/etc/modprobe.d"]
# (label, tool, args): the same argv for kmodlab --live TOOL and kmod's TOOL.
STEPS: list[tuple[str, str, list[str]]] = [
    ("vfat -v", "modprobe", ["-v", "-d", T, "vfat"]),
    ("lsmod after vfat", "lsmod", []),
    ("vfat -n -v loaded", "modprobe", ["-n", "-v", "-d", T, "vfat"]),
    ("vfat again", "modprobe", ["-d", T, "vfat"]),
    ("-r -n -v vfat", "modprobe", ["-r", "-n", "-v", "-d", T, "vfat"]),
    ("-r -v vfat", "modprobe", ["-r", "-v", "-d", T, "vfat"]),
    ("vfat -n -v", "modprobe", ["-n", "-v", "-d", T, "vfat"]),
    ("-D vfat", "modprobe", ["-D", "-d", T, "vfat"]),
    ("-R fs-vfat", "modprobe", ["-R", "-d", T, "fs-vfat"]),
    ("consumer -v", "modprobe", ["-v", "-d", T, "kmodlab_consumer"]),
    ("lsmod after consumer", "lsmod", []),
    ("-r provider in use", "modprobe", ["-r", "-d", T, "kmodlab_provider"]),
    ("-r -v consumer", "modprobe", ["-r", "-v", "-d", T, "kmodlab_consumer"]),
    ("crc7", "modprobe", ["-d", T, "crc7"]),
    ("--first-time crc7 loaded", "modprobe", ["--first-time", "-d", T, "crc7"]),
    ("crc7 loaded", "modprobe", ["-d", T, "crc7"]),
    ("-r crc7", "modprobe", ["-r", "-d", T, "crc7"]),
    ("-r --first-time crc7 unloaded", "modprobe", ["-r", "--first-time", "-d", T, "crc7"]),
    ("-r crc7 unloaded", "modprobe", ["-r", "-d", T, "crc7"]),
    ("not found", "modprobe", ["-d", T, "no_such_module"]),
    ("-r not found", "modprobe", ["-r", "-d", T, "no_such_module"]),
    ("-q not found", "modprobe", ["-q", "-d", T, "no_such_module"]),
    ("-a -v crc7 crc-itu-t", "modprobe", ["-a", "-v", "-d", T, "crc7", "crc-itu-t"]),
    ("-r -a -v crc7 crc-itu-t", "modprobe", ["-r", "-a", "-v", "-d", T, "crc7", "crc-itu-t"]),
    ("-n -v consumer", "modprobe", ["-n", "-v", "-d", T, "kmodlab_consumer"]),
    ("-v symbol:crc_itu_t", "modprobe", ["-v", "-d", T, "symbol:crc_itu_t"]),
    ("-r -v crc_itu_t", "modprobe", ["-r", "-v", "-d", T, "crc_itu_t"]),
    ("-v lrw (softdep pre: ecb)", "modprobe", ["-v", "-d", T, "lrw"]),
    ("lsmod after lrw", "lsmod", []),
    ("-r -v lrw", "modprobe", ["-r", "-v", "-d", T, "lrw"]),
    ("-v libcrc32c (softdep pre: crc32c)", "modprobe", ["-v", "-d", T, "libcrc32c"]),
    ("-r -v libcrc32c", "modprobe", ["-r", "-v", "-d", T, "libcrc32c"]),
    ("-f -v crc7", "modprobe", ["-f", "-v", "-d", T, "crc7"]),
    ("-r -v crc7 forced", "modprobe", ["-r", "-v", "-d", T, "crc7"]),
    # built-in modules (modules.builtin, modules.builtin.modinfo)
    ("-v builtin sha256_generic", "modprobe", ["-v", "-d", T, "sha256_generic"]),
    ("--first-time builtin", "modprobe", ["--first-time", "-d", T, "sha256_generic"]),
    ("-D builtin", "modprobe", ["-D", "-d", T, "sha256_generic"]),
    ("-r builtin", "modprobe", ["-r", "-d", T, "sha256_generic"]),
    ("-v crypto-sha256 (builtin alias)", "modprobe", ["-v", "-d", T, "crypto-sha256"]),
    ("-R crypto-sha256", "modprobe", ["-R", "-d", T, "crypto-sha256"]),
    # the tree's modprobe.d: kmodlab reads it under -d, kmod reads the host's /etc/modprobe.d
    ("hello -v count=2 (tree conf)", "modprobe", ["-v", "-d", T, "hello", "count=2"]),
    ("-r hello", "modprobe", ["-r", "-d", T, "hello"]),
    ("crypto-md4 -v (tree conf)", "modprobe", ["-v", "-d", T, "crypto-md4"]),
    ("-r md4", "modprobe", ["-r", "-d", T, "md4"]),
    # the same configuration for both: -C
    ("-C hello -v count=2", "modprobe", [*C, "-v", "-d", T, "hello", "count=2"]),
    ("-C -r -v hello", "modprobe", [*C, "-r", "-v", "-d", T, "hello"]),
    ("-C hello count=abc", "modprobe", [*C, "-d", T, "hello", "count=abc"]),
    ("-C crypto-md4 -v", "modprobe", [*C, "-v", "-d", T, "crypto-md4"]),
    ("-C -b md4 -v", "modprobe", [*C, "-b", "-v", "-d", T, "md4"]),
    ("-C md4 -v", "modprobe", [*C, "-v", "-d", T, "md4"]),
    ("-C -r -v md4", "modprobe", [*C, "-r", "-v", "-d", T, "md4"]),
    ("-C -v crc16 foo=1 (install command)", "modprobe", [*C, "-v", "-d", T, "crc16", "foo=1"]),
    ("-C -r -v crc16 (remove command)", "modprobe", [*C, "-r", "-v", "-d", T, "crc16"]),
    ("-C -i -v crc16", "modprobe", [*C, "-i", "-v", "-d", T, "crc16"]),
    ("-C -r -i -v crc16", "modprobe", [*C, "-r", "-i", "-v", "-d", T, "crc16"]),
    ("-C crc8 (failing install)", "modprobe", [*C, "-d", T, "crc8"]),
    ("-C -r crc8 (failing remove)", "modprobe", [*C, "-r", "-d", T, "crc8"]),
    ("-C -v ts_bm (install command's environment)", "modprobe", [*C, "-v", "-d", T, "ts_bm"]),
    ("lsmod at the end", "lsmod", []),
]
CLI_STEP = "vfat -n -v"          # also run as a real `python3 -S -m kmodlab --live` subprocess


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *site.getsitepackages()])
    return env


# --- running the tools ---------------------------------------------------------------------

def run_kmodlab(argv: list[str]) -> dict:
    """``kmodlab --live ARGV…`` in a forked child of this (warm) interpreter: the CLI's entry
    point kmodlab.tools.main with fd 1 and 2 on files, its return value the exit status."""
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    sys.stdout.flush()
    sys.stderr.flush()
    t = time.monotonic()
    pid = os.fork()
    if pid == 0:                                    # child
        rc = 70
        try:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            from kmodlab.tools import main
            rc = main(["kmodlab", "--live", *argv])
        except SystemExit as e:
            if isinstance(e.code, int) or e.code is None:
                rc = e.code or 0
            else:
                print(e.code, file=sys.stderr)
                rc = 1
        except BaseException:
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(rc & 0xFF if isinstance(rc, int) else 1)
    _, status = os.waitpid(pid, 0)
    secs = time.monotonic() - t
    res = {"argv": ["kmodlab", "--live", *argv], "rc": os.waitstatus_to_exitcode(status)}
    for name, f in (("stdout", out), ("stderr", err)):
        f.seek(0)
        res[name] = f.read().decode(errors="replace")
        f.close()
    res["seconds"] = round(secs, 3)
    return res


def run_kmodlab_subprocess(argv: list[str]) -> dict:
    cmd = [sys.executable, "-S", "-m", "kmodlab", "--live", *argv]
    t = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=_env())
    return {"argv": ["kmodlab", "--live", *argv], "rc": p.returncode, "stdout": p.stdout,
            "stderr": p.stderr, "seconds": round(time.monotonic() - t, 3)}


def kmod_tool(name: str) -> str | None:
    for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    return None


def run_kmod(tool: str, argv: list[str]) -> dict:
    path = kmod_tool(tool)
    t = time.monotonic()
    p = subprocess.run([path, *argv], capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"})
    return {"argv": [tool, *argv], "rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr,
            "seconds": round(time.monotonic() - t, 3)}


# --- the kernel's state ------------------------------------------------------------------------

def proc_modules() -> list[list[str]]:
    with open("/proc/modules") as f:
        return [line.split() for line in f if line.split()]


def state() -> dict:
    """The non-harness modules: /proc/modules without the address, and hello's parameters."""
    mods = []
    for f in proc_modules():
        if f[0] in HARNESS:
            continue
        mods.append(" ".join(f[:5] + f[6:]))
    st = {"modules": mods}
    for name in PARAM_MODULES:
        d = f"/sys/module/{name}/parameters"
        if os.path.isdir(d):
            vals = {}
            for p in sorted(os.listdir(d)):
                try:
                    with open(os.path.join(d, p)) as fh:
                        vals[p] = fh.read()
                except OSError as e:
                    vals[p] = f"<{e.strerror}>"
            st[f"{name}_parameters"] = vals
    return st


def unload_all() -> list[str]:
    """Remove every non-harness module (users before what they use); returns their names."""
    from kmodlab.live import LiveKernel
    k = LiveKernel()
    left = [f[0] for f in proc_modules() if f[0] not in HARNESS]
    for _ in range(len(left) + 1):
        rest = [f[0] for f in proc_modules() if f[0] not in HARNESS]
        if not rest:
            break
        for name in rest:
            k.delete_module(name)
    return left


# --- the trees ----------------------------------------------------------------------------------

def build_trees(moddir: Path, release: str) -> dict[str, str]:
    """Two identical basedirs under TOP (``kmodlab`` and ``kmod``): the subset copied from the
    guest's tree once (9p), hard-linked into the second; each with etc/modprobe.d."""
    shutil.rmtree(TOP, ignore_errors=True)
    bases = {who: f"{TOP}/{who}" for who in ("kmodlab", "kmod")}
    first = Path(bases["kmodlab"]) / "lib" / "modules" / release
    for rel in SUBSET:
        src = moddir / rel
        if src.is_dir():
            shutil.copytree(src, first / rel)
        elif src.exists():
            (first / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, first / rel)
    for name in TOP_FILES:
        if (moddir / name).exists():
            shutil.copy2(moddir / name, first / name)
    (first / "extra").mkdir(parents=True, exist_ok=True)
    for name in EXTRA:
        if (EXAMPLES / f"{name}.ko").exists():
            shutil.copy2(EXAMPLES / f"{name}.ko", first / "extra" / f"{name}.ko")
    second = Path(bases["kmod"]) / "lib" / "modules" / release
    for top, _dirs, files in os.walk(first):
        rel = os.path.relpath(top, first)
        os.makedirs(second / rel, exist_ok=True)
        for fn in files:
            os.link(os.path.join(top, fn), second / rel / fn)
    for base in bases.values():
        conf = Path(base) / "etc" / "modprobe.d"
        conf.mkdir(parents=True)
        (conf / CONF_NAME).write_text(CONF)
    return bases


def tree_files(moddir: str) -> dict:
    out = {}
    for name in sorted(os.listdir(moddir)):
        p = os.path.join(moddir, name)
        if name.startswith("modules.") and os.path.isfile(p):
            out[name] = os.path.getsize(p)
    return out


def run_depmod(bases: dict[str, str], release: str) -> dict:
    res = {"kmodlab": run_kmodlab(["depmod", "-b", bases["kmodlab"], release])}
    if kmod_tool("depmod"):
        res["kmod"] = run_kmod("depmod", ["-b", bases["kmod"], release])
    res["files"] = {}
    res["text"] = {}
    for who, base in bases.items():
        md = f"{base}/lib/modules/{release}"
        res["files"][who] = tree_files(md)
        res["text"][who] = {}
        for name in TEXT_FILES:
            try:
                res["text"][who][name] = Path(md, name).read_text(errors="surrogateescape")
            except OSError:
                res["text"][who][name] = None
    res["modules"] = sum(1 for line in (res["text"]["kmodlab"]["modules.dep"] or "")
                         .splitlines())
    return res


def run_pass(who: str, base: str) -> dict:
    """Every step with one implementation, its tree renamed to TREE for the pass."""
    left = unload_all()
    os.rename(base, TREE)
    steps = []
    t0 = time.monotonic()
    try:
        for label, tool, args in STEPS:
            r = run_kmodlab([tool, *args]) if who == "kmodlab" else run_kmod(tool, args)
            r["step"] = label
            r["state"] = state()
            steps.append(r)
        cli = None
        if who == "kmodlab":
            args = next(a for label, tool, a in STEPS if label == CLI_STEP)
            cli = run_kmodlab_subprocess(["modprobe", *args])
            cli["step"] = CLI_STEP
    finally:
        os.rename(TREE, base)
    return {"left_before": left, "steps": steps, "cli_subprocess": cli,
            "seconds": round(time.monotonic() - t0, 3), "end_left": unload_all()}


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path(os.environ.get("OUT", ".")) / "tools.json"
    for p in site.getsitepackages():            # run with -S: numpy for depmod
        if p not in sys.path:
            sys.path.append(p)
    t0 = time.monotonic()
    import kmodlab.tools                        # noqa: F401  warm the interpreter before forks
    import kmodlab.tools.depmod                 # noqa: F401
    import kmodlab.tools.lsmod                  # noqa: F401
    import kmodlab.tools.modprobe               # noqa: F401
    import kmodlab.tools.insmod                 # noqa: F401
    import kmodlab.lib.depmod                   # noqa: F401
    import kmodlab.lib.modinfo                  # noqa: F401
    import kmodlab.lib.module                   # noqa: F401
    import kmodlab.lib.strip                    # noqa: F401
    import kmodlab.live                         # noqa: F401
    import numpy                                # noqa: F401
    release = os.uname().release
    result = {"release": release, "import_seconds": round(time.monotonic() - t0, 3),
              "kmod": None, "tree": TREE, "conf": CONF, "steps": [s[0] for s in STEPS],
              "cli_step": CLI_STEP,
              "host_modprobe_d": {d: sorted(os.listdir(d)) for d in
                                  ("/etc/modprobe.d", "/run/modprobe.d",
                                   "/usr/local/lib/modprobe.d", "/lib/modprobe.d")
                                  if os.path.isdir(d)}}
    if kmod_tool("modprobe"):
        result["kmod"] = run_kmod("modprobe", ["--version"])["stdout"].strip()
    t = time.monotonic()
    bases = build_trees(Path(os.environ["MODDIR"]), release)
    result["copy_seconds"] = round(time.monotonic() - t, 3)
    t = time.monotonic()
    result["depmod"] = run_depmod(bases, release)
    result["depmod_seconds"] = round(time.monotonic() - t, 3)
    result["passes"] = {"kmodlab": run_pass("kmodlab", bases["kmodlab"])}
    if result["kmod"] is not None:
        result["passes"]["kmod"] = run_pass("kmod", bases["kmod"])
    result["seconds"] = round(time.monotonic() - t0, 3)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
