"""Oops-style reports for faults of the emulated CPU (the role of arch/x86/mm/fault.c + dumpstack.c).

The text follows the kernel's shape so that a user who has seen a real oops can read it: the
headline (``BUG: kernel NULL pointer dereference, address: …``), the ``#PF`` lines, ``Oops:``,
``RIP:`` with the nearest symbol, the faulting instruction (disassembled with capstone, our
addition), the register dump, and a call trace recovered by scanning the stack for text
addresses (each marked ``?`` as the kernel does for unreliable entries).
"""
from __future__ import annotations

OOPS_TAIL = "[#1] PREEMPT SMP NOPTI"

_GPRS = [("RAX", "RBX", "RCX"), ("RDX", "RSI", "RDI"), ("RBP", "R08", "R09"),
         ("R10", "R11", "R12"), ("R13", "R14", "R15")]


def pf_headline(addr: int, write: bool, fetch: bool, present: bool) -> list[str]:
    """The first lines of a page-fault oops (arch/x86/mm/fault.c: show_fault_oops)."""
    if addr < 4096:
        first = f"BUG: kernel NULL pointer dereference, address: {addr:016x}"
    else:
        first = f"BUG: unable to handle page fault for address: {addr:016x}"
    access = "instruction fetch" if fetch else ("write" if write else "read")
    code = (1 if present else 0) | (2 if write else 0) | (0x10 if fetch else 0)
    return [first,
            f"#PF: supervisor {access} access in kernel mode",
            f"#PF: error_code({code:#06x}) - "
            f"{'permissions violation' if present else 'not-present page'}",
            f"Oops: {code:04x} {OOPS_TAIL}"]


def is_canonical(addr: int) -> bool:
    top = addr >> 47
    return top == 0 or top == 0x1FFFF


def disassemble(code: bytes, addr: int) -> str:
    """One instruction as text (capstone, imported only when an oops is rendered)."""
    try:
        import capstone
        md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        for insn in md.disasm(code, addr):
            return f"{insn.mnemonic} {insn.op_str}".strip()
    except Exception:                       # noqa: BLE001 - the report must still be produced
        pass
    return "(bad)"


def render(headline: list[str], *, regs: dict[str, int], code: bytes | None,
           sym: str, trace: list[str], pid: int, comm: str) -> str:
    """The full report below ``headline``: CPU line, RIP, Code, registers, call trace."""
    lines = list(headline)
    lines.append(f"CPU: 0 PID: {pid} Comm: {comm} Not tainted (kmodlab sandbox)")
    lines.append(f"RIP: 0010:{sym}")
    if code:
        lines.append("Code: " + " ".join(f"{b:02x}" for b in code[:15])
                     + f"  ; {disassemble(code, regs['RIP'])}")
    else:
        lines.append("Code: Unable to access opcode bytes at RIP "
                     f"{regs['RIP']:#x}.")
    lines.append(f"RSP: 0018:{regs['RSP']:016x} EFLAGS: {regs['EFLAGS']:08x}")
    for row in _GPRS:
        lines.append(" ".join(f"{r}: {regs[r]:016x}" for r in row))
    lines.append("Call Trace:")
    lines.append(" <TASK>")
    lines.extend(f" ? {t}" for t in trace)
    lines.append(" </TASK>")
    return "\n".join(lines)


# ---- faults of the sandbox kernel's own code --------------------------------------------------
# The load path, the parameter code and sysfs are Python, not emulated: when they read module
# memory the way the kernel would (a pointer the module supplied: a __param name, a charp, a
# ksymtab entry), an address no region backs raises kernel.mm.Fault.  The kernel would oops in
# that function; the sandbox writes the same kind of report and fails the call with EFAULT.

def kernel_fault_report(fault, tb, *, pid: int = 1, comm: str = "insmod") -> list[str]:
    """The oops lines for a :class:`~kmodlab.kernel.mm.Fault` raised by sandbox-kernel code
    (no registers: the faulting code is not emulated), the call trace from the traceback."""
    import traceback
    addr = fault.addr
    if not is_canonical(addr):
        head = [f"general protection fault, probably for non-canonical address {addr:#x}: "
                f"0000 {OOPS_TAIL}"]
    else:
        head = pf_headline(addr, fault.write, False, False)
    trace = []
    for fr in traceback.extract_tb(tb):
        f = fr.filename.replace("\\", "/")
        if ("/kmodlab/kernel/" in f or "/kmodlab/arch/" in f) and not f.endswith("/mm.py"):
            trace.append(fr.name)
    where = trace[-1] if trace else "load_module"
    lines = list(head)
    lines.append(f"CPU: 0 PID: {pid} Comm: {comm} Not tainted (kmodlab sandbox)")
    lines.append(f"RIP: 0010:{where}")
    lines.append("Call Trace:")
    lines.append(" <TASK>")
    lines.extend(f" {t}" for t in reversed(trace[:-1]))
    lines.append(" </TASK>")
    return lines
