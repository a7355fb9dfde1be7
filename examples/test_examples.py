"""A driver's CI suite, worked on the example modules: pytest with kmodlab's ``kmod_sandbox``.

Each test gets its own freshly booted sandbox kernel (Debian's 6.1 by default;
``pytest --kmod-kernel=PROFILE`` for another).  Run it alone with ``pytest examples/``; the
project's CI runs it with the rest of the suite (pyproject's testpaths).  The modules are the
committed .ko files next to this file, built for 6.1.0-56-amd64: on another kernel they fail
their vermagic check, which is what the last test shows.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
HELLO = HERE / "hello.ko"


def test_hello_loads_greets_and_unloads(kmod_sandbox):
    """hello's init prints one greeting line per ``count``; its parameters appear in sysfs;
    rmmod runs its exit."""
    kmod_sandbox.insmod(HELLO, who="ci", count=3)
    kmod_sandbox.assert_in_dmesg("hello: hello, ci!", "greeting 3 of 3")
    kmod_sandbox.assert_not_in_dmesg("greeting 4 of")
    kmod_sandbox.assert_loaded("hello")
    kmod_sandbox.assert_param("hello", "who", "ci")
    assert kmod_sandbox.param("hello", "count") == "3"
    assert "hello 16384 0 - Live" in kmod_sandbox.proc_modules()
    kmod_sandbox.rmmod("hello")
    kmod_sandbox.assert_in_dmesg("hello: goodbye, ci")
    kmod_sandbox.assert_not_loaded("hello")


def test_hello_parameters_as_a_string(kmod_sandbox):
    """The same parameters as insmod's command line; an array parameter sums in init."""
    kmod_sandbox.insmod(HELLO, "who=string values=1,2,3")
    kmod_sandbox.assert_in_dmesg("hello, string!", "3 value(s), sum 6")


def test_a_bad_parameter_value_is_refused(kmod_sandbox):
    """count is an int: parse_args refuses 'many', insmod says EINVAL."""
    call = kmod_sandbox.assert_load_fails(HELLO, count="many", errno="EINVAL", step="parse_args")
    assert "count" in call.reason
    kmod_sandbox.assert_not_loaded("hello")


def test_failing_init_reports_its_error(kmod_sandbox):
    """init runs (its line is in the log), returns -ENODEV: the module goes GOING and is freed,
    and its exit never runs."""
    kmod_sandbox.assert_load_fails(HERE / "failing_init.ko", errno="ENODEV", step="do_init_module")
    kmod_sandbox.assert_in_dmesg("failing_init: init runs, finds no device, returns -ENODEV")
    kmod_sandbox.assert_not_in_dmesg("exit (never reached")
    kmod_sandbox.assert_not_loaded("failing_init")


def test_consumer_needs_provider(kmod_sandbox):
    """Without its provider the consumer's symbols are unknown (ENOENT); with it, the consumer
    loads, holds the provider, and the provider cannot be removed first."""
    consumer = HERE / "kmodlab_consumer.ko"
    kmod_sandbox.assert_load_fails(consumer, errno="ENOENT",
                                   match=r"Unknown symbol kmodlab_provider_add")
    kmod_sandbox.insmod(HERE / "kmodlab_provider.ko")
    kmod_sandbox.insmod(consumer)
    kmod_sandbox.assert_in_dmesg(re.compile(r"kmodlab_provider_add\(2, 3\) = 5"))
    assert kmod_sandbox.module("kmodlab_provider").used_by == ["kmodlab_consumer"]
    busy = kmod_sandbox.try_rmmod("kmodlab_provider")
    assert not busy.ok and busy.errno_name == "EAGAIN"
    kmod_sandbox.rmmod("kmodlab_consumer")
    kmod_sandbox.rmmod("kmodlab_provider")


def test_proprietary_taints_P_although_refused(kmod_sandbox):
    """A 'Proprietary' licence taints the kernel P at once; the GPL-only ktime_get is then
    refused and the load fails — the taint stays, as on a real kernel."""
    assert "P" not in kmod_sandbox.taint_flags
    kmod_sandbox.assert_load_fails(HERE / "proprietary.ko", errno="ENOENT",
                                   match="Unknown symbol ktime_get")
    kmod_sandbox.assert_in_dmesg("proprietary: module license 'Proprietary' taints kernel.")
    kmod_sandbox.assert_tainted("POE")


@pytest.mark.kmod_kernel("debian-6.12.118+deb13-amd64", missing="skip")
def test_built_for_another_kernel(kmod_sandbox):
    """On Debian 13's 6.12 (skipped where its profile was never imported: kmodlab kernel import
    --release 6.12.118+deb13-amd64) the 6.1 build is refused by the first ELF checks: its
    struct module (.gnu.linkonce.this_module) is 6.1's size, not 6.12's.  ENOEXEC."""
    kmod_sandbox.assert_load_fails(HELLO, errno="ENOEXEC", step="elf_validity_cache_copy",
                                   match="size must match the kernel's built struct module")
    kmod_sandbox.assert_not_loaded("hello")
