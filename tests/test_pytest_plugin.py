"""The pytest plugin (kmodlab.pytest_plugin) as a driver's CI meets it: inner pytest sessions
run by pytester, with the plugin loaded the way pip installs it (the ``pytest11`` entry point).
"""
from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

EX = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    """No profile from the outside; in-process inner sessions load this plugin by its entry
    point's name (-p kmodlab) and no other installed plugin (hypothesis alone would re-import
    itself for 1.5 s in each); test_loaded_lazily_in_a_fresh_interpreter autoloads as CI does."""
    monkeypatch.delenv("KMODLAB_PROFILE", raising=False)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


def run(pytester, *args):
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "kmodlab", *args)


@pytest.fixture(scope="module", autouse=True)
def _imported_here():
    """pytester's in-process sessions drop the modules they imported when they end, and numpy
    cannot be imported twice in one process: import the kernel, emulator and numpy out here."""
    from kmodlab import Sandbox
    from kmodlab.errors import KernelError
    sb = Sandbox()
    sb.insmod(EX / "hello.ko")
    with pytest.raises(KernelError):
        sb.insmod(EX / "failing_init.ko")


def test_registered_as_a_pytest11_entry_point():
    """pip install registers the plugin: pytest loads it in every session without a conftest."""
    eps = {e.name: e.value for e in entry_points(group="pytest11")}
    assert eps.get("kmodlab") == "kmodlab.pytest_plugin"


def test_each_test_gets_a_fresh_machine_in_tmp_path(pytester):
    """Loads, dmesg, sysfs and /proc/modules through the fixture; the second test's machine
    does not have the first one's module; the state lives in the test's own tmp_path."""
    pytester.makepyfile(f"""
        HELLO = {str(EX / "hello.ko")!r}
        def test_first(kmod_sandbox, tmp_path):
            call = kmod_sandbox.insmod(HELLO, "who=inner", count=2)
            assert call.ok and call.command.endswith("who=inner count=2")
            kmod_sandbox.assert_in_dmesg("hello, inner!", "greeting 2 of 2")
            assert kmod_sandbox.param("hello", "who") == "inner"
            assert kmod_sandbox.proc_modules().startswith("hello 16384 0 - Live")
            assert kmod_sandbox.machine_dir.parent == tmp_path
            assert (tmp_path / "kmod-machine" / "current").exists()
        def test_second(kmod_sandbox):
            assert kmod_sandbox.modules() == []
            assert not kmod_sandbox.is_loaded("hello")
    """)
    res = run(pytester)
    res.assert_outcomes(passed=2)


def test_a_failed_load_says_why(pytester):
    """An insmod the test expected to work fails the test with the errno's name and text, the
    failing step, the kernel's lines of that call and dmesg's tail; the report gets a
    'kmod sandbox' section naming the machine's directory."""
    pytester.makepyfile(f"""
        def test_load(kmod_sandbox):
            kmod_sandbox.insmod({str(EX / "failing_init.ko")!r})
    """)
    res = run(pytester)
    res.assert_outcomes(failed=1)
    out = res.stdout.str()
    assert "ModuleLoadError" in out
    assert "failed with ENODEV (No such device) in do_init_module" in out
    assert "kernel log of 'insmod " in out
    assert "failing_init: init runs, finds no device, returns -ENODEV" in out
    assert "dmesg (last " in out and "Linux version 6.1.0-56-amd64" in out
    assert "kmod sandbox" in out and "kmod-machine" in out and "replays it" in out
    assert "pytest_plugin.py" not in out.split("ModuleLoadError")[0].split("def test_load")[-1]


