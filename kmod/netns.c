// SPDX-License-Identifier: GPL-2.0
/*
 * Per network namespace state: the last table the helper accepted in each
 * namespace (replayed when a restarted helper starts empty), and the events
 * the helper must hear about without holding anything in that namespace:
 * the namespace is gone, an interface appeared, addresses changed.
 */
#define pr_fmt(fmt) "bpfilter: " fmt

#include <linux/inetdevice.h>
#include <linux/list.h>
#include <linux/netdevice.h>
#include <linux/netfilter_ipv4/ip_tables.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>
#include <net/net_namespace.h>
#include <net/netfilter/nf_conntrack.h>

#include "bpfilter.h"

struct bpfilter_table {
	struct list_head node;
	char name[XT_TABLE_MAXNAMELEN];
	void *replace;		/* struct ipt_replace and its entries */
	u32 len;
};

/*
 * The list and its members change with both bpfilter_mutex and ns_lock
 * held, so either is enough to walk it. ->net is cleared under ns_lock when
 * the namespace dies; ->tables is bpfilter_mutex's.
 */
struct bpfilter_netns {
	struct list_head node;
	struct net *net;	/* no reference: NULL once the namespace is gone */
	u64 cookie;
	struct list_head tables;
	/*
	 * BPFILTER_CT_HELD: the namespace's table tests connection tracking state, so
	 * we hold the reference xt_conntrack's checkentry would (nf_ct_netns_get()):
	 * conntrack tracks there. BPFILTER_CT_NEW: taken for a replace in flight.
	 */
	unsigned long ct;
};

#define BPFILTER_CT_HELD	0
#define BPFILTER_CT_NEW		1

struct bpfilter_event {
	struct list_head node;
	u16 op;			/* BPFILTER_OP_NETNS_GONE, _LINK_ADDED, _ADDRS_CHANGED */
	u32 arg;
	struct net *net;	/* referenced, NULL for NETNS_GONE */
	struct bpfilter_netns *ns;	/* NETNS_GONE: the entry to free */
};

static LIST_HEAD(ns_list);
static DEFINE_SPINLOCK(ns_lock);
static LIST_HEAD(events);	/* ns_lock */
static bool stopping;		/* bpfilter_mutex: rmmod under way */

static struct bpfilter_netns *ns_find(struct net *net)
{
	struct bpfilter_netns *ns;

	list_for_each_entry(ns, &ns_list, node)
		if (ns->net == net)
			return ns;
	return NULL;
}

static void ns_free(struct bpfilter_netns *ns)
{
	struct bpfilter_table *t, *tmp;

	list_for_each_entry_safe(t, tmp, &ns->tables, node) {
		kvfree(t->replace);
		kfree(t);
	}
	kfree(ns);
}

int bpfilter_netns_track(struct net *net)
{
	struct bpfilter_netns *ns;

	lockdep_assert_held(&bpfilter_mutex);
	if (ns_find(net))
		return 0;
	ns = kzalloc(sizeof(*ns), GFP_KERNEL);
	if (!ns)
		return -ENOMEM;
	ns->net = net;
	ns->cookie = net->net_cookie;
	INIT_LIST_HEAD(&ns->tables);
	spin_lock(&ns_lock);
	list_add_tail(&ns->node, &ns_list);
	spin_unlock(&ns_lock);
	return 0;
}

void bpfilter_netns_save(struct net *net, void *replace, u32 len)
{
	const struct ipt_replace *repl = replace;
	struct bpfilter_netns *ns;
	struct bpfilter_table *t;

	lockdep_assert_held(&bpfilter_mutex);
	ns = ns_find(net);
	if (WARN_ON_ONCE(!ns)) {
		kvfree(replace);
		return;
	}
	list_for_each_entry(t, &ns->tables, node) {
		if (!strncmp(t->name, repl->name, sizeof(t->name))) {
			kvfree(t->replace);
			goto set;
		}
	}
	t = kzalloc(sizeof(*t), GFP_KERNEL);
	if (!t) {
		/* The helper has it; only a restart would lose it. */
		pr_warn("no memory to keep the table for a helper restart\n");
		kvfree(replace);
		return;
	}
	strscpy(t->name, repl->name, sizeof(t->name));
	list_add_tail(&t->node, &ns->tables);
set:
	t->replace = replace;
	t->len = len;
}

