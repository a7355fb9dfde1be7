"""pytest plugin for driver CI: a private sandbox kernel per test (``kmod_sandbox``).

Registered through the ``pytest11`` entry point, so installing kmodlab is enough::

    def test_hello_loads(kmod_sandbox):
        kmod_sandbox.insmod("hello.ko", who="ci", count=2)      # fails the test with the reason
        kmod_sandbox.assert_in_dmesg("hello, ci!", "greeting 2 of 2")
        assert kmod_sandbox.param("hello", "who") == "ci"

    def test_probe_fails_without_hardware(kmod_sandbox):
        kmod_sandbox.assert_load_fails("mydrv.ko", errno="ENODEV")

Each test gets a freshly booted machine in its own ``tmp_path`` (kept there after the run:
``kmodlab --machine DIR dmesg`` replays what the test saw).  The kernel is chosen by, from the
most specific: ``@pytest.mark.kmod_kernel("PROFILE")`` (``missing="skip"`` skips the test where
that profile is not imported), ``--kmod-kernel=PROFILE``, the ini
option ``kmod_kernel``, ``$KMODLAB_PROFILE``, else the embedded default (Debian's 6.1).

A failing insmod/rmmod or assertion says what the kernel said: the errno's name and text, the
step of load_module that refused, the kernel's log lines of that call, and the tail of dmesg;
a failed test that used the fixture also gets a "kmod sandbox" report section with the whole log.

This module is imported by every pytest session once kmodlab is installed (the project's own
too): it imports nothing of kmodlab's kernel until a test asks for the fixture.
``-p no:kmodlab`` switches it off.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DMESG_TAIL = 15
_SANDBOX = pytest.StashKey()              # the test item's KmodSandbox, for its report


def pytest_addoption(parser) -> None:
    group = parser.getgroup("kmodlab", "kmodlab sandbox kernel (kmod_sandbox fixture)")
    group.addoption("--kmod-kernel", dest="kmod_kernel", metavar="PROFILE", default=None,
                    help="kernel profile the kmod_sandbox fixture boots (a name of 'kmodlab "
                         "kernel list' or a .kprofile path; default: ini kmod_kernel, "
                         "$KMODLAB_PROFILE, the embedded Debian 6.1)")
    parser.addini("kmod_kernel", "kernel profile the kmod_sandbox fixture boots", default="")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "kmod_kernel(profile, missing='fail'): the kernel profile "
                                       "kmod_sandbox boots for this test ('skip' where it is "
                                       "not available)")
    name = config.getoption("kmod_kernel", None)
    if name:                                    # a typo should stop the session, not every test
        from .errors import KmodlabError
        from .profile import load_profile
        try:
            load_profile(name)
        except KmodlabError as e:
            raise pytest.UsageError(f"--kmod-kernel={name}: {e}") from None


def _profile_name(request) -> tuple[str | None, bool]:
    """The profile for this test, and whether a missing one skips it (the marker's
    ``missing="skip"``) rather than failing it."""
    marker = request.node.get_closest_marker("kmod_kernel")
    if marker is not None and marker.args:
        return str(marker.args[0]), marker.kwargs.get("missing", "fail") == "skip"
    return (request.config.getoption("kmod_kernel", None) or request.config.getini("kmod_kernel")
            or os.environ.get("KMODLAB_PROFILE") or None), False


@pytest.fixture
def kmod_profile(request):
    """The kernel profile kmod_sandbox boots for this test (kmodlab.profile.Profile)."""
    from .errors import KmodlabError
    from .profile import load_profile
    name, skip = _profile_name(request)
    try:
        return load_profile(name)
    except KmodlabError as e:
        if skip:
            pytest.skip(f"kernel profile {name} is not available: {e}")
        pytest.fail(f"kmod_sandbox: kernel profile {name!r}: {e}", pytrace=False)


@pytest.fixture
def kmod_sandbox(request, tmp_path, kmod_profile):
    """A fresh private sandbox machine (its state in ``tmp_path``), released at teardown."""
    sb = KmodSandbox(tmp_path / "kmod-machine", kmod_profile.name)
    request.node.stash[_SANDBOX] = sb
    yield sb
    sb.close()



@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    sb = item.stash.get(_SANDBOX, None)
    if sb is not None and rep.failed and call.when in ("call", "setup"):
        try:
            rep.sections.append(("kmod sandbox", sb.describe()))
        except Exception as e:                  # the report must never break on our account
            rep.sections.append(("kmod sandbox", f"(could not read the machine: {e})"))
    return rep


# ---------------------------------------------------------------------------------------------

@dataclass
class KmodCall:
    """One insmod or rmmod as the kernel answered it."""
    command: str
    ok: bool
    errno: int = 0
    step: str = ""                  # the kernel function that refused (load_module's step)
    reason: str = ""                # the kernel's own words for it
    log: list[str] = field(default_factory=list)   # the kernel log lines of this call
    result: object = field(default=None, repr=False)   # the SyscallResult (details: steps…)
    kernel: bool = True             # False: user space failed (the file), the kernel was not asked

    @property
    def errno_name(self) -> str:
        from .errors import errno_name
        return errno_name(self.errno) if self.errno else ""

    @property
    def strerror(self) -> str:
        """The errno's text, and kmod's insmod wording where it says otherwise."""
        from .errors import strerror
        if not self.errno:
            return ""
        text = strerror(self.errno)
        if self.command.startswith("insmod") and self.kernel:
            from .tools.log import mod_strerror
            if mod_strerror(self.errno) != text:
                text += f"; insmod says: {mod_strerror(self.errno)}"
        return text

    def summary(self) -> str:
        if self.ok:
            return f"{self.command}: ok"
        if not self.kernel:
            return f"{self.command}: could not read the module: {self.reason}"
        where = f" in {self.step}" if self.step else ""
        return f"{self.command}: failed with {self.errno_name} ({self.strerror}){where}"


class KmodFailure(AssertionError):
    """A kmod_sandbox call or assertion did not go as the test expected; the message holds
    the kernel's reason and the tail of dmesg."""


