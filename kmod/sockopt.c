// SPDX-License-Identifier: GPL-2.0
/*
 * The caller's side of an IPT_SO_* request: the checks ip_tables makes
 * before it allocates, optval copied in the caller's context, the request
 * sent with the caller's namespace, the reply copied back.
 */
#define pr_fmt(fmt) "bpfilter: " fmt

#include <linux/capability.h>
#include <linux/compat.h>
#include <linux/atomic.h>
#include <linux/mm.h>
#include <linux/moduleparam.h>
#include <linux/netfilter_ipv4/ip_tables.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/user_namespace.h>
#include <linux/wait.h>
#include <net/sock.h>

#include "bpfilter.h"

/*
 * What a namespace owned by a user namespace other than the initial one
 * (any user's, on Debian 12) may ask of the one helper every namespace
 * shares: bounds on the work and memory one table costs. Over them, ENOMEM,
 * as ip_tables answers a table it has no memory for.
 */
static unsigned int unpriv_max_entries = 5000;
module_param(unpriv_max_entries, uint, 0644);
MODULE_PARM_DESC(unpriv_max_entries,
		 "Most entries (rules, chain heads, policies) in a table of a namespace owned by a non-initial user namespace (default 5000)");
static unsigned int unpriv_max_bytes = 4 << 20;
module_param(unpriv_max_bytes, uint, 0644);
MODULE_PARM_DESC(unpriv_max_bytes,
		 "Most bytes of entries in a table of a namespace owned by a non-initial user namespace (default 4 MiB)");

/* The namespace and the caller, as refusal lines name them. */
void bpfilter_who(struct net *net, char *buf, size_t len)
{
	snprintf(buf, len, "netns %llu (owner uid %u), pid %d (%s)", net->net_cookie,
		 from_kuid(&init_user_ns, net->user_ns->owner), task_tgid_nr(current),
		 current->comm);
}

/*
 * bpfilter_mutex, taken in this order: a request about a namespace of the
 * initial user namespace (the machine's own administrators) goes before any
 * about a namespace of another user namespace, which steps aside while one
 * is waiting. It is held for bookkeeping only, or while a restarted helper
 * gets every table back. Killable.
 */
static atomic_t admins_waiting = ATOMIC_INIT(0);
static DECLARE_WAIT_QUEUE_HEAD(admins_wq);

static int lock_for(struct net *net)
{
	int ret;

	if (net->user_ns == &init_user_ns) {
		atomic_inc(&admins_waiting);
		ret = mutex_lock_killable(&bpfilter_mutex);
		if (atomic_dec_and_test(&admins_waiting))
			wake_up_all(&admins_wq);
		return ret;
	}
	for (;;) {
		if (wait_event_killable(admins_wq, !atomic_read(&admins_waiting)))
			return -EINTR;
		ret = mutex_lock_killable(&bpfilter_mutex);
		if (ret || !atomic_read(&admins_waiting))
			return ret;
		mutex_unlock(&bpfilter_mutex);
	}
}

/*
 * The helper, started (and every table put back) if it is not running, and
 * net tracked: under bpfilter_mutex, briefly but for a restart.
 */
static int prepare(struct net *net)
{
	int ret = lock_for(net);

	if (ret)
		return ret;
	ret = bpfilter_netns_track(net);
	if (!ret)
		ret = bpfilter_helper_ready();
	mutex_unlock(&bpfilter_mutex);
	return ret;
}

/*
 * Sends msg for net and waits for the answer, holding only net's lock: the
 * requests of other namespaces are in flight beside it. On an accepted
 * IPT_SO_SET_REPLACE, *keep (the request's payload) becomes the namespace's
 * saved table, under the same lock, so that a replay restores what the
 * helper last accepted.
 */
