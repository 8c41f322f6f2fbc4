// SPDX-License-Identifier: GPL-2.0
/*
 * bpfilter.ko: takes the iptables sockopt ABI and hands every request to
 * the embedded usermode helper, which runs the table as eBPF.
 */
#define pr_fmt(fmt) "bpfilter: " fmt

#include <linux/kernel.h>
#include <linux/module.h>

#include "bpfilter.h"

DEFINE_MUTEX(bpfilter_mutex);

/*
 * Tried in order; the first that attaches serves. A kernel built with
 * CONFIG_BPFILTER (4.18 to 6.7) would list its bpfilter_ops backend first.
 */
static const struct bpfilter_backend *const backends[] = {
	&bpfilter_backend_nf,
};

static const struct bpfilter_backend *backend;

int bpfilter_helper_ready(void)
{
	int ret;

	lockdep_assert_held(&bpfilter_mutex);
	if (bpfilter_umh_running())
		return 0;
	ret = bpfilter_umh_start();
	if (ret)
		return ret;
	/* Requests wait here (bpfilter_mutex) until every table is back. */
	bpfilter_netns_replay();
	if (!bpfilter_umh_running())
		return -EIO;
	bpfilter_umh_publish();
	return 0;
}

static int __init bpfilter_init(void)
{
	int ret, i;

	ret = bpfilter_umh_init();
	if (ret)
		return ret;
	ret = bpfilter_netns_init();
	if (ret)
		goto err_umh;
	ret = bpfilter_proc_init();
	if (ret)
		goto err_netns;

	/*
	 * The helper first, the backend last: once attached, requests may be
	 * under way, and nothing after that may fail.
	 */
	mutex_lock(&bpfilter_mutex);
	ret = bpfilter_helper_ready();
	mutex_unlock(&bpfilter_mutex);
	if (ret)
		goto err_proc;

	for (i = 0; i < ARRAY_SIZE(backends); i++) {
		ret = backends[i]->attach();
		if (!ret) {
			backend = backends[i];
			break;
		}
	}
	if (!backend)
		goto err_stop;
	pr_info("serving iptables through %s\n", backend->name);
	return 0;

err_stop:
	mutex_lock(&bpfilter_mutex);
	bpfilter_umh_stop();
	mutex_unlock(&bpfilter_mutex);
err_proc:
	bpfilter_proc_exit();
err_netns:
	bpfilter_netns_exit();
err_umh:
	bpfilter_umh_exit();
	return ret;
}

static void __exit bpfilter_fini(void)
{
	backend->detach();
	/* No /proc file may ask the helper once it is gone. */
	bpfilter_proc_stop();
	mutex_lock(&bpfilter_mutex);
	/* Programs attached through netlink outlive the helper: detach them first. */
	bpfilter_netns_detach_all();
	bpfilter_umh_stop();
	mutex_unlock(&bpfilter_mutex);
	bpfilter_proc_exit();
	bpfilter_netns_exit();
	bpfilter_umh_exit();
	pr_info("unloaded\n");
}

module_init(bpfilter_init);
module_exit(bpfilter_fini);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("iptables sockopt ABI served by an eBPF usermode helper");
/* The helper attaches OUTPUT (and INPUT, FORWARD where XDP cannot) as tc clsact filters. */
MODULE_SOFTDEP("pre: sch_ingress cls_bpf");
