"""printk (kernel/printk/printk.c): render with vsprintf, parse the KERN_<level> prefix, log.

``_printk(fmt, ...)`` is what ``pr_info`` and friends compile to in 6.1.  The rendered text may
start with one or more ``KERN_SOH`` (``"\\x01"``) + level pairs: the first digit ``0``–``7``
sets the level, ``c`` (KERN_CONT) continues the previous unterminated line, ``d``
(KERN_DEFAULT) keeps the default; without a level the message gets
``MESSAGE_LOGLEVEL_DEFAULT`` (4).  The return value is the stored text's length (prefix and
trailing newline excluded), as vprintk_store returns it.
"""
from __future__ import annotations

from ..registry import model
from .vsprintf import VaList, vsprintf

KERN_SOH = "\x01"
MESSAGE_LOGLEVEL_DEFAULT = 4
LOGLEVEL_DEFAULT = -1


def printk_parse_prefix(text: str) -> tuple[int, bool, int]:
    """(level or LOGLEVEL_DEFAULT, is KERN_CONT, prefix length)."""
    level, cont, i = LOGLEVEL_DEFAULT, False, 0
    while i + 1 < len(text) and text[i] == KERN_SOH and text[i + 1] in "01234567cd":
        k = text[i + 1]
        if k.isdigit():
            if level == LOGLEVEL_DEFAULT:
                level = int(k)
        elif k == "c":
            cont = True
        i += 2
    return level, cont, i


def vprintk(emu, text: str) -> int:
    level, cont, plen = printk_parse_prefix(text)
    body = text[plen:]
    if level == LOGLEVEL_DEFAULT:
        level = MESSAGE_LOGLEVEL_DEFAULT
    emu.note(text)
    emu.printk(level, body, cont)
    return len(body) - (1 if body.endswith("\n") else 0)


@model("_printk", "printk")
def _printk(emu, fmt, *_):
    return vprintk(emu, vsprintf(emu, emu.cstr(fmt), emu.args_from(1)))


@model("vprintk")
def vprintk_model(emu, fmt, ap):
    return vprintk(emu, vsprintf(emu, emu.cstr(fmt), VaList(emu, ap)))
