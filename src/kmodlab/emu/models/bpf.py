"""BPF's registries that module inits join (kernel/bpf/btf.c): ``register_btf_kfunc_id_set``
and ``register_btf_id_dtor_kfuncs``.

A module's kfunc set is registered against the module's own BTF (``kset->owner``'s, which the
kernel parsed from the module's ``.BTF`` section at MODULE_STATE_COMING; Debian's modules are
built with their kernel, CONFIG_DEBUG_INFO_BTF_MODULES=y, so it parses).  With that BTF the
registration adds the set's ids to the module BTF's kfunc table for the program type's hook
and returns 0; nothing else observes it until a BPF program is loaded, which the sandbox
machine never does.  The sets are kept in ``emu.state["btf_kfuncs"]``.  What the sandbox does
not check: that the module's BTF really validates against vmlinux's (a module built against
other headers fails at COMING in the real kernel); and a module without BTF, where the
answer differs between stable releases (-ENOENT or a warning), stops as Unmodelled.
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..layouts import layout
from ..registry import data, model


def _owner(emu, owner: int, fn: str):
    mods = getattr(getattr(emu, "kernel", None), "modules", []) or []
    mod = next((m for m in mods if m.module_addr == owner), None)
    if mod is None:
        raise Unmodelled(f"{fn} (a set of vmlinux itself, or an owner that is not a loaded "
                         "module)", what=emu.what)
    if not mod.btf_data_size:
        raise Unmodelled(f"{fn} ({mod.name} has no BTF: the answer differs between stable "
                         "releases)", what=emu.what)
    return mod


@model("register_btf_kfunc_id_set")
def register_btf_kfunc_id_set(emu, prog_type, kset):
    mod = _owner(emu, emu.read_u(kset, 8), "register_btf_kfunc_id_set")
    emu.state.setdefault("btf_kfuncs", []).append({"module": mod.name,
                                                   "prog_type": prog_type & 0xFFFFFFFF,
                                                   "set": emu.read_u(kset + 8, 8)})
    emu.note(f"{mod.name}: program type {prog_type & 0xFFFFFFFF}")
    return 0


@model("register_btf_id_dtor_kfuncs")
def register_btf_id_dtor_kfuncs(emu, dtors, add_cnt, owner):
    mod = _owner(emu, owner, "register_btf_id_dtor_kfuncs")
    emu.state.setdefault("btf_dtor_kfuncs", []).append({"module": mod.name,
                                                        "count": add_cnt & 0xFFFFFFFF})
    return 0


# net/core/filter.c: nf_conntrack installs its BTF struct-access hook under this mutex
# (register_nf_conntrack_bpf / cleanup_nf_conntrack_bpf).  The mutex is unlocked at boot
# (owner 0, its wait list empty: pointing at itself); the hook is NULL until nf_conntrack sets
# it.  Both keep what module code writes.
LAYOUT = layout("bpf")


@data("nf_conn_btf_access_lock", 32, persist=True)
def nf_conn_btf_access_lock(emu) -> bytes:
    o = LAYOUT.of(emu)
    out = bytearray(o["mutex", "sizeof"])
    wl = emu.export_addr("nf_conn_btf_access_lock") + o["mutex", "wait_list"]
    at = o["mutex", "wait_list"]
    out[at:at + 16] = wl.to_bytes(8, "little") * 2
    return bytes(out)


@data("nfct_btf_struct_access", 8, persist=True)
def nfct_btf_struct_access(emu) -> bytes:
    return bytes(8)
