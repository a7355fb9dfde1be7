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
"""
from __future__ import annotations

from ...kernel.mm import PERCPU_BASE
from ..registry import data

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