static int request(struct net *net, struct bpfilter_msg *msg, void **keep)
{
	struct bpfilter_netns *ns;
	struct bpfilter_chan *chan;
	bool tracks = false, accepted;
	int ret, tries = 0;

	msg->net = net;
	/* For the helper's refusal lines: who asked (pid in the initial pid namespace). */
	msg->req.arg = task_tgid_nr(current);
	for (;;) {
		ret = prepare(net);
		if (ret)
			return ret;
		ns = bpfilter_netns_lock(net);
		if (IS_ERR(ns))
			return PTR_ERR(ns);
		chan = bpfilter_umh_get();
		if (chan)
			break;
		/* The helper died since prepare(): start another, twice at most. */
		bpfilter_netns_unlock(ns);
		if (++tries == 3)
			return -EIO;
	}
	if (keep) {
		tracks = bpfilter_table_tracks(*keep, msg->req.data_len);
		ret = bpfilter_netns_ct_prepare(ns, net, tracks);
	}
	if (!ret)
		ret = bpfilter_umh_send(chan, msg, true);
	accepted = !ret && !msg->status && keep;
	if (keep)
		bpfilter_netns_ct_commit(ns, net, tracks, accepted);
	if (accepted) {
		bpfilter_netns_save(ns, *keep, msg->req.data_len);
		*keep = NULL;
		bpfilter_proc_fetch(net, chan);
	}
	bpfilter_umh_put(chan);
	bpfilter_netns_unlock(ns);
	/* Outside the lock: removing a /proc file waits for its readers, who take it. */
	if (accepted)
		bpfilter_proc_sync(net);
	return ret;
}

int bpfilter_request(struct net *net, struct bpfilter_msg *msg)
{
	return request(net, msg, NULL);
}

static bool unsupported_caller(void)
{
	if (!in_compat_syscall())
		return false;
	pr_warn_once("32-bit iptables is not supported, use the 64-bit one\n");
	return true;
}

