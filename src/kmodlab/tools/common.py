"""Small pieces the tools share: option parsing in kmod's style and result rendering."""
from __future__ import annotations

import argparse
import json
import sys

from ..errors import UsageError


class ToolParser(argparse.ArgumentParser):
    """argparse that reports errors as UsageError (→ 'prog: ERROR: …', exit 1), not exit 2."""

    def error(self, message):
        raise UsageError(message)


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, default=_default)
    sys.stdout.write("\n")


def _default(o):
    import dataclasses
    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)
    if isinstance(o, (bytes, bytearray)):
        return o.hex()
    return str(o)


def call_json(c) -> dict:
    """An emulator CallRecord as JSON."""
    return {k: getattr(c, k) for k in ("name", "args", "ret") if hasattr(c, k)}
