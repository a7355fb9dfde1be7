#!/usr/bin/env python3
"""Fuzz the sandbox kernel's whole load path: (image, parameter string) → init_module.

Every input goes through ``SandboxKernel.init_module`` into a fresh in-memory machine (the
embedded Debian 6.1 profile, or the imported 6.12 one when the image's vermagic names 6.12 and
that profile is in the cache), exactly as ``kmodlab insmod`` would hand it over: signature
check, ELF checks, layout, symbols, relocations, kallsyms, notifier, parameters, sysfs, and the
module's init on the emulated CPU.  An input is one byte string::

    <image bytes> [ SEP <parameter string> ]        (SEP = b"\\n--kmodlab-args--\\n", last one)

Outcomes are counted by errno (0 = loaded).  The harness's own failures are the findings:

- **internal error**: any exception other than the kernel's answer escaping ``init_module``
  (a user would see "kmodlab insmod: internal error");
- **torn state**: a refused load that left something behind (a module in the list, module
  memory, per-CPU data, a kmalloc);
- **hang**: one input running longer than ``--hang`` seconds of wall time;
- **memory**: the process's peak RSS (``ru_maxrss``) above ``--rss-limit`` MiB.

Each finding is written to ``--findings DIR`` (the input, and a .txt with the traceback).

Modes:
    fuzz/fuzz_load.py --runs 1000000                # coverage-guided (atheris/libFuzzer)
    fuzz/fuzz_load.py --mode random --runs 5000     # deterministic seeded mutation loop (CI)
    fuzz/fuzz_load.py --replay FILE...              # run saved inputs, print their outcomes
Both print a JSON summary at the end (and every ``--report-every`` inputs to ``--stats``):
inputs, outcomes by errno name, internal errors, torn states, hangs, peak RSS, rate.

Seeds: ``examples/*.ko`` and a few small real modules of both releases from the project's
module-tree cache (``kmodlab.profile.debian.extract_module_tree``), each once signed as shipped
and once with its signature stripped (a signed image that is mutated only reaches the
signature check; the unsigned copies reach everything after it).
"""
from __future__ import annotations

import argparse
import errno as _errno
import hashlib
import json
import lzma
import os
import random
import resource
import signal
import struct
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEP = b"\n--kmodlab-args--\n"
SIG_MAGIC = b"~Module signature appended~\n"

# small real modules of each release (path under lib/modules/<release>/kernel, without .ko*)
REAL_SEEDS = ["lib/crc7", "lib/crc8", "lib/crc-itu-t", "crypto/md4", "drivers/net/dummy",
              "fs/nls/nls_koi8-ru", "crypto/xor", "net/netfilter/xt_mark", "drivers/block/loop"]
RELEASES = ["6.1.0-56-amd64", "6.12.118+deb13-amd64"]
PARAM_WORDS = [b"who=fuzz", b"count=3", b"values=1,2,3", b"verbose", b"verbose=N",
               b"numdummies=2", b"max_loop=4", b"max_part=1", b'who="a b"', b"--", b"=",
               b"count=99999999999999999999", b"values=" + b"7," * 40, b"x" * 2000,
               b"async_probe", b"dyndbg=+p", b"count=-1", b"who=" + b"y" * 1100]


class Hang(Exception):
    """Raised by the interval timer: one input ran past the hang limit."""


def _on_alarm(_sig, _frm):
    raise Hang()


def split_input(data: bytes) -> tuple[bytes, str]:
    """(image, parameter string) of one fuzz input."""
    i = data.rfind(SEP)
    if i < 0:
        return data, ""
    return data[:i], data[i + len(SEP):].decode("latin-1")


def strip_signature(image: bytes) -> bytes:
    """The ELF part of a signed module (the image itself when it carries no signature)."""
    if not image.endswith(SIG_MAGIC) or len(image) < len(SIG_MAGIC) + 12:
        return image
    sig_len, = struct.unpack_from(">I", image, len(image) - len(SIG_MAGIC) - 4)
    end = len(image) - len(SIG_MAGIC) - 12 - sig_len
    return image[:end] if end > 0 else image


def _read_module(path: Path) -> bytes:
    data = path.read_bytes()
    return lzma.decompress(data) if path.name.endswith(".xz") else data


