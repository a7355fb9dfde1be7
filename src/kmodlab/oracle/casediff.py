"""The small cases of :func:`kmodlab.oracle.mass.small_cases`, done again through the sandbox.

The guest recorded what the real kernel answered to a fixed list of calls on one module (a
``.ko.xz`` loaded with MODULE_INIT_COMPRESSED_FILE, twice; removed; the same file without the
flag; an uncompressed copy with it; a truncated ``.ko.xz``; a text file; a 10-byte image; a
flipped signature byte; an unsigned copy, ...).  :func:`replay_cases` makes the same calls on a
fresh sandbox kernel of the recorded release and returns, per case, what both answered, so a
test (or a user) can compare return, errno and the kernel's log lines.
"""
from __future__ import annotations

import lzma
import tempfile
from pathlib import Path

from ..kernel.module.internal import MODULE_INIT_COMPRESSED_FILE, O_NONBLOCK
from ..lib.signature import split_signature


def replay_cases(rec: dict, profile: str, moddir: Path) -> list[tuple[dict, object]]:
    """[(recorded case, sandbox SyscallResult)] in the recorded order.  Raises ValueError when
    the recording's case list is not the one this replay knows (regenerate both together)."""
    from ..machine import MachineStore
    from ..sandbox import SandboxKernel
    xz = Path(moddir) / rec["module_path"]
    data = xz.read_bytes()
    plain = lzma.decompress(data)
    name = rec["module"]
    by = {c["case"]: c for c in rec["cases"]}
    flipped = next(c for c in rec["cases"] if "flipped_offset" in c)
    bad = bytearray(plain)
    bad[flipped["flipped_offset"]] ^= 0xFF
    unsigned = plain[:split_signature(plain)[0]]
    C = MODULE_INIT_COMPRESSED_FILE
    with tempfile.TemporaryDirectory(prefix="kmodlab-cases-") as tmp:
        t = Path(tmp)
        (t / f"{name}.ko").write_bytes(plain)
        half = len(data) // 2
        (t / "trunc.ko.xz").write_bytes(data[:half])
        host = next((c.get("file") for c in rec["cases"] if c.get("file") is not None), "\n")
        (t / "hostname").write_text(host)
        k = SandboxKernel(store=MachineStore(t / "machine"), profile=profile)
        fin = lambda p, f: (lambda: k.finit_module(str(p), "", f))        # noqa: E731
        rm = lambda: k.delete_module(name, O_NONBLOCK)                    # noqa: E731
        steps = [
            (f"finit_module({name}.ko.xz, flags=MODULE_INIT_COMPRESSED_FILE=4)", fin(xz, C)),
            (f"finit_module({name}.ko.xz, flags=4) again (a module loaded twice)", fin(xz, C)),
            (f"delete_module({name}, O_NONBLOCK)", rm),
            (f"delete_module({name}) again (not loaded)", rm),
            (f"finit_module({name}.ko.xz, flags=0) (compressed file, no flag 4)", fin(xz, 0)),
            (f"finit_module(uncompressed copy {name}.ko, flags=4)", fin(t / f"{name}.ko", C)),
            (f"finit_module(truncated {name}.ko.xz: its first {half} of {len(data)} bytes, "
             "flags=4)", fin(t / "trunc.ko.xz", C)),
            ("finit_module(/etc/hostname, flags=0)", fin(t / "hostname", 0)),
            ("finit_module(/etc/hostname, flags=4)", fin(t / "hostname", C)),
            (f"finit_module({name}.ko.xz, flags=8) (unknown flag)", fin(xz, 8)),
            (f"init_module(first 10 bytes of {name}.ko)", lambda: k.init_module(plain[:10], "")),
            ("init_module(10 zero bytes)", lambda: k.init_module(bytes(10), "")),
            (f"init_module({name}.ko xz-compressed image, i.e. the .ko.xz bytes)",
             lambda: k.init_module(data, "")),
            (flipped["case"], lambda: k.init_module(bytes(bad), "")),
            (f"init_module({name}.ko decompressed, signed)", lambda: k.init_module(plain, "")),
            (f"init_module({name}.ko) again", lambda: k.init_module(plain, "")),
            (f"delete_module({name})", rm),
            (next(c for c in by if "signature stripped" in c), lambda: k.init_module(unsigned, "")),
            (f"delete_module({name})", rm),
        ]
        if [s for s, _ in steps] != [c["case"] for c in rec["cases"]]:
            raise ValueError("the recording's cases are not the ones replay_cases knows")
        out = [(real, call()) for (_s, call), real in zip(steps, rec["cases"])]
        out.append(({"case": "tainted at the end", "tainted": rec["tainted_at_end"]
                     - rec["tainted_at_start"]},
                    int(k.read("/proc/sys/kernel/tainted"))))
        return out
