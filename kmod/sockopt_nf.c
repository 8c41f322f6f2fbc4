// SPDX-License-Identifier: GPL-2.0
/*
 * Backend for kernels without CONFIG_BPFILTER (Debian's): take the IPT_SO_*
 * ranges of PF_INET from netfilter with nf_register_sockopt(). Only one
 * owner per range: this fails while ip_tables is loaded, and ip_tables then
 * cannot load while bpfilter holds them.
 */
#define pr_fmt(fmt) "bpfilter: " fmt

#include <linux/module.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4/ip_tables.h>

#include "bpfilter.h"

static struct nf_sockopt_ops bpfilter_nf_sockopts = {
	.pf = PF_INET,
	.set_optmin = IPT_BASE_CTL,
	.set_optmax = IPT_SO_SET_MAX + 1,
	.set = bpfilter_setsockopt,
	.get_optmin = IPT_BASE_CTL,
	.get_optmax = IPT_SO_GET_MAX + 1,
	.get = bpfilter_getsockopt,
	.owner = THIS_MODULE,
};

static int nf_attach(void)
{
	int ret = nf_register_sockopt(&bpfilter_nf_sockopts);

	if (ret == -EBUSY)
		pr_err("the iptables sockopts are taken: ip_tables is loaded. Unload it first (modprobe -r iptable_filter ip_tables, after iptables-legacy -F), or load bpfilter at boot before anything loads ip_tables (echo bpfilter > /etc/modules-load.d/bpfilter.conf)\n");
	return ret;
}

static void nf_detach(void)
{
	nf_unregister_sockopt(&bpfilter_nf_sockopts);
}

const struct bpfilter_backend bpfilter_backend_nf = {
	.name = "nf_sockopt",
	.attach = nf_attach,
	.detach = nf_detach,
};
