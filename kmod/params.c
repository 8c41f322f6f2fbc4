// SPDX-License-Identifier: GPL-2.0
/*
 * Module parameters: the helper's options (those the front door takes on its
 * command line), passed on the helper's command line each time it starts.
 * Read-only once loaded: set them with modprobe or /etc/modprobe.d.
 */
#define pr_fmt(fmt) "bpfilter: " fmt

#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/string.h>

#include "bpfilter.h"

/* A string parameter that takes one of a fixed list of words. */
struct choice_param {
	struct kparam_string str;
	const char *const *choices;
};

static int choice_set(const char *val, const struct kernel_param *kp)
{
	const struct kparam_string *str = kp->str;
	const struct choice_param *p = container_of(str, struct choice_param, str);
	const char *const *c;

	for (c = p->choices; *c; c++) {
		if (sysfs_streq(val, *c)) {
			strscpy(str->string, *c, str->maxlen);
			return 0;
		}
	}
	pr_err("%s=%s: not one of the accepted values (see modinfo bpfilter)\n",
	       kp->name, val);
	return -EINVAL;
}

static const struct kernel_param_ops choice_ops = {
	.set = choice_set,
	.get = param_get_string,
};

static char xdp_mode[8] = "auto";
static const char *const xdp_modes[] = { "auto", "native", "generic", "offload", NULL };
static struct choice_param xdp_mode_param = {
	.str = { .maxlen = sizeof(xdp_mode), .string = xdp_mode },
	.choices = xdp_modes,
};
module_param_cb(xdp_mode, &choice_ops, &xdp_mode_param.str, 0444);
MODULE_PARM_DESC(xdp_mode,
		 "how INPUT and FORWARD attach at XDP: auto (native where the driver has it, else generic), native, generic or offload (default auto)");

static char log_level[8] = "info";
static const char *const log_levels[] = { "error", "warning", "info", NULL };
static struct choice_param log_level_param = {
	.str = { .maxlen = sizeof(log_level), .string = log_level },
	.choices = log_levels,
};
module_param_cb(log_level, &choice_ops, &log_level_param.str, 0444);
MODULE_PARM_DESC(log_level,
		 "the helper's least severe kernel log line: error, warning or info (default info; -j LOG lines are always printed)");

static bool loopback = true;
module_param(loopback, bool, 0444);
MODULE_PARM_DESC(loopback, "filter lo as well (default Y)");

int bpfilter_params_argv(char **argv)
{
	int n = 0;

	argv[n++] = "--xdp-mode";
	argv[n++] = xdp_mode;
	argv[n++] = "--log-level";
	argv[n++] = log_level;
	if (!loopback)
		argv[n++] = "--no-loopback";
	return n;
}
