"""Generic netlink families (emu/models/genetlink.py, net/netlink/genetlink.c of Linux 6.1 and
6.12): real Debian modules register and unregister their families, and C snippets keep the
kernel's rules — genl_validate_ops, names, idr_alloc_cyclic ids, the fixed ids/groups of
pmcraid, VFS_DQUOT and NET_DM, multicast group allocation and -ENOENT on unregister."""
from __future__ import annotations

import pytest

from test_emu_models import _exports, insmod, kernel, run, tree  # noqa: F401
from test_emu_support import needs_gcc

from kmodlab.emu.models import genetlink

# --- real modules -------------------------------------------------------------------------------


def _names(machine) -> dict:
    return {f["name"]: int(i) for i, f in machine.emu_state["genetlink"]["families"].items()}


def test_drop_monitor_gets_net_dm_group_1_and_exit_unregisters(kernel, machine, tree):
    r = insmod(kernel, tree, "drop_monitor")
    assert r.errno == 0, r.reason
    fams = machine.emu_state["genetlink"]["families"]
    net_dm = next(f for f in fams.values() if f["name"] == "NET_DM")
    assert net_dm["mcgrp_offset"] == 1 and net_dm["n_mcgrps"] == 1 and net_dm["family"]
    assert "nlctrl" in _names(machine) and _names(machine)["nlctrl"] == 16
    assert kernel.delete_module("drop_monitor", 0).errno == 0
    assert "NET_DM" not in _names(machine)
    assert 1 in machine.emu_state["genetlink"]["groups"]          # group 1 is never freed


def test_psample_and_team_get_fresh_ids_and_groups(kernel, machine, tree):
    for m in ("psample", "team"):
        r = insmod(kernel, tree, m)
        assert r.errno == 0, (m, r.reason)
    n = _names(machine)
    assert n["psample"] >= genetlink.GENL_START_ALLOC and n["team"] == n["psample"] + 1
    fams = machine.emu_state["genetlink"]["families"]
    ps, tm = fams[str(n["psample"])], fams[str(n["team"])]
    assert ps["n_mcgrps"] == 2 and tm["n_mcgrps"] == 1
    assert tm["mcgrp_offset"] == ps["mcgrp_offset"] + 2     # the next free bits
    assert kernel.delete_module("team", 0).errno == 0
    assert "team" not in _names(machine)


# --- C snippets (Linux 6.1's layouts) -----------------------------------------------------------

HEAD = r'''
typedef unsigned char u8; typedef unsigned int u32;
struct genl_ops { void *doit, *start, *dumpit, *done; const void *policy; u32 maxattr;
                  u8 cmd, internal_flags, flags, validate; };
struct genl_small_ops { void *doit, *dumpit; u8 cmd, internal_flags, flags, validate; };
struct genl_multicast_group { char name[16]; u8 flags; };
struct genl_family { int id; unsigned int hdrsize; char name[16]; u32 version, maxattr;
    unsigned int mcgrp_offset; u8 bits, n_ops, n_small_ops, n_mcgrps, resv_start_op;
    const void *policy; void *pre_doit, *post_doit; const struct genl_ops *ops;
    const struct genl_small_ops *small_ops; const struct genl_multicast_group *mcgrps;
    void *module; };
int genl_register_family(struct genl_family *); int genl_unregister_family(const struct genl_family *);
static int doit(void *a, void *b) { return 0; }
'''
EX = _exports(("genl_register_family", 0xFFFFFFFF81A10000),
              ("genl_unregister_family", 0xFFFFFFFF81A10100))


def _family_id(b, sym="fam") -> int:
    return int.from_bytes(b.mm.read(b.syms[sym], 4), "little", signed=True)


def _warned(log) -> bool:
    return any("WARNING" in t and "genetlink.c" in t for _l, t in log)


