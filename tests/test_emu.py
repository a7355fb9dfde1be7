"""The emulator on real compiled code: calls, returns, printk, kmalloc, faults, budget, %gs.

Each test compiles a C snippet as kernel code (tests/test_emu_support.py), places it at
MODULES_VADDR the way the loader would, and runs a function through ``Emulator.call`` — the
same entry point ``do_init_module`` uses.  The rules come from reference §2.17–§2.18 and
checklist item 22 (unpatched code calls __fentry__, return thunks, retpolines).
"""
from __future__ import annotations

import pytest

from kmodlab.emu import BudgetExceeded, Emulator, Oops, Unmodelled
from kmodlab.kernel.mm import HEAP_BASE, PERCPU_BASE
from test_emu_support import EXPORTS, build, needs_gcc

pytestmark = needs_gcc


def run(src, fn="f", args=(), extra=(), **kw):
    b = build(src, extra=list(extra))
    log = []
    emu = Emulator(b.mm, b.heap, EXPORTS, printk=lambda lvl, t: log.append((lvl, t)), **kw)
    ret = emu.call(b.syms[fn], tuple(args))
    return ret, log, emu, b


def test_returns_signed_int():
    """init's value is rax read as a C int: -ENODEV comes back as -19."""
    ret, *_ = run("int f(int a, int b) { return a - b; }", args=(3, 22))
    assert ret == -19


def test_many_arguments_on_stack():
    """Arguments 7 and 8 are passed on the stack (SysV ABI) and read correctly."""
    src = "long f(long a,long b,long c,long d,long e,long g,long h,long i){return a+b+c+d+e+g+h*100+i*1000;}"
    ret, *_ = run(src, args=(1, 2, 3, 4, 5, 6, 7, 8))
    assert ret == 21 + 700 + 8000


def test_printk_levels_and_formats():
    """_printk renders with the kernel's vsprintf and takes the level from KERN_<level>."""
    src = r'''
    int _printk(const char *fmt, ...);
    int f(void) {
        _printk("\0016hello %s: %d %u %x %#x %05d|%-4d|%lld %c %%\n", "world", -5, 3000000000u,
                255, 0, 42, 7, -1234567890123LL, 'Z');
        _printk("no level %3.2s|%*d|%#o|%+d\n", "abcdef", 4, 9, 8, 5);
        _printk("\0013error %hhu %hu %zu %lx\n", 0x1ff, 0x1ffff, 12UL, 0xdeadbeefcafeUL);
        _printk("partial ");
        _printk("\001ccontinued\n");
        return _printk("\0017%s\n", (char *)0);
    }'''
    ret, log, emu, _ = run(src)
    assert log == [
        (6, "hello world: -5 3000000000 ff 0x0 00042|7   |-1234567890123 Z %"),
        (4, "no level  ab|   9|010|+5"),
        (3, "error 255 65535 12 deadbeefcafe"),
        (4, "partial continued"),
        (7, "(null)"),
    ]
    assert ret == len("(null)")
    assert [c.name for c in emu.calls] == ["_printk"] * 6


def test_snprintf_truncates_and_returns_full_length():
    src = r'''
    int snprintf(char *, unsigned long, const char *, ...);
    char buf[8];
    int f(void) { return snprintf(buf, sizeof buf, "%s-%d", "abcdef", 1234); }'''
    ret, log, emu, b = run(src)
    assert ret == len("abcdef-1234")
    assert b.mm.read(b.syms["buf"], 8) == b"abcdef-\0"


def test_kmalloc_kfree_change_the_heap():
    """kmalloc_trace/__kmalloc allocate from the persistent heap; kfree releases; __GFP_ZERO."""
    src = r'''
    struct kmem_cache;
    extern struct kmem_cache *kmalloc_caches[4][14];
    void *kmalloc_trace(struct kmem_cache *s, unsigned int flags, unsigned long size);
    void *__kmalloc(unsigned long size, unsigned int flags);
    void kfree(const void *);
    void *keep;
    int f(void) {
        char *a = kmalloc_trace(kmalloc_caches[0][6], 0xcc0 | 0x100, 40);
        char *b = __kmalloc(1000, 0xcc0);
        if (!a || !b) return -12;
        a[0] = 'x';
        kfree(b);
        keep = a;
        return a[1];        /* zeroed by __GFP_ZERO */
    }'''
    ret, log, emu, b = run(src)
    assert ret == 0
    keep = b.mm.read_u64(b.syms["keep"])
    assert keep >= HEAP_BASE and b.heap.allocs == {keep: 40}
    assert b.mm.read(keep, 2) == b"x\0"          # the write made in the CPU reached the heap
    assert [c.name for c in emu.calls] == ["kmalloc_trace", "__kmalloc", "kfree"]
    assert emu.calls[0].args[2] == 40


