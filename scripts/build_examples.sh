#!/bin/sh
# Build kmodlab's example kernel modules (examples/*.ko) with kbuild against
# Debian's headers for the kernel kmodlab models, 6.1.0-56-amd64.
#
#   scripts/build_examples.sh          install the headers if missing, then build
#   scripts/build_examples.sh clean    remove the build products (keeps nothing but sources)
#
# KDIR=/path/to/kernel/build overrides the kernel build tree (then nothing is
# installed).  Everything is built in examples/; nothing is copied elsewhere.
# Needs a Debian (bookworm) system; installing the headers needs root or sudo.
set -eu

HEADERS_PKG=linux-headers-6.1.0-56-amd64
DEFAULT_KDIR=/usr/src/$HEADERS_PKG
KDIR=${KDIR:-$DEFAULT_KDIR}

here=$(cd "$(dirname "$0")/.." && pwd)
examples=$here/examples

if [ "${1:-}" = clean ]; then
    exec make -C "$examples" KDIR="$KDIR" clean
fi

if [ "$KDIR" = "$DEFAULT_KDIR" ] && ! [ -f "$KDIR/Module.symvers" ]; then
    echo "build_examples: installing $HEADERS_PKG (gcc-12, linux-kbuild-6.1, headers)" >&2
    if [ "$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi
    $sudo apt-get update
    $sudo apt-get install -y "$HEADERS_PKG"
fi

if ! [ -f "$KDIR/Module.symvers" ]; then
    echo "build_examples: $KDIR is not a kernel build tree (no Module.symvers)" >&2
    exit 1
fi

# Serial on purpose: the modules are tiny and the machines are shared.
make -C "$examples" KDIR="$KDIR"

echo "build_examples: built" >&2
ls -l "$examples"/*.ko >&2