@needs_gcc
@pytest.mark.parametrize("body,err,warn", [
    # n_ops without ops
    ("struct genl_family fam = { .name = \"t\", .n_ops = 1 };", -22, True),
    # an op with neither doit nor dumpit
    ("struct genl_ops ops[] = { { .cmd = 1 } };"
     "struct genl_family fam = { .name = \"t\", .ops = ops, .n_ops = 1 };", -22, False),
    # the same command in ops and small_ops
    ("struct genl_ops ops[] = { { .cmd = 3, .doit = doit } };"
     "struct genl_small_ops sm[] = { { .cmd = 3, .dumpit = doit } };"
     "struct genl_family fam = { .name = \"t\", .ops = ops, .n_ops = 1, .small_ops = sm,"
     " .n_small_ops = 1 };", -22, False),
    # validate flags on a command at or above resv_start_op
    ("struct genl_small_ops sm[] = { { .cmd = 5, .doit = doit, .validate = 1 } };"
     "struct genl_family fam = { .name = \"t\", .small_ops = sm, .n_small_ops = 1,"
     " .resv_start_op = 5 };", -22, True),
    # ... below it: fine
    ("struct genl_small_ops sm[] = { { .cmd = 4, .doit = doit, .validate = 1 } };"
     "struct genl_family fam = { .name = \"t\", .small_ops = sm, .n_small_ops = 1,"
     " .resv_start_op = 5 };", 0, False),
    # a name the booted kernel holds
    ("struct genl_family fam = { .name = \"ethtool\" };", -17, False),
])
def test_genl_validate_ops_and_name(body, err, warn):
    ret, log, _e, b = run(HEAD + body + "\nint f(void) { return genl_register_family(&fam); }",
                          EX, state={})
    assert ret == err
    assert _warned(log) == warn
    if err:
        assert _family_id(b) == 0                    # failed before an id was allocated


@needs_gcc
def test_ids_are_cyclic_and_groups_consecutive():
    """idr_alloc_cyclic: an unregistered id is not reused; groups: the first free run, and the
    bits of an unregistered family are free again."""
    src = HEAD + r'''
    struct genl_small_ops sm[] = { { .cmd = 1, .doit = doit } };
    struct genl_multicast_group g2[] = { { .name = "a" }, { .name = "b" } };
    struct genl_family a = { .name = "fa", .small_ops = sm, .n_small_ops = 1, .mcgrps = g2, .n_mcgrps = 2 },
                       b = { .name = "fb", .small_ops = sm, .n_small_ops = 1, .mcgrps = g2, .n_mcgrps = 1 },
                       c = { .name = "fc", .mcgrps = g2, .n_mcgrps = 2 };
    int f(void) { return genl_register_family(&a) | genl_register_family(&b)
                         | genl_unregister_family(&a) | genl_register_family(&c); }'''
    state = {}
    ret, _log, _e, b = run(src, EX, state=state)
    assert ret == 0
    ida, idb, idc = (_family_id(b, s) for s in "abc")
    assert ida >= genetlink.GENL_START_ALLOC and idb == ida + 1 and idc == idb + 1
    mc = lambda s: b.mm.read_u(b.syms[s] + 32, 4)                  # noqa: E731
    assert mc("b") == mc("a") + 2 and mc("c") == mc("a")           # c takes a's freed bits
    fams = state["genetlink"]["families"]
    assert {fams[str(i)]["name"] for i in (idb, idc)} == {"fb", "fc"} and str(ida) not in fams


