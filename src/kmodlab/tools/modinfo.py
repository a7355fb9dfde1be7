"""``modinfo``: show a module's information, byte for byte as kmod 30's tools/modinfo.c does.

Output (kmod-formats §1.2): ``filename:`` first (``name:`` before it for a built-in module), then
kmod's info list — the ``.modinfo`` strings in section order and the signature fields — each as
``key:`` padded to 16 columns, and the parameters last, ``parm`` and ``parmtype`` merged per name.

kmod's inconsistencies, kept on purpose so scripts see the same bytes:

* only the **last** ``-F``/``-a``/``-d``/``-l``/``-p``/``-n`` counts (kmod #22);
* field names are matched **case-sensitively** (``-F LICENSE`` prints nothing, exit 0) although
  the man page says otherwise; an unknown field prints nothing and exits 0;
* parameters print in **reverse order of first appearance**; a type-only parameter prints as
  ``name:type`` normally but ``name: (type)`` under ``-p``/``-F parm``;
* ``-0`` turns ordinary lines into ``key=value\\0`` but leaves the ``name:``/``filename:`` and
  ``parm:`` lines padded (kmod #434); hex values keep their "\\n\\t\\t" line breaks;
* ``-F filename`` prints the file name and nothing else, even for a field list;
* errors name the **module name**, not the path ("could not get modinfo from 'notelf': …");
* options are parsed like glibc's getopt_long (permuted arguments, ``--`` ends options,
  unambiguous prefixes of long options, glibc's messages), processed in order, so ``-h`` wins
  over a later bad option and loses to an earlier one.

Differences from Debian's kmod 30, on purpose:

* name and alias lookup read depmod's *text* files (or walk the tree): see lib/modinfo.py;
* ``.ko.gz`` is a module extension and gzip is decompressed (Debian builds kmod 30 without zlib
  and reports such files as "not found" or "Exec format error");
* the default kernel release is the sandbox profile's when there is one (else ``uname -r``);
* ``--json`` (kmodlab's extension) prints every module as one JSON object in a list; it ignores
  ``-F``/``-0`` and the shortcuts.
"""
from __future__ import annotations

import os
import stat
import sys

from ..errors import ENOENT, KmodlabError, strerror
from .log import log_error

PROG = "modinfo"

SHORTS = "adlpn0mF:k:b:Vh"
LONGS = [  # (name, takes an argument, short equivalent) in kmod's table order
    ("author", False, "a"), ("description", False, "d"), ("license", False, "l"),
    ("parameters", False, "p"), ("filename", False, "n"), ("null", False, "0"),
    ("modname", False, "m"), ("field", True, "F"), ("set-version", True, "k"),
    ("basedir", True, "b"), ("version", False, "V"), ("help", False, "h"),
    ("json", False, "J"),                       # kmodlab's extension, no short form
]
SHORTCUT_FIELDS = {"a": "author", "d": "description", "l": "license", "p": "parm",
                   "n": "filename"}

HELP = """Usage:
\t{prog} [options] <modulename|filename> [args]
Options:
\t-a, --author                Print only 'author'
\t-d, --description           Print only 'description'
\t-l, --license               Print only 'license'
\t-p, --parameters            Print only 'parm'
\t-n, --filename              Print only 'filename'
\t-0, --null                  Use \\0 instead of \\n
\t-m, --modname               Handle argument as module name instead of alias or filename
\t-F, --field=FIELD           Print only provided FIELD
\t-k, --set-version=VERSION   Use VERSION instead of `uname -r`
\t-b, --basedir=DIR           Use DIR as filesystem root for /lib/modules
\t-V, --version               Show version
\t-h, --help                  Show this help
"""

VERSION = "kmod version 30\n+ZSTD +XZ +ZLIB +LIBCRYPTO -EXPERIMENTAL\n"


class _GetoptError(Exception):
    """A message glibc's getopt prints before modinfo exits 1."""


