"""Several kmodlab processes on one machine at once: no lost update, no torn state, the kernel's
outcomes (kmodlab.machine.MachineStore: one flock per command, one atomic generation switch).

Four worker processes each run 200 kmodlab commands (insmod/rmmod/lsmod of hello, of
kmodlab_provider and of kmodlab_consumer, which uses the provider's exports) through the same
entry point as the ``kmodlab`` command (``kmodlab.tools.main``, one fresh SandboxKernel and
MachineStore per command), as fast as they can, bounded in count and in time.  Afterwards:

* every command ended with one of the answers Linux gives for it (a load: loaded, EEXIST, or
  for the consumer without its provider ENOENT "Unknown symbol"; a removal: removed, "not
  currently loaded", in use; and, when another process acted between kmod's user-space check
  and the syscall, EWOULDBLOCK (a user appeared), ENOENT (it was removed) or kmod's "Module
  unloading is not supported" (it went between the initstate and refcnt reads)) — never an internal error, never a damaged machine;
* per module, successful loads minus successful removals is 0 or 1 and is what /proc/modules
  shows at the end; the provider's refcount is 1 exactly when the consumer is loaded;
* the kernel log holds one line set per command: each successful ``insmod hello who=W`` logs
  "hello, W!" exactly once and each successful rmmod "goodbye, W" of the instance it removed,
  alternating in log order, and that order agrees with real time (a command that finished
  before another started comes first);
* every /proc/modules a worker read was a state of the machine: the consumer never without
  its provider, the provider's users naming the consumer exactly when it is listed, every
  module Live (no other process's load is ever seen half done); every ``lsmod`` well formed
  (kmod's lsmod reads /proc/modules and then each module's sysfs files one by one, so under
  concurrency it may mix two states, on Linux too).

The kernel's own answers for truly simultaneous calls (measured in tests/test_policy.py's
recordings, 6.1 and 6.12): rmmod of a module whose init is still running is EBUSY, and a
second load of the same name while the first is COMING waits for it and then gets EEXIST.
The sandbox runs each syscall whole under the machine's lock, so another process never sees a
module COMING: the second load simply comes after the first, one of the orders the kernel
allows, with the same EEXIST.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EX = ROOT / "examples"
WORKERS, COMMANDS, TIME_LIMIT = 4, 200, 150.0

WORKER = r'''
import contextlib, io, json, random, sys, time
from kmodlab.tools import main
wid, n, limit, out, ex = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
rnd = random.Random(1000 + wid)
choices = (["insmod-hello"] * 4 + ["rmmod-hello"] * 4 + ["insmod-provider"] * 2 +
           ["rmmod-provider"] * 2 + ["insmod-consumer"] * 2 + ["rmmod-consumer"] * 2 + ["lsmod", "cat"])
runs = []
deadline = time.monotonic() + limit
for i in range(n):
    if time.monotonic() > deadline:
        break
    what = rnd.choice(choices)
    verb, mod = what.split("-") if "-" in what else (what, None)
    if verb == "insmod":
        argv = ["kmodlab", "insmod", f"{ex}/{'hello' if mod == 'hello' else 'kmodlab_' + mod}.ko"]
        if mod == "hello":
            argv.append(f"who=w{wid}c{i}")
    elif verb == "rmmod":
        argv = ["kmodlab", "rmmod", "hello" if mod == "hello" else "kmodlab_" + mod]
    elif verb == "cat":
        argv = ["kmodlab", "cat", "/proc/modules"]
    else:
        argv = ["kmodlab", "lsmod"]
    o, e = io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), io.StringIO()   # cat writes bytes
    t0 = time.monotonic()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        try:
            rc = main(argv)
        except SystemExit as x:
            rc = x.code
    o.flush()
    runs.append({"argv": argv[1:], "rc": rc, "out": o.buffer.getvalue().decode(), "err": e.getvalue(),
                 "t0": t0, "t1": time.monotonic()})
json.dump(runs, open(out, "w"))
'''

PROVIDER, CONSUMER = "kmodlab_provider", "kmodlab_consumer"


def km(machine: Path, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, KMODLAB_MACHINE=str(machine))
    return subprocess.run([sys.executable, "-m", "kmodlab", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=120)


def classify(run: dict) -> str:
    """The outcome of one command, by kmod's words; 'BAD: …' for anything Linux would not say."""
    verb, rc, err = run["argv"][0], run["rc"], run["err"]
    if "internal error" in err or "Traceback" in err or "cannot read the sandbox machine" in err:
        return "BAD: " + err
    if rc == 0:
        return "ok"
    if verb == "insmod":
        if "File exists" in err:
            return "EEXIST"
        if "Unknown symbol in module" in err and CONSUMER in run["argv"][1]:
            return "ENOENT"
    if verb == "rmmod":
        if "is not currently loaded" in err:
            return "not loaded"
        if "is in use by" in err or re.search(r"is in use\b", err):
            return "in use"
        if "Resource temporarily unavailable" in err:
            return "EWOULDBLOCK"
        if "could not remove module" in err and "No such file or directory" in err:
            return "ENOENT"             # removed by another process after kmod's check
        if "Module unloading is not supported" in err:
            # kmod's check_module_inuse read initstate, then the module went before it read
            # refcnt (-ENOENT): kmod 30 says exactly this in that race
            return "vanished"
    return f"BAD: rc {rc}: {err}"


