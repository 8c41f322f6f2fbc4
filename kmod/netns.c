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
#include <linux/moduleparam.h>
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
 * the namespace dies; ->tables and ->ct are ->lock's. An entry is freed only
 * once its namespace is gone, so whoever holds a reference on the namespace
 * may use its entry without either lock.
 */
struct bpfilter_netns {
	struct list_head node;
	struct net *net;	/* no reference: NULL once the namespace is gone */
	u64 cookie;
	/*
	 * The namespace's requests, one at a time, across their exchange; the
	 * replay of its tables and the events about it take it too.
	 */
	struct mutex lock;
	struct list_head tables;
	/*
	 * BPFILTER_CT_HELD: the namespace's table tests connection tracking state, so
	 * we hold the reference xt_conntrack's checkentry would (nf_ct_netns_get()):
	 * conntrack tracks there. BPFILTER_CT_NEW: taken for a replace in flight.
	 */
	unsigned long ct;
	/*
	 * Events not yet told to the helper (ns_lock): coalesced, so that a
	 * namespace has at most one place in the queue however many renames
	 * and address changes happen there (the helper rescans the whole
	 * namespace for either). On `events` while any is pending.
	 */
	unsigned long pending;
	struct list_head ev_node;
	unsigned long next_pass;	/* ns_lock: jiffies before which no rescan */
	unsigned long credit_at;	/* ns_lock: when the last credit was earned */
	unsigned int credits;		/* ns_lock: rescans that may run at once */
	bool unpriv;		/* owned by a non-initial user namespace */
};

#define BPFILTER_EV_LINKS	0	/* links appeared, went, renamed, enslaved */
#define BPFILTER_EV_ADDRS	1	/* IPv4 addresses changed */
#define BPFILTER_EV_GONE	2	/* the namespace is gone: tell the helper, free */

/*
 * Rescans of one namespace are paced by a bucket of credits: up to
 * BPFILTER_EVENT_BURST of them run as soon as their event comes, and one
 * more credit is earned every BPFILTER_EVENT_GAP. So the few events of a
 * device being set up (moved in, an address added, brought up) are each
 * told at once, and the programs learn a new address within the helper's
 * rescan, while a storm of them (renames in a loop) costs the helper at most
 * BPFILTER_EVENT_BURST rescans and then two a second per namespace.
 */
#define BPFILTER_EVENT_GAP	(HZ / 2)
#define BPFILTER_EVENT_BURST	4
/* How soon events held up by a request about their namespace are tried again. */
#define BPFILTER_EVENT_RETRY	(HZ / 20)

#define BPFILTER_CT_HELD	0
#define BPFILTER_CT_NEW		1

/* A device that arrived carrying XDP in a namespace bpfilter does not serve. */
struct bpfilter_stray {
	struct list_head node;
	struct net *net;	/* referenced */
	int ifindex;
};

/* Strays queued at most (each one is a device moved by someone with CAP_NET_ADMIN). */
#define BPFILTER_MAX_STRAYS	256

/* Namespaces of non-initial user namespaces served at once (sockopt.c has the others). */
static unsigned int unpriv_max_netns = 64;
module_param(unpriv_max_netns, uint, 0644);
MODULE_PARM_DESC(unpriv_max_netns,
		 "Most network namespaces owned by non-initial user namespaces served at once (default 64)");
static unsigned int nr_unpriv;	/* bpfilter_mutex */

/*
 * Requests of namespaces of non-initial user namespaces in flight at once
 * (each one a worker thread in the helper): among themselves they wait for a
 * slot, while an administrator's request never waits for theirs.
 */
static unsigned int unpriv_max_inflight = 2;
module_param(unpriv_max_inflight, uint, 0644);
MODULE_PARM_DESC(unpriv_max_inflight,
		 "Most requests about namespaces owned by non-initial user namespaces in flight at once (default 2, at least 1)");
static atomic_t unpriv_inflight = ATOMIC_INIT(0);
static DECLARE_WAIT_QUEUE_HEAD(unpriv_wq);

