"""The ``kmodlab`` command: one dispatcher over one file per tool (kmod's tools/kmod.c).

``kmodlab insmod FILE`` or, through a symlink named ``insmod``, ``insmod FILE``.  Each tool module
exposes ``main(argv: list[str]) -> int``; it is imported only when called, so ``modinfo`` never
pays for the emulator.  No Python traceback reaches a user: every :class:`KmodlabError` becomes
kmod's "prog: ERROR: …" line, and anything unexpected is reported as an internal error.
"""
from __future__ import annotations

import importlib
import os
import sys

COMMANDS = {
    "insmod": "Insert a module into the kernel (sandbox by default)",
    "rmmod": "Remove a module from the kernel",
    "lsmod": "Show the modules in the kernel",
    "modinfo": "Show information about a module file",
    "modprobe": "Load a module and its dependencies by name",
    "depmod": "Generate modules.dep and map files",
    "dmesg": "Show the sandbox kernel's log",
    "cat": "Read a file of the kernel's /proc or /sys",
    "write": "Write a value to a kernel /proc or /sys file (echo VALUE > PATH)",
    "check": "Would these modules load? (load_module up to relocation, no init)",
    "kernel": "Import, list and show kernel profiles",
    "machine": "Show or reset the sandbox machine",
    "explain": "Draw what load_module does with a module (--svg, --html)",
}
MODULES = {"explain": "explain_draw"}          # a command whose file is named otherwise
# global options a command parses itself when typed after it (check: --kernel repeats, a matrix)
OWN_OPTIONS = {"check": ("--kernel",)}


def _usage(out=sys.stdout) -> None:
    print("usage: kmodlab [--machine DIR] [--kernel PROFILE] [--live] COMMAND [ARGS]\n", file=out)
    print("Commands:", file=out)
    for name, text in COMMANDS.items():
        print(f"  {name:<10} {text}", file=out)
    print("\nEach command takes --help.  The sandbox machine's state persists between commands"
          "\n(default under $XDG_STATE_HOME/kmodlab; --machine DIR or KMODLAB_MACHINE).", file=out)


def _global_options(argv: list[str]) -> list[str]:
    """Consume the global options in front of the command and export them to the environment
    (where every tool and backend reads them): --machine, --kernel, --live."""
    args = list(argv)
    while args and args[0].startswith("--"):
        opt, eq, val = args[0].partition("=")
        if opt in ("--machine", "--kernel"):
            if not eq:
                if len(args) < 2:
                    raise SystemExit(f"kmodlab: option {opt} needs a value")
                val = args.pop(1)
            os.environ["KMODLAB_MACHINE" if opt == "--machine" else "KMODLAB_PROFILE"] = val
        elif opt == "--live":
            os.environ["KMODLAB_KERNEL"] = "live"
        else:
            break
        args.pop(0)
    return args


def _global_options_after(args: list[str], keep: tuple[str, ...] = ()) -> list[str]:
    """The same global options typed after the command (``kmodlab insmod --live FILE``), up to
    a bare ``--``: taken out and exported; everything else (and the options in ``keep``, which
    the command parses itself) stays in order."""
    out, i = [], 0
    while i < len(args):
        a = args[i]
        if a == "--":
            out.extend(args[i:])
            break
        opt, eq, _ = a.partition("=")
        if opt in ("--machine", "--kernel", "--live") and opt not in keep:
            n = 1 if eq or opt == "--live" else 2
            _global_options(args[i:i + n])
            i += n
            continue
        out.append(a)
        i += 1
    return out


def run(prog: str, argv: list[str]) -> int:
    from ..errors import KmodlabError
    from .log import log_error
    try:
        mod = importlib.import_module(f"kmodlab.tools.{MODULES.get(prog, prog)}")
    except ModuleNotFoundError as e:
        if e.name == f"kmodlab.tools.{MODULES.get(prog, prog)}":
            print(f"kmodlab: '{prog}' is not available yet", file=sys.stderr)
            return 1
        raise
    try:
        return mod.main(argv)
    except KmodlabError as e:
        log_error(prog, str(e))
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    base = os.path.basename(argv[0]) if argv else "kmodlab"
    if base in COMMANDS:                        # called through a symlink, as kmod is
        return run(base, _global_options_after(argv[1:], OWN_OPTIONS.get(base, ())))
    args = _global_options(argv[1:])
    if not args or args[0] in ("-h", "--help", "help"):
        _usage()
        return 0
    if args[0] in ("-V", "--version"):
        from importlib.metadata import version
        print(f"kmodlab version {version('kmodlab')}")
        return 0
    cmd = args[0]
    if cmd not in COMMANDS:
        print(f"kmodlab: invalid command '{cmd}'", file=sys.stderr)
        _usage(sys.stderr)
        return 1
    try:
        return run(cmd, _global_options_after(args[1:], OWN_OPTIONS.get(cmd, ())))
    except Exception as e:                      # a bug of ours: say so, never dump a traceback
        import traceback
        if os.environ.get("KMODLAB_DEBUG"):
            traceback.print_exc()
        print(f"kmodlab {cmd}: internal error: {type(e).__name__}: {e}\n"
              f"  (set KMODLAB_DEBUG=1 for the traceback; please report it)", file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
