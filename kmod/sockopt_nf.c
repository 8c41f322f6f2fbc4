// SPDX-License-Identifier: GPL-2.0
/*
 * Backend for kernels without CONFIG_BPFILTER (Debian's): take ip_tables'
 * place. The IPT_SO_* ranges of PF_INET come from nf_register_sockopt()
 * (one owner per range: this fails while ip_tables is loaded, and ip_tables
 * then cannot load while bpfilter holds them), and the filter table is
 * listed in each namespace's /proc/net/ip_tables_names, where
 * iptables-legacy-save looks for tables.
 */
#define pr_fmt(fmt) "bpfilter: " fmt

#include <linux/module.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4/ip_tables.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>

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

/* A name in x_tables' list only: no hooks, no entries; the helper has the table. */
static const struct xt_table bpfilter_xt_filter = {
	.name = "filter",
	.valid_hooks = (1 << NF_INET_LOCAL_IN) | (1 << NF_INET_FORWARD) |
		       (1 << NF_INET_LOCAL_OUT),
	.me = THIS_MODULE,
	.af = NFPROTO_IPV4,
};

static unsigned int names_id;

static int __net_init names_init(struct net *net)
{
	struct xt_table_info bootstrap = {};
	struct xt_table_info *info = xt_alloc_table_info(0);
	struct xt_table *t;
	int ret;

	if (!info)
		return -ENOMEM;
	/* The /proc/net/ip_tables_* files, which ip_tables makes the same way. */
	ret = xt_proto_init(net, NFPROTO_IPV4);
	if (ret)
		goto err_info;
	t = xt_register_table(net, &bpfilter_xt_filter, &bootstrap, info);
	if (IS_ERR(t)) {
		ret = PTR_ERR(t);
		goto err_proto;
	}
	*(struct xt_table **)net_generic(net, names_id) = t;
	return 0;

err_proto:
	xt_proto_fini(net, NFPROTO_IPV4);
err_info:
	xt_free_table_info(info);
	return ret;
}

static void __net_exit names_exit(struct net *net)
{
	struct xt_table *t = *(struct xt_table **)net_generic(net, names_id);

	xt_free_table_info(xt_unregister_table(t));
	xt_proto_fini(net, NFPROTO_IPV4);
}

static struct pernet_operations names_ops = {
	.init = names_init,
	.exit = names_exit,
	.id = &names_id,
	.size = sizeof(struct xt_table *),
};

static const char ip_tables_busy[] =
	"the iptables sockopts are taken: ip_tables is loaded. Unload it first (modprobe -r iptable_filter ip_tables, after iptables-legacy -F), or load bpfilter at boot before anything loads ip_tables (echo bpfilter > /etc/modules-load.d/bpfilter.conf)\n";

/*
 * ip_tables' order: the per-namespace state first, the sockopts last (a
 * request may come as soon as they are registered), and the reverse on the
 * way out. ip_tables is looked for first: its /proc/net/ip_tables_* files
 * would clash with ours (a WARN), before its sockopts would (EBUSY). By a
 * GPL-only symbol: Debian's __symbol_get() refuses the others.
 */
static int nf_attach(void)
{
	void *ipt = __symbol_get("ipt_alloc_initial_table");
	int ret;

	if (ipt) {
		__symbol_put("ipt_alloc_initial_table");
		pr_err("%s", ip_tables_busy);
		return -EBUSY;
	}
	ret = register_pernet_subsys(&names_ops);
	if (ret)
		return ret;
	ret = nf_register_sockopt(&bpfilter_nf_sockopts);
	if (ret == -EBUSY)
		pr_err("%s", ip_tables_busy);
	if (ret)
		unregister_pernet_subsys(&names_ops);
	return ret;
}

static void nf_detach(void)
{
	nf_unregister_sockopt(&bpfilter_nf_sockopts);
	unregister_pernet_subsys(&names_ops);
}

const struct bpfilter_backend bpfilter_backend_nf = {
	.name = "nf_sockopt",
	.attach = nf_attach,
	.detach = nf_detach,
};
