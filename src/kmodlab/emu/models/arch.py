"""What the booted x86-64 machine is (arch/x86/kernel/setup.c, smpboot.c, kernel/cpu.c,
arch/x86/xen/enlighten.c, arch/x86/kernel/acpi/boot.c): facts module code reads as variables.

The sandbox machine is the one the QEMU oracle boots Debian's kernel on: one CPU (``-smp 1``),
booted with ACPI, not a Xen guest.  So:

- ``nr_cpu_ids`` is 1 and ``__num_online_cpus`` 1; in ``__cpu_possible_mask``,
  ``__cpu_online_mask``, ``__cpu_present_mask`` and ``__cpu_active_mask`` only CPU 0's bit is
  set.  Only each mask's first word is modelled: the kernel's cpumask helpers stop at
  nr_cpu_ids, and a read beyond the first 64 CPUs is an unmodelled access, never zeros made up.
- ``__per_cpu_offset[0]`` is CPU 0's per-CPU base (the value of ``this_cpu_off``, see
  sched.py); the other CPUs' entries do not exist on this machine and stay unmodelled.
- ``xen_domain_type`` is XEN_NATIVE (0): ``xen_domain()`` is false, as on any machine that is
  not a Xen guest.
- ``acpi_disabled`` is 0: the kernel booted with ACPI (Debian's default, QEMU's PC has it).
- The CPU is QEMU 7.2's TCG ``-cpu max``: "AuthenticAMD", family 15, model 107, stepping 1,
  "QEMU TCG CPU version 2.5+", with SVM, AVX2, AES, no AVX-512.  ``boot_cpu_data`` (struct
  cpuinfo_x86, the kernel's own view of it: vendor, family, model, the x86_capability words
  with the bits the kernel synthesised or cleared, cache sizes, loops_per_jiffy …) holds the
  bytes read from each real guest through /proc/kcore (booted ``nokaslr``; loops_per_jiffy
  is that boot's calibration), per release: 288 bytes in 6.1; 6.12's 328-byte layout (x86_vfm union first, ``topo`` from
  offset 224) as the second part, mapped only where the BTF has ``topo``.  A release not
  recorded gets no bytes (every read is an unmodelled access, not zeros).
- ``x86_match_cpu`` walks the module's table as arch/x86/kernel/cpu/match.c does in both
  releases (the stable backport ends the table at the first entry without
  X86_CPU_ID_FLAG_ENTRY_VALID): vendor (X86_VENDOR_ANY 0xffff), family, model (ANY 0),
  stepping bitmap (ANY 0), feature bit (ANY 0) against that boot_cpu_data; NULL if none.
- Memory: the mass oracle's guest, ``-m 2G`` (kmodlab.oracle.mass.MEMORY: the machine whose
  loads the sandbox is compared with); ``_totalram_pages`` is what each real guest's kernel
  counted (MemTotal / 4 kB: 6.1 503600 pages, 6.12 505308; at ``-m 512M`` they were 117104
  and 118812, and jfs's "nTxBlock = 3659" against the mass run's 8192 showed the difference);
  ``si_meminfo`` fills struct sysinfo as mm/show_mem.c does, with the guest's free, shared and
  buffer pages as /proc/meminfo read them after boot (mem_unit PAGE_SIZE, no highmem).
"""
from __future__ import annotations

from ...kernel.mm import PAGE_SIZE, PERCPU_BASE
from ..layouts import layout
from ..registry import data, data_field, model

CPU0 = 1                  # the mask word with CPU 0's bit
XEN_NATIVE = 0


def _u(v: int, n: int) -> bytes:
    return v.to_bytes(n, "little")


@data("nr_cpu_ids", 4)
def nr_cpu_ids(emu) -> bytes:
    return _u(1, 4)


@data("__num_online_cpus", 4)
def num_online_cpus(emu) -> bytes:
    return _u(1, 4)


def _mask(name: str) -> None:
    @data(name, 8)
    def mask(emu) -> bytes:
        return _u(CPU0, 8)
    mask.__name__ = name.strip("_")


for _name in ("__cpu_possible_mask", "__cpu_online_mask", "__cpu_present_mask",
              "__cpu_active_mask"):
    _mask(_name)


@data("__per_cpu_offset", 8)
def per_cpu_offset(emu) -> bytes:
    return _u(PERCPU_BASE, 8)


