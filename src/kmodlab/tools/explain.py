"""insmod --explain: the seed's steps as the sandbox kernel just performed them, with its data.

Rendering only: load_module records (step, details) at its step boundaries; this file turns them
into prose.  The numbering follows the seed (sys_init_module, then load_module's parts).
"""
from __future__ import annotations


RELOC_NAMES = {0: "R_X86_64_NONE", 1: "R_X86_64_64", 2: "R_X86_64_PC32", 4: "R_X86_64_PLT32",
               10: "R_X86_64_32", 11: "R_X86_64_32S", 24: "R_X86_64_PC64"}


def _h(n: int) -> str:
    return f"{n:#018x}"


def _layout(name: str, lay) -> str:
    if not isinstance(lay, dict):
        lay = lay.__dict__
    if not lay.get("size"):
        return f"{name}: none"
    return (f"{name}: {lay['size']} bytes at {_h(lay['base'])} (text {lay['text_size']}, "
            f"text+rodata {lay['ro_size']}, +ro_after_init {lay['ro_after_init_size']})")


def _render(step: str, d: dict) -> list[str]:
    if step == "module_sig_check":
        if d.get("mangled"):
            return ["signature: not checked (IGNORE_* flags: a 'mangled' load), treated as unsigned"]
        if d["sig_ok"]:
            return [f"signature: trailer split off ({d['file_len'] - d['elf_len']} bytes); PKCS#7 "
                    f"verified against the kernel's key; ELF length {d['elf_len']}"]
        return [f"signature: none usable; the module will be marked unsigned (taint E); ELF length {d['elf_len']}"]
    if step == "elf_validity_check":
        return [f"ELF checks passed: relocatable x86-64 object, {d['sections']} section headers at offset {d['shoff']}"]
    if step in ("setup_load_info", "elf_validity_cache_copy"):
        out = []
        if step == "elf_validity_cache_copy":
            out.append(f"ELF checks passed: relocatable x86-64 object, {d['sections']} section "
                       f"headers at offset {d['shoff']}; one .modinfo, one symbol table, one "
                       f".gnu.linkonce.this_module of sizeof(struct module) = {d['sizeof_module']}")
        out += [f"load info: module '{d['name']}', symtab is section {d['symtab']}, "
               f".gnu.linkonce.this_module section {d['this_module']}, {d['versions']} __versions entries"
               + (f", per-CPU section {d['percpu']}" if d.get("percpu") else "")]
        out += [f"  .modinfo {x}" for x in d.get("modinfo", [])]
        return out
    if step == "check_modstruct_version":
        return [f"module_layout CRC: module {d['module_crc']:#010x} vs kernel {d['kernel_crc']:#010x}: same"
                if d.get("module_crc") is not None else "module_layout CRC: not listed (no __versions)"]
    if step == "early_mod_check":
        return ["blacklist, section headers rewritten, module_layout CRC (above), then:",
                f"vermagic: '{d['vermagic']}' vs kernel '{d['kernel_vermagic']}': accepted; "
                "no module of that name in the list (checked before allocating)"]
    if step == "layout_and_allocate" and d.get("mem"):
        out = ["layout: one allocation per module_memory type (each page-aligned, in enum "
               "order); symtab/strtab in init_data, the kallsyms core copy in data:"]
        for t, base, size in d["mem"]:
            out.append(f"  {t:<14} {size:8d} bytes at {_h(base)}")
        for name, addr, size in d.get("sections", []):
            out.append(f"    {name:<28} {_h(addr)} {size:8d} bytes")
        return out
    if step == "layout_and_allocate":
        out = [f"vermagic: '{d['vermagic']}' vs kernel '{d['kernel_vermagic']}': accepted",
               "layout (text, rodata, ro_after_init, data; page-aligned; kallsyms appended):",
               "  " + _layout("core", d["core"]), "  " + _layout("init", d["init"])]
        for name, addr, size in d.get("sections", []):
            out.append(f"    {name:<28} {_h(addr)} {size:8d} bytes")
        return out
    if step == "simplify_symbols":
        res = d.get("resolved", [])
        out = [f"symbols: {len(res)} undefined symbols resolved"
               + (f"; uses modules {', '.join(d['users_of'])}" if d.get("users_of") else "")]
        for name, value, owner in res[:40]:
            out.append(f"    {name:<32} = {_h(value)}  ({owner})")
        if len(res) > 40:
            out.append(f"    … and {len(res) - 40} more")
        return out
    if step == "apply_relocations":
        c = d.get("counts", {})
        total = sum(c.values())
        parts = ", ".join(f"{RELOC_NAMES.get(int(t), t)} {n}" for t, n in sorted(c.items(), key=lambda x: int(x[0])))
        return [f"relocations: {total} applied ({parts})"]
    if step == "parse_args":
        return [f"parameters: '{d['args']}' parsed against {len(d['params'])} declared "
                f"({', '.join(d['params']) or 'none'})"]
    if step == "mod_sysfs_setup":
        return ["list: added at the head of the module list (UNFORMED → COMING), notifier: COMING",
                "sysfs: /sys/module/<name> created (parameters, sections, notes, holders)"]
    if step == "do_init_module":
        if not d.get("init"):
            return ["init: none; state LIVE, notifier: LIVE"]
        ok = d["ret"] >= 0
        return [f"init at {_h(d['init'])} ran on the emulated CPU ({d['calls']} kernel calls) and "
                f"returned {d['ret']}: " + ("state LIVE, notifier LIVE, init memory freed"
                                             if ok else "state GOING, notifier GOING, module freed")]
    return [f"{step}: {d}"]


def explain(res, out) -> None:
    d = res.details or {}
    steps = d.get("steps", [])
    print("sys_finit_module/sys_init_module: permission check passed (CAP_SYS_MODULE)"
          if steps else "the syscall was refused before load_module", file=out)
    for i, (step, detail) in enumerate(steps, 1):
        lines = _render(step, detail)
        print(f"{i:2d}. {step}: {lines[0]}", file=out)
        for l in lines[1:]:
            print(f"    {l}", file=out)
    if not res.ok:
        print(f" ✗ {d.get('step') or 'load'} failed: errno {res.errno}"
              + (f" — {res.reason}" if res.reason else ""), file=out)
    else:
        print(" ✓ returned 0 to the caller", file=out)