def module_tree(release: str, fetch: bool = False) -> Path | None:
    """lib/modules/<release> from the project's cache (fetched first when ``fetch``)."""
    try:
        from kmodlab.profile.debian import cache_dir, extract_module_tree
        tree = cache_dir().parent / "trees" / release / "lib" / "modules" / release
        if (tree.parent.parent.parent / ".complete").exists() or tree.is_dir() and not fetch:
            return tree if tree.is_dir() else None
        return extract_module_tree(release) if fetch else None
    except Exception:                       # noqa: BLE001 - offline: the examples only
        return None


def seed_images(fetch: bool = False, real: bool = True) -> list[tuple[str, bytes]]:
    """(name, input) pairs: the examples and small real modules of both releases."""
    out: list[tuple[str, bytes]] = []
    for p in sorted((ROOT / "examples").glob("*.ko")):
        out.append((p.stem, p.read_bytes()))
    out.append(("hello+args", (ROOT / "examples" / "hello.ko").read_bytes()
                + SEP + b"who=fuzz count=2 values=1,2,3 verbose"))
    if real:
        for rel in RELEASES:
            tree = module_tree(rel, fetch)
            if tree is None:
                continue
            for stem in REAL_SEEDS:
                for suffix in (".ko", ".ko.xz"):
                    p = tree / "kernel" / (stem + suffix)
                    if p.exists():
                        img = _read_module(p)
                        tag = f"{rel.split('-')[0]}:{Path(stem).name}"
                        out.append((tag + ":signed", img))
                        out.append((tag, strip_signature(img)))
                        break
    return out


# ---------------------------------------------------------------------------------------------

class Harness:
    """One input → one outcome, into a fresh machine each time."""

    def __init__(self, findings: Path | None = None, hang_s: float = 60.0,
                 rss_limit_mb: int = 2048):
        from kmodlab.emu import registry
        from kmodlab.emu.emulator import export_tables
        from kmodlab.profile import load_profile
        registry.load_models()
        self.profiles = {"6.1": load_profile()}
        try:
            from kmodlab.profile.debian import profile_dir
            p612 = profile_dir() / "debian-6.12.118+deb13-amd64.kprofile"
            if not p612.exists():
                p612 = Path.home() / ".cache" / "kmodlab" / "profiles" / p612.name
            if p612.exists():
                self.profiles["6.12"] = load_profile(str(p612))
        except Exception:                   # noqa: BLE001 - no 6.12 profile: 6.1 only
            pass
        # the emulator's export lookups, computed once per profile (a machine caches them too)
        self.tables = {k: export_tables(p.exports) for k, p in self.profiles.items()}
        self.findings = findings
        self.hang_s = hang_s
        self.rss_limit_mb = rss_limit_mb
        self.count = 0
        self.outcomes: Counter = Counter()
        self.internal: Counter = Counter()
        self.torn: Counter = Counter()
        self.hangs = 0
        self.memory_findings = 0
        self.t0 = time.monotonic()
        self.slowest = (0.0, "")
        signal.signal(signal.SIGALRM, _on_alarm)

    def machine(self, image: bytes):
        from kmodlab.machine import Machine
        key = "6.12" if b"vermagic=6.12" in image and "6.12" in self.profiles else "6.1"
        prof = self.profiles[key]
        m = Machine.boot(prof.name, seed=self.count, profile=prof)
        m._emu_tables = self.tables[key]
        # What the module's own code allocates and does not free is its leak, which Linux
        # keeps too (a failing init's kmalloc is not undone by the kernel): noted here so that
        # torn_state counts only what the kernel side left behind.
        m._fuzz_module_allocs = set()
        run = m.run_module_code

        def run_module_code(*a, **kw):
            before = set(m.heap.allocs)
            try:
                return run(*a, **kw)
            finally:
                m._fuzz_module_allocs |= set(m.heap.allocs) - before
        m.run_module_code = run_module_code
        return m

    def run(self, data: bytes) -> str:
        """The outcome name of one input: an errno name ('OK' for a load), or
        'internal:<Type>', 'torn:<what>', 'hang'."""
        from kmodlab.sandbox import SandboxKernel
        image, args = split_input(data)
        self.count += 1
        m = self.machine(image)
        k = SandboxKernel(machine=m)
        t = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, self.hang_s)
        try:
            r = k.init_module(image, args)
            outcome = "OK" if r.ret == 0 else _errno.errorcode.get(r.errno, str(r.errno))
            if r.ret != 0:
                torn = self.torn_state(m)
                if torn:
                    self.torn[torn] += 1
                    self.save(data, f"torn:{torn}", "\n".join(r.log))
                    outcome = f"torn:{torn}"
        except Hang:
            self.hangs += 1
            self.save(data, "hang", f"more than {self.hang_s} s")
            outcome = "hang"
        except Exception as e:              # noqa: BLE001 - this is what we are looking for
            signal.setitimer(signal.ITIMER_REAL, 0)
            key = f"{type(e).__name__}: {_short(str(e))}"
            self.internal[key] += 1
            self.save(data, "internal", traceback.format_exc())
            outcome = f"internal:{type(e).__name__}"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        dt = time.monotonic() - t
        if dt > self.slowest[0]:
            self.slowest = (dt, outcome)
        self.outcomes[outcome] += 1
        if self.count % 256 == 0 and self.peak_rss_mb() > self.rss_limit_mb \
                and not self.memory_findings:
            self.memory_findings += 1
            self.save(data, "memory", f"peak RSS {self.peak_rss_mb()} MiB after this input")
        return outcome

    @staticmethod
    def torn_state(m) -> str:
        """What a refused load left behind, or ''."""
        from kmodlab.kernel.mm import MODULES_END, MODULES_VADDR
        if m.modules:
            return "module listed"
        if any(MODULES_VADDR <= r.base < MODULES_END for r in m.mm.regions.values()):
            return "module memory mapped"
        if m.percpu_used:
            return "percpu allocated"
        if set(m.heap.allocs) - getattr(m, "_fuzz_module_allocs", set()):
            return "kmalloc left"
        return ""

    def save(self, data: bytes, kind: str, text: str) -> None:
        if self.findings is None:
            return
        self.findings.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha1(data).hexdigest()[:16]
        (self.findings / f"{kind.split(':')[0]}-{h}.bin").write_bytes(data)
        (self.findings / f"{kind.split(':')[0]}-{h}.txt").write_text(f"{kind}\n{text}\n")

    @staticmethod
    def peak_rss_mb() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024

    def summary(self) -> dict:
        dt = time.monotonic() - self.t0
        return {"inputs": self.count,
                "outcomes": dict(self.outcomes.most_common()),
                "internal_errors": sum(self.internal.values()),
                "internal_error_kinds": dict(self.internal.most_common(20)),
                "torn_states": sum(self.torn.values()),
                "hangs": self.hangs,
                "peak_rss_mb": self.peak_rss_mb(),
                "memory_findings": self.memory_findings,
                "seconds": round(dt, 1),
                "rate_per_s": round(self.count / dt, 1) if dt else 0.0,
                "slowest_input_s": round(self.slowest[0], 3),
                "profiles": sorted(self.profiles)}


