"""struct device lifecycle (emu/models/device.py, drivers/base/core.c): device_initialize,
dev_set_name, device_add/del, get/put_device and the release order, device_create/destroy.

Real modules: snd_timer (snd_device_initialize + device_add of a class device with a devt,
sound's devnode callback) and kernelcapi (device_create/device_destroy); C snippets for the
rules (release callback order, the kernel's WARN without one, duplicate names, no name,
a device added to a bus with drivers stops as Unmodelled).
"""
from __future__ import annotations

import pytest

from kmodlab.emu import Emulator, Unmodelled
from test_emu_models import _exports, insmod, kernel, run, tree  # noqa: F401
from test_emu_support import EXPORTS, build, needs_gcc

# --- real modules -------------------------------------------------------------------------------


def test_snd_timer_adds_its_class_device_and_exit_releases_it(kernel, machine, tree):  # noqa: F811
    """alsa_timer_init: device "timer" of class sound (devt 116:33) under
    /devices/virtual/sound; sound_class's devnode callback names its node snd/timer; exit's
    snd_unregister_device + put_device remove directory, glue directory and links."""
    r = insmod(kernel, tree, "snd_timer")
    assert r.errno == 0, r.reason
    st = machine.emu_state
    devs = [d for d in st["devices"].values() if d.get("path")]
    assert [(d["name"], d["path"], d["class"], d["devnode"]) for d in devs] == \
        [("timer", "/devices/virtual/sound/timer", "sound", "snd/timer")]
    assert devs[0]["devt"] == (116 << 20) | 33
    assert st["device_links"] == {"/class/sound/timer": "/devices/virtual/sound/timer",
                                  "/dev/char/116:33": "/devices/virtual/sound/timer"}
    assert st["sysfs_dirs"]["/devices/virtual/sound"]["kind"] == "glue"
    assert st["uevent_seqnum"] == 1
    assert kernel.delete_module("snd_timer", 0).errno == 0
    assert st["devices"] == {} and st["device_links"] == {}
    assert not [p for p in st["sysfs_dirs"] if p.startswith("/devices")]
    assert st["uevent_seqnum"] == 2                 # KOBJ_REMOVE


def test_kernelcapi_device_create_and_destroy(kernel, machine, tree):  # noqa: F811
    """capi_init: register_chrdev(68), class "capi", device_create(capi_class, NULL,
    MKDEV(68, 0), NULL, "capi20"); exit's device_destroy frees it (device_create_release)."""
    r = insmod(kernel, tree, "kernelcapi")
    assert r.errno == 0, r.reason
    st = machine.emu_state
    names = sorted(d["name"] for d in st["devices"].values() if d.get("path"))
    assert "capi20" in names
    assert st["device_links"]["/class/capi/capi20"] == "/devices/virtual/capi/capi20"
    assert kernel.delete_module("kernelcapi", 0).errno == 0
    assert st["devices"] == {} and st["device_links"] == {}


# --- C snippets ---------------------------------------------------------------------------------
EX = _exports(("device_initialize", 0xFFFFFFFF81A00010), ("dev_set_name", 0xFFFFFFFF81A00020),
              ("device_add", 0xFFFFFFFF81A00030), ("put_device", 0xFFFFFFFF81A00040),
              ("get_device", 0xFFFFFFFF81A00050), ("device_del", 0xFFFFFFFF81A00060),
              ("device_register", 0xFFFFFFFF81A00070), ("device_unregister", 0xFFFFFFFF81A00080),
              ("__class_create", 0xFFFFFFFF81A00090), ("class_destroy", 0xFFFFFFFF81A000A0),
              ("device_create", 0xFFFFFFFF81A000B0), ("device_destroy", 0xFFFFFFFF81A000C0),
              ("bus_register", 0xFFFFFFFF81A000D0), ("driver_register", 0xFFFFFFFF81A000E0))
HDR = r'''
struct device { char b[752]; };
struct device_type { const char *name; void *groups, *uevent, *devnode; void (*release)(struct device *); void *pm; };
struct bus_type { const char *name; char rest[176]; };
struct device_driver { const char *name; struct bus_type *bus; char rest[128]; };
void device_initialize(struct device *); int dev_set_name(struct device *, const char *, ...);
int device_add(struct device *); void put_device(struct device *); struct device *get_device(struct device *);
void device_del(struct device *); int device_register(struct device *); void device_unregister(struct device *);
void *__class_create(void *, const char *, void *); void class_destroy(void *);
struct device *device_create(void *, struct device *, unsigned int, void *, const char *, ...);
void device_destroy(void *, unsigned int);
int bus_register(struct bus_type *); int driver_register(struct device_driver *);
#define SET(d, off, v) (*(void **)((d)->b + (off)) = (void *)(v))
#define KREF(d) (*(unsigned int *)((d)->b + 56))
int released;
static void rel(struct device *d) { released++; }
'''


