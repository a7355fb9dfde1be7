"""The sandbox kernel behind the syscall interface, and :class:`Sandbox` for Python users.

:class:`SandboxKernel` implements :class:`kmodlab.syscalls.Kernel`: each syscall locks the
machine's state directory, loads the machine (booting a fresh one the first time), runs the
kernel side (sys_init_module / sys_finit_module / sys_delete_module in kernel/module/main.py)
and commits a new generation atomically.  Reads of /proc and /sys render the machine's state.

:class:`Sandbox` is the same kernel as a Python object, e.g. a pytest fixture::

    sb = Sandbox()                       # a fresh, private machine in memory
    sb.insmod("hello.ko", who="world")   # raises KernelError(errno, reason) on failure
    assert "Hello, world" in "\\n".join(sb.dmesg())
    sb.rmmod("hello")
"""
from __future__ import annotations

import errno as E
import os
import stat
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .errors import EINVAL, EOPNOTSUPP, EPERM, KernelError, UsageError
from .kernel import registrations
from .kernel.module import procfs, sysfs
from .kernel.module.internal import (LoadError, MODULE_INIT_COMPRESSED_FILE, Module,
                                     module_flags_taint)
from .machine import LOCKDOWN_LEVELS, Machine, MachineStore, crash_point
from .syscalls import SyscallResult


@dataclass
class Cred:
    """The caller's credentials as the permission check sees them."""
    cap_sys_module: bool = True


def _load_profile(name: str | None):
    from .profile import load_profile
    return load_profile(name)


class SandboxKernel:
    name = "sandbox"

    def __init__(self, store: MachineStore | None = None, machine: Machine | None = None,
                 profile: str | None = None):
        self.store = store
        self.machine = machine            # in-memory machine (no store), e.g. for tests
        self.profile_name = profile or os.environ.get("KMODLAB_PROFILE") or None
        self.cred = Cred()
        self.trace = False
        self.run_init = True
        self.placement: tuple[int, int] | None = None   # (core, init) bases for the next load
        self.comm = "insmod"              # current->comm of the calling tool (kmod's insmod/rmmod/modprobe)
        self.cmdline: str | None = None   # the command line a fresh machine boots with (None: $KMODLAB_CMDLINE)

    @classmethod
    def open_default(cls) -> "SandboxKernel":
        return cls(store=MachineStore())

    # -- the machine's lifetime ------------------------------------------------------------------
    def _boot(self) -> Machine:
        prof = _load_profile(self.profile_name)
        cmdline = self.cmdline if self.cmdline is not None else os.environ.get("KMODLAB_CMDLINE", "")
        m = Machine.boot(prof.name, profile=prof, cmdline=cmdline)
        return m

    def _attach_profile(self, m: Machine) -> Machine:
        if m.profile is None:
            if self.profile_name and self.profile_name != m.profile_name and \
                    Path(self.profile_name).name != m.profile_name:
                prof = _load_profile(self.profile_name)
                if prof.name != m.profile_name:
                    raise UsageError(f"the sandbox machine runs kernel {m.profile_name}, not "
                                     f"{prof.name}: 'kmodlab machine reset' first, or use "
                                     "--machine DIR for a second machine")
            m.profile = _load_profile(m.profile_name)
        return m

    @contextmanager
    def session(self, write: bool):
        """The machine for one syscall; committed atomically when ``write`` and no exception."""
        if self.store is None:
            if self.machine is None:
                self.machine = self._boot()
            yield self._attach_profile(self.machine)
            return
        self.store.lock()
        try:
            try:
                m = self.store.load() if self.store.exists() else None
            except (OSError, ValueError, KeyError) as e:
                raise UsageError(f"cannot read the sandbox machine in {self.store.path}: {e}; "
                                 "'kmodlab machine reset' starts a new one")
            fresh = m is None
            m = self._boot() if fresh else self._attach_profile(m)
            yield m
            if write or fresh:
                self.store.commit(m)
        finally:
            self.store.unlock()

    # -- syscalls ------------------------------------------------------------------------------
    def _syscall(self, fn) -> SyscallResult:
        with self.session(write=True) as m:
            start = len(m.log)
            caller, m.comm = m.comm, self.comm
            try:
                res = fn(m)
            except LoadError as e:
                for line in e.log:
                    m.printk(e.level, line)
                res = _Result(ret=e.err, step=e.step, reason=e.reason)
            finally:
                m.comm = caller
            log = [r.text for r in m.log[start:]]
            crash_point("syscall-done")
        out = SyscallResult(ret=0 if res.ret >= 0 else -1, errno=-res.ret if res.ret < 0 else 0,
                            log=log, reason=res.reason)
        out.details = {"name": res.name, "step": res.step, "steps": res.steps,
                       "calls": res.calls, "trace": getattr(res, "trace", []),
                       "coresize": res.coresize, "initsize": res.initsize,
                       "left_registered": getattr(res, "left_registered", [])}
        return out

    def _load(self, m: Machine, image: bytes, args: str, flags: int):
        from .kernel.module import main
        main.may_init_module(m, self.cred)
        main.copy_module_from_user(image)
        return main.load_module(m, image, args, flags, run_init=self.run_init, trace=self.trace,
                                placement=self.placement)

    def init_module(self, image: bytes, args: str) -> SyscallResult:
        return self._syscall(lambda m: self._load(m, image, args, 0))

    def finit_module(self, path: str, args: str, flags: int = 0) -> SyscallResult:
        def call(m: Machine):
            from .kernel.module import main
            main.may_init_module(m, self.cred)
            main.check_finit_flags(flags)
            image = kernel_read_file(path)
            if flags & MODULE_INIT_COMPRESSED_FILE:    # 6.1 (Debian 12): -EOPNOTSUPP
                from .kernel.module.decompress import module_decompress
                image = module_decompress(m.rules.decompress, image)
            return main.load_module(m, image, args, flags, run_init=self.run_init, trace=self.trace,
                                    placement=self.placement)
        return self._syscall(call)

    def delete_module(self, name: str, flags: int) -> SyscallResult:
        def call(m: Machine):
            from .kernel.module import main
            if not self.cred.cap_sys_module or m.modules_disabled:
                raise LoadError(EPERM, "delete_module",
                                reason="removing modules needs CAP_SYS_MODULE"
                                if not self.cred.cap_sys_module else "modules_disabled is set")
            return main.delete_module(m, name, flags, self.trace)
        return self._syscall(call)

    # -- /proc and /sys ------------------------------------------------------------------------
    def read(self, path: str) -> bytes:
        with self.session(write=False) as m:
            return read_kernel_file(m, path)

    def listdir(self, path: str) -> list[str]:
        with self.session(write=False) as m:
            return list_kernel_dir(m, path)

    def write(self, path: str, data: bytes) -> int:
        with self.session(write=True) as m:
            return write_kernel_file(m, path, data)

    def exists(self, path: str) -> bool:
        try:
            self.read(path)
            return True
        except IsADirectoryError:
            return True
        except OSError as e:
            return e.errno in (E.EISDIR, E.EACCES, E.EPERM)

    def dmesg(self) -> list[str]:
        with self.session(write=False) as m:
            return [r.render() for r in m.log]

    def close(self) -> None:
        pass