/* Mirrors do_replace(): the header's checks, then the entries, then the helper. */
static int set_replace(struct net *net, sockptr_t arg, unsigned int len)
{
	struct bpfilter_msg msg = {
		.req.op = BPFILTER_OP_SETSOCKOPT,
		.req.optname = IPT_SO_SET_REPLACE,
		.req.optlen = len,
	};
	struct ipt_replace tmp, *repl;
	void *buf;
	int ret;

	if (copy_from_sockptr(&tmp, arg, sizeof(tmp)))
		return -EFAULT;
	if (tmp.num_counters >= INT_MAX / sizeof(struct xt_counters))
		return -ENOMEM;
	if (tmp.num_counters == 0)
		return -EINVAL;
	if (tmp.size > BPFILTER_MAX_DATA - sizeof(tmp))
		return -ENOMEM;
	if (net->user_ns != &init_user_ns &&
	    (tmp.num_entries > unpriv_max_entries || tmp.size > unpriv_max_bytes)) {
		char who[96];

		bpfilter_who(net, who, sizeof(who));
		pr_info_ratelimited("%s: table %.32s of %u entries, %u bytes refused: over the bounds for a namespace of a non-initial user namespace (unpriv_max_entries=%u, unpriv_max_bytes=%u) (ENOMEM)\n",
				    who, tmp.name, tmp.num_entries, tmp.size,
				    unpriv_max_entries, unpriv_max_bytes);
		return -ENOMEM;
	}
	buf = kvmalloc(sizeof(tmp) + tmp.size, GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
	if (!buf)
		return -ENOMEM;
	repl = buf;
	*repl = tmp;
	repl->name[sizeof(repl->name) - 1] = '\0';
	if (copy_from_sockptr_offset(repl->entries, arg, sizeof(tmp), tmp.size)) {
		ret = -EFAULT;
		goto out;
	}
	msg.data = buf;
	msg.req.data_len = sizeof(tmp) + tmp.size;
	msg.max_reply = tmp.num_counters * sizeof(struct xt_counters);
	ret = request(net, &msg, &buf);
	if (ret)
		goto out;
	ret = msg.status;
	/* As ip_tables: the new table is in place, a bad pointer is not an error. */
	if (!ret && msg.reply_len && tmp.counters &&
	    copy_to_user(tmp.counters, msg.reply, msg.reply_len))
		pr_warn_ratelimited("counters copy to user failed while replacing table\n");
out:
	kvfree(msg.reply);
	kvfree(buf);
	return ret;
}

/* Mirrors xt_copy_counters(): len must be exactly the counters it announces. */
static int set_add_counters(struct net *net, sockptr_t arg, unsigned int len)
{
	struct bpfilter_msg msg = {
		.req.op = BPFILTER_OP_SETSOCKOPT,
		.req.optname = IPT_SO_SET_ADD_COUNTERS,
		.req.optlen = len,
	};
	struct xt_counters_info tmp, *info;
	void *buf;
	int ret;

	if (len < sizeof(tmp))
		return -EINVAL;
	if (copy_from_sockptr(&tmp, arg, sizeof(tmp)))
		return -EFAULT;
	if ((u64)tmp.num_counters * sizeof(struct xt_counters) != (u64)len - sizeof(tmp))
		return -EINVAL;
	if (len > BPFILTER_MAX_DATA)
		return -ENOMEM;
	buf = kvmalloc(len, GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
	if (!buf)
		return -ENOMEM;
	info = buf;
	*info = tmp;
	info->name[sizeof(info->name) - 1] = '\0';
	if (copy_from_sockptr_offset(info->counters, arg, sizeof(tmp), len - sizeof(tmp))) {
		ret = -EFAULT;
		goto out;
	}
	msg.data = buf;
	msg.req.data_len = len;
	ret = request(net, &msg, NULL);
	if (!ret)
		ret = msg.status;
out:
	kvfree(msg.reply);
	kvfree(buf);
	return ret;
}

int bpfilter_setsockopt(struct sock *sk, int optname, sockptr_t optval,
			unsigned int optlen)
{
	struct net *net = sock_net(sk);

	if (!ns_capable(net->user_ns, CAP_NET_ADMIN))
		return -EPERM;
	if (unsupported_caller())
		return -EOPNOTSUPP;
	switch (optname) {
	case IPT_SO_SET_REPLACE:
		return set_replace(net, optval, optlen);
	case IPT_SO_SET_ADD_COUNTERS:
		return set_add_counters(net, optval, optlen);
	default:
		return -EINVAL;
	}
}

/*
 * Mirrors do_ipt_get_ctl(): the length checks of get_info(), get_entries()
 * and the revision queries, then the input part of optval goes to the helper.
 */
int bpfilter_getsockopt(struct sock *sk, int optname, void __user *optval,
			int *optlen)
{
	struct net *net = sock_net(sk);
	union {
		struct ipt_getinfo info;
		struct ipt_get_entries entries;
		struct xt_get_revision rev;
	} in;
	struct bpfilter_msg msg = {
		.req.op = BPFILTER_OP_GETSOCKOPT,
		.req.optname = optname,
		.req.optlen = *optlen,
		.data = &in,
		.max_reply = max(*optlen, 0),
	};
	size_t in_len;
	int ret;

	if (!ns_capable(net->user_ns, CAP_NET_ADMIN))
		return -EPERM;
	if (unsupported_caller())
		return -EOPNOTSUPP;
	switch (optname) {
	case IPT_SO_GET_INFO:
		in_len = sizeof(in.info);
		if (*optlen != in_len)
			return -EINVAL;
		if (copy_from_user(&in.info, optval, in_len))
			return -EFAULT;
		in.info.name[sizeof(in.info.name) - 1] = '\0';
		break;
	case IPT_SO_GET_ENTRIES:
		in_len = sizeof(in.entries);
		if (*optlen < in_len)
			return -EINVAL;
		if (copy_from_user(&in.entries, optval, in_len))
			return -EFAULT;
		if (*optlen != in_len + in.entries.size)
			return -EINVAL;
		in.entries.name[sizeof(in.entries.name) - 1] = '\0';
		break;
	case IPT_SO_GET_REVISION_MATCH:
	case IPT_SO_GET_REVISION_TARGET:
		in_len = sizeof(in.rev);
		if (*optlen != in_len)
			return -EINVAL;
		if (copy_from_user(&in.rev, optval, in_len))
			return -EFAULT;
		in.rev.name[sizeof(in.rev.name) - 1] = '\0';
		break;
	default:
		return -EINVAL;
	}
	msg.req.data_len = in_len;
	ret = request(net, &msg, NULL);
	if (ret)
		return ret;
	ret = msg.status;
	/* No data (a revision query): *optlen stays, as ip_tables leaves it. */
	if (ret >= 0 && msg.reply_len) {
		if (copy_to_user(optval, msg.reply, msg.reply_len))
			ret = -EFAULT;
		else
			*optlen = msg.reply_len;
	}
	kvfree(msg.reply);
	return ret;
}
