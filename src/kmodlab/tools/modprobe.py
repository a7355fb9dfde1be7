"""modprobe: load a module by name or alias with its dependencies, or remove it with the ones it
leaves unused (kmod 30's tools/modprobe.c over libkmod's kmod_module_probe_insert_module).

The module directory is ``<basedir>/lib/modules/<version>`` (``-d``/``-S``; defaults: ``/`` and
the sandbox profile's release, ``uname -r`` with ``--live``), read through depmod's text files
(``kmodlab depmod`` writes them; kmod reads the ``.bin`` twins).  ``--tree`` prepares the
sandbox profile's Debian tree (extracted into the cache, depmod run) and prints its basedir.
With the sandbox kernel, ``-d BASEDIR`` (and ``-S``) also become the machine's module tree: its
kernel's request_module() runs ``modprobe -q -- NAME`` there (:func:`usermode_modprobe`).

Resolution (kmod_module_new_from_lookup): config aliases, modules.dep names, modules.symbols,
install/remove commands, modules.alias, built-in modules.  Insertion
(kmod_module_probe_insert_module): already-loaded → nothing (``--first-time``: EEXIST); blacklist
for names reached through an alias (every name with ``-b``); then the probe list — dependencies
deepest first, each preceded by its ``softdep pre:`` and followed by its ``post:`` modules — each
inserted with its ``options`` (the command line's appended for the named module) or run through
its ``install`` command (``/bin/sh -c``, ``$CMDLINE_OPTS`` replaced, ``MODPROBE_MODULE`` set).
Messages are kmod's; after a failed insert kmodlab prints the kernel's reason, as insmod does.
Two more deliberate differences (tests/test_qemu_tools.py compares with kmod on a real kernel):
stdout is flushed before an install/remove command runs (kmod's ``install …`` action line is
still in its stdio buffer when the command's output reaches a pipe), and libkmod's messages
come without kmod's source location ("../libkmod/libkmod-module.c:1047 command_do() ").
Like kmod, -C/-q/-v/-s are exported to the commands in ``$MODPROBE_OPTIONS``, which is read in
front of the command line.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..errors import EBUSY, EEXIST, EINVAL, ENOENT, strerror
from ..lib.args import options_from_array
from ..lib.config import Config, load_config
from ..lib.depmod import read_modules_dep
from ..lib.file import alias_normalize, path_ends_with_kmod_ext, path_to_modname
from .common import ToolParser
from .log import log_reason

USAGE = """Usage:
\tmodprobe [options] [-i] [-b] modulename
\tmodprobe [options] -a [-i] [-b] modulename [modulename...]
\tmodprobe [options] -r [-i] modulename
\tmodprobe [options] -r -a [-i] modulename [modulename...]
\tmodprobe [options] -c
\tmodprobe [options] --dump-modversions filename
Management Options:
\t-a, --all                   Consider every non-argument to
\t                            be a module name to be inserted
\t                            or removed (-r)
\t-r, --remove                Remove modules instead of inserting
\t    --remove-dependencies   Also remove modules depending on it
\t-R, --resolve-alias         Only lookup and print alias and exit
\t    --first-time            Fail if module already inserted or removed
\t-i, --ignore-install        Ignore install commands
\t-i, --ignore-remove         Ignore remove commands
\t-b, --use-blacklist         Apply blacklist to resolved alias.
\t-f, --force                 Force module insertion or removal.
\t                            implies --force-modversions and
\t                            --force-vermagic
\t    --force-modversion      Ignore module's version
\t    --force-vermagic        Ignore module's version magic

Query Options:
\t-D, --show-depends          Only print module dependencies and exit
\t-c, --showconfig            Print out known configuration and exit
\t-c, --show-config           Same as --showconfig
\t    --show-modversions      Dump module symbol version and exit
\t    --dump-modversions      Same as --show-modversions
\t    --show-exports          Only print module exported symbol versions and exit