@dataclass
class _Result:
    ret: int = 0
    name: str = ""
    step: str = ""
    reason: str = ""
    steps: list = field(default_factory=list)
    calls: list = field(default_factory=list)
    trace: list = field(default_factory=list)
    coresize: int = 0
    initsize: int = 0


def kernel_read_file(path: str) -> bytes:
    """kernel_read_file_from_fd: a regular, non-empty file of at most INT_MAX bytes."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise LoadError(E.EBADF, "finit_module", reason=f"cannot open {path}: {e.strerror}")
    if not stat.S_ISREG(st.st_mode):
        raise LoadError(EINVAL, "kernel_read_file", reason=f"{path} is not a regular file")
    if st.st_size <= 0:
        raise LoadError(EINVAL, "kernel_read_file", reason=f"{path} is empty")
    if st.st_size > 0x7FFFFFFF:
        raise LoadError(E.EFBIG, "kernel_read_file", reason=f"{path} is larger than INT_MAX")
    with open(path, "rb") as f:
        return f.read()


def _param_reader(m: Machine, mod: Module):
    def read(p):
        from .kernel import params
        return params.param_sysfs_read(m.param_context(mod), p)
    return read


def read_kernel_file(m: Machine, path: str) -> bytes:
    p = os.path.normpath(path)
    if p == "/proc/modules":
        return procfs.proc_modules(m.modules).encode()
    if p == "/proc/kallsyms":
        return procfs.proc_kallsyms(m.mm, m.modules).encode()
    if p == "/proc/sys/kernel/tainted":
        return f"{m.taint}\n".encode()
    if p == "/proc/sys/kernel/modules_disabled":
        return f"{m.modules_disabled}\n".encode()
    if p == "/proc/version":
        return f"Linux version {m.profile.release} {m.profile.version}\n".encode()
    if p == "/sys/module/module/parameters/sig_enforce":
        return b"Y\n" if m.sig_enforce else b"N\n"
    if p == "/proc/cmdline":
        return f"{m.cmdline}\n".encode()
    if p == "/sys/kernel/security/lockdown" and m.profile_has("SECURITY_LOCKDOWN_LSM"):
        return lockdown_read(m)
    if p == "/sys/module/compression" and m.rules.decompress:
        return f"{m.rules.decompress}\n".encode()
    if p in registrations.FILES or p.startswith("/sys/bus"):
        text = registrations.read(m, p)
        if text is not None:
            return text
    parts = p.split("/")
    if len(parts) >= 4 and parts[1:3] == ["sys", "module"]:
        mod = m.find_module(parts[3])
        if mod is not None:
            return sysfs.read(mod, "/".join(parts[4:]), _param_reader(m, mod))
        if len(parts) == 4 or parts[3] in sysfs.builtin_sysfs_dirs(m.profile):
            raise OSError(E.EISDIR if parts[3] in sysfs.builtin_sysfs_dirs(m.profile) else E.ENOENT, p)
    if p in ("/proc", "/sys", "/sys/module"):
        raise OSError(E.EISDIR, p)
    raise OSError(E.ENOENT, f"{p}: the sandbox kernel has no such file")


def write_kernel_file(m: Machine, path: str, data: bytes) -> int:
    """The writable files: modules_disabled (only 1, once), sig_enforce (bool_enable_only:
    N → Y), and module parameters with a write bit (through their ops' set)."""
    p = os.path.normpath(path)
    text = data.decode("latin-1")
    if p == "/proc/sys/kernel/modules_disabled":
        # proc_dointvec_minmax with min = max = 1: only 1 is accepted; 0 → EINVAL
        n, v = proc_dointvec_minmax_write(data, 1, 1)
        if v is None:
            raise OSError(EINVAL, f"{p}: only 1 may be written (modules stay disabled until reboot)")
        m.modules_disabled = v
        return n
    if p == "/sys/kernel/security/lockdown" and m.profile_has("SECURITY_LOCKDOWN_LSM"):
        return lockdown_write(m, data)
    if p == "/sys/module/module/parameters/sig_enforce":
        from .kernel.params import kstrtobool
        err, val = kstrtobool(text)
        if err:
            raise OSError(-err, p)
        if not val and m.sig_enforce:
            raise OSError(E.EROFS, p)
        m.sig_enforce = m.sig_enforce or bool(val)
        return len(data)
    parts = p.split("/")
    if len(parts) == 6 and parts[1:3] == ["sys", "module"] and parts[4] == "parameters":
        mod = m.find_module(parts[3])
        if mod is not None:
            from .kernel import params
            for prm in mod.params:
                if prm.name == parts[5]:
                    return params.param_sysfs_write(m.param_context(mod), prm, data)
    try:
        read_kernel_file(m, path)
    except OSError:
        raise
    raise OSError(E.EACCES, f"{p}: not writable")


def proc_dointvec_minmax_write(data: bytes, lo: int, hi: int) -> tuple[int, int | None]:
    """kernel/sysctl.c __do_proc_dointvec for one int, written at position 0: leading spaces,
    an optional '-', a number in C's base 0 (0x… hex, 0… octal), then whitespace or the end;
    at most 21 characters; in [lo, hi] (do_proc_dointvec_minmax_conv).  Returns (bytes
    consumed, value): what follows the number and its spaces is left unconsumed (a short
    write), as the kernel does.  Anything else: value None (-EINVAL)."""
    size = len(data)
    i = 0
    while i < size and data[i] in b" \t\n\v\f\r":
        i += 1
    if i == size:
        return 0, None
    tmp = data[i:i + 21]
    neg = tmp[:1] == b"-" and size - i > 1
    q = 1 if neg else 0
    if q >= len(tmp) or not tmp[q:q + 1].isdigit():
        return 0, None
    base, digits = 10, b"0123456789"
    if tmp[q:q + 1] == b"0":
        if tmp[q + 1:q + 2] in (b"x", b"X") and tmp[q + 2:q + 3] and \
                tmp[q + 2:q + 3] in b"0123456789abcdefABCDEF":
            base, digits, q = 16, b"0123456789abcdefABCDEF", q + 2
        else:
            base, digits = 8, b"01234567"
    val = 0
    while q < len(tmp) and tmp[q:q + 1] in digits:
        val = val * base + int(tmp[q:q + 1], 16)
        q += 1
    if q == 21 or val >= 1 << 64:
        return 0, None
    if q < size - i and tmp[q:q + 1] not in (b" ", b"\t", b"\n"):
        return 0, None
    if val > (0x80000000 if neg else 0x7FFFFFFF):
        return 0, None
    v = -val if neg else val
    if not lo <= v <= hi:
        return 0, None
    end = i + q
    while end < size and data[end] in b" \t\n\v\f\r":
        end += 1
    return end, v


def lockdown_read(m: Machine) -> bytes:
    """security/lockdown lockdown_read: the levels, the current one in brackets."""
    return (" ".join(f"[{x}]" if i == m.lockdown else x
                     for i, x in enumerate(LOCKDOWN_LEVELS)) + "\n").encode()


def lockdown_write(m: Machine, data: bytes) -> int:
    """lockdown_write: one level's name (a final newline dropped); only ever raised:
    the same or a lower level is -EPERM, an unknown word -EINVAL."""
    text = data.split(b"\0", 1)[0].decode("latin-1")
    text = text[:-1] if text.endswith("\n") else text
    if text not in LOCKDOWN_LEVELS:
        raise OSError(EINVAL, "/sys/kernel/security/lockdown")
    if m.lock_kernel_down("securityfs", LOCKDOWN_LEVELS.index(text)):
        raise OSError(EPERM, "/sys/kernel/security/lockdown")
    return len(data)


def list_kernel_dir(m: Machine, path: str) -> list[str]:
    p = os.path.normpath(path)
    if p == "/sys/module":
        return [mod.name for mod in m.modules if mod.state != 3] + sorted(sysfs.builtin_sysfs_dirs(m.profile)) \
            + (["compression"] if m.rules.decompress else [])
    if p.startswith("/sys/bus"):
        names = registrations.listdir(m, p)
        if names is not None:
            return names
    parts = p.split("/")
    if len(parts) >= 4 and parts[1:3] == ["sys", "module"]:
        mod = m.find_module(parts[3])
        if mod is not None:
            return sysfs.listdir(mod, "/".join(parts[4:]))
    raise OSError(E.ENOENT, p)


# ---------------------------------------------------------------------------------------------

@dataclass
class ModuleInfo:
    """A loaded module as a Python user sees it."""
    name: str
    size: int
    refcount: int
    used_by: list[str]
    state: str
    address: int
    taints: str
    params: dict[str, str]


class Sandbox:
    """The sandbox kernel as a Python object.  ``Sandbox()`` is a fresh private machine in
    memory; ``Sandbox(machine_dir=...)`` uses (and persists) a machine directory."""

    def __init__(self, machine_dir: str | os.PathLike | None = None, profile: str | None = None,
                 cmdline: str | None = None):
        store = MachineStore(Path(machine_dir)) if machine_dir else None
        self.kernel = SandboxKernel(store=store, profile=profile)
        self.kernel.cmdline = cmdline     # the kernel command line, when this machine boots
        self.last: SyscallResult | None = None

    @staticmethod
    def _args(params) -> str:
        from .lib.args import options_from_array
        if params is None:
            return ""
        if isinstance(params, str):
            return params
        if isinstance(params, dict):
            params = [f"{k}={_fmt(v)}" if v is not None else k for k, v in params.items()]
        return options_from_array(list(params))

    def insmod(self, path: str | os.PathLike, params=None, *, force: bool = False, **kw) -> SyscallResult:
        """Load a module file (compressed ones are decompressed in user space, as kmod does).
        Parameters as a dict, a list of 'name=value' or one string; keyword arguments too."""
        from .kernel.module.internal import MODULE_INIT_IGNORE_MODVERSIONS, MODULE_INIT_IGNORE_VERMAGIC
        from .lib.module import insert_module
        if kw:
            params = {**(params or {}), **kw} if not isinstance(params, (str, list)) else params
        flags = (MODULE_INIT_IGNORE_MODVERSIONS | MODULE_INIT_IGNORE_VERMAGIC) if force else 0
        res = insert_module(self.kernel, str(path), self._args(params), flags)
        self.last = res
        if not res.ok:
            raise KernelError(res.errno, res.details.get("step", ""), res.reason, res.log)
        return res

    def rmmod(self, name: str, *, force: bool = False) -> SyscallResult:
        from .kernel.module.internal import O_NONBLOCK, O_TRUNC
        res = self.kernel.delete_module(name, O_NONBLOCK | (O_TRUNC if force else 0))
        self.last = res
        if not res.ok:
            raise KernelError(res.errno, "delete_module", res.reason, res.log)
        return res

    def dmesg(self) -> list[str]:
        return self.kernel.dmesg()

    def read(self, path: str) -> str:
        return self.kernel.read(path).decode("latin-1")

    @property
    def tainted(self) -> int:
        return int(self.read("/proc/sys/kernel/tainted"))

    def modules(self) -> list[ModuleInfo]:
        with self.kernel.session(write=False) as m:
            out = []
            for mod in m.modules:
                if mod.state == 3:
                    continue
                reader = _param_reader(m, mod)
                params = {}
                for p in mod.params:
                    try:
                        params[p.name] = reader(p).decode("latin-1").rstrip("\n")
                    except Exception:
                        continue
                out.append(ModuleInfo(mod.name, mod.core.size + mod.init_layout.size,
                                      mod.module_refcount(), list(mod.source_list),
                                      {0: "Live", 1: "Loading", 2: "Unloading"}[mod.state],
                                      mod.core.base, module_flags_taint(mod.taints), params))
            return out


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "Y" if v else "N"
    if isinstance(v, (list, tuple)):
        return ",".join(_fmt(x) for x in v)
    return str(v)
