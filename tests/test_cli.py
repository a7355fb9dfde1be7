"""The tools end to end, each command a separate process on one persistent sandbox machine,
as a user types them (kmod's messages from shared/reference/kmod-formats.md)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EX = ROOT / "examples"


def km(*args, env=None, check=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([sys.executable, "-m", "kmodlab", *map(str, args)], capture_output=True,
                       text=True, env=e, cwd=ROOT, timeout=120)
    assert "Traceback" not in p.stderr, p.stderr
    if check is not None:
        assert p.returncode == check, (p.returncode, p.stdout, p.stderr)
    return p


def dmesg_texts():
    return [l.split("] ", 1)[1] for l in km("dmesg", check=0).stdout.splitlines()]


def test_walkthrough(machine_dir):
    """The issue's walk-through: insmod with parameters, lsmod, dmesg, /proc, /sys, rmmod."""
    km("insmod", EX / "hello.ko", "who=world", "count=3", check=0)
    out = km("lsmod", check=0).stdout.splitlines()
    assert out[0] == "Module                  Size  Used by"
    assert re.fullmatch(r"hello\s+16384  0", out[1])
    texts = dmesg_texts()
    assert "hello: hello, world!" in texts and "hello: greeting 3 of 3" in texts
    assert "hello: loading out-of-tree module taints kernel." in texts
    line = km("cat", "/proc/modules", check=0).stdout
    assert re.fullmatch(r"hello 16384 0 - Live 0xffffffffc[0-9a-f]{4}000 \(OE\)\n", line)
    assert km("cat", "/sys/module/hello/parameters/who", check=0).stdout == "world\n"
    assert km("cat", "/sys/module/hello/parameters/count", check=0).stdout == "3\n"
    assert km("cat", "/sys/module/hello/initsize", check=0).stdout == "0\n"
    assert km("cat", "/proc/sys/kernel/tainted", check=0).stdout == str((1 << 12) | (1 << 13)) + "\n"
    km("rmmod", "hello", check=0)
    assert "hello: goodbye, world" in dmesg_texts()
    assert km("lsmod", check=0).stdout.splitlines()[1:] == []


def test_already_loaded_and_not_loaded(machine_dir):
    km("insmod", EX / "hello.ko", check=0)
    p = km("insmod", EX / "hello.ko", check=1)
    assert p.stderr.startswith(f"insmod: ERROR: could not insert module {EX / 'hello.ko'}: File exists\n")
    km("rmmod", "hello", check=0)
    p = km("rmmod", "hello", check=1)
    assert p.stderr == "rmmod: ERROR: Module hello is not currently loaded\n"


def test_dependencies_and_in_use(machine_dir):
    """The consumer needs the provider; the provider can't go while the consumer uses it."""
    p = km("insmod", EX / "kmodlab_consumer.ko", check=1)
    assert "Unknown symbol in module" in p.stderr
    assert "kmodlab_consumer: Unknown symbol kmodlab_provider_add (err -2)" in p.stderr
    km("insmod", EX / "kmodlab_provider.ko", check=0)
    km("insmod", EX / "kmodlab_consumer.ko", check=0)
    lines = km("lsmod", check=0).stdout.splitlines()
    assert re.fullmatch(r"kmodlab_provider\s+\d+  1 kmodlab_consumer", lines[2])
    assert "kmodlab_provider 16384 1 kmodlab_consumer, Live" in km("cat", "/proc/modules").stdout
    p = km("rmmod", "kmodlab_provider", check=1)
    assert p.stderr == "rmmod: ERROR: Module kmodlab_provider is in use by: kmodlab_consumer\n"
    p = km("rmmod", "-f", "kmodlab_provider", check=1)          # EWOULDBLOCK even when forced
    assert "could not remove module kmodlab_provider: Resource temporarily unavailable" in p.stderr
    km("rmmod", "kmodlab_consumer", check=0)
    km("rmmod", "kmodlab_provider", check=0)


