"""/sys/module/<name>/ (kernel/module/sysfs.c and the module attributes of main.c)."""
from __future__ import annotations

import errno

from .internal import STATE_NAMES, Module, module_flags_taint


def builtin_sysfs_dirs(profile) -> set[str]:
    """Built-in code that has /sys/module/<name>: the importer read it from vmlinux (built-in
    parameters with a mode, by their prefix; built-in versions).  A profile imported before
    that falls back to modules.builtin.modinfo ('name.parmtype=…' / 'name.version=…'), which
    also names parameters without a sysfs file and misses MODULE_PARAM_PREFIX renames."""
    cached = getattr(profile, "_kmodlab_builtin_sysfs", None)
    if cached is not None:
        return cached
    if profile.builtin_sysfs:
        names = set(profile.builtin_sysfs)
        object.__setattr__(profile, "_kmodlab_builtin_sysfs", names)
        return names
    names = set()
    for raw in (profile.builtin_modinfo or b"").split(b"\0"):
        key = raw.split(b"=", 1)[0]
        mod, dot, field = key.partition(b".")
        if dot and field in (b"parmtype", b"version"):
            names.add(mod.decode("latin-1"))
    try:
        object.__setattr__(profile, "_kmodlab_builtin_sysfs", names)
    except Exception:
        pass
    return names


def builtin_has_sysfs_dir(profile, name: str) -> bool:
    return name in builtin_sysfs_dirs(profile)


def module_attrs(mod: Module) -> dict[str, str]:
    """The plain attribute files and their contents."""
    attrs = {
        "initstate": STATE_NAMES[mod.state] + "\n",
        "refcnt": f"{mod.module_refcount()}\n",
        "coresize": f"{mod.core.size}\n",
        "initsize": f"{mod.init_layout.size}\n",
        "taint": module_flags_taint(mod.taints) + "\n",
    }
    if mod.version is not None:
        attrs["version"] = mod.version + "\n"
    if mod.srcversion is not None:
        attrs["srcversion"] = mod.srcversion + "\n"
    return attrs


def listdir(mod: Module, sub: str) -> list[str]:
    if sub == "":
        names = ["uevent", "holders", "sections", "notes"] + list(module_attrs(mod))
        if any(p.perm for p in mod.params):
            names.append("parameters")
        return sorted(names)
    if sub == "holders":
        return list(mod.source_list)
    if sub == "sections":
        return list(mod.sections)
    if sub == "notes":
        return list(mod.notes)
    if sub == "parameters":
        return [p.name for p in mod.params if p.perm]
    raise OSError(errno.ENOENT, f"/sys/module/{mod.name}/{sub}")


def read(mod: Module, sub: str, param_reader) -> bytes:
    """Contents of /sys/module/<mod>/<sub>; ``param_reader(param)`` renders a parameter."""
    attrs = module_attrs(mod)
    if sub in attrs:
        return attrs[sub].encode()
    kind, _, leaf = sub.partition("/")
    if kind == "sections" and leaf in mod.sections:
        return f"0x{mod.sections[leaf]:016x}\n".encode()
    if kind == "notes" and leaf in mod.notes:
        return mod.notes[leaf]
    if kind == "parameters":
        for p in mod.params:
            if p.name == leaf and p.perm:
                return param_reader(p)
    if sub == "uevent":
        raise OSError(errno.EACCES, "uevent is write-only")
    if sub in ("holders", "sections", "notes", "parameters", ""):
        raise OSError(errno.EISDIR, sub)
    raise OSError(errno.ENOENT, f"/sys/module/{mod.name}/{sub}")
