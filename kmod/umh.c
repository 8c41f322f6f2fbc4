// SPDX-License-Identifier: GPL-2.0
/*
 * The helper's life cycle: the embedded blob in a shmem file, the helper
 * started from it, the private channel to it, stop. Several exchanges may be
 * in flight on the channel: the helper reads requests in the order they were
 * queued and answers each when it is done, in any order, matched by seq.
 *
 * Debian's 6.1 exports neither umd_load_blob() nor fork_usermode_driver()
 * nor create_pipe_files(), so: the blob goes into an unlinked shmem file,
 * call_usermodehelper()'s init callback installs the channel and that file
 * in the new task's (empty) descriptor table and the task executes
 * /proc/self/fd/N. The channel is an anonymous inode whose read and write
 * are this file's code: it exists only in the helper's descriptor table and
 * answers only the helper's thread group, so no other process can talk to
 * the helper or pose as it.
 */
#define pr_fmt(fmt) "bpfilter: " fmt

#include <linux/anon_inodes.h>
#include <linux/atomic.h>
#include <linux/cred.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/kref.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/net.h>
#include <linux/nsproxy.h>
#include <linux/pid.h>
#include <linux/poll.h>
#include <linux/proc_fs.h>
#include <linux/sched/signal.h>
#include <linux/shmem_fs.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/umh.h>
#include <linux/wait.h>
#include <net/net_namespace.h>

#include "bpfilter.h"

/* Bounds for exchanges nobody can interrupt (no caller, or a killed one). */
#define BPFILTER_HEALTH_TIMEOUT	(30 * HZ)
#define BPFILTER_KERNEL_TIMEOUT	(120 * HZ)
#define BPFILTER_KILLED_GRACE	(30 * HZ)
#define BPFILTER_EXIT_GRACE	(5 * HZ)
/* A helper stuck in the kernel after SIGKILL is let go after this (its channel is dead). */
#define BPFILTER_KILL_GRACE	(10 * HZ)

/*
 * A request is queued, then read by the helper (the first of the queue, spos
 * bytes of it so far), then in flight until its reply has been written
 * (rpos bytes so far: the header, then the data of `receiving`). Each
 * message is on one list at a time and taken off by whoever completes it,
 * or by its sender when it gives up, before exchange() returns.
 */
struct bpfilter_chan {
	struct kref ref;
	struct mutex io;	/* everything below */
	wait_queue_head_t wq;
	struct pid *tgid;	/* the helper's thread group, set before it runs */
	bool dead;		/* helper gone, or the stream broke */
	bool closing;		/* the helper reads end of stream */
	unsigned int queued;	/* on `queue` (read without io by poll) */
	struct list_head queue;
	struct list_head inflight;
	size_t spos;
	struct bpfilter_msg *receiving;
	size_t rpos;
	struct bpfilter_reply rhdr;
	u32 seq;
};

static struct {
	struct file *exe;		/* the blob, in an unlinked shmem file */
	struct bpfilter_chan *chan;	/* the running helper, bpfilter_mutex */
	/*
	 * The channel requests may use without bpfilter_mutex: the running
	 * helper's, once every namespace's table is back (lock, for readers).
	 */
	struct bpfilter_chan *ready;
	spinlock_t lock;
	atomic_t files;			/* channel files not yet released */
	wait_queue_head_t files_wq;
} umh;

static void chan_free(struct kref *ref)
{
	struct bpfilter_chan *chan = container_of(ref, struct bpfilter_chan, ref);

	put_pid(chan->tgid);
	kfree(chan);
}

static bool chan_is_helper(const struct bpfilter_chan *chan)
{
	return chan->tgid && task_tgid(current) == chan->tgid;
}

/* Marks the exchange broken; the module side kills the helper. Under chan->io. */
static void chan_break(struct bpfilter_chan *chan, const char *why)
{
	if (!chan->dead)
		pr_err("helper channel broken: %s\n", why);
	chan->dead = true;
	wake_up_all(&chan->wq);
}

