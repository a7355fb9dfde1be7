"""The kernel log (printk's ring buffer): records with a level and a time since boot.

``dmesg`` renders them as the real one does: ``[%5lu.%06lu] text``.  Once-per-boot messages
(``pr_*_once``) are remembered by key in the machine so that they stay once across commands.
"""
from __future__ import annotations

from dataclasses import dataclass

KERN_EMERG, KERN_ALERT, KERN_CRIT, KERN_ERR = 0, 1, 2, 3
KERN_WARNING, KERN_NOTICE, KERN_INFO, KERN_DEBUG = 4, 5, 6, 7
LEVEL_NAMES = ["emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"]


@dataclass
class LogRecord:
    ts_ns: int          # nanoseconds since the machine booted
    level: int
    text: str
    facility: int = 0   # 0 = kernel

    def render(self) -> str:
        sec, ns = divmod(self.ts_ns, 1_000_000_000)
        return f"[{sec:5d}.{ns // 1000:06d}] {self.text}"
