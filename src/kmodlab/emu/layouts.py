"""The kernel struct layouts the models rely on, per models file, with Debian 6.1's values.

A model that reads or writes a kernel struct does so at byte offsets.  Those offsets are facts
of one kernel build; this module declares every one of them, tied to its BTF struct and member,
with the value it has in Linux 6.1 (Debian 12, the release the models were written against):
``LAYOUTS["driver"]["class"]["p"] == 112`` is offsetof(struct class, p).  ``"sizeof"`` is
sizeof(struct); a member path may go through members and array elements (``"wait.head"``,
``"entry.pprev"``); a bitfield is ``[bit offset, bits]``.  Flag values, errno numbers and array
lengths are not struct layouts and are not declared.

Plain data, imported by the profile importer (``profile/debian.py``: ``STRUCTS_WANTED``
records every declared fact from the kernel's BTF) without importing the emulator.

At run time (``emu/emulator.py``) a models file is in one of two modes:

* **checked** (the default): the file keeps its 6.1 constants, and the emulator compares the
  file's declared facts with the running profile's BTF facts (``profile.structs``) before any
  of its models runs: if one differs or is unknown, every model of that file refuses — the
  call stops init as :class:`~kmodlab.emu.errors.Unmodelled`, naming the struct, the member
  and both offsets.
* **per profile** (``PER_PROFILE``): the file reads each offset from the running profile
  (``LAYOUT.of(emu)`` in the file); a fact the running kernel lacks stops the model that needs
  it, as Unmodelled, when it needs it.

``USES`` names the files whose helpers a file calls directly (not through the emulator), so
that a checked file is refused when a helper it relies on would be.

An emulator without a profile (unit tests that build one on their own exports) stands for the
models' own kernel: the declared 6.1 values.
"""
from __future__ import annotations

