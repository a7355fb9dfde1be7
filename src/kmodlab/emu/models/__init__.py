"""Modelled kernel functions and data, one file per kernel subsystem.

Importing this package registers every model (see ``emu/registry.py``).  Files mirror where the
kernel implements the function: printk.py (kernel/printk), vsprintf.py (lib/vsprintf.c),
slab.py (mm/slab_common.c, mm/slub.c), string.py (lib/string.c), thunks.py (arch/x86 entry
thunks, ftrace, static calls, stack protector), sched.py (current, preemption, might_sleep),
time.py (jiffies, delays, ktime), page.py (page_offset_base …), crypto.py (crypto/algapi,
shash, templates), device.py (drivers/base/core.c: struct device lifecycle, class
devices, dev_printk; lib/kobject_uevent.c), driver.py (drivers/base, PCI, platform, misc, char_dev), fs.py
(filesystems, NLS, debugfs), locking.py (mutexes, spinlocks, wait queues, RCU), timer.py
(kernel/time/timer.c), workqueue.py (kernel/workqueue.c), net.py (rtnetlink, ethtool,
pernet operations, netdevice notifiers, struct proto, socket families), leds.py (LED
triggers, list debugging), notifier.py (notifier chains), input.py (input handlers, ACPI bus
types), mempool.py (mm/mempool.c), kobject.py (lib/kobject.c: kernel_kobj, fs_kobj, ksets),
proc.py (fs/proc: procfs entries, sysctl tables), shrinker.py (mm/vmscan.c), textsearch.py
(lib/textsearch.c, quota formats), crc.py (lib/crc32.c), kmod.py (kernel/kmod.c: request_module),
module.py (kernel/module/main.c: module references), arch.py (the booted machine: CPUs, ACPI,
Xen), bitmap.py (lib/find_bit.c), block.py
(block/genhd.c: block majors), dmi.py (drivers/firmware/dmi_scan.c), netlink.py
(net/netlink/af_netlink.c: kernel sockets), genetlink.py (net/netlink/genetlink.c: generic
netlink families), tcp_cong.py (net/ipv4/tcp_cong.c: congestion control
algorithms), sockdiag.py (net/core/sock_diag.c:
socket diagnostics handlers), connector.py (drivers/connector: connector
callbacks), inet_proto.py (net/ipv4/protocol.c, net/ipv6/protocol.c:
protocol handlers; net/netfilter/nf_sockopt.c), random.py (drivers/char/random.c),
uuid.py (lib/uuid.c), userns.py (kernel/user_namespace.c, bin2hex), rbtree.py (lib/rbtree.c: tree walks), resource.py
(kernel/resource.c: I/O ports and memory regions), netsched.py (net/sched: qdiscs, classifiers, actions),
percpu.py (mm/percpu.c: dynamic per-CPU memory), inet.py (net/ipv4/inet_fragment.c, udp_tunnel_nic_ops), edac.py
(edac_op_state), transport.py (drivers/base/transport_class.c, attribute_container.c), tty.py
(drivers/tty/tty_io.c, tty_ldisc.c: tty drivers, line disciplines), backing_dev.py
(mm/backing-dev.c: bdi_alloc, bdi_register).
"""
from . import (arch, backing_dev, bitmap, block, bpf, connector, cpuhp, crc, crypto, device,  # noqa: F401
               dmi, driver, edac, fs, genetlink, idr, inet, inet_proto, input, jump_label,
               kmod, kobject, leds, locking, mempool, module, net, netfilter, netlink,
               netsched, notifier, page, percpu, printk, proc, random, rbtree, resource,
               rhashtable, sched, shrinker, slab, sockdiag, string, tcp_cong, textsearch,
               thunks, time, timer, transport, tty, userns, uuid, vsprintf, workqueue, zpool)
