"""Run a module function (init, exit) on an emulated x86-64 CPU with modelled kernel functions.

The set-up follows Unicorn's own order (bindings/python/sample_x86.py), once per call:

1. ``Uc(X86, 64)``;
2. map every region of the sandbox's :class:`AddressSpace` (module core/init, heap, per-CPU
   area) page-aligned and write their bytes; map a 16 KiB kernel stack (THREAD_SIZE) with an
   unmapped guard page below it, and a private area for kernel objects the models own
   (``current``'s task_struct, the kmalloc caches) — private memory is not persisted;
3. GS base = ``PERCPU_BASE``: the per-CPU exports (``current_task``, ``__preempt_count``,
   ``cpu_number``, ``this_cpu_off``, the stack canary at ``%gs:0x28``) get their modelled
   values; any other access to the kernel's static per-CPU area is an :class:`Unmodelled` read;
4. kernel data exports with a model are mapped on their own pages at their link-time address;
   an access to any other byte of those pages, or to any other kernel-image address, is an
   :class:`Unmodelled` data access naming the nearest export — never silent zeros;
5. kernel text is mapped on demand, page by page, filled with ``int3`` and execute-only; a code
   hook on the kernel image turns arrival at an export's address into a call of its model
   (``call rel32`` and tail ``jmp`` both leave the caller's return address on the stack, so the
   model's return is a ``ret``); arrival anywhere else is an oops;
6. push a sentinel return address and start with an instruction budget and a timeout;
7. afterwards copy every region back into the AddressSpace (heap growth included).

Models (``emu/models/``) see this object as ``emu``: :meth:`read`, :meth:`write`,
:meth:`read_u`, :meth:`write_u`, :meth:`cstr`, :meth:`kmalloc`, :meth:`kfree`, :meth:`arg`,
:meth:`printk`, :meth:`oops`, :meth:`symbol`, :meth:`call_module` (a callback into module
code from inside a model), :meth:`nested` (host code that runs *other* emulators on the same
memory while this CPU is paused in a model, e.g. a nested module load), :meth:`request_module`
(the kernel's usermode ``modprobe``, through the caller's hook), and ``state`` (a JSON-able dict
the caller may persist: kernel registries such as registered crypto algorithms live there).

Unicorn and capstone are imported only when a function is actually run.
"""
from __future__ import annotations

import os

import struct
import time
from bisect import bisect_right, insort
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from ..kernel.mm import (HEAP_BASE, MODULES_VADDR, PAGE_SIZE, PERCPU_AREA_SIZE, PERCPU_BASE,
                         PERCPU_STATIC_SIZE, AddressSpace, Heap, page_align)
from . import layouts as _layouts
from . import oops as _oops
from .errors import BudgetExceeded, EmuError, Oops, Unmodelled
from .registry import DATA, FUNCTIONS, DataModel, Model, load_models

# --- the emulator's own addresses -------------------------------------------------------------
KERNEL_IMAGE_START = 0xFFFFFFFF80000000      # __START_KERNEL_map
KERNEL_IMAGE_END = MODULES_VADDR
TRAP_BASE = KERNEL_IMAGE_START               # private trap entries (sentinel first)
TRAP_SIZE = 4 * PAGE_SIZE
KERNEL_FN_BASE = TRAP_BASE + TRAP_SIZE // 2  # the upper half: the kernel's own functions,
                                             # at addresses fixed for the machine's life
SENTINEL = TRAP_BASE                         # return address of the emulated call
NESTED_SENTINEL = TRAP_BASE + 8              # return address of a call made by a model
NESTED_MAX_DEPTH = 8
PRIV_BASE = 0xFFFF888000100000               # direct map, below the kmalloc heap
PRIV_SIZE = 0x40000
THREAD_SIZE = 0x4000
STACK_BASE = 0xFFFFC90000010000              # vmap'd stack; the page below is a guard
STACK_TOP = STACK_BASE + THREAD_SIZE
TASK_STRUCT_SIZE = 0x2600                    # sizeof(struct task_struct), Debian 6.1 amd64
STACK_CANARY_OFFSET = 0x28                   # fixed_percpu_data.stack_canary (%gs:40)
STACK_CANARY = 0x6B6D6F646C616200            # low byte zero, as boot_init_stack_canary does

ARG_REGS = ("RDI", "RSI", "RDX", "RCX", "R8", "R9")
MASK64 = (1 << 64) - 1


# objects of the kernel whose fields module code may write and read back: export → the BTF
# fact giving its size (struct net: each subsystem's pernet init fills in its own part)
WRITABLE_DATA = {"init_net": ("net", "sizeof")}
VMEMMAP_START, VMEMMAP_END = 0xFFFFEA0000000000, 0xFFFFEB0000000000   # models/page.py's base, 1 TiB
_C_ESC = {1: "\\001", 9: "\\t", 10: "\\n", 34: '\\"', 92: "\\\\"}


def _show_ret(v: int) -> str:
    """A return value: -ERRNO by name for the kernel's error range (int or ERR_PTR)."""
    import errno as _e
    for bits in (64, 32):
        x = v & ((1 << bits) - 1)
        if x >= (1 << bits) - 4095:
            n = (1 << bits) - x
            name = _e.errorcode.get(n)
            if name:
                return f"-{name}"
    return str(v) if v < 0x10000 else f"{v:#x}"


@dataclass
class CallRecord:
    """One kernel function the module called: what ``--trace``/``--json`` show."""
    name: str
    args: tuple[int, ...]
    ret: int | None            # rax as the model returned it (None for void functions)
    caller: int                # the return address (where in the module the call came from)
    note: str = ""             # model-specific detail, e.g. the rendered printk text
    shown: tuple[str, ...] = ()   # --trace: each argument decoded when the call was made

    def render(self, symbolize: Callable[[int], str] | None = None) -> str:
        args = ", ".join(self.shown) if self.shown else ", ".join(f"{a:#x}" for a in self.args)
        ret = "" if self.ret is None else f" = {_show_ret(self.ret)}"
        where = symbolize(self.caller) if symbolize else f"{self.caller:#x}"
        note = f"  ; {self.note!r}" if self.note else ""
        return f"{where}: {self.name}({args}){ret}{note}"


class _Fail(Exception):
    """Internal: carries an EmuError out of a hook (the hook stops the CPU first)."""


def _signed32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _trap_model(name: str, fn: Callable, control: bool) -> Model:
    import inspect
    params = list(inspect.signature(fn).parameters.values())[1:]
    nargs = sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
    return Model(name, fn, nargs, False, control)


