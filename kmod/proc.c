// SPDX-License-Identifier: GPL-2.0
/*
 * /proc/net/xt_recent/NAME and /proc/net/ipt_hashlimit/NAME, as xt_recent and
 * xt_hashlimit make them, for the lists and htables of the tables in force in
 * each network namespace. Each read or write is a request to the helper,
 * which keeps them; the helper says which names are in force after every
 * accepted replace.
 */
#define pr_fmt(fmt) "bpfilter: " fmt

#include <linux/list.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/netfilter.h>
#include <linux/proc_fs.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/uidgid.h>
#include <net/net_namespace.h>

#include "bpfilter.h"

enum { PROC_RECENT, PROC_HASHLIMIT, PROC_KINDS };

/* By kind: the directory, netfilter's module that makes it, the name's tag. */
static const struct {
	const char *dir;
	const char *module;
	const char *match;
	char tag;
	umode_t mode;
} kinds[PROC_KINDS] = {
	/* xt_recent's ip_list_perms, owned by uid and gid 0 (ip_list_uid, ip_list_gid). */
	[PROC_RECENT] = { "xt_recent", "xt_recent", "recent", 'r', 0644 },
	[PROC_HASHLIMIT] = { "ipt_hashlimit", "xt_hashlimit", "hashlimit", 'h', 0444 },
};

/* Largest text a read returns (netfilter's seq_files have no bound). */
#define PROC_MAX_READ	(64U << 20)

struct proc_netns;

struct proc_file {
	struct list_head node;
	struct proc_netns *pn;
	int kind;
	bool wanted;		/* proc_lock: named by the last answer (sync) */
	char name[];
};

struct proc_netns {
	struct list_head node;
	struct net *net;		/* no reference: the pernet exit frees us first */
	void *names;			/* the helper's last answer (kvmalloc'd) */
	u32 names_len;
	struct proc_dir_entry *dir[PROC_KINDS];
	struct list_head files;
};

/*
 * Guards the lists and the /proc tree we make. Never held while waiting for
 * the helper: removing a file waits for its readers, which may be waiting
 * for their namespace's lock.
 */
static DEFINE_MUTEX(proc_lock);
static LIST_HEAD(proc_list);
/* proc_lock: netfilter's module owns the directory in every namespace. */
static bool nf_owns[PROC_KINDS];
static bool stopping;		/* proc_lock: rmmod, make nothing more */

static struct proc_netns *pn_find(struct net *net)
{
	struct proc_netns *pn;

	list_for_each_entry(pn, &proc_list, node)
		if (pn->net == net)
			return pn;
	return NULL;
}

/* A request about pf's namespace, unless it is going (its exit then waits for us). */
static int proc_request(struct proc_file *pf, struct bpfilter_msg *msg)
{
	struct net *net = maybe_get_net(pf->pn->net);
	int ret;

	if (!net)
		return -ENOENT;
	ret = bpfilter_request(net, msg);
	put_net(net);
	return ret ?: msg->status;
}

/* The text is read at open, as one snapshot, and served from it. */
struct proc_text {
	void *buf;
	size_t len;
};

static int proc_open(struct inode *inode, struct file *file)
{
	struct proc_file *pf = pde_data(inode);
	size_t name_len = strlen(pf->name);
	struct bpfilter_msg msg = {
		.max_reply = PROC_MAX_READ,
	};
	struct proc_text *text;
	char *name;
	int ret;

	text = kzalloc(sizeof(*text), GFP_KERNEL);
	if (!text)
		return -ENOMEM;
	file->private_data = text;
	if (!(file->f_mode & FMODE_READ))
		return 0;
	name = kmemdup(pf->name, name_len + 1, GFP_KERNEL);
	if (!name) {
		ret = -ENOMEM;
		goto err;
	}
	msg.data = name;
	if (pf->kind == PROC_RECENT) {
		msg.req.op = BPFILTER_OP_GETSOCKOPT;
		msg.req.optname = BPFILTER_SO_GET_RECENT;
		msg.req.optlen = PROC_MAX_READ;
		msg.req.data_len = name_len + 1;
	} else {
		msg.req.op = BPFILTER_OP_HASHLIMIT_READ;
		msg.req.data_len = name_len;
	}
	ret = proc_request(pf, &msg);
	kfree(name);
	if (ret) {
		kvfree(msg.reply);
		goto err;
	}
	text->buf = msg.reply;
	text->len = msg.reply_len;
	return 0;
err:
	kfree(text);
	file->private_data = NULL;
	return ret;
}

static ssize_t proc_read(struct file *file, char __user *buf, size_t size, loff_t *ppos)
{
	struct proc_text *text = file->private_data;

	return simple_read_from_buffer(buf, size, ppos, text->buf, text->len);
}