@needs_gcc
def test_results_and_fields_written():
    src = HEAD + r'''
    struct genl_small_ops sm[] = { { .cmd = 1, .doit = doit } };
    struct genl_multicast_group g2[] = { { .name = "a" }, { .name = "b" } };
    struct genl_multicast_group bad[] = { { .name = "" } };
    struct genl_family a = { .name = "fa", .small_ops = sm, .n_small_ops = 1, .mcgrps = g2, .n_mcgrps = 2 },
                       d = { .name = "fa" }, never = { .name = "nv" },
                       e = { .name = "fe", .mcgrps = bad, .n_mcgrps = 1, .mcgrp_offset = 77 },
                       p = { .name = "pmcraid", .mcgrps = g2, .n_mcgrps = 1 },
                       z = { .name = "fz", .mcgrp_offset = 55 };
    int r[8];
    int f(void) { r[0] = genl_register_family(&a); r[1] = genl_register_family(&d);
                  r[2] = genl_unregister_family(&never); r[3] = genl_register_family(&e);
                  r[4] = genl_register_family(&p); r[5] = genl_register_family(&z);
                  r[6] = genl_unregister_family(&a); r[7] = genl_unregister_family(&a);
                  return 0; }'''
    state = {}
    _ret, log, _e, b = run(src, EX, state=state)
    r = [int.from_bytes(b.mm.read(b.syms["r"] + 4 * i, 4), "little", signed=True)
         for i in range(8)]
    assert r == [0, -17, -2, -22, 0, 0, 0, -2]
    ida, ide = _family_id(b, "a"), _family_id(b, "e")
    assert ida >= genetlink.GENL_START_ALLOC and ide == ida + 1   # e's id written, then freed
    assert _warned(log)                                            # the empty group name
    mc = lambda s: b.mm.read_u(b.syms[s] + 32, 4)                  # noqa: E731
    assert mc("e") == 77                     # not written: failed before the offset
    assert _family_id(b, "p") == 18 and mc("p") == 18              # pmcraid: id and group 18
    # pmcraid's fixed id put the IDR cursor back at 18+1: z takes the lowest free id above,
    # e's released one; z has no groups, its offset is not written
    assert mc("z") == 55 and _family_id(b, "z") == ide
    assert mc("a") not in genetlink.RESERVED_GROUPS
    fams = state["genetlink"]["families"]
    assert str(ida) not in fams and fams[str(ide)]["name"] == "fz" and fams["18"]["name"] == "pmcraid"
    # a's two group bits are free again, and the cursor is past z's id
    assert mc("a") not in state["genetlink"]["groups"]
    assert state["genetlink"]["next"] == _family_id(b, "z") + 1


# --- TCP congestion control (emu/models/tcp_cong.py) --------------------------------------------

def test_jhash_is_lookup3():
    from kmodlab.emu.models.tcp_cong import jhash
    assert jhash(b"", 0) == 0xDEADBEEF
    assert jhash(b"Four score and seven years ago", 0) == 0x17770551
    assert jhash(b"Four score and seven years ago", 1) == 0xCD628161


def test_tcp_congestion_modules_register_and_unregister(kernel, machine, tree):
    from kmodlab.emu.models.tcp_cong import _key
    for m in ("tcp_bic", "tcp_vegas"):
        r = insmod(kernel, tree, m)
        assert r.errno == 0, (m, r.reason)
    cong = machine.emu_state["tcp_cong"]
    assert set(cong) == {"bic", "vegas"}
    assert cong["bic"]["key"] == _key(b"bic".ljust(16, b"\0"))
    assert kernel.delete_module("tcp_bic", 0).errno == 0
    assert set(machine.emu_state["tcp_cong"]) == {"vegas"}


TCP_HEAD = r'''
struct tcp_congestion_ops { void *ssthresh, *cong_avoid, *set_state, *cwnd_event, *in_ack_event,
    *pkts_acked, *min_tso_segs, *cong_control, *undo_cwnd, *sndbuf_expand, *get_info;
    char name[16]; void *owner; void *list[2]; unsigned int key, flags; void *init, *release;
    long pad[5]; };
int tcp_register_congestion_control(struct tcp_congestion_ops *);
void tcp_unregister_congestion_control(struct tcp_congestion_ops *);
static void fn(void) {}
'''
TCP_EX = _exports(("tcp_register_congestion_control", 0xFFFFFFFF81A20000),
                  ("tcp_unregister_congestion_control", 0xFFFFFFFF81A20100))


