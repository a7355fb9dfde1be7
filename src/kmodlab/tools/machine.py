"""machine: where the sandbox machine lives, what it runs, and resetting it (a reboot)."""
from __future__ import annotations

import shutil

from ..machine import MachineStore
from .common import ToolParser, print_json


def main(argv: list[str]) -> int:
    p = ToolParser(prog="machine")
    p.add_argument("action", nargs="?", default="show", choices=["show", "reset", "path"])
    p.add_argument("--json", action="store_true")
    opts = p.parse_args(argv)
    store = MachineStore()
    if opts.action == "path":
        print(store.path)
        return 0
    if opts.action == "reset":
        store.lock()
        try:
            store.reset()
        finally:
            store.unlock()
        print(f"machine {store.path} reset: next command boots a fresh kernel")
        return 0
    if not store.exists():
        info = {"path": str(store.path), "booted": False}
    else:
        store.lock()
        try:
            m = store.load()
        finally:
            store.unlock()
        info = {"path": str(store.path), "booted": True, "kernel": m.profile_name,
                "uptime_s": round(m.now_ns() / 1e9, 3), "tainted": m.taint,
                "modules": [x.name for x in m.modules], "log_records": len(m.log),
                "notifier_events": [f"{ev} {name}" for _ts, ev, name in m.events[-10:]],
                "heap_bytes_allocated": sum(m.heap.allocs.values())}
    if opts.json:
        print_json(info)
    else:
        for k, v in info.items():
            print(f"{k}: {', '.join(v) if isinstance(v, list) else v}")
    return 0