LAYOUTS: dict[str, dict[str, dict[str, int | list[int]]]] = {
    "arch": {
        # "topo" is 6.12's (no such member in 6.1: None)
        "cpuinfo_x86": {"x86": 0, "x86_vendor": 1, "x86_model": 2, "x86_stepping": 3,
                        "x86_capability": 40, "topo": None, "sizeof": 288},
        "x86_cpu_id": {"vendor": 0, "family": 2, "model": 4, "steppings": 6, "feature": 8,
                       "flags": 10, "driver_data": 16, "sizeof": 24},
        "sysinfo": {"totalram": 32, "freeram": 40, "sharedram": 48, "bufferram": 56,
                    "totalhigh": 88, "freehigh": 96, "mem_unit": 104, "sizeof": 112},
        "efi": {"runtime_supported_mask": 12, "flags": 256},
    },
    "crypto": {
        "shash_alg": {"export": 40, "import": 48, "setkey": 56, "init_tfm": 64, "exit_tfm": 72,
                      "descsize": 80, "digestsize": 88, "statesize": 92, "base": 96,
                      "sizeof": 480},
        "crypto_alg": {"cra_flags": 32, "cra_blocksize": 36, "cra_ctxsize": 40,
                       "cra_alignmask": 44, "cra_priority": 48, "cra_refcnt": 52,
                       "cra_name": 56, "cra_driver_name": 184, "cra_module": 376,
                       "sizeof": 384},
        "crypto_template": {"module": 24, "name": 40, "sizeof": 168},
        "skcipher_alg": {"ivsize": 48, "chunksize": 52, "walksize": 56, "base": 64,
                         "sizeof": 448},
        "aead_alg": {"ivsize": 48, "maxauthsize": 52, "chunksize": 56, "base": 64,
                     "sizeof": 448},
        "ahash_alg": {"halg.digestsize": 80, "halg.statesize": 84, "halg.base": 88,
                      "sizeof": 472},
        "rng_alg": {"seedsize": 24, "base": 32, "sizeof": 416},
        "kpp_alg": {"base": 56, "sizeof": 440},
        "akcipher_alg": {"base": 80, "sizeof": 464},
        "scomp_alg": {"base": 32, "sizeof": 416},
        "crypto_tfm": {"refcnt": 0, "crt_flags": 4, "__crt_alg": 24, "sizeof": 32},
        "crypto_shash": {"descsize": 0, "base": 8},
        "crypto_queue": {"list": 0, "backlog": 16, "qlen": 24, "max_qlen": 28, "sizeof": 32},
    },
    "resource": {
        "resource": {"start": 0, "end": 8, "name": 16, "flags": 24, "desc": 32, "parent": 40,
                     "sibling": 48, "child": 56, "sizeof": 64},
        "region_devres": {"parent": 0, "start": 8, "n": 16, "sizeof": 24},
    },
    "rbtree": {
        "rb_node": {"__rb_parent_color": 0, "rb_right": 8, "rb_left": 16, "sizeof": 24},
        "rb_root": {"rb_node": 0, "sizeof": 8},
    },
    "dmi": {
        "dmi_system_id": {"callback": 0, "ident": 8, "matches": 16, "driver_data": 336,
                          "sizeof": 344},
        "dmi_strmatch": {"slot": [0, 7], "exact_match": [7, 1], "substr": 1, "sizeof": 80},
    },
    "auxiliary": {
        "auxiliary_driver": {"probe": 0, "name": 40, "driver": 48, "id_table": 192},
    },
    "cpufreq": {
        "cpufreq_governor": {"name": 0},
    },
    "driver": {
        "list_head": {"next": 0, "prev": 8},
        "device_driver": {"name": 0, "bus": 8, "owner": 16, "mod_name": 24,
                          "suppress_bind_attrs": 32, "probe_type": 36, "of_match_table": 40, "acpi_match_table": 48, "groups": 104,
                          "dev_groups": 112, "p": 136},
        "pci_driver": {"name": 16, "id_table": 24, "groups": 104, "dev_groups": 112, "driver": 120,
                       "dynids": 264},
        "pci_dynids": {"lock": 0, "list": 8},
        "platform_driver": {"probe": 0, "remove": 8, "remove_new": 16, "driver": 48,
                            "id_table": 192, "prevent_deferred_probe": 200},
        "platform_device": {"name": 0, "id": 8, "id_auto": 12, "dev": 16,
                            "platform_dma_mask": 768, "dma_parms": 776, "num_resources": 792,
                            "resource": 800, "driver_override": 816, "mfd_cell": 824,
                            "sizeof": 832},
        "platform_object": {"name": 832},
        "platform_device_info": {"parent": 0, "fwnode": 8, "of_node_reused": 16, "name": 24,
                                 "id": 32, "res": 40, "num_res": 48, "data": 56,
                                 "size_data": 64, "dma_mask": 72, "properties": 80},
        "platform_device_id": {"name": 0, "sizeof": 32},
        "pci_device_id": {"vendor": 0, "device": 4, "subvendor": 8, "subdevice": 12,
                          "class": 16, "class_mask": 20, "override_only": 32, "sizeof": 40},
        "acpi_device_id": {"id": 0, "cls": 24, "sizeof": 32},
        "acpi_driver": {"name": 0, "ids": 160, "drv": 200, "owner": 344},
        "pnp_driver": {"name": 0, "id_table": 8, "driver": 64},
        "pnp_device_id": {"id": 0, "sizeof": 16},
        "device": {"driver": 104, "platform_data": 112, "dma_mask": 576,
                   "coherent_dma_mask": 584, "dma_parms": 608, "of_node": 640, "fwnode": 648,
                   "driver_data": 120, "release": 704},
        "class": {"name": 0, "owner": 8, "class_release": 56, "p": 112, "sizeof": 120},
        "bus_type": {"name": 0, "p": 168},
        "i2c_driver": {"driver": 56, "clients": 224},
        "spi_driver": {"id_table": 0, "driver": 32},
        "serio_driver": {"manual_bind": 16, "driver": 80},
        "of_device_id": {"compatible": 64, "sizeof": 200},
        "spi_device_id": {"name": 0, "sizeof": 40},
        "miscdevice": {"minor": 0, "name": 8, "list": 24, "this_device": 48},
        "class_interface": {"node": 0, "class": 16, "add_dev": 24},
        "cdev": {"kobj.entry": 8, "kobj.kref": 56, "kobj.state_initialized": [480, 1],
                 "ops": 72, "list": 80, "dev": 96, "count": 100, "sizeof": 104},
        "attribute": {"name": 0},
        "notifier_block": {"notifier_call": 0},
    },
    "fs": {
        "file_system_type": {"name": 0, "owner": 48, "next": 56},
        "nls_table": {"charset": 0, "alias": 8, "owner": 48, "next": 56},
        "dentry": {"sizeof": 192},
    },
    "inet": {
        "inet_frags": {"qsize": 0, "frags_cachep": 32, "frags_cache_name": 40, "refcnt": 88,
                       "completion": 96, "rhash_params": 48},
        "completion": {"done": 0, "wait": 8},
        "swait_queue_head": {"lock": 0, "task_list": 8},
        "fqdir": {"high_thresh": 0, "f": 24, "net": 32, "dead": 40, "rhashtable": 64,
                  "destroy_work": 264, "sizeof": 320},
        "work_struct": {"data": 0, "entry": 8, "func": 24},
    },
    "input": {
        "list_head": {"next": 0, "prev": 8},
        "input_handler": {"name": 72, "h_list": 88},
        "acpi_bus_type": {"name": 16, "match": 24, "find_companion": 32},
    },
    "kobject": {
        "list_head": {"next": 0, "prev": 8},
        "kobject": {"name": 0, "entry": 8, "parent": 24, "kset": 32, "ktype": 40, "sd": 48,
                    "kref": 56, "state_initialized": [480, 1], "state_in_sysfs": [481, 1],
                    "sizeof": 64},
        "kset": {"list": 0, "list_lock": 16, "kobj": 24, "uevent_ops": 88, "sizeof": 96},
        "kobj_type": {"release": 0, "default_groups": 16},
        "attribute_group": {"name": 0, "is_visible": 8, "is_bin_visible": 16, "attrs": 24,
                            "bin_attrs": 32},
        "attribute": {"name": 0, "mode": 8},
        "bin_attribute": {"attr": 0},
    },
    "leds": {
        "list_head": {"next": 0, "prev": 8},
        "led_trigger": {"name": 0, "trigger_type": 32, "leddev_list_lock": 40,
                        "led_cdevs": 48, "sizeof": 88},
    },
    "locking": {
        "list_head": {"next": 0, "prev": 8},
        "mutex": {"owner": 0, "wait_lock": 8, "osq": 12, "wait_list": 16},
        "rw_semaphore": {"count": 0, "owner": 8, "osq": 16, "wait_lock": 20, "wait_list": 24,
                         "sizeof": 40},
        "qspinlock": {"locked": 0, "sizeof": 4},
        "qrwlock": {"cnts": 0, "wait_lock": 4, "sizeof": 8},
        "wait_queue_head": {"lock": 0, "head": 8},
        "swait_queue_head": {"lock": 0, "task_list": 8},
    },
    "mempool": {
        "list_head": {"next": 0, "prev": 8},
        "mempool_s": {"lock": 0, "min_nr": 4, "curr_nr": 8, "elements": 16, "pool_data": 24,
                      "alloc": 32, "free": 40, "wait": 48, "wait.head": 56, "sizeof": 72},
    },
    "net": {
        "rtnl_link_ops": {"kind": 16, "alloc": 32, "setup": 40, "maxtype": 52, "dellink": 88,
                          "slave_maxtype": 144},
        "rw_semaphore": {"count": 0, "owner": 8, "osq": 16, "wait_lock": 20, "wait_list": 24,
                         "sizeof": 40},
        "pernet_operations": {"list": 0, "init": 16, "pre_exit": 24, "exit": 32,
                              "exit_batch": 40, "exit_batch_rtnl": 48, "exit_rtnl": None,
                              "id": 56, "size": 64},
        "net": {"exit_list": 48, "user_ns": 88, "gen": 3144, "sizeof": 4480},
        "net_generic": {"ptr": 0, "sizeof": 24},
        "netdev_notifier_info": {"dev": 0, "extack": 8, "sizeof": 16},
        "proto": {"inuse_idx": 224, "slab": 344, "obj_size": 352, "slab_flags": 356,
                  "useroffset": 360, "usersize": 364, "rsk_prot": 376, "twsk_prot": 384,
                  "owner": 400, "name": 408, "node": 440, "sizeof": 464},
        "net_proto_family": {"family": 0, "create": 8, "owner": 16},
        "packet_type": {"type": 0, "dev": 8, "func": 16, "sizeof": 72},
    },
    "netlink": {
        "socket": {"type": 4, "sk": 24, "sizeof": 128},
        "sock_common": {"skc_family": 16, "skc_net": 48},
        "sock": {"sk_type": 514, "sk_protocol": 516, "sk_socket": 624},
        "netlink_sock": {"flags": 776, "netlink_rcv": 1032, "module": 1056, "sizeof": 1088},
        "netlink_kernel_cfg": {"groups": 0, "flags": 4, "input": 8, "bind": 24, "unbind": 32,
                               "sizeof": 48},
    },
    "netsched": {
        "Qdisc_ops": {"next": 0, "cl_ops": 8, "id": 16, "enqueue": 40, "dequeue": 48,
                      "peek": 56},
        "Qdisc_class_ops": {"leaf": 24, "find": 40, "walk": 64, "tcf_block": 72,
                            "bind_tcf": 80, "unbind_tcf": 88},
        "tcf_proto_ops": {"kind": 16},
        "tc_action_ops": {"kind": 16, "id": 32, "act": 56, "dump": 64, "init": 88},
        "tcf_ematch_ops": {"kind": 0, "match": 16},
    },
    "notifier": {
        "notifier_block": {"notifier_call": 0, "next": 8, "priority": 16},
    },
    "proc": {
        "net": {"proc_net": 168, "proc_net_stat": 176},
        "proc_dir_entry": {"refcnt": 4, "proc_ops": 48, "seq_ops": 64, "data": 80,
                           "state_size": 88, "nlink": 96, "uid": 100, "gid": 104, "size": 112,
                           "parent": 120, "name": 160,
                           "mode": 168, "namelen": 171, "inline_name": 172, "sizeof": 176},
        "ctl_table": {"procname": 0, "mode": 20, "child": 24, "proc_handler": 32,
                      "sizeof": 64},
        "ctl_table_header": {"ctl_table": 0, "used": 8, "count": 12, "nreg": 16,
                             "ctl_table_arg": 32, "ctl_table_size": None, "sizeof": 80},
    },
    "sched": {
        "fixed_percpu_data": {"stack_canary": 40, "sizeof": 48},
    },
    "shrinker": {
        "shrinker": {"count_objects": 0, "scan_objects": 8, "flags": 28, "nr_deferred": 56},
    },
    "slab": {
        "kmem_cache": {"size": 24, "object_size": 28, "refcount": 64, "ctor": 72, "align": 84,
                       "name": 96},
    },
    "textsearch": {
        "ts_ops": {"name": 0, "init": 8, "find": 16, "get_pattern": 32,
                   "get_pattern_len": 40},
        "quota_format_type": {"qf_fmt_id": 0, "qf_next": 24},
    },
    "timer": {
        "timer_list": {"entry.pprev": 8, "expires": 16, "function": 24, "flags": 32},
    },
    "workqueue": {
        "work_struct": {"data": 0, "entry": 8, "func": 24, "sizeof": 32},
        "delayed_work": {"work": 0, "timer": 32, "wq": 72, "cpu": 80, "sizeof": 88},
    },
    "transport": {
        "list_head": {"next": 0, "prev": 8},
        "transport_class": {"class": 0, "setup": 120, "remove": 136, "sizeof": 144},
        "anon_transport_class": {"tclass": 0, "container": 144, "sizeof": 240},
        "attribute_container": {"node": 0, "containers": 16, "class": 56, "flags": 88},
        "klist": {"k_lock": 0, "k_list": 8},
    },
    "tty": {
        "tty_driver": {"kref": 0, "cdevs": 8, "owner": 16, "driver_name": 24, "name": 32,
                       "name_base": 40, "major": 44, "minor_start": 48, "num": 52,
                       "flags": 104, "proc_entry": 112, "ttys": 128, "ports": 136,
                       "termios": 144, "ops": 160, "tty_drivers": 168, "sizeof": 184},
        "tty_operations": {"proc_show": 264},
        "tty_ldisc_ops": {"num": 8},
        "ktermios": {"sizeof": 44},
        "cdev": {"owner": 64},
        "device": {"parent": 64, "devt": 660, "sizeof": 752},
    },
    "backing_dev": {
        # "last_bdp_sleep" is 6.12's (Linux 6.8+: None in 6.1)
        "backing_dev_info": {"bdi_list": 32, "ra_pages": 48, "io_pages": 56, "refcnt": 64,
                             "capabilities": 68, "min_ratio": 72, "max_ratio": 76,
                             "max_prop_frac": 80, "last_bdp_sleep": None, "wb": 96,
                             "wb_list": 904, "wb_waitq": 1008, "dev": 1032, "dev_name": 1040,
                             "owner": 1104, "sizeof": 1160},
        "bdi_writeback": {"state": 8},
        "wait_queue_head": {"lock": 0, "head": 8},
        "device": {"sizeof": 752},
    },
    "jump_label": {
        "static_key": {"enabled": 0, "type": 8, "sizeof": 16},
        "jump_entry": {"code": 0, "target": 4, "key": 8, "sizeof": 16},
    },
    "device": {
        "device": {"kobj.name": 0, "kobj.entry": 8, "kobj.parent": 24, "kobj.kref": 56,
                   "kobj.state_initialized": [480, 1], "kobj.state_in_sysfs": [481, 1],
                   "kobj.state_add_uevent_sent": [482, 1],
                   "kobj.state_remove_uevent_sent": [483, 1], "kobj.uevent_suppress": [484, 1],
                   "parent": 64, "p": 72, "init_name": 80, "type": 88, "bus": 96,
                   "driver": 104, "driver_data": 120, "mutex": 128, "links.suppliers": 160,
                   "links.consumers": 176, "links.defer_sync": 192, "links.status": 208,
                   "dma_pools": 616, "numa_node": 656, "devt": 660, "id": 664,
                   "devres_lock": 668, "devres_head": 672, "class": 688, "groups": 696,
                   "release": 704, "sizeof": 752},
        "device_private": {"sizeof": 216},
        "device_type": {"name": 0, "groups": 8, "uevent": 16, "devnode": 24, "release": 32},
        "class": {"name": 0, "dev_groups": 24, "dev_uevent": 40, "devnode": 48,
                  "dev_release": 64, "ns_type": 80},
        "bus_type": {"name": 0, "dev_name": 8, "dev_root": 16, "dev_groups": 32, "match": 48,
                     "uevent": 56},
        "class_interface": {"add_dev": 24, "remove_dev": 32},
        "mutex": {"wait_list": 16},
        "notifier_block": {"notifier_call": 0},
        "kobj_uevent_env": {"envp": 24, "envp_idx": 536, "buf": 540, "buflen": 2588,
                            "sizeof": 2592},
        "device_attribute": {"attr.name": 0, "attr.mode": 8, "show": 16, "store": 24},
        "kobject": {"name": 0, "parent": 24, "kset": 32, "state_add_uevent_sent": [482, 1],
                    "state_remove_uevent_sent": [483, 1], "uevent_suppress": [484, 1]},
        "kset": {"kobj": 24, "uevent_ops": 88},
        "kset_uevent_ops": {"filter": 0, "name": 8, "uevent": 16},
    },
    "genetlink": {
        # 6.12 has split ops and per-socket private data: None in 6.1
        "genl_family": {"id": 0, "name": 8, "mcgrp_offset": 32, "n_ops": 37,
                        "n_small_ops": 38, "n_split_ops": None, "n_mcgrps": 39,
                        "resv_start_op": 40, "ops": 72, "small_ops": 80, "split_ops": None,
                        "mcgrps": 88, "sock_priv_size": None, "sock_privs": None,
                        "sizeof": 104},
        "genl_ops": {"doit": 0, "dumpit": 16, "cmd": 44, "validate": 47, "sizeof": 48},
        "genl_small_ops": {"doit": 0, "dumpit": 8, "cmd": 16, "validate": 19, "sizeof": 24},
        "genl_split_ops": {"cmd": None, "internal_flags": None, "flags": None,
                           "validate": None, "sizeof": None},
        "genl_multicast_group": {"name": 0, "sizeof": 17},
        "xarray": {"sizeof": 16},
    },
    "sockdiag": {
        "sock_diag_handler": {"family": 8},
    },
    "connector": {
        "cb_id": {"idx": 0, "val": 4, "sizeof": 8},
    },
    "inet_proto": {
        "nf_sockopt_ops": {"pf": 16, "set_optmin": 20, "set_optmax": 24, "get_optmin": 40,
                           "get_optmax": 44, "sizeof": 64},
    },
    "xfrm": {
        "xfrm_input_afinfo": {"family": 0, "is_ipip": 1, "sizeof": 16},
        "xfrm_type": {"proto": 8},
        "xfrm_type_offload": {"proto": 8},
        "xfrm4_protocol": {"next": 32, "priority": 40},
        "xfrm6_protocol": {"next": 32, "priority": 40},
    },
    "gro": {
        "packet_offload": {"type": 0, "priority": 2, "sizeof": 48},
    },
    "tcp_cong": {
        "tcp_congestion_ops": {"ssthresh": 0, "cong_avoid": 8, "cong_control": 56,
                               "undo_cwnd": 64, "name": 88, "key": 128, "sizeof": 192},
    },
    "idr": {
        "xarray": {"xa_lock": 0, "xa_flags": 4, "xa_head": 8, "sizeof": 16},
        "idr": {"idr_rt": 0, "idr_base": 16, "idr_next": 20, "sizeof": 24},
        "ida": {"xa": 0, "sizeof": 16},
        "xa_node": {"sizeof": 576},
    },
    "cpuhp": {
        "hlist_node": {"next": 0, "pprev": 8},
    },
    "cred": {
        "cred": {"usage": 0, "cap_permitted": 52, "cap_effective": 60, "cap_bset": 68,
                 "jit_keyring": 84, "session_keyring": 88, "process_keyring": 96,
                 "thread_keyring": 104, "request_key_auth": 112, "user_ns": 136,
                 "sizeof": 176},
    },
    "tcp_ulp": {
        "tcp_ulp_ops": {"name": 64},
    },
    "page": {
        "page": {"flags": 0, "mapping": 24, "private": 40, "_mapcount": 48, "_refcount": 52,
                 "sizeof": 64},
    },
    "nfs_ssc": {
        "nfs_ssc_client_ops_tbl": {"ssc_nfs4_ops": 0, "ssc_nfs_ops": 8},
    },
    "devres": {
        "list_head": {"next": 0, "prev": 8},
        "devres_node": {"entry": 0, "release": 16, "name": 24, "size": 32, "sizeof": 40},
        "devres": {"node": 0, "data": 40},
        "devres_group": {"node": 0, "id": 80, "color": 88, "sizeof": 96},
        "action_devres": {"data": 0, "action": 8, "sizeof": 16},
    },
    "zpool": {
        "zpool_driver": {"type": 0, "owner": 8, "refcount": 16, "list": 24},
    },
    "misc": {
        "percpu_counter": {"count": 8, "list": 16, "counters": 32, "sizeof": 40},
        # srcu_sup and struct srcu_usage are 6.12's (None: not in 6.1)
        "srcu_struct": {"srcu_idx": 120, "sda": 192, "srcu_sup": None, "sizeof": 392},
        "srcu_data": {"srcu_lock_count": 0, "srcu_unlock_count": 16, "sizeof": 384},
        "srcu_usage": {"srcu_ssp": None, "sizeof": None},
    },
    "serdev": {
        "serdev_device_driver": {"driver": 0},
        "device_driver": {"name": 0, "bus": 8, "owner": 16, "probe_type": 36, "probe": 56,
                          "remove": 72, "shutdown": 80},
    },
    "parser": {
        "match_token": {"token": 0, "pattern": 8, "sizeof": 16},
        "substring_t": {"from": 0, "to": 8, "sizeof": 16},
    },
    "libfs": {
        "vfsmount": {"mnt_root": 0, "mnt_sb": 8, "mnt_flags": 16},
        "mount": {"mnt": 32, "sizeof": 320},
        "super_block": {"s_blocksize_bits": 20, "s_maxbytes": 32, "s_type": 40, "s_op": 48,
                        "s_flags": 80, "s_root": 104, "s_count": 152, "s_active": 156,
                        "s_instances": 264, "s_fs_info": 920, "s_time_gran": 928,
                        "s_time_min": 936, "s_time_max": 944, "s_id": 968, "s_d_op": 1064,
                        "sizeof": 1472},
        "fs_context": {"ops": 0, "fs_type": 40, "root": 64, "source": 112, "s_fs_info": 128,
                       "sb_flags": 136, "sb_flags_mask": 140, "sizeof": 152},
        "fs_context_operations": {"free": 0, "parse_param": 16, "get_tree": 32},
        "file_system_type": {"name": 0, "init_fs_context": 16, "owner": 48, "fs_supers": 64},
        "super_operations": {"alloc_inode": 0},
        "inode_operations": {"lookup": 0, "get_link": 8},
        "inode": {"i_mode": 0, "i_opflags": 2, "i_flags": 12, "i_op": 32, "i_sb": 40,
                  "i_mapping": 48, "__i_nlink": 72, "i_blkbits": 142, "i_dentry": 312,
                  "i_count": 344, "i_data": 376, "sizeof": 632,
                  # 6.12's split timestamps (Linux 6.7+: None in 6.1)
                  "i_atime_sec": None, "i_mtime_sec": None, "i_ctime_sec": None,
                  "i_atime_nsec": None, "i_mtime_nsec": None, "i_ctime_nsec": None},
        "address_space": {"host": 0},
        "dentry": {"d_flags": 0, "d_parent": 24, "d_name.hash_len": 32, "d_name.name": 40,
                   "d_inode": 48, "d_iname": 56, "d_lockref.count": 92, "d_sb": 104,
                   "d_op": 96, "d_u.d_alias": 176, "sizeof": 192},
        "dentry_operations": {"d_revalidate": 0, "d_weak_revalidate": 8, "d_hash": 16,
                              "d_compare": 24, "d_delete": 32, "d_init": 40, "d_prune": 56,
                              "d_real": 96},
        "lockref": {"count": 4},
    },
    "rhashtable": {
        "list_head": {"next": 0, "prev": 8},
        "rhashtable": {"tbl": 0, "key_len": 8, "max_elems": 12, "p": 16, "rhlist": 56,
                       "run_work": 64, "mutex": 96, "lock": 128, "nelems": 132,
                       "sizeof": 136},
        "rhltable": {"ht": 0, "sizeof": 136},
        "rhashtable_params": {"nelem_hint": 0, "key_len": 2, "key_offset": 4,
                              "head_offset": 6, "max_size": 8, "min_size": 12,
                              "automatic_shrinking": 14, "hashfn": 16, "obj_hashfn": 24,
                              "obj_cmpfn": 32, "sizeof": 40},
        "bucket_table": {"size": 0, "nest": 4, "hash_rnd": 8, "walkers": 16, "rcu": 32,
                         "future_tbl": 48, "buckets": 64, "sizeof": 64},
        "callback_head": {"next": 0, "func": 8},
        "rhash_head": {"next": 0},
        "rhlist_head": {"rhead": 0, "next": 8},
        "mutex": {"owner": 0, "wait_list": 16},
        "work_struct": {"data": 0, "entry": 8, "func": 24},
    },
    "bpf": {
        "mutex": {"owner": 0, "wait_list": 16, "sizeof": 32},
    },
    "kthread": {
        "task_struct": {"__state": 24, "prio": 108, "static_prio": 112, "normal_prio": 116,
                        "rt_priority": 120, "policy": 972, "comm": 2976, "sizeof": 9792},
        "kthread_worker": {"flags": 0, "lock": 4, "work_list": 8, "delayed_work_list": 24,
                           "task": 40, "current_work": 48, "sizeof": 56},
        "list_head": {"next": 0, "prev": 8},
    },
    "keys": {
        "key": {"usage": 0, "serial": 4, "uid": 104, "gid": 108, "perm": 112, "state": 120,
                "flags": 128,
                "len_desc": 144, "description": 168, "sizeof": 232},
        "key_type": {"name": 0},
        "asymmetric_key_parser": {"name": 24},
    },
}

