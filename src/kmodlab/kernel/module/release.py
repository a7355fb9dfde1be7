"""What differs by kernel release: the one place that says it.

load_module's steps are written once; where Linux changed a step between the releases kmodlab
supports (6.1 and 6.12), the step asks the :class:`Rules` of the profile's release instead of
comparing version numbers itself.  Each rule names the Linux release that introduced it, as far
as kmodlab has checked the sources (docs/linux-6.12.md); releases between 6.1 and 6.12 are not
supported profiles, so a rule's "since" is documentation, not a promise for 6.5.

=====================  =========================================  ==============================
rule                   6.1                                        6.12
=====================  =========================================  ==============================
mod_mem                core + init layouts, page-aligned inside   seven module_memory types, each
                       (MOD_* did not exist)                      its own allocation (6.4)
elf_validity           elf_validity_check, then setup_load_info   elf_validity_cache_copy: one
                                                                  pass that also counts .modinfo,
                                                                  symtab and this_module (6.4)
early_mod_check        check_modinfo inside layout_and_allocate,  blacklist, rewrite, modstruct,
                       taints before the uniqueness check         vermagic and a first duplicate
                                                                  check before allocating (6.4)
late_taints            only E after add_unformed_module           O, retpoline, C, K, P, N, E and
                                                                  the licence special names after
                                                                  add_unformed_module (6.4)
(idempotent finit)     no                                         same file twice at once: one
                                                                  load, one result (6.6); not a
                                                                  rule: the sandbox runs one
                                                                  load at a time
decompress             no (CONFIG_MODULE_DECOMPRESS absent)       the configured format (xz)
=====================  =========================================  ==============================
"""
from __future__ import annotations

import re
from dataclasses import dataclass

SUPPORTED = ((6, 1), (6, 12))


def kernel_version(release: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a ``uname -r`` string: "6.12.118+deb13-amd64" → (6, 12, 118);
    Debian 12's "6.1.0-57-amd64" → (6, 1, 0)."""
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release)
    if not m:
        return (0, 0, 0)
    return int(m[1]), int(m[2]), int(m[3] or 0)


@dataclass(frozen=True)
class Rules:
    """The release-dependent behaviour of kernel/module/ for one profile."""
    version: tuple[int, int, int]
    mod_mem: bool                 # struct module_memory mem[MOD_MEM_NUM_TYPES]
    elf_validity_cache: bool      # elf_validity_cache_copy (with the this_module size check)
    early_mod_check: bool         # check_modinfo + duplicate check before layout_and_allocate
    late_taints: bool             # module_augment_kernel_taints after add_unformed_module
    decompress: str | None        # "xz", "zstd", "gzip" when CONFIG_MODULE_DECOMPRESS=y
    sizeof_module: int | None     # sizeof(struct module), from the kernel's BTF

    @property
    def name(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"


def rules_for(profile) -> Rules:
    """The rules of the profile's release (cached on the profile)."""
    if profile._rules is not None:
        return profile._rules
    v = kernel_version(profile.release)
    since = lambda *rel: v[:len(rel)] >= rel          # noqa: E731
    decompress = None
    if profile.config.get("MODULE_DECOMPRESS") == "y":
        for opt, fmt in (("MODULE_COMPRESS_XZ", "xz"), ("MODULE_COMPRESS_ZSTD", "zstd"),
                         ("MODULE_COMPRESS_GZIP", "gzip")):
            if profile.config.get(opt) == "y":
                decompress = fmt
    rules = Rules(version=v, mod_mem=since(6, 4), elf_validity_cache=since(6, 4),
                  early_mod_check=since(6, 4), late_taints=since(6, 4),
                  decompress=decompress,
                  sizeof_module=profile.struct_size("module"))
    profile._rules = rules
    return rules
