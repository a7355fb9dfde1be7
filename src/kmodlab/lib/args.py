"""The parameter string insmod hands to the kernel (kmod's tools/opt.c options_from_array)."""
from __future__ import annotations


def options_from_array(args: list[str]) -> str:
    """Join with single spaces; a value (after the first '=') holding a space and not already
    quoted is wrapped in double quotes: ``bar=hello world`` → ``bar="hello world"``."""
    out = []
    for a in args:
        name, eq, value = a.partition("=")
        if eq and " " in value and not (value.startswith('"') and value.endswith('"') and len(value) > 1):
            a = f'{name}="{value}"'
        out.append(a)
    return " ".join(out)
