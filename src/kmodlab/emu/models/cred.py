"""Credentials (kernel/cred.c): prepare_kernel_cred, __put_cred, override_creds, revert_creds.

``prepare_kernel_cred(&init_task)`` (6.1 also takes NULL for the same thing; 6.12 warns and
returns NULL) gives a new ``struct cred`` copied from init_cred and made a kernel service's:
usage 1, every uid/gid 0 (root), securebits 0, no inheritable or ambient capability, the
permitted, effective and bounding sets full (CAP_FULL_SET: capabilities 0..40), no keyrings,
``jit_keyring`` KEY_REQKEY_DEFL_THREAD_KEYRING, ``user_ns`` &init_user_ns.  Not written (kernel
objects the profile does not locate): ``user`` (&root_user), ``ucounts`` (&init_ucounts),
``group_info`` (&init_groups), and the LSM blob security_prepare_creds would allocate
(``security``): NULL.  Another task's credentials are not modelled (Unmodelled, named).

``__put_cred`` (the last put_cred, inline in module code) frees it as put_cred_rcu does after
the grace period: its keyrings and request_key_auth key are put, the cred freed.
``override_creds``/``revert_creds`` switch ``current->cred``: the insmod task's own
credentials are not modelled (its cred pointer is NULL in the emulator's task_struct), so
overriding stops init by name.
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..layouts import layout
from ..registry import model

LAYOUT = layout("cred")
CAP_FULL_SET = (1 << 41) - 1          # CAP_LAST_CAP 40, in 6.1 and 6.12
KEY_REQKEY_DEFL_THREAD_KEYRING = 1
KEYRINGS = ("session_keyring", "process_keyring", "thread_keyring", "request_key_auth")


def _o(emu, member: str) -> int:
    return LAYOUT.of(emu)["cred", member]


@model("prepare_kernel_cred")
def prepare_kernel_cred(emu, daemon):
    if not daemon and emu.kernel_version >= (6, 2):
        emu.printk(4, f"WARNING: CPU: 0 PID: {emu.pid} at kernel/cred.c prepare_kernel_cred\n")
        return 0
    if daemon and daemon != emu.export_addr("init_task"):
        raise Unmodelled("prepare_kernel_cred (the credentials of a task other than init_task)",
                         what=emu.what)
    new = emu.kmalloc(LAYOUT.of(emu)["cred", "sizeof"], zero=True)
    emu.write_u(new + _o(emu, "usage"), 8, 1)
    for cap in ("cap_permitted", "cap_effective", "cap_bset"):
        emu.write_u(new + _o(emu, cap), 8, CAP_FULL_SET)
    emu.write_u(new + _o(emu, "jit_keyring"), 1, KEY_REQKEY_DEFL_THREAD_KEYRING)
    emu.write_u(new + _o(emu, "user_ns"), 8, emu.export_addr("init_user_ns") or 0)
    emu.note("init_cred's copy")
    return new


@model("__put_cred")
def __put_cred(emu, cred):
    """put_cred_rcu: keys put, the cred freed (usage must have reached 0, as the kernel's
    BUG_ON demands)."""
    if emu.read_u(cred + _o(emu, "usage"), 4):
        raise emu.oops(["kernel BUG at kernel/cred.c (__put_cred of a cred still in use)!",
                        "invalid opcode: 0000 [#1] PREEMPT SMP NOPTI"])
    from .keys import key_put
    for k in KEYRINGS:
        key_put(emu, emu.read_u(cred + _o(emu, k), 8))
    emu.kfree(cred)


@model("override_creds")
def override_creds(emu, new):
    raise Unmodelled("override_creds (the insmod task's own credentials)", what=emu.what)


@model("revert_creds")
def revert_creds(emu, old):
    raise Unmodelled("revert_creds (the insmod task's own credentials)", what=emu.what)
