"""Transport classes and attribute containers (drivers/base/transport_class.c,
drivers/base/attribute_container.c): what the SCSI transports (scsi_transport_fc, _sas, _spi,
_iscsi, _srp), raid_class and libata register from their inits.

* ``transport_class_register(tc)`` is a class registration of ``tc->class`` (a struct class
  at offset 0 of struct transport_class): Linux 6.1's ``class_register`` macro, i.e.
  ``__class_register(&tc->class, &key)``; 6.12's ``class_register``.  The class models of
  driver.py do it (same registry, same -EEXIST for a name already in /sys/class), and
  ``transport_class_unregister`` is ``class_unregister``.
* ``attribute_container_register(cont)`` initialises ``cont->node`` and the ``containers``
  klist (k_lock unlocked, k_list empty) and puts the container on the kernel's
  ``attribute_container_list``; it always returns 0.  That list head is a static of
  attribute_container.c, whose address the profile does not know: the container is recorded in
  ``emu.state["transport"]["containers"]`` (registration order) and its ``node`` is left
  initialised to itself, which module code never follows.  The klist's ``get``/``put`` are the
  kernel's static ``internal_container_klist_get``/``_put``: not written either.
  ``attribute_container_unregister`` returns -EBUSY while the container's klist has class
  devices (it reads ``k_list`` from memory), else takes it off the list and returns 0.
* ``anon_transport_class_register(atc)``: ``atc->container.class = &atc->tclass.class``, the
  container's ATTRIBUTE_CONTAINER_NO_CLASSDEVS flag set, then attribute_container_register —
  the class itself is *not* registered.  On success the kernel points ``tclass.setup`` and
  ``tclass.remove`` at its static ``anon_transport_dummy_function`` (unknown address here;
  only the kernel's transport_setup/remove_device calls them, which the sandbox does not
  model): left alone.  ``anon_transport_class_unregister`` BUG()s if the container is busy.

The sandbox creates no devices, so no container ever gets a class device: unregistering cannot
be busy unless module code put something on the klist itself.

Layouts (Debian 6.1 amd64; read from the running kernel's BTF): ``struct transport_class``
{class 0, setup 120, configure 128, remove 136} (144 bytes; 6.12: setup 96, remove 112);
``struct anon_transport_class`` {tclass 0, container 144} (6.12: container 120);
``struct attribute_container`` {node 0, containers 16, class 56, grp 64, attrs 72, match 80,
flags 88}; ``struct klist`` {k_lock 0, k_list 8, get 24, put 32}.
"""
from __future__ import annotations

from ..errors import Unmodelled
from ..layouts import layout
from ..registry import model
from .driver import __class_register, class_unregister
from .locking import init_list_head

EBUSY = 16
ATTRIBUTE_CONTAINER_NO_CLASSDEVS = 0x01
TC_CLASS = ("transport_class", "class")
ATC_TCLASS = ("anon_transport_class", "tclass")
ATC_CONTAINER = ("anon_transport_class", "container")
AC_NODE = ("attribute_container", "node")
AC_CONTAINERS = ("attribute_container", "containers")
AC_CLASS = ("attribute_container", "class")
AC_FLAGS = ("attribute_container", "flags")
KLIST_LOCK = ("klist", "k_lock")
KLIST_LIST = ("klist", "k_list")
LAYOUT = layout("transport")


def _o(emu, key: tuple[str, str]):
    return LAYOUT.of(emu)[key]


def _containers(emu) -> list:
    return emu.state.setdefault("transport", {}).setdefault("containers", [])


@model("transport_class_register")
def transport_class_register(emu, tclass):
    """class_register(&tclass->class): 0, or -EEXIST for a class name already registered."""
    return __class_register(emu, tclass + _o(emu, TC_CLASS), 0)


@model("transport_class_unregister")
def transport_class_unregister(emu, tclass):
    class_unregister(emu, tclass + _o(emu, TC_CLASS))


@model("attribute_container_register")
def attribute_container_register(emu, cont):
    init_list_head(emu, cont + _o(emu, AC_NODE))
    klist = cont + _o(emu, AC_CONTAINERS)
    emu.write_u(klist + _o(emu, KLIST_LOCK), 4, 0)               # spin_lock_init
    init_list_head(emu, klist + _o(emu, KLIST_LIST))
    conts = _containers(emu)
    if cont in conts:
        # the node is re-initialised while attribute_container_list still links it: what
        # list debugging then reports depends on its neighbours, which are not modelled
        raise Unmodelled("attribute_container_register (container already registered: "
                         "list_add of a listed node)", what=emu.what)
    conts.append(cont)
    return 0


def _container_busy(emu, cont: int) -> bool:
    head = cont + _o(emu, AC_CONTAINERS) + _o(emu, KLIST_LIST)
    return emu.read_u(head, 8) != head


@model("attribute_container_unregister")
def attribute_container_unregister(emu, cont):
    if _container_busy(emu, cont):
        return -EBUSY
    conts = _containers(emu)
    if cont in conts:
        conts.remove(cont)
    return 0


@model("anon_transport_class_register")
def anon_transport_class_register(emu, atc):
    cont = atc + _o(emu, ATC_CONTAINER)
    emu.write_u(cont + _o(emu, AC_CLASS), 8, atc + _o(emu, ATC_TCLASS) + _o(emu, TC_CLASS))
    flags = emu.read_u(cont + _o(emu, AC_FLAGS), 8)
    emu.write_u(cont + _o(emu, AC_FLAGS), 8, flags | ATTRIBUTE_CONTAINER_NO_CLASSDEVS)
    return attribute_container_register(emu, cont)


@model("anon_transport_class_unregister")
def anon_transport_class_unregister(emu, atc):
    if attribute_container_unregister(emu, atc + _o(emu, ATC_CONTAINER)):
        raise emu.oops(["kernel BUG at drivers/base/transport_class.c "
                        "(anon_transport_class_unregister: the container still has devices)"])
