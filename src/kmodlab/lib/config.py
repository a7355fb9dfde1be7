"""modprobe.d configuration (kmod 30's libkmod-config.c): alias, options, install, remove,
blacklist and softdep, read from the configuration directories in kmod's precedence.

kmod reads ``*.conf`` files of ``/etc/modprobe.d``, ``/run/modprobe.d``,
``/usr/local/lib/modprobe.d`` and ``/lib/modprobe.d``; a file name found in an earlier directory
hides the same name in later ones (so /etc overrides /lib), and the surviving files are parsed
in the order of their names.  depmod's ``modules.softdep`` of the module directory takes part as
one more file.  Lines ending in ``\\`` continue on the next line; ``#`` starts a comment line.

kmodlab difference: the directories are looked up under the modprobe *basedir* (``-d DIR``), so a
test tree carries its own configuration; kmod 30 always reads the host's ``/etc/modprobe.d``
(with the default basedir ``/`` both read the same files).
"""
from __future__ import annotations

import fnmatch
import os

from .file import alias_normalize, modname_normalize

CONFIG_DIRS = ("etc/modprobe.d", "run/modprobe.d", "usr/local/lib/modprobe.d", "lib/modprobe.d")


class Config:
    def __init__(self):
        self.aliases: list[tuple[str, str]] = []         # (pattern, module name)
        self.options: list[tuple[str, str]] = []         # (module name, options)
        self.install: list[tuple[str, str]] = []         # (module name, command)
        self.remove: list[tuple[str, str]] = []
        self.blacklist: list[str] = []
        self.softdeps: list[tuple[str, list[str], list[str]]] = []   # (name, pre, post)
        self.files: list[str] = []

    # -- queries (libkmod-module.c) --
    def alias_targets(self, name: str) -> list[str]:
        return [mod for pat, mod in self.aliases if fnmatch.fnmatchcase(name, pat)]

    def options_for(self, name: str, alias: str | None = None) -> str:
        opts = [o for m, o in self.options if m == name or (alias is not None and m == alias)]
        return " ".join(opts)

    def install_command(self, name: str) -> str | None:
        for m, cmd in self.install:
            if m == name:
                return cmd
        return None

    def remove_command(self, name: str) -> str | None:
        for m, cmd in self.remove:
            if m == name:
                return cmd
        return None

    def is_blacklisted(self, name: str) -> bool:
        return name in self.blacklist

    def softdeps_of(self, name: str) -> tuple[list[str], list[str]]:
        pre: list[str] = []
        post: list[str] = []
        for m, p, q in self.softdeps:
            if fnmatch.fnmatchcase(name, m):
                pre += p
                post += q
        return pre, post

    # -- parsing --
    def parse(self, text: str, path: str = "") -> None:
        self.files.append(path)
        for line in _logical_lines(text):
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            cmd = words[0]
            rest = line.split(None, 1)[1] if len(words) > 1 else ""
            if cmd == "alias" and len(words) >= 3:
                pat = alias_normalize(words[1])
                if pat is not None:
                    self.aliases.append((pat, modname_normalize(words[2])))
            elif cmd == "options" and len(words) >= 2:
                opts = rest.split(None, 1)[1] if len(words) > 2 else ""
                self.options.append((modname_normalize(words[1]), opts.replace("\t", " ")))
            elif cmd in ("install", "remove") and len(words) >= 3:
                command = rest.split(None, 1)[1]
                (self.install if cmd == "install" else self.remove).append(
                    (modname_normalize(words[1]), command))
            elif cmd == "blacklist" and len(words) >= 2:
                self.blacklist.append(modname_normalize(words[1]))
            elif cmd == "softdep" and len(words) >= 3:
                pre: list[str] = []
                post: list[str] = []
                mode = None
                for w in words[2:]:
                    if w == "pre:":
                        mode = pre
                    elif w == "post:":
                        mode = post
                    elif mode is not None:
                        mode.append(w)
                self.softdeps.append((modname_normalize(words[1]), pre, post))
            # "include", "config" and unknown commands: ignored, as kmod 30 does (with a log)

    def parse_kcmdline(self, cmdline: str) -> None:
        """kmod_config_parse_kcmdline: the kernel command line's ``MODULE.PARAM=VALUE`` words
        become ``options MODULE PARAM=VALUE`` and ``modprobe.blacklist=a,b`` blacklists
        (after the configuration files, as kmod reads them).  Words without a dot before the
        '=', with a second dot in the parameter, or without a value are ignored; a double
        quote toggles quoting, inside which spaces belong to the value."""
        buf = cmdline.split("\n", 1)[0] + "\0"
        state, modname, param, value, quoted = "modname", 0, None, None, False
        i = 0
        while i < len(buf):
            c = buf[i]
            if c == '"':
                quoted = not quoted
                if quoted and state == "modname" and i != modname:
                    state = "ignore"          # a quote may only open the whole word
            elif c in " \0":
                if quoted and state == "value" and c == " ":
                    pass
                elif quoted and c == " ":
                    state = "ignore"
                elif state in ("value", "param"):
                    state = "complete"
                else:
                    state, modname = "modname", i + 1
            elif c == ".":
                if state == "modname":
                    param, state = i + 1, "param"
                elif state == "param":
                    state = "ignore"
            elif c == "=":
                if state == "param":
                    value, state = i + 1, "value"
                elif state == "modname":
                    state = "ignore"
            if state == "complete":
                if value is not None:
                    name = buf[modname:param - 1]
                    text = buf[param:i]
                    if name.startswith('"'):   # grub's "mod.p=a b": re-quoted as p="a b"
                        name = name[1:]
                        key, val = text.split("=", 1)
                        text = f'{key}="{val[:-1] if val.endswith(chr(34)) else val}"'

                    if name == "modprobe" and text.startswith("blacklist="):
                        self.blacklist += [modname_normalize(b) for b in
                                           text[len("blacklist="):].split(",") if b]
                    else:
                        self.options.append((modname_normalize(name), text))
                param = value = None
                state, modname = "modname", i + 1
            i += 1

    def dump(self) -> str:
        """modprobe -c's configuration part (show_config in tools/modprobe.c)."""
        out = []
        out += [f"blacklist {b}\n" for b in self.blacklist]
        out += [f"install {m} {c}\n" for m, c in self.install]
        out += [f"remove {m} {c}\n" for m, c in self.remove]
        out += [f"alias {a} {m}\n" for a, m in self.aliases]
        out += [f"options {m} {o}\n" for m, o in self.options]
        for m, pre, post in self.softdeps:
            # kmod_softdep_get_plain_softdep: "pre: a b" then "post: c", no space between
            s = f"softdep {m} "
            if pre:
                s += "pre:" + "".join(" " + x for x in pre)
            if post:
                s += "post:" + "".join(" " + x for x in post)
            out.append(s + "\n")
        return "".join(out)