General Options:
\t-n, --dry-run               Do not execute operations, just print out
\t-n, --show                  Same as --dry-run
\t-C, --config=FILE           Use FILE instead of default search paths
\t-d, --dirname=DIR           Use DIR as filesystem root for /lib/modules
\t-S, --set-version=VERSION   Use VERSION instead of `uname -r`
\t-s, --syslog                print to syslog, not stderr
\t-q, --quiet                 disable messages
\t-v, --verbose               enables more messages
\t-V, --version               show version
\t-h, --help                  show this help
kmodlab:
\t    --tree                  extract the sandbox profile's Debian module tree, run depmod
\t                            on it and print its basedir (for -d)
"""

O_NONBLOCK, O_TRUNC = 0o4000, 0o1000


class PMod:
    """A module as libkmod's context caches it (one object per name)."""
    __slots__ = ("name", "path", "alias", "builtin", "visited", "required", "ignorecmd")

    def __init__(self, name, path=None, alias=None, builtin=False):
        self.name, self.path, self.alias, self.builtin = name, path, alias, builtin
        self.visited = self.required = self.ignorecmd = False


class Modprobe:
    def __init__(self, dirname: str, cfg: Config, opts, quiet: bool):
        self.dirname = dirname
        self.cfg = cfg
        self.opts = opts
        self.quiet = quiet
        self.dep = read_modules_dep(dirname) or {}
        self._mods: dict[str, PMod] = {}
        self._kernel = None
        self._mdir = None
        self.verbose = opts.verbose

    # -- messages (tools/log.c) --
    def fatal(self, msg: str) -> None:
        """kmod's LOG(): FATAL, or WARNING when -a handles several names."""
        if not self.quiet:
            level = "WARNING" if self.opts.all else "FATAL"
            print(f"modprobe: {level}: {msg}", file=sys.stderr)

    def error(self, msg: str) -> None:
        if not self.quiet:
            print(f"modprobe: ERROR: {msg}", file=sys.stderr)

    def show(self, line: str) -> None:
        if self.verbose:
            print(line, flush=True)

    @property
    def kernel(self):
        if self._kernel is None:
            from ..syscalls import get_kernel
            self._kernel = get_kernel()
        return self._kernel

    # -- modules and lookups (libkmod-module.c) --
    def module(self, name: str, alias: str | None = None) -> PMod:
        m = self._mods.get(name)
        if m is None:
            d = self.dep.get(name)
            m = PMod(name, d[0] if d else None, builtin=d is None and name in self._builtins())
            self._mods[name] = m
        if alias is not None and m.alias is None:
            m.alias = alias
        return m

    def _builtins(self) -> set[str]:
        return self._moddir().builtin_names()

    def _moddir(self):
        if self._mdir is None:
            from ..lib.modinfo import ModuleDir
            self._mdir = ModuleDir(self.dirname)
            self._mdir._dep = {n: p for n, (p, _d) in self.dep.items()}
        return self._mdir

    def lookup(self, given: str) -> list[PMod]:
        key = alias_normalize(given)
        if key is None:
            return []
        hits = self.cfg.alias_targets(key)
        if hits:
            return [self.module(t, alias=key) for t in hits]
        if key in self.dep:
            return [self.module(key)]
        if self.cfg.install_command(key) is not None or self.cfg.remove_command(key) is not None:
            if not key.startswith("symbol:"):
                return [self.module(key)]
        found = self._moddir().lookup(key)
        return [self.module(m.name, alias=None if m.name == key else key) for m in found]

    def dependencies(self, mod: PMod) -> list[PMod]:
        """kmod_module_get_dependencies: the modules.dep line, reversed (deepest first)."""
        d = self.dep.get(mod.name)
        if not d:
            return []
        return [self.module(path_to_modname(p) or "") for p in reversed(d[1])]

    def softdeps(self, mod: PMod) -> tuple[list[PMod], list[PMod]]:
        pre, post = self.cfg.softdeps_of(mod.name)
        return ([m for n in pre for m in self.lookup(n)], [m for n in post for m in self.lookup(n)])

    # -- state in the kernel --
    def initstate(self, mod: PMod) -> str | None:
        if mod.builtin:
            return "builtin"
        try:
            return self.kernel.read(f"/sys/module/{mod.name}/initstate").decode().strip()
        except OSError:
            return "builtin" if self.kernel.exists(f"/sys/module/{mod.name}") else None

    def in_kernel(self, mod: PMod) -> bool:
        return self.initstate(mod) in ("live", "coming", "builtin")

    def refcnt(self, mod: PMod) -> int | None:
        try:
            return int(self.kernel.read(f"/sys/module/{mod.name}/refcnt"))
        except (OSError, ValueError):
            return None

    # -- insertion (kmod_module_probe_insert_module) --
    def probe_list(self, mod: PMod, required: bool, ignorecmd: bool, out: list[PMod]) -> None:
        if mod.visited:
            return
        mod.visited = True
        deps = self.dependencies(mod)
        if required:
            mod.required = True
            for d in deps:
                d.required = True
        for d in deps:
            self._fill_softdep(d, out)
        if ignorecmd:
            out.append(mod)
            pre, post = self.softdeps(mod)
            mod.ignorecmd = bool(pre or post)
        else:
            self._fill_softdep(mod, out)

    def _fill_softdep(self, mod: PMod, out: list[PMod]) -> None:
        pre, post = self.softdeps(mod)
        for m in pre:
            self.probe_list(m, False, False, out)
        out.append(mod)
        mod.ignorecmd = bool(pre or post)
        for m in post:
            self.probe_list(m, False, False, out)

    def probe_insert(self, mod: PMod, extra: str) -> int:
        o = self.opts
        if not o.ignore_loaded and self.in_kernel(mod):
            return -EEXIST if o.first_time else 0
        if (mod.alias is not None or o.use_blacklist) and self.cfg.is_blacklisted(mod.name):
            return 1
        plist: list[PMod] = []
        self.probe_list(mod, True, o.ignore_commands, plist)
        err = 0
        for m in plist:
            if not o.ignore_loaded and self.in_kernel(m):
                err = -EEXIST
            else:
                # module_options_concat: config options always get a space after them
                copts = self.cfg.options_for(m.name, m.alias)
                xopts = extra if m is mod else ""
                options = f"{copts} {xopts}" if copts else xopts
                cmd = None if o.ignore_commands else self.cfg.install_command(m.name)
                if cmd is not None and not m.ignorecmd:
                    if o.show_actions:
                        print(f"install {cmd} {options}", flush=True)
                    if not o.dry_run:
                        err = self.run_command(m, "install", cmd, options)
                else:
                    if o.show_actions:
                        if m.path is not None:
                            print(f"insmod {m.path} {options}", flush=True)
                        elif self.initstate(m) == "builtin":
                            print(f"builtin {m.name}", flush=True)
                    if not o.dry_run:
                        err = self.insert(m, options)
            if err == -EEXIST and m is mod and o.first_time:
                break
            if err == -EEXIST or not m.required:
                err = 0
            elif err < 0:
                break
        return err

    def insert(self, m: PMod, options: str) -> int:
        """kmod_module_insert_module: finit_module for a plain file, else decompress and
        init_module (kmod 30); -f asks the kernel to ignore vermagic and modversions."""
        if m.path is None:
            if self.initstate(m) == "builtin":
                return 0
            self.error(f"could not find module by name='{m.name}'")
            return -ENOENT
        from ..kernel.module.internal import (MODULE_INIT_IGNORE_MODVERSIONS,
                                              MODULE_INIT_IGNORE_VERMAGIC)
        from ..lib.file import ModuleFileError
        from ..lib.module import insert_module
        o = self.opts
        flags = 0
        if o.force or o.force_modversion:
            flags |= MODULE_INIT_IGNORE_MODVERSIONS
        if o.force or o.force_vermagic:
            flags |= MODULE_INIT_IGNORE_VERMAGIC
        try:
            return self._result(m, insert_module(self.kernel, m.path, options, flags))
        except ModuleFileError as e:
            return -e.errno

    def _result(self, m: PMod, res) -> int:
        if res.ok:
            return 0
        from .insmod import why
        self.last_reason = why(res)
        return -res.errno

    def run_command(self, m: PMod, kind: str, cmd: str, options: str) -> int:
        cmd = cmd.replace("$CMDLINE_OPTS", options)
        env = dict(os.environ, MODPROBE_MODULE=m.name)
        sys.stdout.flush()
        r = subprocess.run(["/bin/sh", "-c", cmd], env=env)
        if r.returncode:
            if kind == "remove":        # tools/modprobe.c command_do: LOG, no command or code
                self.fatal(f"Error running remove command for {m.name}")
            else:                       # libkmod's module_do_install_commands
                self.error(f"Error running {kind} command '{cmd}' for module {m.name}: "
                           f"retcode {r.returncode}")
            return -EINVAL
        return 0

    def insmod(self, given: str, extra: str) -> int:
        mods = self.lookup(given)
        if not mods:
            self.fatal(f"Module {given} not found in directory {self.dirname}")
            return -ENOENT
        err = 0
        for mod in mods:
            if self.opts.resolve_alias:
                print(mod.name)
                continue
            self.last_reason = []
            err = self.probe_insert(mod, extra)
            if err >= 0:
                err = 0
                continue
            if err == -EEXIST:
                self.error(f"could not insert '{mod.name}': Module already in kernel")
            elif err == -ENOENT:
                self.error(f"could not insert '{mod.name}': Unknown symbol in module, "
                           f"or unknown parameter (see dmesg)")
            else:
                self.error(f"could not insert '{mod.name}': {strerror(-err)}")
            if not self.quiet:
                log_reason(self.last_reason)
        return err

    # -- removal (rmmod_do_module) --
    def rmmod(self, given: str) -> int:
        mods = self.lookup(given)
        if not mods:
            self.fatal(f"Module {given} not found.")
            return -ENOENT
        err = 0
        for mod in mods:
            err = self.rmmod_do_module(mod, do_deps=True, ignore_builtin=False)
            if err < 0:
                break
        return err

    def _rmmod_list(self, mods: list[PMod], stop_on_errors: bool) -> int:
        for m in reversed(mods):
            r = self.rmmod_do_module(m, do_deps=False, ignore_builtin=True)
            if r < 0 and stop_on_errors:
                return r
        return 0

    def rmmod_do_module(self, mod: PMod, do_deps: bool, ignore_builtin: bool) -> int:
        o = self.opts
        pre: list[PMod] = []
        post: list[PMod] = []
        cmd = None
        if not o.ignore_commands:
            pre, post = self.softdeps(mod)
            cmd = self.cfg.remove_command(mod.name)
        if cmd is None and not o.ignore_loaded:
            state = self.initstate(mod)
            if state is None:
                if o.first_time:
                    self.fatal(f"Module {mod.name} is not in kernel.")
                    return -ENOENT
                return 0
            if state == "builtin":
                if ignore_builtin:
                    return 0
                self.fatal(f"Module {mod.name} is builtin.")
                return -ENOENT
        self._rmmod_list(post, False)
        if do_deps and o.remove_dependencies:
            err = self._rmmod_list(self.dependencies(mod), True)
            if err < 0:
                return err
        if not o.ignore_loaded and cmd is None:
            usage = self.refcnt(mod)
            if usage is not None and usage > 0:
                self.fatal(f"Module {mod.name} is in use.")
                return -EBUSY
        if cmd is not None:
            cmd2 = cmd.replace("$CMDLINE_OPTS", "")
            self.show(f"remove {cmd2}")
            err = 0 if o.dry_run else self.run_command(mod, "remove", cmd2, "")
        else:
            err = self.rmmod_do_remove_module(mod)
        if err < 0:
            return err
        self._rmmod_list(pre, False)
        return 0

    def rmmod_do_remove_module(self, mod: PMod) -> int:
        self.show(f"rmmod {mod.name}")
        if self.opts.dry_run:
            err = 0
        else:
            res = self.kernel.delete_module(mod.name, O_NONBLOCK | (O_TRUNC if self.opts.force else 0))
            err = 0 if res.ok else -res.errno
            if err < 0:
                self.error(f"could not remove '{mod.name}': {strerror(-err)}")
                if not self.quiet:
                    log_reason([res.reason] if res.reason else [])
        for dep in self.dependencies(mod):
            if (self.refcnt(dep) if not self.opts.dry_run else None) == 0:
                self.rmmod_do_remove_module(dep)
        return err

    # -- -c --
    def show_config(self) -> None:
        out = sys.stdout
        out.write(self.cfg.dump())
        out.write("\n# End of configuration files. Dumping indexes now:\n\n")
        md = self._moddir()
        for fname in ("modules.alias", "modules.symbols"):
            lines = md._alias_lines(fname)
            idx = {n: i for i, n in enumerate(self.dep)}
            for pat, mod in sorted(lines, key=lambda pm: (pm[0].encode(), idx.get(pm[1], 0))):
                out.write(f"alias {pat} {mod}\n")


