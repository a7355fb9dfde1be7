"""TCP congestion control algorithms (net/ipv4/tcp_cong.c): ``tcp_register_congestion_control``
and ``tcp_unregister_congestion_control``, the same in Linux 6.1 and 6.12.

- an algorithm without ``ssthresh``, without ``undo_cwnd``, or with neither ``cong_avoid`` nor
  ``cong_control`` → ``TCP: <name> does not implement required ops`` (KERN_ERR), -EINVAL;
- ``ca->key`` is written: ``jhash(ca->name, sizeof(ca->name) (16), strlen(ca->name))``
  (include/linux/jhash.h, Bob Jenkins' lookup3 over all 16 bytes of the name array);
- a key of 0 (TCP_CA_UNSPEC) or one an algorithm on the list already has (a second algorithm of
  the same name) → ``TCP: <name> already registered or non-unique key`` (KERN_NOTICE), -EEXIST;
- otherwise it joins the list (``list_add_tail_rcu`` into the kernel's static ``tcp_cong_list``,
  whose address is not in the profile: ``ca->list`` is not written); the "registered" line is
  a pr_debug, not logged.

The booted kernel's list holds ``reno`` (always built in) and, by configuration, ``cubic``
(TCP_CONG_CUBIC=y in Debian 6.1 and 6.12; no profile: built in); the algorithms modules
register are ``emu.state["tcp_cong"]`` (name → {key, ops}).  Unregistering unlists
(list_del_rcu, synchronize_rcu): nothing logged.  The list is visible in
/proc/sys/net/ipv4/tcp_available_congestion_control, which the sandbox does not show.

Offsets are this kernel's, from its BTF (emu/layouts.py, file "tcp_cong").
"""
from __future__ import annotations

from ..layouts import layout
from ..registry import model

LAYOUT = layout("tcp_cong")
EINVAL, EEXIST = 22, 17
TCP_CA_NAME_MAX = 16
M32 = 0xFFFFFFFF
BUILTIN = (("reno", None), ("cubic", "TCP_CONG_CUBIC"))


def _rol(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & M32


def jhash(key: bytes, initval: int) -> int:
    """include/linux/jhash.h's jhash(key, len(key), initval)."""
    length = len(key)
    a = b = c = (0xDEADBEEF + length + initval) & M32
    k = 0
    while length > 12:
        a = (a + int.from_bytes(key[k:k + 4], "little")) & M32
        b = (b + int.from_bytes(key[k + 4:k + 8], "little")) & M32
        c = (c + int.from_bytes(key[k + 8:k + 12], "little")) & M32
        for x, y, z, r in (("a", "c", "b", 4), ("b", "a", "c", 6), ("c", "b", "a", 8),
                           ("a", "c", "b", 16), ("b", "a", "c", 19), ("c", "b", "a", 4)):
            v = {"a": a, "b": b, "c": c}
            v[x] = ((v[x] - v[y]) & M32) ^ _rol(v[y], r)
            v[y] = (v[y] + v[z]) & M32
            a, b, c = v["a"], v["b"], v["c"]
        length -= 12
        k += 12
    if length == 0:
        return c
    tail = key[k:k + length] + bytes(12)
    a = (a + int.from_bytes(tail[0:4], "little")) & M32 if length > 0 else a
    b = (b + int.from_bytes(tail[4:8], "little")) & M32 if length > 4 else b
    c = (c + int.from_bytes(tail[8:12], "little")) & M32 if length > 8 else c
    for x, y, r in (("c", "b", 14), ("a", "c", 11), ("b", "a", 25), ("c", "b", 16),
                    ("a", "c", 4), ("b", "a", 14), ("c", "b", 24)):
        v = {"a": a, "b": b, "c": c}
        v[x] = ((v[x] ^ v[y]) - _rol(v[y], r)) & M32
        a, b, c = v["a"], v["b"], v["c"]
    return c


def _key(name16: bytes) -> int:
    n = name16.find(b"\0")
    return jhash(name16, n if n >= 0 else len(name16))


def _config(emu) -> dict:
    return getattr(getattr(emu.kernel, "profile", None), "config", None) or {}


def _list(emu) -> dict:
    return emu.state.setdefault("tcp_cong", {})


def _all_keys(emu) -> set[int]:
    cfg = _config(emu)
    keys = {_key(n.encode().ljust(TCP_CA_NAME_MAX, b"\0"))
            for n, opt in BUILTIN if opt is None or not cfg or cfg.get(opt) == "y"}
    return keys | {c["key"] for c in _list(emu).values()}


def _o(emu, member: str) -> int:
    return LAYOUT.of(emu)["tcp_congestion_ops", member]


@model("tcp_register_congestion_control")
def tcp_register_congestion_control(emu, ca):
    raw = emu.read(ca + _o(emu, "name"), TCP_CA_NAME_MAX)
    name = raw.split(b"\0", 1)[0].decode("latin-1")
    ptr = lambda m: emu.read_u(ca + _o(emu, m), 8)           # noqa: E731
    if not ptr("ssthresh") or not ptr("undo_cwnd") or \
            not (ptr("cong_avoid") or ptr("cong_control")):
        emu.printk(3, f"TCP: {name} does not implement required ops\n")
        return -EINVAL
    key = _key(raw)
    emu.write_u(ca + _o(emu, "key"), 4, key)
    if key == 0 or key in _all_keys(emu):
        emu.printk(5, f"TCP: {name} already registered or non-unique key\n")
        return -EEXIST
    _list(emu)[name] = {"key": key, "ops": ca}
    emu.note(f"{name}: key {key:#x}")
    return 0


@model("tcp_unregister_congestion_control")
def tcp_unregister_congestion_control(emu, ca):
    for name, c in list(_list(emu).items()):
        if c["ops"] == ca:
            del _list(emu)[name]