/* recent_mt_proc_write(): "+ADDR", "-ADDR" or "/", one write at offset 0. */
static ssize_t proc_write(struct file *file, const char __user *input, size_t size,
			  loff_t *ppos)
{
	struct proc_file *pf = pde_data(file_inode(file));
	/* xt_recent reads at most this much of a write. */
	char in[sizeof("+b335:1d35:1e55:dead:c0de:1715:255.255.255.255")];
	size_t name_len = strlen(pf->name);
	struct bpfilter_msg msg = {
		.req.op = BPFILTER_OP_SETSOCKOPT,
		.req.optname = BPFILTER_SO_SET_RECENT,
	};
	char *data;
	int ret;

	if (pf->kind != PROC_RECENT)
		return -EIO;
	if (size == 0)
		return 0;
	if (size > sizeof(in))
		size = sizeof(in);
	if (copy_from_user(in, input, size))
		return -EFAULT;
	if (*ppos != 0)
		return -ESPIPE;
	data = kmalloc(name_len + 1 + size, GFP_KERNEL);
	if (!data)
		return -ENOMEM;
	memcpy(data, pf->name, name_len + 1);
	memcpy(data + name_len + 1, in, size);
	msg.data = data;
	msg.req.data_len = name_len + 1 + size;
	msg.req.optlen = msg.req.data_len;
	ret = proc_request(pf, &msg);
	kvfree(msg.reply);
	kfree(data);
	if (ret)
		return ret;
	*ppos += size;
	return size;
}

static int proc_release(struct inode *inode, struct file *file)
{
	struct proc_text *text = file->private_data;

	kvfree(text->buf);
	kfree(text);
	return 0;
}

static const struct proc_ops proc_file_ops = {
	.proc_open = proc_open,
	.proc_read = proc_read,
	.proc_write = proc_write,
	.proc_lseek = default_llseek,
	.proc_release = proc_release,
};

static void file_remove(struct proc_file *pf)
{
	/* Waits for the file's readers and writers to leave. */
	remove_proc_entry(pf->name, pf->pn->dir[pf->kind]);
	list_del(&pf->node);
	kfree(pf);
}

/* A name the helper gave, safe as a /proc file name. */
static bool name_ok(const char *name, size_t len)
{
	return len && len <= NAME_MAX && !memchr(name, '/', len) &&
	       strcmp(name, ".") && strcmp(name, "..");
}

static void file_add(struct proc_netns *pn, int kind, const char *name, size_t len)
{
	struct proc_dir_entry *pde;
	struct proc_file *pf;

	if (nf_owns[kind]) {
		pr_info_ratelimited("netns %llu: /proc/net/%s/%s not made: netfilter's %s is loaded and owns /proc/net/%s\n",
				    pn->net->net_cookie, kinds[kind].dir, name,
				    kinds[kind].module, kinds[kind].dir);
		return;
	}
	if (!name_ok(name, len)) {
		pr_warn_ratelimited("netns %llu: no /proc/net/%s file for a name of %zu bytes\n",
				    pn->net->net_cookie, kinds[kind].dir, len);
		return;
	}
	if (!pn->dir[kind]) {
		pn->dir[kind] = proc_mkdir(kinds[kind].dir, pn->net->proc_net);
		if (!pn->dir[kind])
			return;
	}
	pf = kzalloc(sizeof(*pf) + len + 1, GFP_KERNEL);
	if (!pf)
		return;
	pf->pn = pn;
	pf->kind = kind;
	pf->wanted = true;
	memcpy(pf->name, name, len);
	pde = proc_create_data(pf->name, kinds[kind].mode, pn->dir[kind],
			       &proc_file_ops, pf);
	if (!pde) {
		kfree(pf);
		return;
	}
	proc_set_user(pde, GLOBAL_ROOT_UID, GLOBAL_ROOT_GID);
	list_add_tail(&pf->node, &pn->files);
}

static struct proc_file *file_find(struct proc_netns *pn, int kind, const char *name,
				   size_t len)
{
	struct proc_file *pf;

	list_for_each_entry(pf, &pn->files, node)
		if (pf->kind == kind && strlen(pf->name) == len &&
		    !memcmp(pf->name, name, len))
			return pf;
	return NULL;
}

/* Makes pn's files and directories those of the helper's last answer. proc_lock. */
static void pn_sync(struct proc_netns *pn)
{
	const char *p = pn->names, *end = p + pn->names_len;
	struct proc_file *pf, *tmp;
	int kind;

	lockdep_assert_held(&proc_lock);
	list_for_each_entry(pf, &pn->files, node)
		pf->wanted = false;
	while (!stopping && p < end) {
		const char *nul = memchr(p, '\0', end - p);
		size_t len;

		if (!nul)
			break;
		len = nul - p - 1;
		for (kind = 0; kind < PROC_KINDS; kind++)
			if (nul > p && *p == kinds[kind].tag)
				break;
		if (kind < PROC_KINDS) {
			pf = file_find(pn, kind, p + 1, len);
			if (pf)
				pf->wanted = !nf_owns[kind];
			else
				file_add(pn, kind, p + 1, len);
		}
		p = nul + 1;
	}
	list_for_each_entry_safe(pf, tmp, &pn->files, node)
		if (!pf->wanted)
			file_remove(pf);
	for (kind = 0; kind < PROC_KINDS; kind++) {
		bool used = false;

		list_for_each_entry(pf, &pn->files, node)
			used |= pf->kind == kind;
		if (pn->dir[kind] && !used) {
			remove_proc_entry(kinds[kind].dir, pn->net->proc_net);
			pn->dir[kind] = NULL;
		}
	}
}