class ModuleLoadError(KmodFailure):
    """insmod (or rmmod) failed where the test expected it to work.  ``call`` is the KmodCall
    (errno, step, reason, log); ``errno`` is also an attribute, as on KernelError."""

    def __init__(self, message: str, call: KmodCall):
        super().__init__(message)
        self.call = call
        self.errno = call.errno


def _expect_errno(spec) -> int:
    import errno as E
    if isinstance(spec, int):
        return abs(spec)
    name = str(spec).upper()
    if not hasattr(E, name):
        raise ValueError(f"unknown errno name {spec!r}")
    return getattr(E, name)


class KmodSandbox:
    """A private sandbox kernel for one test: load and remove modules, read the kernel's log,
    /proc and /sys, and assert on them with messages that give the kernel's reason."""

    def __init__(self, machine_dir: str | os.PathLike, profile: str | None = None):
        from .sandbox import Sandbox
        self.machine_dir = Path(machine_dir)
        self.profile = profile
        self._sb: Sandbox | None = Sandbox(machine_dir=self.machine_dir, profile=profile)
        self.calls: list[KmodCall] = []

    # -- the machine -----------------------------------------------------------------------------
    @property
    def sandbox(self):
        """The underlying :class:`kmodlab.Sandbox`."""
        if self._sb is None:
            raise RuntimeError("this kmod_sandbox was released at the end of its test")
        return self._sb

    def close(self) -> None:
        if self._sb is not None:
            self._sb.kernel.close()
            self._sb = None

    @property
    def last(self) -> KmodCall | None:
        """The last insmod/rmmod of this test."""
        return self.calls[-1] if self.calls else None

    # -- syscalls --------------------------------------------------------------------------------
    @staticmethod
    def _args(params, kw) -> str:
        from .sandbox import Sandbox
        parts = [Sandbox._args(params)] if params is not None else []
        if kw:
            parts.append(Sandbox._args(kw))
        return " ".join(p for p in parts if p)

    def try_insmod(self, path: str | os.PathLike, params=None, /, *, force: bool = False,
                   **kw) -> KmodCall:
        """insmod FILE with parameters (a 'a=1 b=x' string, a dict, a list, and/or keyword
        arguments); never raises for a kernel refusal: returns the KmodCall."""
        from .errors import KernelError
        from .lib.file import ModuleFileError
        args = self._args(params, kw)
        command = f"insmod {path}" + (f" {args}" if args else "")
        try:
            res = self.sandbox.insmod(path, args, force=force)
            call = KmodCall(command, True, log=list(res.log), result=res)
        except KernelError as e:
            res = self.sandbox.last
            call = KmodCall(command, False, e.errno, e.step, e.reason, list(e.log), res)
        except ModuleFileError as e:            # the file itself: user space never called in
            call = KmodCall(command, False, e.errno, "", str(e), kernel=False)
        self.calls.append(call)
        return call

    def insmod(self, path: str | os.PathLike, params=None, /, *, force: bool = False,
               **kw) -> KmodCall:
        """insmod FILE [params]; a refusal fails the test with the kernel's reason
        (:class:`ModuleLoadError`, an AssertionError carrying ``errno`` and ``call``)."""
        __tracebackhide__ = True
        call = self.try_insmod(path, params, force=force, **kw)
        if not call.ok:
            raise ModuleLoadError(self._report(call.summary(), call), call)
        return call

    def try_rmmod(self, name: str, *, force: bool = False) -> KmodCall:
        from .errors import KernelError
        command = f"rmmod {'-f ' if force else ''}{name}"
        try:
            res = self.sandbox.rmmod(name, force=force)
            call = KmodCall(command, True, log=list(res.log), result=res)
        except KernelError as e:
            call = KmodCall(command, False, e.errno, e.step, e.reason, list(e.log),
                            self.sandbox.last)
        self.calls.append(call)
        return call

    def rmmod(self, name: str, *, force: bool = False) -> KmodCall:
        """rmmod NAME (runs the module's exit); a refusal fails the test with the reason."""
        __tracebackhide__ = True
        call = self.try_rmmod(name, force=force)
        if not call.ok:
            raise ModuleLoadError(self._report(call.summary(), call), call)
        return call

    # -- reading the kernel ---------------------------------------------------------------------
    def dmesg(self) -> list[str]:
        """The kernel log as dmesg prints it ('[    0.012345] hello: hello, world!')."""
        return self.sandbox.dmesg()

    def read(self, path: str) -> str:
        """A /proc or /sys file of the kernel (raises OSError with the errno, like open(2))."""
        return self.sandbox.read(path)

    def listdir(self, path: str) -> list[str]:
        return self.sandbox.kernel.listdir(path)

    def proc_modules(self) -> str:
        return self.read("/proc/modules")

    def sysfs(self, module: str, *path: str) -> str:
        """/sys/module/<module>/<path…>, without the trailing newline."""
        return self.read("/".join(("/sys/module", module) + path)).rstrip("\n")

    def param(self, module: str, name: str) -> str:
        """/sys/module/<module>/parameters/<name>, as the kernel prints it (no newline)."""
        return self.sysfs(module, "parameters", name)

    def modules(self):
        """The loaded modules (kmodlab.sandbox.ModuleInfo: name, size, refcount, used_by,
        state, address, taints, params), newest first as /proc/modules lists them."""
        return self.sandbox.modules()

    def module(self, name: str):
        return next((m for m in self.modules() if m.name == name), None)

    def is_loaded(self, name: str) -> bool:
        return self.module(name) is not None

    @property
    def tainted(self) -> int:
        """/proc/sys/kernel/tainted."""
        return self.sandbox.tainted

    @property
    def taint_flags(self) -> str:
        """The kernel's taint letters that are set, in bit order ('POE')."""
        from .kernel.module.internal import TAINT_FLAGS
        t = self.tainted
        return "".join(f[0] for bit, f in enumerate(TAINT_FLAGS) if t & (1 << bit))

    # -- assertions -----------------------------------------------------------------------------
    def assert_load_fails(self, path: str | os.PathLike, params=None, /, *, errno=None,
                          match: str | None = None, step: str | None = None,
                          **kw) -> KmodCall:
        """insmod must fail — with ``errno`` (a number or a name: "ENODEV") when given, a
        reason or kernel log line matching the regex ``match``, in load_module step ``step``."""
        __tracebackhide__ = True
        call = self.try_insmod(path, params, **kw)
        want = _expect_errno(errno) if errno is not None else None
        problems = []
        if call.ok:
            problems.append("it loaded")
        else:
            if want is not None and call.errno != want:
                from .errors import errno_name
                problems.append(f"errno is {call.errno_name}, expected {errno_name(want)}")
            if step is not None and call.step != step:
                problems.append(f"it failed in {call.step or '?'}, expected {step}")
            if match is not None and not any(re.search(match, t) for t in [call.reason, *call.log]):
                problems.append(f"no reason or kernel line matches {match!r}")
        if problems:
            raise KmodFailure(self._report(f"{call.summary()}: expected a failure"
                                           + (f" with {errno}" if errno is not None else "")
                                           + f", but {'; '.join(problems)}", call))
        return call

    def assert_in_dmesg(self, *wanted: str | re.Pattern) -> None:
        """Every ``wanted`` text (substring) or compiled regex appears in the kernel log."""
        __tracebackhide__ = True
        log = self.dmesg()
        missing = [w for w in wanted if not any(
            (w.search(l) if isinstance(w, re.Pattern) else w in l) for l in log)]
        if missing:
            shown = ", ".join(repr(w.pattern if isinstance(w, re.Pattern) else w) for w in missing)
            raise KmodFailure(self._report(f"dmesg has no line with {shown}", self.last))

    def assert_not_in_dmesg(self, *unwanted: str | re.Pattern) -> None:
        __tracebackhide__ = True
        found = [l for l in self.dmesg() for w in unwanted
                 if (w.search(l) if isinstance(w, re.Pattern) else w in l)]
        if found:
            raise KmodFailure(self._report(f"dmesg has unwanted lines: {found}", self.last))

    def assert_loaded(self, name: str, state: str = "Live") -> None:
        __tracebackhide__ = True
        mod = self.module(name)
        if mod is None or mod.state != state:
            what = "not in /proc/modules" if mod is None else f"{mod.state}, not {state}"
            raise KmodFailure(self._report(f"module {name} is {what}", self.last))

    def assert_not_loaded(self, name: str) -> None:
        __tracebackhide__ = True
        if self.is_loaded(name):
            raise KmodFailure(self._report(f"module {name} is loaded", self.last))

    def assert_param(self, module: str, name: str, value: str) -> None:
        __tracebackhide__ = True
        try:
            got = self.param(module, name)
        except OSError as e:
            raise KmodFailure(self._report(f"/sys/module/{module}/parameters/{name}: "
                                           f"{os.strerror(e.errno or 0)}", self.last)) from None
        if got != value:
            raise KmodFailure(self._report(f"/sys/module/{module}/parameters/{name} is {got!r}, "
                                           f"expected {value!r}", self.last))

    def assert_tainted(self, letters: str) -> None:
        """Every taint letter in ``letters`` ('P', 'OE') is set in the kernel's taint."""
        __tracebackhide__ = True
        have = self.taint_flags
        missing = [c for c in letters if c not in have]
        if missing:
            raise KmodFailure(self._report(f"kernel taint lacks {''.join(missing)} (tainted "
                                           f"{self.tainted}: '{have}')", self.last))

    # -- what a failure says ------------------------------------------------------------------------
    def _report(self, headline: str, call: KmodCall | None) -> str:
        out = [headline]
        if call is not None and not call.ok and call.reason and call.kernel:
            out.append(f"  kernel's reason: {call.reason}")
        if call is not None and call.log:
            out.append(f"  kernel log of '{call.command}':")
            out += [f"    {l}" for l in call.log]
        try:
            log = self.dmesg()
        except Exception as e:                  # a broken machine must not hide the headline
            out.append(f"  (dmesg unreadable: {e})")
            return "\n".join(out)
        out.append(f"  dmesg (last {min(DMESG_TAIL, len(log))} of {len(log)} lines):")
        out += [f"    {l}" for l in log[-DMESG_TAIL:]]
        return "\n".join(out)

    def describe(self) -> str:
        """The machine for a failure report: where it is, its modules, calls and whole log."""
        out = [f"machine: {self.machine_dir} (kernel {self.profile}; "
               f"'kmodlab --machine {self.machine_dir} dmesg' replays it)"]
        out += [f"call: {c.summary()}" for c in self.calls]
        if self._sb is None:
            return "\n".join(out)
        out.append("/proc/modules:")
        out += [f"  {l}" for l in self.proc_modules().splitlines()] or ["  (empty)"]
        out.append("dmesg:")
        out += [f"  {l}" for l in self.dmesg()]
        return "\n".join(out)
