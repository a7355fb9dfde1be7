"""A kmodlab process killed with SIGKILL at any point of a command leaves a machine the next
command reads, in the state before that command or after it, nothing between
(kmodlab.machine.MachineStore: a generation is written whole under a temporary name, renamed,
and ``current`` is switched to it by one rename; the flock dies with its process; what a killed
commit left behind is removed by the next one).

Two ways of killing: the named points of a command (``KMODLAB_TEST_KILL_AT=<point>`` makes the
process SIGKILL itself there — kmodlab.machine.crash_point; every step of a commit, a
state.json written half), where the expected side is known exactly (before the ``current``
switch: the state before; from it on: the state after), and a grid of delays at which the
test kills the command from outside, where either side is right.  After each kill: the next
commands (/proc/modules, dmesg, a load) run without waiting on a stale lock, see one of the two
states, and the machine directory holds nothing but the lock and one generation once the next
command has committed.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EX = ROOT / "examples"

# every crash point of one state-changing command, in the order the command reaches them
BEFORE_SWITCH = ["locked", "syscall-done", "commit-start", "commit-region", "commit-state-half",
                 "commit-state", "commit-renamed", "commit-linked"]
AFTER_SWITCH = ["commit-switched", "commit-gc"]


def tool(machine: Path, *argv: str) -> tuple[int, str, str]:
    """One kmodlab command in this process (the CLI's entry point; its own SandboxKernel and
    MachineStore), with a deadline: a stale lock would hang it."""
    from kmodlab.tools import main
    old = os.environ.get("KMODLAB_MACHINE")
    os.environ["KMODLAB_MACHINE"] = str(machine)
    out, err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), io.StringIO()

    def stuck(*_):
        raise TimeoutError(f"kmodlab {' '.join(argv)} waited 30 s (a stale lock?)")
    prev = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(30)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["kmodlab", *argv])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, prev)
        if old is None:
            os.environ.pop("KMODLAB_MACHINE", None)
        else:
            os.environ["KMODLAB_MACHINE"] = old
    out.flush()
    return rc, out.buffer.getvalue().decode(), err.getvalue()


def state(machine: Path) -> tuple[str, tuple[str, ...], str]:
    """What the next commands see: /proc/modules, the log's texts, the taint."""
    rc, mods, err = tool(machine, "cat", "/proc/modules")
    assert rc == 0, err
    rc, log, err = tool(machine, "dmesg")
    assert rc == 0, err
    texts = tuple(line.split("] ", 1)[1] if "] " in line else line for line in log.splitlines())
    rc, taint, err = tool(machine, "cat", "/proc/sys/kernel/tainted")
    return mods, texts, taint


def run_cli(machine: Path, *argv: str, kill_at: str | None = None,
            kill_after: float | None = None) -> int:
    env = dict(os.environ, KMODLAB_MACHINE=str(machine))
    env.pop("KMODLAB_TEST_KILL_AT", None)
    if kill_at:
        env["KMODLAB_TEST_KILL_AT"] = kill_at
    p = subprocess.Popen([sys.executable, "-m", "kmodlab", *argv], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if kill_after is not None:
        try:
            return p.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
    return p.wait(timeout=60)


def check_clean_after_next_commit(machine: Path) -> None:
    """The next state-changing command works, and leaves only the lock and its generation."""
    rc, _out, err = tool(machine, "insmod", str(EX / "kmodlab_provider.ko"))
    assert rc == 0 or "File exists" in err, err
    names = sorted(p.name for p in machine.iterdir())
    assert names == sorted(["lock", "current", os.readlink(machine / "current")]), names


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """A machine with hello loaded (two generations committed), the state after
    ``insmod kmodlab_provider.ko`` on a copy of it, and that command's duration."""
    base = tmp_path_factory.mktemp("crash") / "base"
    assert tool(base, "insmod", str(EX / "hello.ko"), "who=before")[0] == 0
    assert tool(base, "write", "/sys/module/hello/parameters/who", "set")[0] == 0
    before = state(base)
    ref = base.parent / "ref"
    shutil.copytree(base, ref, symlinks=True)
    t = time.monotonic()
    assert run_cli(ref, "insmod", str(EX / "kmodlab_provider.ko")) == 0
    took = time.monotonic() - t
    after = state(ref)
    assert before != after and "kmodlab_provider" in after[0]
    return base, before, after, took


def fresh(baseline, name: str) -> Path:
    base = baseline[0]
    d = base.parent / name
    shutil.copytree(base, d, symlinks=True)
    return d


@pytest.mark.parametrize("point", BEFORE_SWITCH + AFTER_SWITCH)
def test_killed_at_a_named_point(baseline, point):
    """SIGKILL at ``point`` of ``insmod kmodlab_provider.ko``: before the switch the next
    command sees the state before, from the switch on the state after."""
    _base, before, after, _took = baseline
    m = fresh(baseline, f"point-{point}")
    assert run_cli(m, "insmod", str(EX / "kmodlab_provider.ko"), kill_at=point) == -signal.SIGKILL
    seen = state(m)
    _strip_uptime = lambda s: (s[0], s[1], s[2])                     # noqa: E731
    assert _strip_uptime(seen) == _strip_uptime(before if point in BEFORE_SWITCH else after)
    check_clean_after_next_commit(m)


def test_killed_during_reset(baseline):
    """``machine reset`` killed after ``current`` went: the next command boots a fresh
    kernel (the state after the reset), whatever the reset had not yet removed."""
    m = fresh(baseline, "reset")
    env = dict(os.environ, KMODLAB_MACHINE=str(m), KMODLAB_TEST_KILL_AT="reset-unlinked")
    p = subprocess.run([sys.executable, "-m", "kmodlab", "machine", "reset"], env=env,
                       capture_output=True)
    assert p.returncode == -signal.SIGKILL
    mods, log, _taint = state(m)
    assert mods == "" and not any("hello" in x for x in log)
    check_clean_after_next_commit(m)


def test_killed_on_a_delay_grid(baseline):
    """Killed from outside at 10 moments spread over the command's run: each time the state
    before or the state after, and the next commit cleans up."""
    _base, before, after, took = baseline
    seen = {"before": 0, "after": 0}
    killed = 0
    for i in range(10):
        m = fresh(baseline, f"grid-{i}")
        rc = run_cli(m, "insmod", str(EX / "kmodlab_provider.ko"),
                     kill_after=took * (0.35 + 0.07 * i))
        killed += rc == -signal.SIGKILL
        s = state(m)
        assert s in (before, after), f"kill after {took * (0.35 + 0.07 * i):.3f} s: torn state"
        seen["before" if s == before else "after"] += 1
        check_clean_after_next_commit(m)
    assert killed, f"no kill landed inside the command ({seen})"    # which side: the load's timing
