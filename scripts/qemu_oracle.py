#!/usr/bin/env python3
"""Boot Debian's real kernel under QEMU and run things in it (the live-path oracle).

    scripts/qemu_oracle.py prepare                 # unpack the .deb, vmlinux, initramfs (cached)
    scripts/qemu_oracle.py run -c 'cat /proc/modules; $PYTHON -c "import kmodlab"'
    scripts/qemu_oracle.py run script.sh           # a POSIX sh script, in chroot /host, as root
    scripts/qemu_oracle.py python script.py        # with this host's Python, kmodlab importable
    scripts/qemu_oracle.py record [--out FILE]     # regenerate tests/data/oracle_<rel>.json
    scripts/qemu_oracle.py mass [--out FILE]       # the whole module tree, real vs sandbox
                                                   # (tests/data/mass_<rel>.json.gz, docs/oracle.md)
    scripts/qemu_oracle.py mass --real-only        # the real kernel's answers only (no replay):
                                                   # tests/data/mass_real_<rel>.json.gz
    scripts/qemu_oracle.py replay [--core DIR]     # replay tests/data/mass_real_<rel>.json.gz
                                                   # through the sandbox (no VM): writes
                                                   # tests/data/mass_<rel>.json.gz; --core DIR:
                                                   # that run's dumps, for the byte comparison
    scripts/qemu_oracle.py cases [--out FILE]      # the small failure/success cases of
                                                   # tests/data/oracle_cases_<rel>.json

Options: --release 6.1.0-56-amd64 | 6.12.118+deb13-amd64 (or KMODLAB_ORACLE_RELEASE),
--timeout SECONDS.
The guest script sees $OUT (writable, returned), $PYTHON, $PYTHONPATH, $KREL, $MODDIR.
The harness is kmodlab.oracle.qemu; see its docstring.
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from kmodlab.oracle import qemu  # noqa: E402


def _report(r: qemu.GuestResult, show_files: bool) -> int:
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    if show_files:
        for name in sorted(r.files):
            if name not in ("stdout", "stderr", "script.sh", "script.py", "guest.rc",
                            "uptime.start", "uptime.end"):
                print(f"--- {r.outdir}/{name} ({len(r.files[name])} bytes)", file=sys.stderr)
    print(f"=== rc={r.rc} qemu_rc={r.qemu_rc} timed_out={r.timed_out} "
          f"wall={r.seconds:.1f}s guest={r.timings} out={r.outdir}", file=sys.stderr)
    if r.rc is None:
        print(r.serial_log[-4000:], file=sys.stderr)
        return 2
    return r.rc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="qemu_oracle", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--release", default=None)
    ap.add_argument("--timeout", type=float, default=120)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("prepare")
    p_run = sub.add_parser("run")
    p_run.add_argument("-c", dest="command")
    p_run.add_argument("script", nargs="?")
    p_py = sub.add_parser("python")
    p_py.add_argument("script")
    p_py.add_argument("args", nargs="*")
    p_rec = sub.add_parser("record")
    p_rec.add_argument("--out", type=Path)
    p_rec.add_argument("--no-cli", action="store_true")
    p_mass = sub.add_parser("mass")
    p_mass.add_argument("--out", type=Path)
    p_mass.add_argument("--no-init", action="store_true", help="sandbox: do not run inits")
    p_mass.add_argument("--real-only", action="store_true",
                        help="record the real kernel only (no sandbox replay)")
    p_mass.add_argument("--only", nargs="*", help="only these modules (and their deps)")
    p_mass.add_argument("--no-bytes", action="store_true", help="no /proc/kcore dumps")
    p_replay = sub.add_parser("replay")
    p_replay.add_argument("--recording", type=Path, help="default tests/data/mass_real_<rel>.json.gz")
    p_replay.add_argument("--core", type=Path, help="the VM run's core/ directory")
    p_replay.add_argument("--out", type=Path)
    p_cases = sub.add_parser("cases")
    p_cases.add_argument("--out", type=Path)
    a = ap.parse_args(argv)

    try:
        if a.cmd == "prepare":
            p = qemu.prepare(a.release)
            print(f"release {p.release}\nvmlinux {p.vmlinux}\ninitrd  {p.initrd}\n"
                  f"modules {p.moddir}")
            return 0
        if a.cmd == "run":
            if (a.command is None) == (a.script is None):
                ap.error("run needs either -c COMMAND or a SCRIPT file")
            script = a.command if a.command is not None else Path(a.script).read_text()
            return _report(qemu.run_in_guest(script, timeout=a.timeout, release=a.release), True)
        if a.cmd == "python":
            r = qemu.run_python_in_guest(Path(a.script).read_text(), timeout=a.timeout,
                                         release=a.release, args=a.args)
            return _report(r, True)
        if a.cmd == "record":
            obs, r = qemu.record_oracle(a.release, cli=not a.no_cli, timeout=a.timeout)
            out = a.out or ROOT / "tests" / "data" / qemu.oracle_name(a.release)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(obs, indent=1) + "\n")
            print(f"wrote {out}: {len(obs['cases'])} cases; VM {r.seconds:.1f}s, "
                  f"guest {r.timings}")
            if "cli.json" in r.files:
                print(r.text("cli.json"))
            return 0
        if a.cmd == "cases":
            from kmodlab.oracle import mass
            rec, r = mass.run_cases(a.release, timeout=a.timeout)
            out = a.out or ROOT / "tests" / "data" / mass.cases_name(a.release)
            out.write_text(json.dumps(rec, indent=1) + "\n")
            for c in rec["cases"]:
                print(f"{c['ret']:3} {c['errno_name']:12} {c['case']}  {c['log']}")
            print(f"wrote {out}; VM {r.seconds:.1f}s, guest {r.timings}")
            return 0
        if a.cmd == "replay":
            from kmodlab.oracle import mass, massdiff
            src = a.recording or ROOT / "tests" / "data" / mass.real_recording_name(a.release)
            stored = json.loads(gzip.decompress(src.read_bytes()))
            rec = stored["real"]
            prep = qemu.prepare(rec["release"])
            rep = massdiff.replay(rec, prep.moddir, a.core,
                                  profile=massdiff.profile_for(rec["release"]))
            rep.seconds["vm"] = stored.get("vm_seconds")
            out = a.out or ROOT / "tests" / "data" / mass.recording_name(rec["release"])
            out.write_bytes(gzip.compress((json.dumps(
                mass.summarize(rec, rep, stored.get("vm_seconds") or 0), indent=0) + "\n"
            ).encode(), mtime=0))
            print(massdiff.render(rep))
            print(f"wrote {out}; sandbox {rep.seconds['sandbox']}s")
            return 1 if rep.unexplained() or rep.byte_totals()["unexplained"] else 0
        if a.cmd == "mass":
            from kmodlab.oracle import mass
            prep = qemu.prepare(a.release)
            entries = mass.plan(prep.moddir, only=a.only)
            rec, r = mass.run(entries, timeout=max(a.timeout, 1800), release=a.release,
                              dump_bytes=not a.no_bytes)
            if a.real_only:
                out = a.out or ROOT / "tests" / "data" / mass.real_recording_name(a.release)
                out.write_bytes(gzip.compress((json.dumps(mass.summarize_real(rec, r.seconds),
                                                          indent=0) + "\n").encode(), mtime=0))
                print(mass.render_real(rec))
                print(f"wrote {out}; VM {r.seconds:.1f}s (guest loads {rec.get('seconds')}s); "
                      f"core dumps in {r.outdir}/core")
                return 0
            from kmodlab.oracle import massdiff
            rep = massdiff.replay(rec, prep.moddir, Path(r.outdir) / "core",
                                  run_init=not a.no_init,
                                  profile=massdiff.profile_for(a.release))
            rep.seconds["vm"] = round(r.seconds, 1)
            rep.seconds["guest_loads"] = rec.get("seconds")
            out = a.out or ROOT / "tests" / "data" / mass.recording_name(a.release)
            out.write_bytes(gzip.compress((json.dumps(mass.summarize(rec, rep, r.seconds),
                                                      indent=0) + "\n").encode(), mtime=0))
            print(massdiff.render(rep))
            print(f"wrote {out}; VM {r.seconds:.1f}s (guest loads {rec.get('seconds')}s), "
                  f"sandbox {rep.seconds['sandbox']}s; core dumps in {r.outdir}/core")
            return 1 if rep.unexplained() or rep.byte_totals()["unexplained"] else 0
    except qemu.OracleError as e:
        print(f"qemu_oracle: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