@needs_gcc
def test_tcp_register_rules_and_messages():
    """Required ops (KERN_ERR, -EINVAL), the name's jhash written to ->key, a name already on
    the list — the kernel's own reno/cubic or a module's — is -EEXIST with a notice."""
    src = TCP_HEAD + r'''
    struct tcp_congestion_ops noops = { .ssthresh = fn, .undo_cwnd = fn, .name = "noops" },
        ok = { .ssthresh = fn, .undo_cwnd = fn, .cong_control = fn, .name = "sbx" },
        again = { .ssthresh = fn, .undo_cwnd = fn, .cong_avoid = fn, .name = "sbx" },
        cubic = { .ssthresh = fn, .undo_cwnd = fn, .cong_avoid = fn, .name = "cubic" };
    int r[5];
    int f(void) { r[0] = tcp_register_congestion_control(&noops);
                  r[1] = tcp_register_congestion_control(&ok);
                  r[2] = tcp_register_congestion_control(&again);
                  r[3] = tcp_register_congestion_control(&cubic);
                  tcp_unregister_congestion_control(&ok);
                  r[4] = tcp_register_congestion_control(&again); return 0; }'''
    from kmodlab.emu.models.tcp_cong import _key
    state = {}
    _ret, log, _e, b = run(src, TCP_EX, state=state)
    r = [int.from_bytes(b.mm.read(b.syms["r"] + 4 * i, 4), "little", signed=True)
         for i in range(5)]
    assert r == [-22, 0, -17, -17, 0]
    assert (3, "TCP: noops does not implement required ops") in log
    assert (5, "TCP: sbx already registered or non-unique key") in log
    assert (5, "TCP: cubic already registered or non-unique key") in log
    assert b.mm.read_u(b.syms["ok"] + 128, 4) == _key(b"sbx".ljust(16, b"\0"))
    assert b.mm.read_u(b.syms["noops"] + 128, 4) == 0          # failed before the key
    assert state["tcp_cong"] == {"sbx": {"key": _key(b"sbx".ljust(16, b"\0")),
                                         "ops": b.syms["again"]}}


# --- socket diagnostics handlers (emu/models/sockdiag.py) ---------------------------------------

def test_sock_diag_handlers_of_real_modules(kernel, machine, tree):
    for m in ("unix_diag", "tcp_diag"):
        r = insmod(kernel, tree, m)
        assert r.errno == 0, (m, r.reason)
    # AF_UNIX 1, AF_INET 2, AF_INET6 10 (inet_diag registers both)
    assert set(machine.emu_state["sock_diag"]) == {"1", "2", "10"}
    assert kernel.delete_module("unix_diag", 0).errno == 0
    assert set(machine.emu_state["sock_diag"]) == {"2", "10"}


@needs_gcc
def test_sock_diag_register_rules():
    src = r'''
    struct sock_diag_handler { void *owner; unsigned char family; void *dump, *get_info, *destroy; };
    int sock_diag_register(const struct sock_diag_handler *);
    void sock_diag_unregister(const struct sock_diag_handler *);
    struct sock_diag_handler a = { .family = 44 }, b = { .family = 44 }, big = { .family = 46 };
    int f(void) { int x = sock_diag_register(&a), y = sock_diag_register(&b),
                      z = sock_diag_register(&big);
                  sock_diag_unregister(&a); sock_diag_unregister(&big);
                  return x * 10000 + y * 100 + z + 1000000 * sock_diag_register(&b); }'''
    ex = _exports(("sock_diag_register", 0xFFFFFFFF81A30000),
                  ("sock_diag_unregister", 0xFFFFFFFF81A30100))
    state = {}
    ret, _log, _e, b = run(src, ex, state=state)
    assert ret == 0 * 10000 + (-16) * 100 + (-22)
    assert state["sock_diag"] == {"44": b.syms["b"]}


# --- connector callbacks (emu/models/connector.py) ----------------------------------------------

def test_w1_registers_its_connector_callback(kernel, machine, tree):
    r = insmod(kernel, tree, "wire")
    assert r.errno == 0, r.reason
    q = machine.emu_state["connector"]
    assert q["3:1"]["name"] == "w1" and q["1:1"]["name"] == "cn_proc"  # CN_W1_IDX/VAL
    assert kernel.delete_module("wire", 0).errno == 0
    assert set(machine.emu_state["connector"]) == {"1:1"}


@needs_gcc
def test_cn_add_callback_same_id_is_einval():
    src = r'''
    struct cb_id { unsigned int idx, val; };
    int cn_add_callback(const struct cb_id *, const char *, void (*)(void *, void *));
    void cn_del_callback(const struct cb_id *);
    static void cb(void *a, void *b) {}
    struct cb_id mine = { 0x77, 2 }, proc = { 1, 1 };
    int f(void) { int x = cn_add_callback(&mine, "sbx", cb), y = cn_add_callback(&mine, "sbx2", cb),
                      z = cn_add_callback(&proc, "p", cb);
                  cn_del_callback(&mine);
                  return x * 10000 + y * 100 + z + 1000000 * cn_add_callback(&mine, "sbx3", cb); }'''
    ex = _exports(("cn_add_callback", 0xFFFFFFFF81A40000),
                  ("cn_del_callback", 0xFFFFFFFF81A40100))
    state = {}
    ret, _log, _e, b = run(src, ex, state=state)
    assert ret == 0 * 10000 + (-22) * 100 + (-22)
    assert state["connector"]["119:2"]["name"] == "sbx3"