def lsmod_state(out: str) -> dict[str, tuple[int, str]]:
    mods = {}
    for line in out.splitlines()[1:]:
        parts = line.split()
        mods[parts[0]] = (int(parts[2]), parts[3] if len(parts) > 3 else "")
    return mods


def test_four_processes_two_hundred_commands(tmp_path):
    machine = tmp_path / "machine"
    km(machine, "lsmod")                                   # boot it once
    env = dict(os.environ, KMODLAB_MACHINE=str(machine))
    env.pop("KMODLAB_KERNEL", None)
    procs, outs = [], []
    for w in range(WORKERS):
        out = tmp_path / f"w{w}.json"
        outs.append(out)
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, str(w), str(COMMANDS),
                                       str(TIME_LIMIT), str(out), str(EX)], env=env))
    for p in procs:
        assert p.wait(timeout=TIME_LIMIT + 120) == 0
    runs = [dict(r, worker=w) for w, out in enumerate(outs) for r in json.loads(out.read_text())]
    assert len(runs) >= WORKERS * 50, "the workers ran out of time early"
    if os.environ.get("KMODLAB_CONCURRENCY_FULL"):
        assert len(runs) == WORKERS * COMMANDS

    # every answer is one Linux gives
    outcomes = [(r, classify(r)) for r in runs]
    bad = [(r["argv"], c) for r, c in outcomes if c.startswith("BAD")]
    assert not bad, bad[:5]

    # counts per module agree with the final state
    final = lsmod_state(km(machine, "lsmod").stdout)
    for mod, key in (("hello", "hello"), (PROVIDER, "provider"), (CONSUMER, "consumer")):
        ins = sum(1 for r, c in outcomes if r["argv"][0] == "insmod" and key in r["argv"][1]
                  and c == "ok")
        rms = sum(1 for r, c in outcomes if r["argv"] == ["rmmod", mod] and c == "ok")
        assert ins - rms in (0, 1), (mod, ins, rms)
        assert (mod in final) == (ins - rms == 1), (mod, ins, rms, final)
    if PROVIDER in final:
        assert final[PROVIDER] == ((1, CONSUMER) if CONSUMER in final else (0, ""))
    assert CONSUMER not in final or PROVIDER in final

    # one line set per command, alternating, in an order real time allows
    loads = {r["argv"][2].split("=", 1)[1]: r for r, c in outcomes
             if r["argv"][:1] == ["insmod"] and len(r["argv"]) > 2 and c == "ok"}
    hello_rms = [r for r, c in outcomes if r["argv"] == ["rmmod", "hello"] and c == "ok"]
    log = km(machine, "dmesg").stdout.splitlines()
    events = []
    for line in log:
        m = re.search(r"\] hello: (hello, (\S+)!|goodbye, (\S+))$", line)
        if m:
            events.append(("load", m.group(2)) if m.group(2) else ("unload", m.group(3)))
    assert sorted(w for e, w in events if e == "load") == sorted(loads)
    assert sum(1 for e, _ in events if e == "unload") == len(hello_rms)
    current = None
    order = []
    for e, who in events:
        if e == "load":
            assert current is None, f"{who} loaded while {current} was"
            current = who
            order.append(loads[who])
        else:
            assert who == current, f"goodbye {who}, but {current} was loaded"
            current = None
    assert (current is not None) == ("hello" in final)
    for a, b in zip(order, order[1:]):
        assert not b["t1"] < a["t0"], "the log's order contradicts real time"
    provider_lines = sum(1 for line in log if "kmodlab_provider: provider loaded" in line)
    assert provider_lines == sum(1 for r, c in outcomes if r["argv"][0] == "insmod"
                                 and "provider" in r["argv"][1] and c == "ok")

    # every lsmod showed a state the machine could be in
    def before(r):                       # what happened around it, for the message
        near = sorted((x for x, _ in outcomes if x["t0"] <= r["t1"] and x["t1"] >= r["t0"] - 0.5),
                      key=lambda x: x["t0"])
        return [(x["worker"], x["argv"], classify(x), round(x["t0"] - r["t0"], 3)) for x in near]
    for r, c in outcomes:
        if r["argv"] == ["cat", "/proc/modules"]:
            seen = {f[0]: (int(f[2]), f[3]) for f in map(str.split, r["out"].splitlines())}
            assert all(v in ("Live",) for v in
                       (f[4] for f in map(str.split, r["out"].splitlines()))), r["out"]
            if CONSUMER in seen:
                assert seen.get(PROVIDER) == (1, CONSUMER + ","), (seen, before(r))
            elif PROVIDER in seen:
                assert seen[PROVIDER] == (0, "-"), (seen, before(r))
        elif r["argv"] == ["lsmod"]:
            # kmod's lsmod reads /proc/modules, then each module's refcnt and holders in
            # sysfs, each read on its own (so under concurrency it may combine two states,
            # as kmod does on Linux): every line must still be well formed
            lines = r["out"].splitlines()
            assert lines[0].split() == ["Module", "Size", "Used", "by"]
            for line in lines[1:]:
                assert re.fullmatch(r"\S+ +\d+ +\d+( \S+)?", line), line
    # the directory holds one generation and nothing half-written
    left = sorted(p.name for p in machine.iterdir())
    assert [n for n in left if n.startswith("gen-")] == [os.readlink(machine / "current")]
    assert not [n for n in left if n.startswith(".")], left