def default_version() -> str:
    if os.environ.get("KMODLAB_KERNEL") == "live":
        return os.uname().release
    from ..lib.modinfo import default_release
    return default_release()


def prepare_tree(release: str | None = None, src: Path | None = None) -> str:
    """--tree: the sandbox profile's Debian module tree (or ``release``'s, or the extracted
    tree ``src``), extracted once into the cache, linked into
    ``<cache>/trees/<release>.modprobe`` and given its depmod files; returns the basedir."""
    from ..lib.depmod import Depmod, is_up_to_date
    from ..profile.debian import extract_module_tree
    release = release or default_version()
    src = src or extract_module_tree(release)
    base = src.parent.parent.parent.with_name(f"{release}.modprobe")
    dst = base / "lib" / "modules" / release
    if not (dst / "modules.dep").exists() or not is_up_to_date(str(dst)):
        for top, _dirs, files in os.walk(src):
            rel = os.path.relpath(top, src)
            os.makedirs(dst / rel, exist_ok=True)
            for fn in files:
                if fn.startswith("modules.") and not fn.startswith(("modules.order",
                                                                    "modules.builtin")):
                    continue
                target = dst / rel / fn
                if not target.exists():
                    try:
                        os.link(os.path.join(top, fn), target)
                    except OSError:
                        import shutil
                        shutil.copy2(os.path.join(top, fn), target)
        dm = Depmod(str(dst))
        dm.run()
        dm.write()
    return str(base)