static bool chan_readable(struct bpfilter_chan *chan)
{
	return READ_ONCE(chan->queued) || READ_ONCE(chan->closing) || READ_ONCE(chan->dead);
}

/* The message is answered (status, reply): its sender may go on. Under chan->io. */
static void chan_complete(struct bpfilter_chan *chan, struct bpfilter_msg *msg)
{
	list_del_init(&msg->node);
	WRITE_ONCE(msg->done, true);
	wake_up_all(&chan->wq);
}

/*
 * Gives the helper a descriptor for the request's namespace, made in the
 * helper's own descriptor table because this runs in its read(). -1 when the
 * request names no namespace or the helper's own.
 */
static int chan_install_netns(struct bpfilter_msg *msg)
{
	int fd;

	msg->req.netns_fd = -1;
	if (!msg->net || msg->net == current->nsproxy->net_ns)
		return 0;
	fd = open_related_ns(&msg->net->ns, get_net_ns);
	if (fd < 0)
		return fd;
	msg->req.netns_fd = fd;
	return 0;
}

/* Copies out the first queued request; once it is all read, it is in flight. */
static ssize_t chan_copy_request(struct bpfilter_chan *chan, struct bpfilter_msg *msg,
				 char __user *buf, size_t len)
{
	size_t hlen = sizeof(msg->req);
	size_t total = hlen + msg->req.data_len;
	size_t done = 0;

	while (done < len && chan->spos < total) {
		const char *src;
		size_t n;

		if (chan->spos < hlen) {
			src = (const char *)&msg->req + chan->spos;
			n = hlen - chan->spos;
		} else {
			src = (const char *)msg->data + (chan->spos - hlen);
			n = total - chan->spos;
		}
		n = min(n, len - done);
		if (copy_to_user(buf + done, src, n))
			return done ? done : -EFAULT;
		done += n;
		chan->spos += n;
	}
	if (chan->spos == total) {
		list_move_tail(&msg->node, &chan->inflight);
		WRITE_ONCE(chan->queued, chan->queued - 1);
		chan->spos = 0;
	}
	return done;
}

static ssize_t chan_read(struct file *file, char __user *buf, size_t len,
			 loff_t *ppos)
{
	struct bpfilter_chan *chan = file->private_data;
	struct bpfilter_msg *msg;
	ssize_t ret;

	if (!chan_is_helper(chan))
		return -EPERM;
	for (;;) {
		if (!chan_readable(chan)) {
			if (file->f_flags & O_NONBLOCK)
				return -EAGAIN;
			ret = wait_event_interruptible(chan->wq, chan_readable(chan));
			if (ret)
				return ret;
		}
		mutex_lock(&chan->io);
		if (chan->closing || chan->dead) {
			mutex_unlock(&chan->io);
			return 0;
		}
		msg = list_first_entry_or_null(&chan->queue, struct bpfilter_msg, node);
		if (!msg) {
			mutex_unlock(&chan->io);
			continue;
		}
		if (chan->spos == 0) {
			ret = chan_install_netns(msg);
			if (ret) {
				/* Answer the module here; the helper never sees it. */
				msg->status = ret;
				WRITE_ONCE(chan->queued, chan->queued - 1);
				chan_complete(chan, msg);
				mutex_unlock(&chan->io);
				continue;
			}
		}
		ret = chan_copy_request(chan, msg, buf, len);
		mutex_unlock(&chan->io);
		return ret;
	}
}

/*
 * The reply header is complete: find the request it answers among those in
 * flight, and check it before allocating for its data.
 */
