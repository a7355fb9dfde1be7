"""Modelled kernel functions and data, one file per kernel subsystem.

Importing this package registers every model (see ``emu/registry.py``).  Files mirror where the
kernel implements the function: printk.py (kernel/printk), vsprintf.py (lib/vsprintf.c),
slab.py (mm/slab_common.c, mm/slub.c), string.py (lib/string.c), thunks.py (arch/x86 entry
thunks, ftrace, static calls, stack protector), sched.py (current, preemption, might_sleep),
time.py (jiffies, delays, ktime), page.py (page_offset_base …), crypto.py (crypto/algapi,
shash, templates).
"""
from . import crypto, page, printk, sched, slab, string, thunks, time, vsprintf  # noqa: F401
