"""Networking registries a module fills in (emu/models/xfrm.py, gro.py, zones.py):
net/xfrm/xfrm_input.c, net/xfrm/xfrm_state.c, net/ipv4/xfrm4_protocol.c,
net/ipv6/xfrm6_protocol.c, net/core/gro.c, net/ipv4/protocol.c, net/ipv6/protocol.c and
mm/page_alloc.c's nr_free_buffer_pages (the mass oracle's 2 GiB guest).

Real Debian modules load through the sandbox kernel and their logs are compared with the real
kernel's record (tests/data/mass_6.1.0-56.json.gz); C snippets (structures laid out as Linux
6.1's) check the rules.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from test_emu_models import _exports, insmod, kernel, run, tree  # noqa: F401  (fixtures)
from test_emu_support import needs_gcc

MASS = Path(__file__).parent / "data" / "mass_6.1.0-56.json.gz"
NAMES = ["nr_free_buffer_pages", "xfrm_input_register_afinfo", "xfrm_input_unregister_afinfo",
         "xfrm_register_type", "xfrm_unregister_type", "xfrm4_protocol_register",
         "xfrm4_protocol_deregister", "inet_add_offload", "inet_del_offload",
         "dev_add_offload", "dev_remove_offload", "inet_add_protocol"]
EX = _exports(*[(n, 0xFFFFFFFF81A70000 + 0x40 * i) for i, n in enumerate(NAMES)])

HEADER = r'''
struct afinfo { unsigned char family, is_ipip; void *callback; };
struct xtype { void *owner; unsigned char proto, flags; };
struct x4proto { void *h[4]; struct x4proto *next; int priority; };
struct poff { unsigned short type, priority; void *cb[3]; void *list[2]; };
unsigned long nr_free_buffer_pages(void);
int xfrm_input_register_afinfo(const struct afinfo *);
int xfrm_input_unregister_afinfo(const struct afinfo *);
int xfrm_register_type(const struct xtype *, unsigned short);
void xfrm_unregister_type(const struct xtype *, unsigned short);
int xfrm4_protocol_register(struct x4proto *, unsigned char);
int xfrm4_protocol_deregister(struct x4proto *, unsigned char);
int inet_add_offload(const void *, unsigned char);
int inet_del_offload(const void *, unsigned char);
void dev_add_offload(struct poff *);
void dev_remove_offload(struct poff *);
int inet_add_protocol(const void *, unsigned char);
long r[16];
'''


def _r(b, n):
    addr = b.syms["r"]
    return [int.from_bytes(b.mm.read(addr + 8 * i, 8), "little", signed=True) for i in range(n)]


@pytest.fixture(scope="module")
def real():
    return {r["name"]: r for r in json.load(gzip.open(MASS))["real"]["loads"]}


# --- rules (C snippets) ---------------------------------------------------------------------------

@needs_gcc
def test_nr_free_buffer_pages_is_the_2g_guests_zones():
    """DMA (3840 managed, high 128) + DMA32 (499760, high 16765) of the 6.1 guest."""
    ret, *_ = run(HEADER + "long f(void) { return nr_free_buffer_pages(); }", EX, state={})
    assert ret == 486707


@needs_gcc
def test_nr_free_buffer_pages_on_612(profile_612):
    ret, *_ = run(HEADER + "long f(void) { return nr_free_buffer_pages(); }", EX, state={},
                  profile=profile_612)
    assert ret == 488415


@needs_gcc
def test_xfrm_input_afinfo_slots():
    """The plain AF_INET/AF_INET6 slots are the kernel's; the is_ipip row is free once."""
    src = HEADER + r'''
    struct afinfo plain = { 2, 0 }, ipip = { 2, 1 }, ipip2 = { 2, 1 };
    long f(void) {
        r[0] = xfrm_input_register_afinfo(&plain);
        r[1] = xfrm_input_register_afinfo(&ipip);
        r[2] = xfrm_input_register_afinfo(&ipip2);
        r[3] = xfrm_input_unregister_afinfo(&ipip2);
        r[4] = xfrm_input_unregister_afinfo(&ipip);
        r[5] = xfrm_input_register_afinfo(&ipip2);
        return 0;
    }'''
    _ret, _log, emu, b = run(src, EX, state={})
    assert _r(b, 6) == [-17, 0, -17, -22, 0, 0]
    assert emu.state["xfrm_input_afinfo"]["1/2"] == b.syms["ipip2"]