def _short(s: str) -> str:
    import re
    return re.sub(r"\d+", "N", s)[:120]


# ---- the deterministic mutation loop -----------------------------------------------------------

INTERESTING = [0, 1, 2, 3, 7, 8, 0x40, 0x7F, 0x80, 0xFF, 0x100, 0x1000, 0x7FFF, 0x8000, 0xFFFF,
               0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x100000000, 1 << 32 | 4,
               0x7FFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF, 4 << 30, 1 << 40]
SHDR_FIELDS = [(0, 4), (4, 4), (8, 8), (16, 8), (24, 8), (32, 8), (40, 4), (44, 4), (48, 8),
               (56, 8)]          # name, type, flags, addr, offset, size, link, info, align, entsize
EHDR_FIELDS = [(4, 1), (5, 1), (16, 2), (18, 2), (40, 8), (58, 2), (60, 2), (62, 2)]


def _put(buf: bytearray, off: int, size: int, value: int) -> None:
    if 0 <= off and off + size <= len(buf):
        buf[off:off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def _sections(buf: bytes) -> tuple[int, int]:
    if len(buf) < 64:
        return 0, 0
    shoff, = struct.unpack_from("<Q", buf, 40)
    shnum, = struct.unpack_from("<H", buf, 60)
    return shoff, shnum


def mutate(rnd: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    """One structured mutation of ``data`` (ELF-aware: section headers, symbols, relocations,
    the header, .modinfo strings; plus byte flips, truncations, splices and parameters)."""
    image, args = split_input(data)
    buf = bytearray(image)
    for _ in range(rnd.choice((1, 1, 1, 2, 3, 5))):
        k = rnd.random()
        shoff, shnum = _sections(buf)
        if k < 0.30 and shnum:                               # a section header field
            i = rnd.randrange(shnum)
            fo, fs = rnd.choice(SHDR_FIELDS)
            base = shoff + 64 * i
            if rnd.random() < 0.5:
                v = rnd.choice(INTERESTING + [shnum, shnum - 1, shnum + 1, len(buf),
                                              len(buf) - 1, len(buf) + 1])
            else:
                old = int.from_bytes(buf[base + fo:base + fo + fs] or b"\0", "little")
                v = old + rnd.choice((-1, 1, -8, 8, -64, 64, 4096, -4096))
            _put(buf, base + fo, fs, v)
        elif k < 0.40 and len(buf) >= 64:                    # an ELF header field
            fo, fs = rnd.choice(EHDR_FIELDS)
            _put(buf, fo, fs, rnd.choice(INTERESTING + [shnum + 1, len(buf)]))
        elif k < 0.60 and shnum:                             # inside a symtab/rela entry
            i = rnd.randrange(shnum)
            base = shoff + 64 * i
            if base + 64 > len(buf):
                continue
            typ, = struct.unpack_from("<I", buf, base + 4)
            off, size = struct.unpack_from("<QQ", buf, base + 24)
            ent = 24
            if typ in (2, 4) and size >= ent and off + size <= len(buf):
                e = off + ent * rnd.randrange(size // ent)
                fo, fs = rnd.choice([(0, 4), (4, 1), (6, 2), (8, 8), (16, 8)] if typ == 2
                                    else [(0, 8), (8, 4), (12, 4), (16, 8)])
                _put(buf, e + fo, fs, rnd.choice(INTERESTING + [shnum, shnum + 5])
                     if rnd.random() < 0.7 else rnd.getrandbits(8 * fs))
            elif size and off + size <= len(buf):            # a byte of some other section
                p = off + rnd.randrange(min(size, len(buf) - off) or 1)
                if p < len(buf):
                    buf[p] = rnd.getrandbits(8)
        elif k < 0.72 and buf:                               # random bytes anywhere
            for _ in range(rnd.randint(1, 8)):
                buf[rnd.randrange(len(buf))] = rnd.getrandbits(8)
        elif k < 0.78 and buf:                               # truncate
            del buf[rnd.randrange(len(buf)):]
        elif k < 0.82 and buf:                               # .modinfo-ish strings
            for tag in (b"vermagic=", b"name=", b"license=", b"intree=", b"depends="):
                j = buf.find(tag)
                if j >= 0 and rnd.random() < 0.4:
                    buf[j + len(tag):j + len(tag) + 1] = bytes([rnd.choice(b"\0xX ")])
        elif k < 0.86 and corpus:                            # splice with another input
            other, _ = split_input(rnd.choice(corpus))
            cut = rnd.randrange(len(buf) + 1)
            buf = buf[:cut] + other[rnd.randrange(len(other) + 1):][:4096]
        else:                                                # the parameter string
            words = args.encode("latin-1").split() if args else []
            if words and rnd.random() < 0.3:
                words.pop(rnd.randrange(len(words)))
            words.insert(rnd.randrange(len(words) + 1), rnd.choice(PARAM_WORDS))
            if rnd.random() < 0.2:
                words.append(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 12))))
            args = b" ".join(words).decode("latin-1")
    out = bytes(buf)
    return out + SEP + args.encode("latin-1") if args else out