def test_assertions_fail_with_the_kernel_reason(pytester):
    """assert_load_fails checks errno (by name or number), step and a regex on the reason;
    a wrong expectation fails with what the kernel said instead."""
    pytester.makepyfile(f"""
        import pytest
        PROP = {str(EX / "proprietary.ko")!r}
        def test_right(kmod_sandbox):
            call = kmod_sandbox.assert_load_fails(PROP, errno="ENOENT", step="simplify_symbols",
                                                  match="Unknown symbol ktime_get")
            assert call.errno == 2 and call.errno_name == "ENOENT"
            kmod_sandbox.assert_tainted("P")
        def test_wrong_errno(kmod_sandbox):
            kmod_sandbox.assert_load_fails(PROP, errno=19)
        def test_tainted_wrong(kmod_sandbox):
            kmod_sandbox.assert_tainted("P")
        def test_dmesg_missing(kmod_sandbox):
            kmod_sandbox.insmod({str(EX / "hello.ko")!r})
            kmod_sandbox.assert_in_dmesg("no such greeting")
        def test_no_file(kmod_sandbox):
            kmod_sandbox.insmod("nothere.ko")
    """)
    res = run(pytester)
    res.assert_outcomes(passed=1, failed=4)
    out = res.stdout.str()
    assert "errno is ENOENT, expected ENODEV" in out
    assert "kernel's reason: Unknown symbol ktime_get (err -2)" in out
    assert "kernel taint lacks P (tainted 0: '')" in out
    assert "dmesg has no line with 'no such greeting'" in out
    assert "hello: hello, world!" in out          # dmesg's tail in that message
    line = next(l for l in out.splitlines() if "insmod nothere.ko" in l)
    assert line.endswith("insmod nothere.ko: could not read the module: No such file or directory")


def test_profile_from_option_ini_env_and_marker(pytester, monkeypatch):
    """--kmod-kernel beats the ini option, which beats $KMODLAB_PROFILE; a marker beats all,
    and with missing="skip" skips where its profile is not imported."""
    pytester.makeini("[pytest]\nkmod_kernel = no-such-profile-ini\n")
    pytester.makepyfile("""
        import pytest
        def test_default(kmod_profile, kmod_sandbox):
            assert kmod_profile.name == "debian-6.1.0-56-amd64"
            assert "Linux version 6.1.0-56-amd64" in kmod_sandbox.dmesg()[0]
        @pytest.mark.kmod_kernel("no-such-profile-marker", missing="skip")
        def test_marked(kmod_sandbox):
            raise AssertionError("never runs")
    """)
    res = run(pytester, "--kmod-kernel=debian-6.1.0-56-amd64")
    res.assert_outcomes(passed=1, skipped=1)
    res = run(pytester, "-rs")
    res.assert_outcomes(errors=1, skipped=1)
    assert "kmod_sandbox: kernel profile 'no-such-profile-ini'" in res.stdout.str()
    pytester.makeini("[pytest]\n")
    monkeypatch.setenv("KMODLAB_PROFILE", "no-such-profile-env")
    res = run(pytester)
    res.assert_outcomes(errors=1, skipped=1)
    assert "no-such-profile-env" in res.stdout.str()


def test_a_bad_kmod_kernel_option_stops_the_session(pytester):
    pytester.makepyfile("def test_x(): pass\n")
    res = run(pytester, "--kmod-kernel=no-such-profile")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert "--kmod-kernel=no-such-profile" in res.stderr.str()


def test_released_at_teardown(pytester):
    pytester.makepyfile("""
        import pytest
        kept = []
        def test_keep(kmod_sandbox):
            kept.append(kmod_sandbox)
        def test_released():
            with pytest.raises(RuntimeError, match="released"):
                kept[0].dmesg()
    """)
    run(pytester).assert_outcomes(passed=2)


def test_loaded_lazily_in_a_fresh_interpreter(pytester, monkeypatch):
    """In a new process (as CI starts pytest) the entry point loads the plugin; until a test
    asks for kmod_sandbox nothing of the kernel, emulator or numpy is imported."""
    pytester.makepyfile(f"""
        import sys
        def test_a_nothing_heavy():
            assert "kmodlab.pytest_plugin" in sys.modules
            heavy = [m for m in ("kmodlab.sandbox", "kmodlab.machine", "numpy", "unicorn")
                     if m in sys.modules]
            assert heavy == []
        def test_b_fixture_works(kmod_sandbox):
            kmod_sandbox.insmod({str(EX / "hello.ko")!r})
            kmod_sandbox.assert_loaded("hello")
    """)
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    res.assert_outcomes(passed=2)
