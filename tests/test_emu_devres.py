"""Managed device resources (emu/models/devres.py), devm regions (resource.py), the kernel's
vsscanf (sscanf.py): small C programs for the rules, snd_soc_core (its dummy platform device
probed with devm_ allocations, released at rmmod) for the real thing."""
from __future__ import annotations

from test_emu_models import _exports, insmod, kernel, run, tree  # noqa: F401  (fixtures)
from test_emu_support import needs_gcc

NAMES = ["__devres_alloc_node", "devres_add", "devres_free", "devres_find", "devres_get",
         "devres_remove", "devres_destroy", "devres_release", "devres_open_group",
         "devres_close_group", "devres_remove_group", "devres_release_group", "devm_kmalloc",
         "devm_kfree", "devm_kstrdup", "devm_kasprintf", "devm_add_action",
         "devm_release_action", "devm_remove_action", "sscanf"]
EX = _exports(*[(n, 0xFFFFFFFF81A00000 + 0x40 * i) for i, n in enumerate(NAMES)])

HEADER = r'''
struct list_head { struct list_head *next, *prev; };
struct device { char pad[672]; struct list_head devres_head; char rest[256]; };  /* 6.1 */
typedef void (*dr_release_t)(struct device *, void *);
typedef int (*dr_match_t)(struct device *, void *, void *);
void *__devres_alloc_node(dr_release_t, unsigned long, unsigned int, int, const char *);
void devres_add(struct device *, void *);
void devres_free(void *);
void *devres_find(struct device *, dr_release_t, dr_match_t, void *);
void *devres_get(struct device *, void *, dr_match_t, void *);
void *devres_remove(struct device *, dr_release_t, dr_match_t, void *);
int devres_destroy(struct device *, dr_release_t, dr_match_t, void *);
int devres_release(struct device *, dr_release_t, dr_match_t, void *);
void *devres_open_group(struct device *, void *, unsigned int);
void devres_close_group(struct device *, void *);
void devres_remove_group(struct device *, void *);
int devres_release_group(struct device *, void *);
void *devm_kmalloc(struct device *, unsigned long, unsigned int);
void devm_kfree(struct device *, const void *);
char *devm_kstrdup(struct device *, const char *, unsigned int);
char *devm_kasprintf(struct device *, unsigned int, const char *, ...);
int devm_add_action(struct device *, void (*)(void *), void *);
void devm_release_action(struct device *, void (*)(void *), void *);
void devm_remove_action(struct device *, void (*)(void *), void *);
int sscanf(const char *, const char *, ...);
long r[64];
int order[16], n_order;
struct device d;
static void rel(struct device *dev, void *res) { order[n_order++] = *(int *)res; }
static int match_val(struct device *dev, void *res, void *data) { return *(int *)res == *(int *)data; }
static void *res_of(int v) { int *p = __devres_alloc_node(rel, 4, 0xcc0, -1, "rel"); *p = v; return p; }
static int count(void) { int n = 0; for (struct list_head *e = d.devres_head.next; e != &d.devres_head; e = e->next) n++; return n; }
'''


def _r(b, n):
    return [v - (1 << 64) if v >> 63 else v
            for v in (b.mm.read_u(b.syms["r"] + 8 * i, 8) for i in range(n))]