static void pn_free(struct proc_netns *pn)
{
	pn->names_len = 0;
	pn_sync(pn);
	list_del(&pn->node);
	kvfree(pn->names);
	kfree(pn);
}

void bpfilter_proc_fetch(struct net *net, struct bpfilter_chan *chan)
{
	struct bpfilter_msg msg = {
		.req.op = BPFILTER_OP_PROC_NAMES,
		.net = net,
		.max_reply = PROC_MAX_READ,
	};
	struct proc_netns *pn;
	int ret;

	ret = bpfilter_umh_send(chan, &msg, false);
	if (ret || msg.status) {
		pr_warn_ratelimited("netns %llu: the helper did not say which /proc/net files its tables have: %d\n",
				    net->net_cookie, ret ?: msg.status);
		kvfree(msg.reply);
		return;
	}
	mutex_lock(&proc_lock);
	pn = pn_find(net);
	if (!pn && msg.reply_len) {
		pn = kzalloc(sizeof(*pn), GFP_KERNEL);
		if (pn) {
			pn->net = net;
			INIT_LIST_HEAD(&pn->files);
			list_add_tail(&pn->node, &proc_list);
		}
	}
	if (pn) {
		kvfree(pn->names);
		pn->names = msg.reply;
		pn->names_len = msg.reply_len;
		msg.reply = NULL;
	}
	mutex_unlock(&proc_lock);
	kvfree(msg.reply);
}

void bpfilter_proc_sync(struct net *net)
{
	struct proc_netns *pn;

	mutex_lock(&proc_lock);
	pn = pn_find(net);
	if (pn)
		pn_sync(pn);
	mutex_unlock(&proc_lock);
}

/* As xt_recent's and xt_hashlimit's pernet exits remove their files. */
static void __net_exit bpfilter_proc_net_exit(struct net *net)
{
	struct proc_netns *pn;

	mutex_lock(&proc_lock);
	pn = pn_find(net);
	if (pn)
		pn_free(pn);
	mutex_unlock(&proc_lock);
}

static struct pernet_operations proc_net_ops = {
	.exit = bpfilter_proc_net_exit,
};

/*
 * netfilter's xt_recent and xt_hashlimit make their directory in every
 * namespace as they load (ip6tables, iptables-nft use them beside us): ours
 * go before theirs come (COMING runs before their init), and come back for
 * the tables in force once theirs are gone (GOING runs after their exit).
 */
static int module_event(struct notifier_block *nb, unsigned long action, void *data)
{
	struct module *mod = data;
	struct proc_netns *pn;
	int kind;

	if (action != MODULE_STATE_COMING && action != MODULE_STATE_GOING)
		return NOTIFY_DONE;
	for (kind = 0; kind < PROC_KINDS; kind++)
		if (!strcmp(mod->name, kinds[kind].module))
			break;
	if (kind == PROC_KINDS)
		return NOTIFY_DONE;
	mutex_lock(&proc_lock);
	nf_owns[kind] = action == MODULE_STATE_COMING;
	if (nf_owns[kind])
		pr_info("%s is loading: bpfilter's /proc/net/%s files go\n",
			kinds[kind].module, kinds[kind].dir);
	list_for_each_entry(pn, &proc_list, node)
		pn_sync(pn);
	mutex_unlock(&proc_lock);
	return NOTIFY_DONE;
}

static struct notifier_block module_nb = { .notifier_call = module_event };

/* Is netfilter's match already registered (its module loaded, or built in)? */
static bool nf_match_loaded(const char *match)
{
	int (*find)(u8 af, const char *name, u8 revision, int target, int *err);
	int err, found;

	find = __symbol_get("xt_find_revision");
	if (!find)
		return false;	/* no x_tables: no xt_recent, no xt_hashlimit */
	found = find(NFPROTO_IPV4, match, 0, 0, &err);
	__symbol_put("xt_find_revision");
	return found;
}

int __init bpfilter_proc_init(void)
{
	int ret, kind;

	ret = register_module_notifier(&module_nb);
	if (ret)
		return ret;
	mutex_lock(&proc_lock);
	for (kind = 0; kind < PROC_KINDS; kind++)
		nf_owns[kind] |= nf_match_loaded(kinds[kind].match);
	mutex_unlock(&proc_lock);
	ret = register_pernet_subsys(&proc_net_ops);
	if (ret)
		unregister_module_notifier(&module_nb);
	return ret;
}

/* Before the helper stops: no file is left to ask it. */
void bpfilter_proc_stop(void)
{
	mutex_lock(&proc_lock);
	stopping = true;
	while (!list_empty(&proc_list))
		pn_free(list_first_entry(&proc_list, struct proc_netns, node));
	mutex_unlock(&proc_lock);
}

void bpfilter_proc_exit(void)
{
	unregister_pernet_subsys(&proc_net_ops);
	unregister_module_notifier(&module_nb);
	bpfilter_proc_stop();
}