@needs_gcc
def test_release_is_dev_release_then_type_release_then_the_kernels_warning():
    """device_release: dev->release, else type->release; neither (no class) → the kernel's
    WARN text at KERN_ERR; the release runs at the last put_device, not before."""
    src = HDR + r'''
    struct device a, b, c; struct device_type t = { .name = "t", .release = rel };
    long f(void) {
        long out = 0;
        device_initialize(&a); dev_set_name(&a, "a%d", 1); SET(&a, 704, rel);
        get_device(&a); out += KREF(&a);                  /* 2 */
        put_device(&a); out = out * 10 + released;        /* 20 */
        put_device(&a); out = out * 10 + released;        /* 201 */
        device_initialize(&b); dev_set_name(&b, "b"); SET(&b, 88, &t);
        put_device(&b); out = out * 10 + released;        /* 2012 */
        device_initialize(&c); dev_set_name(&c, "nobody");
        put_device(&c); out = out * 10 + released;        /* 20122 */
        return out; }'''
    ret, log, emu, _ = run(src, EX)
    assert ret == 20122
    assert (3, "Device 'nobody' does not have a release() function, it is broken and must be "
               "fixed. See Documentation/core-api/kobject.rst.") in log
    assert emu.state["devices"] == {}


@needs_gcc
def test_class_devices_duplicate_name_no_name_and_destroy():
    """A second device "d0" in the same class: sysfs's duplicate warning and -EEXIST, the
    failed device_create's device freed; device_add without a name → -EINVAL; device_destroy
    finds the device by devt."""
    src = HDR + r'''
    struct device n;
    long f(void) {
        void *cls = __class_create(0, "tcls", 0);
        struct device *d = device_create(cls, 0, (5u << 20) | 7, 0, "d%d", 0);
        struct device *e = device_create(cls, 0, (5u << 20) | 8, 0, "d0");
        long r1 = (long)e;
        device_initialize(&n); SET(&n, 704, rel);
        int r2 = device_add(&n);
        put_device(&n);
        int kept = d && (unsigned long)d < (unsigned long)-4095;
        device_destroy(cls, (5u << 20) | 7);
        class_destroy(cls);
        return (r1 == -17) * 1000 + (r2 == -22) * 100 + kept * 10 + released; }'''
    ret, log, emu, _ = run(src, EX)
    assert ret == 1111
    assert (3, "sysfs: cannot create duplicate filename '/devices/virtual/tcls/d0'") in log
    assert emu.state["devices"] == {} and emu.state["device_links"] == {}
    assert not [p for p in emu.state["sysfs_dirs"] if p.startswith("/devices")]


@needs_gcc
@pytest.mark.parametrize("with_driver,why", [(0, "the drivers registered on it later"),
                                             (1, "driver tbus/tdrv")])
def test_device_on_a_bus_stops_unmodelled(with_driver, why):
    """bus_probe_device matches a new device against the bus's drivers, and a driver
    registered later is matched against it (driver_register here walks no devices): probing
    is not skipped, the run stops naming it."""
    src = HDR + r'''
    struct bus_type bus = { .name = "tbus" }; struct device_driver drv = { .name = "tdrv", .bus = &bus };
    struct device a;
    long f(long with_driver) {
        bus_register(&bus);
        if (with_driver) driver_register(&drv);
        device_initialize(&a); dev_set_name(&a, "a"); SET(&a, 96, &bus); SET(&a, 704, rel);
        return device_add(&a); }'''
    b = build(src, exports=EX)
    emu = Emulator(b.mm, b.heap, EX, printk=lambda lvl, t: None)
    with pytest.raises(Unmodelled, match=f"device_add .*'a' on bus tbus against {why}"):
        emu.call(b.syms["f"], [with_driver])