def export_tables(exports: dict[str, Any]) -> tuple:
    """The lookups an emulator needs from the kernel's exports: text address → names, and the
    kernel-image and per-CPU exports sorted by address (with their address lists, for bisect).
    Pure: a machine computes it once and hands it to each emulator it creates."""
    text: dict[int, list[str]] = {}
    kimg: list[tuple[int, str]] = []
    pcpu: list[tuple[int, str]] = []
    for name, e in exports.items():
        kind = getattr(e, "kind", "text")
        if kind == "percpu":
            pcpu.append((e.addr, name))
        elif kind != "abs":
            kimg.append((e.addr, name))
            if kind == "text":
                text.setdefault(e.addr, []).append(name)
    kimg.sort()
    pcpu.sort()
    return text, kimg, pcpu, [a for a, _ in kimg], [a for a, _ in pcpu]


class Emulator:
    """Runs module functions against the sandbox kernel's memory and the modelled kernel."""

    def __init__(self, mm: AddressSpace, heap: Heap, exports: dict[str, Any], *,
                 printk: Callable[[int, str], None],
                 symbolize: Callable[[int], str | None] | None = None,
                 budget: int = 50_000_000, timeout_s: float = 30.0, trace: bool = False,
                 state: dict | None = None, pid: int = 1, comm: str = "insmod",
                 request_module: Callable[[str, bool], int] | None = None,
                 modprobe_path: str = "/sbin/modprobe", tables: tuple | None = None,
                 profile: Any = None):
        load_models()
        self.mm, self.heap, self.exports = mm, heap, exports
        # the running kernel's struct layouts (profile.structs, from its BTF: emu/layouts.py).
        # Without ``profile``, a machine's own (the owner of a bound ``printk``); without
        # either, None: the models' own kernel, Debian 6.1 (unit tests on their own exports).
        if profile is None:
            profile = getattr(getattr(printk, "__self__", None), "profile", None)
        # the machine whose kernel this CPU runs (the owner of a bound ``printk``): its module
        # list is what module references (try_module_get) count on; None in unit tests
        self.kernel = getattr(printk, "__self__", None)
        # host-side effects of models outside ``state`` (a module's refcount), undone in reverse
        # when an init stops, as the machine undoes the rest of that init
        self.undo: list[Callable[[], None]] = []
        self.structs: dict | None = getattr(profile, "structs", None)
        # the running kernel's argument counts of its exported functions (profile.prototypes,
        # from its BTF): a model that reads another number of arguments refuses (_run_model)
        self.prototypes = getattr(profile, "prototypes", None)
        self.percpu_static = getattr(profile, "percpu_static_size", None) or PERCPU_STATIC_SIZE
        # the running kernel's release, for the models whose behaviour follows it (misc minors)
        from ..kernel.module.release import kernel_version
        self.kernel_version = kernel_version(getattr(profile, "release", "") or "6.1")
        self._refusals: dict[str, str | None] = {}
        self._printk_cb, self._symbolize_cb = printk, symbolize
        # KMODLAB_EMU_TIMEOUT (seconds): a shorter wall limit per run for fuzzing and sweeps
        # (a looping init then ends as "budget" sooner; the outcome is the same kind)
        env_limit = os.environ.get("KMODLAB_EMU_TIMEOUT")
        if env_limit:
            try:
                timeout_s = max(0.05, float(env_limit))
            except ValueError:
                pass
        self.budget, self.timeout_s, self.trace = budget, timeout_s, trace
        self.state = state if state is not None else {}
        self.pid, self.comm = pid, comm
        self._request_module_cb = request_module
        self.modprobe_path = modprobe_path      # kernel/kmod.c modprobe_path ("" = disabled)
        self.calls: list[CallRecord] = []
        self.trace_log: list[str] = []
        self.uptime_ns = 0
        self.what = "init"
        self._cont: tuple[int, str] | None = None      # an unterminated printk line
        # export tables (``tables``: the same, computed once by the caller for these exports)
        self._text, self._kimg_sorted, self._pcpu_sorted, self._kimg_addrs, self._pcpu_addrs = \
            tables if tables is not None else export_tables(exports)
        self.uc = None

    # ------------------------------------------------------------------ public entry point
    def call(self, addr: int, args: tuple[int, ...] = (), *, what: str = "init") -> int:
        """Run the function at ``addr`` with integer ``args``; return rax as a signed C int.

        Raises :class:`Unmodelled`, :class:`Oops` or :class:`BudgetExceeded`; the memory the
        function changed is copied back into the AddressSpace in every case.
        """
        from unicorn import UcError
        from unicorn.x86_const import UC_X86_REG_RAX, UC_X86_REG_RIP
        self.what = what
        self._in_model = False
        self._error: EmuError | BaseException | None = None
        self._done = False
        uc = self._setup()
        self._set_args(uc, args)
        t0 = time.monotonic()
        try:
            uc.emu_start(addr, SENTINEL, timeout=int(self.timeout_s * 1e6), count=self.budget)
        except UcError as e:
            if self._error is None:
                self._error = self._uc_error(uc, e)
        finally:
            self._flush_cont()
            self._copy_back(uc)
        elapsed = time.monotonic() - t0
        if self._error is not None:
            self._undo_effects(what)
            raise self._error
        rip = uc.reg_read(UC_X86_REG_RIP)
        if not self._done and rip != SENTINEL:
            where = self.symbol(rip)
            self._undo_effects(what)
            polls = self.__dict__.get("jiffies_polls", 0)
            if elapsed >= self.timeout_s * 0.99:
                raise BudgetExceeded(what, seconds=self.timeout_s, rip=rip, where=where,
                                     jiffies_polls=polls)
            raise BudgetExceeded(what, instructions=self.budget, rip=rip, where=where,
                                 jiffies_polls=polls)
        return _signed32(uc.reg_read(UC_X86_REG_RAX))

    def _undo_effects(self, what: str) -> None:
        """A stopped init is undone whole (the machine restores its registries and memory):
        the models' effects on host objects go too, newest first."""
        if what == "init":
            while self.undo:
                self.undo.pop()()
        self.undo.clear()

    # ------------------------------------------------------------------ set-up
    def _setup(self):
        from unicorn import (UC_ARCH_X86, UC_HOOK_CODE, UC_HOOK_INSN_INVALID, UC_HOOK_INTR,
                             UC_HOOK_MEM_INVALID, UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE,
                             UC_MODE_64, UC_PROT_ALL, UC_PROT_EXEC, Uc)
        from unicorn.unicorn_const import UC_TLB_VIRTUAL
        from unicorn.x86_const import UC_X86_REG_GS_BASE
        uc = self.uc = Uc(UC_ARCH_X86, UC_MODE_64)
        # No guest page tables: addresses are used as they are.  (The default CPU TLB treats
        # them as physical and truncates kernel addresses to 52 bits.)
        uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)
        self._mapped: list[tuple[int, int]] = []
        self._prot_all = UC_PROT_ALL
        # 2. the sandbox's regions; the per-CPU area exists even before any module uses it
        if "percpu" not in self.mm.regions:
            self.mm.map("percpu", PERCPU_BASE, PERCPU_AREA_SIZE)
        self._region_len: dict[str, int] = {}
        self._region_base: dict[str, int] = {}
        self._shared: dict[str, tuple[bytearray, Any]] = {}     # regions mapped in place
        # the per-CPU area and the heap now; every other region (module memory) when it is
        # first touched (_fault_in): a run's set-up does not grow with the modules loaded
        for name in ("percpu", "heap"):
            if name in self.mm.regions:
                self._sync_region(name)
        # private memory: traps, kernel objects, stack
        self._map(TRAP_BASE, TRAP_BASE + TRAP_SIZE, UC_PROT_EXEC)
        uc.mem_write(TRAP_BASE, b"\xcc" * TRAP_SIZE)
        self._traps: dict[int, Model] = {}
        self._trap_next = TRAP_BASE + 16
        self._map(PRIV_BASE, PRIV_BASE + PRIV_SIZE)
        self._priv_next = PRIV_BASE
        self._map(STACK_BASE, STACK_TOP)
        self.current = self.priv_alloc(TASK_STRUCT_SIZE)
        self._data_ranges: list[tuple[int, int, str]] = []
        # 3. per-CPU: GS base and the modelled per-CPU exports
        uc.reg_write(UC_X86_REG_GS_BASE, PERCPU_BASE)
        self._pcpu_allowed = [(STACK_CANARY_OFFSET, STACK_CANARY_OFFSET + 8, "stack_canary")]
        self.write_u(PERCPU_BASE + STACK_CANARY_OFFSET, 8, STACK_CANARY)
        # 4. kernel data exports with models
        data_pages: set[int] = set()
        pending: list[tuple[int, DataModel, str]] = []
        self._refused_data: dict[str, str] = {}
        for name, dm in DATA.items():
            e = self.exports.get(dm.export or name)
            if e is None:
                continue
            why = self.layout_refusal(dm.file)
            if why is not None:                  # left unmapped: an access is Unmodelled
                self._refused_data[dm.export or name] = why
                continue
            if getattr(e, "kind", "") == "percpu":
                size = dm.size
                if size is None:                 # the model's bytes are what is modelled
                    size = len(dm.fn(self))
                if size:
                    self._pcpu_allowed.append((e.addr, e.addr + size, name))
                    pending.append((PERCPU_BASE + e.addr, dm, name))
            else:
                off = dm.offset
                if dm.member is not None and self.structs is not None:
                    off = (self.structs.get(dm.member[0]) or {}).get(dm.member[1])
                    if off is None:              # this kernel has no such member: unmapped
                        continue
                a = e.addr + off
                for p in range(a & ~(PAGE_SIZE - 1), page_align(a + dm.size), PAGE_SIZE):
                    data_pages.add(p)
                self._data_ranges.append((a, a + dm.size, name))
                pending.append((a, dm, name))
        # kernel structures whose fields module code writes and reads back (a pernet init
        # storing its socket in init_net): the whole object's pages are hooked, and the bytes a
        # module wrote are known from then on (``state["written_data"]``); a byte no model
        # gives and no module wrote still reads as unmodelled data
        self._writable: list[tuple[int, int, str]] = []
        for export, (struct, member) in WRITABLE_DATA.items():
            e = self.exports.get(export)
            size = ((self.structs or {}).get(struct) or {}).get(member)
            if e is None or not size:
                continue
            self._writable.append((e.addr, e.addr + size, export))
            for p in range(e.addr & ~(PAGE_SIZE - 1), page_align(e.addr + size), PAGE_SIZE):
                data_pages.add(p)
        for p in sorted(data_pages):
            self._map(p, p + PAGE_SIZE)
        self._written: dict[int, int] = {}         # start → end, of module-written bytes
        for a, hexed in self.state.get("written_data", {}).items():
            raw = bytes.fromhex(hexed)
            self.uc.mem_write(int(a), raw)
            self._written[int(a)] = int(a) + len(raw)
            self._data_ranges.append((int(a), int(a) + len(raw), "written"))
        self._persisted: list[tuple[int, DataModel]] = []
        kept = self.state.get("kernel_data", {})
        for addr, dm, name in pending:
            if dm.persist:
                self._persisted.append((addr, dm))
            content = bytes.fromhex(kept[name]) if dm.persist and name in kept else dm.fn(self)
            if dm.size is not None and len(content) > dm.size:
                raise ValueError(f"model of {name} gives {len(content)} bytes > {dm.size}")
            self.write(addr, content)
        self._data_ranges.sort()
        # 5. hooks
        uc.hook_add(UC_HOOK_CODE, self._on_kernel_code, begin=KERNEL_IMAGE_START,
                    end=KERNEL_IMAGE_END - 1)
        uc.hook_add(UC_HOOK_MEM_INVALID, self._on_invalid_mem)
        uc.hook_add(UC_HOOK_INTR, self._on_intr)
        from unicorn import UC_HOOK_INSN
        from unicorn.x86_const import UC_X86_INS_IN, UC_X86_INS_OUT
        uc.hook_add(UC_HOOK_INSN, self._on_port_in, None, 1, 0, UC_X86_INS_IN)
        uc.hook_add(UC_HOOK_INSN, self._on_port_out, None, 1, 0, UC_X86_INS_OUT)
        uc.hook_add(UC_HOOK_INSN_INVALID, self._on_insn_invalid)
        uc.hook_add(UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, self._on_pcpu_access,
                    begin=PERCPU_BASE, end=PERCPU_BASE + self.percpu_static - 1)
        for s, e in self._merge(sorted(data_pages)):
            uc.hook_add(UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, self._on_data_access,
                        begin=s, end=e - 1)
        return uc

    @staticmethod
    def _merge(pages: list[int]) -> Iterator[tuple[int, int]]:
        start = prev = None
        for p in pages:
            if start is None:
                start = prev = p
            elif p == prev + PAGE_SIZE:
                prev = p
            else:
                yield start, prev + PAGE_SIZE
                start = prev = p
        if start is not None:
            yield start, prev + PAGE_SIZE

    def _map(self, start: int, end: int, prot: int | None = None) -> None:
        """Map the pages of [start, end) that are not mapped yet."""
        start &= ~(PAGE_SIZE - 1)
        end = page_align(end)
        gaps, cur = [], start
        for s, e in sorted(self._mapped):
            if e <= cur or s >= end:
                continue
            if s > cur:
                gaps.append((cur, s))
            cur = max(cur, e)
        if cur < end:
            gaps.append((cur, end))
        for s, e in gaps:
            self.uc.mem_map(s, e - s, self._prot_all if prot is None else prot)
            self._mapped.append((s, e))

    def _sync_region(self, name: str) -> None:
        """Map a region of the AddressSpace (or its growth) and write its new bytes.

        A region of whole pages other than the heap (module layouts, the per-CPU area: their
        size is fixed once allocated) is mapped *in place* (``mem_map_ptr`` on the bytearray
        itself): the CPU and the AddressSpace share its bytes, so nothing is copied in or out,
        and the cost of a run does not grow with the memory of the modules already loaded.
        The exported buffer also makes Python refuse to resize that bytearray while it is
        mapped.  The heap grows during a run, so it is copied."""
        r = self.mm.regions[name]
        old = self._region_len.get(name, 0)
        self._region_base[name] = r.base
        if not old and self._shareable(r):
            import ctypes
            buf = (ctypes.c_char * len(r.data)).from_buffer(r.data)
            self.uc.mem_map_ptr(r.base, len(r.data), self._prot_all, ctypes.addressof(buf))
            self._mapped.append((r.base, r.end))
            self._shared[name] = (r.data, buf)
            self._region_len[name] = len(r.data)
            return
        if len(r.data) > old:
            self._map(r.base + old, r.end)
            self.uc.mem_write(r.base + old, bytes(r.data[old:]))
            self._region_len[name] = len(r.data)

    def _fault_in(self, addr: int, size: int = 1) -> bool:
        """Map the AddressSpace regions under [addr, addr+size) that this CPU has not mapped
        yet; False if there is none (the access is a real fault)."""
        done = False
        a, end = addr & MASK64, (addr & MASK64) + max(size, 1)
        while a < end:
            r = self.mm.find(a)
            if r is None:
                return done
            if r.name not in self._region_len:
                self._sync_region(r.name)
                done = True
            a = r.end
        return done

    def _shareable(self, r) -> bool:
        if r.name == "heap" or not r.data or (r.base | len(r.data)) & (PAGE_SIZE - 1):
            return False
        return all(e <= r.base or s >= r.end for s, e in self._mapped)

    def _unmap_shared(self, name: str) -> None:
        """Unmap an in-place region as the one block it was mapped as, releasing its buffer."""
        base, n = self._region_base.pop(name), self._region_len.pop(name)
        self.uc.mem_unmap(base, n)
        self._mapped.remove((base, base + n))
        del self._shared[name]

    def close(self) -> None:
        """Unmap the in-place regions, releasing their buffers (the CPU is not used again)."""
        if self.uc is not None:
            for name in list(self._shared):
                self._unmap_shared(name)

    def _unmap(self, start: int, end: int, keep: set[int] = frozenset()) -> None:
        """Unmap the mapped pages of [start, end), except the pages in ``keep``."""
        start &= ~(PAGE_SIZE - 1)
        end = page_align(end)
        pages = [p for p in range(start, end, PAGE_SIZE) if p not in keep]
        if not pages:
            return
        drop = set(pages)
        out: list[tuple[int, int]] = []
        for s, e in self._mapped:
            if e <= start or s >= end:
                out.append((s, e))
                continue
            run = s                            # split [s, e) around the dropped pages
            for p in range(s, e, PAGE_SIZE):
                if p in drop:
                    if p > run:
                        out.append((run, p))
                    self.uc.mem_unmap(p, PAGE_SIZE)
                    run = p + PAGE_SIZE
            if run < e:
                out.append((run, e))
        self._mapped = out

    def _resync_regions(self) -> None:
        """Make this CPU's view of the AddressSpace current again after other code changed it:
        regions that are gone (or moved) are unmapped, regions that shrank lose their tail
        pages, new regions and growth are mapped, and every region's bytes are rewritten."""
        live: set[int] = set()
        for r in self.mm.regions.values():
            live.update(range(r.base & ~(PAGE_SIZE - 1), page_align(r.end), PAGE_SIZE))
        for name in list(self._region_len):
            base, n = self._region_base[name], self._region_len[name]
            r = self.mm.regions.get(name)
            shared = self._shared.get(name)
            if shared and (r is None or r.base != base or shared[0] is not r.data):
                self._unmap_shared(name)         # gone, moved, or another buffer
            elif r is None or r.base != base:
                self._unmap(base, base + n, live)
                del self._region_len[name], self._region_base[name]
            elif len(r.data) < n:
                self._unmap(page_align(base + len(r.data)), base + n, live)
                self._region_len[name] = len(r.data)
        for r in list(self.mm.regions.values()):
            old = self._region_len.get(r.name, 0)
            if not old and r.name not in ("percpu", "heap"):
                continue                       # not mapped here: faulted in when touched
            self._sync_region(r.name)          # growth: mapped and written
            if old and r.name not in self._shared:
                self.uc.mem_write(r.base, bytes(r.data[:old]))

    def nested(self, fn: Callable[[], Any]) -> Any:
        """Run host code ``fn`` that may use this AddressSpace and heap through *other*
        emulators (a nested module load: another module's init on its own CPU) while this CPU
        is paused inside a model; return what ``fn`` returns.

        Before ``fn``: an unterminated printk line is flushed and every region is copied back
        into the AddressSpace, so ``fn`` sees what this CPU wrote.  After it (also when it
        raises): new regions (the other module's core, heap growth) are mapped into this CPU,
        regions that are gone (freed init sections, an unloaded module) are unmapped, and every
        region's bytes are written again, as ``fn`` may have changed any of them (shared kernel
        memory, the heap, the per-CPU area).  ``state`` is shared by reference: registrations
        ``fn`` made are visible to this CPU's models at once.  Private memory (stack, the
        models' kernel objects) and registers are this CPU's own and are not touched.  This
        run's timeout keeps counting meanwhile (Unicorn's timer cannot be paused): the nested
        work is part of the time the outer function takes.
        """
        self._flush_cont()
        self._copy_back(self.uc)
        try:
            return fn()
        finally:
            self._resync_regions()
            self._persist_in()

    def request_module(self, name: str, wait: bool) -> int:
        """kernel/kmod.c call_modprobe: run ``modprobe -q -- NAME`` as the usermode helper and
        return what ``call_usermodehelper_exec`` returns — with ``wait`` (UMH_WAIT_PROC) the
        helper's wait status (0, or exit code << 8: 256 when modprobe fails), without it
        (UMH_WAIT_EXEC) 0 once the helper started; a negative errno if it could not run.

        The caller's hook (``request_module=`` of the constructor) does the work inside
        :meth:`nested`.  Without a hook the kernel has no module tree: modprobe finds nothing
        and exits 1."""
        if self._request_module_cb is None:
            return 256 if wait else 0
        return self.nested(lambda: self._request_module_cb(name, wait))

    def _persist_out(self) -> None:
        """Kernel variables module code may write (``data(..., persist=True)``): their bytes
        now, into ``state`` (a stopped init's state is rolled back by the machine); and the
        bytes module code wrote into a WRITABLE_DATA object, merged into runs."""
        for addr, dm in getattr(self, "_persisted", ()):
            self.state.setdefault("kernel_data", {})[dm.name] = \
                bytes(self.uc.mem_read(addr, dm.size)).hex()
        runs: list[list[int]] = []
        for a, e in sorted(getattr(self, "_written", {}).items()):
            if runs and a <= runs[-1][1]:
                runs[-1][1] = max(runs[-1][1], e)
            else:
                runs.append([a, e])
        if runs:
            self.state["written_data"] = {str(a): bytes(self.uc.mem_read(a, e - a)).hex()
                                          for a, e in runs}

    def _persist_in(self) -> None:
        kept = self.state.get("kernel_data", {})
        for addr, dm in getattr(self, "_persisted", ()):
            if dm.name in kept:
                self.uc.mem_write(addr, bytes.fromhex(kept[dm.name]))

    def _copy_back(self, uc) -> None:
        self._persist_out()
        for r in self.mm.regions.values():
            n = self._region_len.get(r.name)
            if n and r.name not in self._shared:
                r.data[:n] = uc.mem_read(r.base, n)

    def _set_args(self, uc, args: tuple[int, ...]) -> None:
        import unicorn.x86_const as X
        for reg, v in zip(ARG_REGS, args):
            uc.reg_write(getattr(X, f"UC_X86_REG_{reg}"), v & MASK64)
        rest = list(args[6:])
        sp = STACK_TOP - 64
        if len(rest) % 2:                         # keep rsp+8 16-byte aligned at entry
            sp -= 8
        for v in reversed(rest):
            sp -= 8
            uc.mem_write(sp, struct.pack("<Q", v & MASK64))
        sp -= 8
        uc.mem_write(sp, struct.pack("<Q", SENTINEL))
        uc.reg_write(X.UC_X86_REG_RSP, sp)

    # ------------------------------------------------------------------ hooks
    def _stop(self, err: BaseException) -> None:
        if self._error is None:
            self._error = err
        self.uc.emu_stop()

    def _on_kernel_code(self, uc, address, size, _user):
        if self._error is not None or self._done:
            return
        if address == SENTINEL:
            self._done = True
            uc.emu_stop()
            return
        if address == NESTED_SENTINEL:
            self._nested_done = True
            uc.emu_stop()
            return
        try:
            m = self._traps.get(address)
            if m is None:
                m = self._function_model(address)
            self._run_model(uc, m, address)
        except _Fail as f:
            self._stop(f.args[0])
        except EmuError as e:
            self._stop(e)
        except Exception as e:                   # a bug in a model: report it, don't hide it
            self._stop(e)

    def _function_model(self, address: int) -> Model:
        names = self._text.get(address)
        if not names:
            near = self._nearest_kimg(address)
            raise _Fail(self._make_oops(
                address, address,
                [f"BUG: {self.what} jumped into kernel text at {address:#x} "
                 f"({near or 'no export'}), which is not the start of an exported function",
                 f"Oops: 0010 {_oops.OOPS_TAIL}"]))
        for n in sorted(names):
            m = FUNCTIONS.get(n)
            if m is not None:
                return m
        raise Unmodelled(min(names, key=lambda n: (n.startswith("_"), n)), what=self.what)

    def layout_refusal(self, file: str) -> str | None:
        """Why the models of models/<file>.py refuse on this kernel (a struct layout they
        assume differs from its BTF's, see emu/layouts.py), or None."""
        if file not in self._refusals:
            self._refusals[file] = _layouts.refusal(file, self.structs)
        return self._refusals[file]

    def prototype_refusal(self, m: Model) -> str | None:
        """Why a model refuses because the running kernel's function of that name takes other
        arguments than the model reads (its BTF prototype, profile.prototypes), or None.  A
        release that changes a function's parameters (6.12's ``__kmalloc_node_noprof`` gained
        the caller's kmem_buckets) must get its own model rather than misread its registers."""
        proto = self.prototypes.get(m.name) if self.prototypes is not None else None
        if proto is None or m.control or (proto[0], bool(proto[1])) == (m.nargs, m.varargs):
            return None
        want = f"{proto[0]}{' and more' if proto[1] else ''}"
        got = f"{m.nargs}{' and more' if m.varargs else ''}"
        return f"this kernel's {m.name} takes {want} arguments, its model reads {got}"

    def _data_name(self, name: str) -> str:
        why = self._refused_data.get(name) if name else None
        return f"{name} ({why})" if why else name

    def _run_model(self, uc, m: Model, address: int) -> None:
        import unicorn.x86_const as X
        why = self.layout_refusal(m.file) or self.prototype_refusal(m)
        if why is not None:
            raise Unmodelled(f"{m.name} ({why})", what=self.what)
        rsp = uc.reg_read(X.UC_X86_REG_RSP)
        caller = self.read_u(rsp, 8)
        self._model_addr, self._model_sp, self._model_name = address, rsp, m.name
        self._in_model = True
        try:
            if m.control:
                m.fn(self)
                self.calls.append(CallRecord(m.name, (), None, caller))
                return
            args = tuple(self.arg(i) for i in range(m.nargs))
            shown = tuple(self.show_arg(a) for a in args) if self.trace else ()
            self._note = ""
            ret = m.fn(self, *args)
        finally:
            self._in_model = False
        rec = CallRecord(m.name, args, None if ret is None else ret & MASK64, caller, self._note,
                         shown)
        self.calls.append(rec)
        if self.trace:
            self.trace_log.append(rec.render(self.symbol))
        if ret is not None:
            uc.reg_write(X.UC_X86_REG_RAX, ret & MASK64)
        uc.reg_write(X.UC_X86_REG_RSP, rsp + 8)
        uc.reg_write(X.UC_X86_REG_RIP, caller)

    def _on_invalid_mem(self, uc, access, address, size, value, _user):
        from unicorn import (UC_MEM_FETCH_PROT, UC_MEM_FETCH_UNMAPPED, UC_MEM_READ_PROT,
                             UC_MEM_READ_UNMAPPED, UC_MEM_WRITE_PROT, UC_MEM_WRITE_UNMAPPED,
                             UC_PROT_EXEC)
        if self._error is not None:
            return False
        if access in (UC_MEM_READ_UNMAPPED, UC_MEM_WRITE_UNMAPPED, UC_MEM_FETCH_UNMAPPED) and \
                self._fault_in(address, size):
            return True                           # module memory not mapped into this CPU yet
        fetch = access in (UC_MEM_FETCH_UNMAPPED, UC_MEM_FETCH_PROT)
        write = access in (UC_MEM_WRITE_UNMAPPED, UC_MEM_WRITE_PROT)
        if (access == UC_MEM_FETCH_UNMAPPED and KERNEL_IMAGE_START <= address < KERNEL_IMAGE_END
                and _oops.is_canonical(address)):
            page = address & ~(PAGE_SIZE - 1)     # kernel text: int3 page, execute-only
            self._map(page, page + PAGE_SIZE, UC_PROT_EXEC)
            uc.mem_write(page, b"\xcc" * PAGE_SIZE)
            return True
        present = access in (UC_MEM_READ_PROT, UC_MEM_WRITE_PROT, UC_MEM_FETCH_PROT)
        self._stop(self._fault_error(address, size, write, fetch, present))
        return False

    def _on_pcpu_access(self, uc, access, address, size, value, _user):
        from unicorn import UC_MEM_WRITE
        off = address - PERCPU_BASE
        for s, e, _n in self._pcpu_allowed:
            if s <= off and off + size <= e:
                return
        self._stop(Unmodelled(self._data_name(self._pcpu_name(off)), kind="data",
                              what=self.what, write=access == UC_MEM_WRITE))

    def _on_data_access(self, uc, access, address, size, value, _user):
        from unicorn import UC_MEM_WRITE
        i = bisect_right(self._data_ranges, (address, float("inf"), "")) - 1
        if i >= 0:
            s, e, _n = self._data_ranges[i]
            if s <= address and address + size <= e:
                if _n in ("jiffies", "jiffies_64"):       # reset by time.advance (a sleep)
                    self.jiffies_polls = self.__dict__.get("jiffies_polls", 0) + 1
                return
        if access == UC_MEM_WRITE and any(s <= address and address + size <= e
                                          for s, e, _n in self._writable):
            self._written[address] = max(self._written.get(address, 0), address + size)
            insort(self._data_ranges, (address, address + size, "written"))
            return
        self._stop(Unmodelled(self._data_name(self._nearest_kimg(address)) or f"{address:#x}",
                              kind="data", what=self.what, write=access == UC_MEM_WRITE))

    # port I/O: the oracle's QEMU machine (emu/ioport.py)
    def _port_device(self, port: int, size: int) -> str | None:
        pm = self.__dict__.get("_portmap")
        if pm is None:
            from .ioport import PortMap
            tree = None
            try:
                from ..kernel.registrations import boot_resources
                prof = getattr(self.kernel, "profile", None)
                tree = boot_resources(getattr(prof, "release", "6.1.0-56-amd64"),
                                      self.export_addr)["ioport"]
            except (LookupError, OSError):
                pass                                 # no record: the fixed devices only
            pm = self._portmap = PortMap(tree)
        return pm.device(port, size)

    def _on_port_in(self, uc, port, size, _user):
        dev = self._port_device(port, size)
        if dev is None:                              # unassigned: the bus floats high
            return (1 << (8 * size)) - 1
        self._stop(Unmodelled(f"port {port:#x} ({dev})", kind="data", what=self.what,
                              write=False))
        return 0

    def _on_port_out(self, uc, port, size, value, _user):
        dev = self._port_device(port, size)
        if dev is None:                              # unassigned (or a dummy): dropped
            return
        self._stop(Unmodelled(f"port {port:#x} ({dev})", kind="data", what=self.what,
                              write=True))

    def _on_intr(self, uc, intno, _user):
        import unicorn.x86_const as X
        if self._error is not None:
            return
        rip = uc.reg_read(X.UC_X86_REG_RIP)
        if intno == 3:
            rip -= 1
            head = [f"int3: 0000 {_oops.OOPS_TAIL}"]
        elif intno == 6:
            insn = self._unemulated_insn(rip)
            if insn:
                self._stop(Unmodelled(insn, kind="instruction", what=self.what))
                return
            head = self._ud_headline(rip)
        elif intno == 0:
            head = [f"divide error: 0000 {_oops.OOPS_TAIL}"]
        elif intno == 13:
            head = [f"general protection fault: 0000 {_oops.OOPS_TAIL}"]
        else:
            head = [f"BUG: unexpected CPU exception {intno} in kernel mode",
                    f"Oops: 0000 {_oops.OOPS_TAIL}"]
        self._stop(self._make_oops(rip, rip, head))

    def _on_insn_invalid(self, uc, _user):
        import unicorn.x86_const as X
        rip = uc.reg_read(X.UC_X86_REG_RIP)
        insn = self._unemulated_insn(rip)
        self._stop(Unmodelled(insn, kind="instruction", what=self.what) if insn else
                   self._make_oops(rip, rip, self._ud_headline(rip)))
        return False

    def _unemulated_insn(self, rip: int) -> str | None:
        """The mnemonic if the bytes at ``rip`` are a valid x86-64 instruction other than the
        deliberate ud0/ud1/ud2 (BUG/WARN): Unicorn's CPU lacks some the guest's CPU has (ADX's
        adcx/adox…), and raising #UD for those would be an oops the real kernel never has."""
        try:
            code = self.read(rip, 16)
        except EmuError:
            return None
        from capstone import CS_ARCH_X86, CS_MODE_64, Cs
        insn = next(Cs(CS_ARCH_X86, CS_MODE_64).disasm(code, rip, 1), None)
        if insn is None or insn.mnemonic in ("ud0", "ud1", "ud2"):
            return None
        return insn.mnemonic

    def _ud_headline(self, rip: int) -> list[str]:
        try:
            ud2 = self.read(rip, 2) == b"\x0f\x0b"
        except EmuError:
            ud2 = False
        head = [f"invalid opcode: 0000 {_oops.OOPS_TAIL}"]
        if ud2:     # BUG()/WARN() are ud2 with a __bug_table entry; the loader owns the table
            head.insert(0, f"kernel BUG at {self.symbol(rip)} (ud2)")
        return head

    def _uc_error(self, uc, e) -> EmuError:
        import unicorn.x86_const as X
        rip = uc.reg_read(X.UC_X86_REG_RIP)
        return self._make_oops(rip, rip, [f"BUG: CPU emulation stopped: {e}",
                                          f"Oops: 0000 {_oops.OOPS_TAIL}"])

    # ------------------------------------------------------------------ faults and names
    def _fault_error(self, address: int, size: int, write: bool, fetch: bool,
                     present: bool = False) -> EmuError:
        """The error for an access no mapping allows: unmodelled kernel data, #GP, or #PF."""
        if (not fetch and KERNEL_IMAGE_START + TRAP_SIZE <= address < KERNEL_IMAGE_END):
            near = self._nearest_kimg(address)
            if near:
                return Unmodelled(self._data_name(near), kind="data", what=self.what,
                                  write=write)
        if VMEMMAP_START <= address < VMEMMAP_END:
            # the struct page of some page (virt_to_page, page flags): real memory in the
            # kernel, not modelled here — the access stops by name rather than oopsing
            return Unmodelled(f"vmemmap (struct page at {address:#x})", kind="data",
                              what=self.what, write=write)
        rip = self._fault_rip()
        if not _oops.is_canonical(address):
            head = [f"general protection fault, probably for non-canonical address "
                    f"{address:#x}: 0000 {_oops.OOPS_TAIL}"]
        else:
            head = _oops.pf_headline(address, write, fetch, present)
            if STACK_BASE - PAGE_SIZE <= address < STACK_BASE:
                head.insert(1, "BUG: stack guard page was hit (kernel stack overflow)")
        return self._make_oops(address, rip, head)

    def _fault_rip(self) -> int:
        import unicorn.x86_const as X
        if getattr(self, "_in_model", False):
            return self._model_addr
        return self.uc.reg_read(X.UC_X86_REG_RIP)

    def _make_oops(self, addr: int, rip: int, head: list[str]) -> Oops:
        import unicorn.x86_const as X
        uc = self.uc
        regs = {}
        for r in ("RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "RSP", "R8", "R9", "R10",
                  "R11", "R12", "R13", "R14", "R15", "EFLAGS"):
            regs[r] = uc.reg_read(getattr(X, f"UC_X86_REG_{r}"))
        regs["R08"], regs["R09"], regs["RIP"] = regs["R8"], regs["R9"], rip
        try:
            code = bytes(uc.mem_read(rip, 15))
        except Exception:                       # noqa: BLE001 - unmapped or execute-only
            code = None
        trace = []
        sp = regs["RSP"]
        while STACK_BASE <= sp < STACK_TOP and len(trace) < 16:
            try:
                v = struct.unpack("<Q", bytes(uc.mem_read(sp, 8)))[0]
            except Exception:                   # noqa: BLE001 - a stack page not mapped: the walk ends
                break
            if v != SENTINEL and (self.mm.find(v) and self.mm.find(v).name.endswith(
                    (":core", ":init")) or KERNEL_IMAGE_START + TRAP_SIZE <= v < KERNEL_IMAGE_END):
                trace.append(self.symbol(v))
            sp += 8
        text = _oops.render(head, regs=regs, code=code, sym=self.symbol(rip), trace=trace,
                            pid=self.pid, comm=self.comm)
        return Oops(addr, rip, text)

    def _nearest_kimg(self, addr: int) -> str | None:
        i = bisect_right(self._kimg_addrs, addr) - 1
        if i < 0 or addr - self._kimg_addrs[i] >= 0x100000:
            return None
        base, name = self._kimg_sorted[i]
        return name if addr == base else f"{name}+{addr - base:#x}"

    def _pcpu_name(self, off: int) -> str:
        i = bisect_right(self._pcpu_addrs, off) - 1
        if i < 0:
            return f"percpu+{off:#x}"
        base, name = self._pcpu_sorted[i]
        return name if off == base else f"{name}+{off - base:#x}"

    def symbol(self, addr: int) -> str:
        """``name+0xoff/0xsize [mod]`` via the caller's symbolizer, else the nearest export."""
        if self._symbolize_cb is not None:
            s = self._symbolize_cb(addr)
            if s:
                return s
        if addr in self._traps:
            return self._traps[addr].name
        if KERNEL_IMAGE_START <= addr < KERNEL_IMAGE_END:
            near = self._nearest_kimg(addr)
            if near:
                return near
        return f"{addr:#x}"

    def show_arg(self, v: int) -> str:
        """An argument as --trace shows it: a printable string a pointer points at, quoted; a
        pointer into the kernel image or a module by symbol; a small number in decimal; any
        other value in hex."""
        v &= MASK64
        if v < 0x10000:
            return str(v)
        if v >= (1 << 64) - 4095:
            return str(v - (1 << 64))
        if MODULES_VADDR <= v or HEAP_BASE <= v < HEAP_BASE + (1 << 40):
            try:
                raw = self.cstr(v, 81)
            except EmuError:
                raw = None
            body = raw[2:] if raw and raw[:1] == b"\x01" else raw   # a KERN_<LEVEL> prefix
            fill = raw is not None and len(raw) > 8 and len(set(raw)) == 1   # poison, padding
            if raw is not None and 0 < len(raw) <= 80 and not fill and \
                    all(32 <= c < 127 or c in (9, 10) for c in body):
                return '"' + "".join(_C_ESC.get(c, chr(c)) for c in raw) + '"'
        if KERNEL_IMAGE_START <= v < KERNEL_IMAGE_END or MODULES_VADDR <= v:
            sym = self.symbol(v).split("/", 1)[0]
            if not sym.startswith("0x"):
                return "&" + sym.replace("+0x0 ", " ").removesuffix("+0x0")
        return f"{v:#x}"

    # ------------------------------------------------------------------ helpers for models
    def arg(self, i: int) -> int:
        """The i-th integer argument of the function being modelled (0-based, ABI order)."""
        import unicorn.x86_const as X
        if i < 6:
            return self.uc.reg_read(getattr(X, f"UC_X86_REG_{ARG_REGS[i]}"))
        return self.read_u(self._model_sp + 8 * (i - 5), 8)

    def args_from(self, i: int) -> Iterator[int]:
        """Variadic arguments from position ``i`` on (registers, then the caller's stack)."""
        while True:
            yield self.arg(i)
            i += 1

    def note(self, text: str) -> None:
        """Attach a detail to the current CallRecord (e.g. the printk text)."""
        self._note = text

    def read(self, addr: int, size: int) -> bytes:
        if size <= 0:
            return b""
        try:
            return bytes(self.uc.mem_read(addr & MASK64, size))
        except Exception:                       # noqa: BLE001 - UcError: find the bad page
            if self._fault_in(addr, size):
                return self.read(addr, size)
            raise self._fault_error(self._first_bad(addr, size), size, False, False) from None

    def write(self, addr: int, data: bytes) -> None:
        if not data:
            return
        try:
            self.uc.mem_write(addr & MASK64, bytes(data))
        except Exception:                       # noqa: BLE001
            if self._fault_in(addr, len(data)):
                return self.write(addr, data)
            raise self._fault_error(self._first_bad(addr, len(data)), len(data), True,
                                    False) from None

    def _first_bad(self, addr: int, size: int) -> int:
        a = addr
        while a < addr + size:
            try:
                self.uc.mem_read(a & MASK64, 1)
            except Exception:                   # noqa: BLE001
                return a & MASK64
            a = (a | (PAGE_SIZE - 1)) + 1
        return addr & MASK64

    def read_u(self, addr: int, size: int) -> int:
        return int.from_bytes(self.read(addr, size), "little")

    def read_s(self, addr: int, size: int) -> int:
        return int.from_bytes(self.read(addr, size), "little", signed=True)

    def write_u(self, addr: int, size: int, value: int) -> None:
        self.write(addr, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))

    def cstr(self, addr: int, limit: int = 1 << 20) -> bytes:
        """The NUL-terminated string at ``addr`` (without the NUL), at most ``limit`` bytes."""
        out = bytearray()
        a = addr
        while len(out) < limit:
            chunk = self.read(a, min(PAGE_SIZE - (a & (PAGE_SIZE - 1)), limit - len(out)))
            i = chunk.find(b"\0")
            if i >= 0:
                out += chunk[:i]
                break
            out += chunk
            a += len(chunk)
        return bytes(out)

    def readable(self, addr: int, size: int = 1) -> bool:
        try:
            self.uc.mem_read(addr & MASK64, size)
            return True
        except Exception:                       # noqa: BLE001
            return self._fault_in(addr, size) and self.readable(addr, size)

    def kmalloc(self, size: int, zero: bool = False) -> int:
        """Allocate from the sandbox heap (persisted); maps the heap's growth into the CPU."""
        a = self.heap.kmalloc(self.mm, size, zero)
        self._sync_region("heap")
        self.uc.mem_write(a, self.mm.read(a, size))
        return a

    def kfree(self, addr: int) -> int:
        return self.heap.kfree(self.mm, addr)

    def priv_alloc(self, size: int, align: int = 64) -> int:
        """Zeroed memory for kernel objects the models own (not persisted between runs)."""
        a = (self._priv_next + align - 1) // align * align
        if a + size > PRIV_BASE + PRIV_SIZE:
            raise MemoryError("emulator private memory exhausted")
        self._priv_next = a + size
        return a

    def trap(self, name: str, fn: Callable, *, control: bool = False) -> int:
        """An address that, when called, runs ``fn`` as the model of a non-exported function
        (valid for this run: see :meth:`kernel_fn` for one kept in persistent memory)."""
        a = self._trap_next
        if a + 16 > KERNEL_FN_BASE:
            raise MemoryError("emulator trap entries exhausted")
        self._trap_next += 16
        self._traps[a] = _trap_model(name, fn, control)
        return a

    def kernel_fn(self, name: str, fn: Callable) -> int:
        """The address of the kernel's non-exported function ``name`` (a release callback, a
        work function, a hash function), a trap running ``fn``: the same address for the
        machine's whole life (numbered in ``state["kernel_fns"]``), so that a pointer to it
        stored in persistent memory (a devres node, ``work.func``) is still it in a later run."""
        saved = self.state.setdefault("kernel_fns", {})
        a = saved.get(name)
        if a is None:
            a = KERNEL_FN_BASE + 16 * len(saved)
            if a + 16 > TRAP_BASE + TRAP_SIZE:
                raise MemoryError("emulator kernel-function entries exhausted")
            saved[name] = a
        if a not in self._traps:
            self._traps[a] = _trap_model(name, fn, False)
        return a

    def call_module(self, fn: int, args: tuple[int, ...] = ()) -> int:
        """Call module (or any emulated) code at ``fn`` from inside a model; return rax.

        The re-entrant call helper for callbacks the kernel makes while a model runs (a slab
        constructor, a notifier, an ops->init): the model's registers are saved, a new frame is
        built below the model's stack pointer with :data:`NESTED_SENTINEL` as return address,
        the CPU runs ``fn`` (kernel calls inside it are modelled as usual) until it returns
        there, and the registers are restored.  A fault, an unmodelled call or the budget inside
        the callback ends the whole run with that error, as it would end the kernel's path.
        Returns rax as a 64-bit value (callers narrow it to the C type).
        """
        from unicorn import UcError
        import unicorn.x86_const as X
        uc = self.uc
        depth = getattr(self, "_nest_depth", 0)
        if depth >= NESTED_MAX_DEPTH:
            raise Unmodelled(f"{self._model_name} (callbacks nested deeper than "
                             f"{NESTED_MAX_DEPTH})", what=self.what)
        regs = ("RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "RSP", "R8", "R9", "R10",
                "R11", "R12", "R13", "R14", "R15", "RIP", "EFLAGS")
        saved = {r: uc.reg_read(getattr(X, f"UC_X86_REG_{r}")) for r in regs}
        model_ctx = (self._model_addr, self._model_sp, self._model_name, self._in_model,
                     getattr(self, "_note", ""))
        sp = (saved["RSP"] - 512) & ~0xF
        rest = list(args[6:])
        if len(rest) % 2:
            sp -= 8
        for v in reversed(rest):
            sp -= 8
            self.write_u(sp, 8, v)
        sp -= 8
        self.write_u(sp, 8, NESTED_SENTINEL)
        if sp < STACK_BASE + 1024:
            raise self.oops(["BUG: stack guard page was hit (kernel stack overflow)"])
        for reg, v in zip(ARG_REGS, args):
            uc.reg_write(getattr(X, f"UC_X86_REG_{reg}"), v & MASK64)
        uc.reg_write(X.UC_X86_REG_RSP, sp)
        self._nest_depth, self._nested_done, self._in_model = depth + 1, False, False
        try:
            # no timeout here: Unicorn's timer thread does not nest (the outer run's timeout
            # still bounds the whole call); the instruction budget does
            uc.emu_start(fn, NESTED_SENTINEL, count=self.budget)
        except UcError as e:
            if self._error is None:
                self._error = self._uc_error(uc, e)
        finally:
            done = self._nested_done or uc.reg_read(X.UC_X86_REG_RIP) == NESTED_SENTINEL
            ret = uc.reg_read(X.UC_X86_REG_RAX)
            self._nest_depth = depth
            self._nested_done = False
            for r, v in saved.items():
                uc.reg_write(getattr(X, f"UC_X86_REG_{r}"), v)
            (self._model_addr, self._model_sp, self._model_name, self._in_model,
             self._note) = model_ctx
        if self._error is not None:
            err, self._error = self._error, None
            raise err
        if not done:
            raise BudgetExceeded(self.what, instructions=self.budget,
                                 where=f"{self.symbol(fn)} called from {self._model_name}")
        return ret

    def reg(self, name: str) -> int:
        import unicorn.x86_const as X
        return self.uc.reg_read(getattr(X, f"UC_X86_REG_{name.upper()}"))

    def set_reg(self, name: str, value: int) -> None:
        import unicorn.x86_const as X
        self.uc.reg_write(getattr(X, f"UC_X86_REG_{name.upper()}"), value & MASK64)

    def do_ret(self) -> None:
        """``ret`` for control models: pop the return address into rip."""
        sp = self.reg("rsp")
        self.set_reg("rip", self.read_u(sp, 8))
        self.set_reg("rsp", sp + 8)

    def export_addr(self, name: str) -> int | None:
        e = self.exports.get(name)
        return None if e is None else e.addr

    def oops(self, head: list[str], addr: int | None = None) -> Oops:
        """An Oops raised from inside a model: RIP is the modelled function."""
        return self._make_oops(self._model_addr if addr is None else addr, self._model_addr,
                               head)

    # printk: the emulator keeps an unterminated line open for KERN_CONT, as the kernel does
    def printk(self, level: int, text: str, cont: bool = False) -> None:
        if cont and self._cont is not None:
            self._cont = (self._cont[0], self._cont[1] + text)
        else:
            self._flush_cont()
            self._cont = (level, text)
        lvl, t = self._cont
        if t.endswith("\n"):
            self._cont = None
            self._printk_cb(lvl, t[:-1])

    def _flush_cont(self) -> None:
        if self._cont is not None:
            lvl, t = self._cont
            self._cont = None
            self._printk_cb(lvl, t)