@data("xen_domain_type", 4)
def xen_domain_type(emu) -> bytes:
    return _u(XEN_NATIVE, 4)


@data("acpi_disabled", 4)
def acpi_disabled(emu) -> bytes:
    return _u(0, 4)


# --- the CPU (arch/x86/kernel/cpu/common.c boot_cpu_data, cpu/match.c) ------------------------
LAYOUT = layout("arch")
BOOT_CPU_DATA = {            # /proc/kcore at boot_cpu_data, booted nokaslr (2026-12-04)
    (6, 1): bytes.fromhex(
        "0f026b01000400000000000000000000000000000000000000000000392800ff0a0000800d000000"
        "fdfbcb0ffdfbd3ed00000000104035060b32d8fe00000000750100000020080000800000a943d801"
        "0500000020100000000000000000000004000000010001101c020080000000000000000000000000"
        "000000000000000040ad01000000000041757468656e746963414d440000000051454d5520544347"
        "204350552076657273696f6e20322e352b0000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000002000040000000ffffffffffffffffffffffff00000000"
        "20b19e00000000000000000000000000010000000000400000000000000000000000000000000000"
        "6500000128000000"),
    (6, 12): bytes.fromhex(
        "6b0f020001000000000400000000000000000000000000000000000000000000392800000a000080"
        "0d00000000000000fdfbcb0ffdfbd3ed00000000104071060b32d8fe000000007501000000200800"
        "00800000a943d8010500000020100000000000000000000004000000010001101c02008000000000"
        "0000000000000000040000000000000040ad01000000000041757468656e746963414d4400000000"
        "51454d5520544347204350552076657273696f6e20322e352b000000000000000000000000000000"
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "ff0000000000000000000000000000000000000000000000ffff00000002000040000000ffffffff"
        "ffffffffffffffff0000000000000000c0b09e000000000000000000000000004000000000000000"
        "6500000128000000"),
}
TOTALRAM_PAGES = {(6, 1): 2014400 // 4, (6, 12): 2021232 // 4}      # /proc/meminfo MemTotal, -m 2G
# /proc/meminfo of the same guests after boot, in pages: MemFree, Shmem, Buffers
MEMINFO_PAGES = {(6, 1): (1973636 // 4, 2948 // 4, 0), (6, 12): (1985576 // 4, 3108 // 4, 0)}
FIRST_PART = 288                     # sizeof(struct cpuinfo_x86) in 6.1; 6.12's first 288 bytes
X86_VENDOR_ANY, X86_CPU_ID_FLAG_ENTRY_VALID = 0xFFFF, 1


def _release(emu) -> tuple[int, int]:
    return tuple(emu.kernel_version[:2])


def cpuinfo(emu) -> bytes:
    """This release's boot_cpu_data bytes (b"" if the booted guest of that release was not
    recorded)."""
    return BOOT_CPU_DATA.get(_release(emu), b"")


@data("boot_cpu_data", FIRST_PART)
def boot_cpu_data(emu) -> bytes:
    return cpuinfo(emu)[:FIRST_PART]


# --- EFI (drivers/firmware/efi/efi.c) ---------------------------------------------------------
# The oracle's guests boot through QEMU's BIOS, not EFI: ``efi.flags`` has no bit (no EFI_BOOT,
# no EFI_RUNTIME_SERVICES), and efisubsys_init clears ``efi.runtime_supported_mask`` (its
# static value is EFI_RT_SUPPORTED_ALL) because runtime services are off.  Only these two
# fields are readable; the table addresses and the runtime entry points stay unmodelled.
@data_field("efi", 12, 4, member=("efi", "runtime_supported_mask"))
def efi_runtime_supported_mask(emu) -> bytes:
    return bytes(4)


@data_field("efi", 256, 8, member=("efi", "flags"))
def efi_flags(emu) -> bytes:
    return bytes(8)


@data_field("boot_cpu_data", 224, 104, member=("cpuinfo_x86", "topo"))
def boot_cpu_data_tail(emu) -> bytes:
    """6.12's cpuinfo_x86 from ``topo`` (224) to its end (328); 6.1 has no ``topo``."""
    return cpuinfo(emu)[224:328]


def _cpu_field(emu, member: str, size: int = 1) -> int:
    raw = cpuinfo(emu)
    if not raw:
        from ..errors import Unmodelled
        raise Unmodelled(f"{emu._model_name} (the booted CPU of this kernel release was not "
                         "recorded)", what=emu.what)
    off = LAYOUT.of(emu)["cpuinfo_x86", member]
    return int.from_bytes(raw[off:off + size], "little")


def cpu_has(emu, bit: int) -> bool:
    word = _cpu_field(emu, "x86_capability", 4) if bit < 32 else None
    if word is None:
        raw = cpuinfo(emu)
        off = LAYOUT.of(emu)["cpuinfo_x86", "x86_capability"] + bit // 8
        return bool(raw[off] >> (bit % 8) & 1)
    return bool(word >> bit & 1)


@model("x86_match_cpu")
def x86_match_cpu(emu, match):
    o = LAYOUT.of(emu)
    step = o["x86_cpu_id", "sizeof"]
    vendor = _cpu_field(emu, "x86_vendor")
    family, model_ = _cpu_field(emu, "x86"), _cpu_field(emu, "x86_model")
    stepping = _cpu_field(emu, "x86_stepping")
    m = match
    while emu.read_u(m + o["x86_cpu_id", "flags"], 2) & X86_CPU_ID_FLAG_ENTRY_VALID:
        def f(name):
            return emu.read_u(m + o["x86_cpu_id", name], 2)
        if ((f("vendor") == X86_VENDOR_ANY or f("vendor") == vendor)
                and (not f("family") or f("family") == family)
                and (not f("model") or f("model") == model_)
                and (not f("steppings") or f("steppings") >> stepping & 1)
                and (not f("feature") or cpu_has(emu, f("feature")))):
            emu.note(f"entry {(m - match) // step}")
            return m
        m += step
    emu.note("no match")
    return 0


# --- memory (mm/page_alloc.c _totalram_pages, mm/show_mem.c si_meminfo) -------------------------
@data("_totalram_pages", 8)
def totalram_pages(emu) -> bytes:
    return _u(TOTALRAM_PAGES.get(_release(emu), TOTALRAM_PAGES[(6, 1)]), 8)


@model("si_meminfo")
def si_meminfo(emu, val):
    o = LAYOUT.of(emu)
    rel = _release(emu)
    free, shared, buffers = MEMINFO_PAGES.get(rel, MEMINFO_PAGES[(6, 1)])
    for member, v, n in (("totalram", TOTALRAM_PAGES.get(rel, TOTALRAM_PAGES[(6, 1)]), 8),
                         ("sharedram", shared, 8), ("freeram", free, 8),
                         ("bufferram", buffers, 8), ("totalhigh", 0, 8), ("freehigh", 0, 8),
                         ("mem_unit", PAGE_SIZE, 4)):
        emu.write_u(val + o["sysinfo", member], n, v)


# --- XSAVE state components (arch/x86/kernel/fpu/xstate.c) ------------------------------------
# Both guests print "x86/fpu: Enabled xstate features 0x21f" at boot: x87, SSE, AVX, the two MPX
# components and PKRU (no AVX-512, no AMX).  The names of components 0-10 are the same in 6.1
# and 6.12 (xfeature_names[]); a module asking about a higher one stops by name.
XSTATE_MAX_FEATURES = 0x21F
XFEATURE_NAMES = ("x87 floating point registers", "SSE registers", "AVX registers",
                  "MPX bounds registers", "MPX CSR", "AVX-512 opmask", "AVX-512 Hi256",
                  "AVX-512 ZMM_Hi256", "Processor Trace (unused)",
                  "Protection Keys User registers", "PASID state")
X86_FEATURE_XSAVE = 4 * 32 + 26


def _kernel_string(emu, text: str) -> int:
    """A string constant of the kernel's own (rodata), at a stable address of the emulator."""
    strings = emu.__dict__.setdefault("_kstrings", {})
    a = strings.get(text)
    if a is None:
        raw = text.encode() + b"\0"
        a = strings[text] = emu.priv_alloc(len(raw), 8)
        emu.write(a, raw)
    return a


@model("cpu_has_xfeatures")
def cpu_has_xfeatures(emu, needed, feature_name):
    """1 if every component in ``needed`` is enabled; else 0 and, if ``feature_name`` is not
    NULL, *feature_name = the highest missing component's name ("XSAVE" without XSAVE)."""
    if not cpu_has(emu, X86_FEATURE_XSAVE):
        name = "XSAVE"
    else:
        missing = needed & ~XSTATE_MAX_FEATURES & ((1 << 64) - 1)
        if not missing:
            return 1
        idx = missing.bit_length() - 1
        if idx >= len(XFEATURE_NAMES):
            from ..errors import Unmodelled
            raise Unmodelled(f"cpu_has_xfeatures (component {idx}'s name differs by release)",
                             what=emu.what)
        name = XFEATURE_NAMES[idx]
    if feature_name:
        emu.write_u(feature_name, 8, _kernel_string(emu, name))
    emu.note(f"missing {name}")
    return 0


# --- hypervisors (arch/x86/kernel/cpu/hypervisor.c, arch/x86/hyperv) -----------------------------
# QEMU's TCG sets CPUID's hypervisor bit but answers no hypervisor's signature that the kernel
# knows (neither guest logs "Hypervisor detected"): x86_hyper_type is X86_HYPER_NATIVE.
X86_HYPER_NATIVE, X86_HYPER_MS_HYPERV = 0, 2


@data("x86_hyper_type", 4)
def x86_hyper_type(emu) -> bytes:
    return _u(X86_HYPER_NATIVE, 4)


@model("hv_is_hyperv_initialized")
def hv_is_hyperv_initialized(emu):
    return 0                          # x86_hyper_type != X86_HYPER_MS_HYPERV: false


# --- ACPI _OSI (drivers/acpi/osi.c) --------------------------------------------------------------
# acpi_gbl_osi_data rises only when the firmware's AML asks _OSI about a Windows release; QEMU's
# DSDT (both guests: 6,476 bytes, no "_OSI" in it) never does, so it stays 0.
@model("acpi_osi_is_win8")
def acpi_osi_is_win8(emu):
    return 0


# --- the virtual terminal (drivers/tty/vt/vt.c) --------------------------------------------------
@data("fg_console", 4)
def fg_console(emu) -> bytes:
    """The foreground VT: console 0, the only one the oracle's guest has (no VT switch)."""
    return _u(0, 4)


# --- NUMA (mm/mempolicy.c, include/linux/topology.h) ---------------------------------------------
@data("numa_node", 4)
def numa_node(emu) -> bytes:
    """The per-CPU ``numa_node``: CPU 0 is on node 0 (the guest has one node)."""
    return _u(0, 4)


# --- the ACPI namespace (drivers/acpi/acpica/nsxfeval.c) -------------------------------------------
def acpi_ids(emu) -> list[list[str]]:
    """Each ACPI device of the booted guest as [HID, CID, …] (its recorded modalias
    "acpi:HID:CID:…:"), for the profile's release."""
    from ...kernel.registrations import boot_views
    prof = getattr(getattr(emu, "kernel", None), "profile", None)
    devs = boot_views(getattr(prof, "release", "6.1.0-56-amd64")).get("devices", {}).get("acpi")
    if devs is None:
        from ..errors import Unmodelled
        raise Unmodelled(f"{emu._model_name} (the booted guest's ACPI devices were not "
                         "recorded)", what=emu.what)
    return [[x for x in (d["modalias"] or "")[5:].split(":") if x] for d in devs.values()
            if (d["modalias"] or "").startswith("acpi:")]


@model("acpi_get_devices")
def acpi_get_devices(emu, hid, user_function, context, return_value):
    """Walks the namespace calling ``user_function`` for each present device whose _HID or
    _CID is ``hid``: none on the guest → AE_OK (0) with no call; a device that matches would
    need its acpi_handle, which the sandbox does not have: that stops by name."""
    want = emu.cstr(hid, 16).decode("latin-1") if hid else ""
    if not want:
        from ..errors import Unmodelled
        raise Unmodelled("acpi_get_devices (every device: NULL hid)", what=emu.what)
    hits = [ids for ids in acpi_ids(emu) if want in ids]
    if hits:
        from ..errors import Unmodelled
        raise Unmodelled(f"acpi_get_devices ({want}: the guest has such a device; its "
                         "acpi_handle is not modelled)", what=emu.what)
    emu.note(f"{want}: no such device")
    return 0
