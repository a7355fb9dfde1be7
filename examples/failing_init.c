// SPDX-License-Identifier: GPL-2.0
/*
 * failing_init.c - a module whose init function fails.
 *
 * Shows what happens when init returns an error: the kernel has already
 * linked the module and run its init, so the log shows init's message; then
 * load_module unwinds (the module never becomes LIVE and its exit function is
 * NOT called) and init_module(2) returns the error, here -ENODEV:
 *   insmod: ERROR: could not insert module failing_init.ko: No such device
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/errno.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

static int __init failing_init_init(void)
{
	pr_info("init runs, finds no device, returns -ENODEV\n");
	return -ENODEV;
}

/* Present so the module could be unloaded if it ever loaded; never runs here. */
static void __exit failing_init_exit(void)
{
	pr_info("exit (never reached: init failed)\n");
}

module_init(failing_init_init);
module_exit(failing_init_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("kmodlab developers");
MODULE_DESCRIPTION("kmodlab example: init fails with -ENODEV");
MODULE_VERSION("1.0");