@needs_gcc
def test_uevent_callback_adds_keys_and_a_failing_one_drops_the_event():
    """kobject_uevent: the class's dev_uevent callback gets a kobj_uevent_env holding ACTION,
    DEVPATH, SUBSYSTEM (and MAJOR/MINOR/DEVNAME for a devt); its add_uevent_var keys follow;
    a non-zero return drops the event (no seqnum)."""
    src = HDR + r'''
    struct env { char *argv[3]; char *envp[64]; int envp_idx; char buf[2048]; int buflen; };
    int add_uevent_var(struct env *, const char *, ...);
    struct cls { const char *name; void *owner, *cg, *dg, *dk; int (*dev_uevent)(struct device *, struct env *); char rest[72]; };
    int keys, fail; char seen[3][64];
    static int ue(struct device *d, struct env *e) {
        int i; if (fail) return add_uevent_var(e, "FOO=%d", 42) + fail;
        keys = e->envp_idx;
        for (i = 0; i < 3; i++) { int j = 0; while ((seen[i][j] = e->envp[i][j]) && j < 62) j++; }
        return add_uevent_var(e, "FOO=%d", 42) + fail; }
    struct cls c = { .name = "ucls", .dev_uevent = ue };
    int __class_register(struct cls *, void *);
    struct device a, b;
    long f(void) {
        __class_register(&c, 0);
        device_initialize(&a); dev_set_name(&a, "u0"); SET(&a, 688, &c); SET(&a, 704, rel);
        *(unsigned int *)(a.b + 660) = (9u << 20) | 3;
        int r = device_add(&a);
        int k = keys;
        fail = 1;
        device_initialize(&b); dev_set_name(&b, "u1"); SET(&b, 688, &c); SET(&b, 704, rel);
        int r2 = device_add(&b);
        return r * 1000 + r2 * 100 + k; }'''
    ex = _exports(*[(n, e.addr) for n, e in EX.items() if n not in EXPORTS],
                  ("add_uevent_var", 0xFFFFFFFF81A000F0), ("__class_register", 0xFFFFFFFF81A00100))
    ret, log, emu, b = run(src, ex)
    assert ret == 6                                      # ACTION DEVPATH SUBSYSTEM MAJOR MINOR DEVNAME
    seen = emu.read(b.syms["seen"], 3 * 64)
    assert [seen[i * 64:(i + 1) * 64].split(b"\0")[0] for i in range(3)] == \
        [b"ACTION=add", b"DEVPATH=/devices/virtual/ucls/u0", b"SUBSYSTEM=ucls"]
    assert emu.state["uevent_seqnum"] == 1              # b's event was dropped


@needs_gcc
def test_dev_printk_prefix_and_device_files():
    """_dev_info/_dev_err: "<driver, else bus, else class> <name>: " before the text, a NULL
    device "(NULL device *): "; device_create_file: a device not added → -EINVAL, a taken name
    → sysfs's duplicate warning and -EEXIST, a 0644 attribute without store → the WARN."""
    src = HDR + r'''
    struct attribute { const char *name; unsigned short mode; };
    struct device_attribute { struct attribute attr; void *show, *store; };
    void _dev_info(struct device *, const char *, ...); void _dev_err(struct device *, const char *, ...);
    int device_create_file(struct device *, const struct device_attribute *);
    void device_remove_file(struct device *, const struct device_attribute *);
    static long shw(void) { return 0; }
    struct device_attribute at = { { "val", 0644 }, shw, 0 };
    struct device n;
    long f(void) {
        void *cls = __class_create(0, "pcls", 0);
        struct device *d = device_create(cls, 0, 0, 0, "p%d", 3);
        _dev_info(d, "hello %d\n", 7);
        _dev_err(0, "nobody\n");
        device_initialize(&n); SET(&n, 704, rel);
        int a = device_create_file(&n, &at);
        int b = device_create_file(d, &at), c = device_create_file(d, &at);
        device_remove_file(d, &at);
        int e = device_create_file(d, &at);
        put_device(&n); device_unregister(d); class_destroy(cls);
        return a * 1000000 + b * 10000 + c * 100 + e; }'''
    ex = _exports(*[(n, e.addr) for n, e in EX.items() if n not in EXPORTS],
                  ("_dev_info", 0xFFFFFFFF81A00110), ("_dev_err", 0xFFFFFFFF81A00120),
                  ("device_create_file", 0xFFFFFFFF81A00130),
                  ("device_remove_file", 0xFFFFFFFF81A00140))
    ret, log, emu, _ = run(src, ex)
    assert ret == -22 * 1000000 + 0 + (-17) * 100 + 0
    assert (6, "pcls p3: hello 7") in log and (3, "(NULL device *): nobody") in log
    assert (3, "sysfs: cannot create duplicate filename '/devices/virtual/pcls/p3/val'") in log
    assert (4, "Attribute val: write permission without 'store'") in log
    assert not [f for f in emu.state["sysfs_files"] if f.startswith("/devices")]


