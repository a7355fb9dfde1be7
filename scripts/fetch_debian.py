#!/usr/bin/env python3
"""Download (or reuse) a Debian kernel's linux-image, linux-headers and linux-headers-common
packages and print their paths.

    scripts/fetch_debian.py [--release REL | --current] [--dest DIR]

Default is --current: the release the registry's linux-image-amd64 depends on now.  Files go
to DIR, else $KMODLAB_CACHE/debs, else ~/.cache/kmodlab/debs; cached files are reused.  The
logic lives in kmodlab.profile.debian.fetch_packages.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--release", metavar="REL", help="e.g. 6.1.0-56-amd64")
    g.add_argument("--current", action="store_true", help="what linux-image-amd64 points at (default)")
    ap.add_argument("--dest", metavar="DIR", type=Path, help="download directory")
    args = ap.parse_args(argv)
    try:
        import kmodlab  # noqa: F401
    except ImportError:                         # run from a checkout without pip install -e
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from kmodlab.errors import KmodlabError
    from kmodlab.profile.debian import fetch_packages
    try:
        got = fetch_packages(args.release, args.dest)
    except KmodlabError as e:
        print(f"fetch_debian: ERROR: {e}", file=sys.stderr)
        return 1
    print(f"release {got['release']}")
    print(got["image"])
    for h in got["headers"]:
        print(h)
    return 0


if __name__ == "__main__":
    sys.exit(main())