def test_kfree_of_bad_pointer_oopses():
    src = "void kfree(const void *); int f(void) { kfree((void *)0xffff888100000040UL); return 0; }"
    with pytest.raises(Oops) as e:
        run(src)
    assert "kfree() of invalid or already freed pointer 0xffff888100000040" in str(e.value)
    assert "RIP: 0010:kfree" in e.value.text


def test_unmodelled_call_is_named():
    src = "int request_firmware(void *, const char *, void *);\n" \
          "int f(void) { return request_firmware(0, \"x\", 0); }"
    with pytest.raises(Unmodelled) as e:
        run(src)
    assert str(e.value) == "init called unmodelled kernel function request_firmware"


def test_unmodelled_data_read_is_named():
    """A kernel data export without a model is never read as silent zeros."""
    src = "extern char init_net[]; int f(void) { return init_net[0x10]; }"
    with pytest.raises(Unmodelled) as e:
        run(src)
    assert str(e.value) == "init read unmodelled kernel data init_net+0x10"


def test_null_dereference_oops():
    src = "int f(int *p) { return p[4]; }"
    with pytest.raises(Oops) as e:
        run(src, args=(0,))
    assert e.value.addr == 0x10
    assert e.value.headline == "BUG: kernel NULL pointer dereference, address: 0000000000000010"
    assert "#PF: supervisor read access in kernel mode" in e.value.text
    assert "RIP: 0010:" in e.value.text and "mov" in e.value.text


def test_unmapped_write_oops_names_address_and_symbol():
    src = "void f(long *p) { *p = 1; }"
    sym = lambda a: "f+0x0/0x8 [t]" if 0xFFFFFFFFC0000000 <= a < 0xFFFFFFFFC0001000 else None
    with pytest.raises(Oops) as e:
        run(src, args=(0xFFFF888200000000,), symbolize=sym)
    assert e.value.headline == "BUG: unable to handle page fault for address: ffff888200000000"
    assert "#PF: supervisor write access" in e.value.text
    assert "RIP: 0010:f+0x0/0x8 [t]" in e.value.text


def test_non_canonical_address_is_general_protection_fault():
    src = "int f(int *p) { return *p; }"
    with pytest.raises(Oops) as e:
        run(src, args=(0xDEAD000000000000,))
    assert e.value.headline.startswith("general protection fault, probably for non-canonical "
                                       "address 0xdead000000000000")


def test_ud2_is_invalid_opcode():
    with pytest.raises(Oops) as e:
        run("int f(void) { __builtin_trap(); }")
    assert "invalid opcode: 0000 [#1]" in e.value.text


def test_budget_exceeded_on_infinite_loop():
    src = "volatile int x; int f(void) { for (;;) x++; }"
    with pytest.raises(BudgetExceeded) as e:
        run(src, budget=100_000)
    assert "did not return within its budget of 100,000 instructions" in str(e.value)


def test_timeout_on_infinite_loop():
    src = "volatile int x; int f(void) { for (;;) x++; }"
    with pytest.raises(BudgetExceeded) as e:
        run(src, budget=10**12, timeout_s=0.3)
    assert "time limit" in str(e.value)


def test_gs_reads_current_task_and_preempt_count():
    """%gs-relative reads of per-CPU exports see modelled values (reference §2.17)."""
    src = r'''
    extern char current_task[], __preempt_count[], this_cpu_off[];
    unsigned long out[3];
    int f(void) {
        unsigned long t, o; unsigned int pc;
        asm volatile("movq %%gs:current_task, %0" : "=r"(t));
        asm volatile("movl %%gs:__preempt_count(%%rip), %0" : "=r"(pc));
        asm volatile("movq %%gs:this_cpu_off, %0" : "=r"(o));
        out[0] = t; out[1] = pc; out[2] = o;
        return 0;
    }'''
    ret, log, emu, b = run(src)
    t, pc, o = (b.mm.read_u64(b.syms["out"] + 8 * i) for i in range(3))
    assert t == emu.current and t != 0
    assert pc == 0x80000000 and o == PERCPU_BASE


def test_gs_read_of_unmodelled_percpu_export():
    src = r'''int f(void) { unsigned long v;
        asm volatile("movq %%gs:softnet_data+8, %0" : "=r"(v)); return (int)v; }'''
    with pytest.raises(Unmodelled) as e:
        run(src)
    assert str(e.value) == "init read unmodelled kernel data softnet_data+0x8"


def test_fentry_return_thunk_and_retpoline():
    """Unpatched code: call __fentry__, jmp __x86_return_thunk, call __x86_indirect_thunk_rax."""
    src = r'''
    static int __attribute__((noinline)) g(int x) { return x * 3; }
    int (*volatile fp)(int) = g;
    int f(int a) { return fp(a) + 1; }'''
    ret, log, emu, b = run(src, args=(5,), extra=["-pg", "-mfentry", "-mindirect-branch=thunk-extern",
                                               "-mfunction-return=thunk-extern"])
    assert ret == 16
    names = [c.name for c in emu.calls]
    assert "__fentry__" in names and "__x86_indirect_thunk_rax" in names
    assert names[-1] == "__x86_return_thunk"


