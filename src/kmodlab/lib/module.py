"""kmod_module_insert_module: how user space hands a module file to the kernel.

One place for insmod and modprobe (kmod's libkmod-module.c):
- an uncompressed file goes to finit_module(fd, args, flags);
- a compressed one goes to finit_module with MODULE_INIT_COMPRESSED_FILE when the kernel
  announces that format in /sys/module/compression (Linux ≥ 6.4, kmod ≥ 31), otherwise it is
  decompressed here and passed to init_module (kmod 30, and every Debian 6.1 kernel);
- ``force`` flags (IGNORE_MODVERSIONS / IGNORE_VERMAGIC) go with finit_module; where the image
  goes through init_module instead (compressed, or finit_module missing: ENOSYS), the
  ``__versions`` section and the ``vermagic=`` string are stripped in memory.
"""
from __future__ import annotations

import os

from ..errors import ENOSYS
from ..kernel.module.internal import (MODULE_INIT_COMPRESSED_FILE, MODULE_INIT_IGNORE_MODVERSIONS,
                                      MODULE_INIT_IGNORE_VERMAGIC)
from ..syscalls import SyscallResult
from .file import read_module


def kernel_decompresses(kernel, compression: str) -> bool:
    """/sys/module/compression names the one format the kernel decompresses itself."""
    try:
        return kernel.read("/sys/module/compression").decode().strip() == compression
    except OSError:
        return False


def insert_module(kernel, path: str, args: str, flags: int = 0) -> SyscallResult:
    """Load the module file at ``path`` with parameter string ``args``.  ``flags`` may hold
    MODULE_INIT_IGNORE_MODVERSIONS / MODULE_INIT_IGNORE_VERMAGIC.  Raises ModuleFileError
    when the file cannot be read or decompressed."""
    mf = read_module(path)
    path = os.path.abspath(path)
    if mf.compression == "none":
        res = kernel.finit_module(path, args, flags)
        if res.ok or res.errno != ENOSYS:
            return res
    elif kernel_decompresses(kernel, mf.compression):
        return kernel.finit_module(path, args, flags | MODULE_INIT_COMPRESSED_FILE)
    image = mf.data
    if flags & (MODULE_INIT_IGNORE_MODVERSIONS | MODULE_INIT_IGNORE_VERMAGIC):
        from .strip import strip_for_force
        image = strip_for_force(image)
    return kernel.init_module(image, args)
