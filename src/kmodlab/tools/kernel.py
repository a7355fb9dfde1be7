"""kmodlab kernel: import, list and show kernel profiles (the sandbox kernel's description).

    kmodlab kernel import [--release REL | --current [--suite SUITE]] [--dest DIR] [--out DIR] [IMAGE.deb HEADERS.deb...]
    kmodlab kernel list
    kmodlab kernel show [NAME] [--exports] [--config]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import UsageError

HIGHLIGHTS = ("MODULES", "MODVERSIONS", "MODULE_SIG", "MODULE_SIG_FORCE", "MODULE_SIG_ALL",
              "MODULE_SIG_HASH", "MODULE_UNLOAD", "MODULE_FORCE_LOAD", "MODULE_FORCE_UNLOAD",
              "MODULE_COMPRESS_NONE", "MODULE_COMPRESS_XZ", "MODULE_COMPRESS_ZSTD",
              "MODULE_ALLOW_MISSING_NAMESPACE_IMPORTS", "KALLSYMS", "KALLSYMS_ALL", "SMP",
              "PREEMPT_DYNAMIC", "RETPOLINE", "LOCALVERSION")


class _Parser(argparse.ArgumentParser):
    def error(self, message):                       # argparse exits; we report as kmod does
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="kmodlab kernel", description="Import, list and show kernel profiles.")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    imp = sub.add_parser("import", help="build a profile from Debian linux-image/headers packages")
    g = imp.add_mutually_exclusive_group()
    g.add_argument("--release", metavar="REL", help="kernel release to fetch, e.g. 6.1.0-56-amd64")
    g.add_argument("--current", action="store_true",
                   help="fetch the release linux-image-amd64 points at now (the default)")
    imp.add_argument("--suite", metavar="SUITE",
                     help="with --current: the Debian suite to ask (e.g. trixie for Debian 13; "
                          "default the machine's own)")
    imp.add_argument("--dest", metavar="DIR", type=Path,
                     help="where to keep downloaded .debs (default $KMODLAB_CACHE/debs or "
                          "~/.cache/kmodlab/debs)")
    imp.add_argument("--out", metavar="DIR", type=Path,
                     help="where to write the profile (default the user's profile directory)")
    imp.add_argument("debs", nargs="*", type=Path, metavar="DEB",
                     help="linux-image-*.deb followed by its linux-headers-*.deb file(s)")
    sub.add_parser("list", help="list the available profiles")
    show = sub.add_parser("show", help="describe a profile")
    show.add_argument("name", nargs="?", help="profile name or file (default: the current one)")
    show.add_argument("--exports", action="store_true", help="also list the vmlinux exports")
    show.add_argument("--config", action="store_true", help="also print the whole config")
    return p


def _split_debs(debs: list[Path]) -> tuple[Path, list[Path]]:
    for d in debs:
        if not d.is_file():
            raise UsageError(f"{d}: no such file")
    images = [d for d in debs if d.name.startswith("linux-image-")]
    if len(images) > 1:
        raise UsageError("give one linux-image-*.deb")
    image = images[0] if images else debs[0]
    headers = [d for d in debs if d != image]
    if not headers:
        raise UsageError("give the linux-headers-<release> package as well (it has Module.symvers)")
    return image, headers


def cmd_import(args) -> int:
    from ..profile import PROFILE_SUFFIX, profile_dir, save_profile
    from ..profile.debian import build_profile, fetch_packages
    if args.debs:
        if args.release or args.current or args.suite:
            raise UsageError("give either package files or --release/--current, not both")
        image, headers = _split_debs(args.debs)
    else:
        if args.suite and args.release:
            raise UsageError("--suite goes with --current (a release names its own suite)")
        got = fetch_packages(args.release, args.dest, args.suite)
        image, headers = got["image"], got["headers"]
        for f in [image, *headers]:
            print(f"using {f}")
    prof = build_profile(image, headers, log=lambda m: print(m, file=sys.stderr))
    out = (args.out or profile_dir()) / f"{prof.name}{PROFILE_SUFFIX}"
    path = save_profile(prof, out)
    print(f"{prof.name}: {len(prof.exports)} vmlinux exports, {len(prof.module_exports)} module "
          f"exports, {len(prof.certificates)} certificate(s) -> {path}")
    return 0


def cmd_list(args) -> int:
    from ..profile import (DEFAULT_PROFILE, _embedded, _user, list_profiles)
    current = os.environ.get("KMODLAB_PROFILE") or DEFAULT_PROFILE
    user, emb = _user(), _embedded()
    for name in list_profiles():
        where = f"user ({user[name]})" if name in user else "embedded"
        mark = "*" if name == current else " "
        print(f"{mark} {name:<32} {where}")
    return 0


def _cfg(v: str) -> str:
    """A config value as .config writes it (strings quoted)."""
    if v in ("y", "m", "n") or v.lstrip("-").isdigit() or v.startswith("0x"):
        return v
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cmd_show(args) -> int:
    from ..profile import load_profile
    p = load_profile(args.name)
    ex = p.exports.values()
    kinds: dict[str, int] = {}
    for e in ex:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    ngpl = sum(1 for e in p.exports.values() if e.gpl)
    nns = sum(1 for e in p.exports.values() if e.namespace)
    print(f"profile:       {p.name}")
    print(f"file:          {p.path}")
    print(f"release:       {p.release}")
    print(f"version:       {p.version}")
    print(f"machine:       {p.machine}")
    print(f"vermagic:      {p.vermagic!r}")
    print(f"exports:       {len(p.exports)} in vmlinux ({len(p.exports) - ngpl} EXPORT_SYMBOL, "
          f"{ngpl} EXPORT_SYMBOL_GPL, {nns} in a namespace; "
          + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])) + ")")
    owners = {e.owner for e in p.module_exports.values()}
    print(f"mod. exports:  {len(p.module_exports)} from {len(owners)} modules (Module.symvers)")
    print(f"built-in:      {len(p.builtin)} modules")
    print(f"per-cpu area:  {p.percpu_static_size:#x} bytes (static)")
    for c in p.certificate_info():
        print(f"certificate:   {c['subject']} (serial {c['serial']}, {c['key']}, "
              f"valid {c['not_before']} .. {c['not_after']})")
    if not p.certificates:
        print("certificate:   none")
    print("config:")
    for k in HIGHLIGHTS:
        v = p.config.get(k)
        print(f"  CONFIG_{k}={_cfg(v)}" if v is not None else f"  # CONFIG_{k} is not set")
    if p.source:
        src = ", ".join(f"{k}={v}" for k, v in p.source.items())
        print(f"source:        {src}")
    if args.config:
        print()
        for k, v in p.config.items():
            print(f"CONFIG_{k}={_cfg(v)}")
    if args.exports:
        print()
        for e in p.exports.values():
            print(f"{e.addr:016x} {e.kind:<6} {'GPL ' if e.gpl else '    '}{e.name}"
                  + (f" [{e.namespace}]" if e.namespace else ""))
    return 0


def main(argv: list[str]) -> int:
    p = _parser()
    args = p.parse_args(argv)
    if args.cmd is None:
        p.print_help()
        return 0
    return {"import": cmd_import, "list": cmd_list, "show": cmd_show}[args.cmd](args)
