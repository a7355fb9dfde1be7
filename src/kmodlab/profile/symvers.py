"""Module.symvers and the kernel .config, as text.

Module.symvers lines are tab-separated: ``0xCRC  symbol  owner  EXPORT_SYMBOL[_GPL]  namespace``
(the namespace column may be empty).  The owner is ``vmlinux`` or a module path without ``.ko``
(e.g. ``drivers/net/dummy``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import KmodlabError


@dataclass
class SymversEntry:
    name: str
    crc: int | None
    owner: str
    gpl: bool
    namespace: str


def parse_symvers(text: str, source: str = "Module.symvers") -> list[SymversEntry]:
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        f = line.split("\t")
        if len(f) < 4:
            raise KmodlabError(f"{source}:{lineno}: expected 'crc<TAB>symbol<TAB>owner<TAB>type"
                               f"[<TAB>namespace]', got {line[:80]!r}")
        try:
            crc = int(f[0], 16) if f[0] else None
        except ValueError:
            raise KmodlabError(f"{source}:{lineno}: bad CRC {f[0]!r}") from None
        kind = f[3]
        if kind not in ("EXPORT_SYMBOL", "EXPORT_SYMBOL_GPL"):
            raise KmodlabError(f"{source}:{lineno}: unknown export type {kind!r}")
        out.append(SymversEntry(f[1], crc, f[2], kind == "EXPORT_SYMBOL_GPL",
                                f[4] if len(f) > 4 else ""))
    return out


_UNESCAPE = re.compile(r"\\(.)")


def parse_config(text: str) -> dict[str, str]:
    """A kernel .config as {name without CONFIG_: value}.  ``# CONFIG_X is not set`` lines are
    left out (absent means not set); string values lose their quotes and backslash escapes."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith("CONFIG_"):
            continue
        key, eq, value = line.partition("=")
        if not eq:
            continue
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = _UNESCAPE.sub(r"\1", value[1:-1])
        out[key[7:]] = value
    return out