def _logical_lines(text: str):
    buf = ""
    for raw in text.splitlines():
        if raw.endswith("\\"):
            buf += raw[:-1]
            continue
        yield (buf + raw).strip()
        buf = ""
    if buf:
        yield buf.strip()


def config_files(root: str = "/", paths: list[str] | None = None,
                 moddir: str | None = None) -> list[str]:
    """The files kmod parses, in order: ``paths`` (``-C``: files or directories) replace the
    default directories under ``root``; one file per name, the first directory wins."""
    dirs = paths if paths else [os.path.join(root, d) for d in CONFIG_DIRS]
    chosen: dict[str, str] = {}
    for d in dirs:
        if os.path.isfile(d):
            chosen.setdefault(os.path.basename(d), d)
            continue
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            if n.startswith(".") or not n.endswith(".conf"):
                continue
            full = os.path.join(d, n)
            if os.path.isfile(full):
                chosen.setdefault(n, full)
    if moddir is not None:
        sd = os.path.join(moddir, "modules.softdep")
        if os.path.isfile(sd):
            chosen.setdefault("modules.softdep", sd)
    return [chosen[n] for n in sorted(chosen)]


def load_config(root: str = "/", paths: list[str] | None = None,
                moddir: str | None = None) -> Config:
    cfg = Config()
    for f in config_files(root, paths, moddir):
        try:
            with open(f, encoding="utf-8", errors="surrogateescape") as fh:
                cfg.parse(fh.read(), f)
        except OSError:
            continue
    return cfg