def remember_tree(basedir: str, version: str) -> None:
    """The sandbox machine keeps the last tree ``modprobe -d`` used: the kernel's
    request_module() runs its modprobe there (Machine.request_module)."""
    from ..syscalls import get_kernel
    kernel = get_kernel()
    if getattr(kernel, "name", "") != "sandbox":
        return
    tree = [basedir or "/", version]
    with kernel.session(write=False) as m:
        if m.modprobe_tree == tree:
            return
    with kernel.session(write=True) as m:
        m.modprobe_tree = tree


def kernel_cmdline(cfg: Config, kernel=None) -> None:
    """kmod reads /proc/cmdline after the configuration files (MODULE.PARAM=VALUE options,
    modprobe.blacklist=); here the /proc/cmdline of the kernel modprobe talks to (the
    sandbox machine's, or the live one's).  Unreadable: nothing, as in kmod."""
    from ..errors import KmodlabError
    try:
        if kernel is None:
            from ..syscalls import get_kernel
            kernel = get_kernel()
        text = kernel.read("/proc/cmdline").decode("latin-1")
    except (OSError, KmodlabError):
        return
    cfg.parse_kcmdline(text)


def usermode_modprobe(kernel, name: str, basedir: str, version: str) -> int:
    """What the kernel's request_module() runs as its usermode helper, ``modprobe -q -- NAME``,
    in this process: against ``kernel`` (the requesting sandbox machine) and the tree
    ``<basedir>/lib/modules/<version>`` with that root's modprobe.d; the caller's environment
    ($MODPROBE_OPTIONS) is not read, as the helper's is the kernel's.  Returns modprobe's exit
    code (0, or 1 when the module is not found or fails to load)."""
    import argparse
    root = "" if basedir in ("", "/") else basedir.rstrip("/")
    dirname = f"{root}/lib/modules/{version}"
    if not os.path.isfile(os.path.join(dirname, "modules.dep")):
        return 1
    flags = ("all", "remove", "remove_dependencies", "resolve_alias", "first_time",
             "ignore_commands", "use_blacklist", "force", "force_modversion", "force_vermagic",
             "show_depends", "show_config", "show_modversions", "show_exports", "dry_run",
             "syslog", "version", "help", "tree", "ignore_loaded", "show_actions")
    opts = argparse.Namespace(**dict.fromkeys(flags, False), quiet=True, verbose=0, config=None,
                              dirname=basedir, set_version=version, wait=None, args=[name])
    cfg = load_config(root or "/", None, dirname)
    kernel_cmdline(cfg, kernel)
    mp = Modprobe(dirname, cfg, opts, quiet=True)
    mp._kernel = kernel
    return 0 if mp.insmod(name, "") >= 0 else 1


