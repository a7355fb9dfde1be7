"""The real kernel as oracle: Debian's own kernel booted under QEMU (see :mod:`.qemu`)."""
from .qemu import GuestResult, Oracle, prepare, run_in_guest, run_python_in_guest

__all__ = ["GuestResult", "Oracle", "prepare", "run_in_guest", "run_python_in_guest"]