@needs_gcc
def test_xfrm_register_type_families_and_slots():
    src = HEADER + r'''
    struct xtype esp = { 0, 50 }, ah = { 0, 51 };
    long f(void) {
        r[0] = xfrm_register_type(&esp, 99);         /* no afinfo for that family */
        r[1] = xfrm_register_type(&esp, 2);
        r[2] = xfrm_register_type(&ah, 10);
        xfrm_unregister_type(&esp, 2);
        return 0;
    }'''
    _ret, _log, emu, b = run(src, EX, state={})
    assert _r(b, 3) == [-97, 0, 0]
    assert emu.state["xfrm_types"] == {"10/ah": b.syms["ah"]}


@needs_gcc
def test_xfrm4_protocol_chain_by_priority():
    """Higher priority first, equal priority -EEXIST, next links written in the handlers; the
    first handler adds the xfrm layer's protocol 50 (ESP), the last one's removal drops it."""
    src = HEADER + r'''
    struct x4proto a = { .priority = 0 }, b = { .priority = 10 }, c = { .priority = 10 };
    long f(void) {
        r[0] = xfrm4_protocol_register(&a, 50);
        r[1] = xfrm4_protocol_register(&b, 50);
        r[2] = xfrm4_protocol_register(&c, 50);
        r[3] = b.next == &a;
        r[4] = a.next == 0;
        r[5] = xfrm4_protocol_register(&a, 17);       /* no xfrm list for UDP */
        r[6] = inet_add_protocol(&a, 50);             /* taken by xfrm4 */
        r[7] = xfrm4_protocol_deregister(&b, 50);
        r[8] = xfrm4_protocol_deregister(&b, 50);
        r[9] = xfrm4_protocol_deregister(&a, 50);
        r[10] = inet_add_protocol(&a, 50);            /* free again */
        return 0;
    }'''
    _ret, _log, emu, b = run(src, EX, state={})
    assert _r(b, 11) == [0, 0, -17, 1, 1, -22, -1, 0, -2, 0, 0]
    assert emu.state["xfrm4_handlers"]["50"] == []


@needs_gcc
def test_xfrm4_protocol_register_when_the_slot_is_taken():
    """Another handler holds inet_protos[51]: pr_err and -EAGAIN (the handler stays listed)."""
    src = HEADER + r'''
    struct x4proto a = { .priority = 0 }; long other;
    long f(void) { inet_add_protocol(&other, 51); return xfrm4_protocol_register(&a, 51); }'''
    ret, log, emu, b = run(src, EX, state={})
    assert ret == -11
    assert [t for _lvl, t in log] == ["xfrm4_protocol_register: can't add protocol"]


@needs_gcc
def test_offloads():
    """inet_offloads: TCP's slot is the kernel's; packet offloads kept in priority order;
    removing an unlisted one logs the kernel's warning."""
    src = HEADER + r'''
    long x;
    struct poff p1 = { 0x4f89, 10 }, p2 = { 0x0008, 5 }, p3;
    long f(void) {
        r[0] = inet_add_offload(&x, 6);
        r[1] = inet_add_offload(&x, 50);
        r[2] = inet_del_offload(&p1, 50);
        r[3] = inet_del_offload(&x, 50);
        dev_add_offload(&p1); dev_add_offload(&p2);
        dev_remove_offload(&p3);
        return 0;
    }'''
    _ret, log, emu, b = run(src, EX, state={})
    assert _r(b, 4) == [-1, 0, -1, 0]
    assert list(emu.state["packet_offloads"]) == [str(b.syms["p2"]), str(b.syms["p1"])]
    assert emu.state["packet_offloads"][str(b.syms["p1"])]["type"] == 0x894F
    assert len(log) == 1 and "dev_remove_offload: " in log[0][1] and "not found" in log[0][1]


# --- real modules -------------------------------------------------------------------------------