# files whose models read every offset from the running profile (see the module docstring)
PER_PROFILE: frozenset[str] = frozenset({"driver", "netsched", "net", "netlink", "crypto", "arch",
                                         "proc", "rbtree", "dmi", "resource", "transport", "tty",
                                         "backing_dev", "jump_label", "device", "genetlink",
                                         "sockdiag", "connector", "inet_proto", "tcp_cong", "idr",
                                         "cpuhp", "zpool", "rhashtable", "bpf", "netfilter",
                                         "keys", "kthread", "auxiliary", "cpufreq", "xfrm", "gro",
                                         "devres", "nfs_ssc", "page", "tcp_ulp", "cred", "libfs",
                                         "misc", "serdev", "parser"})

# helpers a file calls directly from another models file that has layout facts
USES: dict[str, tuple[str, ...]] = {
    "serdev": ("driver",),
    "auxiliary": ("driver",),
    "crypto": ("slab",),
    "devres": ("device", "slab", "rhashtable"),
    "resource": ("devres",),
    "regmap": ("devres",),
    "genetlink": ("notifier",),
    "inet": ("slab", "rhashtable"),
    "kobject": ("slab",),
    "mempool": ("slab",),
    "net": ("slab",),
    "proc": ("slab",),
    "shrinker": ("slab",),
    "time": ("timer",),
}