static LIST_HEAD(ns_list);
static DEFINE_SPINLOCK(ns_lock);
static LIST_HEAD(events);	/* ns_lock: namespaces with pending events */
static LIST_HEAD(strays);	/* ns_lock */
static unsigned int nr_strays;	/* ns_lock */
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
	if (net->user_ns != &init_user_ns && nr_unpriv >= unpriv_max_netns) {
		char who[96];

		bpfilter_who(net, who, sizeof(who));
		pr_info_ratelimited("%s: refused: %u namespaces of non-initial user namespaces are served already (unpriv_max_netns) (ENOMEM)\n",
				    who, nr_unpriv);
		return -ENOMEM;
	}
	ns = kzalloc(sizeof(*ns), GFP_KERNEL);
	if (!ns)
		return -ENOMEM;
	ns->unpriv = net->user_ns != &init_user_ns;
	nr_unpriv += ns->unpriv;
	ns->net = net;
	ns->cookie = net->net_cookie;
	mutex_init(&ns->lock);
	INIT_LIST_HEAD(&ns->tables);
	INIT_LIST_HEAD(&ns->ev_node);
	ns->credits = BPFILTER_EVENT_BURST;
	ns->credit_at = jiffies;
	ns->next_pass = jiffies;
	spin_lock(&ns_lock);
	list_add_tail(&ns->node, &ns_list);
	spin_unlock(&ns_lock);
	return 0;
}

static bool unpriv_slot_take(void)
{
	int n = atomic_read(&unpriv_inflight);

	do {
		if (n >= max(READ_ONCE(unpriv_max_inflight), 1u))
			return false;
	} while (!atomic_try_cmpxchg(&unpriv_inflight, &n, n + 1));
	return true;
}

struct bpfilter_netns *bpfilter_netns_lock(struct net *net)
{
	struct bpfilter_netns *ns;

	spin_lock(&ns_lock);
	ns = ns_find(net);
	spin_unlock(&ns_lock);
	if (WARN_ON_ONCE(!ns))
		return ERR_PTR(-EIO);
	if (mutex_lock_killable(&ns->lock))
		return ERR_PTR(-EINTR);
	if (ns->unpriv && wait_event_killable(unpriv_wq, unpriv_slot_take())) {
		mutex_unlock(&ns->lock);
		return ERR_PTR(-EINTR);
	}
	return ns;
}

void bpfilter_netns_unlock(struct bpfilter_netns *ns)
{
	if (ns->unpriv) {
		atomic_dec(&unpriv_inflight);
		wake_up(&unpriv_wq);
	}
	mutex_unlock(&ns->lock);
}