MATCHING = ["ip_vs", "ip_vs_rr", "ip_vs_sh", "xt_ipvs", "tunnel4", "tunnel6", "xfrm4_tunnel",
            "xfrm6_tunnel", "nsh", "ah4", "esp4", "esp4_offload", "ipcomp", "ah6", "esp6",
            "esp6_offload", "ipcomp6", "xfrm_interface"]


@pytest.mark.parametrize("mod", MATCHING)
def test_init_completes_as_on_the_real_kernel(kernel, machine, tree, real, mod):
    if "libcrc32c" in tree[1][mod]:
        # libcrc32c's crypto_alloc_shash("crc32c") has the kernel request_module it; this
        # fixture's sandbox has no module tree to run modprobe on, so load it first
        assert insmod(kernel, tree, "crc32c_generic").errno == 0
    r = insmod(kernel, tree, mod)
    assert r.errno == real[mod]["errno"] == 0, r.reason
    mine = [x.strip() for x in r.log if not x.startswith("kmodlab:")]
    assert mine == real[mod]["log"]


def test_tunnel4_tunnel6_ipip_afinfo_and_exit(kernel, machine, tree):
    for m in ("tunnel4", "tunnel6"):
        assert insmod(kernel, tree, m).errno == 0
    t = machine.emu_state["xfrm_input_afinfo"]
    assert t["0/2"] == 0 and t["0/10"] == 0            # the kernel's own
    assert t["1/2"] and t["1/10"]
    assert machine.emu_state["inet6_protos"].get("41") and machine.emu_state["inet6_protos"].get("4")
    for m in ("tunnel6", "tunnel4"):
        assert kernel.delete_module(m, 0).errno == 0
    assert set(machine.emu_state["xfrm_input_afinfo"]) == {"0/2", "0/10"}
    assert "41" not in machine.emu_state["inet6_protos"]


def test_esp4_and_its_offload_register_and_exit_undoes(kernel, machine, tree):
    assert insmod(kernel, tree, "esp4_offload").errno == 0
    st = machine.emu_state
    assert set(st["xfrm_types"]) == {"2/esp", "2/offload_esp"}
    assert len(st["xfrm4_handlers"]["50"]) == 1
    assert st["inet_protos"]["50"] and st["inet_offloads"]["50"]
    assert kernel.delete_module("esp4_offload", 0).errno == 0
    assert kernel.delete_module("esp4", 0).errno == 0
    assert st["xfrm_types"] == {} and st["xfrm4_handlers"]["50"] == []
    assert "50" not in st["inet_protos"] and "50" not in st["inet_offloads"]


def test_nsh_packet_offload(kernel, machine, tree):
    assert insmod(kernel, tree, "nsh").errno == 0
    offs = list(machine.emu_state["packet_offloads"].values())
    assert [o["type"] for o in offs] == [0x894F]                 # ETH_P_NSH
    d = kernel.delete_module("nsh", 0)
    assert d.errno == 0 and machine.emu_state["packet_offloads"] == {}
    assert not any("not found" in x for x in d.log)


def test_xfrm_interface_registrations_and_exit(kernel, machine, tree):
    """xfrmi_init: xfrm4/xfrm6 handlers for ESP, AH, COMP (priority 10), the XFRM lwtunnel
    encap (10) and the xfrm_if_cb pointer; exit undoes all of them."""
    assert insmod(kernel, tree, "xfrm_interface").errno == 0
    st = machine.emu_state
    assert all(len(st[k][p]) == 1 for k in ("xfrm4_handlers", "xfrm6_handlers")
               for p in ("50", "51", "108"))
    assert st["lwtun_encaps"]["10"] and st["xfrm_if_cb"]
    assert set(st["lwtun_encaps"]) == {"2", "4", "5", "6", "7", "10"}
    assert kernel.delete_module("xfrm_interface", 0).errno == 0
    assert st["xfrm_if_cb"] == 0 and "10" not in st["lwtun_encaps"]
    assert all(st[k][p] == [] for k in ("xfrm4_handlers", "xfrm6_handlers")
               for p in ("50", "51", "108"))
    assert "50" not in st["inet_protos"] and "50" not in st["inet6_protos"]