def test_failures_say_why(machine_dir):
    p = km("insmod", EX / "proprietary.ko", check=1)
    assert p.stderr.splitlines()[0].endswith("proprietary.ko: Unknown symbol in module")
    assert "  proprietary: Unknown symbol ktime_get (err -2)" in p.stderr.splitlines()
    p = km("insmod", EX / "failing_init.ko", check=1)
    assert p.stderr.splitlines()[0].endswith("failing_init.ko: No such device")
    p = km("insmod", EX / "hello.ko", "count=many", check=1)
    assert p.stderr.splitlines()[0].endswith("hello.ko: Invalid parameters")
    assert "  hello: `many' invalid for parameter `count'" in p.stderr.splitlines()
    p = km("insmod", "/nonexistent.ko", check=1)
    assert p.stderr == "insmod: ERROR: could not load module /nonexistent.ko: No such file or directory\n"
    p = km("insmod", check=1)
    assert p.stderr == "insmod: ERROR: missing filename.\n"
    assert km("lsmod", check=0).stdout.splitlines()[1:] == []


def test_as_user_is_eperm(machine_dir):
    p = km("insmod", "--as-user", EX / "hello.ko", check=1)
    assert "Operation not permitted" in p.stderr.splitlines()[0]
    assert km("lsmod").stdout.splitlines()[1:] == []


def test_force_taints_F(machine_dir):
    km("insmod", "-f", EX / "failing_init.ko", check=1)
    tainted = int(km("cat", "/proc/sys/kernel/tainted").stdout)
    assert tainted & (1 << 1)


def test_json_and_explain(machine_dir):
    p = km("insmod", "--json", EX / "hello.ko", "who=json", check=0)
    d = json.loads(p.stdout)
    assert d["ok"] and d["name"] == "hello" and d["errno"] == 0
    assert any(c["name"] == "_printk" for c in d["calls"])
    p = km("check", "--json", EX / "proprietary.ko", check=1)
    d = json.loads(p.stdout)
    assert (d["ok"], d["errno"], d["name"]) == (False, 2, "proprietary")
    assert d["coresize"] == 16384 and d["initsize"] == 12288


def test_debian_module_loads_and_unloads(machine_dir):
    """A real signed Debian module: no taint, its init registers md4, rmmod unregisters."""
    tree = os.environ.get("KMODLAB_MODULES_DIR")
    md4 = Path(tree or "/nonexistent") / "kernel/crypto/md4.ko"
    if not md4.exists():
        pytest.skip("no Debian module tree")
    km("insmod", md4, check=0)
    assert re.fullmatch(r"md4 16384 0 - Live 0x[0-9a-f]{16}\n", km("cat", "/proc/modules").stdout)
    assert km("cat", "/proc/sys/kernel/tainted").stdout == "0\n"
    km("rmmod", "md4", check=0)


def test_machine_reset_and_state_dir(machine_dir):
    km("insmod", EX / "hello.ko", check=0)
    assert km("machine", "path", check=0).stdout.strip() == str(machine_dir)
    km("machine", "reset", check=0)
    assert km("lsmod", check=0).stdout.splitlines()[1:] == []


def test_bad_usage_has_no_traceback(machine_dir):
    p = km("frobnicate", check=1)
    assert "invalid command" in p.stderr
    p = km("cat", "/proc/nonexistent", check=1)
    assert p.stderr.startswith("cat: /proc/nonexistent:")
    p = km("insmod", EX / "Makefile", check=1)
    assert "Invalid module format" in p.stderr