/*
 * Does the table (a struct ipt_replace and its entries, as the caller gave it)
 * have a state or conntrack match? Walked with every offset checked: the
 * helper has not seen it yet.
 */
bool bpfilter_table_tracks(const void *replace, u32 len)
{
	const struct ipt_replace *repl = replace;
	const u8 *base = (const u8 *)repl->entries;
	u32 size = repl->size, off = 0;

	if (len < sizeof(*repl) || size > len - sizeof(*repl))
		return false;
	while (off + sizeof(struct ipt_entry) <= size) {
		const struct ipt_entry *e = (const void *)(base + off);
		u32 m = sizeof(*e);

		if (e->next_offset < sizeof(*e) || e->next_offset > size - off ||
		    e->target_offset > e->next_offset)
			return false;
		while (m + sizeof(struct xt_entry_match) <= e->target_offset) {
			const struct xt_entry_match *em = (const void *)(base + off + m);
			const char *name = em->u.user.name;

			if (em->u.match_size < sizeof(*em))
				break;
			if (!strncmp(name, "state", XT_EXTENSION_MAXNAMELEN) ||
			    !strncmp(name, "conntrack", XT_EXTENSION_MAXNAMELEN))
				return true;
			m += em->u.match_size;
		}
		off += e->next_offset;
	}
	return false;
}

/*
 * Before a replace: a table that tracks connections needs conntrack on in
 * its namespace, as xt_conntrack's checkentry turns it on; its error fails
 * the replace.
 */
int bpfilter_netns_ct_prepare(struct net *net, bool tracks)
{
	struct bpfilter_netns *ns = ns_find(net);
	int ret;

	lockdep_assert_held(&bpfilter_mutex);
	if (!ns || !tracks || test_bit(BPFILTER_CT_HELD, &ns->ct))
		return 0;
	ret = nf_ct_netns_get(net, NFPROTO_IPV4);
	if (ret < 0) {
		pr_info_ratelimited("cannot load conntrack support for proto=%u\n",
				    NFPROTO_IPV4);
		return ret;
	}
	set_bit(BPFILTER_CT_NEW, &ns->ct);
	return 0;
}

/* After it: hold the reference as long as the table in force tracks. */
void bpfilter_netns_ct_commit(struct net *net, bool tracks, bool accepted)
{
	struct bpfilter_netns *ns = ns_find(net);
	bool taken;

	lockdep_assert_held(&bpfilter_mutex);
	if (!ns)
		return;
	taken = test_and_clear_bit(BPFILTER_CT_NEW, &ns->ct);
	if (!accepted) {
		if (taken)
			nf_ct_netns_put(net, NFPROTO_IPV4);
		return;
	}
	if (taken)
		set_bit(BPFILTER_CT_HELD, &ns->ct);
	else if (!tracks && test_and_clear_bit(BPFILTER_CT_HELD, &ns->ct))
		nf_ct_netns_put(net, NFPROTO_IPV4);
}

/* A counted reference on the entry's namespace, unless it is dying. */
static struct net *ns_get_net(struct bpfilter_netns *ns)
{
	struct net *net = NULL;

	spin_lock(&ns_lock);
	if (ns->net)
		net = maybe_get_net(ns->net);
	spin_unlock(&ns_lock);
	return net;
}

static int send_simple(struct net *net, u16 op, u32 arg)
{
	struct bpfilter_msg msg = {
		.req.op = op,
		.req.arg = arg,
		.net = net,
	};
	int ret;

	ret = bpfilter_umh_exchange(&msg, false);
	kvfree(msg.reply);
	return ret ?: msg.status;
}

/* The number of entries of the helper's current table, for num_counters. */
static int replay_num_entries(struct net *net, const char *name)
{
	struct ipt_getinfo info = {};
	struct bpfilter_msg msg = {
		.req.op = BPFILTER_OP_GETSOCKOPT,
		.req.optname = IPT_SO_GET_INFO,
		.req.optlen = sizeof(info),
		.req.data_len = sizeof(info),
		.data = &info,
		.net = net,
		.max_reply = sizeof(info),
	};
	int ret;

	strscpy(info.name, name, sizeof(info.name));
	ret = bpfilter_umh_exchange(&msg, false);
	if (!ret && !msg.status && msg.reply_len == sizeof(info))
		ret = ((struct ipt_getinfo *)msg.reply)->num_entries;
	else if (!ret)
		ret = msg.status ?: -EPROTO;
	kvfree(msg.reply);
	return ret;
}

