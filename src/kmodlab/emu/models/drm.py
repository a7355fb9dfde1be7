"""The kernel command line's say over display drivers (drivers/video/nomodeset.c,
drivers/video/fbdev/core/fb_cmdline.c and fbmem.c, drivers/video/cmdline.c in 6.12).

- ``nomodeset`` is a ``__setup("nomodeset", …)`` parameter: obsolete_checksetup accepts a
  command-line word that *starts* with "nomodeset" (``nomodeset``, ``nomodeset=1``,
  ``nomodesetx``), and the flag stays set for the whole boot.  ``drm_firmware_drivers_only``
  (6.1, drivers/gpu/drm/drm_nomodeset.c) and ``video_firmware_drivers_only`` (6.12) return it.
  The words after ``--`` are init's, not the kernel's.
- ``fb_modesetting_disabled(drvname)`` (6.12, fbmem.c): video_firmware_drivers_only(), and when
  set, pr_warn "Driver %s not loading because of nomodeset parameter".
- ``fb_get_options(name, &option)``: the ``video=`` words.  Without any ``video=`` word (the
  oracle's command line has none) nothing is selected: ``*option = NULL`` (when ``option`` is
  not NULL) and 0 (enabled).  A command line with ``video=`` words would hand out pointers into
  the kernel's copy of it (6.1) or kstrdup'ed copies (6.12), which is not modelled: Unmodelled.

The command line is the machine's (``Machine.cmdline``, /proc/cmdline); a bare emulator
without a machine has an empty one.
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..registry import model


def _kernel_words(emu) -> list[str]:
    """The command line's words the kernel parses (up to ``--``)."""
    from ...kernel.params import next_arg
    rest = (getattr(emu.kernel, "cmdline", "") or "").lstrip()
    out = []
    while rest:
        param, val, rest = next_arg(rest)
        if param == "--" and val is None:
            break
        out.append(param if val is None else f"{param}={val}")
    return out


def nomodeset(emu) -> bool:
    return any(w.startswith("nomodeset") for w in _kernel_words(emu))


@model("drm_firmware_drivers_only", "video_firmware_drivers_only")
def firmware_drivers_only(emu):
    """True iff the machine booted with ``nomodeset``."""
    return int(nomodeset(emu))


@model("fb_modesetting_disabled")
def fb_modesetting_disabled(emu, drvname):
    if not nomodeset(emu):
        return 0
    name = emu.cstr(drvname, 256).decode("latin-1") if drvname else "(null)"
    emu.printk(4, f"Driver {name} not loading because of nomodeset parameter\n")
    return 1


@model("fb_get_options")
def fb_get_options(emu, name, option):
    """No ``video=`` word: nothing selected, 0; otherwise Unmodelled (see the docstring)."""
    if any(w.startswith("video=") for w in _kernel_words(emu)):
        raise Unmodelled("fb_get_options (video= options on the command line)",
                         what=emu.what)
    if option:
        emu.write_u(option, 8, 0)
    return 0
