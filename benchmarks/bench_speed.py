"""kmodlab's speed and memory against baselines measured in the same run (issue: speed).

    python3 benchmarks/bench_speed.py [--tree DIR] [--runs N] [--skip-profile]

Figures, each with its baseline and target:

1. whole-tree `kmodlab check` (one process per CPU, and one process) against a C floor built here
   from benchmarks/floor/check_floor.c: the same files read, signature trailer split, ELF parsed,
   sections laid out and copied, every undefined symbol looked up in a hash table of the
   profile's exports, every relocation applied with x86-64's checks — with and without
   verifying each PKCS#7 signature with OpenSSL (kmodlab verifies every one, as the kernel
   does; the floor without it is the relocation-only floor the issue first measured);
2. `kmodlab insmod examples/hello.ko who=world count=3` into a fresh machine, init emulated, a
   whole process, against `python3 -c pass`;
3. `kmodlab modinfo` of a typical module (loop.ko) against `python3 -c pass`;
4. amdgpu.ko's whole check in-process against the C floor on that one file, with and without
   the signature check (kmodlab verifies it, so the verifying floor is the one with a target);
5. peak RSS of the whole-tree check and of one insmod; the Python heap peak of amdgpu's load
   against the file's size;
6. where the whole-tree time goes: load_module's steps (cProfile over an in-process run).

The tree defaults to the embedded profile's Debian tree (fetched and cached by the project's
importer).  Wall-clock ratios need a quiet machine: the load average is printed first.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def run_timed(cmd: list[str], env=None, stdin=None) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in KiB of the process and its children, stdout)."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=stdin,
                         env=env, text=True)
    out = p.stdout.read()
    _pid, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    took = time.perf_counter() - t
    p.stdout.close()
    return took, ru.ru_maxrss, out


def median_run(cmd, n, env=None, setup=None) -> tuple[float, int]:
    ts, rss = [], 0
    for _ in range(n):
        if setup:
            setup()
        t, r, _o = run_timed(cmd, env)
        ts.append(t)
        rss = max(rss, r)
    return statistics.median(ts), rss


def build_floor(tmp: Path) -> tuple[Path, bool]:
    src = ROOT / "benchmarks" / "floor" / "check_floor.c"
    exe = tmp / "check_floor"
    ssl = subprocess.run(["gcc", "-O2", "-DWITH_OPENSSL", "-o", str(exe), str(src), "-lcrypto"],
                         capture_output=True)
    if ssl.returncode == 0:
        return exe, True
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(src)], check=True)
    return exe, False


def floor_inputs(tmp: Path, profile) -> tuple[Path, Path]:
    ex = tmp / "exports.txt"
    with ex.open("w") as f:
        for name, e in profile.exports._all().items():
            f.write(f"{e.addr:x} {name}\n")
        for name in profile.module_exports.raw():
            f.write(f"ffffffffc0000000 {name}\n")
    cert = tmp / "cert.der"
    cert.write_bytes(profile.certificates[0])
    return ex, cert


def floor_seconds(exe: Path, exports: Path, files: list[str], cert: Path | None, n: int) -> float:
    args = [str(exe)] + (["--verify", str(cert)] if cert else []) + [str(exports), "-"]
    listing = "\n".join(files) + "\n"
    best = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(args, input=listing, capture_output=True, text=True, check=True)
        best.append(time.perf_counter() - t)
    return statistics.median(best)


def profile_table(files: list[str], step: int) -> list[str]:
    import cProfile
    import pstats
    from kmodlab.check import Checker
    from kmodlab.kernel.module import main as lm
    sample = files[::step]
    c = Checker()
    for f in sample:
        c.add_file_exports(f, Path(f).read_bytes())
    c.check_file(sample[0])
    pr = cProfile.Profile()
    pr.enable()
    for f in sample:
        c.check_file(f)
    pr.disable()
    st = pstats.Stats(pr)
    total = sum(v[2] for v in st.stats.values())
    key_lm = next(k for k in st.stats if k[2] == "load_module" and k[0] == lm.__file__)
    rows = []
    for func, (_cc, _nc, _tt, _ct, callers) in st.stats.items():
        if key_lm in callers:
            rows.append((callers[key_lm][3], func[2]))
    lm_ct = st.stats[key_lm][3]
    other = total - lm_ct
    rows.sort(reverse=True)
    out = [f"where the time goes (cProfile, every {step}th module, {len(sample)} modules, "
           f"{total:.2f} s profiled):",
           f"  {'load_module':<32} {lm_ct:7.2f} s  {100 * lm_ct / total:5.1f}%"]
    for ct, name in rows[:14]:
        out.append(f"    {name:<30} {ct:7.2f} s  {100 * ct / total:5.1f}%")
    out.append(f"  {'outside load_module':<32} {other:7.2f} s  {100 * other / total:5.1f}%"
               "  (reading files, Machine.boot, the tree's exports)")
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-profile", action="store_true")
    opts = ap.parse_args()
    from kmodlab.profile import DEFAULT_PROFILE, load_profile
    tree = opts.tree
    if not tree:
        from kmodlab.profile.debian import extract_module_tree
        tree = str(extract_module_tree(DEFAULT_PROFILE.removeprefix("debian-")))
    files = sorted(str(p) for p in Path(tree).rglob("*.ko"))
    profile = load_profile()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; {len(files)} modules "
          f"in {tree}")
    rows: list[tuple[str, float, str, float, float | None]] = []   # what, figure, baseline, base, target

    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        exe, ssl = build_floor(tmp)
        # Bytecode cached, as an installed package has it (pip compiles on install): a shell
        # with PYTHONDONTWRITEBYTECODE would make every timed process compile kmodlab anew.
        import kmodlab
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run([PY, "-m", "compileall", "-q", str(Path(kmodlab.__file__).parent)], check=True)
        exports, cert = floor_inputs(tmp, profile)
        km = [PY, "-m", "kmodlab"]
        # 1. whole tree
        fl = floor_seconds(exe, exports, files, None, 3)
        fls = floor_seconds(exe, exports, files, cert, 3) if ssl else None
        t_pool, rss_pool = median_run(km + ["check", "-q", tree], opts.runs)
        t_one, rss_one, _ = run_timed(km + ["check", "-q", "-j", "1", tree])
        print(f"\n1. whole-tree check of {len(files)} modules")
        print(f"   C floor, relocation work only      {fl:7.2f} s")
        if fls:
            print(f"   C floor, + OpenSSL signature check {fls:7.2f} s")
        print(f"   kmodlab check (pool, {os.cpu_count()} CPUs)       {t_pool:7.2f} s   peak RSS {rss_pool / 1024:.0f} MiB"
              f"   (median of {opts.runs})")
        print(f"   kmodlab check -j 1                 {t_one:7.2f} s   peak RSS {rss_one / 1024:.0f} MiB")
        if fls:
            rows.append(("whole-tree check vs C floor (same work, signatures verified)", t_pool, "C floor", fls, 5))
        rows.append(("whole-tree check vs C floor (relocation work only)", t_pool, "C floor", fl,
                     None if fls else 5))

        # 2. insmod hello, whole process, fresh machine each time
        base, _ = median_run([PY, "-c", "pass"], opts.runs)
        mdir = tmp / "machine"

        def fresh():
            shutil.rmtree(mdir, ignore_errors=True)
        env = dict(os.environ, KMODLAB_MACHINE=str(mdir))
        t_ins, rss_ins = median_run(km + ["insmod", str(ROOT / "examples" / "hello.ko"),
                                          "who=world", "count=3"], opts.runs, env, fresh)
        print(f"\n2. python3 -c pass                    {base * 1e3:7.1f} ms")
        print(f"   insmod hello.ko (fresh machine)    {t_ins * 1e3:7.1f} ms   peak RSS {rss_ins / 1024:.0f} MiB")
        rows.append(("insmod hello.ko, init emulated, whole process", t_ins, "python3 -c pass", base, 10))

        # 3. modinfo
        loop = next((f for f in files if f.endswith("/loop.ko")), files[0])
        t_mi, _ = median_run(km + ["modinfo", loop], opts.runs * 2)
        kmod = shutil.which("modinfo")
        t_kmod = median_run([kmod, loop], opts.runs * 2)[0] if kmod else None
        print(f"\n3. kmodlab modinfo loop.ko            {t_mi * 1e3:7.1f} ms" +
              (f"   (kmod's modinfo {t_kmod * 1e3:.1f} ms)" if t_kmod else ""))
        rows.append(("modinfo loop.ko, whole process", t_mi, "python3 -c pass", base, 1.6))

        # 4./5. amdgpu in-process and memory
        amd = next((f for f in files if f.endswith("/amdgpu.ko")), None)
        if amd:
            import tracemalloc
            from kmodlab.check import Checker
            c = Checker(profile)
            data = Path(amd).read_bytes()
            c.check(amd, data)
            ts = []
            for _ in range(3):
                t = time.perf_counter()
                r = c.check(amd, data)
                ts.append(time.perf_counter() - t)
            t_amd = min(ts)
            tracemalloc.start()
            c.check(amd, data)
            _cur, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            def floor_amd(verify: bool) -> tuple[float, str]:
                args = [str(exe)] + (["--verify", str(cert)] if verify else []) + [str(exports), amd]
                outs = [subprocess.run(args, capture_output=True, text=True, check=True).stdout
                        for _ in range(3)]
                return min(float(o.split(", ")[-1].split()[0]) for o in outs), outs[0].strip()
            f_amd, out = floor_amd(False)
            f_amds, outs = floor_amd(True) if ssl else (None, "")
            print(f"\n4. amdgpu.ko ({len(data) / 2**20:.1f} MiB) load_module in-process {t_amd * 1e3:7.1f} ms"
                  f" ({'ok' if r.ok else 'refused'})")
            print(f"   C floor, relocation work only      {f_amd * 1e3:7.1f} ms ({out})")
            if f_amds:
                print(f"   C floor, + OpenSSL signature check {f_amds * 1e3:7.1f} ms ({outs})")
            print(f"5. amdgpu.ko load: Python heap peak {peak / 2**20:.1f} MiB = "
                  f"{peak / len(data):.2f}x the file's size")
            if f_amds:
                rows.append(("amdgpu.ko full load vs C floor (signatures verified)", t_amd, "C floor", f_amds, 3))
            rows.append(("amdgpu.ko full load vs C floor (relocation work only)", t_amd, "C floor", f_amd,
                         None if f_amds else 3))

    print("\nfigure                                                         value   baseline      ratio  target  met")
    for what, fig, bname, b, target in rows:
        ratio = fig / b
        verdict = (f"<= {target:<4} {'yes' if ratio <= target else 'NO'}" if target is not None
                   else "(less work than kmodlab does: no target)")
        print(f"{what:<60} {fig:8.3f}s {b:8.3f}s {ratio:8.1f}x  {verdict}")
    if not opts.skip_profile:
        print()
        print("\n".join(profile_table(files, 4)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