static int replay_table(struct net *net, struct bpfilter_table *t)
{
	struct ipt_replace *repl = t->replace;
	struct bpfilter_msg msg = {
		.req.op = BPFILTER_OP_SETSOCKOPT,
		.req.optname = IPT_SO_SET_REPLACE,
		.req.optlen = t->len,
		.req.data_len = t->len,
		.data = t->replace,
		.net = net,
	};
	int n, ret;

	n = replay_num_entries(net, t->name);
	if (n <= 0)
		return n ?: -EINVAL;
	repl->num_counters = n;
	repl->counters = NULL;
	msg.max_reply = n * sizeof(struct xt_counters);
	ret = bpfilter_umh_exchange(&msg, false);
	kvfree(msg.reply);
	return ret ?: msg.status;
}

void bpfilter_netns_replay(void)
{
	struct bpfilter_netns *ns;
	struct bpfilter_table *t;

	lockdep_assert_held(&bpfilter_mutex);
	list_for_each_entry(ns, &ns_list, node) {
		struct net *net = ns_get_net(ns);

		if (!net)
			continue;
		list_for_each_entry(t, &ns->tables, node) {
			int ret = bpfilter_umh_running() ? replay_table(net, t) : -EIO;

			if (ret)
				pr_err("could not restore table %s of netns %llu: %d\n",
				       t->name, ns->cookie, ret);
			else
				pr_info("restored table %s of netns %llu\n",
					t->name, ns->cookie);
		}
		put_net(net);
	}
}

void bpfilter_netns_detach_all(void)
{
	struct bpfilter_netns *ns;

	lockdep_assert_held(&bpfilter_mutex);
	stopping = true;
	if (list_empty(&ns_list))
		return;
	/* A dead helper's programs are still attached: a new one takes them over. */
	if (!bpfilter_umh_running() && bpfilter_umh_start() == 0)
		bpfilter_netns_replay();
	list_for_each_entry(ns, &ns_list, node) {
		struct net *net = ns_get_net(ns);
		int ret;

		if (!net)
			continue;
		ret = bpfilter_umh_running() ?
		      send_simple(net, BPFILTER_OP_DETACH, 0) : -EIO;
		if (ret)
			pr_err("could not detach the programs of netns %llu: %d\n",
			       ns->cookie, ret);
		put_net(net);
	}
}

static void event_run(struct bpfilter_event *ev)
{
	struct bpfilter_netns *ns = ev->ns;

	if (ev->op == BPFILTER_OP_NETNS_GONE) {
		if (bpfilter_umh_running()) {
			/* No namespace to enter: the cookie says which. */
			struct bpfilter_msg msg = {
				.req.op = BPFILTER_OP_NETNS_GONE,
				.req.netns_cookie = ns->cookie,
			};

			bpfilter_umh_exchange(&msg, false);
			kvfree(msg.reply);
		}
		spin_lock(&ns_lock);
		list_del(&ns->node);
		spin_unlock(&ns_lock);
		ns_free(ns);
		return;
	}
	if (stopping)
		return;
	/* A restarted helper attaches to every interface while it replays. */
	if (!bpfilter_umh_running()) {
		struct bpfilter_msg msg = { .req.op = BPFILTER_OP_HEALTH };

		bpfilter_call(&msg, false);
		kvfree(msg.reply);
		return;
	}
	send_simple(ev->net, ev->op, ev->arg);
}

static void events_work_fn(struct work_struct *work)
{
	struct bpfilter_event *ev;

	for (;;) {
		spin_lock(&ns_lock);
		ev = list_first_entry_or_null(&events, struct bpfilter_event, node);
		if (ev)
			list_del(&ev->node);
		spin_unlock(&ns_lock);
		if (!ev)
			return;
		mutex_lock(&bpfilter_mutex);
		event_run(ev);
		mutex_unlock(&bpfilter_mutex);
		if (ev->net)
			put_net(ev->net);
		kfree(ev);
	}
}

static DECLARE_WORK(events_work, events_work_fn);

/*
 * Queues an event for a namespace the helper has served (it keeps a table
 * and the local addresses that tell INPUT from FORWARD there); the helper
 * hears it later, from the work item, without rtnl held.
 */