static int chan_reply_header(struct bpfilter_chan *chan)
{
	const struct bpfilter_reply *r = &chan->rhdr;
	struct bpfilter_msg *msg = NULL, *it;

	if (r->magic != BPFILTER_REPLY_MAGIC)
		return -EBADMSG;
	list_for_each_entry(it, &chan->inflight, node) {
		if (it->req.seq == r->seq) {
			msg = it;
			break;
		}
	}
	if (!msg)
		return -EBADMSG;
	chan->receiving = msg;
	if (r->data_len > msg->max_reply || r->data_len > BPFILTER_MAX_DATA)
		return -E2BIG;
	if (!r->data_len)
		return 0;
	msg->reply = kvmalloc(r->data_len, GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
	return msg->reply ? 0 : -ENOMEM;
}

/* printk() with the level in the format's arguments, as nf_log builds its lines. */
static __printf(1, 2) void chan_printk(const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vprintk(fmt, args);
	va_end(args);
}

/*
 * A -j LOG line (struct bpfilter_log, whole in one write), printed as
 * nf_log_buf_close() prints netfilter's: facility kern, the rule's level.
 */
static ssize_t chan_log(const char __user *buf, size_t len)
{
	struct bpfilter_log hdr;
	char *text;

	if (len < sizeof(hdr) || copy_from_user(&hdr, buf, sizeof(hdr)))
		return -EPROTO;
	if (hdr.magic != BPFILTER_LOG_MAGIC || hdr.level > 7 ||
	    hdr.len > BPFILTER_LOG_MAX || len != sizeof(hdr) + hdr.len)
		return -EPROTO;
	text = memdup_user_nul(buf + sizeof(hdr), hdr.len);
	if (IS_ERR(text))
		return PTR_ERR(text);
	chan_printk(KERN_SOH "%c%s\n", '0' + hdr.level, text);
	kfree(text);
	return len;
}

static ssize_t chan_write(struct file *file, const char __user *buf,
			  size_t len, loff_t *ppos)
{
	struct bpfilter_chan *chan = file->private_data;
	size_t hlen = sizeof(chan->rhdr);
	size_t done = 0;
	ssize_t ret;

	if (!chan_is_helper(chan))
		return -EPERM;
	mutex_lock(&chan->io);
	if (chan->dead || chan->closing) {
		ret = -EPIPE;
		goto out;
	}
	if (!chan->rpos) {
		u32 magic;

		/* Between replies: a log line (whole), or the start of a reply. */
		if (len < sizeof(magic)) {
			chan_break(chan, "short write between replies");
			ret = -EPROTO;
			goto out;
		}
		if (copy_from_user(&magic, buf, sizeof(magic))) {
			ret = -EFAULT;
			goto out;
		}
		if (magic == BPFILTER_LOG_MAGIC) {
			ret = chan_log(buf, len);
			if (ret == -EPROTO)
				chan_break(chan, "malformed log line");
			goto out;
		}
	}
	/* One reply at most per write: the next starts with a fresh look at its magic. */
	while (done < len) {
		size_t total = hlen + (chan->rpos >= hlen ? chan->rhdr.data_len : 0);
		char *dst;
		size_t n;

		if (chan->rpos < hlen)
			dst = (char *)&chan->rhdr + chan->rpos;
		else
			dst = (char *)chan->receiving->reply + (chan->rpos - hlen);
		n = min(total - chan->rpos, len - done);
		if (copy_from_user(dst, buf + done, n)) {
			ret = done ? done : -EFAULT;
			goto out;
		}
		done += n;
		chan->rpos += n;
		if (chan->rpos == hlen) {
			ret = chan_reply_header(chan);
			if (ret) {
				chan_break(chan, "bad reply header");
				goto out;
			}
		}
		if (chan->rpos == hlen + chan->rhdr.data_len) {
			struct bpfilter_msg *msg = chan->receiving;

			msg->status = chan->rhdr.status;
			msg->reply_len = chan->rhdr.data_len;
			chan->receiving = NULL;
			chan->rpos = 0;
			chan_complete(chan, msg);
			break;
		}
	}
	ret = done;
out:
	mutex_unlock(&chan->io);
	return ret;
}

static __poll_t chan_poll(struct file *file, poll_table *wait)
{
	struct bpfilter_chan *chan = file->private_data;
	__poll_t mask = 0;

	poll_wait(file, &chan->wq, wait);
	if (chan_readable(chan))
		mask |= EPOLLIN | EPOLLRDNORM;
	/* Log lines may be written at any time, replies while any is owed. */
	mask |= EPOLLOUT | EPOLLWRNORM;
	if (READ_ONCE(chan->dead))
		mask |= EPOLLHUP;
	return mask;
}

/*
 * The channel's file holds no module reference while the helper runs (see
 * install_chan()), so that rmmod can stop the helper. Its release takes one
 * back first: the core drops it after this function has returned
 * (fops_put() in __fput()), and bpfilter_umh_exit() waits for that, so no
 * instruction of ours runs after rmmod's wait ends.
 */
static int chan_release(struct inode *inode, struct file *file)
{
	struct bpfilter_chan *chan = file->private_data;

	__module_get(THIS_MODULE);
	mutex_lock(&chan->io);
	chan->dead = true;
	wake_up_all(&chan->wq);
	mutex_unlock(&chan->io);
	kref_put(&chan->ref, chan_free);
	if (atomic_dec_and_test(&umh.files))
		wake_up_all(&umh.files_wq);
	return 0;
}

static const struct file_operations chan_fops = {
	.owner = THIS_MODULE,
	.read = chan_read,
	.write = chan_write,
	.poll = chan_poll,
	.release = chan_release,
	.llseek = no_llseek,
};

/* The same without an owner, to make the file with (see install_chan()). */
static const struct file_operations chan_fops_unowned = {
	.read = chan_read,
	.write = chan_write,
	.poll = chan_poll,
	.release = chan_release,
	.llseek = no_llseek,
};

struct umh_start {
	struct bpfilter_chan *chan;
	char path[32];
	char chan_fd[12];
	char *argv[5 + BPFILTER_PARAMS_ARGC];
	char *envp[3];
};

static int install_file(struct file *file, unsigned int flags)
{
	int fd = get_unused_fd_flags(flags);

	if (fd >= 0)
		fd_install(fd, get_file(file));
	return fd;
}

/*
 * The channel file is made in the new task, so that only the helper ever
 * holds it: a reference dropped by the module's own caller would be
 * released only when that caller returns to user space.
 */
static int install_chan(struct bpfilter_chan *chan)
{
	struct file *file;
	int fd;

	kref_get(&chan->ref);
	atomic_inc(&umh.files);
	/*
	 * Made without a module reference, then given chan_fops (with .owner)
	 * before anyone can see it: a reference held by the helper's file would
	 * make rmmod fail with EBUSY for good, and anon_inode_getfile() could not
	 * take one while rmmod restarts the helper to detach its programs (the
	 * module is going). chan_release() takes the one the VFS drops after it.
	 */
	file = anon_inode_getfile("[bpfilter]", &chan_fops_unowned, chan, O_RDWR);
	if (IS_ERR(file)) {
		if (atomic_dec_and_test(&umh.files))
			wake_up_all(&umh.files_wq);
		kref_put(&chan->ref, chan_free);
		return PTR_ERR(file);
	}
	file->f_op = &chan_fops;
	fd = get_unused_fd_flags(0);
	if (fd < 0) {
		fput(file);
		return fd;
	}
	fd_install(fd, file);
	return fd;
}

/*
 * Runs in the new task before it executes the helper: its descriptor table
 * is a copy of the (empty) kernel one, so the numbers are ours to choose.
 * 0 is /dev/null and 1, 2 are /dev/kmsg, so that stray output of the
 * helper's libraries lands in the kernel log and never on the channel.
 */
static int umh_init(struct subprocess_info *info, struct cred *new)
{
	struct umh_start *s = info->data;
	struct file *null, *kmsg;
	int fd, efd, ret = 0;

	s->chan->tgid = get_pid(task_tgid(current));
	null = filp_open("/dev/null", O_RDWR, 0);
	if (IS_ERR(null)) {
		pr_err("cannot open /dev/null for the helper: %ld\n", PTR_ERR(null));
		return PTR_ERR(null);
	}
	kmsg = filp_open("/dev/kmsg", O_WRONLY, 0);
	if (IS_ERR(kmsg))
		kmsg = get_file(null);
	if (install_file(null, 0) != 0 || install_file(kmsg, 0) != 1 ||
	    install_file(kmsg, 0) != 2) {
		ret = -EMFILE;
		goto out;
	}
	fd = install_chan(s->chan);
	efd = install_file(umh.exe, O_CLOEXEC);
	if (fd < 0 || efd < 0) {
		ret = fd < 0 ? fd : efd;
		goto out;
	}
	snprintf(s->chan_fd, sizeof(s->chan_fd), "%d", fd);
	snprintf(s->path, sizeof(s->path), "/proc/self/fd/%d", efd);
out:
	fput(kmsg);
	fput(null);
	return ret;
}

static bool chan_over(struct bpfilter_chan *chan, struct bpfilter_msg *msg)
{
	return READ_ONCE(msg->done) || READ_ONCE(chan->dead);
}

static int chan_wait_done(struct bpfilter_chan *chan, struct bpfilter_msg *msg,
			  bool killable, long timeout)
{
	if (killable) {
		long left = wait_event_killable_timeout(chan->wq, chan_over(chan, msg), timeout);

		if (left > 0)
			return 0;
		if (!left)
			return -ETIMEDOUT;
		/*
		 * The caller is dying, but the helper may be applying its
		 * table: wait for the answer so that the module's idea of
		 * the table stays the helper's.
		 */
		pr_notice("caller %d killed during a request: waiting for the helper's answer\n",
			  task_pid_nr(current));
		timeout = BPFILTER_KILLED_GRACE;
	}
	if (!wait_event_idle_timeout(chan->wq, chan_over(chan, msg), timeout))
		return killable ? -EINTR : -ETIMEDOUT;
	return 0;
}

static int exchange(struct bpfilter_chan *chan, struct bpfilter_msg *msg,
		    bool killable, long timeout)
{
	int ret;

	msg->status = 0;
	msg->reply = NULL;
	msg->reply_len = 0;
	msg->req.magic = BPFILTER_REQ_MAGIC;
	msg->req.version = BPFILTER_PROTO_VERSION;
	if (msg->net)
		msg->req.netns_cookie = msg->net->net_cookie;
	msg->req.netns_fd = -1;
	msg->done = false;
	INIT_LIST_HEAD(&msg->node);

	mutex_lock(&chan->io);
	if (chan->dead) {
		mutex_unlock(&chan->io);
		return -EIO;
	}
	msg->req.seq = ++chan->seq;
	list_add_tail(&msg->node, &chan->queue);
	WRITE_ONCE(chan->queued, chan->queued + 1);
	wake_up_all(&chan->wq);
	mutex_unlock(&chan->io);

	ret = chan_wait_done(chan, msg, killable, timeout);

	mutex_lock(&chan->io);
	if (msg->done) {
		ret = 0;
	} else {
		/*
		 * Given up on (or the helper is gone): off the channel's lists
		 * before msg goes out of scope. Half read or half answered, the
		 * stream cannot go on; waiting for the answer ran out, so the
		 * helper is killed anyway.
		 */
		if (!ret)
			ret = -EIO;
		chan_break(chan, ret == -EIO ? "helper died" : "no answer in time");
		if (chan->receiving == msg) {
			chan->receiving = NULL;
			chan->rpos = 0;
		}
		if (list_first_entry_or_null(&chan->queue, struct bpfilter_msg, node) == msg)
			chan->spos = 0;
		if (!list_empty(&msg->node)) {
			bool queued = false;
			struct bpfilter_msg *it;

			list_for_each_entry(it, &chan->queue, node)
				queued |= it == msg;
			if (queued)
				WRITE_ONCE(chan->queued, chan->queued - 1);
			list_del_init(&msg->node);
		}
		kvfree(msg->reply);
		msg->reply = NULL;
		msg->reply_len = 0;
	}
	mutex_unlock(&chan->io);
	return ret;
}

/* Waits for the helper's exit, at most timeout jiffies. */
static void wait_exited(struct pid *tgid, long timeout)
{
	unsigned long end = jiffies + timeout;

	while (!thread_group_exited(tgid)) {
		if (time_after(jiffies, end))
			return;
		/* Polled: the pidfd wake-up may come before exit_state is set. */
		wait_event_timeout(tgid->wait_pidfd, thread_group_exited(tgid), HZ / 10);
	}
}

/*
 * Kills the helper and waits until it is gone, at most BPFILTER_KILL_GRACE:
 * a helper stuck in the kernel must not hold bpfilter_mutex (every caller)
 * forever. Its channel is dead by then, so a new helper may start; the old
 * one exits when the kernel lets it. Locked.
 */
static void umh_kill(void)
{
	struct bpfilter_chan *chan = umh.chan;

	if (!chan)
		return;
	spin_lock(&umh.lock);
	umh.ready = NULL;
	spin_unlock(&umh.lock);
	umh.chan = NULL;
	mutex_lock(&chan->io);
	chan->dead = true;
	wake_up_all(&chan->wq);
	mutex_unlock(&chan->io);
	if (chan->tgid) {
		kill_pid(chan->tgid, SIGKILL, 1);
		wait_exited(chan->tgid, BPFILTER_KILL_GRACE);
		if (!thread_group_exited(chan->tgid))
			pr_err("helper pid %d has not exited %d s after SIGKILL; going on without it\n",
			       pid_nr(chan->tgid), BPFILTER_KILL_GRACE / HZ);
	}
	kref_put(&chan->ref, chan_free);
}

bool bpfilter_umh_running(void)
{
	lockdep_assert_held(&bpfilter_mutex);
	if (umh.chan && READ_ONCE(umh.chan->dead)) {
		pr_warn("helper gone, will restart it\n");
		umh_kill();
	}
	return umh.chan;
}

int bpfilter_umh_exchange(struct bpfilter_msg *msg, bool killable)
{
	int ret;

	lockdep_assert_held(&bpfilter_mutex);
	if (!umh.chan)
		return -EIO;
	ret = exchange(umh.chan, msg, killable, BPFILTER_KERNEL_TIMEOUT);
	if (ret)
		umh_kill();
	return ret;
}

void bpfilter_umh_publish(void)
{
	lockdep_assert_held(&bpfilter_mutex);
	spin_lock(&umh.lock);
	umh.ready = umh.chan;
	spin_unlock(&umh.lock);
}

struct bpfilter_chan *bpfilter_umh_get(void)
{
	struct bpfilter_chan *chan;

	spin_lock(&umh.lock);
	chan = umh.ready;
	if (chan && !READ_ONCE(chan->dead))
		kref_get(&chan->ref);
	else
		chan = NULL;
	spin_unlock(&umh.lock);
	return chan;
}

void bpfilter_umh_put(struct bpfilter_chan *chan)
{
	kref_put(&chan->ref, chan_free);
}

/*
 * An exchange without bpfilter_mutex. A failure (no answer in time, the
 * helper gone) has broken the channel: SIGKILL now, so that the helper stops
 * whatever it does; the next request, under bpfilter_mutex, waits for its
 * exit and starts another (bpfilter_umh_running()).
 */
int bpfilter_umh_send(struct bpfilter_chan *chan, struct bpfilter_msg *msg, bool killable)
{
	int ret = exchange(chan, msg, killable, BPFILTER_KERNEL_TIMEOUT);

	if (ret && chan->tgid)
		kill_pid(chan->tgid, SIGKILL, 1);
	return ret;
}

static int umh_health(struct bpfilter_chan *chan)
{
	struct bpfilter_msg msg = { .req.op = BPFILTER_OP_HEALTH };
	int ret;

	ret = exchange(chan, &msg, false, BPFILTER_HEALTH_TIMEOUT);
	kvfree(msg.reply);
	if (ret)
		return ret;
	return msg.status ? -EPROTO : 0;
}

int bpfilter_umh_start(void)
{
	struct umh_start s = {};
	struct subprocess_info *info;
	int ret;

	lockdep_assert_held(&bpfilter_mutex);
	if (umh.chan)
		return 0;
	s.chan = kzalloc(sizeof(*s.chan), GFP_KERNEL);
	if (!s.chan)
		return -ENOMEM;
	kref_init(&s.chan->ref);
	mutex_init(&s.chan->io);
	init_waitqueue_head(&s.chan->wq);
	INIT_LIST_HEAD(&s.chan->queue);
	INIT_LIST_HEAD(&s.chan->inflight);

	/* Rewritten by umh_init(); an empty path would make the call a no-op. */
	strscpy(s.path, "bpfilter_umh", sizeof(s.path));
	s.argv[0] = "bpfilter_umh";
	s.argv[1] = "--channel";
	s.argv[2] = s.chan_fd;
	s.argv[3] = "--kmsg";
	bpfilter_params_argv(&s.argv[4]);
	s.envp[0] = "HOME=/";
	s.envp[1] = "PATH=/sbin:/bin:/usr/sbin:/usr/bin";
	info = call_usermodehelper_setup(s.path, s.argv, s.envp, GFP_KERNEL,
					 umh_init, NULL, &s);
	ret = info ? call_usermodehelper_exec(info, UMH_WAIT_EXEC) : -ENOMEM;
	umh.chan = s.chan;
	if (ret) {
		pr_err("cannot start the helper (%d)%s\n", ret,
		       ret == -ENOENT ? ": is procfs mounted on /proc?" : "");
		umh_kill();
		return ret;
	}
	ret = umh_health(s.chan);
	if (ret) {
		pr_err("helper failed its health check (%d)\n", ret);
		umh_kill();
		return ret;
	}
	pr_info("helper started, pid %d\n", pid_nr(s.chan->tgid));
	return 0;
}

void bpfilter_umh_stop(void)
{
	struct bpfilter_chan *chan = umh.chan;

	lockdep_assert_held(&bpfilter_mutex);
	if (!chan)
		return;
	mutex_lock(&chan->io);
	chan->closing = true;
	wake_up_all(&chan->wq);
	mutex_unlock(&chan->io);
	if (chan->tgid)
		wait_exited(chan->tgid, BPFILTER_EXIT_GRACE);
	umh_kill();
}

/* Copies the embedded helper into an unlinked shmem file, once. */
int __init bpfilter_umh_init(void)
{
	size_t len = bpfilter_umh_blob_end - bpfilter_umh_blob_start;
	struct file *exe;
	loff_t pos = 0;
	ssize_t n;

	atomic_set(&umh.files, 0);
	init_waitqueue_head(&umh.files_wq);
	spin_lock_init(&umh.lock);
	exe = shmem_file_setup("bpfilter_umh", len, VM_NORESERVE);
	if (IS_ERR(exe))
		return PTR_ERR(exe);
	n = kernel_write(exe, bpfilter_umh_blob_start, len, &pos);
	if (n != len) {
		fput(exe);
		return n < 0 ? n : -EIO;
	}
	umh.exe = exe;
	return 0;
}

void bpfilter_umh_exit(void)
{
	int idle;

	/*
	 * No code of ours may run after this: wait for every channel's
	 * release. The helper is gone; only a process that took a copy of its
	 * descriptor (pidfd_getfd() with CAP_SYS_PTRACE) can keep one open,
	 * and then rmmod waits, idle (no hung task report), until it closes.
	 */
	while (!wait_event_idle_timeout(umh.files_wq, !atomic_read(&umh.files), 10 * HZ))
		pr_warn("rmmod waits: another process holds the helper's channel open\n");
	/*
	 * The references chan_release() took: the core drops them after it
	 * returned. Idle, the count is 1 while loading (a failed init: the
	 * loader holds a reference during init) and -1 once rmmod has taken the
	 * loader's base reference.
	 */
	idle = THIS_MODULE->state == MODULE_STATE_GOING ? -1 : 1;
	while (module_refcount(THIS_MODULE) > idle)
		schedule_timeout_idle(1);
	/* module_put() reads the module until preempt_enable(). */
	synchronize_rcu();
	fput(umh.exe);
	umh.exe = NULL;
}
