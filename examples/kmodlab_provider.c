// SPDX-License-Identifier: GPL-2.0
/*
 * kmodlab_provider.c - a module that exports symbols to other modules.
 *
 * Shows both kinds of export:
 *   - kmodlab_provider_add() with EXPORT_SYMBOL_GPL: only modules under a
 *     GPL-compatible licence may link against it;
 *   - kmodlab_provider_calls (a data object) with EXPORT_SYMBOL: any module
 *     may use it.
 *
 * With CONFIG_MODVERSIONS the build records a CRC for each export in
 * Module.symvers; kmodlab_consumer.ko carries that CRC in its __versions
 * section, and the kernel checks it when the consumer is loaded.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

/* How many times kmodlab_provider_add() has been called. */
int kmodlab_provider_calls;
EXPORT_SYMBOL(kmodlab_provider_calls);

/**
 * kmodlab_provider_add - add two integers
 * @a: first operand
 * @b: second operand
 *
 * Return: a + b.  Also counts the call in kmodlab_provider_calls.
 */
int kmodlab_provider_add(int a, int b)
{
	kmodlab_provider_calls++;
	return a + b;
}
EXPORT_SYMBOL_GPL(kmodlab_provider_add);

static int __init kmodlab_provider_init(void)
{
	pr_info("provider loaded: exporting kmodlab_provider_add (GPL) and kmodlab_provider_calls\n");
	return 0;
}

static void __exit kmodlab_provider_exit(void)
{
	pr_info("provider unloaded after %d call(s)\n", kmodlab_provider_calls);
}

module_init(kmodlab_provider_init);
module_exit(kmodlab_provider_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("kmodlab developers");
MODULE_DESCRIPTION("kmodlab example: exports a GPL-only function and a plain data symbol");
MODULE_VERSION("1.0");
