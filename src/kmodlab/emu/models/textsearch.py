"""Small kernel registries: text search algorithms (lib/textsearch.c) and quota formats
(fs/quota/dquot.c).

- ``textsearch_register(ops)``: -EINVAL unless name, find, init, get_pattern and get_pattern_len
  are all set (destroy is optional); -EEXIST when an algorithm of that name is registered; else listed (the ``list`` link
  into the kernel's static ``ts_ops`` is not written; the registry is
  ``emu.state["textsearch"]``, name → ops).  Debian builds no algorithm into vmlinux (ts_kmp,
  ts_bm, ts_fsm are modules).  ``textsearch_unregister``: -ENOENT when not listed.
  ``struct ts_ops`` (Debian 6.1 amd64 BTF, 72 bytes): name 0, init 8, find 16, destroy 24,
  get_pattern 32, get_pattern_len 40, owner 48, list 56.
- ``register_quota_format(fmt)`` pushes the format on the head of ``quota_formats``
  (``qf_next`` = the previous head; Debian builds no format into vmlinux — QFMT_V1/V2 are
  modules — so the first one's next is NULL) and returns 0; there is no duplicate check in
  6.1.  ``unregister_quota_format`` unlinks it.  The list is ``emu.state["quota_formats"]``
  (head first).  ``struct quota_format_type`` (32 bytes): qf_fmt_id 0, qf_ops 8, qf_owner 16,
  qf_next 24.
"""
from __future__ import annotations

from ..registry import model

EINVAL, EEXIST, ENOENT = 22, 17, 2
TS_NAME, TS_INIT, TS_FIND, TS_GET_PATTERN, TS_GET_PATTERN_LEN = 0, 8, 16, 32, 40
QF_FMT_ID, QF_NEXT = 0, 24


def _ts(emu) -> dict:
    return emu.state.setdefault("textsearch", {})


@model("textsearch_register")
def textsearch_register(emu, ops):
    name_p = emu.read_u(ops + TS_NAME, 8)
    if not name_p or not all(emu.read_u(ops + o, 8) for o in (TS_FIND, TS_INIT, TS_GET_PATTERN,
                                                                TS_GET_PATTERN_LEN)):
        return -EINVAL
    name = emu.cstr(name_p, 256).decode("latin-1")
    if name in _ts(emu):
        return -EEXIST
    _ts(emu)[name] = ops
    emu.note(name)
    return 0


@model("textsearch_unregister")
def textsearch_unregister(emu, ops):
    for name, o in list(_ts(emu).items()):
        if o == ops:
            del _ts(emu)[name]
            return 0
    return -ENOENT


def _qf(emu) -> list:
    return emu.state.setdefault("quota_formats", [])


@model("register_quota_format")
def register_quota_format(emu, fmt):
    fmts = _qf(emu)
    emu.write_u(fmt + QF_NEXT, 8, fmts[0] if fmts else 0)
    fmts.insert(0, fmt)
    emu.note(f"format id {emu.read_s(fmt + QF_FMT_ID, 4)}")
    return 0


@model("unregister_quota_format")
def unregister_quota_format(emu, fmt):
    fmts = _qf(emu)
    if fmt not in fmts:
        return
    i = fmts.index(fmt)
    if i > 0:
        emu.write_u(fmts[i - 1] + QF_NEXT, 8, emu.read_u(fmt + QF_NEXT, 8))
    fmts.pop(i)