def random_loop(h: Harness, runs: int, seed: int, seeds: list[bytes], report, every: int) -> None:
    rnd = random.Random(seed)
    pool = list(seeds)
    for s in seeds:                                          # the seeds themselves first
        if h.count < runs:
            h.run(s)
    while h.count < runs:
        base = rnd.choice(pool)
        data = mutate(rnd, base, pool)
        out = h.run(data)
        # keep inputs that got far (a load, or refused late) as new bases, boundedly
        if out in ("OK", "ENOENT", "EINVAL", "EFAULT", "ENOSYS") and len(pool) < 400 \
                and rnd.random() < 0.05:
            pool.append(data)
        if every and h.count % every == 0:
            report()


# ---- the coverage-guided mode (atheris) --------------------------------------------------------

LOAD_PATH = ["kmodlab.sandbox", "kmodlab.machine", "kmodlab.elf", "kmodlab.kernel.mm",
             "kmodlab.kernel.params", "kmodlab.kernel.module.main",
             "kmodlab.kernel.module.layout", "kmodlab.kernel.module.kallsyms",
             "kmodlab.kernel.module.version", "kmodlab.kernel.module.signing",
             "kmodlab.kernel.module.elf_validity", "kmodlab.kernel.module.sysfs",
             "kmodlab.kernel.module.decompress", "kmodlab.lib.signature",
             "kmodlab.arch.x86_64.module", "kmodlab.emu.emulator", "kmodlab.emu.oops"]


