"""modprobe over the sandbox kernel, on tests/rootfs/modprobe (real Debian crc7, md4, fat, vfat
and the examples' kmodlab_provider/kmodlab_consumer; depmod files written by kmodlab's depmod
and identical to kmod 30's).  Each CLI call is a separate process on a private machine."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROOTFS = ROOT / "tests" / "rootfs" / "modprobe"
REL = "6.1.0-56-amd64"


def run(*args):
    p = subprocess.run([sys.executable, "-m", "kmodlab", *map(str, args)], capture_output=True,
                       text=True)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture
def tree(tmp_path, machine_dir):
    """A private copy of the rootfs (tests write their own etc/modprobe.d)."""
    base = tmp_path / "root"
    shutil.copytree(ROOTFS, base)
    (base / "etc" / "modprobe.d").mkdir(parents=True)
    return base


def conf(base: Path, text: str) -> None:
    (base / "etc" / "modprobe.d" / "test.conf").write_text(text)


def mdir(base: Path) -> str:
    return f"{base}/lib/modules/{REL}"


def lsmod_names() -> list[str]:
    rc, out, _ = run("lsmod")
    return [l.split()[0] for l in out.splitlines()[1:]]


def test_dependencies_loaded_first(tree):
    """kmod_module_probe_insert_module: modules.dep's dependencies are inserted before the
    module (deepest first); -v prints print_action's "insmod PATH OPTIONS" (trailing space)."""
    rc, out, err = run("modprobe", "-v", "-d", tree, "vfat")
    assert rc == 0, err
    assert out == (f"insmod {mdir(tree)}/kernel/fs/fat/fat.ko \n"
                   f"insmod {mdir(tree)}/kernel/fs/fat/vfat.ko \n")
    assert lsmod_names() == ["vfat", "fat"]


def test_alias_options_and_dry_run(tree):
    """Aliases from modules.alias (fs-vfat) and modprobe.d; `options` lines plus the command
    line (module_options_concat: config options, a space, the command line's); -n -v prints
    without loading."""
    conf(tree, "alias myfs vfat\noptions fat codepage=437\noptions crc7 foo=1\n")
    rc, out, _ = run("modprobe", "-n", "-v", "-d", tree, "myfs")
    assert rc == 0
    assert out.splitlines()[0] == f"insmod {mdir(tree)}/kernel/fs/fat/fat.ko codepage=437 "
    rc, out, _ = run("modprobe", "-n", "-v", "-d", tree, "crc7", "bar=2")
    assert out == f"insmod {mdir(tree)}/kernel/lib/crc7.ko foo=1 bar=2\n"
    rc, out, _ = run("modprobe", "-n", "-v", "-d", tree, "fs-vfat")
    assert rc == 0 and out.endswith("vfat.ko \n")
    assert lsmod_names() == []


def test_softdep_and_show_depends(tree):
    """softdep pre:/post: modules surround the module in the probe list; -D lists the chain
    whatever is loaded."""
    conf(tree, "softdep vfat pre: crc7 post: md4\n")
    run("modprobe", "-d", tree, "fat")
    rc, out, _ = run("modprobe", "-D", "-d", tree, "vfat")
    assert [l.split("/")[-1].strip() for l in out.splitlines()] == \
        ["fat.ko", "crc7.ko", "vfat.ko", "md4.ko"]


def test_blacklist_applies_to_aliases(tree):
    """KMOD_PROBE_APPLY_BLACKLIST_ALIAS_ONLY: a blacklisted module is skipped (exit 0) when
    reached through an alias, loaded when named; -b blacklists names too."""
    conf(tree, "blacklist md4\n")
    assert run("modprobe", "-d", tree, "crypto-md4")[0] == 0
    assert lsmod_names() == []
    assert run("modprobe", "-b", "-d", tree, "md4")[0] == 0
    assert lsmod_names() == []
    assert run("modprobe", "-d", tree, "md4")[0] == 0
    assert lsmod_names() == ["md4"]


def test_first_time_and_already_loaded(tree):
    """An already-loaded module is success; --first-time says "Module already in kernel"."""
    assert run("modprobe", "-d", tree, "crc7")[0] == 0
    assert run("modprobe", "-d", tree, "crc7")[0] == 0
    rc, _, err = run("modprobe", "--first-time", "-d", tree, "crc7")
    assert rc == 1
    assert err == "modprobe: ERROR: could not insert 'crc7': Module already in kernel\n"


def test_remove_unused_dependencies(tree):
    """modprobe -r: rmmod the module, then its dependencies whose refcnt fell to 0; a module
    still used by another is refused ("Module X is in use.")."""
    run("modprobe", "-d", tree, "kmodlab_consumer")
    assert lsmod_names() == ["kmodlab_consumer", "kmodlab_provider"]
    rc, _, err = run("modprobe", "-r", "-d", tree, "kmodlab_provider")
    assert rc == 1 and err == "modprobe: FATAL: Module kmodlab_provider is in use.\n"
    rc, out, _ = run("modprobe", "-r", "-v", "-d", tree, "kmodlab_consumer")
    assert rc == 0 and out == "rmmod kmodlab_consumer\nrmmod kmodlab_provider\n"
    assert lsmod_names() == []
    # not loaded: silent success; --first-time: an error
    assert run("modprobe", "-r", "-d", tree, "crc7")[0] == 0
    rc, _, err = run("modprobe", "-r", "--first-time", "-d", tree, "crc7")
    assert rc == 1 and err == "modprobe: FATAL: Module crc7 is not in kernel.\n"