def getopt_long(argv: list[str], shorts: str, longs):
    """glibc getopt_long with argument permutation: yields (opt, value) pairs in order, then
    ('', operand) pairs for the operands (in their original order) once options are done.  An
    invalid option yields ('?', message) and stops."""
    opts, operands = [], []
    takes = {c: shorts[i + 1:i + 2] == ":" for i, c in enumerate(shorts) if c != ":"}
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a == "--":
            operands.extend(argv[i:])
            break
        if a.startswith("--"):
            name, eq, val = a[2:].partition("=")
            exact = [o for o in longs if o[0] == name]
            cands = exact or [o for o in longs if o[0].startswith(name)]
            if not cands:
                opts.append(("?", f"{PROG}: unrecognized option '--{name}'"))
                return opts, operands
            if len(cands) > 1:
                poss = "".join(f" '--{o[0]}'" for o in cands)
                opts.append(("?", f"{PROG}: option '--{name}' is ambiguous; possibilities:{poss}"))
                return opts, operands
            lname, has_arg, short = cands[0]
            if has_arg:
                if not eq:
                    if i >= len(argv):
                        opts.append(("?", f"{PROG}: option '--{lname}' requires an argument"))
                        return opts, operands
                    val = argv[i]
                    i += 1
                opts.append((short, val))
            else:
                if eq:
                    opts.append(("?", f"{PROG}: option '--{lname}' doesn't allow an argument"))
                    return opts, operands
                opts.append((short, None))
        elif a.startswith("-") and a != "-":
            j = 1
            while j < len(a):
                c = a[j]
                j += 1
                if c not in takes:
                    opts.append(("?", f"{PROG}: invalid option -- '{c}'"))
                    return opts, operands
                if takes[c]:
                    if j < len(a):
                        val = a[j:]
                    elif i < len(argv):
                        val = argv[i]
                        i += 1
                    else:
                        opts.append(("?", f"{PROG}: option requires an argument -- '{c}'"))
                        return opts, operands
                    opts.append((c, val))
                    break
                opts.append((c, None))
        else:
            operands.append(a)
    return opts, operands


class _Printer:
    """Renders one module the way modinfo_do does into a bytes buffer."""

    def __init__(self, field: bytes | None, sep: bytes):
        self.field = field
        self.sep = sep
        self.out: list[bytes] = []

    def line(self, key: bytes, value: bytes) -> None:
        """``%-16s%s`` for "name:"/"filename:"/"parm:" (keeps padding under -0)."""
        k = key + b":"
        self.out.append(k.ljust(16) + value + self.sep)

    def item(self, key: bytes, value: bytes) -> None:
        """``%s:%-*s%s`` — or ``key=value`` under -0."""
        if self.sep == b"\0":
            self.out.append(key + b"=" + value + self.sep)
        else:
            self.out.append(key + b":" + b" " * max(0, 15 - len(key)) + value + self.sep)

    def params(self, params, filtered: bool) -> None:
        for p in params:
            if filtered:
                if p.desc is None:
                    body = p.name + b": (" + (p.type or b"") + b")"
                elif p.type is not None:
                    body = p.name + b":" + p.desc + b" (" + p.type + b")"
                else:
                    body = p.name + b":" + p.desc
                self.out.append(body + self.sep)
            else:
                if p.desc is None:
                    body = p.name + b":" + (p.type or b"")
                elif p.type is not None:
                    body = p.name + b":" + p.desc + b" (" + p.type + b")"
                else:
                    body = p.name + b":" + p.desc
                self.line(b"parm", body)


def _write(data: bytes) -> None:
    buf = getattr(sys.stdout, "buffer", None)
    if buf is not None:
        sys.stdout.flush()
        buf.write(data)
        buf.flush()
    else:                                    # a text-only stdout (tests): keep every byte
        sys.stdout.write(data.decode("utf-8", "surrogateescape"))


def _error(msg: str) -> None:
    sys.stdout.flush()
    log_error(PROG, msg)