# --- protocol handlers and netfilter socket options (emu/models/inet_proto.py) ------------------

def test_gre_takes_protocol_47_and_iptables_its_sockopts(kernel, machine, tree):
    for m in ("gre", "ip_tables"):
        r = insmod(kernel, tree, m)
        assert r.errno == 0, (m, r.reason)
    r = kernel.finit_module(tree[0]["ip6_tables"], "", 0)           # x_tables is loaded
    assert r.errno == 0, r.reason
    assert machine.emu_state["inet_protos"]["47"] != 0 and machine.emu_state["inet_protos"]["6"] == 0
    pfs = sorted(s["pf"] for s in machine.emu_state["nf_sockopts"])
    assert pfs == [2, 10]                                            # PF_INET, PF_INET6
    assert kernel.delete_module("gre", 0).errno == 0
    assert "47" not in machine.emu_state["inet_protos"]
    assert kernel.delete_module("ip_tables", 0).errno == 0
    assert [s["pf"] for s in machine.emu_state["nf_sockopts"]] == [10]


@needs_gcc
def test_inet_protocol_slots_and_sockopt_overlap():
    src = r'''
    struct nf_sockopt_ops { void *list[2]; unsigned char pf; int set_optmin, set_optmax; void *set;
        int get_optmin, get_optmax; void *get; void *owner; };
    int inet_add_protocol(const void *, unsigned char); int inet_del_protocol(const void *, unsigned char);
    int inet6_add_protocol(const void *, unsigned char);
    int nf_register_sockopt(struct nf_sockopt_ops *); void nf_unregister_sockopt(struct nf_sockopt_ops *);
    long p1, p2;
    struct nf_sockopt_ops a = { .pf = 2, .set_optmin = 64, .set_optmax = 66, .get_optmin = 64, .get_optmax = 68 },
        touch = { .pf = 2, .set_optmin = 66, .set_optmax = 70, .get_optmin = 68, .get_optmax = 70 },
        over = { .pf = 2, .set_optmin = 100, .set_optmax = 101, .get_optmin = 66, .get_optmax = 67 },
        v6 = { .pf = 10, .set_optmin = 64, .set_optmax = 66, .get_optmin = 64, .get_optmax = 68 };
    int r[10];
    int f(void) { r[0] = inet_add_protocol(&p1, 200); r[1] = inet_add_protocol(&p2, 200);
                  r[2] = inet_add_protocol(&p1, 6); r[3] = inet_del_protocol(&p2, 200);
                  r[4] = inet_del_protocol(&p1, 200); r[5] = inet6_add_protocol(&p1, 58);
                  r[6] = nf_register_sockopt(&a); r[7] = nf_register_sockopt(&touch);
                  r[8] = nf_register_sockopt(&over); r[9] = nf_register_sockopt(&v6);
                  nf_unregister_sockopt(&a); return nf_register_sockopt(&over); }'''
    ex = _exports(("inet_add_protocol", 0xFFFFFFFF81A50000), ("inet_del_protocol", 0xFFFFFFFF81A50100),
                  ("inet6_add_protocol", 0xFFFFFFFF81A50200), ("nf_register_sockopt", 0xFFFFFFFF81A50300),
                  ("nf_unregister_sockopt", 0xFFFFFFFF81A50400))
    state = {}
    ret, _log, _e, b = run(src, ex, state=state)
    r = [int.from_bytes(b.mm.read(b.syms["r"] + 4 * i, 4), "little", signed=True)
         for i in range(10)]
    assert r == [0, -1, -1, -1, 0, -1, 0, 0, -16, 0]
    assert ret == 0 and "200" not in state["inet_protos"]
    assert sorted(s["ops"] for s in state["nf_sockopts"]) == sorted(
        b.syms[s] for s in ("touch", "over", "v6"))


# --- Linux 6.12: split ops and per-socket private data ------------------------------------------