def test_install_and_remove_commands(tree):
    """install/remove commands run through /bin/sh with $CMDLINE_OPTS replaced and
    MODPROBE_MODULE set; a failing command is an error."""
    out_file = tree / "ran"
    conf(tree, f"install crc7 echo in $MODPROBE_MODULE $CMDLINE_OPTS >> {out_file}\n"
               f"remove crc7 echo out >> {out_file}\ninstall md4 false\n")
    assert run("modprobe", "-d", tree, "crc7", "a=1")[0] == 0
    assert run("modprobe", "-r", "-d", tree, "crc7")[0] == 0
    assert out_file.read_text() == "in crc7 a=1\nout\n"
    assert lsmod_names() == []
    rc, _, err = run("modprobe", "-d", tree, "md4")
    assert rc == 1
    assert "modprobe: ERROR: could not insert 'md4': Invalid argument" in err


def test_errors_and_exit_codes(tree):
    """kmod's texts: not found (FATAL, exit 1), missing parameters, builtin on -r, and the
    kernel's ENOENT as "Unknown symbol in module, or unknown parameter (see dmesg)" followed by
    kmodlab's reason lines."""
    rc, _, err = run("modprobe", "-d", tree, "nosuch")
    assert rc == 1 and err.startswith(
        f"modprobe: FATAL: Module nosuch not found in directory {mdir(tree)}\n")
    rc, _, err = run("modprobe")
    assert rc == 1 and err == "modprobe: ERROR: missing parameters. See -h.\n"
    rc, _, err = run("modprobe", "-r", "-d", tree, "crc32c_generic")
    assert rc == 1
    shutil.copy(ROOT / "examples" / "proprietary.ko", f"{mdir(tree)}/extra/")
    assert run("depmod", "-b", tree, REL)[0] == 0
    rc, _, err = run("modprobe", "-d", tree, "proprietary")
    assert rc == 1
    lines = err.splitlines()
    assert lines[0] == ("modprobe: ERROR: could not insert 'proprietary': Unknown symbol in "
                        "module, or unknown parameter (see dmesg)")
    assert any("Unknown symbol" in l for l in lines[1:])


def test_builtin_and_config_dump(tree):
    """A built-in module is "in kernel" (exit 0, nothing loaded); -r says "Module X is
    builtin."; -c dumps the configuration then the alias indexes."""
    builtin = (tree / "lib" / "modules" / REL / "modules.builtin").read_text().split()[0]
    name = builtin.rsplit("/", 1)[-1].split(".ko")[0].replace("-", "_")
    assert run("modprobe", "-d", tree, name)[0] == 0
    rc, _, err = run("modprobe", "-r", "-d", tree, name)
    assert rc == 1 and err == f"modprobe: FATAL: Module {name} is builtin.\n"
    conf(tree, "softdep vfat pre: crc7 post: md4\nalias myfs vfat\n")
    rc, out, _ = run("modprobe", "-c", "-d", tree)
    assert "alias myfs vfat\nsoftdep vfat pre: crc7post: md4\n" in out
    assert "# End of configuration files. Dumping indexes now:\n\nalias crypto_md4 md4\n" in out


@pytest.mark.skipif(shutil.which("modprobe") is None and not Path("/usr/sbin/modprobe").exists(),
                    reason="kmod's modprobe is not installed (apt-get install kmod)")
def test_dry_run_matches_kmod(tree, tmp_path):
    """kmod 30's `modprobe -n -v` / `-D` / `-R` print the same lines on the same tree (its
    config given with -C; kmod's .bin indexes written by the real depmod)."""
    kmod_modprobe = shutil.which("modprobe") or "/usr/sbin/modprobe"
    kmod_depmod = shutil.which("depmod") or "/usr/sbin/depmod"
    real = tmp_path / "real"
    shutil.copytree(ROOTFS, real)
    subprocess.run([kmod_depmod, "-b", real, REL], check=True)
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "t.conf").write_text("options crc7 foo=1\noptions fat codepage=437\nalias myfs vfat\n"
                                "blacklist md4\nsoftdep vfat pre: crc7 post: md4\n"
                                "install kmodlab_provider echo hi $CMDLINE_OPTS\n")
    for args in (["vfat"], ["myfs"], ["crc7", "bar=2"], ["-D", "vfat"], ["md4"],
                 ["crypto-md4"], ["kmodlab_consumer"], ["-R", "myfs"], ["symbol:crc7_be"],
                 ["-D", "kmodlab_provider", "x=1"], ["nosuch"]):
        want = subprocess.run([kmod_modprobe, "-n", "-v", "-C", cfg, "-d", real, "-S", REL,
                               *args], capture_output=True, text=True)
        rc, out, err = run("modprobe", "-n", "-v", "-C", cfg, "-d", real, "-S", REL, *args)
        assert (rc, out, err.splitlines()[:1]) == \
            (want.returncode, want.stdout, want.stderr.splitlines()[:1]), args