def instrument_load_path() -> None:
    """Import the load path under atheris' coverage instrumentation (only kmodlab's code:
    instrumenting numpy or unicorn's bindings would cost much and tell nothing)."""
    import importlib
    import atheris
    with atheris.instrument_imports(include=["kmodlab"]):
        for name in LOAD_PATH:
            importlib.import_module(name)
        from kmodlab.emu import registry
        registry.load_models()


def atheris_main(h: Harness, runs: int, corpus_dir: Path, seeds: list[tuple[str, bytes]],
                 report, every: int, extra: list[str]) -> None:
    import atheris
    corpus_dir.mkdir(parents=True, exist_ok=True)
    for name, data in seeds:
        (corpus_dir / f"seed-{name.replace(':', '_')}").write_bytes(data)
    pool = [d for _n, d in seeds]
    rnd = random.Random(0)

    def test_one(data: bytes) -> None:
        h.run(data)
        if every and h.count % every == 0:
            report()
        if h.count >= runs:
            report(final=True)
            os._exit(0)

    def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
        # half libFuzzer's byte-level mutations, half ELF-aware ones
        if seed % 2:
            return atheris.Mutate(data, max_size)
        rnd.seed(seed)
        out = mutate(rnd, data, pool)
        return out[:max_size]

    maxlen = max(len(d) for d in pool) + 4096
    argv = [sys.argv[0], str(corpus_dir), f"-max_len={maxlen}", "-timeout=120",
            f"-rss_limit_mb={max(h.rss_limit_mb * 2, 4096)}", "-print_final_stats=1",
            f"-runs={runs + 10 * len(seeds)}"] + extra
    atheris.Setup(argv, test_one, custom_mutator=custom_mutator)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("atheris", "random"), default="atheris")
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--findings", type=Path, default=ROOT / "fuzz" / "findings")
    ap.add_argument("--corpus", type=Path, default=ROOT / "fuzz" / "corpus")
    ap.add_argument("--stats", type=Path, help="write the running summary (JSON) here")
    ap.add_argument("--report-every", type=int, default=10000)
    ap.add_argument("--hang", type=float, default=60.0, help="seconds before an input is a hang")
    ap.add_argument("--rss-limit", type=int, default=2048, help="MiB of peak RSS allowed")
    ap.add_argument("--no-fetch", action="store_true", help="do not fetch module trees")
    ap.add_argument("--replay", type=Path, nargs="*")
    a, extra = ap.parse_known_args(argv)
    if a.mode == "atheris" and a.replay is None:
        instrument_load_path()
    h = Harness(findings=a.findings, hang_s=a.hang, rss_limit_mb=a.rss_limit)
    if a.replay is not None:
        for p in a.replay:
            print(f"{h.run(p.read_bytes()):20} {p}")
        print(json.dumps(h.summary(), indent=1))
        return 0
    seeds = seed_images(fetch=not a.no_fetch)

    def report(final: bool = False) -> None:
        s = h.summary()
        s["final"] = final
        if a.stats:
            tmp = a.stats.with_suffix(".tmp")
            tmp.write_text(json.dumps(s, indent=1) + "\n")
            tmp.replace(a.stats)
        print(json.dumps(s) if not final else json.dumps(s, indent=1), flush=True)

    if a.mode == "random":
        random_loop(h, a.runs, a.seed, [d for _n, d in seeds], report, a.report_every)
        report(final=True)
    else:
        atheris_main(h, a.runs, a.corpus, seeds, report, a.report_every, extra)
    s = h.summary()
    return 1 if s["internal_errors"] or s["hangs"] or s["torn_states"] else 0


if __name__ == "__main__":
    sys.exit(main())