HEAD_612 = r'''
typedef unsigned char u8; typedef unsigned int u32;
struct genl_split_ops { void *a, *b, *c; const void *policy; u32 maxattr;
                        u8 cmd, internal_flags, flags, validate; };
struct genl_small_ops { void *doit, *dumpit; u8 cmd, internal_flags, flags, validate; };
struct genl_family { unsigned int hdrsize; char name[16]; u32 version, maxattr;
    u8 bits, n_ops, n_small_ops, n_split_ops, n_mcgrps, resv_start_op;
    const void *policy; void *pre_doit, *post_doit, *bind, *unbind; const void *ops;
    const struct genl_small_ops *small_ops; const struct genl_split_ops *split_ops;
    const void *mcgrps; void *module; unsigned long sock_priv_size; void *spi, *spd;
    int id; unsigned int mcgrp_offset; void *sock_privs; };
int genl_register_family(struct genl_family *); int genl_unregister_family(const struct genl_family *);
static int doit(void *a, void *b) { return 0; }
#define DO 2
#define DUMP 4
'''


@needs_gcc
@pytest.mark.parametrize("ops,err,warn", [
    ("{ .a = doit, .cmd = 1, .flags = DO }, { .b = doit, .cmd = 1, .flags = DUMP },"
     "{ .a = doit, .cmd = 2, .flags = DO }", 0, False),
    # not sorted by command
    ("{ .a = doit, .cmd = 2, .flags = DO }, { .a = doit, .cmd = 1, .flags = DO }", -22, True),
    # both DO and DUMP in one split op
    ("{ .a = doit, .cmd = 1, .flags = DO | DUMP }", -22, True),
    # dump before do of one command: two iterator entries of command 1
    ("{ .b = doit, .cmd = 1, .flags = DUMP }, { .a = doit, .cmd = 1, .flags = DO }", -22, False),
    # a do/dump pair differing in other flags
    ("{ .a = doit, .cmd = 1, .flags = DO | 1 }, { .b = doit, .cmd = 1, .flags = DUMP }", -22, True),
])
def test_612_split_ops(profile_612, ops, err, warn):
    src = HEAD_612 + f"struct genl_split_ops sp[] = {{ {ops} }};\n" + r'''
    struct genl_family fam = { .name = "sbx", .split_ops = sp,
                               .n_split_ops = sizeof(sp) / sizeof(sp[0]) };
    int f(void) { return genl_register_family(&fam); }'''
    ret, log, _e, b = run(src, EX, state={}, profile=profile_612)
    assert ret == err
    assert _warned(log) == warn


@needs_gcc
def test_612_small_op_repeating_a_split_command_and_sock_privs(profile_612):
    src = HEAD_612 + r'''
    struct genl_split_ops sp[] = { { .a = doit, .cmd = 1, .flags = DO } };
    struct genl_small_ops sm[] = { { .doit = doit, .cmd = 1 } }, sm2[] = { { .doit = doit, .cmd = 2 } };
    struct genl_family dup = { .name = "d", .split_ops = sp, .n_split_ops = 1, .small_ops = sm, .n_small_ops = 1 },
                       ok = { .name = "ok", .split_ops = sp, .n_split_ops = 1, .small_ops = sm2,
                              .n_small_ops = 1, .sock_priv_size = 8 };
    int f(void) { return genl_register_family(&dup) * 100 + genl_register_family(&ok); }'''
    state = {}
    ret, _log, _e, b = run(src, EX, state=state, profile=profile_612)
    assert ret == -22 * 100 + 0
    ok = b.syms["ok"]
    fid = int.from_bytes(b.mm.read(ok + 144, 4), "little")
    assert state["genetlink"]["families"][str(fid)]["name"] == "ok"
    assert b.mm.read_u64(ok + 152) != 0                             # sock_privs allocated
    names = {f["name"] for f in state["genetlink"]["families"].values()}
    assert {"netdev", "dpll", "handshake"} <= names                 # 6.12's own families


def test_nfc_joins_the_netlink_notifier_chain(kernel, machine, tree):
    r = insmod(kernel, tree, "nfc")
    assert r.errno == 0, r.reason
    assert len(machine.emu_state["notifiers"]["netlink"]) == 1
    assert "nfc" in _names(machine)
    assert kernel.delete_module("nfc", 0).errno == 0
    assert machine.emu_state["notifiers"]["netlink"] == [] and "nfc" not in _names(machine)