void bpfilter_netns_save(struct bpfilter_netns *ns, void *replace, u32 len)
{
	const struct ipt_replace *repl = replace;
	struct bpfilter_table *t;

	lockdep_assert_held(&ns->lock);
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
int bpfilter_netns_ct_prepare(struct bpfilter_netns *ns, struct net *net, bool tracks)
{
	int ret;

	lockdep_assert_held(&ns->lock);
	if (!tracks || test_bit(BPFILTER_CT_HELD, &ns->ct))
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
void bpfilter_netns_ct_commit(struct bpfilter_netns *ns, struct net *net, bool tracks,
			      bool accepted)
{
	bool taken;

	lockdep_assert_held(&ns->lock);
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
		/*
		 * After the requests that held it before the restart (their
		 * channel is dead: they end at once); before any new one (they
		 * wait for bpfilter_mutex, then for the helper to be published).
		 */
		mutex_lock(&ns->lock);
		list_for_each_entry(t, &ns->tables, node) {
			int ret = bpfilter_umh_running() ? replay_table(net, t) : -EIO;

			if (ret)
				pr_err("could not restore table %s of netns %llu: %d\n",
				       t->name, ns->cookie, ret);
			else
				pr_info("restored table %s of netns %llu\n",
					t->name, ns->cookie);
		}
		mutex_unlock(&ns->lock);
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
	bpfilter_helper_ready();
	list_for_each_entry(ns, &ns_list, node) {
		struct net *net = ns_get_net(ns);
		int ret;

		if (!net)
			continue;
		/* After the requests and events about it still in flight. */
		mutex_lock(&ns->lock);
		ret = bpfilter_umh_running() ?
		      send_simple(net, BPFILTER_OP_DETACH, 0) : -EIO;
		mutex_unlock(&ns->lock);
		if (ret)
			pr_err("could not detach the programs of netns %llu: %d\n",
			       ns->cookie, ret);
		put_net(net);
	}
}

static void event_gone(struct bpfilter_netns *ns)
{
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
	nr_unpriv -= ns->unpriv;
	ns_free(ns);
}

/*
 * The helper's channel for an event, under bpfilter_mutex only for as long
 * as it takes to find it. NULL: nothing to tell (rmmod under way, or a
 * helper just restarted, which attaches to every interface as it replays).
 */
static struct bpfilter_chan *event_chan(void)
{
	struct bpfilter_chan *chan = NULL;
	bool restarted;

	mutex_lock(&bpfilter_mutex);
	if (!stopping) {
		restarted = !bpfilter_umh_running();
		if (!bpfilter_helper_ready() && !restarted)
			chan = bpfilter_umh_get();
	}
	mutex_unlock(&bpfilter_mutex);
	return chan;
}

static void send_on(struct bpfilter_chan *chan, struct net *net, u16 op, u32 arg)
{
	struct bpfilter_msg msg = {
		.req.op = op,
		.req.arg = arg,
		.net = net,
	};

	bpfilter_umh_send(chan, &msg, false);
	kvfree(msg.reply);
}

/*
 * Tells the helper what changed in ns (pending: BPFILTER_EV_* bits). False
 * when a request about ns holds it: the events wait for the next pass, and
 * the others are not held up behind it.
 */
static bool event_run(struct bpfilter_netns *ns, struct net *net, unsigned long pending)
{
	/* bpfilter_mutex before the namespace's lock, never inside it. */
	struct bpfilter_chan *chan = event_chan();

	if (!mutex_trylock(&ns->lock)) {
		if (chan)
			bpfilter_umh_put(chan);
		return false;
	}
	if (chan) {
		/* The helper rescans every link of the namespace for any of them. */
		if (test_bit(BPFILTER_EV_LINKS, &pending))
			send_on(chan, net, BPFILTER_OP_LINK_ADDED, 0);
		if (test_bit(BPFILTER_EV_ADDRS, &pending))
			send_on(chan, net, BPFILTER_OP_ADDRS_CHANGED, 0);
		bpfilter_umh_put(chan);
	}
	mutex_unlock(&ns->lock);
	return true;
}

static bool ns_pend(struct bpfilter_netns *ns, int bit);

/*
 * One namespace's pending events, or one stray, off the queue. False when
 * none is due; *wait is then how long until the first that is (0: none).
 */
/* A rescan of ns runs now: spends a credit, sets when the next may run. Under ns_lock. */
static void ns_spend(struct bpfilter_netns *ns)
{
	unsigned long now = jiffies;
	unsigned long earned = (now - ns->credit_at) / BPFILTER_EVENT_GAP;

	if (earned) {
		ns->credit_at += earned * BPFILTER_EVENT_GAP;
		if (earned >= BPFILTER_EVENT_BURST - ns->credits) {
			ns->credits = BPFILTER_EVENT_BURST;
			ns->credit_at = now;
		} else {
			ns->credits += earned;
		}
	}
	/* next_pass had come: a credit was there (or the namespace is going). */
	if (ns->credits)
		ns->credits--;
	ns->next_pass = ns->credits ? now : ns->credit_at + BPFILTER_EVENT_GAP;
}

static bool events_one(unsigned long *wait)
{
	struct bpfilter_stray *st;
	struct bpfilter_netns *ns, *it;
	unsigned long pending = 0;
	struct net *net = NULL;

	*wait = 0;
	spin_lock(&ns_lock);
	st = list_first_entry_or_null(&strays, struct bpfilter_stray, node);
	if (st) {
		struct bpfilter_chan *chan;

		list_del(&st->node);
		nr_strays--;
		spin_unlock(&ns_lock);
		/* A namespace bpfilter does not serve: no request about it to wait for. */
		chan = event_chan();
		if (chan) {
			send_on(chan, st->net, BPFILTER_OP_LINK_STRAY, st->ifindex);
			bpfilter_umh_put(chan);
		}
		put_net(st->net);
		kfree(st);
		return true;
	}
	ns = NULL;
	list_for_each_entry(it, &events, ev_node) {
		long left = (long)(it->next_pass - jiffies);

		if (test_bit(BPFILTER_EV_GONE, &it->pending) || left <= 0) {
			ns = it;
			break;
		}
		if (!*wait || left < *wait)
			*wait = left;
	}
	if (ns) {
		list_del_init(&ns->ev_node);
		pending = xchg(&ns->pending, 0);
		ns_spend(ns);
		if (!test_bit(BPFILTER_EV_GONE, &pending) && ns->net)
			net = maybe_get_net(ns->net);
	}
	spin_unlock(&ns_lock);
	if (!ns)
		return false;
	if (test_bit(BPFILTER_EV_GONE, &pending)) {
		/* Nothing can ask about a namespace that is gone: quick, in the helper too. */
		mutex_lock(&bpfilter_mutex);
		event_gone(ns);
		mutex_unlock(&bpfilter_mutex);
	} else if (net && !event_run(ns, net, pending)) {
		spin_lock(&ns_lock);
		if (ns->net) {
			unsigned long bit;

			for_each_set_bit(bit, &pending, BPFILTER_EV_GONE)
				ns_pend(ns, bit);
			/*
			 * No rescan ran: the credit comes back, and the events are
			 * tried again soon (a trylock), to be told as soon as the
			 * request is answered.
			 */
			if (ns->credits < BPFILTER_EVENT_BURST)
				ns->credits++;
			ns->next_pass = jiffies + BPFILTER_EVENT_RETRY;
		}
		spin_unlock(&ns_lock);
	}
	if (net)
		put_net(net);
	return true;
}

static void events_work_fn(struct work_struct *work);
static DECLARE_DELAYED_WORK(events_work, events_work_fn);

static void events_work_fn(struct work_struct *work)
{
	unsigned long wait;

	while (events_one(&wait))
		cond_resched();
	if (wait)
		schedule_delayed_work(&events_work, wait);
}

/* Runs the work item now (it re-arms itself for namespaces not yet due). */
static void events_kick(void)
{
	mod_delayed_work(system_wq, &events_work, 0);
}

/* Marks an event pending for ns; true when that queued ns. Under ns_lock. */
static bool ns_pend(struct bpfilter_netns *ns, int bit)
{
	set_bit(bit, &ns->pending);
	if (!list_empty(&ns->ev_node))
		return false;
	list_add_tail(&ns->ev_node, &events);
	return true;
}

/*
 * Notes an event for a namespace the helper has served (it keeps a table
 * and the local addresses that tell INPUT from FORWARD there); the helper
 * hears it later, from the work item, without rtnl held.
 */
static void queue_link_event(struct net *net, int bit)
{
	struct bpfilter_netns *ns;
	bool queued = false;

	spin_lock(&ns_lock);
	ns = ns_find(net);
	if (ns && ns->net)
		queued = ns_pend(ns, bit);
	spin_unlock(&ns_lock);
	if (queued)
		events_kick();
}

static void queue_stray(struct net *net, int ifindex)
{
	struct bpfilter_stray *st = kzalloc(sizeof(*st), GFP_KERNEL);

	if (!st)
		return;
	st->ifindex = ifindex;
	spin_lock(&ns_lock);
	if (nr_strays < BPFILTER_MAX_STRAYS)
		st->net = maybe_get_net(net);
	if (st->net) {
		list_add_tail(&st->node, &strays);
		nr_strays++;
	}
	spin_unlock(&ns_lock);
	if (!st->net) {
		pr_warn_ratelimited("stray XDP device %d left alone: %u already queued\n",
				    ifindex, BPFILTER_MAX_STRAYS);
		kfree(st);
		return;
	}
	events_kick();
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
			queue_stray(dev_net(dev), dev->ifindex);
		fallthrough;
	case NETDEV_CHANGENAME:
	case NETDEV_CHANGEUPPER:	/* enslaved, released, or given an upper */
	case NETDEV_UNREGISTER:		/* gone, or leaving for another namespace */
		queue_link_event(dev_net(dev), BPFILTER_EV_LINKS);
		break;
	}
	return NOTIFY_DONE;
}

static int inetaddr_event(struct notifier_block *nb, unsigned long event, void *ptr)
{
	struct in_ifaddr *ifa = ptr;
	struct net_device *dev = ifa->ifa_dev->dev;

	if (event == NETDEV_UP || event == NETDEV_DOWN)
		queue_link_event(dev_net(dev), BPFILTER_EV_ADDRS);
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
	struct bpfilter_netns *ns;
	bool ct_held = false;

	spin_lock(&ns_lock);
	ns = ns_find(net);
	if (ns) {
		ns->net = NULL;
		ct_held = test_and_clear_bit(BPFILTER_CT_HELD, &ns->ct);
		ns_pend(ns, BPFILTER_EV_GONE);
	}
	spin_unlock(&ns_lock);
	if (!ns)
		return;
	/* As ip_tables' pernet exit frees the table and its conntrack matches. */
	if (ct_held)
		nf_ct_netns_put(net, NFPROTO_IPV4);
	events_kick();
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
	/* What is due runs now; rescans not yet due have nothing to tell (stopping). */
	flush_delayed_work(&events_work);
	cancel_delayed_work_sync(&events_work);
	/* The helper is stopped: what is left is memory. */
	while (!list_empty(&strays)) {
		struct bpfilter_stray *st = list_first_entry(&strays, struct bpfilter_stray, node);

		list_del(&st->node);
		put_net(st->net);
		kfree(st);
	}
	list_for_each_entry_safe(ns, tmp, &ns_list, node) {
		list_del(&ns->node);
		ns_free(ns);
	}
}
