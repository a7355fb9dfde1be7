"""Backing device info (mm/backing-dev.c): ``bdi_alloc``, ``bdi_register``, ``bdi_unregister``,
``bdi_put``, ``bdi_dev_name`` — what mtd's init (mtd_bdi_init) and exit do.

* ``bdi_alloc(node)``: a zeroed ``struct backing_dev_info`` as bdi_init leaves it — kref 1,
  ``min_ratio`` 0, ``max_ratio`` 100 (Linux 6.3+ scales ratios by BDI_RATIO_SCALE = 10000:
  1000000 on 6.12), ``max_prop_frac`` FPROP_FRAC_BASE (1024), ``bdi_list`` and ``wb_list``
  empty, ``wb_waitq`` initialised, 6.12's ``last_bdp_sleep`` = jiffies — then
  ``capabilities`` BDI_CAP_WRITEBACK | BDI_CAP_WRITEBACK_ACCT, ``ra_pages`` = ``io_pages`` =
  VM_READAHEAD_PAGES (128 KiB / 4 KiB = 32).  The embedded ``struct bdi_writeback`` (its
  percpu counters, delayed works, cgroup links) and the laptop-mode timer are the writeback
  machinery's, which the sandbox does not run: they stay zeroed (module code does not read
  them).
* ``bdi_register(bdi, fmt, ...)``: 0 at once if ``bdi->dev`` is set; else the name is
  formatted into ``dev_name`` (vsnprintf, 64 bytes), a device of class bdi
  (/sys/class/bdi/<name>) is created and stored in ``bdi->dev``, WB_registered set in
  ``wb.state``; the device and the debugfs directory bdi/<name> that goes with it are
  recorded in ``emu.state["bdi"]`` (name → bdi, device).  The device is a zeroed struct
  device (module code only passes ``bdi->dev`` back to the kernel).  A name already
  registered by a module stops as Unmodelled (the kernel's duplicate-name report is not
  modelled).  ``bdi->id`` is the kernel's ++bdi_id_cursor, whose value after the booted
  kernel's own registrations the sandbox does not know: not written; nor are the kernel's
  bdi_tree and bdi_list links.
* ``bdi_unregister``: the device and debugfs directory go, ``dev`` = NULL, WB_registered
  cleared; ``bdi_put`` drops the reference and frees the bdi on the last one (release_bdi
  WARNs if it is still registered: Unmodelled here).
* ``bdi_dev_name``: ``dev_name`` of a registered bdi; the kernel's "(unknown)" string for
  one without ``dev`` is a static whose address is unknown: Unmodelled.

Layouts (Debian 6.1 amd64; 6.12 the same but for last_bdp_sleep 96 and wb 104):
``struct backing_dev_info`` {id 0, bdi_list 32, ra_pages 48, io_pages 56, refcnt 64,
capabilities 68, min_ratio 72, max_ratio 76, max_prop_frac 80, wb 96, wb_list 904,
wb_waitq 1008, dev 1032, dev_name 1040, owner 1104} (1160 bytes); ``struct bdi_writeback``
state 8.
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..layouts import layout
from ..registry import model
from .locking import init_list_head
from .time import jiffies_now
from .vsprintf import vsprintf

BDI_CAP_WRITEBACK, BDI_CAP_WRITEBACK_ACCT = 1 << 0, 1 << 1
VM_READAHEAD_PAGES = (128 * 1024) // 4096
FPROP_FRAC_BASE = 1 << 10
BDI_RATIO_SCALE = 10000
WB_REGISTERED = 0                      # enum wb_state: WB_registered is bit 0
DEV_NAME_LEN = 64
LAYOUT = layout("backing_dev")
BDI = "backing_dev_info"


def _o(emu, member: str, struct: str = BDI):
    return LAYOUT.of(emu)[struct, member]


def _bdis(emu) -> dict:
    return emu.state.setdefault("bdi", {})


@model("bdi_alloc")
def bdi_alloc(emu, node_id):
    bdi = emu.kmalloc(_o(emu, "sizeof"), zero=True)
    emu.write_u(bdi + _o(emu, "refcnt"), 4, 1)                  # kref_init
    scaled = emu.kernel_version >= (6, 3)
    emu.write_u(bdi + _o(emu, "max_ratio"), 4, 100 * (BDI_RATIO_SCALE if scaled else 1))
    emu.write_u(bdi + _o(emu, "max_prop_frac"), 4, FPROP_FRAC_BASE)
    init_list_head(emu, bdi + _o(emu, "bdi_list"))
    init_list_head(emu, bdi + _o(emu, "wb_list"))
    waitq = bdi + _o(emu, "wb_waitq")                            # init_waitqueue_head
    emu.write_u(waitq + _o(emu, "lock", "wait_queue_head"), 4, 0)
    init_list_head(emu, waitq + _o(emu, "head", "wait_queue_head"))
    if scaled:
        emu.write_u(bdi + _o(emu, "last_bdp_sleep"), 8, jiffies_now(emu))
    emu.write_u(bdi + _o(emu, "capabilities"), 4, BDI_CAP_WRITEBACK | BDI_CAP_WRITEBACK_ACCT)
    emu.write_u(bdi + _o(emu, "ra_pages"), 8, VM_READAHEAD_PAGES)
    emu.write_u(bdi + _o(emu, "io_pages"), 8, VM_READAHEAD_PAGES)
    return bdi


def _wb_state(emu, bdi: int) -> int:
    return bdi + _o(emu, "wb") + _o(emu, "state", "bdi_writeback")


@model("bdi_register")
def bdi_register(emu, bdi, fmt, *_):
    if emu.read_u(bdi + _o(emu, "dev"), 8):
        return 0
    name = vsprintf(emu, emu.cstr(fmt), emu.args_from(2))
    raw = name.encode("latin-1")[:DEV_NAME_LEN - 1]
    emu.write(bdi + _o(emu, "dev_name"), raw + b"\0")
    name = raw.decode("latin-1")
    bdis = _bdis(emu)
    if name in bdis:
        raise Unmodelled(f"bdi_register (a second bdi named {name}: the kernel's duplicate "
                         "device name report is not modelled)", what=emu.what)
    dev = emu.kmalloc(_o(emu, "sizeof", "device"), zero=True)
    emu.write_u(bdi + _o(emu, "dev"), 8, dev)
    st = _wb_state(emu, bdi)
    emu.write_u(st, 8, emu.read_u(st, 8) | 1 << WB_REGISTERED)
    bdis[name] = {"bdi": bdi, "dev": dev}
    emu.note(f"/sys/class/bdi/{name}")
    return 0


@model("bdi_unregister")
def bdi_unregister(emu, bdi):
    bdis = _bdis(emu)
    for name, b in list(bdis.items()):
        if b["bdi"] == bdi:
            del bdis[name]
            emu.kfree(b["dev"])
            emu.write_u(bdi + _o(emu, "dev"), 8, 0)
    st = _wb_state(emu, bdi)
    emu.write_u(st, 8, emu.read_u(st, 8) & ~(1 << WB_REGISTERED))
    if emu.read_u(bdi + _o(emu, "owner"), 8):
        raise Unmodelled("bdi_unregister (a bdi with an owner device: put_device of a device "
                         "the sandbox does not model)", what=emu.what)


@model("bdi_put")
def bdi_put(emu, bdi):
    ref = emu.read_u(bdi + _o(emu, "refcnt"), 4)
    if ref == 0:
        raise Unmodelled("bdi_put (refcount already 0: refcount_t underflow)", what=emu.what)
    emu.write_u(bdi + _o(emu, "refcnt"), 4, ref - 1)
    if ref - 1:
        return
    if emu.read_u(_wb_state(emu, bdi), 8) & 1 << WB_REGISTERED or \
            emu.read_u(bdi + _o(emu, "dev"), 8):
        raise Unmodelled("bdi_put (release_bdi of a registered bdi: its WARN_ON_ONCE is not "
                         "modelled)", what=emu.what)
    emu.kfree(bdi)


@model("bdi_dev_name")
def bdi_dev_name(emu, bdi):
    if not bdi or not emu.read_u(bdi + _o(emu, "dev"), 8):
        raise Unmodelled("bdi_dev_name (an unregistered bdi: the kernel's static "
                         "\"(unknown)\" string)", what=emu.what)
    return bdi + _o(emu, "dev_name")