@needs_gcc
def test_devres_list_search_and_removal():
    """The node sits 40 bytes before the data (struct devres), zeroed data; devres_add links
    it at the tail of dev->devres_head; devres_find returns the newest match (release, then
    the match callback); devres_get keeps the listed one and frees the new; devres_remove
    unlinks without releasing, devres_release calls release, both -ENOENT when absent."""
    src = HEADER + r'''
    long f(void) {
        d.devres_head.next = d.devres_head.prev = &d.devres_head;
        int *a = __devres_alloc_node(rel, 8, 0xcc0, -1, "rel");
        r[0] = a[0] == 0 && a[1] == 0;
        r[1] = *(void **)((char *)a - 24) == (void *)rel;          /* node.release */
        r[2] = *(unsigned long *)((char *)a - 8) == 8;              /* node.size */
        *a = 1; devres_add(&d, a);
        int *b = res_of(2); devres_add(&d, b);
        int *c = res_of(1); devres_add(&d, c);
        r[3] = d.devres_head.next == (void *)((char *)a - 40);
        int one = 1, two = 2, three = 3;
        r[4] = devres_find(&d, rel, match_val, &one) == c;           /* newest first */
        r[5] = devres_find(&d, rel, 0, 0) == c;
        r[6] = devres_find(&d, (dr_release_t)match_val, 0, 0) == 0;
        int *n = res_of(2);
        r[7] = devres_get(&d, n, match_val, &two) == b;             /* n freed */
        r[8] = count();
        r[9] = devres_remove(&d, rel, match_val, &two) == b;
        r[10] = count();
        devres_free(b);
        r[11] = devres_destroy(&d, rel, match_val, &three);
        r[12] = devres_release(&d, rel, match_val, &one);
        r[13] = n_order; r[14] = order[0];
        r[15] = devres_release(&d, rel, match_val, &one);
        r[16] = count();
        return 0;
    }'''
    _ret, _log, _emu, b = run(src, EX)
    assert _r(b, 17) == [1, 1, 1, 1, 1, 1, 1, 1, 3, 1, 2, -2, 0, 1, 1, 0, 0]


@needs_gcc
def test_devres_groups_release_only_their_members_newest_first():
    """devres_open_group/close_group bracket entries; devres_release_group releases the
    group's members newest first (not the entries before or after it) and frees its markers;
    devres_remove_group drops the markers and keeps the members."""
    src = HEADER + r'''
    long f(void) {
        d.devres_head.next = d.devres_head.prev = &d.devres_head;
        devres_add(&d, res_of(1));
        void *g = devres_open_group(&d, 0, 0xcc0);
        devres_add(&d, res_of(2)); devres_add(&d, res_of(3));
        devres_close_group(&d, g);
        devres_add(&d, res_of(4));
        r[0] = count();                           /* 4 entries + 2 markers */
        r[1] = devres_release_group(&d, g);       /* its 2 members */
        r[2] = n_order; r[3] = order[0]; r[4] = order[1];
        r[5] = count();
        int id;
        void *h = devres_open_group(&d, &id, 0xcc0);
        r[6] = h == &id;
        devres_add(&d, res_of(5));
        devres_remove_group(&d, &id);             /* open group: one marker */
        r[7] = count();
        r[8] = n_order;
        return 0;
    }'''
    _ret, _log, _emu, b = run(src, EX)
    assert _r(b, 9) == [6, 2, 2, 3, 2, 2, 1, 3, 2]


@needs_gcc
def test_devm_allocations_and_actions():
    """devm_kmalloc(0) is ZERO_SIZE_PTR and lists nothing; devm_kstrdup/devm_kasprintf copy
    into listed memory; devm_kfree unlinks and frees; devm_add_action lists an action that
    devm_release_action runs once, devm_remove_action drops without running."""
    src = HEADER + r'''
    int ran, arg;
    static void act(void *p) { ran++; arg = *(int *)p; }
    long f(void) {
        d.devres_head.next = d.devres_head.prev = &d.devres_head;
        r[0] = (long)devm_kmalloc(&d, 0, 0xcc0);
        r[1] = count();
        char *s = devm_kstrdup(&d, "snd-soc-dummy", 0xcc0);
        char *t = devm_kasprintf(&d, 0xcc0, "%s.%d", s, 7);
        r[2] = count();
        r[3] = t[0] == 's' && t[13] == '.' && t[14] == '7' && t[15] == 0;
        devm_kfree(&d, s);
        r[4] = count();
        int v = 42;
        r[5] = devm_add_action(&d, act, &v);
        r[6] = count();
        devm_release_action(&d, act, &v);
        r[7] = ran; r[8] = arg; r[9] = count();
        devm_add_action(&d, act, &v);
        devm_remove_action(&d, act, &v);
        r[10] = ran; r[11] = count();
        return 0;
    }'''
    _ret, _log, _emu, b = run(src, EX)
    assert _r(b, 12) == [16, 0, 2, 1, 1, 0, 2, 1, 42, 1, 1, 1]


