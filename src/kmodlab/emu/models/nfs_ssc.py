"""The NFS server-side-copy helper (fs/nfs_common/nfs_ssc.c, built in): the table through
which knfsd reaches the NFS client modules' copy operations.

``nfs_ssc_client_tbl`` {``ssc_nfs4_ops``, ``ssc_nfs_ops``} is NULL at boot and keeps what the
client modules install: nfs's init calls nfs_ssc_register(ops) (→ ``ssc_nfs_ops``), nfsv4's
nfs42_ssc_register (→ ``ssc_nfs4_ops``); each unregister clears its pointer only if it still
holds those ops.  With CONFIG_NFS_V4_2 unset the four functions do nothing.
"""
from __future__ import annotations

from ..layouts import layout
from ..registry import data, model

LAYOUT = layout("nfs_ssc")
TBL = "nfs_ssc_client_tbl"
NFS4, NFS = ("nfs_ssc_client_ops_tbl", "ssc_nfs4_ops"), ("nfs_ssc_client_ops_tbl", "ssc_nfs_ops")


@data(TBL, 16, persist=True)
def nfs_ssc_client_tbl(emu) -> bytes:
    return bytes(16)


def _enabled(emu) -> bool:
    cfg = getattr(getattr(emu.kernel, "profile", None), "config", None) or {}
    return not cfg or cfg.get("NFS_V4_2") == "y"


def _slot(emu, member) -> int:
    return emu.export_addr(TBL) + LAYOUT.of(emu)[member]


def _register(emu, member, ops: int) -> None:
    if _enabled(emu):
        emu.write_u(_slot(emu, member), 8, ops)


def _unregister(emu, member, ops: int) -> None:
    if _enabled(emu) and emu.read_u(_slot(emu, member), 8) == ops:
        emu.write_u(_slot(emu, member), 8, 0)


@model("nfs_ssc_register")
def nfs_ssc_register(emu, ops):
    _register(emu, NFS, ops)


@model("nfs_ssc_unregister")
def nfs_ssc_unregister(emu, ops):
    _unregister(emu, NFS, ops)


@model("nfs42_ssc_register")
def nfs42_ssc_register(emu, ops):
    _register(emu, NFS4, ops)


@model("nfs42_ssc_unregister")
def nfs42_ssc_unregister(emu, ops):
    _unregister(emu, NFS4, ops)