@needs_gcc
def test_kobject_uevent_needs_a_kset_up_the_parents():
    """kobject_uevent on a kobject that is not a device: the first kset up its parents gives
    SUBSYSTEM (its name); none → -EINVAL with nothing sent (orangefs's kobjects under
    /sys/fs); the kset's uevent_ops filter returning 0 drops the event."""
    src = r'''
    struct kobject { const char *name; void *next, *prev; struct kobject *parent; void *kset, *ktype, *sd; unsigned int kref; unsigned int state; };
    struct kset_uevent_ops { int (*filter)(struct kobject *); void *name, *uevent; };
    struct kobj_type { void (*release)(struct kobject *); void *a, *b, *c, *d, *e; };
    void *kset_create_and_add(const char *, const struct kset_uevent_ops *, struct kobject *);
    int kobject_init_and_add(struct kobject *, struct kobj_type *, struct kobject *, const char *, ...);
    int kobject_uevent(struct kobject *, int);
    static void rel(struct kobject *k) {}
    static int no(struct kobject *k) { return 0; }
    struct kobj_type kt = { rel };
    struct kset_uevent_ops ops = { no };
    struct kobject a, b, c, d;
    long f(void) {
        char *ks = kset_create_and_add("uks", 0, 0), *ks2 = kset_create_and_add("uks2", &ops, 0);
        a.kset = ks; d.kset = ks2;
        kobject_init_and_add(&a, &kt, 0, "a");
        kobject_init_and_add(&b, &kt, &a, "b");
        kobject_init_and_add(&c, &kt, 0, "c");
        kobject_init_and_add(&d, &kt, 0, "d");
        int x = kobject_uevent(&b, 0), y = kobject_uevent(&c, 0), z = kobject_uevent(&d, 2);
        return x * 10000 + y * 100 + z + ((a.state >> 2) & 1) * 1000000 + ((b.state >> 2) & 1) * 10000000; }'''
    ex = _exports(("kset_create_and_add", 0xFFFFFFFF81A00150),
                  ("kobject_init_and_add", 0xFFFFFFFF81A00160),
                  ("kobject_uevent", 0xFFFFFFFF81A00170))
    ret, log, emu, _ = run(src, ex)
    assert ret == 10000000 + 0 * 10000 + (-22) * 100 + 0      # b sent (its ADD bit), c not
    assert emu.state["uevent_seqnum"] == 1                     # d's filter dropped its event


@needs_gcc
def test_612_layout_class_device(profile_612):
    """Linux 6.12's struct device (devt 676, class 704, release 720) and struct class (no
    owner, no p: devnode 32, dev_release 48): device_create writes this kernel's fields, the
    class's devnode and dev_release callbacks are found at their 6.12 offsets."""
    src = r'''
    struct device;
    struct class612 { const char *name; void *class_groups, *dev_groups, *dev_uevent;
                      char *(*devnode)(const struct device *, unsigned short *);
                      void *class_release; void (*dev_release)(struct device *); char rest[40]; };
    int class_register(const struct class612 *); void class_unregister(const struct class612 *);
    struct device *device_create(const struct class612 *, struct device *, unsigned int, void *, const char *, ...);
    void put_device(struct device *); void device_initialize(struct device *);
    int dev_set_name(struct device *, const char *, ...);
    int device_add(struct device *); void device_unregister(struct device *);
    void device_destroy(const struct class612 *, unsigned int);
    int nodes, rels; char own[768];
    static char *dn(const struct device *d, unsigned short *mode) { nodes++; *mode = 0600; return 0; }
    static void drel(struct device *d) { rels++; }
    struct class612 c = { .name = "c612", .devnode = dn, .dev_release = drel };
    long f(void) {
        class_register(&c);
        struct device *d = device_create(&c, 0, (7u << 20) | 1, (void *)0x1234, "z%d", 1);
        long ok = *(unsigned int *)((char *)d + 676) == ((7u << 20) | 1)
               && *(void **)((char *)d + 704) == &c && *(void **)((char *)d + 120) == (void *)0x1234;
        struct device *o = (struct device *)own;
        device_initialize(o); dev_set_name(o, "own"); *(void **)(own + 704) = &c;
        int r = device_add(o);
        device_unregister(o);
        device_destroy(&c, (7u << 20) | 1);
        class_unregister(&c);
        return ok * 1000 + r * 100 + nodes * 10 + rels; }'''
    ex = _exports(("class_register", 0xFFFFFFFF81A00180), ("class_unregister", 0xFFFFFFFF81A00190),
                  ("device_create", 0xFFFFFFFF81A001A0), ("put_device", 0xFFFFFFFF81A001B0),
                  ("device_initialize", 0xFFFFFFFF81A001C0), ("dev_set_name", 0xFFFFFFFF81A001D0),
                  ("device_add", 0xFFFFFFFF81A001E0), ("device_unregister", 0xFFFFFFFF81A001F0),
                  ("device_destroy", 0xFFFFFFFF81A00200))
    ret, log, emu, _ = run(src, ex, state={}, profile=profile_612)
    # devnode: create, ADD uevent, delete node, REMOVE uevent (4); the own device's
    # release is the class's dev_release (device_create's is the kernel's own)
    assert ret == 1000 + 0 + 40 + 1, log
    assert emu.state["devices"] == {}