def wanted() -> dict[str, list[str]]:
    """Every declared fact, as ``extract_layouts`` wants them: struct → member paths."""
    out: dict[str, list[str]] = {}
    for facts in LAYOUTS.values():
        for struct, members in facts.items():
            have = out.setdefault(struct, [])
            have += [m for m in members if m != "sizeof" and m not in have]
    return out


def _fmt(v) -> str:
    if v is None:
        return "nothing"
    if isinstance(v, (list, tuple)):
        return f"bits {v[0]}+{v[1]}"
    return str(v)


def disagreements(file: str, structs: dict | None) -> list[str]:
    """What the running kernel's BTF facts (``profile.structs``; None: no profile, the 6.1
    values stand) say differently from the facts ``file`` declares (and the files it uses)."""
    if structs is None:
        return []
    out = []
    for f in (file, *USES.get(file, ())):
        for struct, members in LAYOUTS.get(f, {}).items():
            have = structs.get(struct)
            for member, v61 in members.items():
                got = have.get(member) if isinstance(have, dict) else None
                if isinstance(got, list):
                    got = list(got)
                if got != v61:
                    what = "sizeof" if member == "sizeof" else member
                    say = ("does not record it" if not isinstance(have, dict) or member not in have
                           else f"says {_fmt(got)}")
                    out.append(f"struct {struct} {what} {_fmt(v61)}; this kernel's BTF {say}")
    return out


