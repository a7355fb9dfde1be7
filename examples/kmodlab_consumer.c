// SPDX-License-Identifier: GPL-2.0
/*
 * kmodlab_consumer.c - a module that uses symbols exported by another module.
 *
 * Shows a module dependency: this module calls kmodlab_provider_add() and
 * reads kmodlab_provider_calls, both exported by kmodlab_provider.ko.
 *   - modpost resolves them from the provider's Module.symvers (both are built
 *     in the same directory, in the same modpost run), so the .modinfo
 *     "depends=" tag names kmodlab_provider and __versions holds the CRCs;
 *   - loading the consumer before the provider fails with
 *     "Unknown symbol kmodlab_provider_add (err -2)"; modprobe loads the
 *     provider first because depmod reads "depends=".
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

/* Declarations of the provider's exports (normally from a shared header). */
extern int kmodlab_provider_add(int a, int b);
extern int kmodlab_provider_calls;

static int __init kmodlab_consumer_init(void)
{
	int sum = kmodlab_provider_add(2, 3);

	pr_info("kmodlab_provider_add(2, 3) = %d (provider has been called %d time(s))\n",
		sum, kmodlab_provider_calls);
	return 0;
}

static void __exit kmodlab_consumer_exit(void)
{
	pr_info("consumer unloaded\n");
}

module_init(kmodlab_consumer_init);
module_exit(kmodlab_consumer_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("kmodlab developers");
MODULE_DESCRIPTION("kmodlab example: depends on kmodlab_provider");
MODULE_VERSION("1.0");