def modinfo_do(mod, field: bytes | None, sep: bytes) -> int:
    """Print one module; returns 0 or a negative errno (after printing kmod's error)."""
    from ..lib.modinfo import ModinfoError, merge_params, module_info
    pr = _Printer(field, sep)
    filename = mod.path
    is_builtin = filename is None
    name = mod.name.encode("utf-8", "surrogateescape")
    if is_builtin:
        if field is None:
            pr.line(b"name", name)
        elif field == b"name":
            pr.out.append(name + sep)
        fname = b"(builtin)"
    else:
        fname = os.fsencode(filename)
    if field == b"filename":
        pr.out.append(fname + sep)
        _write(b"".join(pr.out))
        return 0
    if field is None:
        pr.line(b"filename", fname)
    try:
        info = module_info(mod)
    except (ModinfoError, KmodlabError) as e:
        err = getattr(e, "errno", None) or ENOENT
        _write(b"".join(pr.out))
        if is_builtin and err == ENOENT:
            return 0
        _error(f"could not get modinfo from '{mod.name}': {strerror(err)}")
        return -err

    def invalid(key: bytes, value: bytes) -> None:
        _write(b"".join(pr.out))
        pr.out.clear()
        _error('Found invalid "%s=%s": missing \':\''
               % (key.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape")))

    items = info.items()
    if field == b"parm":
        pr.params(merge_params(items, invalid), filtered=True)
    elif field is not None:
        pr.out.extend(v + sep for k, v in items if k == field)
    else:
        for k, v in items:
            if k != b"parm" and k != b"parmtype":
                pr.item(k, v)
        pr.params(merge_params(items, invalid), filtered=False)
    _write(b"".join(pr.out))
    return 0


def _json_record(arg: str, mod, mi) -> dict:
    from ..lib.modinfo import hex_colon, merge_params

    def s(b: bytes | None) -> str | None:
        return None if b is None else b.decode("utf-8", "replace")

    rec = {"argument": arg, "name": mod.name, "filename": mod.path or "(builtin)",
           "builtin": mod.path is None, "compression": mi.compression if mi else None,
           "fields": [], "parm": {}, "signature": None}
    if mi is None:
        return rec
    rec["fields"] = [[s(k), s(v)] for k, v in mi.fields]
    rec["parm"] = {s(p.name): {"desc": s(p.desc), "type": s(p.type)}
                   for p in merge_params(mi.fields)}
    sig = mi.signature
    if sig is not None:
        rec["signature"] = {"sig_id": s(sig.sig_id), "signer": s(sig.signer),
                            "sig_key": s(hex_colon(sig.sig_key, 1 << 30)),
                            "sig_hashalgo": s(sig.sig_hashalgo),
                            "signature": s(hex_colon(sig.signature, 1 << 30))}
    return rec


def _is_module_filename(name: str) -> bool:
    from ..lib.file import path_ends_with_kmod_ext
    try:
        st = os.stat(name)
    except (OSError, ValueError):
        return False
    return stat.S_ISREG(st.st_mode) and path_ends_with_kmod_ext(name)


def resolve(arg: str, by_name: bool, mdir_factory):
    """The modules an argument names, as tools/modinfo.c decides: a regular file with a module
    extension is a path (unless -m), otherwise a name (-m) or an alias.  Returns (modules,
    error message or None)."""
    from ..lib.modinfo import module_from_path
    if by_name:
        m = mdir_factory().lookup_name(arg)
        return ([m], None) if m is not None else ([], f"Module name {arg} not found.")
    if _is_module_filename(arg):
        return [module_from_path(arg)], None
    mods = mdir_factory().lookup(arg)
    return (mods, None) if mods else ([], f"Module {arg} not found.")


def main(argv: list[str]) -> int:
    opts, operands = getopt_long(list(argv), SHORTS, LONGS)
    field: str | None = None
    sep = b"\n"
    by_name = False
    kver = root = None
    as_json = False
    for opt, val in opts:
        if opt == "?":
            print(val, file=sys.stderr)
            return 1
        if opt in SHORTCUT_FIELDS:
            field = SHORTCUT_FIELDS[opt]
        elif opt == "F":
            field = val
        elif opt == "0":
            sep = b"\0"
        elif opt == "m":
            by_name = True
        elif opt == "k":
            kver = val
        elif opt == "b":
            root = val
        elif opt == "J":
            as_json = True
        elif opt == "h":
            _write(HELP.format(prog=PROG).encode())
            return 0
        elif opt == "V":
            _write(VERSION.encode())
            return 0
    if not operands:
        _error("missing module or filename.")
        return 1

    mdir = None

    def mdir_factory():
        nonlocal mdir
        if mdir is None:
            from ..lib.modinfo import ModuleDir, module_dirname
            mdir = ModuleDir(module_dirname(root, kver))
        return mdir

    fbytes = None if field is None else os.fsencode(field)
    err = 0
    records = []
    for arg in operands:
        mods, msg = resolve(arg, by_name, mdir_factory)
        if msg is not None:
            _error(msg)
            err = 1
            if as_json:
                records.append({"argument": arg, "error": msg, "errno": ENOENT})
            continue
        for mod in mods:
            if as_json:
                rec = _json_one(arg, mod)
                if "error" in rec:
                    err = 1
                records.append(rec)
            elif modinfo_do(mod, fbytes, sep) < 0:
                err = 1
    if as_json:
        import json
        _write((json.dumps(records, indent=2, ensure_ascii=False) + "\n").encode())
    return err


def _json_one(arg: str, mod) -> dict:
    from ..lib.modinfo import module_info
    try:
        mi = module_info(mod)
    except KmodlabError as e:
        e_no = getattr(e, "errno", None) or ENOENT
        rec = _json_record(arg, mod, None)
        if not (mod.path is None and e_no == ENOENT):
            msg = f"could not get modinfo from '{mod.name}': {strerror(e_no)}"
            _error(msg)
            rec.update(error=msg, errno=e_no, reason=str(e))
        return rec
    return _json_record(arg, mod, mi)
