// SPDX-License-Identifier: GPL-2.0
// pstore/blk device driver for the VM test harness: the kind of driver that mmcpstore, vendor
// BSP drivers (e.g. Allwinner's) and mtdpstore are, i.e. one that registers with
// register_pstore_device() and brings its own panic_write, so that Panics are stored (the
// generic best_effort block backend has no panic_write and stores Oopses only).
//
// Its "device" is a range of physical memory the kernel was told to keep its hands off
// (memmap=SIZE$PHYS on the command line). QEMU backs the guest RAM with a host file, so the
// range survives the reboot that follows a panic and the host can read it as a disk image.
// Zone sizes and max_reason come from pstore_blk's own parameters (pstore_blk.kmsg_size=...),
// and register_pstore_device() names the backend "pstore_blk", as for every such driver.
//
//   insmod panic_blk.ko phys=0x10000000 size=0x100000
#include <linux/init.h>
#include <linux/io.h>
#include <linux/module.h>
#include <linux/pstore.h>
#include <linux/pstore_blk.h>
#include <linux/string.h>

static unsigned long phys;
module_param(phys, ulong, 0400);
MODULE_PARM_DESC(phys, "physical start of the reserved range (memmap=SIZE$PHYS)");

static unsigned long size;
module_param(size, ulong, 0400);
MODULE_PARM_DESC(size, "size of the range in bytes (a multiple of 4096)");

static void *base;
static struct pstore_device_info dev;

static ssize_t span(size_t len, loff_t off)
{
	if (off < 0 || off > size)
		return -EINVAL;
	return min_t(size_t, len, size - off);
}

static ssize_t panic_blk_read(char *buf, size_t len, loff_t off)
{
	ssize_t n = span(len, off);

	if (n > 0)
		memcpy(buf, base + off, n);
	return n;
}

// Used for normal writes and, in panic context, as panic_write: a memcpy neither sleeps nor
// takes locks.
static ssize_t panic_blk_write(const char *buf, size_t len, loff_t off)
{
	ssize_t n = span(len, off);

	if (n > 0)
		memcpy(base + off, buf, n);
	return n;
}

static int __init panic_blk_init(void)
{
	int ret;

	if (!phys || !size || size % 4096)
		return -EINVAL;
	base = memremap(phys, size, MEMREMAP_WB);
	if (!base)
		return -ENOMEM;
	dev.flags = PSTORE_FLAGS_DMESG;
	dev.zone.total_size = size;
	dev.zone.read = panic_blk_read;
	dev.zone.write = panic_blk_write;
	dev.zone.panic_write = panic_blk_write;
	ret = register_pstore_device(&dev);
	if (ret) {
		memunmap(base);
		return ret;
	}
	pr_info("panic_blk: pstore device on %#lx+%#lx\n", phys, size);
	return 0;
}
module_init(panic_blk_init);

static void __exit panic_blk_exit(void)
{
	unregister_pstore_device(&dev);
	memunmap(base);
}
module_exit(panic_blk_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("crashcart VM test: pstore/blk device with panic_write over reserved RAM");
