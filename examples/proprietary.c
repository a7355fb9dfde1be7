// SPDX-License-Identifier: GPL-2.0
/*
 * proprietary.c - a module that declares a non-GPL licence and then uses a
 * GPL-only kernel export.
 *
 * (The source file itself is GPL like the rest of kmodlab; the point of the
 * example is the MODULE_LICENSE tag the module declares.)
 *
 * Shows the licence checks made by load_module:
 *   - MODULE_LICENSE("Proprietary") is not GPL-compatible, so the kernel
 *     taints itself with P ("module license 'Proprietary' taints kernel.");
 *   - ktime_get() is exported with EXPORT_SYMBOL_GPL, which a non-GPL module
 *     cannot see, so a real 6.1 kernel refuses the module with
 *     "proprietary: Unknown symbol ktime_get (err -2)" and init_module(2)
 *     fails with ENOENT.
 *
 * modpost spots the same problem at build time and stops with
 * "GPL-incompatible module proprietary.ko uses GPL-only symbol 'ktime_get'"
 * (an error that KBUILD_MODPOST_WARN=1 does not soften in 6.1).  The
 * Makefile therefore builds this module in its own pass, against a symbol
 * list without the GPL-only exports, where ktime_get is merely unresolved
 * (a warning under KBUILD_MODPOST_WARN=1) and the .ko is still written.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/timekeeping.h>

static int __init proprietary_init(void)
{
	ktime_t now = ktime_get();	/* GPL-only export */

	pr_info("loaded at %lld ns of monotonic time\n", (long long)now);
	return 0;
}

static void __exit proprietary_exit(void)
{
	pr_info("unloaded\n");
}

module_init(proprietary_init);
module_exit(proprietary_exit);

MODULE_LICENSE("Proprietary");
MODULE_AUTHOR("kmodlab developers");
MODULE_DESCRIPTION("kmodlab example: non-GPL module using a GPL-only symbol");
MODULE_VERSION("1.0");