static void queue_link_event(struct net *net, u16 op, u32 arg)
{
	struct bpfilter_netns *ns;
	struct bpfilter_event *ev;

	ev = kzalloc(sizeof(*ev), GFP_KERNEL);
	if (!ev)
		return;
	ev->op = op;
	ev->arg = arg;
	spin_lock(&ns_lock);
	ns = ns_find(net);
	if ((ns && ns->net) || op == BPFILTER_OP_LINK_STRAY)
		ev->net = maybe_get_net(net);
	if (ev->net)
		list_add_tail(&ev->node, &events);
	spin_unlock(&ns_lock);
	if (!ev->net) {
		kfree(ev);
		return;
	}
	schedule_work(&events_work);
}

static int netdev_event(struct notifier_block *nb, unsigned long event, void *ptr)
{
	struct net_device *dev = netdev_notifier_info_to_dev(ptr);

	bool served;

	switch (event) {
	case NETDEV_REGISTER:
		spin_lock(&ns_lock);
		served = !!ns_find(dev_net(dev));
		spin_unlock(&ns_lock);
		/* Moved in from a namespace whose table it still carries. */
		if (!served && dev_xdp_prog_count(dev))
			queue_link_event(dev_net(dev), BPFILTER_OP_LINK_STRAY, dev->ifindex);
		fallthrough;
	case NETDEV_CHANGENAME:
	case NETDEV_CHANGEUPPER:	/* enslaved, released, or given an upper */
	case NETDEV_UNREGISTER:		/* gone, or leaving for another namespace */
		queue_link_event(dev_net(dev), BPFILTER_OP_LINK_ADDED, dev->ifindex);
		break;
	}
	return NOTIFY_DONE;
}

static int inetaddr_event(struct notifier_block *nb, unsigned long event, void *ptr)
{
	struct in_ifaddr *ifa = ptr;
	struct net_device *dev = ifa->ifa_dev->dev;

	if (event == NETDEV_UP || event == NETDEV_DOWN)
		queue_link_event(dev_net(dev), BPFILTER_OP_ADDRS_CHANGED, dev->ifindex);
	return NOTIFY_DONE;
}

static struct notifier_block netdev_nb = { .notifier_call = netdev_event };
static struct notifier_block inetaddr_nb = { .notifier_call = inetaddr_event };

/*
 * The namespace is going: forget it here, tell the helper later. Telling it
 * now would wait for the helper while cleanup_net() holds pernet_ops_rwsem.
 */
static void __net_exit bpfilter_net_exit(struct net *net)
{
	struct bpfilter_event *ev = kzalloc(sizeof(*ev), GFP_KERNEL | __GFP_NOFAIL);
	struct bpfilter_netns *ns;

	bool ct_held = false;

	ev->op = BPFILTER_OP_NETNS_GONE;
	spin_lock(&ns_lock);
	ns = ns_find(net);
	if (ns) {
		ns->net = NULL;
		ev->ns = ns;
		ct_held = test_and_clear_bit(BPFILTER_CT_HELD, &ns->ct);
		list_add_tail(&ev->node, &events);
	}
	spin_unlock(&ns_lock);
	if (!ns) {
		kfree(ev);
		return;
	}
	/* As ip_tables' pernet exit frees the table and its conntrack matches. */
	if (ct_held)
		nf_ct_netns_put(net, NFPROTO_IPV4);
	schedule_work(&events_work);
}

static struct pernet_operations bpfilter_net_ops = {
	.exit = bpfilter_net_exit,
};

int __init bpfilter_netns_init(void)
{
	int ret;

	ret = register_pernet_subsys(&bpfilter_net_ops);
	if (ret)
		return ret;
	ret = register_netdevice_notifier(&netdev_nb);
	if (ret)
		goto err_pernet;
	ret = register_inetaddr_notifier(&inetaddr_nb);
	if (ret)
		goto err_netdev;
	return 0;

err_netdev:
	unregister_netdevice_notifier(&netdev_nb);
err_pernet:
	unregister_pernet_subsys(&bpfilter_net_ops);
	return ret;
}

void bpfilter_netns_exit(void)
{
	struct bpfilter_netns *ns, *tmp;

	unregister_inetaddr_notifier(&inetaddr_nb);
	unregister_netdevice_notifier(&netdev_nb);
	unregister_pernet_subsys(&bpfilter_net_ops);
	flush_work(&events_work);
	/* The helper is stopped: what is left is memory. */
	list_for_each_entry_safe(ns, tmp, &ns_list, node) {
		list_del(&ns->node);
		ns_free(ns);
	}
}
