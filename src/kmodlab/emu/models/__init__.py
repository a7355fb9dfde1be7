"""Modelled kernel functions and data, one file per kernel subsystem.

Importing this package registers every model (see ``emu/registry.py``).  Files mirror where the
kernel implements the function:

- the core: printk.py (kernel/printk), vsprintf.py (lib/vsprintf.c), sscanf.py (its vsscanf),
  slab.py (mm/slab_common.c, mm/slub.c, mm/vmalloc.c), page.py (page_offset_base …, whole
  pages, struct page), percpu.py (mm/percpu.c), mempool.py (mm/mempool.c), string.py
  (lib/string.c), reciprocal_div.py (lib/math), thunks.py (arch/x86 entry thunks,
  ftrace, static calls, stack protector), sched.py (current, preemption, might_sleep),
  time.py (jiffies, delays, ktime), timer.py (kernel/time/timer.c), workqueue.py
  (kernel/workqueue.c), kthread.py (kernel/kthread.c: kernel threads, kthread
  workers, their scheduling policy), locking.py (mutexes, spinlocks, wait queues, RCU), notifier.py
  (notifier chains, the kernel's own chains), jump_label.py (static keys), cpuhp.py
  (kernel/cpu.c: CPU hotplug states), module.py (module references), kmod.py (request_module),
  random.py (drivers/char/random.c), userns.py (kernel/user_namespace.c, bin2hex), bpf.py
  (kernel/bpf/btf.c kfunc sets);
- data structures: bitmap.py (lib/find_bit.c), rbtree.py (lib/rbtree.c walks), idr.py
  (lib/idr.c, lib/xarray.c), rhashtable.py (lib/rhashtable.c), crc.py (lib/crc32.c), uuid.py
  (lib/uuid.c), textsearch.py (lib/textsearch.c, quota formats), ctype.py (lib/ctype.c);
- the booted machine (the oracle's QEMU guest): arch.py (its CPU, memory, ACPI, Xen, Hyper-V,
  XSAVE, the VT console, NUMA), dmi.py (its SMBIOS identity), resource.py (kernel/resource.c:
  its I/O port and memory trees);
- devices: device.py (drivers/base/core.c: struct device, class devices, dev_printk, uevents),
  auxiliary.py (drivers/base/auxiliary.c), cpufreq.py (cpufreq governors), devres.py
  (drivers/base/devres.c: managed resources, devm_ allocators and actions), regmap.py
  (dev_get_regmap),
  driver.py (drivers/base: buses, classes, drivers matched against the machine's devices,
  platform/PCI/ACPI/PNP, misc, char_dev), kobject.py (lib/kobject.c), transport.py (SCSI
  transport classes, attribute containers), tty.py (tty drivers, line disciplines), input.py
  (input handlers), leds.py (LED triggers), edac.py, block.py (block majors), backing_dev.py
  (mm/backing-dev.c);
- filesystems: fs.py (filesystems, NLS, debugfs), proc.py (procfs entries, sysctl tables,
  init_net's sysctls), shrinker.py (mm/vmscan.c), zpool.py (mm/zpool.c), nfs_ssc.py
  (fs/nfs_common/nfs_ssc.c), libfs.py (simple_pin_fs, internal mounts, root inode/dentry),
  parser.py (lib/parser.c: match_token);
- networking: net.py (rtnetlink, ethtool, pernet operations, netdevice notifiers, struct
  proto, socket families, init_net's fields), netlink.py (kernel sockets), genetlink.py
  (generic netlink families), netsched.py (qdiscs, classifiers, actions), inet.py (inet
  fragments, fqdir, udp_tunnel_nic_ops), inet_proto.py (protocol handlers, netfilter sockopts),
  netfilter.py (netfilter's hook pointers), dropreason.py (subsystem skb drop reasons),
  tcp_cong.py (congestion control), tcp_ulp.py (TCP upper-layer protocols), sockdiag.py
  (sock_diag handlers), connector.py
  (drivers/connector), gro.py (packet offloads), ipv6.py (ipv6_mod_enabled), lwtunnel.py
  (lwtunnel encap ops), sysctl_net_core.py (net.core sysctls), xfrm.py (xfrm input afinfo,
  types, protocol handlers), zones.py (zone page counters: nr_free_buffer_pages);
- drm.py (nomodeset, video= options: the command line's say over display drivers);
- crypto.py (crypto/algapi, shash, templates), keys.py (security/keys: keyrings, keys, key
  types; the X.509 asymmetric key parser), cred.py (kernel/cred.c: kernel services' creds);
- misc.py (lib/percpu_counter.c, dmaengine_get/put, SRCU structs), serdev.py (serial device bus drivers), sort.py
  (lib/sort.c).
"""
from . import (arch, auxiliary, backing_dev, bitmap, block, bpf, connector, cpufreq, cpuhp, crc, crypto,  # noqa: F401
               ctype, device, dmi, driver, dropreason, edac, fs, genetlink, idr, inet, inet_proto, input,
               jump_label, keys, kmod, kobject, kthread, leds, locking, mempool, module, net, netfilter, netlink,
               netsched, notifier, page, percpu, printk, proc, random, rbtree, resource,
               rhashtable, sched, shrinker, slab, sockdiag, string, tcp_cong, textsearch,
               thunks, time, timer, transport, tty, userns, uuid, vsprintf, workqueue, zpool)
from . import drm  # noqa: F401,E402
from . import gro, ipv6, lwtunnel, sysctl_net_core, xfrm, zones  # noqa: F401,E402
from . import cred, devres, nfs_ssc, reciprocal_div, regmap, sscanf, tcp_ulp  # noqa: F401,E402
from . import libfs, parser  # noqa: F401,E402
from . import misc, serdev, sort  # noqa: F401,E402