def test_modules_disabled_and_sig_enforce(machine_dir):
    """modules_disabled accepts only 1 and then every module syscall is EPERM; sig_enforce is
    bool_enable_only: N→Y works, Y→N is EROFS, and unsigned loads are then EKEYREJECTED."""
    km("insmod", EX / "hello.ko", check=0)
    km("write", "/sys/module/hello/parameters/who", "kernel", check=0)
    # charp keeps the newline echo wrote, as param_set_charp does
    assert km("cat", "/sys/module/hello/parameters/who").stdout == "kernel\n\n"
    km("write", "-n", "/sys/module/hello/parameters/who", "kernel", check=0)
    assert km("cat", "/sys/module/hello/parameters/who").stdout == "kernel\n"
    p = km("write", "/sys/module/hello/parameters/values", "1", check=1)
    assert "Permission denied" in p.stderr                        # 0444
    km("write", "/sys/module/module/parameters/sig_enforce", "Y", check=0)
    p = km("write", "/sys/module/module/parameters/sig_enforce", "N", check=1)
    assert "Read-only file system" in p.stderr
    p = km("insmod", EX / "failing_init.ko", check=1)
    assert "Key was rejected by service" in p.stderr
    assert "Loading of unsigned module is rejected" in p.stderr
    p = km("write", "/proc/sys/kernel/modules_disabled", "0", check=1)
    assert "Invalid argument" in p.stderr
    km("write", "/proc/sys/kernel/modules_disabled", "1", check=0)
    p = km("rmmod", "hello", check=1)
    assert "could not remove module hello: Operation not permitted" in p.stderr


@pytest.mark.parametrize("kind", ["xz", "zstd", "gzip"])
def test_compressed_module(machine_dir, tmp_path, kind):
    """kmod 30 decompresses in user space (by magic, not name) and uses init_module: the
    Debian 6.1 kernel has no /sys/module/compression, so nothing is handed over compressed."""
    from kmodlab.lib.file import compress
    ext = {"xz": ".ko.xz", "zstd": ".ko.zst", "gzip": ".ko.gz"}[kind]
    f = tmp_path / f"hello{ext}"
    f.write_bytes(compress((EX / "hello.ko").read_bytes(), kind))
    km("insmod", f, f"who={kind}", check=0)
    assert f"hello: hello, {kind}!" in dmesg_texts()
    km("rmmod", "hello", check=0)


def test_global_options_before_or_after_the_command(machine_dir, tmp_path):
    """--machine, --kernel and --live work where users type them: before the command or after
    it (kmodlab insmod --live FILE); a bare -- ends them."""
    other = tmp_path / "other"
    km("insmod", "--machine", other, EX / "hello.ko", "who=x", check=0)
    assert "hello" in km("lsmod", "--machine", other, check=0).stdout
    assert "hello" not in km("lsmod", check=0).stdout              # the default machine
    assert "hello" in km("--machine", other, "lsmod", check=0).stdout
    p = km("insmod", "--kernel=no-such-profile", EX / "hello.ko", check=1)
    assert "unknown kernel profile 'no-such-profile'" in p.stderr
    p = km("insmod", "--live", EX / "hello.ko")
    assert p.returncode != 0 and "unrecognized arguments" not in p.stderr
    p = km("insmod", "--kernel", check=1)
    assert "option --kernel needs a value" in p.stderr


@pytest.mark.skipif(not shutil.which("insmod"), reason="kmod's insmod is not installed")
def test_pre_syscall_checks_match_kmods_insmod(machine_dir, tmp_path):
    """What kmod's insmod refuses before any syscall, kmodlab refuses with the same line and
    exit code: a missing path (could not load), a directory, files shorter than the longest
    compression magic (6 bytes), a corrupt xz stream (could not insert)."""
    import lzma
    cases = {"missing.ko": None, "dir.ko": "dir", "empty.ko": b"", "three.ko": b"abc",
             "five.ko": b"\x7fELF\x02", "gz2.ko": b"\x1f\x8b",
             "trunc.ko.xz": lzma.compress(bytes(range(256)) * 64)[:200]}
    for name, content in cases.items():
        path = tmp_path / name
        if content == "dir":
            path.mkdir()
        elif content is not None:
            path.write_bytes(content)
        real = subprocess.run([shutil.which("insmod"), str(path)], capture_output=True, text=True)
        ours = km("insmod", path)
        assert (ours.returncode, ours.stderr) == (real.returncode, real.stderr), name