def refusal(file: str, structs: dict | None) -> str | None:
    """The reason the models of ``file`` refuse on this profile, or None."""
    if file in PER_PROFILE:
        return None
    bad = disagreements(file, structs)
    if not bad:
        return None
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    return f"models/{file}.py assumes Linux 6.1's {bad[0]}{more}"


class Layout:
    """A models file's declared facts: ``values`` gives the 6.1 constants (checked files),
    ``of(emu)`` this kernel's offsets (per-profile files)."""

    def __init__(self, file: str):
        self.file = file
        self.facts = LAYOUTS[file]

    def values(self, struct: str, *members: str) -> tuple:
        f = self.facts[struct]
        return tuple(f[m] for m in members)

    def of(self, emu) -> "Offsets":
        cache = emu.__dict__.setdefault("_layouts", {})
        o = cache.get(self.file)
        if o is None:
            o = cache[self.file] = Offsets(self, getattr(emu, "structs", None), emu)
        return o


class Offsets:
    """This kernel's value of each fact a per-profile file declared: ``o["class", "name"]``.
    A fact the kernel lacks (or the profile does not record) raises Unmodelled when used."""

    def __init__(self, layout: Layout, structs: dict | None, emu):
        self.layout, self.structs, self.emu = layout, structs, emu

    def __getitem__(self, key: tuple[str, str]):
        struct, member = key
        v61 = self.layout.facts[struct][member]        # KeyError: an undeclared fact (a bug)
        if self.structs is None:
            return v61
        have = self.structs.get(struct)
        got = have.get(member) if isinstance(have, dict) else None
        if got is None:
            from .errors import Unmodelled
            model = getattr(self.emu, "_model_name", "") or f"models/{self.layout.file}.py"
            say = "does not record it" if not isinstance(have, dict) or member not in have \
                else "has no such member"
            raise Unmodelled(f"{model} (the model needs struct {struct} "
                             f"{'sizeof' if member == 'sizeof' else member}, {_fmt(v61)} in "
                             f"Linux 6.1; this kernel's BTF {say})", what=self.emu.what)
        return got


def layout(file: str) -> Layout:
    return Layout(file)
