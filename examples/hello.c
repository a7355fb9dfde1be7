// SPDX-License-Identifier: GPL-2.0
/*
 * hello.c - the kmodlab "hello world" example module.
 *
 * Shows the ordinary parts of a loadable module:
 *   - module parameters of several types (charp, int, bool, int array),
 *     each with a description that modinfo prints;
 *   - an init function that logs, does a little arithmetic and allocates
 *     memory that it keeps until unload;
 *   - an exit function that logs and frees that memory;
 *   - the usual .modinfo tags (license, author, description, version).
 *
 * Try:  insmod hello.ko who=kmodlab count=3 values=1,2,3 verbose=1
 *
 * The code stays deliberately simple (printk, kmalloc/kfree, snprintf) so
 * that kmodlab's sandbox kernel can run it under CPU emulation.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/slab.h>

/* Upper bound on how many lines `count` may make init print. */
#define HELLO_MAX_COUNT 10
/* Size of the buffer allocated in init and freed in exit. */
#define HELLO_BUF_SIZE 64

static char *who = "world";
module_param(who, charp, 0644);
MODULE_PARM_DESC(who, "Whom to greet (default: \"world\")");

static int count = 1;
module_param(count, int, 0644);
MODULE_PARM_DESC(count, "How many greeting lines to print (capped at 10, default: 1)");

static bool verbose;
module_param(verbose, bool, 0644);
MODULE_PARM_DESC(verbose, "Print extra detail while loading (default: off)");

static int values[4];
static int nr_values;	/* set by the kernel to how many values were given */
module_param_array(values, int, &nr_values, 0444);
MODULE_PARM_DESC(values, "Up to 4 integers to print and sum (e.g. values=1,2,3)");

/* Kept from init to exit so that exit has something to free. */
static char *hello_buf;

static int __init hello_init(void)
{
	int i, n, sum = 0;

	pr_info("hello, %s!\n", who);

	/* Clamp the loop so a silly parameter cannot flood the log. */
	n = count;
	if (n < 0)
		n = 0;
	if (n > HELLO_MAX_COUNT)
		n = HELLO_MAX_COUNT;
	for (i = 0; i < n; i++)
		pr_info("greeting %d of %d\n", i + 1, n);

	if (nr_values > 0) {
		for (i = 0; i < nr_values; i++) {
			pr_info("values[%d] = %d\n", i, values[i]);
			sum += values[i];
		}
		pr_info("%d value(s), sum %d\n", nr_values, sum);
	}

	hello_buf = kmalloc(HELLO_BUF_SIZE, GFP_KERNEL);
	if (!hello_buf)
		return -ENOMEM;
	snprintf(hello_buf, HELLO_BUF_SIZE, "hello %s x%d", who, n);

	if (verbose)
		pr_info("verbose: buffer holds \"%s\"\n", hello_buf);

	return 0;
}

static void __exit hello_exit(void)
{
	pr_info("goodbye, %s\n", who);
	kfree(hello_buf);
}

module_init(hello_init);
module_exit(hello_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("kmodlab developers");
MODULE_DESCRIPTION("kmodlab example: parameters, logging, kmalloc/kfree");
MODULE_VERSION("1.0");