def main(argv: list[str]) -> int:
    p = ToolParser(prog="modprobe", add_help=False)
    flag = lambda *names, dest=None: p.add_argument(*names, dest=dest, action="store_true")  # noqa: E731
    flag("-a", "--all")
    flag("-r", "--remove")
    flag("--remove-dependencies", "--remove-holders", dest="remove_dependencies")
    flag("-R", "--resolve-alias", "--show-alias", dest="resolve_alias")
    flag("--first-time", dest="first_time")
    flag("-i", "--ignore-install", "--ignore-remove", dest="ignore_commands")
    flag("-b", "--use-blacklist", dest="use_blacklist")
    flag("-f", "--force")
    flag("--force-modversion", dest="force_modversion")
    flag("--force-vermagic", dest="force_vermagic")
    flag("-D", "--show-depends", dest="show_depends")
    flag("-c", "--showconfig", "--show-config", dest="show_config")
    flag("--show-modversions", "--dump-modversions", dest="show_modversions")
    flag("--show-exports", dest="show_exports")
    flag("-n", "--dry-run", "--show", dest="dry_run")
    p.add_argument("-C", "--config", action="append")
    p.add_argument("-d", "--dirname")
    p.add_argument("-S", "--set-version")
    flag("-s", "--syslog")
    flag("-q", "--quiet")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("-w", "--wait")
    flag("-V", "--version")
    flag("-h", "--help")
    flag("--tree")
    p.add_argument("args", nargs="*")
    argv = _options_from_env() + list(argv)
    opts, unknown = p.parse_known_args(argv)
    _export_options(argv)
    # module parameters may look like options to argparse only when they start with '-'
    opts.args += [u for u in unknown if not u.startswith("-")]
    bad = [u for u in unknown if u.startswith("-")]
    if bad:
        print(f"modprobe: ERROR: unrecognized option '{bad[0]}'", file=sys.stderr)
        return 1
    if opts.help:
        print(USAGE, end="")
        return 0
    if opts.version:
        print("kmodlab modprobe (kmod version 30 compatible)")
        return 0
    if opts.tree:
        print(prepare_tree())
        return 0
    opts.ignore_loaded = opts.show_depends
    opts.dry_run = opts.dry_run or opts.show_depends
    opts.show_actions = opts.show_depends or opts.verbose > 0
    quiet = opts.quiet
    if not opts.args and not opts.show_config:
        print("modprobe: ERROR: missing parameters. See -h.", file=sys.stderr)
        return 1
    version = opts.set_version or default_version()
    root = opts.dirname if opts.dirname is not None else ""
    if root and not root.startswith("/"):
        root = os.path.abspath(root)
    dirname = f"{root}/lib/modules/{version}"
    cfg = load_config(root or "/", opts.config, dirname)
    kernel_cmdline(cfg)
    mp = Modprobe(dirname, cfg, opts, quiet)
    if opts.show_config:
        mp.show_config()
        return 0
    if opts.show_modversions or opts.show_exports:
        return _show_symbols(mp, opts.args[0], opts.show_exports)
    if not os.path.isfile(os.path.join(dirname, "modules.dep")) and not opts.remove:
        arg = opts.args[0]
        mp.fatal(f"Module {arg} not found in directory {dirname}")
        if not quiet:
            log_reason([f"kmodlab: {dirname} has no modules.dep. Run `kmodlab depmod -b BASEDIR "
                        f"{version}` on a module tree, or `kmodlab modprobe --tree` to get the "
                        f"sandbox profile's tree (then modprobe -d BASEDIR …)."])
        return 1
    if opts.dirname is not None:
        remember_tree(root, version)        # the tree of the machine's request_module()
    if opts.remove:
        names = opts.args
        err = 0
        for n in names:
            r = mp.rmmod(n)
            if r < 0:
                err = r
        return 0 if err >= 0 else 1
    if opts.all:
        err = 0
        for n in opts.args:
            r = mp.insmod(n, "")
            if r < 0:
                err = r
        return 0 if err >= 0 else 1
    err = mp.insmod(opts.args[0], options_from_array(opts.args[1:]))
    return 0 if err >= 0 else 1