@needs_gcc
def test_the_kernels_sscanf():
    """The kernel's vsscanf: the count of conversions stored; a literal that does not match
    stops it; %x takes an 0x prefix; %i picks the base; a width bounds a number; %n; %s
    stops at whitespace; %[ needs a width; a field width of 0 ends the scan."""
    src = HEADER + r'''
    long f(void) {
        int a = -9, b = -9, n = -9; unsigned int x = 0; char s[16] = "", t[16] = "";
        r[0] = sscanf(".3", ".%d", &a); r[1] = a;
        r[2] = sscanf("", ".%d", &a);
        r[3] = sscanf("1a-2b", "%x-%x", &x, &b); r[4] = x; r[5] = b;
        r[6] = sscanf("0x1f 017 -12", "%i %i %i", &a, &b, &n); r[7] = a; r[8] = b; r[9] = n;
        r[10] = sscanf("12345", "%3d%d", &a, &b); r[11] = a; r[12] = b;
        r[13] = sscanf("ab  cd", "%s %s%n", s, t, &n); r[14] = s[1] == 'b' && t[1] == 'd'; r[15] = n;
        r[16] = sscanf("abc", "%[abc]", s);
        r[17] = sscanf("aab-", "%4[ab]%n", s, &n); r[18] = n; r[19] = s[2] == 'b' && s[3] == 0;
        r[20] = sscanf("7", "%0d", &a);
        r[21] = sscanf("x7", "%d", &a);
        r[22] = sscanf("5 9", "%*d %d", &a); r[23] = a;
        return 0;
    }'''
    _ret, _log, _emu, b = run(src, EX)
    assert _r(b, 24) == [1, 3, 0, 2, 0x1a, 0x2b, 3, 31, 15, -12, 2, 123, 45, 2, 1, 6,
                         0, 1, 3, 1, 0, 0, 1, 9]


def test_snd_soc_core_probes_its_dummy_device_and_rmmod_releases_it(kernel, machine, tree):
    """snd_soc_core's init registers the "snd-soc-dummy" platform device and driver: the probe
    registers two components with devm_ allocations (eight entries on the device's devres list,
    the newest the second component's release); rmmod unbinds, which releases them newest first
    (the components leave the module's component list without a corruption report), and
    unregisters the device (the real kernel logs nothing either way)."""
    from kmodlab.emu.layouts import layout
    r = insmod(kernel, tree, "snd_soc_core")
    assert r.errno == 0, r.reason
    pdevs = machine.emu_state["driver"]["pdev"]
    (addr, p), = [(a, p) for a, p in pdevs.items() if p["devname"] == "snd-soc-dummy"]
    assert p["driver"] == "snd-soc-dummy"
    dev = next(c.args[0] for c in r.details["calls"] if c.name == "devres_add")
    head = dev + layout("device").values("device", "devres_head")[0]
    n, e = 0, machine.mm.read_u64(head)
    while e != head:
        n, e = n + 1, machine.mm.read_u64(e)
    assert n == 8
    assert [x for x in r.log if "snd" in x] == []
    rm = kernel.delete_module("snd_soc_core", 0)
    assert rm.errno == 0, rm.reason
    assert not any("corruption" in x or "BUG" in x for x in rm.log)
    assert not any(p["devname"] == "snd-soc-dummy"
                   for p in machine.emu_state["driver"]["pdev"].values())