def test_stack_protector_panics():
    src = r'''
    void *memset(void *, int, unsigned long);
    int f(int n) { char buf[16]; memset(buf, 'A', n); return buf[3]; }'''
    ret, *_ = run(src, args=(8,), extra=["-fstack-protector-all", "-mstack-protector-guard-reg=gs",
                                       "-mstack-protector-guard-offset=40"])
    assert ret == ord("A")
    with pytest.raises(Oops) as e:
        run(src, args=(64,), extra=["-fstack-protector-all", "-mstack-protector-guard-reg=gs",
                                   "-mstack-protector-guard-offset=40"])
    assert e.value.headline.startswith(
        "Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: ")


def test_memory_changes_are_copied_back():
    src = "int counter; int f(void) { counter += 41; return counter; }"
    b = build(src)
    emu = Emulator(b.mm, b.heap, EXPORTS, printk=lambda *a: None)
    assert emu.call(b.syms["f"]) == 41
    assert emu.call(b.syms["f"]) == 82           # a second run sees the first run's write
    assert b.mm.read_u(b.syms["counter"], 4) == 82


def test_jiffies_and_msleep():
    """jiffies is modelled data (INITIAL_JIFFIES at HZ=250); msleep advances it."""
    src = r'''
    extern volatile unsigned long jiffies;
    void msleep(unsigned int);
    unsigned long out[2];
    int f(void) { out[0] = jiffies; msleep(100); out[1] = jiffies; return 0; }'''
    ret, log, emu, b = run(src)
    j0, j1 = b.mm.read_u64(b.syms["out"]), b.mm.read_u64(b.syms["out"] + 8)
    assert j0 == (-300 * 250) & 0xFFFFFFFF
    assert j1 - j0 == 26                    # msecs_to_jiffies(100) + 1


def test_call_module_runs_a_slab_constructor_reentrantly():
    """kmem_cache_alloc on a cache with a ctor runs the module's ctor (a nested call from the
    model through Emulator.call_module), which itself calls a modelled kernel function; the
    object comes back constructed and the caller's registers survive the nested run."""
    src = r'''
    void *kmem_cache_create(const char *, unsigned int, unsigned int, unsigned long, void (*)(void *));
    void *kmem_cache_alloc(void *, unsigned int);
    int _printk(const char *, ...);
    static void ctor(void *p) { ((long *)p)[0] = 0x1234; _printk("\0016ctor %d\n", 7); }
    long f(void) {
        register long keep asm("r12") = 0x55;
        void *c = kmem_cache_create("t", 16, 0, 0, ctor);
        long *o = kmem_cache_alloc(c, 0xcc0);
        asm volatile("" : "+r"(keep));
        return o[0] + keep;
    }'''
    extra = {n: e for n, e in EXPORTS.items()}
    from test_emu_support import Export
    extra["kmem_cache_create"] = Export("kmem_cache_create", 0xFFFFFFFF8130E2D0)
    extra["kmem_cache_alloc"] = Export("kmem_cache_alloc", 0xFFFFFFFF8132AEF0)
    b = build(src, exports=extra)
    log = []
    emu = Emulator(b.mm, b.heap, extra, printk=lambda lvl, t: log.append((lvl, t)))
    assert emu.call(b.syms["f"]) == 0x1234 + 0x55
    assert log == [(6, "ctor 7")]
    assert [c.name for c in emu.calls] == ["kmem_cache_create", "_printk", "kmem_cache_alloc"]


def test_call_module_fault_inside_callback_ends_the_run():
    """A fault inside a callback is the run's oops (the kernel's path would die there)."""
    src = r'''
    void *kmem_cache_create(const char *, unsigned int, unsigned int, unsigned long, void (*)(void *));
    void *kmem_cache_alloc(void *, unsigned int);
    static void ctor(void *p) { *(volatile long *)0x8 = 1; }
    int f(void) { kmem_cache_alloc(kmem_cache_create("t", 16, 0, 0, ctor), 0xcc0); return 0; }'''
    from test_emu_support import Export
    extra = dict(EXPORTS)
    extra["kmem_cache_create"] = Export("kmem_cache_create", 0xFFFFFFFF8130E2D0)
    extra["kmem_cache_alloc"] = Export("kmem_cache_alloc", 0xFFFFFFFF8132AEF0)
    b = build(src, exports=extra)
    emu = Emulator(b.mm, b.heap, extra, printk=lambda *a: None)
    with pytest.raises(Oops) as e:
        emu.call(b.syms["f"])
    assert e.value.headline == "BUG: kernel NULL pointer dereference, address: 0000000000000008"