def _options_from_env() -> list[str]:
    """prepend_options_from_env: $MODPROBE_OPTIONS go in front of the command line."""
    env = os.environ.get("MODPROBE_OPTIONS")
    if not env:
        return []
    import shlex
    try:
        return shlex.split(env)
    except ValueError:
        return env.split()


def _export_options(argv: list[str]) -> None:
    """env_modprobe_options_append: -C FILE, -q, -v and -s, in command-line order, are appended
    to $MODPROBE_OPTIONS, so that a modprobe run by an install/remove command inherits them."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a == "--":
            break
        if a.startswith("--"):
            name, eq, val = a.partition("=")
            if name in ("--config", "--dirname", "--set-version", "--wait") and not eq:
                val = argv[i] if i < len(argv) else ""
                i += 1
            if name == "--config":
                out += ["-C", val]
            elif name in ("--quiet", "--verbose", "--syslog"):
                out.append(name[1:3])
            continue
        if not a.startswith("-") or a == "-":
            continue
        for j, c in enumerate(a[1:], 2):
            if c in "CdSw":                 # the rest of the word, or the next one, is its value
                val = a[j:]
                if not val:
                    val = argv[i] if i < len(argv) else ""
                    i += 1
                if c == "C":
                    out += ["-C", val]
                break
            if c in "qvs":
                out.append("-" + c)
    if out:
        old = os.environ.get("MODPROBE_OPTIONS")
        os.environ["MODPROBE_OPTIONS"] = " ".join(([old] if old else []) + out)


def _show_symbols(mp: Modprobe, arg: str, exports: bool) -> int:
    """--show-modversions / --show-exports: '0x%08llx\\t%s' per symbol (tools/modprobe.c)."""
    from ..lib.depmod import read_symbols
    from ..lib.file import read_module
    path = arg if path_ends_with_kmod_ext(arg) and os.path.isfile(arg) else None
    if path is None:
        mods = mp.lookup(arg)
        path = mods[0].path if mods and mods[0].path else None
    if path is None:
        mp.fatal(f"Module {arg} not found.")
        return 1
    _info, exp, needs = read_symbols(read_module(path).data)
    if exports:
        for name, crc in exp:
            print(f"0x{crc:016x}\t{name}")
    else:
        from ..lib.modinfo import elf_get_section
        import struct
        vs = elf_get_section(read_module(path).data, b"__versions")
        for j in range(len(vs) // 64):
            crc, = struct.unpack_from("<Q", vs, j * 64)
            raw = vs[j * 64 + 8:j * 64 + 64]
            name = raw.split(b"\0", 1)[0].decode()
            print(f"0x{crc:016x}\t{name}")
    return 0
